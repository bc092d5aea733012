//! Flavor, keypair and quota flows on PostgreSQL, proving the SQL is
//! portable. Runs against the server named by `OXSTACK_TEST_POSTGRES_URL`;
//! in CI the variable must be set. Elsewhere the test prints how to set it
//! and passes.

mod common;

use axum::http::StatusCode;
use common::Cloud;
use serde_json::json;

fn postgres_url() -> Option<String> {
    match std::env::var("OXSTACK_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI must set OXSTACK_TEST_POSTGRES_URL so the PostgreSQL tests run")
        }
        _ => {
            eprintln!(
                "OXSTACK_TEST_POSTGRES_URL is not set; PostgreSQL test not run (tests/run sets it)"
            );
            None
        }
    }
}

#[tokio::test]
async fn compute_flow_runs_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let cloud = Cloud::start_postgres(&url).await;

    let flavors = cloud
        .get("/v2.1/flavors/detail?is_public=None", &cloud.admin, "2.61")
        .await;
    assert_eq!(flavors.status, StatusCode::OK, "{}", flavors.body);
    assert_eq!(flavors.body["flavors"].as_array().unwrap().len(), 7);
    assert_eq!(flavors.body["flavors"][0]["rxtx_factor"], 1.0);

    let body = json!({"flavor": {"name": "pg", "ram": 64, "vcpus": 1, "disk": 0, "id": "pg",
                                 "os-flavor-access:is_public": false}});
    let created = cloud
        .post("/v2.1/flavors", &cloud.admin, "2.61", body)
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let grant = json!({"addTenantAccess": {"tenant": cloud.demo_project}});
    let granted = cloud
        .post("/v2.1/flavors/pg/action", &cloud.admin, "2.61", grant)
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    let specs = json!({"extra_specs": {"hw:cpu_policy": "dedicated"}});
    let set = cloud
        .post(
            "/v2.1/flavors/pg/os-extra_specs",
            &cloud.admin,
            "2.61",
            specs,
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let shown = cloud.get("/v2.1/flavors/pg", &cloud.demo, "2.61").await;
    assert_eq!(
        shown.body["flavor"]["extra_specs"]["hw:cpu_policy"],
        "dedicated"
    );
    let duplicate = json!({"flavor": {"name": "pg", "ram": 64, "vcpus": 1, "disk": 0}});
    let duplicate = cloud
        .post("/v2.1/flavors", &cloud.admin, "2.61", duplicate)
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    let deleted = cloud.delete("/v2.1/flavors/pg", &cloud.admin, "2.61").await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);

    let generated = json!({"keypair": {"name": "k1"}});
    let created = cloud
        .post("/v2.1/os-keypairs", &cloud.demo, "2.10", generated)
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let public_key = created.body["keypair"]["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let imported = json!({"keypair": {"name": "k2", "public_key": public_key}});
    let imported = cloud
        .post("/v2.1/os-keypairs", &cloud.demo, "2.10", imported)
        .await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.body);
    let shown = cloud.get("/v2.1/os-keypairs/k2", &cloud.demo, "2.10").await;
    assert_eq!(shown.body["keypair"]["id"], 2);
    let again = json!({"keypair": {"name": "k2", "public_key": public_key}});
    let again = cloud
        .post("/v2.1/os-keypairs", &cloud.demo, "2.10", again)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let path = format!("/v2.1/os-quota-sets/{}", cloud.demo_project);
    let updated = cloud
        .put(
            &path,
            &cloud.admin,
            "2.56",
            json!({"quota_set": {"instances": 20}}),
        )
        .await;
    assert_eq!(updated.body["quota_set"]["instances"], 20);
    let updated = cloud
        .put(
            &path,
            &cloud.admin,
            "2.56",
            json!({"quota_set": {"instances": 30}}),
        )
        .await;
    assert_eq!(updated.body["quota_set"]["instances"], 30);
    let limits = cloud.get("/v2.1/limits", &cloud.demo, "2.57").await;
    assert_eq!(limits.body["limits"]["absolute"]["maxTotalInstances"], 30);

    let user_path = format!("{path}?user_id=someone");
    let user = cloud
        .put(
            &user_path,
            &cloud.admin,
            "2.57",
            json!({"quota_set": {"instances": 5}}),
        )
        .await;
    assert_eq!(user.status, StatusCode::OK, "{}", user.body);
    assert_eq!(user.body["quota_set"]["instances"], 5);
    let class = json!({"quota_class_set": {"cores": 40}});
    let class = cloud
        .put(
            "/v2.1/os-quota-class-sets/default",
            &cloud.admin,
            "2.57",
            class,
        )
        .await;
    assert_eq!(class.status, StatusCode::OK, "{}", class.body);
    let reset = cloud.delete(&path, &cloud.admin, "2.57").await;
    assert_eq!(reset.status, StatusCode::ACCEPTED);
    let shown = cloud.get(&user_path, &cloud.admin, "2.57").await;
    assert_eq!(shown.body["quota_set"]["instances"], 10);
    assert_eq!(shown.body["quota_set"]["cores"], 40);
}
