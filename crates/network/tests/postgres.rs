//! The network flows on PostgreSQL, proving the SQL is portable. Runs
//! against the server named by `OXSTACK_TEST_POSTGRES_URL`; in CI the
//! variable must be set. Elsewhere the test prints how to set it and passes.

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
async fn network_flow_runs_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let cloud = Cloud::start_postgres(&url).await;

    let network = cloud.create_network(&cloud.demo, "xmodulo").await;
    let network_id = network["id"].as_str().unwrap();
    let subnet =
        json!({"cidr": "10.0.0.0/24", "network_id": network_id, "ip_version": 4, "name": "s"});
    let created = cloud.create_subnet(&cloud.demo, subnet).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["subnet"]["gateway_ip"], "10.0.0.1");
    let subnet_id = created.body["subnet"]["id"].as_str().unwrap();

    let overlap = json!({"cidr": "10.0.0.0/25", "network_id": network_id, "ip_version": 4});
    let reply = cloud.create_subnet(&cloud.demo, overlap).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);

    let vlan = json!({"network": {"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                                  "provider:segmentation_id": 7}});
    let first = cloud
        .post("/v2.0/networks", &cloud.admin, vlan.clone())
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = cloud.post("/v2.0/networks", &cloud.admin, vlan).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.error_type(), "VlanIdInUse");

    let path = format!("/v2.0/subnets/{subnet_id}");
    let update = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"subnet": {"gateway_ip": null, "name": "t"}}),
        )
        .await;
    assert_eq!(update.status, StatusCode::OK, "{}", update.body);
    assert!(update.body["subnet"]["gateway_ip"].is_null());
    let tags = cloud
        .put(
            &format!("/v2.0/networks/{network_id}/tags"),
            &cloud.demo,
            json!({"tags": ["a"]}),
        )
        .await;
    assert_eq!(tags.status, StatusCode::OK, "{}", tags.body);

    let listed = cloud
        .get("/v2.0/networks?name=xmodulo&fields=subnets", &cloud.demo)
        .await;
    assert_eq!(listed.body["networks"], json!([{"subnets": [subnet_id]}]));
    let deleted = cloud
        .delete(&format!("/v2.0/networks/{network_id}"), &cloud.demo)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let gone = cloud.get(&path, &cloud.demo).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}
