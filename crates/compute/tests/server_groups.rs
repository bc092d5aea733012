//! Server groups in-process: the API at each microversion, quotas,
//! project isolation, the `group` hint at create with the member list and
//! the 2.71 view, and the anti-affinity filter on the one test host.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{Cloud, Reply};
use serde_json::{json, Value};

const IMAGE: &str = "6b9b6e4c-8f3a-4c1e-9d1b-3a2f0c6e7d10";
const NETWORK: &str = "0c7e5d4a-1b2c-4d3e-8f9a-0a1b2c3d4e5f";

async fn cloud() -> Cloud {
    let cloud = Cloud::start().await;
    cloud.service.start_host().await.expect("host registers");
    cloud.fakes.images.add(IMAGE, "cirros");
    cloud
        .fakes
        .networks
        .add(NETWORK, "private", &cloud.demo_project, false);
    cloud
}

async fn create_group(cloud: &Cloud, token: &str, version: &str, group: Value) -> Reply {
    cloud
        .post(
            "/v2.1/os-server-groups",
            token,
            version,
            json!({"server_group": group}),
        )
        .await
}

fn message(reply: &Reply) -> String {
    reply
        .body
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|fault| fault["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn create_server_in(cloud: &Cloud, name: &str, group: &str) -> Reply {
    let body = json!({
        "server": {"name": name, "imageRef": IMAGE, "flavorRef": "42", "networks": [{"uuid": NETWORK}]},
        "os:scheduler_hints": {"group": group},
    });
    cloud.post("/v2.1/servers", &cloud.demo, "2.85", body).await
}

/// Polls server `id` until it is `status` with no task, failing after 10 s.
async fn wait_status(cloud: &Cloud, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let reply = cloud
            .get(&format!("/v2.1/servers/{id}"), &cloud.admin, "2.85")
            .await;
        if reply.body["server"]["status"] == status
            && reply.body["server"]["OS-EXT-STS:task_state"].is_null()
        {
            return reply.body["server"].clone();
        }
        last = reply.body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server {id} never reached {status}: {last}");
}

#[tokio::test]
async fn group_views_follow_microversion() {
    let cloud = cloud().await;
    let old = create_group(
        &cloud,
        &cloud.demo,
        "2.1",
        json!({"name": "g1", "policies": ["affinity"]}),
    )
    .await;
    assert_eq!(old.status, StatusCode::OK, "{}", old.body);
    let group = &old.body["server_group"];
    assert_eq!(group["policies"], json!(["affinity"]));
    assert_eq!(group["metadata"], json!({}));
    assert_eq!(group["members"], json!([]));
    assert!(group.get("project_id").is_none());

    let id = group["id"].as_str().unwrap();
    let v213 = cloud
        .get(&format!("/v2.1/os-server-groups/{id}"), &cloud.demo, "2.13")
        .await;
    assert_eq!(
        v213.body["server_group"]["project_id"],
        json!(cloud.demo_project)
    );
    let v264 = cloud
        .get(&format!("/v2.1/os-server-groups/{id}"), &cloud.demo, "2.64")
        .await;
    assert_eq!(v264.body["server_group"]["policy"], "affinity");
    assert_eq!(v264.body["server_group"]["rules"], json!({}));
    assert!(v264.body["server_group"].get("policies").is_none());

    let new = create_group(
        &cloud,
        &cloud.demo,
        "2.64",
        json!({"name": "g2", "policy": "anti-affinity", "rules": {"max_server_per_host": 3}}),
    )
    .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.body);
    assert_eq!(
        new.body["server_group"]["rules"],
        json!({"max_server_per_host": 3})
    );
}

#[tokio::test]
async fn group_create_rejects_bad_input() {
    let cloud = cloud().await;
    let cases = [
        ("2.1", json!({"name": "g", "policies": ["soft-affinity"]})),
        (
            "2.1",
            json!({"name": "g", "policies": ["affinity", "anti-affinity"]}),
        ),
        ("2.1", json!({"name": "", "policies": ["affinity"]})),
        ("2.64", json!({"name": "g", "policies": ["affinity"]})),
        (
            "2.64",
            json!({"name": "g", "policy": "affinity", "rules": {"max_server_per_host": 2}}),
        ),
        (
            "2.64",
            json!({"name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}}),
        ),
    ];
    for (version, group) in cases {
        let reply = create_group(&cloud, &cloud.demo, version, group.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{version} {group}: {}",
            reply.body
        );
    }
    let soft = create_group(
        &cloud,
        &cloud.demo,
        "2.15",
        json!({"name": "g", "policies": ["soft-anti-affinity"]}),
    )
    .await;
    assert_eq!(soft.status, StatusCode::OK, "{}", soft.body);
}

#[tokio::test]
async fn group_list_show_delete_and_isolation() {
    let cloud = cloud().await;
    let mine = create_group(
        &cloud,
        &cloud.demo,
        "2.1",
        json!({"name": "mine", "policies": ["affinity"]}),
    )
    .await;
    let id = mine.body["server_group"]["id"].as_str().unwrap().to_owned();
    create_group(
        &cloud,
        &cloud.alt,
        "2.1",
        json!({"name": "theirs", "policies": ["affinity"]}),
    )
    .await;

    let list = cloud
        .get("/v2.1/os-server-groups", &cloud.demo, "2.1")
        .await;
    let names: Vec<&str> = list.body["server_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mine"]);
    let ignored = cloud
        .get(
            "/v2.1/os-server-groups?all_projects=True",
            &cloud.demo,
            "2.1",
        )
        .await;
    assert_eq!(
        ignored.body["server_groups"].as_array().unwrap().len(),
        1,
        "all_projects needs admin"
    );
    let all = cloud
        .get(
            "/v2.1/os-server-groups?all_projects=True",
            &cloud.admin,
            "2.1",
        )
        .await;
    assert_eq!(all.body["server_groups"].as_array().unwrap().len(), 2);
    let mut paged = Vec::new();
    for offset in 0..2 {
        let page = cloud
            .get(
                &format!("/v2.1/os-server-groups?all_projects=True&limit=1&offset={offset}"),
                &cloud.admin,
                "2.1",
            )
            .await;
        assert_eq!(
            page.body["server_groups"].as_array().unwrap().len(),
            1,
            "{}",
            page.body
        );
        paged.push(
            page.body["server_groups"][0]["name"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    paged.sort();
    assert_eq!(paged, ["mine", "theirs"]);

    let other = cloud
        .get(&format!("/v2.1/os-server-groups/{id}"), &cloud.alt, "2.1")
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let deleted = cloud
        .delete(&format!("/v2.1/os-server-groups/{id}"), &cloud.demo, "2.1")
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = cloud
        .get(&format!("/v2.1/os-server-groups/{id}"), &cloud.demo, "2.1")
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(
        message(&gone),
        format!("Instance group {id} could not be found.")
    );
}

#[tokio::test]
async fn group_quota_counts_groups() {
    let cloud = cloud().await;
    let path = format!("/v2.1/os-quota-sets/{}", cloud.demo_project);
    let reply = cloud
        .put(
            &path,
            &cloud.admin,
            "2.1",
            json!({"quota_set": {"server_groups": 1}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let first = create_group(
        &cloud,
        &cloud.demo,
        "2.1",
        json!({"name": "a", "policies": ["affinity"]}),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    let second = create_group(
        &cloud,
        &cloud.demo,
        "2.1",
        json!({"name": "b", "policies": ["affinity"]}),
    )
    .await;
    assert_eq!(second.status, StatusCode::FORBIDDEN, "{}", second.body);
    assert_eq!(message(&second), "Quota exceeded, too many server groups.");
    let detail = cloud
        .get(&format!("{path}/detail"), &cloud.demo, "2.1")
        .await;
    assert_eq!(
        detail.body["quota_set"]["server_groups"]["in_use"], 1,
        "{}",
        detail.body
    );
}

#[tokio::test]
async fn group_hint_adds_member_and_anti_affinity_filters() {
    let cloud = cloud().await;
    let group = create_group(
        &cloud,
        &cloud.demo,
        "2.1",
        json!({"name": "spread", "policies": ["anti-affinity"]}),
    )
    .await;
    let group_id = group.body["server_group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let first = create_server_in(&cloud, "one", &group_id).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let first_id = first.body["server"]["id"].as_str().unwrap().to_owned();
    wait_status(&cloud, &first_id, "ACTIVE").await;
    let shown = cloud
        .get(&format!("/v2.1/servers/{first_id}"), &cloud.demo, "2.71")
        .await;
    assert_eq!(shown.body["server"]["server_groups"], json!([group_id]));
    let shown = cloud
        .get(
            &format!("/v2.1/os-server-groups/{group_id}"),
            &cloud.demo,
            "2.1",
        )
        .await;
    assert_eq!(shown.body["server_group"]["members"], json!([first_id]));

    // The one host runs a member already, so the second has nowhere to go.
    let second = create_server_in(&cloud, "two", &group_id).await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.body);
    let second_id = second.body["server"]["id"].as_str().unwrap().to_owned();
    let failed = wait_status(&cloud, &second_id, "ERROR").await;
    let fault = failed["fault"]["message"].as_str().unwrap_or_default();
    assert!(fault.contains("ServerGroupAntiAffinityFilter"), "{failed}");

    let deleted = cloud
        .delete(&format!("/v2.1/servers/{first_id}"), &cloud.demo, "2.85")
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    for _ in 0..200 {
        let group = cloud
            .get(
                &format!("/v2.1/os-server-groups/{group_id}"),
                &cloud.demo,
                "2.1",
            )
            .await;
        if !group.body["server_group"]["members"]
            .as_array()
            .unwrap()
            .contains(&json!(first_id))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deleted server {first_id} is still a member");
}

#[tokio::test]
async fn group_hint_checks_group_and_member_quota() {
    let cloud = cloud().await;
    let missing = "9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
    let reply = create_server_in(&cloud, "lost", missing).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        message(&reply),
        format!("Instance group {missing} could not be found.")
    );

    let theirs = create_group(
        &cloud,
        &cloud.alt,
        "2.1",
        json!({"name": "alt", "policies": ["affinity"]}),
    )
    .await;
    let theirs = theirs.body["server_group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = create_server_in(&cloud, "foreign", &theirs).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "another project's group"
    );

    let path = format!("/v2.1/os-quota-sets/{}", cloud.demo_project);
    cloud
        .put(
            &path,
            &cloud.admin,
            "2.1",
            json!({"quota_set": {"server_group_members": 1}}),
        )
        .await;
    let group = create_group(
        &cloud,
        &cloud.demo,
        "2.1",
        json!({"name": "small", "policies": ["affinity"]}),
    )
    .await;
    let group_id = group.body["server_group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        create_server_in(&cloud, "a", &group_id).await.status,
        StatusCode::ACCEPTED
    );
    let over = create_server_in(&cloud, "b", &group_id).await;
    assert_eq!(over.status, StatusCode::FORBIDDEN, "{}", over.body);
    assert_eq!(message(&over), "Quota exceeded, too many servers in group");
}
