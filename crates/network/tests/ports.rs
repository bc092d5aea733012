//! The ports API as the OpenStack CLI and Nova drive it: creation with
//! address allocation, lookups by device, address conflicts, port
//! security, and the in-use rules of networks and subnets.

mod common;

use std::collections::HashSet;

use axum::http::StatusCode;
use common::{Cloud, Reply};
use serde_json::{json, Value};

fn assert_error(reply: &Reply, status: StatusCode, error_type: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.error_type(), error_type, "{}", reply.body);
}

/// A cloud with network `xmodulo` of project demo and its subnet
/// 10.0.0.0/24; returns the network and subnet ids.
async fn cloud_with_subnet() -> (Cloud, String, String) {
    let cloud = Cloud::start().await;
    let network = cloud.create_network(&cloud.demo, "xmodulo").await;
    let network_id = network["id"].as_str().unwrap().to_owned();
    let subnet = json!({"cidr": "10.0.0.0/24", "ip_version": 4, "network_id": network_id,
                        "name": "xmodulo_subnet"});
    let reply = cloud.create_subnet(&cloud.demo, subnet).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let subnet_id = reply.body["subnet"]["id"].as_str().unwrap().to_owned();
    (cloud, network_id, subnet_id)
}

async fn create_port(cloud: &Cloud, token: &str, port: Value) -> Reply {
    cloud
        .post("/v2.0/ports", token, json!({ "port": port }))
        .await
}

#[tokio::test]
async fn cli_port_create_allocates_first_address() {
    let (cloud, network_id, subnet_id) = cloud_with_subnet().await;
    // `openstack port create --network xmodulo p1` after the name lookup.
    let reply = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "name": "p1", "admin_state_up": true}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let port = &reply.body["port"];
    assert_eq!(port["name"], "p1");
    assert_eq!(port["network_id"], network_id.as_str());
    assert_eq!(port["status"], "DOWN");
    assert_eq!(port["admin_state_up"], true);
    assert_eq!(
        port["fixed_ips"],
        json!([{"subnet_id": subnet_id, "ip_address": "10.0.0.2"}])
    );
    let mac = port["mac_address"].as_str().unwrap();
    assert!(mac.starts_with("fa:16:3e:"), "{mac}");
    assert_eq!(port["device_owner"], "");
    assert_eq!(port["device_id"], "");
    assert_eq!(port["port_security_enabled"], true);
    assert_eq!(port["allowed_address_pairs"], json!([]));
    assert_eq!(port["binding:vnic_type"], "normal");
    assert_eq!(port["project_id"], cloud.demo_project.as_str());
    assert_eq!(port["tenant_id"], cloud.demo_project.as_str());
    assert_eq!(port["revision_number"], 1);
    assert!(port["created_at"].as_str().unwrap().ends_with('Z'));
    // Binding details are admin-only.
    assert!(port.get("binding:host_id").is_none(), "{port}");
    assert!(port.get("binding:vif_type").is_none(), "{port}");

    // The port's security group is the project's default group.
    let groups = cloud
        .get("/v2.0/security-groups?name=default", &cloud.demo)
        .await;
    let default_id = &groups.body["security_groups"][0]["id"];
    assert_eq!(port["security_groups"], json!([default_id]));

    // An admin reads the binding attributes.
    let path = format!("/v2.0/ports/{}", port["id"].as_str().unwrap());
    let shown = cloud.get(&path, &cloud.admin).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["port"]["binding:vif_type"], "unbound");
    assert_eq!(shown.body["port"]["binding:host_id"], "");
    assert_eq!(shown.body["port"]["binding:vif_details"], json!({}));
    assert_eq!(shown.body["port"]["binding:profile"], json!({}));
}

#[tokio::test]
async fn find_port_by_name_and_device() {
    let (cloud, network_id, _) = cloud_with_subnet().await;
    let device = "49413e7a-d3d1-46e1-b5bc-892d94568f34";
    let created = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "name": "p1", "device_id": device,
               "device_owner": "compute:nova"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    create_port(&cloud, &cloud.demo, json!({"network_id": network_id})).await;

    let by_name = cloud.get("/v2.0/ports/p1", &cloud.demo).await;
    assert_error(&by_name, StatusCode::NOT_FOUND, "PortNotFound");
    let listed = cloud.get("/v2.0/ports?name=p1", &cloud.demo).await;
    assert_eq!(listed.body["ports"].as_array().unwrap().len(), 1);

    // `openstack port list --server vm2`.
    let path = format!(
        "/v2.0/ports?device_id={device}&fields=id&fields=name&fields=mac_address&fields=fixed_ips&fields=status"
    );
    let listed = cloud.get(&path, &cloud.demo).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let ports = listed.body["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{}", listed.body);
    let keys: HashSet<&str> = ports[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: HashSet<&str> = ["id", "name", "mac_address", "fixed_ips", "status"]
        .into_iter()
        .collect();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn fixed_ip_filters_and_network_filter() {
    let (cloud, network_id, subnet_id) = cloud_with_subnet().await;
    for _ in 0..3 {
        let reply = create_port(&cloud, &cloud.demo, json!({"network_id": network_id})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let other = cloud.create_network(&cloud.demo, "other").await;
    let reply = create_port(&cloud, &cloud.demo, json!({"network_id": other["id"]})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["port"]["fixed_ips"], json!([]));

    let listed = cloud
        .get("/v2.0/ports?fixed_ips=ip_address%3D10.0.0.3", &cloud.demo)
        .await;
    let ports = listed.body["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{}", listed.body);
    assert_eq!(ports[0]["fixed_ips"][0]["ip_address"], "10.0.0.3");

    let path =
        format!("/v2.0/ports?fixed_ips=subnet_id%3D{subnet_id}&fixed_ips=ip_address%3D10.0.0.9");
    let listed = cloud.get(&path, &cloud.demo).await;
    assert_eq!(listed.body["ports"], json!([]));

    let path = format!("/v2.0/ports?network_id={network_id}");
    let listed = cloud.get(&path, &cloud.demo).await;
    assert_eq!(listed.body["ports"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn requested_addresses_are_honoured() {
    let (cloud, network_id, subnet_id) = cloud_with_subnet().await;
    // `port create --fixed-ip subnet=…,ip-address=…` sends both keys.
    let both = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "name": "p1", "admin_state_up": true,
               "fixed_ips": [{"subnet_id": subnet_id, "ip_address": "10.0.0.150"}]}),
    )
    .await;
    assert_eq!(both.status, StatusCode::CREATED, "{}", both.body);
    assert_eq!(
        both.body["port"]["fixed_ips"][0]["ip_address"],
        "10.0.0.150"
    );

    let address_only = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "fixed_ips": [{"ip_address": "10.0.0.77"}]}),
    )
    .await;
    assert_eq!(
        address_only.status,
        StatusCode::CREATED,
        "{}",
        address_only.body
    );
    assert_eq!(
        address_only.body["port"]["fixed_ips"][0]["subnet_id"],
        subnet_id.as_str()
    );

    let subnet_only = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "fixed_ips": [{"subnet_id": subnet_id}]}),
    )
    .await;
    assert_eq!(
        subnet_only.status,
        StatusCode::CREATED,
        "{}",
        subnet_only.body
    );
    assert_eq!(
        subnet_only.body["port"]["fixed_ips"][0]["ip_address"],
        "10.0.0.2"
    );
}

#[tokio::test]
async fn bad_address_requests_have_neutron_types() {
    let (cloud, network_id, subnet_id) = cloud_with_subnet().await;
    let taken = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "fixed_ips": [{"ip_address": "10.0.0.50"}]}),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CREATED, "{}", taken.body);

    let cases = [
        (
            json!([{"subnet_id": subnet_id, "ip_address": "10.0.0.50"}]),
            StatusCode::CONFLICT,
            "IpAddressAlreadyAllocated",
        ),
        (
            json!([{"subnet_id": subnet_id, "ip_address": "10.0.1.5"}]),
            StatusCode::BAD_REQUEST,
            "InvalidIpForSubnet",
        ),
        (
            json!([{"subnet_id": subnet_id, "ip_address": "10.0.0.255"}]),
            StatusCode::BAD_REQUEST,
            "InvalidIpForSubnet",
        ),
        (
            json!([{"ip_address": "192.168.9.9"}]),
            StatusCode::BAD_REQUEST,
            "InvalidIpForNetwork",
        ),
        (
            json!([{"ip_address": "not-an-ip"}]),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
        ),
        (
            json!([{"subnet_id": "6e1b9a59-0000-4000-8000-00000000dead"}]),
            StatusCode::NOT_FOUND,
            "SubnetNotFound",
        ),
    ];
    for (fixed_ips, status, error_type) in cases {
        let reply = create_port(
            &cloud,
            &cloud.demo,
            json!({"network_id": network_id, "fixed_ips": fixed_ips}),
        )
        .await;
        assert_eq!(reply.status, status, "{fixed_ips}: {}", reply.body);
        assert_eq!(
            reply.error_type(),
            error_type,
            "{fixed_ips}: {}",
            reply.body
        );
    }

    // A subnet of another network is invalid input.
    let other = cloud.create_network(&cloud.demo, "other").await;
    let reply = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": other["id"], "fixed_ips": [{"subnet_id": subnet_id}]}),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidInput");

    let reply = create_port(&cloud, &cloud.demo, json!({"name": "no-network"})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    let reply = create_port(&cloud, &cloud.demo, json!({"network_id": "nope"})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    let missing = json!({"network_id": "6e1b9a59-0000-4000-8000-00000000dead"});
    let reply = create_port(&cloud, &cloud.demo, missing).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NetworkNotFound");
}

#[tokio::test]
async fn exhausted_subnet_fails_generation() {
    let cloud = Cloud::start().await;
    let network = cloud.create_network(&cloud.demo, "tiny").await;
    let subnet = json!({"cidr": "10.0.0.0/29", "ip_version": 4, "network_id": network["id"],
                        "allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.3"}]});
    let reply = cloud.create_subnet(&cloud.demo, subnet).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    for _ in 0..2 {
        let reply = create_port(&cloud, &cloud.demo, json!({"network_id": network["id"]})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let reply = create_port(&cloud, &cloud.demo, json!({"network_id": network["id"]})).await;
    assert_error(&reply, StatusCode::CONFLICT, "IpAddressGenerationFailure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_get_distinct_addresses() {
    let (cloud, network_id, _) = cloud_with_subnet().await;
    let cloud = std::sync::Arc::new(cloud);
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let cloud = cloud.clone();
        let network_id = network_id.clone();
        tasks.push(tokio::spawn(async move {
            create_port(&cloud, &cloud.demo, json!({"network_id": network_id})).await
        }));
    }
    let mut addresses = HashSet::new();
    let mut macs = HashSet::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let port = &reply.body["port"];
        addresses.insert(
            port["fixed_ips"][0]["ip_address"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        macs.insert(port["mac_address"].as_str().unwrap().to_owned());
    }
    assert_eq!(addresses.len(), 24, "{addresses:?}");
    assert_eq!(macs.len(), 24);
}

#[tokio::test]
async fn mac_address_conflicts_and_admin_only_fields() {
    let (cloud, network_id, _) = cloud_with_subnet().await;
    let mac = "fa:16:3e:aa:bb:cc";
    let first = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "mac_address": mac}),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["port"]["mac_address"], mac);
    let again = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "mac_address": "FA:16:3E:AA:BB:CC"}),
    )
    .await;
    assert_error(&again, StatusCode::CONFLICT, "MacAddressInUse");
    let bad = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "mac_address": "fa:16"}),
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "HTTPBadRequest");

    // Binding the port to a host is for admins.
    let host = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "binding:host_id": "compute1"}),
    )
    .await;
    assert_error(&host, StatusCode::FORBIDDEN, "PolicyNotAuthorized");
    let host = create_port(
        &cloud,
        &cloud.admin,
        json!({"network_id": network_id, "binding:host_id": "compute1"}),
    )
    .await;
    assert_eq!(host.status, StatusCode::CREATED, "{}", host.body);
    assert_eq!(host.body["port"]["binding:host_id"], "compute1");
    // No network agent runs on compute1, so the binding fails.
    assert_eq!(host.body["port"]["binding:vif_type"], "binding_failed");
}

#[tokio::test]
async fn port_security_and_address_pairs() {
    let (cloud, network_id, _) = cloud_with_subnet().await;
    let open = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "port_security_enabled": false}),
    )
    .await;
    assert_eq!(open.status, StatusCode::CREATED, "{}", open.body);
    assert_eq!(open.body["port"]["security_groups"], json!([]));

    let web = cloud
        .post(
            "/v2.0/security-groups",
            &cloud.demo,
            json!({"security_group": {"name": "web"}}),
        )
        .await;
    let web_id = web.body["security_group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "port_security_enabled": false, "security_groups": [web_id]}),
    )
    .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "PortSecurityAndIPRequiredForSecurityGroups",
    );
    let reply = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "port_security_enabled": false,
               "allowed_address_pairs": [{"ip_address": "10.0.0.200"}]}),
    )
    .await;
    assert_error(
        &reply,
        StatusCode::CONFLICT,
        "AddressPairAndPortSecurityRequired",
    );

    let reply = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "security_groups": [web_id],
               "allowed_address_pairs": [{"ip_address": "10.0.0.0/28"}]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let port = &reply.body["port"];
    assert_eq!(port["security_groups"], json!([web_id]));
    assert_eq!(
        port["allowed_address_pairs"][0]["mac_address"],
        port["mac_address"]
    );

    // Disabling port security while groups remain is refused.
    let path = format!("/v2.0/ports/{}", port["id"].as_str().unwrap());
    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"port": {"port_security_enabled": false}}),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::CONFLICT,
        "PortSecurityPortHasSecurityGroup",
    );
    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"port": {"port_security_enabled": false, "security_groups": [],
                            "allowed_address_pairs": []}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["port"]["port_security_enabled"], false);

    // A network without port security gives its ports none.
    let plain = cloud
        .post(
            "/v2.0/networks",
            &cloud.demo,
            json!({"network": {"name": "plain", "port_security_enabled": false}}),
        )
        .await;
    let reply = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": plain.body["network"]["id"]}),
    )
    .await;
    assert_eq!(
        reply.body["port"]["port_security_enabled"], false,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["port"]["security_groups"], json!([]));
}

#[tokio::test]
async fn update_changes_fields_and_addresses() {
    let (cloud, network_id, subnet_id) = cloud_with_subnet().await;
    let created = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "name": "p1"}),
    )
    .await;
    let path = format!(
        "/v2.0/ports/{}",
        created.body["port"]["id"].as_str().unwrap()
    );
    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"port": {"name": "p2", "device_id": "vm", "device_owner": "compute:nova",
                            "fixed_ips": [{"subnet_id": subnet_id, "ip_address": "10.0.0.2"},
                                          {"subnet_id": subnet_id, "ip_address": "10.0.0.40"}]}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let port = &reply.body["port"];
    assert_eq!(port["name"], "p2");
    assert_eq!(port["device_id"], "vm");
    assert_eq!(port["revision_number"], 2);
    let addresses: Vec<&str> = port["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ip_address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses, vec!["10.0.0.2", "10.0.0.40"]);

    // The address given up is free again; the kept one is not.
    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"port": {"fixed_ips": [{"ip_address": "10.0.0.40"}]}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let other = create_port(&cloud, &cloud.demo, json!({"network_id": network_id})).await;
    assert_eq!(other.body["port"]["fixed_ips"][0]["ip_address"], "10.0.0.2");
    let clash = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"port": {"fixed_ips": [{"ip_address": "10.0.0.2"}]}}),
        )
        .await;
    assert_error(&clash, StatusCode::CONFLICT, "IpAddressAlreadyAllocated");

    let read_only = cloud
        .put(&path, &cloud.demo, json!({"port": {"network_id": "x"}}))
        .await;
    assert_error(&read_only, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    let mac = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"port": {"mac_address": "fa:16:3e:00:00:01"}}),
        )
        .await;
    assert_error(&mac, StatusCode::FORBIDDEN, "PolicyNotAuthorized");
}

#[tokio::test]
async fn delete_port_frees_address() {
    let (cloud, network_id, _) = cloud_with_subnet().await;
    let first = create_port(&cloud, &cloud.demo, json!({"network_id": network_id})).await;
    let path = format!("/v2.0/ports/{}", first.body["port"]["id"].as_str().unwrap());
    let deleted = cloud.delete(&path, &cloud.demo).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let gone = cloud.get(&path, &cloud.demo).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "PortNotFound");
    let again = cloud.delete(&path, &cloud.demo).await;
    assert_error(&again, StatusCode::NOT_FOUND, "PortNotFound");
    let next = create_port(&cloud, &cloud.demo, json!({"network_id": network_id})).await;
    assert_eq!(next.body["port"]["fixed_ips"][0]["ip_address"], "10.0.0.2");
}

#[tokio::test]
async fn ports_keep_network_and_subnet_in_use() {
    let (cloud, network_id, subnet_id) = cloud_with_subnet().await;
    let port = create_port(&cloud, &cloud.demo, json!({"network_id": network_id})).await;
    let port_path = format!("/v2.0/ports/{}", port.body["port"]["id"].as_str().unwrap());

    let network_path = format!("/v2.0/networks/{network_id}");
    let subnet_path = format!("/v2.0/subnets/{subnet_id}");
    let reply = cloud.delete(&network_path, &cloud.demo).await;
    assert_error(&reply, StatusCode::CONFLICT, "NetworkInUse");
    let reply = cloud.delete(&subnet_path, &cloud.demo).await;
    assert_error(&reply, StatusCode::CONFLICT, "SubnetInUse");

    cloud.delete(&port_path, &cloud.demo).await;
    // A router interface keeps the network in use, as in Neutron.
    let router_port = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "device_owner": "network:router_interface",
               "fixed_ips": [{"subnet_id": subnet_id, "ip_address": "10.0.0.1"}]}),
    )
    .await;
    assert_eq!(
        router_port.status,
        StatusCode::CREATED,
        "{}",
        router_port.body
    );
    let reply = cloud.delete(&network_path, &cloud.demo).await;
    assert_error(&reply, StatusCode::CONFLICT, "NetworkInUse");
    let router_path = format!(
        "/v2.0/ports/{}",
        router_port.body["port"]["id"].as_str().unwrap()
    );
    cloud.delete(&router_path, &cloud.demo).await;

    // A DHCP port does not keep the subnet or the network in use.
    let reply = create_port(
        &cloud,
        &cloud.admin,
        json!({"network_id": network_id, "device_owner": "network:dhcp", "fixed_ips": []}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["port"]["security_groups"], json!([]));
    let dhcp = create_port(
        &cloud,
        &cloud.admin,
        json!({"network_id": network_id, "device_owner": "network:dhcp"}),
    )
    .await;
    assert_eq!(
        dhcp.body["port"]["fixed_ips"][0]["ip_address"], "10.0.0.2",
        "{}",
        dhcp.body
    );
    let reply = cloud.delete(&subnet_path, &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let dhcp_path = format!("/v2.0/ports/{}", dhcp.body["port"]["id"].as_str().unwrap());
    let reply = cloud.get(&dhcp_path, &cloud.admin).await;
    assert_eq!(reply.body["port"]["fixed_ips"], json!([]), "{}", reply.body);
    let reply = cloud.delete(&network_path, &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let listed = cloud.get("/v2.0/ports", &cloud.admin).await;
    assert_eq!(listed.body["ports"], json!([]));
}

#[tokio::test]
async fn other_projects_ports_are_invisible() {
    let (cloud, network_id, _) = cloud_with_subnet().await;
    let port = create_port(&cloud, &cloud.demo, json!({"network_id": network_id})).await;
    let path = format!("/v2.0/ports/{}", port.body["port"]["id"].as_str().unwrap());

    let reply = cloud.get(&path, &cloud.alt).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "PortNotFound");
    let reply = cloud.delete(&path, &cloud.alt).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "PortNotFound");
    let listed = cloud.get("/v2.0/ports", &cloud.alt).await;
    assert_eq!(listed.body["ports"], json!([]));
    // Nor can another project put a port on demo's private network.
    let reply = create_port(&cloud, &cloud.alt, json!({"network_id": network_id})).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NetworkNotFound");
    // Admins see every port.
    let listed = cloud.get("/v2.0/ports", &cloud.admin).await;
    assert_eq!(listed.body["ports"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn port_tags() {
    let (cloud, network_id, _) = cloud_with_subnet().await;
    let port = create_port(&cloud, &cloud.demo, json!({"network_id": network_id})).await;
    let id = port.body["port"]["id"].as_str().unwrap();
    let reply = cloud
        .put(
            &format!("/v2.0/ports/{id}/tags/blue"),
            &cloud.demo,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let listed = cloud.get("/v2.0/ports?tags=blue", &cloud.demo).await;
    assert_eq!(listed.body["ports"][0]["tags"], json!(["blue"]));
    assert_eq!(listed.body["ports"][0]["revision_number"], 2);
}

#[tokio::test]
async fn ports_on_shared_network() {
    let cloud = Cloud::start().await;
    let shared = cloud
        .post(
            "/v2.0/networks",
            &cloud.admin,
            json!({"network": {"name": "shared", "shared": true}}),
        )
        .await;
    assert_eq!(shared.status, StatusCode::CREATED, "{}", shared.body);
    let network_id = shared.body["network"]["id"].as_str().unwrap().to_owned();
    let subnet = json!({"cidr": "10.9.0.0/24", "ip_version": 4, "network_id": network_id});
    let reply = cloud.create_subnet(&cloud.admin, subnet).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let subnet_id = reply.body["subnet"]["id"].as_str().unwrap().to_owned();

    // A member of another project may plug into the shared network and pick
    // the subnet, but only the network's owner picks addresses.
    let port = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "fixed_ips": [{"subnet_id": subnet_id}]}),
    )
    .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.body);
    assert_eq!(port.body["port"]["project_id"], cloud.demo_project.as_str());
    let reply = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "fixed_ips": [{"ip_address": "10.9.0.50"}]}),
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "PolicyNotAuthorized");
    let reply = create_port(
        &cloud,
        &cloud.demo,
        json!({"network_id": network_id, "device_owner": "network:router_interface"}),
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "PolicyNotAuthorized");

    // The port is demo's: alt does not see it, the admin does.
    let path = format!("/v2.0/ports/{}", port.body["port"]["id"].as_str().unwrap());
    let reply = cloud.get(&path, &cloud.alt).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "PortNotFound");
    let reply = cloud.get(&path, &cloud.admin).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = cloud.get(&path, &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}
