//! Floating IPs as the OpenStack CLI drives them: allocation on the
//! external network, association through a router, and the errors
//! Neutron gives when the port cannot be reached.

mod common;

use axum::http::StatusCode;
use common::{Cloud, Reply};
use serde_json::{json, Value};

fn assert_error(reply: &Reply, status: StatusCode, error_type: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.error_type(), error_type, "{}", reply.body);
}

struct Topology {
    cloud: Cloud,
    network_id: String,
    subnet_id: String,
    public_id: String,
    router_id: String,
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

/// Demo's `xmodulo` 10.0.0.0/24, the external `public` 172.24.4.0/24 and
/// demo's router `r1`, with no interface and no gateway yet.
async fn topology() -> Topology {
    let cloud = Cloud::start().await;
    let network = cloud.create_network(&cloud.demo, "xmodulo").await;
    let reply = cloud
        .create_subnet(
            &cloud.demo,
            json!({"cidr": "10.0.0.0/24", "ip_version": 4, "network_id": network["id"]}),
        )
        .await;
    let subnet_id = id_of(&reply.body["subnet"]);
    let reply = cloud
        .post(
            "/v2.0/networks",
            &cloud.admin,
            json!({"network": {"name": "public", "router:external": true}}),
        )
        .await;
    let public_id = id_of(&reply.body["network"]);
    let reply = cloud
        .create_subnet(
            &cloud.admin,
            json!({"cidr": "172.24.4.0/24", "ip_version": 4, "network_id": public_id}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = cloud
        .post(
            "/v2.0/routers",
            &cloud.demo,
            json!({"router": {"name": "r1"}}),
        )
        .await;
    Topology {
        network_id: id_of(&network),
        subnet_id,
        public_id,
        router_id: id_of(&reply.body["router"]),
        cloud,
    }
}

async fn create_fip(cloud: &Cloud, token: &str, body: Value) -> Reply {
    cloud
        .post("/v2.0/floatingips", token, json!({ "floatingip": body }))
        .await
}

async fn vm_port(t: &Topology) -> String {
    let reply = t
        .cloud
        .post(
            "/v2.0/ports",
            &t.cloud.demo,
            json!({"port": {"network_id": t.network_id, "device_id": "vm1",
                            "device_owner": "compute:nova"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    id_of(&reply.body["port"])
}

#[tokio::test]
async fn cli_floating_ip_create_associate_and_release() {
    let t = topology().await;
    let cloud = &t.cloud;
    // `floating ip create public`.
    let reply = create_fip(
        cloud,
        &cloud.demo,
        json!({"floating_network_id": t.public_id}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let fip = &reply.body["floatingip"];
    let fip_id = id_of(fip);
    assert_eq!(fip["floating_ip_address"], "172.24.4.2");
    assert_eq!(fip["floating_network_id"], t.public_id.as_str());
    assert_eq!(fip["status"], "DOWN");
    assert_eq!(fip["port_id"], Value::Null);
    assert_eq!(fip["router_id"], Value::Null);
    assert_eq!(fip["project_id"], cloud.demo_project.as_str());

    // `server add floating ip vm1 172.24.4.2`: lookup by address, then PUT.
    let reply = cloud.get("/v2.0/floatingips/172.24.4.2", &cloud.demo).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "FloatingIPNotFound");
    let reply = cloud
        .get(
            "/v2.0/floatingips?floating_ip_address=172.24.4.2",
            &cloud.demo,
        )
        .await;
    assert_eq!(reply.body["floatingips"].as_array().unwrap().len(), 1);
    let reply = cloud
        .get(
            "/v2.0/floatingips?floating_ip_address=172.24.4.9",
            &cloud.demo,
        )
        .await;
    assert_eq!(reply.body["floatingips"], json!([]));

    let port_id = vm_port(&t).await;
    let path = format!("/v2.0/floatingips/{fip_id}");
    // No router joins the port's subnet to the external network yet.
    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"floatingip": {"port_id": port_id}}),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::NOT_FOUND,
        "ExternalGatewayForFloatingIPNotFound",
    );

    // An interface alone is not enough: the router needs the gateway too.
    let router = format!("/v2.0/routers/{}", t.router_id);
    let reply = cloud
        .put(
            &format!("{router}/add_router_interface"),
            &cloud.demo,
            json!({"subnet_id": t.subnet_id}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"floatingip": {"port_id": port_id}}),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::NOT_FOUND,
        "ExternalGatewayForFloatingIPNotFound",
    );

    let reply = cloud
        .put(
            &router,
            &cloud.demo,
            json!({"router": {"external_gateway_info": {"network_id": t.public_id}}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"floatingip": {"port_id": port_id}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let fip = &reply.body["floatingip"];
    assert_eq!(fip["port_id"], port_id.as_str());
    assert_eq!(fip["fixed_ip_address"], "10.0.0.2");
    assert_eq!(fip["router_id"], t.router_id.as_str());
    assert_eq!(fip["status"], "ACTIVE");
    assert_eq!(fip["port_details"]["device_id"], "vm1");

    // The router's interface and gateway are now in use by the floating IP.
    let reply = cloud
        .put(
            &format!("{router}/remove_router_interface"),
            &cloud.demo,
            json!({"subnet_id": t.subnet_id}),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::CONFLICT,
        "RouterInterfaceInUseByFloatingIP",
    );
    let reply = cloud
        .put(
            &router,
            &cloud.demo,
            json!({"router": {"external_gateway_info": {}}}),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::CONFLICT,
        "RouterExternalGatewayInUseByFloatingIp",
    );

    // A second floating IP on the same fixed IP is a 409.
    let reply = create_fip(
        cloud,
        &cloud.demo,
        json!({"floating_network_id": t.public_id, "port_id": port_id}),
    )
    .await;
    assert_error(
        &reply,
        StatusCode::CONFLICT,
        "FloatingIPPortAlreadyAssociated",
    );

    // A fixed IP the port does not have, and a fixed IP without a port.
    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"floatingip": {"fixed_ip_address": "10.0.0.99"}}),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "BadRequest");

    // `server remove floating ip`.
    let reply = cloud
        .put(&path, &cloud.demo, json!({"floatingip": {"port_id": null}}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["floatingip"]["port_id"], Value::Null);
    assert_eq!(reply.body["floatingip"]["router_id"], Value::Null);
    assert_eq!(reply.body["floatingip"]["status"], "DOWN");
    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"floatingip": {"fixed_ip_address": "10.0.0.2"}}),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "BadRequest");

    // Deleting the floating IP frees its address.
    let reply = cloud.delete(&path, &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = create_fip(
        cloud,
        &cloud.demo,
        json!({"floating_network_id": t.public_id}),
    )
    .await;
    assert_eq!(
        reply.body["floatingip"]["floating_ip_address"],
        "172.24.4.2"
    );
}

#[tokio::test]
async fn deleting_port_disassociates() {
    let t = topology().await;
    let cloud = &t.cloud;
    let router = format!("/v2.0/routers/{}", t.router_id);
    cloud
        .put(
            &format!("{router}/add_router_interface"),
            &cloud.demo,
            json!({"subnet_id": t.subnet_id}),
        )
        .await;
    cloud
        .put(
            &router,
            &cloud.demo,
            json!({"router": {"external_gateway_info": {"network_id": t.public_id}}}),
        )
        .await;
    let port_id = vm_port(&t).await;
    let reply = create_fip(
        cloud,
        &cloud.demo,
        json!({"floating_network_id": t.public_id, "port_id": port_id}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["floatingip"]["status"], "ACTIVE");
    let fip_id = id_of(&reply.body["floatingip"]);

    let reply = cloud
        .delete(&format!("/v2.0/ports/{port_id}"), &cloud.demo)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = cloud
        .get(&format!("/v2.0/floatingips/{fip_id}"), &cloud.demo)
        .await;
    assert_eq!(reply.body["floatingip"]["port_id"], Value::Null);
    assert_eq!(reply.body["floatingip"]["status"], "DOWN");
}

#[tokio::test]
async fn create_rules() {
    let t = topology().await;
    let cloud = &t.cloud;
    let reply = create_fip(
        cloud,
        &cloud.demo,
        json!({"floating_network_id": t.network_id}),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "BadRequest");
    assert!(
        reply
            .error_message()
            .contains("not a valid external network"),
        "{}",
        reply.body
    );
    let reply = create_fip(cloud, &cloud.demo, json!({})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    let reply = create_fip(
        cloud,
        &cloud.demo,
        json!({"floating_network_id": "6e1b9a59-0000-4000-8000-00000000dead"}),
    )
    .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NetworkNotFound");

    // Only admins choose the address.
    let body = json!({"floating_network_id": t.public_id, "floating_ip_address": "172.24.4.99"});
    let reply = create_fip(cloud, &cloud.demo, body.clone()).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "PolicyNotAuthorized");
    let reply = create_fip(cloud, &cloud.admin, body.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        reply.body["floatingip"]["floating_ip_address"],
        "172.24.4.99"
    );
    let reply = create_fip(cloud, &cloud.admin, body).await;
    assert_error(&reply, StatusCode::CONFLICT, "IpAddressAlreadyAllocated");

    // Other projects do not see demo's floating IPs; the admin does.
    create_fip(
        cloud,
        &cloud.demo,
        json!({"floating_network_id": t.public_id}),
    )
    .await;
    let reply = cloud.get("/v2.0/floatingips", &cloud.alt).await;
    assert_eq!(reply.body["floatingips"], json!([]));
    let reply = cloud.get("/v2.0/floatingips", &cloud.admin).await;
    assert_eq!(reply.body["floatingips"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn external_network_delete_takes_unassociated_floating_ips() {
    let t = topology().await;
    let cloud = &t.cloud;
    let reply = create_fip(
        cloud,
        &cloud.demo,
        json!({"floating_network_id": t.public_id}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let fip_id = id_of(&reply.body["floatingip"]);
    let fip_port = cloud
        .get(&format!("/v2.0/ports?device_id={fip_id}"), &cloud.admin)
        .await;
    assert_eq!(
        fip_port.body["ports"].as_array().unwrap().len(),
        1,
        "{}",
        fip_port.body
    );

    let reply = cloud
        .delete(&format!("/v2.0/networks/{}", t.public_id), &cloud.admin)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = cloud
        .get(&format!("/v2.0/floatingips/{fip_id}"), &cloud.admin)
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "FloatingIPNotFound");
    let ports = cloud
        .get(&format!("/v2.0/ports?device_id={fip_id}"), &cloud.admin)
        .await;
    assert_eq!(ports.body["ports"], json!([]));
}

#[tokio::test]
async fn external_network_in_use_keeps_floating_ips() {
    let t = topology().await;
    let cloud = &t.cloud;
    let reply = cloud
        .put(
            &format!("/v2.0/routers/{}", t.router_id),
            &cloud.demo,
            json!({"router": {"external_gateway_info": {"network_id": t.public_id}}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = create_fip(
        cloud,
        &cloud.demo,
        json!({"floating_network_id": t.public_id}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let fip_id = id_of(&reply.body["floatingip"]);

    // The router's gateway port keeps the network; the failed delete
    // leaves the unassociated floating IP in place.
    let reply = cloud
        .delete(&format!("/v2.0/networks/{}", t.public_id), &cloud.admin)
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "NetworkInUse");
    let reply = cloud
        .get(&format!("/v2.0/floatingips/{fip_id}"), &cloud.demo)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}
