//! Routers as the OpenStack CLI drives them: create, interfaces by subnet
//! and by port, the external gateway, and the in-use rules.

mod common;

use axum::http::StatusCode;
use common::{Cloud, Reply};
use serde_json::{json, Value};

fn assert_error(reply: &Reply, status: StatusCode, error_type: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.error_type(), error_type, "{}", reply.body);
}

/// Ids of the walkthrough's resources.
struct Topology {
    cloud: Cloud,
    subnet_id: String,
    public_id: String,
    public_subnet_id: String,
}

/// Network `xmodulo` with subnet 10.0.0.0/24 of project demo, and the
/// admin's external flat network `public` with subnet 172.24.4.0/24.
async fn topology() -> Topology {
    let cloud = Cloud::start().await;
    let network = cloud.create_network(&cloud.demo, "xmodulo").await;
    let subnet = json!({"cidr": "10.0.0.0/24", "ip_version": 4, "name": "xmodulo_subnet",
                        "network_id": network["id"]});
    let reply = cloud.create_subnet(&cloud.demo, subnet).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let subnet_id = reply.body["subnet"]["id"].as_str().unwrap().to_owned();

    // `network create --external --provider-network-type flat
    //  --provider-physical-network public public`.
    let reply = cloud
        .post(
            "/v2.0/networks",
            &cloud.admin,
            json!({"network": {"name": "public", "admin_state_up": true, "router:external": true,
                               "provider:network_type": "flat",
                               "provider:physical_network": "public"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let public_id = reply.body["network"]["id"].as_str().unwrap().to_owned();
    let subnet = json!({"cidr": "172.24.4.0/24", "ip_version": 4, "name": "public_subnet",
                        "network_id": public_id, "enable_dhcp": false});
    let reply = cloud.create_subnet(&cloud.admin, subnet).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let public_subnet_id = reply.body["subnet"]["id"].as_str().unwrap().to_owned();
    Topology {
        cloud,
        subnet_id,
        public_id,
        public_subnet_id,
    }
}

async fn create_router(cloud: &Cloud, token: &str, router: Value) -> Value {
    let reply = cloud
        .post("/v2.0/routers", token, json!({ "router": router }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["router"].clone()
}

#[tokio::test]
async fn cli_router_walkthrough() {
    let t = topology().await;
    let cloud = &t.cloud;
    // `router create r1`.
    let router = create_router(
        cloud,
        &cloud.demo,
        json!({"name": "r1", "admin_state_up": true}),
    )
    .await;
    let id = router["id"].as_str().unwrap().to_owned();
    assert_eq!(router["status"], "ACTIVE");
    assert_eq!(router["external_gateway_info"], Value::Null);
    assert_eq!(router["routes"], json!([]));
    assert_eq!(router["project_id"], cloud.demo_project.as_str());

    // Lookup by name: 404 by id, then the name filter.
    let reply = cloud.get("/v2.0/routers/r1", &cloud.demo).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "RouterNotFound");
    let reply = cloud.get("/v2.0/routers?name=r1", &cloud.demo).await;
    assert_eq!(reply.body["routers"].as_array().unwrap().len(), 1);
    let reply = cloud.get("/v2.0/routers", &cloud.alt).await;
    assert_eq!(
        reply.body["routers"],
        json!([]),
        "other projects' routers are hidden"
    );

    // `router add subnet r1 xmodulo_subnet`.
    let path = format!("/v2.0/routers/{id}/add_router_interface");
    let reply = cloud
        .put(&path, &cloud.demo, json!({"subnet_id": t.subnet_id}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["id"], id.as_str());
    assert_eq!(reply.body["subnet_id"], t.subnet_id.as_str());
    assert_eq!(reply.body["subnet_ids"], json!([t.subnet_id]));
    let port_id = reply.body["port_id"].as_str().unwrap().to_owned();
    let port = cloud
        .get(&format!("/v2.0/ports/{port_id}"), &cloud.demo)
        .await;
    assert_eq!(
        port.body["port"]["device_owner"],
        "network:router_interface"
    );
    assert_eq!(port.body["port"]["device_id"], id.as_str());
    assert_eq!(port.body["port"]["fixed_ips"][0]["ip_address"], "10.0.0.1");
    assert_eq!(port.body["port"]["security_groups"], json!([]));

    // `router show r1` lists interfaces through the ports.
    let reply = cloud
        .get(&format!("/v2.0/ports?device_id={id}"), &cloud.demo)
        .await;
    assert_eq!(reply.body["ports"].as_array().unwrap().len(), 1);

    // The same subnet again is a 400.
    let reply = cloud
        .put(&path, &cloud.demo, json!({"subnet_id": t.subnet_id}))
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "BadRequest");

    // `router set --external-gateway public r1` probes the extensions first.
    let reply = cloud
        .get("/v2.0/extensions/external-gateway-multihoming", &cloud.demo)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = cloud.get("/v2.0/extensions/router", &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = cloud.get("/v2.0/extensions/ext-gw-mode", &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = cloud
        .put(
            &format!("/v2.0/routers/{id}"),
            &cloud.demo,
            json!({"router": {"external_gateway_info": {"network_id": t.public_id}}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let info = &reply.body["router"]["external_gateway_info"];
    assert_eq!(info["network_id"], t.public_id.as_str());
    assert_eq!(info["enable_snat"], true);
    assert_eq!(
        info["external_fixed_ips"][0]["subnet_id"],
        t.public_subnet_id.as_str()
    );
    assert_eq!(info["external_fixed_ips"][0]["ip_address"], "172.24.4.2");
    assert_eq!(reply.body["router"]["revision_number"], 2);

    // The gateway port exists with Neutron's owner; only admins see it.
    let reply = cloud
        .get(
            &format!("/v2.0/ports?device_id={id}&device_owner=network:router_gateway"),
            &cloud.admin,
        )
        .await;
    assert_eq!(
        reply.body["ports"].as_array().unwrap().len(),
        1,
        "{}",
        reply.body
    );
    let gateway_port = reply.body["ports"][0]["id"].as_str().unwrap().to_owned();

    // Deleting with an interface is a 409; a router port cannot go by the port API.
    let reply = cloud
        .delete(&format!("/v2.0/routers/{id}"), &cloud.demo)
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "RouterInUse");
    let reply = cloud
        .delete(&format!("/v2.0/ports/{port_id}"), &cloud.demo)
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "ServicePortInUse");
    let reply = cloud
        .delete(&format!("/v2.0/subnets/{}", t.subnet_id), &cloud.demo)
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "SubnetInUse");

    // `router remove subnet`, `router unset --external-gateway`, `router delete`.
    let remove = format!("/v2.0/routers/{id}/remove_router_interface");
    let reply = cloud
        .put(&remove, &cloud.demo, json!({"subnet_id": t.subnet_id}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["port_id"], port_id.as_str());
    let reply = cloud
        .get(&format!("/v2.0/ports/{port_id}"), &cloud.demo)
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "PortNotFound");
    let reply = cloud
        .put(&remove, &cloud.demo, json!({"subnet_id": t.subnet_id}))
        .await;
    assert_error(
        &reply,
        StatusCode::NOT_FOUND,
        "RouterInterfaceNotFoundForSubnet",
    );

    let reply = cloud
        .put(
            &format!("/v2.0/routers/{id}"),
            &cloud.demo,
            json!({"router": {"external_gateway_info": {}}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["router"]["external_gateway_info"], Value::Null);
    let reply = cloud
        .get(&format!("/v2.0/ports/{gateway_port}"), &cloud.admin)
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "PortNotFound");

    let reply = cloud
        .delete(&format!("/v2.0/routers/{id}"), &cloud.demo)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = cloud.get(&format!("/v2.0/routers/{id}"), &cloud.demo).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "RouterNotFound");
}

#[tokio::test]
async fn gateway_on_internal_network_is_rejected() {
    let t = topology().await;
    let cloud = &t.cloud;
    let internal = cloud.create_network(&cloud.demo, "internal").await;
    let reply = cloud
        .post(
            "/v2.0/routers",
            &cloud.demo,
            json!({"router": {"name": "r2", "external_gateway_info": {"network_id": internal["id"]}}}),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "BadRequest");
    assert!(
        reply.error_message().contains("not an external network"),
        "{}",
        reply.body
    );
    let listed = cloud.get("/v2.0/routers", &cloud.demo).await;
    assert_eq!(
        listed.body["routers"],
        json!([]),
        "a failed create leaves no router"
    );
}

#[tokio::test]
async fn router_create_with_gateway_and_delete_frees_it() {
    let t = topology().await;
    let cloud = &t.cloud;
    // `router create --external-gateway public r2`.
    let router = create_router(
        cloud,
        &cloud.demo,
        json!({"name": "r2", "admin_state_up": true,
               "external_gateway_info": {"network_id": t.public_id}}),
    )
    .await;
    let info = &router["external_gateway_info"];
    assert_eq!(info["external_fixed_ips"][0]["ip_address"], "172.24.4.2");

    // Members may not choose SNAT or the gateway address.
    let reply = cloud
        .post(
            "/v2.0/routers",
            &cloud.demo,
            json!({"router": {"external_gateway_info": {"network_id": t.public_id, "enable_snat": false}}}),
        )
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "PolicyNotAuthorized");

    let id = router["id"].as_str().unwrap();
    let reply = cloud
        .delete(&format!("/v2.0/routers/{id}"), &cloud.demo)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    // The gateway port went with the router, so the external network can go.
    let reply = cloud
        .delete(&format!("/v2.0/networks/{}", t.public_id), &cloud.admin)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
}

#[tokio::test]
async fn interface_by_port_and_overlap() {
    let t = topology().await;
    let cloud = &t.cloud;
    let router = create_router(cloud, &cloud.demo, json!({"name": "r1"})).await;
    let id = router["id"].as_str().unwrap();
    let other = cloud.create_network(&cloud.demo, "other").await;
    let subnet = json!({"cidr": "10.0.1.0/24", "ip_version": 4, "network_id": other["id"]});
    let reply = cloud.create_subnet(&cloud.demo, subnet).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let port = cloud
        .post(
            "/v2.0/ports",
            &cloud.demo,
            json!({"port": {"network_id": other["id"]}}),
        )
        .await;
    let port_id = port.body["port"]["id"].as_str().unwrap().to_owned();

    let add = format!("/v2.0/routers/{id}/add_router_interface");
    let reply = cloud
        .put(&add, &cloud.demo, json!({"port_id": port_id}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["port_id"], port_id.as_str());
    let shown = cloud
        .get(&format!("/v2.0/ports/{port_id}"), &cloud.demo)
        .await;
    assert_eq!(
        shown.body["port"]["device_owner"],
        "network:router_interface"
    );
    assert_eq!(shown.body["port"]["device_id"], id);

    // Both ids, neither, and a port already attached.
    let reply = cloud
        .put(
            &add,
            &cloud.demo,
            json!({"port_id": port_id, "subnet_id": t.subnet_id}),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "BadRequest");
    let reply = cloud.put(&add, &cloud.demo, json!({})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "BadRequest");
    let reply = cloud
        .put(&add, &cloud.demo, json!({"port_id": port_id}))
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "PortInUse");

    // A subnet overlapping an attached one.
    let third = cloud.create_network(&cloud.demo, "third").await;
    let subnet = json!({"cidr": "10.0.1.0/25", "ip_version": 4, "network_id": third["id"]});
    let reply = cloud.create_subnet(&cloud.demo, subnet).await;
    let overlapping = reply.body["subnet"]["id"].as_str().unwrap().to_owned();
    let reply = cloud
        .put(&add, &cloud.demo, json!({"subnet_id": overlapping}))
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "BadRequest");
    assert!(reply.error_message().contains("overlaps"), "{}", reply.body);

    // Another project cannot see, attach or delete the router.
    let reply = cloud
        .put(&add, &cloud.alt, json!({"subnet_id": t.subnet_id}))
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "RouterNotFound");

    let remove = format!("/v2.0/routers/{id}/remove_router_interface");
    let reply = cloud
        .put(&remove, &cloud.demo, json!({"port_id": "nope"}))
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "RouterInterfaceNotFound");
    let reply = cloud
        .put(&remove, &cloud.demo, json!({"port_id": port_id}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn router_update_tags_and_discovery() {
    let t = topology().await;
    let cloud = &t.cloud;
    let router = create_router(cloud, &cloud.demo, json!({"name": "r1"})).await;
    let id = router["id"].as_str().unwrap();
    let reply = cloud
        .put(
            &format!("/v2.0/routers/{id}"),
            &cloud.demo,
            json!({"router": {"routes": [{"destination": "10.9.0.0/24", "nexthop": "10.0.0.9"}]}}),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    let reply = cloud
        .put(
            &format!("/v2.0/routers/{id}"),
            &cloud.demo,
            json!({"router": {"name": "r9"}}),
        )
        .await;
    assert_eq!(reply.body["router"]["name"], "r9");

    // `router set --tag blue r9`.
    let reply = cloud
        .call(
            "PUT",
            &format!("/v2.0/routers/{id}/tags/blue"),
            Some(&cloud.demo),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = cloud.get("/v2.0/routers?tags=blue", &cloud.demo).await;
    assert_eq!(
        reply.body["routers"][0]["tags"],
        json!(["blue"]),
        "{}",
        reply.body
    );
    let reply = cloud
        .call(
            "PUT",
            &format!("/v2.0/routers/{id}/tags/red"),
            Some(&cloud.alt),
            None,
        )
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "RouterNotFound");

    let reply = cloud.call("GET", "/v2.0/", None, None).await;
    let collections: Vec<&str> = reply.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["collection"].as_str())
        .collect();
    for collection in ["routers", "floatingips", "quotas", "agents"] {
        assert!(
            collections.contains(&collection),
            "{collection}: {collections:?}"
        );
    }
}

#[tokio::test]
async fn router_ports_bound_to_agent_host() {
    let t = topology().await;
    let cloud = &t.cloud;
    let agent = oxstack_network::agents::AgentConfig {
        tunneling_ip: Some("192.0.2.11".into()),
        tunnel_types: vec!["vxlan".into()],
        ..Default::default()
    };
    cloud.service.report_agent("node1", agent).await.unwrap();
    let router = create_router(cloud, &cloud.demo, json!({"name": "r1"})).await;
    let id = router["id"].as_str().unwrap();

    let reply = cloud
        .put(
            &format!("/v2.0/routers/{id}/add_router_interface"),
            &cloud.demo,
            json!({"subnet_id": t.subnet_id}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let port_id = reply.body["port_id"].as_str().unwrap().to_owned();
    let port = cloud
        .get(&format!("/v2.0/ports/{port_id}"), &cloud.admin)
        .await;
    assert_eq!(port.body["port"]["status"], "ACTIVE", "{}", port.body);
    assert_eq!(port.body["port"]["binding:host_id"], "node1");
    assert_eq!(port.body["port"]["binding:vif_type"], "bridge");

    // The flat `public` network has no bridge mapping on node1, so its
    // gateway port is bound there and fails, as in Neutron.
    let reply = cloud
        .put(
            &format!("/v2.0/routers/{id}"),
            &cloud.admin,
            json!({"router": {"external_gateway_info": {"network_id": t.public_id}}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let gateway = cloud
        .get(
            &format!("/v2.0/ports?device_id={id}&device_owner=network:router_gateway"),
            &cloud.admin,
        )
        .await;
    let gateway = &gateway.body["ports"][0];
    assert_eq!(gateway["binding:host_id"], "node1", "{gateway}");
    assert_eq!(gateway["binding:vif_type"], "binding_failed");
}

#[tokio::test]
async fn same_cidr_on_two_routers_is_allowed() {
    let t = topology().await;
    let cloud = &t.cloud;
    let first = create_router(cloud, &cloud.demo, json!({"name": "r1"})).await;
    let second = create_router(cloud, &cloud.demo, json!({"name": "r2"})).await;
    let other = cloud.create_network(&cloud.demo, "other").await;
    let reply = cloud
        .create_subnet(
            &cloud.demo,
            json!({"cidr": "10.0.0.0/24", "ip_version": 4, "network_id": other["id"]}),
        )
        .await;
    let same_cidr = reply.body["subnet"]["id"].as_str().unwrap().to_owned();

    for (router, subnet) in [(&first, &t.subnet_id), (&second, &same_cidr)] {
        let reply = cloud
            .put(
                &format!(
                    "/v2.0/routers/{}/add_router_interface",
                    router["id"].as_str().unwrap()
                ),
                &cloud.demo,
                json!({ "subnet_id": subnet }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let reply = cloud
        .put(
            &format!(
                "/v2.0/routers/{}/add_router_interface",
                first["id"].as_str().unwrap()
            ),
            &cloud.demo,
            json!({ "subnet_id": same_cidr }),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn interface_on_the_gateway_subnet_is_rejected() {
    let t = topology().await;
    let cloud = &t.cloud;
    let router = create_router(
        cloud,
        &cloud.admin,
        json!({"name": "r3", "external_gateway_info": {"network_id": t.public_id}}),
    )
    .await;
    let id = router["id"].as_str().unwrap();
    let reply = cloud
        .put(
            &format!("/v2.0/routers/{id}/add_router_interface"),
            &cloud.admin,
            json!({"subnet_id": t.public_subnet_id}),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "BadRequest");
    assert!(
        reply.error_message().contains(&format!(
            "Router already has a port on subnet {}",
            t.public_subnet_id
        )),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn external_network_in_use_stays_external() {
    let t = topology().await;
    let cloud = &t.cloud;
    create_router(
        cloud,
        &cloud.demo,
        json!({"name": "r4", "external_gateway_info": {"network_id": t.public_id}}),
    )
    .await;
    let reply = cloud
        .put(
            &format!("/v2.0/networks/{}", t.public_id),
            &cloud.admin,
            json!({"network": {"router:external": false}}),
        )
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "ExternalNetworkInUse");
}
