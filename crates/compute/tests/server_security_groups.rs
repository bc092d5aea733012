//! Server fixes in-process: `addSecurityGroup` / `removeSecurityGroup` on
//! the server's ports and the groups the view shows, canonical access
//! addresses, and the console output tail counted as Nova counts it.

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
        .fakes
        .networks
        .security_groups
        .lock()
        .unwrap()
        .insert("web-id".to_owned(), "web".to_owned());
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

async fn create_active(cloud: &Cloud, server: Value) -> String {
    let reply = cloud
        .post(
            "/v2.1/servers",
            &cloud.demo,
            "2.85",
            json!({"server": server}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let id = reply.body["server"]["id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        let shown = cloud
            .get(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.85")
            .await;
        if shown.body["server"]["status"] == "ACTIVE"
            && shown.body["server"]["OS-EXT-STS:task_state"].is_null()
        {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server {id} never became ACTIVE");
}

fn server(name: &str) -> Value {
    json!({"name": name, "imageRef": IMAGE, "flavorRef": "42", "networks": [{"uuid": NETWORK}]})
}

async fn action(cloud: &Cloud, id: &str, body: Value) -> Reply {
    cloud
        .post(
            &format!("/v2.1/servers/{id}/action"),
            &cloud.demo,
            "2.85",
            body,
        )
        .await
}

async fn shown_groups(cloud: &Cloud, id: &str) -> Option<Value> {
    let shown = cloud
        .get(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.85")
        .await;
    shown.body["server"].get("security_groups").cloned()
}

#[tokio::test]
async fn security_group_actions_change_ports() {
    let cloud = cloud().await;
    let id = create_active(&cloud, server("vm")).await;
    assert_eq!(
        shown_groups(&cloud, &id).await,
        Some(json!([{"name": "default"}]))
    );

    let added = action(&cloud, &id, json!({"addSecurityGroup": {"name": "web"}})).await;
    assert_eq!(added.status, StatusCode::ACCEPTED, "{}", added.body);
    assert_eq!(
        shown_groups(&cloud, &id).await,
        Some(json!([{"name": "default"}, {"name": "web"}]))
    );
    let ports = cloud.fakes.networks.ports.lock().unwrap().clone();
    let port = ports
        .iter()
        .find(|p| p.device_id == id)
        .expect("server port");
    assert_eq!(port.security_group_ids, ["default", "web-id"]);
    let again = action(&cloud, &id, json!({"addSecurityGroup": {"name": "web"}})).await;
    assert_eq!(
        again.status,
        StatusCode::ACCEPTED,
        "adding a group twice changes nothing"
    );

    let removed = action(&cloud, &id, json!({"removeSecurityGroup": {"name": "web"}})).await;
    assert_eq!(removed.status, StatusCode::ACCEPTED, "{}", removed.body);
    let not_on = action(&cloud, &id, json!({"removeSecurityGroup": {"name": "web"}})).await;
    assert_eq!(not_on.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        message(&not_on),
        format!("Security group web is not associated with the instance {id}")
    );

    // Without groups the view has no security_groups key, as in Nova.
    let last = action(
        &cloud,
        &id,
        json!({"removeSecurityGroup": {"name": "default"}}),
    )
    .await;
    assert_eq!(last.status, StatusCode::ACCEPTED);
    assert_eq!(shown_groups(&cloud, &id).await, None);
}

#[tokio::test]
async fn security_group_action_errors() {
    let cloud = cloud().await;
    let id = create_active(&cloud, server("vm")).await;
    let unknown = action(&cloud, &id, json!({"addSecurityGroup": {"name": "nosuch"}})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(message(&unknown), "Security group nosuch not found.");
    let empty = action(&cloud, &id, json!({"addSecurityGroup": {"name": ""}})).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(message(&empty), "Security group name cannot be empty");
    let missing = action(&cloud, &id, json!({"removeSecurityGroup": {}})).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);

    let portless = create_active(
        &cloud,
        json!({"name": "bare", "imageRef": IMAGE, "flavorRef": "42", "networks": "none"}),
    )
    .await;
    let no_ports = action(
        &cloud,
        &portless,
        json!({"addSecurityGroup": {"name": "web"}}),
    )
    .await;
    assert_eq!(no_ports.status, StatusCode::NOT_FOUND, "{}", no_ports.body);

    let other = cloud
        .post(
            &format!("/v2.1/servers/{id}/action"),
            &cloud.alt,
            "2.85",
            json!({"addSecurityGroup": {"name": "web"}}),
        )
        .await;
    assert_eq!(
        other.status,
        StatusCode::NOT_FOUND,
        "another project's server"
    );
}

#[tokio::test]
async fn access_addresses_are_canonical() {
    let cloud = cloud().await;
    let mut body = server("vm");
    body["accessIPv4"] = json!("1.1.1.1");
    body["accessIPv6"] = json!("0000:0000:0000:0000:0000:babe:220.12.22.2");
    let id = create_active(&cloud, body).await;
    let shown = cloud
        .get(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.85")
        .await;
    assert_eq!(shown.body["server"]["accessIPv6"], "::babe:dc0c:1602");
    assert_eq!(shown.body["server"]["accessIPv4"], "1.1.1.1");

    let update = json!({"server": {"accessIPv6": "2001:DB8:0:0::1"}});
    let updated = cloud
        .put(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.85", update)
        .await;
    assert_eq!(updated.body["server"]["accessIPv6"], "2001:db8::1");

    for (field, value) in [
        ("accessIPv4", "1.1.1.256"),
        ("accessIPv6", "2001:db8::g"),
        ("accessIPv4", "::1"),
    ] {
        let update = json!({"server": {field: value}});
        let reply = cloud
            .put(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.85", update)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{field}={value}");
        let mut body = server("bad");
        body[field] = json!(value);
        let reply = cloud
            .post(
                "/v2.1/servers",
                &cloud.demo,
                "2.85",
                json!({"server": body}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "create {field}={value}"
        );
    }
}

#[tokio::test]
async fn console_length_counts_like_nova() {
    let cloud = cloud().await;
    let id = create_active(&cloud, server("vm")).await;
    for length in [1usize, 2, 3] {
        let reply = action(
            &cloud,
            &id,
            json!({"os-getConsoleOutput": {"length": length}}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let output = reply.body["output"].as_str().unwrap();
        assert_eq!(
            output.split('\n').count(),
            length,
            "length {length}: {output:?}"
        );
    }
    let zero = action(&cloud, &id, json!({"os-getConsoleOutput": {"length": 0}})).await;
    assert_eq!(zero.body["output"], "");
}

#[tokio::test]
async fn server_security_group_list() {
    let cloud = cloud().await;
    let id = create_active(&cloud, server("vm")).await;
    let list = cloud
        .get(
            &format!("/v2.1/servers/{id}/os-security-groups"),
            &cloud.demo,
            "2.1",
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let groups = list.body["security_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["name"], "default");
    let rule = &groups[0]["rules"][0];
    assert_eq!(rule["parent_group_id"], "default");
    assert_eq!(rule["group"]["name"], "default");
    assert_eq!(rule["ip_range"], json!({}));
    assert_eq!(rule["ip_protocol"], Value::Null);

    action(
        &cloud,
        &id,
        json!({"removeSecurityGroup": {"name": "default"}}),
    )
    .await;
    let empty = cloud
        .get(
            &format!("/v2.1/servers/{id}/os-security-groups"),
            &cloud.demo,
            "2.1",
        )
        .await;
    assert_eq!(empty.body["security_groups"], json!([]));
    let other = cloud
        .get(
            &format!("/v2.1/servers/{id}/os-security-groups"),
            &cloud.alt,
            "2.1",
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}
