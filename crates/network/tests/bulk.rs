//! Bulk create of networks, subnets and ports: a list under the plural
//! key, all created or none.

mod common;

use axum::http::StatusCode;
use common::Cloud;
use serde_json::{json, Value};

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn bulk_networks_subnets_and_ports() {
    let cloud = Cloud::start().await;
    let reply = cloud
        .post(
            "/v2.0/networks",
            &cloud.demo,
            json!({"networks": [{"name": "bulk-a"}, {"name": "bulk-b"}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let networks = ids(&reply.body["networks"]);
    assert_eq!(networks.len(), 2);
    assert_eq!(reply.body["networks"][1]["name"], "bulk-b");

    let reply = cloud
        .post(
            "/v2.0/subnets",
            &cloud.demo,
            json!({"subnets": [
                {"network_id": networks[0], "cidr": "10.10.0.0/24", "ip_version": 4},
                {"network_id": networks[1], "cidr": "10.11.0.0/24", "ip_version": 4},
            ]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["subnets"][1]["cidr"], "10.11.0.0/24");

    let reply = cloud
        .post(
            "/v2.0/ports",
            &cloud.demo,
            json!({"ports": [{"network_id": networks[0]}, {"network_id": networks[1]}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let ports = ids(&reply.body["ports"]);
    assert_eq!(ports.len(), 2);
    assert_eq!(reply.body["ports"][1]["network_id"], networks[1].as_str());
    assert_eq!(
        reply.body["ports"][0]["fixed_ips"][0]["ip_address"]
            .as_str()
            .map(|a| a.starts_with("10.10.0.")),
        Some(true),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn failed_bulk_item_removes_created_ones() {
    let cloud = Cloud::start().await;
    let network = cloud.create_network(&cloud.demo, "bulk").await;
    let reply = cloud
        .create_subnet(
            &cloud.demo,
            json!({"network_id": network["id"], "cidr": "10.12.0.0/24", "ip_version": 4}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);

    let reply = cloud
        .post(
            "/v2.0/ports",
            &cloud.demo,
            json!({"ports": [{"network_id": network["id"], "name": "first"},
                             {"network_id": "6e1b9a59-0000-4000-8000-00000000dead"}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    assert_eq!(reply.error_type(), "NetworkNotFound", "{}", reply.body);
    let listed = cloud.get("/v2.0/ports?name=first", &cloud.demo).await;
    assert_eq!(
        listed.body["ports"],
        json!([]),
        "the first port was left behind"
    );

    let reply = cloud
        .post(
            "/v2.0/networks",
            &cloud.demo,
            json!({"networks": [{"name": "kept-out"}, {"name": "bad", "mtu": "x"}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let listed = cloud.get("/v2.0/networks?name=kept-out", &cloud.demo).await;
    assert_eq!(listed.body["networks"], json!([]));
}

#[tokio::test]
async fn malformed_bulk_bodies_are_bad_requests() {
    let cloud = Cloud::start().await;
    for body in [json!({"networks": []}), json!({"networks": {"name": "x"}})] {
        let reply = cloud
            .post("/v2.0/networks", &cloud.demo, body.clone())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
    }
}
