//! Flavors: the CLI's list and find calls, admin-only management, private
//! flavor access and extra specs.

mod common;

use axum::http::StatusCode;
use common::Cloud;
use serde_json::{json, Value};

fn names(body: &Value) -> Vec<String> {
    body["flavors"]
        .as_array()
        .expect("flavors")
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn cli_flavor_list_at_2_61() {
    let cloud = Cloud::start().await;
    let reply = cloud
        .get("/v2.1/flavors/detail?is_public=True", &cloud.demo, "2.61")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let flavors = reply.body["flavors"].as_array().unwrap();
    assert_eq!(flavors.len(), 7);
    let nano = flavors
        .iter()
        .find(|f| f["name"] == "m1.nano")
        .expect("m1.nano");
    let expected_keys = [
        "id",
        "name",
        "ram",
        "disk",
        "vcpus",
        "swap",
        "OS-FLV-EXT-DATA:ephemeral",
        "OS-FLV-DISABLED:disabled",
        "os-flavor-access:is_public",
        "rxtx_factor",
        "links",
        "description",
        "extra_specs",
    ];
    let mut keys: Vec<&str> = nano
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected = expected_keys.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(nano["id"], "42");
    assert_eq!(nano["ram"], 128);
    assert_eq!(nano["vcpus"], 1);
    assert_eq!(nano["disk"], 1);
    assert_eq!(nano["swap"], "", "swap 0 is the empty string before 2.75");
    assert_eq!(nano["rxtx_factor"], 1.0);
    assert_eq!(nano["extra_specs"], json!({}));
    assert_eq!(
        nano["links"][0]["href"],
        format!("{}/compute/v2.1/flavors/42", common::PUBLIC_URL)
    );
}

#[tokio::test]
async fn shape_follows_microversion() {
    let cloud = Cloud::start().await;
    let old = cloud.get("/v2.1/flavors/42", &cloud.demo, "2.1").await;
    assert!(old.body["flavor"].get("description").is_none());
    assert!(old.body["flavor"].get("extra_specs").is_none());
    let mid = cloud.get("/v2.1/flavors/42", &cloud.demo, "2.55").await;
    assert!(mid.body["flavor"]["description"].is_null());
    assert!(mid.body["flavor"].get("description").is_some());
    assert!(mid.body["flavor"].get("extra_specs").is_none());
    let new = cloud.get("/v2.1/flavors/42", &cloud.demo, "2.75").await;
    assert_eq!(new.body["flavor"]["swap"], 0);
    let summary = cloud.get("/v2.1/flavors", &cloud.demo, "2.1").await;
    let first = summary.body["flavors"][0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["id", "links", "name"]);
}

#[tokio::test]
async fn cli_flavor_show_by_name() {
    let cloud = Cloud::start().await;
    let by_name = cloud
        .get("/v2.1/flavors/m1.nano", &cloud.demo, "2.61")
        .await;
    assert_eq!(by_name.status, StatusCode::NOT_FOUND);
    assert_eq!(by_name.body["itemNotFound"]["code"], 404);
    let all = cloud
        .get("/v2.1/flavors/detail?is_public=None", &cloud.demo, "2.61")
        .await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(names(&all.body).contains(&"m1.nano".to_owned()));
}

#[tokio::test]
async fn list_filters_sort_and_pages() {
    let cloud = Cloud::start().await;
    let big = cloud
        .get(
            "/v2.1/flavors/detail?minRam=4096&minDisk=80",
            &cloud.demo,
            "2.61",
        )
        .await;
    assert_eq!(names(&big.body), ["m1.large", "m1.xlarge"]);
    let by_ram = cloud
        .get(
            "/v2.1/flavors?sort_key=memory_mb&sort_dir=desc",
            &cloud.demo,
            "2.61",
        )
        .await;
    assert_eq!(names(&by_ram.body)[0], "m1.xlarge");
    let page = cloud
        .get("/v2.1/flavors?limit=2", &cloud.demo, "2.61")
        .await;
    assert_eq!(page.body["flavors"].as_array().unwrap().len(), 2);
    let next = page.body["flavors_links"][0]["href"]
        .as_str()
        .expect("next link");
    assert!(next.contains("marker=2"), "{next}");
    let second = cloud
        .get("/v2.1/flavors?limit=2&marker=2", &cloud.demo, "2.61")
        .await;
    assert_eq!(second.body["flavors"][0]["id"], "3");
    let bad = cloud
        .get("/v2.1/flavors?is_public=maybe", &cloud.admin, "2.61")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad_marker = cloud
        .get("/v2.1/flavors?marker=nope", &cloud.demo, "2.61")
        .await;
    assert_eq!(bad_marker.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn create_and_delete_are_admin_only() {
    let cloud = Cloud::start().await;
    let body = json!({"flavor": {"name": "t1", "ram": 256, "vcpus": 1, "disk": 2, "id": "t1-id"}});
    let denied = cloud
        .post("/v2.1/flavors", &cloud.demo, "2.61", body.clone())
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.body["forbidden"]["code"], 403);

    let created = cloud
        .post("/v2.1/flavors", &cloud.admin, "2.61", body.clone())
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["flavor"]["id"], "t1-id");
    assert_eq!(created.body["flavor"]["extra_specs"], json!({}));

    let same_id = cloud
        .post("/v2.1/flavors", &cloud.admin, "2.61", body)
        .await;
    assert_eq!(same_id.status, StatusCode::CONFLICT);
    let same_name = json!({"flavor": {"name": "t1", "ram": 256, "vcpus": 1, "disk": 2}});
    let same_name = cloud
        .post("/v2.1/flavors", &cloud.admin, "2.61", same_name)
        .await;
    assert_eq!(same_name.status, StatusCode::CONFLICT);
    let message = same_name.body["conflictingRequest"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("name t1"), "{message}");

    let denied = cloud
        .delete("/v2.1/flavors/t1-id", &cloud.demo, "2.61")
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let deleted = cloud
        .delete("/v2.1/flavors/t1-id", &cloud.admin, "2.61")
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    let gone = cloud.get("/v2.1/flavors/t1-id", &cloud.admin, "2.61").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn description_update_needs_2_55() {
    let cloud = Cloud::start().await;
    let body = json!({"flavor": {"description": "tiny test flavor"}});
    let old = cloud
        .put("/v2.1/flavors/1", &cloud.admin, "2.54", body.clone())
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    let updated = cloud
        .put("/v2.1/flavors/1", &cloud.admin, "2.55", body)
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["flavor"]["description"], "tiny test flavor");
}

#[tokio::test]
async fn private_flavor_visible_after_access_grant() {
    let cloud = Cloud::start().await;
    let body = json!({"flavor": {"name": "secret", "ram": 64, "vcpus": 1, "disk": 0,
                                 "id": "p1", "os-flavor-access:is_public": false}});
    let created = cloud
        .post("/v2.1/flavors", &cloud.admin, "2.61", body)
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);

    let hidden = cloud.get("/v2.1/flavors/p1", &cloud.demo, "2.61").await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let listed = cloud
        .get("/v2.1/flavors/detail?is_public=None", &cloud.demo, "2.61")
        .await;
    assert!(!names(&listed.body).contains(&"secret".to_owned()));
    let admin_private = cloud
        .get("/v2.1/flavors/detail?is_public=false", &cloud.admin, "2.61")
        .await;
    assert_eq!(names(&admin_private.body), ["secret"]);

    let grant = json!({"addTenantAccess": {"tenant": cloud.demo_project}});
    let granted = cloud
        .post(
            "/v2.1/flavors/p1/action",
            &cloud.admin,
            "2.61",
            grant.clone(),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    assert_eq!(
        granted.body["flavor_access"][0]["tenant_id"],
        cloud.demo_project.as_str()
    );
    let again = cloud
        .post("/v2.1/flavors/p1/action", &cloud.admin, "2.61", grant)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let visible = cloud.get("/v2.1/flavors/p1", &cloud.demo, "2.61").await;
    assert_eq!(visible.status, StatusCode::OK);
    let listed = cloud
        .get("/v2.1/flavors/detail?is_public=None", &cloud.demo, "2.61")
        .await;
    assert!(names(&listed.body).contains(&"secret".to_owned()));
    let other = cloud.get("/v2.1/flavors/p1", &cloud.alt, "2.61").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);

    let member_list = cloud
        .get("/v2.1/flavors/p1/os-flavor-access", &cloud.demo, "2.61")
        .await;
    assert_eq!(member_list.status, StatusCode::FORBIDDEN);
    let public_list = cloud
        .get("/v2.1/flavors/42/os-flavor-access", &cloud.admin, "2.61")
        .await;
    assert_eq!(public_list.status, StatusCode::NOT_FOUND);

    let revoke = json!({"removeTenantAccess": {"tenant": cloud.demo_project}});
    let revoked = cloud
        .post(
            "/v2.1/flavors/p1/action",
            &cloud.admin,
            "2.61",
            revoke.clone(),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(revoked.body["flavor_access"], json!([]));
    let missing = cloud
        .post("/v2.1/flavors/p1/action", &cloud.admin, "2.61", revoke)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let on_public = json!({"addTenantAccess": {"tenant": cloud.demo_project}});
    let on_public = cloud
        .post("/v2.1/flavors/42/action", &cloud.admin, "2.7", on_public)
        .await;
    assert_eq!(on_public.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn extra_specs_crud() {
    let cloud = Cloud::start().await;
    let path = "/v2.1/flavors/42/os-extra_specs";
    let specs =
        json!({"extra_specs": {"hw:cpu_policy": "dedicated", "quota:disk_read_iops_sec": 500}});
    let denied = cloud.post(path, &cloud.demo, "2.61", specs.clone()).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let created = cloud.post(path, &cloud.admin, "2.61", specs).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(
        created.body["extra_specs"]["quota:disk_read_iops_sec"],
        "500"
    );

    let listed = cloud.get(path, &cloud.demo, "2.61").await;
    assert_eq!(listed.body["extra_specs"]["hw:cpu_policy"], "dedicated");
    let embedded = cloud.get("/v2.1/flavors/42", &cloud.demo, "2.61").await;
    assert_eq!(
        embedded.body["flavor"]["extra_specs"]["hw:cpu_policy"],
        "dedicated"
    );

    let key_path = format!("{path}/hw:cpu_policy");
    let one = cloud.get(&key_path, &cloud.demo, "2.61").await;
    assert_eq!(one.body, json!({"hw:cpu_policy": "dedicated"}));
    let mismatch = cloud
        .put(&key_path, &cloud.admin, "2.61", json!({"other": "x"}))
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    let updated = cloud
        .put(
            &key_path,
            &cloud.admin,
            "2.61",
            json!({"hw:cpu_policy": "shared"}),
        )
        .await;
    assert_eq!(updated.body, json!({"hw:cpu_policy": "shared"}));

    let bad_key = cloud
        .post(
            path,
            &cloud.admin,
            "2.61",
            json!({"extra_specs": {"bad/key": "x"}}),
        )
        .await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);

    let deleted = cloud.delete(&key_path, &cloud.admin, "2.61").await;
    assert_eq!(deleted.status, StatusCode::OK);
    let gone = cloud.get(&key_path, &cloud.demo, "2.61").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}
