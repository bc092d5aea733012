//! Network agents and port binding: the agent reports of each host, the
//! agents API, and binding a port to a host, through the Rust API and
//! through `binding:host_id`.

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use common::Cloud;
use oxstack_network::agents::AgentConfig;
use oxstack_network::binding::BindingFailure;
use oxstack_network::model::PortId;
use serde_json::{json, Value};

fn vxlan_agent() -> AgentConfig {
    AgentConfig {
        tunneling_ip: Some("192.0.2.11".into()),
        tunnel_types: vec!["vxlan".into()],
        ..AgentConfig::default()
    }
}

fn flat_agent(physical: &str) -> AgentConfig {
    AgentConfig {
        bridge_mappings: BTreeMap::from([(physical.to_owned(), "br-ex".to_owned())]),
        ..AgentConfig::default()
    }
}

/// Creates a port on a new network; `provider` contains the admin's
/// provider attributes, or is empty for a tenant VXLAN network.
async fn port_on(cloud: &Cloud, name: &str, provider: Value) -> PortId {
    let mut network = json!({"name": name});
    if let (Value::Object(network), Value::Object(provider)) = (&mut network, provider) {
        network.extend(provider);
    }
    let reply = cloud
        .post(
            "/v2.0/networks",
            &cloud.admin,
            json!({ "network": network }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = cloud
        .post(
            "/v2.0/ports",
            &cloud.admin,
            json!({"port": {"network_id": reply.body["network"]["id"]}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    PortId::new(reply.body["port"]["id"].as_str().unwrap())
}

async fn flat_port(cloud: &Cloud) -> PortId {
    port_on(
        cloud,
        "public",
        json!({"provider:network_type": "flat", "provider:physical_network": "physnet1"}),
    )
    .await
}

async fn shown_port(cloud: &Cloud, id: &PortId) -> Value {
    let reply = cloud.get(&format!("/v2.0/ports/{id}"), &cloud.admin).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["port"].clone()
}

fn unbindable_reason(result: Result<oxstack_network::model::Binding, BindingFailure>) -> String {
    match result {
        Err(error @ BindingFailure::Unbindable { .. }) => error.to_string(),
        other => panic!("expected an unbindable port, got {other:?}"),
    }
}

#[tokio::test]
async fn host_without_agent_fails() {
    let cloud = Cloud::start().await;
    let port = flat_port(&cloud).await;
    let message = unbindable_reason(cloud.service.bind_port(&port, "node1").await);
    assert!(
        message.starts_with(&format!("Binding failed for port {port} on host node1: ")),
        "{message}"
    );
    assert!(
        message.contains("no network agent has reported from node1"),
        "{message}"
    );
    let shown = shown_port(&cloud, &port).await;
    assert_eq!(shown["binding:vif_type"], "binding_failed");
    assert_eq!(shown["binding:host_id"], "node1");
    assert_eq!(shown["status"], "DOWN");
}

#[tokio::test]
async fn dead_agent_fails() {
    let cloud = Cloud::start().await;
    let port = flat_port(&cloud).await;
    let long_ago = chrono::Utc::now().timestamp() - 600;
    cloud
        .service
        .record_agent_report("node1", flat_agent("physnet1"), long_ago)
        .await
        .unwrap();
    let message = unbindable_reason(cloud.service.bind_port(&port, "node1").await);
    assert!(message.contains("last reported"), "{message}");
    assert!(message.contains("after 75 seconds"), "{message}");

    // A fresh heartbeat brings it back.
    cloud
        .service
        .report_agent("node1", flat_agent("physnet1"))
        .await
        .unwrap();
    let binding = cloud.service.bind_port(&port, "node1").await.unwrap();
    assert_eq!(binding.vif_type, "bridge");
}

#[tokio::test]
async fn missing_bridge_mapping_names_the_fix() {
    let cloud = Cloud::start().await;
    let port = flat_port(&cloud).await;
    cloud
        .service
        .report_agent("node1", flat_agent("physnet2"))
        .await
        .unwrap();
    let message = unbindable_reason(cloud.service.bind_port(&port, "node1").await);
    assert_eq!(
        message,
        format!(
            "Binding failed for port {port} on host node1: network public (flat, physical network \
             physnet1) needs a bridge mapping for physnet1, and the network agent on node1 has \
             none; add `physnet1:br-ex` to `bridge_mappings` in the `[netagent]` section of the \
             config and restart"
        )
    );
    // VLAN networks need the mapping too.
    let vlan = port_on(
        &cloud,
        "vlan10",
        json!({"provider:network_type": "vlan", "provider:physical_network": "physnet1",
               "provider:segmentation_id": 10}),
    )
    .await;
    let message = unbindable_reason(cloud.service.bind_port(&vlan, "node1").await);
    assert!(
        message.contains("(vlan, physical network physnet1)"),
        "{message}"
    );
}

#[tokio::test]
async fn vxlan_without_tunnel_ip_fails() {
    let cloud = Cloud::start().await;
    let port = port_on(&cloud, "private", json!({})).await;
    cloud
        .service
        .report_agent("node1", flat_agent("physnet1"))
        .await
        .unwrap();
    let message = unbindable_reason(cloud.service.bind_port(&port, "node1").await);
    assert!(
        message.contains("network private (vxlan, VNI 1)"),
        "{message}"
    );
    assert!(message.contains("tunneling_ip"), "{message}");
}

#[tokio::test]
async fn successful_binding_marks_port_active() {
    let cloud = Cloud::start().await;
    let port = port_on(&cloud, "private", json!({})).await;
    cloud
        .service
        .report_agent("node1", vxlan_agent())
        .await
        .unwrap();
    let binding = cloud.service.bind_port(&port, "node1").await.unwrap();
    assert_eq!(binding.host_id, "node1");
    assert_eq!(binding.vif_type, "bridge");
    assert_eq!(
        binding.vif_details,
        json!({"port_filter": true, "connectivity": "l2"})
    );
    let shown = shown_port(&cloud, &port).await;
    assert_eq!(shown["status"], "ACTIVE");
    assert_eq!(shown["binding:vif_type"], "bridge");
    assert_eq!(shown["binding:host_id"], "node1");

    let missing = cloud.service.bind_port(&PortId::new("nope"), "node1").await;
    assert!(
        matches!(missing, Err(BindingFailure::PortNotFound(_))),
        "{missing:?}"
    );
}

#[tokio::test]
async fn admin_put_of_host_binds() {
    let cloud = Cloud::start().await;
    let port = flat_port(&cloud).await;
    cloud
        .service
        .report_agent("node1", flat_agent("physnet1"))
        .await
        .unwrap();
    let path = format!("/v2.0/ports/{port}");

    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"port": {"binding:host_id": "node1"}}),
        )
        .await;
    assert!(reply.status.is_client_error(), "{}", reply.body);

    let reply = cloud
        .put(
            &path,
            &cloud.admin,
            json!({"port": {"binding:host_id": "node1"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["port"]["binding:vif_type"], "bridge");
    assert_eq!(reply.body["port"]["status"], "ACTIVE");

    // A host without an agent: the update succeeds and records the failure.
    let reply = cloud
        .put(
            &path,
            &cloud.admin,
            json!({"port": {"binding:host_id": "node2"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["port"]["binding:vif_type"], "binding_failed");
    assert_eq!(reply.body["port"]["status"], "DOWN");

    // An empty host unbinds.
    let reply = cloud
        .put(
            &path,
            &cloud.admin,
            json!({"port": {"binding:host_id": ""}}),
        )
        .await;
    assert_eq!(reply.body["port"]["binding:vif_type"], "unbound");

    // A port created with a host is bound at once.
    let reply = cloud
        .post(
            "/v2.0/ports",
            &cloud.admin,
            json!({"port": {"network_id": shown_port(&cloud, &port).await["network_id"],
                            "binding:host_id": "node1"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["port"]["binding:vif_type"], "bridge");
}

#[tokio::test]
async fn agents_api_lists_reports() {
    let cloud = Cloud::start().await;
    cloud
        .service
        .report_agent("node1", flat_agent("physnet1"))
        .await
        .unwrap();
    cloud
        .service
        .report_agent("node1", flat_agent("physnet1"))
        .await
        .unwrap();
    let long_ago = chrono::Utc::now().timestamp() - 600;
    cloud
        .service
        .record_agent_report("node2", vxlan_agent(), long_ago)
        .await
        .unwrap();

    // A member sees no agents, as Neutron filters the list by policy.
    let reply = cloud.get("/v2.0/agents", &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["agents"], json!([]), "{}", reply.body);
    let reply = cloud.get("/v2.0/agents", &cloud.admin).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let agents = reply.body["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2, "one row per host: {}", reply.body);
    let by_host = |host: &str| {
        agents
            .iter()
            .find(|a| a["host"] == host)
            .expect(host)
            .clone()
    };
    let node1 = by_host("node1");
    let node2 = by_host("node2");
    assert_eq!(node1["agent_type"], "Linux bridge agent");
    assert_eq!(node1["alive"], true);
    assert_eq!(node1["admin_state_up"], true);
    assert_eq!(
        node1["configurations"]["bridge_mappings"],
        json!({"physnet1": "br-ex"})
    );
    assert_eq!(node1["configurations"]["tunneling_ip"], Value::Null);
    assert_eq!(node2["alive"], false);
    assert_eq!(node2["configurations"]["tunneling_ip"], "192.0.2.11");
    assert_eq!(node2["configurations"]["tunnel_types"], json!(["vxlan"]));

    let reply = cloud.get("/v2.0/agents?host=node2", &cloud.admin).await;
    assert_eq!(reply.body["agents"].as_array().unwrap().len(), 1);
    let id = node1["id"].as_str().unwrap();
    let reply = cloud.get(&format!("/v2.0/agents/{id}"), &cloud.admin).await;
    assert_eq!(reply.body["agent"]["host"], "node1");
    let reply = cloud.get("/v2.0/agents/nope", &cloud.admin).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // `network agent set --disable`, then `network agent delete`.
    let path = format!("/v2.0/agents/{id}");
    let disable = json!({"agent": {"admin_state_up": false}});
    let reply = cloud.put(&path, &cloud.demo, disable.clone()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let reply = cloud.put(&path, &cloud.admin, disable).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["agent"]["admin_state_up"], false);
    let reply = cloud.delete(&path, &cloud.admin).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = cloud.get(&path, &cloud.admin).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = cloud.get("/v2.0/extensions/agent", &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::OK);
}
