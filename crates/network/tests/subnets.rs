//! The subnets API: the CLI's create, Neutron's defaults, and every IPAM
//! rejection with the exception type clients match on.

mod common;

use axum::http::StatusCode;
use common::{Cloud, Reply};
use serde_json::{json, Value};

async fn cloud_with_network() -> (Cloud, String) {
    let cloud = Cloud::start().await;
    let network = cloud.create_network(&cloud.demo, "xmodulo").await;
    let id = network["id"].as_str().unwrap().to_owned();
    (cloud, id)
}

fn subnet(network_id: &str, extra: Value) -> Value {
    let mut body = json!({"network_id": network_id, "cidr": "10.0.0.0/24", "ip_version": 4});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

fn assert_error(reply: &Reply, status: StatusCode, error_type: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.error_type(), error_type, "{}", reply.body);
}

#[tokio::test]
async fn cli_subnet_create_applies_neutron_defaults() {
    let (cloud, network_id) = cloud_with_network().await;
    // The exact body `openstack subnet create --network xmodulo --subnet-range 10.0.0.0/24 xmodulo_subnet` sends.
    let body = json!({"subnet": {"cidr": "10.0.0.0/24", "network_id": network_id, "ip_version": 4, "name": "xmodulo_subnet"}});
    let reply = cloud.post("/v2.0/subnets", &cloud.demo, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let subnet = &reply.body["subnet"];
    assert_eq!(subnet["name"], "xmodulo_subnet");
    assert_eq!(subnet["cidr"], "10.0.0.0/24");
    assert_eq!(subnet["ip_version"], 4);
    assert_eq!(subnet["gateway_ip"], "10.0.0.1");
    assert_eq!(
        subnet["allocation_pools"],
        json!([{"start": "10.0.0.2", "end": "10.0.0.254"}])
    );
    assert_eq!(subnet["enable_dhcp"], true);
    assert_eq!(subnet["dns_nameservers"], json!([]));
    assert_eq!(subnet["host_routes"], json!([]));
    assert_eq!(subnet["project_id"], cloud.demo_project.as_str());
    assert!(subnet["subnetpool_id"].is_null());

    let network = cloud
        .get(&format!("/v2.0/networks/{network_id}"), &cloud.demo)
        .await;
    assert_eq!(network.body["network"]["subnets"], json!([subnet["id"]]));
    assert_eq!(network.body["network"]["revision_number"], 2);

    let found = cloud
        .get("/v2.0/subnets?name=xmodulo_subnet", &cloud.demo)
        .await;
    assert_eq!(found.body["subnets"].as_array().unwrap().len(), 1);
    let by_network = cloud
        .get(
            &format!("/v2.0/subnets?network_id={network_id}&fields=cidr"),
            &cloud.demo,
        )
        .await;
    assert_eq!(by_network.body["subnets"], json!([{"cidr": "10.0.0.0/24"}]));
    let by_name = cloud.get("/v2.0/subnets/xmodulo_subnet", &cloud.demo).await;
    assert_error(&by_name, StatusCode::NOT_FOUND, "SubnetNotFound");
}

#[tokio::test]
async fn public_subnet_with_explicit_pool_and_dns() {
    let cloud = Cloud::start().await;
    let public = json!({"network": {"shared": true, "router:external": true, "admin_state_up": true, "name": "public2",
        "provider:physical_network": "physnet1", "provider:network_type": "flat"}});
    let network = cloud.post("/v2.0/networks", &cloud.admin, public).await;
    assert_eq!(network.status, StatusCode::CREATED, "{}", network.body);
    let network_id = network.body["network"]["id"].as_str().unwrap();
    // The body the CLI sends for the guide's public subnet.
    let body = json!({"subnet": {"allocation_pools": [{"start": "203.0.113.100", "end": "203.0.113.200"}],
        "cidr": "203.0.113.0/24", "ip_version": 4, "enable_dhcp": false, "name": "pub2sub",
        "network_id": network_id, "gateway_ip": "203.0.113.1", "dns_nameservers": ["8.8.8.8"]}});
    let reply = cloud.post("/v2.0/subnets", &cloud.admin, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let subnet = &reply.body["subnet"];
    assert_eq!(
        subnet["allocation_pools"],
        json!([{"start": "203.0.113.100", "end": "203.0.113.200"}])
    );
    assert_eq!(subnet["enable_dhcp"], false);
    assert_eq!(subnet["dns_nameservers"], json!(["8.8.8.8"]));

    // Another project can read the subnet of a shared network but not change it.
    let id = subnet["id"].as_str().unwrap();
    let seen = cloud.get(&format!("/v2.0/subnets/{id}"), &cloud.demo).await;
    assert_eq!(seen.status, StatusCode::OK);
    let update = cloud
        .put(
            &format!("/v2.0/subnets/{id}"),
            &cloud.demo,
            json!({"subnet": {"name": "x"}}),
        )
        .await;
    assert_error(&update, StatusCode::FORBIDDEN, "PolicyNotAuthorized");
    let create = cloud
        .create_subnet(&cloud.demo, subnet_on(network_id, "203.0.114.0/24"))
        .await;
    assert_error(&create, StatusCode::FORBIDDEN, "PolicyNotAuthorized");
}

fn subnet_on(network_id: &str, cidr: &str) -> Value {
    json!({"network_id": network_id, "cidr": cidr, "ip_version": 4})
}

#[tokio::test]
async fn pool_outside_cidr_is_rejected() {
    let (cloud, network_id) = cloud_with_network().await;
    let body = subnet(
        &network_id,
        json!({"allocation_pools": [{"start": "10.0.1.2", "end": "10.0.1.20"}]}),
    );
    let reply = cloud.create_subnet(&cloud.demo, body).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "OutOfBoundsAllocationPool");
    assert_eq!(
        reply.error_message(),
        "The allocation pool 10.0.1.2-10.0.1.20 spans beyond the subnet cidr 10.0.0.0/24."
    );
}

#[tokio::test]
async fn reversed_pool_is_invalid() {
    let (cloud, network_id) = cloud_with_network().await;
    let body = subnet(
        &network_id,
        json!({"allocation_pools": [{"start": "10.0.0.20", "end": "10.0.0.2"}]}),
    );
    let reply = cloud.create_subnet(&cloud.demo, body).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidAllocationPool");
}

#[tokio::test]
async fn overlapping_pools_are_rejected() {
    let (cloud, network_id) = cloud_with_network().await;
    let pools = json!([{"start": "10.0.0.10", "end": "10.0.0.50"}, {"start": "10.0.0.40", "end": "10.0.0.60"}]);
    let reply = cloud
        .create_subnet(
            &cloud.demo,
            subnet(&network_id, json!({"allocation_pools": pools})),
        )
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "OverlappingAllocationPools");
}

#[tokio::test]
async fn gateway_inside_pool_conflicts() {
    let (cloud, network_id) = cloud_with_network().await;
    let body = subnet(
        &network_id,
        json!({"gateway_ip": "10.0.0.20",
        "allocation_pools": [{"start": "10.0.0.10", "end": "10.0.0.50"}]}),
    );
    let reply = cloud.create_subnet(&cloud.demo, body).await;
    assert_error(
        &reply,
        StatusCode::CONFLICT,
        "GatewayConflictWithAllocationPools",
    );
    assert_eq!(
        reply.error_message(),
        "Gateway ip 10.0.0.20 conflicts with allocation pool 10.0.0.10-10.0.0.50."
    );

    // The default gateway (first host) conflicts with a pool that starts there.
    let body = subnet(
        &network_id,
        json!({"allocation_pools": [{"start": "10.0.0.1", "end": "10.0.0.50"}]}),
    );
    let reply = cloud.create_subnet(&cloud.demo, body).await;
    assert_error(
        &reply,
        StatusCode::CONFLICT,
        "GatewayConflictWithAllocationPools",
    );
}

#[tokio::test]
async fn overlapping_subnets_on_one_network_are_rejected() {
    let (cloud, network_id) = cloud_with_network().await;
    let first = cloud
        .create_subnet(&cloud.demo, subnet_on(&network_id, "10.0.0.0/24"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let reply = cloud
        .create_subnet(&cloud.demo, subnet_on(&network_id, "10.0.0.128/25"))
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidInput");
    assert!(
        reply
            .error_message()
            .contains("overlaps with another subnet"),
        "{}",
        reply.body
    );

    // The same range on another network is fine.
    let other = cloud.create_network(&cloud.demo, "other").await;
    let reply = cloud
        .create_subnet(
            &cloud.demo,
            subnet_on(other["id"].as_str().unwrap(), "10.0.0.0/24"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn malformed_attributes_are_bad_requests() {
    let (cloud, network_id) = cloud_with_network().await;
    let cases = [
        (json!({"cidr": "10.0.0.0/33"}), "cidr"),
        (json!({"cidr": "10.0.0.1/24"}), "cidr"),
        (json!({"gateway_ip": "10.0.0.300"}), "gateway_ip"),
        (
            json!({"allocation_pools": [{"start": "x", "end": "10.0.0.9"}]}),
            "allocation_pools",
        ),
        (
            json!({"dns_nameservers": ["nameserver"]}),
            "dns_nameservers",
        ),
        (
            json!({"host_routes": [{"destination": "10.1.0.0/33", "nexthop": "10.0.0.1"}]}),
            "host_routes",
        ),
        (json!({"ip_version": 5}), "ip_version"),
    ];
    for (extra, attribute) in cases {
        let reply = cloud
            .create_subnet(&cloud.demo, subnet(&network_id, extra.clone()))
            .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "HTTPBadRequest");
        assert!(
            reply
                .error_message()
                .starts_with(&format!("Invalid input for {attribute}.")),
            "{extra}: {}",
            reply.body
        );
    }

    let mismatch = cloud
        .create_subnet(&cloud.demo, subnet(&network_id, json!({"ip_version": 6})))
        .await;
    assert_error(&mismatch, StatusCode::BAD_REQUEST, "InvalidInput");
    let missing = cloud
        .create_subnet(&cloud.demo, json!({"cidr": "10.0.0.0/24", "ip_version": 4}))
        .await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    let unknown_network = cloud
        .create_subnet(
            &cloud.demo,
            subnet_on("6e1b9a59-0000-4000-8000-00000000dead", "10.9.0.0/24"),
        )
        .await;
    assert_error(&unknown_network, StatusCode::NOT_FOUND, "NetworkNotFound");
    let malformed_network = cloud
        .create_subnet(&cloud.demo, subnet_on("no-such-network", "10.9.0.0/24"))
        .await;
    assert_error(
        &malformed_network,
        StatusCode::BAD_REQUEST,
        "HTTPBadRequest",
    );
    assert!(
        malformed_network
            .error_message()
            .contains("'no-such-network' is not a valid UUID"),
        "{}",
        malformed_network.body
    );
    let pool = cloud
        .create_subnet(
            &cloud.demo,
            subnet(&network_id, json!({"subnetpool_id": "p1"})),
        )
        .await;
    assert_eq!(pool.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn other_projects_network_takes_no_subnet() {
    let (cloud, network_id) = cloud_with_network().await;
    let reply = cloud
        .create_subnet(&cloud.alt, subnet_on(&network_id, "10.5.0.0/24"))
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NetworkNotFound");

    let created = cloud
        .create_subnet(&cloud.demo, subnet_on(&network_id, "10.5.0.0/24"))
        .await;
    let id = created.body["subnet"]["id"].as_str().unwrap();
    let hidden = cloud.get(&format!("/v2.0/subnets/{id}"), &cloud.alt).await;
    assert_error(&hidden, StatusCode::NOT_FOUND, "SubnetNotFound");
    let listed = cloud.get("/v2.0/subnets", &cloud.alt).await;
    assert_eq!(listed.body["subnets"], json!([]));
}

#[tokio::test]
async fn no_gateway_and_ipv6_subnets() {
    let (cloud, network_id) = cloud_with_network().await;
    let reply = cloud
        .create_subnet(
            &cloud.demo,
            subnet(&network_id, json!({"gateway_ip": null})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(reply.body["subnet"]["gateway_ip"].is_null());
    assert_eq!(
        reply.body["subnet"]["allocation_pools"],
        json!([{"start": "10.0.0.1", "end": "10.0.0.254"}])
    );

    let v6 = json!({"network_id": network_id, "cidr": "fd00:1::/64", "ip_version": 6,
                    "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"});
    let reply = cloud.create_subnet(&cloud.demo, v6).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let subnet = &reply.body["subnet"];
    assert_eq!(subnet["gateway_ip"], "fd00:1::1");
    assert_eq!(subnet["ipv6_ra_mode"], "slaac");
    assert_eq!(
        subnet["allocation_pools"],
        json!([{"start": "fd00:1::2", "end": "fd00:1::ffff:ffff:ffff:ffff"}])
    );

    let mixed = json!({"network_id": network_id, "cidr": "fd00:2::/64", "ip_version": 6,
                       "ipv6_ra_mode": "slaac", "ipv6_address_mode": "dhcpv6-stateful"});
    let reply = cloud.create_subnet(&cloud.demo, mixed).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidInput");
    let on_v4 = subnet_on(&network_id, "10.7.0.0/24");
    let mut on_v4 = on_v4;
    on_v4["ipv6_address_mode"] = json!("slaac");
    let reply = cloud.create_subnet(&cloud.demo, on_v4).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidInput");
}

#[tokio::test]
async fn update_checks_gateway_against_pools() {
    let (cloud, network_id) = cloud_with_network().await;
    let created = cloud
        .create_subnet(&cloud.demo, subnet_on(&network_id, "10.0.0.0/24"))
        .await;
    let path = format!(
        "/v2.0/subnets/{}",
        created.body["subnet"]["id"].as_str().unwrap()
    );

    let conflict = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"subnet": {"gateway_ip": "10.0.0.7"}}),
        )
        .await;
    assert_error(
        &conflict,
        StatusCode::CONFLICT,
        "GatewayConflictWithAllocationPools",
    );

    let body = json!({"subnet": {"gateway_ip": "10.0.0.254", "name": "renamed", "dns_nameservers": ["1.1.1.1"],
        "allocation_pools": [{"start": "10.0.0.1", "end": "10.0.0.100"}]}});
    let reply = cloud.put(&path, &cloud.demo, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["subnet"]["gateway_ip"], "10.0.0.254");
    assert_eq!(reply.body["subnet"]["name"], "renamed");
    assert_eq!(reply.body["subnet"]["revision_number"], 2);

    let read_only = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"subnet": {"cidr": "10.1.0.0/24"}}),
        )
        .await;
    assert_error(&read_only, StatusCode::BAD_REQUEST, "HTTPBadRequest");

    let deleted = cloud.delete(&path, &cloud.demo).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let network = cloud
        .get(&format!("/v2.0/networks/{network_id}"), &cloud.demo)
        .await;
    assert_eq!(network.body["network"]["subnets"], json!([]));
}

#[tokio::test]
async fn too_many_dns_servers_are_rejected() {
    let (cloud, network_id) = cloud_with_network().await;
    let servers = json!(["10.1.1.1", "10.1.1.2", "10.1.1.3", "10.1.1.4", "10.1.1.5", "10.1.1.6"]);
    let reply = cloud
        .create_subnet(
            &cloud.demo,
            subnet(&network_id, json!({"dns_nameservers": servers})),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "DNSNameServersExhausted");
    let duplicate = json!({"dns_nameservers": ["10.1.1.1", "10.1.1.1"]});
    let reply = cloud
        .create_subnet(&cloud.demo, subnet(&network_id, duplicate))
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "HTTPBadRequest");
}

#[tokio::test]
async fn concurrent_overlapping_subnets_one_wins() {
    let (cloud, network_id) = cloud_with_network().await;
    let cloud = std::sync::Arc::new(cloud);
    let mut tasks = Vec::new();
    for prefix in ["10.0.0.0/24", "10.0.0.0/25", "10.0.0.128/25", "10.0.0.0/16"] {
        let cloud = cloud.clone();
        let body = subnet_on(&network_id, prefix);
        tasks.push(tokio::spawn(async move {
            cloud.create_subnet(&cloud.demo, body).await.status
        }));
    }
    let mut created = 0;
    for task in tasks {
        let status = task.await.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::BAD_REQUEST,
            "{status}"
        );
        created += usize::from(status == StatusCode::CREATED);
    }
    let listed = cloud
        .get(
            &format!("/v2.0/subnets?network_id={network_id}"),
            &cloud.demo,
        )
        .await;
    let count = listed.body["subnets"].as_array().unwrap().len();
    assert_eq!(count, created);
    // The two /25 halves may both win; any other pair overlaps.
    assert!(
        (1..=2).contains(&created),
        "{created} subnets created: {}",
        listed.body
    );
}

#[tokio::test]
async fn auto_address_subnet_delete_frees_port_addresses() {
    for mode in ["slaac", "dhcpv6-stateless"] {
        let (cloud, network_id) = cloud_with_network().await;
        let reply = cloud
            .create_subnet(
                &cloud.demo,
                json!({"network_id": network_id, "cidr": "2001:db8::/64", "ip_version": 6,
                       "ipv6_ra_mode": mode, "ipv6_address_mode": mode}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{mode}: {}", reply.body);
        let subnet_id = reply.body["subnet"]["id"].as_str().unwrap().to_owned();
        let reply = cloud
            .post(
                "/v2.0/ports",
                &cloud.demo,
                json!({"port": {"network_id": network_id}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{mode}: {}", reply.body);
        let port_id = reply.body["port"]["id"].as_str().unwrap().to_owned();
        assert_eq!(
            reply.body["port"]["fixed_ips"][0]["subnet_id"],
            subnet_id.as_str()
        );

        let reply = cloud
            .delete(&format!("/v2.0/subnets/{subnet_id}"), &cloud.demo)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::NO_CONTENT,
            "{mode}: {}",
            reply.body
        );
        let port = cloud
            .get(&format!("/v2.0/ports/{port_id}"), &cloud.demo)
            .await;
        assert_eq!(port.body["port"]["fixed_ips"], json!([]), "{mode}");
        // The port itself remains and keeps the network in use.
        let reply = cloud
            .delete(&format!("/v2.0/networks/{network_id}"), &cloud.demo)
            .await;
        assert_error(&reply, StatusCode::CONFLICT, "NetworkInUse");
    }
}

#[tokio::test]
async fn auto_address_subnet_with_router_interface_is_in_use() {
    let (cloud, network_id) = cloud_with_network().await;
    let reply = cloud
        .create_subnet(
            &cloud.demo,
            json!({"network_id": network_id, "cidr": "2001:db8::/64", "ip_version": 6,
                   "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}),
        )
        .await;
    let subnet_id = reply.body["subnet"]["id"].as_str().unwrap().to_owned();
    let router = cloud
        .post(
            "/v2.0/routers",
            &cloud.demo,
            json!({"router": {"name": "r1"}}),
        )
        .await;
    let router_id = router.body["router"]["id"].as_str().unwrap().to_owned();
    let reply = cloud
        .put(
            &format!("/v2.0/routers/{router_id}/add_router_interface"),
            &cloud.demo,
            json!({"subnet_id": subnet_id}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let reply = cloud
        .delete(&format!("/v2.0/subnets/{subnet_id}"), &cloud.demo)
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "SubnetInUse");
}

#[tokio::test]
async fn stateful_subnet_with_ports_is_in_use() {
    let (cloud, network_id) = cloud_with_network().await;
    let reply = cloud
        .create_subnet(
            &cloud.demo,
            json!({"network_id": network_id, "cidr": "2001:db8::/64", "ip_version": 6,
                   "ipv6_ra_mode": "dhcpv6-stateful", "ipv6_address_mode": "dhcpv6-stateful"}),
        )
        .await;
    let subnet_id = reply.body["subnet"]["id"].as_str().unwrap().to_owned();
    let reply = cloud
        .post(
            "/v2.0/ports",
            &cloud.demo,
            json!({"port": {"network_id": network_id}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);

    let reply = cloud
        .delete(&format!("/v2.0/subnets/{subnet_id}"), &cloud.demo)
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "SubnetInUse");
}

#[tokio::test]
async fn external_network_subnet_visible_to_members() {
    let cloud = Cloud::start().await;
    let reply = cloud
        .post(
            "/v2.0/networks",
            &cloud.admin,
            json!({"network": {"name": "public", "router:external": true}}),
        )
        .await;
    let public_id = reply.body["network"]["id"].as_str().unwrap().to_owned();
    let reply = cloud
        .create_subnet(&cloud.admin, subnet_on(&public_id, "172.24.4.0/24"))
        .await;
    let public_subnet = reply.body["subnet"]["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.body["subnet"]["router:external"], true);
    let own_network = cloud.create_network(&cloud.demo, "own").await;
    let reply = cloud
        .create_subnet(
            &cloud.demo,
            subnet_on(own_network["id"].as_str().unwrap(), "10.1.0.0/24"),
        )
        .await;
    assert_eq!(reply.body["subnet"]["router:external"], false);

    let listed = cloud
        .get(
            &format!("/v2.0/subnets?network_id={public_id}"),
            &cloud.demo,
        )
        .await;
    let ids: Vec<&str> = listed.body["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![public_subnet.as_str()]);
    let external_only = cloud
        .get("/v2.0/subnets?router:external=True", &cloud.demo)
        .await;
    assert_eq!(
        external_only.body["subnets"].as_array().unwrap().len(),
        1,
        "{}",
        external_only.body
    );

    let extensions = cloud.get("/v2.0/extensions", &cloud.demo).await;
    let aliases: Vec<&str> = extensions.body["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alias"].as_str().unwrap())
        .collect();
    assert!(aliases.contains(&"subnet-external-network"), "{aliases:?}");
}

#[tokio::test]
async fn dhcp_needs_a_range_dnsmasq_can_serve() {
    let (cloud, network_id) = cloud_with_network().await;
    for (cidr, message) in [
        (
            "10.61.0.0/31",
            "prefix length that is incompatible with DHCP",
        ),
        (
            "10.61.0.1/32",
            "prefix length that is incompatible with DHCP",
        ),
        ("224.0.0.0/24", "Multicast IP subnet is not supported"),
        ("127.0.0.0/24", "Loopback IP subnet is not supported"),
    ] {
        let reply = cloud
            .create_subnet(&cloud.demo, subnet_on(&network_id, cidr))
            .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidInput");
        assert!(
            reply.error_message().contains(message),
            "{cidr}: {}",
            reply.body
        );
    }

    // Without DHCP the same small subnet is fine, and turning DHCP on
    // later is refused the same way.
    let body = json!({"network_id": network_id, "cidr": "10.61.0.0/31", "ip_version": 4, "enable_dhcp": false});
    let created = cloud.create_subnet(&cloud.demo, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["subnet"]["id"].as_str().unwrap();
    let update = cloud
        .put(
            &format!("/v2.0/subnets/{id}"),
            &cloud.demo,
            json!({"subnet": {"enable_dhcp": true}}),
        )
        .await;
    assert_error(&update, StatusCode::BAD_REQUEST, "InvalidInput");
}

#[tokio::test]
async fn automatic_ipv6_addresses_need_a_64_prefix() {
    let (cloud, network_id) = cloud_with_network().await;
    let body = |cidr: &str| {
        json!({"network_id": network_id, "cidr": cidr, "ip_version": 6,
               "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})
    };
    let reply = cloud.create_subnet(&cloud.demo, body("fd05::/80")).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidInput");
    assert!(reply.error_message().contains("/64"), "{}", reply.body);
    let ok = cloud.create_subnet(&cloud.demo, body("fd05::/64")).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
}
