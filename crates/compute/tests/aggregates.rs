//! Host aggregates in-process: the API and its errors, and the
//! `availability_zone` metadata moving the host into a zone that
//! `os-availability-zone`, `os-services` and server create then use.

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

fn message(reply: &Reply) -> String {
    reply
        .body
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|fault| fault["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn create_aggregate(cloud: &Cloud, body: Value) -> Reply {
    cloud
        .post(
            "/v2.1/os-aggregates",
            &cloud.admin,
            "2.41",
            json!({"aggregate": body}),
        )
        .await
}

async fn aggregate_action(cloud: &Cloud, id: i64, body: Value) -> Reply {
    cloud
        .post(
            &format!("/v2.1/os-aggregates/{id}/action"),
            &cloud.admin,
            "2.41",
            body,
        )
        .await
}

#[tokio::test]
async fn aggregate_crud_and_views() {
    let cloud = cloud().await;
    let created = create_aggregate(&cloud, json!({"name": "rack1"})).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let aggregate = &created.body["aggregate"];
    assert!(
        aggregate.get("hosts").is_none(),
        "create has no hosts: {aggregate}"
    );
    assert_eq!(aggregate["availability_zone"], Value::Null);
    assert_eq!(aggregate["deleted"], false);
    assert!(aggregate["uuid"].is_string());
    let id = aggregate["id"].as_i64().expect("integer id");

    let old = cloud
        .get(&format!("/v2.1/os-aggregates/{id}"), &cloud.admin, "2.40")
        .await;
    assert!(old.body["aggregate"].get("uuid").is_none());
    assert_eq!(old.body["aggregate"]["hosts"], json!([]));

    let duplicate = create_aggregate(&cloud, json!({"name": "rack1"})).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(message(&duplicate), "Aggregate rack1 already exists.");
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(256)}),
        json!({"name": "a", "extra": 1}),
        json!({}),
    ] {
        assert_eq!(
            create_aggregate(&cloud, bad.clone()).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }

    let updated = cloud
        .put(
            &format!("/v2.1/os-aggregates/{id}"),
            &cloud.admin,
            "2.41",
            json!({"aggregate": {"name": "rack2"}}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["aggregate"]["name"], "rack2");
    assert!(updated.body["aggregate"]["updated_at"].is_string());

    let list = cloud.get("/v2.1/os-aggregates", &cloud.admin, "2.41").await;
    assert_eq!(list.body["aggregates"].as_array().unwrap().len(), 1);

    let user = cloud.get("/v2.1/os-aggregates", &cloud.demo, "2.41").await;
    assert_eq!(user.status, StatusCode::FORBIDDEN);
    let missing = cloud
        .get("/v2.1/os-aggregates/999", &cloud.admin, "2.41")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let deleted = cloud
        .delete(&format!("/v2.1/os-aggregates/{id}"), &cloud.admin, "2.41")
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    let gone = cloud
        .get(&format!("/v2.1/os-aggregates/{id}"), &cloud.admin, "2.41")
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn aggregate_hosts_and_metadata() {
    let cloud = cloud().await;
    let created = create_aggregate(&cloud, json!({"name": "rack"})).await;
    let id = created.body["aggregate"]["id"].as_i64().unwrap();

    let added = aggregate_action(&cloud, id, json!({"add_host": {"host": "node1"}})).await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(added.body["aggregate"]["hosts"], json!(["node1"]));
    let again = aggregate_action(&cloud, id, json!({"add_host": {"host": "node1"}})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let unknown = aggregate_action(&cloud, id, json!({"add_host": {"host": "nosuchhost"}})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        message(&unknown),
        "Compute host nosuchhost could not be found."
    );

    let not_empty = cloud
        .delete(&format!("/v2.1/os-aggregates/{id}"), &cloud.admin, "2.41")
        .await;
    assert_eq!(not_empty.status, StatusCode::BAD_REQUEST);

    let metadata = aggregate_action(
        &cloud,
        id,
        json!({"set_metadata": {"metadata": {"ssd": "true", "gone": null}}}),
    )
    .await;
    assert_eq!(metadata.status, StatusCode::OK, "{}", metadata.body);
    assert_eq!(
        metadata.body["aggregate"]["metadata"],
        json!({"ssd": "true"})
    );
    let cleared = aggregate_action(
        &cloud,
        id,
        json!({"set_metadata": {"metadata": {"ssd": null}}}),
    )
    .await;
    assert_eq!(cleared.body["aggregate"]["metadata"], json!({}));

    let removed = aggregate_action(&cloud, id, json!({"remove_host": {"host": "node1"}})).await;
    assert_eq!(removed.status, StatusCode::OK);
    assert_eq!(removed.body["aggregate"]["hosts"], json!([]));
    let absent = aggregate_action(&cloud, id, json!({"remove_host": {"host": "node1"}})).await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn aggregate_zone_moves_host() {
    let cloud = cloud().await;
    let created = create_aggregate(
        &cloud,
        json!({"name": "edge", "availability_zone": "az-edge"}),
    )
    .await;
    assert_eq!(created.body["aggregate"]["availability_zone"], "az-edge");
    let id = created.body["aggregate"]["id"].as_i64().unwrap();

    // A zone without hosts is not available to servers yet.
    let body = json!({"server": {"name": "vm", "imageRef": IMAGE, "flavorRef": "42",
        "networks": [{"uuid": NETWORK}], "availability_zone": "az-edge"}});
    let early = cloud
        .post("/v2.1/servers", &cloud.demo, "2.85", body.clone())
        .await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST, "{}", early.body);

    aggregate_action(&cloud, id, json!({"add_host": {"host": "node1"}})).await;
    let zones = cloud
        .get("/v2.1/os-availability-zone", &cloud.demo, "2.1")
        .await;
    let names: Vec<&str> = zones.body["availabilityZoneInfo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|zone| zone["zoneName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["az-edge"], "{}", zones.body);
    let detail = cloud
        .get("/v2.1/os-availability-zone/detail", &cloud.admin, "2.1")
        .await;
    let edge = detail.body["availabilityZoneInfo"]
        .as_array()
        .unwrap()
        .iter()
        .find(|zone| zone["zoneName"] == "az-edge")
        .cloned()
        .expect("az-edge in detail");
    assert!(edge["hosts"]["node1"]["nova-compute"].is_object(), "{edge}");
    let services = cloud
        .get("/v2.1/os-services?binary=nova-compute", &cloud.admin, "2.1")
        .await;
    assert_eq!(
        services.body["services"][0]["zone"], "az-edge",
        "{}",
        services.body
    );

    let created = cloud.post("/v2.1/servers", &cloud.demo, "2.85", body).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    let server_id = created.body["server"]["id"].as_str().unwrap().to_owned();
    let mut zone = Value::Null;
    for _ in 0..200 {
        let shown = cloud
            .get(&format!("/v2.1/servers/{server_id}"), &cloud.admin, "2.85")
            .await;
        if shown.body["server"]["status"] == "ACTIVE" {
            zone = shown.body["server"]["OS-EXT-AZ:availability_zone"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(zone, "az-edge");

    // The host cannot join a second aggregate with another zone.
    let other = create_aggregate(
        &cloud,
        json!({"name": "core", "availability_zone": "az-core"}),
    )
    .await;
    let other_id = other.body["aggregate"]["id"].as_i64().unwrap();
    let conflict = aggregate_action(&cloud, other_id, json!({"add_host": {"host": "node1"}})).await;
    assert_eq!(
        conflict.status,
        StatusCode::BAD_REQUEST,
        "{}",
        conflict.body
    );
}
