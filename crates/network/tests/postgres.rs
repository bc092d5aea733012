//! The network, port, security group, router, floating IP, quota and agent
//! flows on PostgreSQL, proving the SQL is portable. Runs against the server
//! named by `OXSTACK_TEST_POSTGRES_URL`; in CI the variable must be set.
//! Elsewhere the test prints how to set it and passes.

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

#[tokio::test]
async fn port_and_security_group_flow_runs_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let cloud = std::sync::Arc::new(Cloud::start_postgres(&url).await);

    let network = cloud.create_network(&cloud.demo, "ports-net").await;
    let network_id = network["id"].as_str().unwrap().to_owned();
    let subnet = json!({"cidr": "10.1.0.0/24", "network_id": network_id, "ip_version": 4});
    let created = cloud.create_subnet(&cloud.demo, subnet).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let subnet_id = created.body["subnet"]["id"].as_str().unwrap().to_owned();

    // Concurrent creates collide on the unique key and retry.
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let cloud = cloud.clone();
        let body = json!({"port": {"network_id": network_id}});
        tasks.push(tokio::spawn(async move {
            cloud.post("/v2.0/ports", &cloud.demo, body).await
        }));
    }
    let mut addresses = std::collections::HashSet::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        addresses.insert(reply.body["port"]["fixed_ips"][0]["ip_address"].to_string());
    }
    assert_eq!(addresses.len(), 12, "{addresses:?}");

    let taken = json!({"port": {"network_id": network_id,
                                "fixed_ips": [{"subnet_id": subnet_id, "ip_address": "10.1.0.2"}]}});
    let reply = cloud.post("/v2.0/ports", &cloud.demo, taken).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert_eq!(reply.error_type(), "IpAddressAlreadyAllocated");

    // Concurrent first uses by one project make one default group.
    let mut tasks = Vec::new();
    for path in [
        "/v2.0/security-groups",
        "/v2.0/ports",
        "/v2.0/networks",
        "/v2.0/security-groups",
    ] {
        let cloud = cloud.clone();
        tasks.push(tokio::spawn(
            async move { cloud.get(path, &cloud.alt).await },
        ));
    }
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let alt_groups = cloud.get("/v2.0/security-groups", &cloud.alt).await;
    assert_eq!(
        alt_groups.body["security_groups"].as_array().unwrap().len(),
        1,
        "{}",
        alt_groups.body
    );

    let groups = cloud
        .get("/v2.0/security-groups?name=default", &cloud.demo)
        .await;
    let default_id = groups.body["security_groups"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(groups.body["security_groups"].as_array().unwrap().len(), 1);
    let rule = json!({"security_group_rule": {"security_group_id": default_id, "direction": "ingress",
                      "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
                      "remote_ip_prefix": "0.0.0.0/0", "ethertype": "IPv4"}});
    let reply = cloud
        .post("/v2.0/security-group-rules", &cloud.demo, rule.clone())
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = cloud
        .post("/v2.0/security-group-rules", &cloud.demo, rule)
        .await;
    assert_eq!(
        reply.error_type(),
        "SecurityGroupRuleExists",
        "{}",
        reply.body
    );

    let reply = cloud
        .delete(&format!("/v2.0/subnets/{subnet_id}"), &cloud.demo)
        .await;
    assert_eq!(reply.error_type(), "SubnetInUse", "{}", reply.body);
    let reply = cloud
        .delete(&format!("/v2.0/networks/{network_id}"), &cloud.demo)
        .await;
    assert_eq!(reply.error_type(), "NetworkInUse", "{}", reply.body);

    let ports = cloud
        .get("/v2.0/ports?fixed_ips=ip_address%3D10.1.0.2", &cloud.demo)
        .await;
    let port_id = ports.body["ports"][0]["id"].as_str().unwrap().to_owned();
    let reply = cloud
        .delete(&format!("/v2.0/ports/{port_id}"), &cloud.demo)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = cloud
        .delete(&format!("/v2.0/security-groups/{default_id}"), &cloud.admin)
        .await;
    assert_eq!(reply.error_type(), "SecurityGroupInUse", "{}", reply.body);
}

#[tokio::test]
async fn router_and_quota_flow_runs_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let cloud = Cloud::start_postgres(&url).await;

    let network = cloud.create_network(&cloud.demo, "xmodulo").await;
    let subnet = json!({"cidr": "10.0.0.0/24", "network_id": network["id"], "ip_version": 4});
    let reply = cloud.create_subnet(&cloud.demo, subnet).await;
    let subnet_id = reply.body["subnet"]["id"].clone();
    let reply = cloud
        .post(
            "/v2.0/networks",
            &cloud.admin,
            json!({"network": {"name": "public", "router:external": true}}),
        )
        .await;
    let public = reply.body["network"]["id"].clone();
    let subnet = json!({"cidr": "172.24.4.0/24", "network_id": public, "ip_version": 4});
    let reply = cloud.create_subnet(&cloud.admin, subnet).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);

    // Router with an interface and a gateway.
    let reply = cloud
        .post(
            "/v2.0/routers",
            &cloud.demo,
            json!({"router": {"name": "r1", "external_gateway_info": {"network_id": public}}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let router = format!(
        "/v2.0/routers/{}",
        reply.body["router"]["id"].as_str().unwrap()
    );
    let reply = cloud
        .put(
            &format!("{router}/add_router_interface"),
            &cloud.demo,
            json!({"subnet_id": subnet_id}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // A floating IP associated through it.
    let reply = cloud
        .post(
            "/v2.0/ports",
            &cloud.demo,
            json!({"port": {"network_id": network["id"]}}),
        )
        .await;
    let port_id = reply.body["port"]["id"].clone();
    let reply = cloud
        .post(
            "/v2.0/floatingips",
            &cloud.demo,
            json!({"floatingip": {"floating_network_id": public, "port_id": port_id}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["floatingip"]["status"], "ACTIVE");
    let reply = cloud
        .put(
            &format!("{router}/remove_router_interface"),
            &cloud.demo,
            json!({"subnet_id": subnet_id}),
        )
        .await;
    assert_eq!(
        reply.error_type(),
        "RouterInterfaceInUseByFloatingIP",
        "{}",
        reply.body
    );
    let reply = cloud
        .delete(
            &format!("/v2.0/ports/{}", port_id.as_str().unwrap()),
            &cloud.demo,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);

    // Quotas.
    let quota = format!("/v2.0/quotas/{}", cloud.demo_project);
    let reply = cloud
        .put(&quota, &cloud.admin, json!({"quota": {"router": 1}}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = cloud
        .post(
            "/v2.0/routers",
            &cloud.demo,
            json!({"router": {"name": "r2"}}),
        )
        .await;
    assert_eq!(reply.error_type(), "OverQuota", "{}", reply.body);
    let reply = cloud.get(&format!("{quota}/details"), &cloud.demo).await;
    assert_eq!(reply.body["quota"]["router"]["used"], 1, "{}", reply.body);

    // Agents and binding.
    let config = oxstack_network::agents::AgentConfig {
        tunneling_ip: Some("192.0.2.11".into()),
        ..Default::default()
    };
    cloud
        .service
        .report_agent("node1", config.clone())
        .await
        .unwrap();
    cloud.service.report_agent("node1", config).await.unwrap();
    let reply = cloud
        .post(
            "/v2.0/ports",
            &cloud.admin,
            json!({"port": {"network_id": network["id"], "binding:host_id": "node1"}}),
        )
        .await;
    assert_eq!(
        reply.body["port"]["binding:vif_type"], "bridge",
        "{}",
        reply.body
    );
    let reply = cloud.get("/v2.0/agents", &cloud.admin).await;
    assert_eq!(
        reply.body["agents"].as_array().unwrap().len(),
        1,
        "{}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_respect_quota_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let cloud = std::sync::Arc::new(Cloud::start_postgres(&url).await);
    let quota = format!("/v2.0/quotas/{}", cloud.demo_project);
    let reply = cloud
        .put(&quota, &cloud.admin, json!({"quota": {"network": 3}}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut tasks = Vec::new();
    for index in 0..10 {
        let cloud = cloud.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"network": {"name": format!("n{index}")}});
            let reply = cloud.post("/v2.0/networks", &cloud.demo, body).await;
            (reply.status, reply.error_type().to_owned())
        }));
    }
    let mut created = 0;
    for task in tasks {
        let (status, error_type) = task.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => assert_eq!(error_type, "OverQuota"),
            other => panic!("unexpected {other}: {error_type}"),
        }
    }
    assert_eq!(created, 3);
}

#[tokio::test]
async fn in_process_port_flow_runs_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let cloud = Cloud::start_postgres(&url).await;
    let agent = oxstack_network::agents::AgentConfig {
        tunneling_ip: Some("192.0.2.11".into()),
        tunnel_types: vec!["vxlan".into()],
        ..Default::default()
    };
    cloud.service.report_agent("node1", agent).await.unwrap();

    let network = cloud.create_network(&cloud.demo, "inproc").await;
    let network_id = network["id"].as_str().unwrap().to_owned();
    let subnet = json!({"cidr": "10.7.0.0/24", "network_id": network_id, "ip_version": 4});
    let created = cloud.create_subnet(&cloud.demo, subnet).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let network_id = oxstack_network::model::NetworkId::new(network_id);
    let dhcp = cloud
        .service
        .dhcp_port(&network_id)
        .await
        .unwrap()
        .expect("a DHCP port");
    assert_eq!(dhcp.fixed_ips[0].ip_address.to_string(), "10.7.0.2");

    let request = oxstack_network::inproc::DevicePort {
        project_id: cloud.demo_project.clone(),
        network_id: network_id.to_string(),
        device_id: "server-1".into(),
        device_owner: "compute:nova".into(),
        ..Default::default()
    };
    let port = cloud.service.create_device_port(&request).await.unwrap();
    assert_eq!(port.fixed_ips[0].ip_address.to_string(), "10.7.0.3");
    cloud.service.bind_port(&port.id, "node1").await.unwrap();
    let view = cloud.service.host_view("node1").await.unwrap();
    assert_eq!(view.networks.len(), 1);
    assert_eq!(view.networks[0].ports.len(), 1);
    assert_eq!(view.rules.len(), 1, "the default group's rules");

    let claimed = cloud
        .service
        .claim_port(&port.id, "server-1", "compute:nova")
        .await
        .unwrap();
    assert_eq!(claimed.device_id, "server-1");
    assert_eq!(
        cloud
            .service
            .ports_of_device("server-1")
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(cloud.service.delete_device_port(&port.id).await.unwrap());
    assert!(!cloud.service.delete_device_port(&port.id).await.unwrap());
}
