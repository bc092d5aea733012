//! The in-process operations other services call (device ports, security
//! group lookup, networks with subnets), DHCP ports, and the change
//! notification network agents wait on.

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use common::Cloud;
use oxstack_network::agents::AgentConfig;
use oxstack_network::dhcp::DHCP_OWNER;
use oxstack_network::inproc::DevicePort;
use oxstack_network::model::{NetworkId, PortId};
use serde_json::json;

/// Creates a network with the subnet 10.0.0.0/24 as the demo user and
/// returns the ids of both.
async fn demo_network(cloud: &Cloud, name: &str) -> (NetworkId, String) {
    let network = cloud.create_network(&cloud.demo, name).await;
    let network_id = network["id"].as_str().unwrap().to_owned();
    let subnet = json!({"cidr": "10.0.0.0/24", "network_id": network_id, "ip_version": 4});
    let reply = cloud.create_subnet(&cloud.demo, subnet).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let subnet_id = reply.body["subnet"]["id"].as_str().unwrap().to_owned();
    (NetworkId::new(network_id), subnet_id)
}

fn server_port(cloud: &Cloud, network_id: &NetworkId, server: &str) -> DevicePort {
    DevicePort {
        project_id: cloud.demo_project.clone(),
        network_id: network_id.to_string(),
        device_id: server.to_owned(),
        device_owner: "compute:nova".to_owned(),
        ..DevicePort::default()
    }
}

fn vxlan_agent() -> AgentConfig {
    AgentConfig {
        tunneling_ip: Some("192.0.2.11".into()),
        tunnel_types: vec!["vxlan".into()],
        bridge_mappings: BTreeMap::new(),
        ..AgentConfig::default()
    }
}

#[tokio::test]
async fn device_port_gets_address_mac_and_default_group() {
    let cloud = Cloud::start().await;
    let (network_id, subnet_id) = demo_network(&cloud, "net1").await;

    let port = cloud
        .service
        .create_device_port(&server_port(&cloud, &network_id, "server-1"))
        .await
        .unwrap();
    assert!(
        port.mac_address.starts_with("fa:16:3e:"),
        "{}",
        port.mac_address
    );
    assert_eq!(port.project_id.as_str(), cloud.demo_project);
    assert_eq!(port.device_id, "server-1");
    assert_eq!(port.device_owner, "compute:nova");
    assert_eq!(port.fixed_ips.len(), 1);
    assert_eq!(port.fixed_ips[0].subnet_id.as_str(), subnet_id);
    assert_eq!(port.fixed_ips[0].ip_address.to_string(), "10.0.0.2");

    let groups = cloud
        .service
        .resolve_security_groups(&cloud.demo_project, &["default".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        port.security_groups, groups,
        "the port gets the default group"
    );

    // The demo user sees the port through the API, as with any other port.
    let reply = cloud
        .get(&format!("/v2.0/ports/{}", port.id), &cloud.demo)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["port"]["device_id"], "server-1");
}

#[tokio::test]
async fn device_port_with_fixed_ip_and_bad_input() {
    let cloud = Cloud::start().await;
    let (network_id, _) = demo_network(&cloud, "net1").await;

    let mut request = server_port(&cloud, &network_id, "server-1");
    request.fixed_ip = Some("10.0.0.50".to_owned());
    let port = cloud.service.create_device_port(&request).await.unwrap();
    assert_eq!(port.fixed_ips[0].ip_address.to_string(), "10.0.0.50");

    let taken = cloud
        .service
        .create_device_port(&request)
        .await
        .unwrap_err();
    assert_eq!(
        taken.kind.status(),
        StatusCode::CONFLICT,
        "{}",
        taken.message
    );
    assert_eq!(taken.error_type, Some("IpAddressAlreadyAllocated"));

    request.fixed_ip = Some("192.168.9.9".to_owned());
    let outside = cloud
        .service
        .create_device_port(&request)
        .await
        .unwrap_err();
    assert_eq!(
        outside.kind.status(),
        StatusCode::BAD_REQUEST,
        "{}",
        outside.message
    );

    request.fixed_ip = None;
    request.security_groups = vec!["no-such-group".to_owned()];
    let missing = cloud
        .service
        .create_device_port(&request)
        .await
        .unwrap_err();
    assert_eq!(
        missing.kind.status(),
        StatusCode::NOT_FOUND,
        "{}",
        missing.message
    );

    request.security_groups = Vec::new();
    request.network_id = "6e1b9a59-0000-4000-8000-00000000dead".to_owned();
    let gone = cloud
        .service
        .create_device_port(&request)
        .await
        .unwrap_err();
    assert_eq!(gone.error_type, Some("NetworkNotFound"));
}

#[tokio::test]
async fn claim_release_and_delete_device_port() {
    let cloud = Cloud::start().await;
    let (network_id, _) = demo_network(&cloud, "net1").await;
    let reply = cloud
        .post(
            "/v2.0/ports",
            &cloud.demo,
            json!({"port": {"network_id": network_id, "name": "mine"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let port_id = PortId::new(reply.body["port"]["id"].as_str().unwrap());
    let address = reply.body["port"]["fixed_ips"][0]["ip_address"].clone();

    let claimed = cloud
        .service
        .claim_port(&port_id, "server-1", "compute:nova")
        .await
        .unwrap();
    assert_eq!(claimed.device_id, "server-1");
    let again = cloud
        .service
        .claim_port(&port_id, "server-1", "compute:nova")
        .await;
    assert!(again.is_ok(), "claiming for the same device again succeeds");
    let other = cloud
        .service
        .claim_port(&port_id, "server-2", "compute:nova")
        .await
        .unwrap_err();
    assert_eq!(
        other.kind.status(),
        StatusCode::CONFLICT,
        "{}",
        other.message
    );
    assert_eq!(other.error_type, Some("PortInUse"));

    let listed = cloud.service.ports_of_device("server-1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, port_id);

    let released = cloud.service.release_port(&port_id).await.unwrap();
    assert_eq!(released.device_id, "");
    assert_eq!(released.binding.host_id, "");
    assert!(cloud
        .service
        .ports_of_device("server-1")
        .await
        .unwrap()
        .is_empty());

    assert!(cloud.service.delete_device_port(&port_id).await.unwrap());
    assert!(
        !cloud.service.delete_device_port(&port_id).await.unwrap(),
        "a port already gone is no error"
    );

    // The address went back to the pool with the port.
    let reuse = cloud
        .post(
            "/v2.0/ports",
            &cloud.demo,
            json!({"port": {"network_id": network_id, "fixed_ips": [{"ip_address": address}]}}),
        )
        .await;
    assert_eq!(reuse.status, StatusCode::CREATED, "{}", reuse.body);
}

#[tokio::test]
async fn security_groups_resolve_by_name_and_id() {
    let cloud = Cloud::start().await;
    let service = &cloud.service;
    let project = cloud.demo_project.clone();

    // The default group is created on first use.
    let defaults = service
        .resolve_security_groups(&project, &["default".to_owned()])
        .await
        .unwrap();
    assert_eq!(defaults.len(), 1);

    let reply = cloud
        .post(
            "/v2.0/security-groups",
            &cloud.demo,
            json!({"security_group": {"name": "web"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let web = reply.body["security_group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resolved = service
        .resolve_security_groups(
            &project,
            &[web.clone(), "default".to_owned(), "web".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(resolved.len(), 2, "duplicates collapse: {resolved:?}");
    assert_eq!(resolved[0].as_str(), web);
    assert_eq!(resolved[1], defaults[0]);

    let unknown = service
        .resolve_security_groups(&project, &["db".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(unknown.kind.status(), StatusCode::NOT_FOUND);
    assert!(unknown.message.contains("db"), "{}", unknown.message);

    // Another project's group is not found by its id.
    let foreign = service
        .resolve_security_groups(&cloud.alt_project, &[web])
        .await
        .unwrap_err();
    assert_eq!(foreign.kind.status(), StatusCode::NOT_FOUND);

    let reply = cloud
        .post(
            "/v2.0/security-groups",
            &cloud.demo,
            json!({"security_group": {"name": "web"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let ambiguous = service
        .resolve_security_groups(&project, &["web".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(
        ambiguous.kind.status(),
        StatusCode::CONFLICT,
        "{}",
        ambiguous.message
    );
}

#[tokio::test]
async fn network_with_subnets_and_visibility() {
    let cloud = Cloud::start().await;
    let (network_id, subnet_id) = demo_network(&cloud, "net1").await;
    let (network, subnets) = cloud
        .service
        .network_with_subnets(&network_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(network.name, "net1");
    assert_eq!(subnets.len(), 1);
    assert_eq!(subnets[0].id.as_str(), subnet_id);
    let missing = NetworkId::new("no-such-network");
    assert!(cloud
        .service
        .network_with_subnets(&missing)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn no_dhcp_port_without_agent() {
    let cloud = Cloud::start().await;
    let (network_id, _) = demo_network(&cloud, "net1").await;
    assert!(cloud
        .service
        .dhcp_port(&network_id)
        .await
        .unwrap()
        .is_none());
    let reply = cloud
        .get(
            &format!("/v2.0/ports?network_id={network_id}"),
            &cloud.admin,
        )
        .await;
    assert_eq!(reply.body["ports"], json!([]));
}

#[tokio::test]
async fn dhcp_port_follows_dhcp_subnets() {
    let cloud = Cloud::start().await;
    cloud
        .service
        .report_agent("node1", vxlan_agent())
        .await
        .unwrap();
    let (network_id, subnet_id) = demo_network(&cloud, "net1").await;

    let port = cloud
        .service
        .dhcp_port(&network_id)
        .await
        .unwrap()
        .expect("a DHCP port");
    assert_eq!(port.device_owner, DHCP_OWNER);
    assert!(port.device_id.starts_with("dhcp"), "{}", port.device_id);
    assert!(
        port.device_id.ends_with(&format!("-{network_id}")),
        "{}",
        port.device_id
    );
    assert_eq!(port.project_id.as_str(), cloud.demo_project);
    assert_eq!(port.binding.host_id, "node1");
    assert_eq!(port.binding.vif_type, "bridge");
    assert!(port.security_groups.is_empty());
    assert_eq!(port.fixed_ips.len(), 1);
    assert_eq!(port.fixed_ips[0].subnet_id.as_str(), subnet_id);
    assert_eq!(
        port.fixed_ips[0].ip_address.to_string(),
        "10.0.0.2",
        "the first pool address"
    );

    // A second DHCP subnet gives the same port an address there; one
    // without DHCP does not.
    let no_dhcp = json!({"cidr": "10.1.0.0/24", "network_id": network_id, "ip_version": 4,
                         "enable_dhcp": false});
    let reply = cloud.create_subnet(&cloud.demo, no_dhcp).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let dhcp = json!({"cidr": "10.2.0.0/24", "network_id": network_id, "ip_version": 4});
    let reply = cloud.create_subnet(&cloud.demo, dhcp).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let updated = cloud.service.dhcp_port(&network_id).await.unwrap().unwrap();
    assert_eq!(updated.id, port.id, "one DHCP port per network");
    let addresses: Vec<String> = updated
        .fixed_ips
        .iter()
        .map(|f| f.ip_address.to_string())
        .collect();
    assert_eq!(addresses, ["10.0.0.2", "10.2.0.2"]);

    // A server port takes a free address of one of the IPv4 subnets (which
    // one depends on their order), and the network is deleted with its DHCP
    // port.
    let server = cloud
        .service
        .create_device_port(&server_port(&cloud, &network_id, "server-1"))
        .await
        .unwrap();
    let address = server.fixed_ips[0].ip_address.to_string();
    assert!(
        ["10.0.0.3", "10.1.0.2", "10.2.0.3"].contains(&address.as_str()),
        "{address}"
    );
    assert!(cloud.service.delete_device_port(&server.id).await.unwrap());
    let reply = cloud
        .delete(&format!("/v2.0/networks/{network_id}"), &cloud.demo)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert!(cloud.service.get_port(&port.id).await.unwrap().is_none());
}

#[tokio::test]
async fn agent_start_schedules_existing_networks() {
    let cloud = Cloud::start().await;
    let (network_id, _) = demo_network(&cloud, "net1").await;
    assert_eq!(
        cloud.service.schedule_dhcp().await.unwrap(),
        0,
        "no agent, no DHCP port"
    );
    cloud
        .service
        .report_agent("node1", vxlan_agent())
        .await
        .unwrap();
    assert_eq!(cloud.service.schedule_dhcp().await.unwrap(), 1);
    assert_eq!(
        cloud.service.schedule_dhcp().await.unwrap(),
        1,
        "scheduling twice adds nothing"
    );
    let reply = cloud
        .get(
            &format!("/v2.0/ports?network_id={network_id}"),
            &cloud.admin,
        )
        .await;
    assert_eq!(
        reply.body["ports"].as_array().unwrap().len(),
        1,
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn agent_start_binds_router_ports() {
    let cloud = Cloud::start().await;
    let (_, subnet_id) = demo_network(&cloud, "net1").await;
    let reply = cloud
        .post(
            "/v2.0/routers",
            &cloud.demo,
            json!({"router": {"name": "r1"}}),
        )
        .await;
    let router_id = reply.body["router"]["id"].as_str().unwrap().to_owned();
    let reply = cloud
        .put(
            &format!("/v2.0/routers/{router_id}/add_router_interface"),
            &cloud.demo,
            json!({"subnet_id": subnet_id}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let port_path = format!("/v2.0/ports/{}", reply.body["port_id"].as_str().unwrap());
    let port = cloud.get(&port_path, &cloud.admin).await.body["port"].clone();
    assert_eq!(
        port["status"], "DOWN",
        "no agent hosts the router yet: {port}"
    );
    assert_eq!(port["binding:host_id"], "");

    cloud
        .service
        .report_agent("node1", vxlan_agent())
        .await
        .unwrap();
    cloud.service.schedule_dhcp().await.unwrap();
    let port = cloud.get(&port_path, &cloud.admin).await.body["port"].clone();
    assert_eq!(port["binding:host_id"], "node1", "{port}");
    assert_eq!(port["status"], "ACTIVE");
}

#[tokio::test]
async fn writes_notify_changes() {
    let cloud = Cloud::start().await;
    let mut changes = cloud.service.changes();
    changes.borrow_and_update();

    let reply = cloud.get("/v2.0/networks", &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!changes.has_changed().unwrap(), "a read is no change");

    let (network_id, _) = demo_network(&cloud, "net1").await;
    assert!(
        changes.has_changed().unwrap(),
        "creating a network is a change"
    );
    changes.borrow_and_update();

    let failed = cloud
        .post(
            "/v2.0/subnets",
            &cloud.demo,
            json!({"subnet": {"network_id": network_id}}),
        )
        .await;
    assert_eq!(failed.status, StatusCode::BAD_REQUEST);
    assert!(
        !changes.has_changed().unwrap(),
        "a rejected request is no change"
    );

    cloud
        .service
        .create_device_port(&server_port(&cloud, &network_id, "server-1"))
        .await
        .unwrap();
    assert!(
        changes.has_changed().unwrap(),
        "an in-process port is a change"
    );
}
