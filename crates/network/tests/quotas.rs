//! Network quotas: reading, setting and resetting limits, and their
//! enforcement on create.

mod common;

use axum::http::StatusCode;
use common::{Cloud, Reply};
use serde_json::json;

fn assert_error(reply: &Reply, status: StatusCode, error_type: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.error_type(), error_type, "{}", reply.body);
}

#[tokio::test]
async fn quota_show_has_neutron_defaults() {
    let cloud = Cloud::start().await;
    // `quota show demo` (the Neutron part).
    let path = format!("/v2.0/quotas/{}", cloud.demo_project);
    let reply = cloud.get(&path, &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let expected = [
        ("network", 100),
        ("subnet", 100),
        ("port", 500),
        ("router", 10),
        ("floatingip", 50),
        ("security_group", 10),
        ("security_group_rule", 100),
        ("rbac_policy", 10),
        ("subnetpool", -1),
    ];
    for (resource, limit) in expected {
        assert_eq!(
            reply.body["quota"][resource], limit,
            "{resource}: {}",
            reply.body
        );
    }
    let reply = cloud.get(&format!("{path}/default"), &cloud.demo).await;
    assert_eq!(reply.body["quota"]["port"], 500);

    // Another project's quotas are not visible to a member.
    let reply = cloud
        .get(&format!("/v2.0/quotas/{}", cloud.alt_project), &cloud.demo)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
}

#[tokio::test]
async fn admin_sets_lists_and_resets() {
    let cloud = Cloud::start().await;
    let path = format!("/v2.0/quotas/{}", cloud.demo_project);
    let reply = cloud
        .put(&path, &cloud.demo, json!({"quota": {"network": 1}}))
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "PolicyNotAuthorized");
    let reply = cloud
        .put(&path, &cloud.admin, json!({"quota": {"network": -2}}))
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    let reply = cloud
        .put(&path, &cloud.admin, json!({"quota": {"volumes": 2}}))
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "HTTPBadRequest");

    let reply = cloud
        .put(
            &path,
            &cloud.admin,
            json!({"quota": {"network": 1, "port": -1}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["quota"]["network"], 1);
    assert_eq!(reply.body["quota"]["port"], -1);
    assert_eq!(reply.body["quota"]["subnet"], 100);

    let reply = cloud.get("/v2.0/quotas", &cloud.admin).await;
    let quotas = reply.body["quotas"].as_array().unwrap();
    assert_eq!(quotas.len(), 1, "{}", reply.body);
    assert_eq!(quotas[0]["project_id"], cloud.demo_project.as_str());
    let reply = cloud.get("/v2.0/quotas", &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);

    let reply = cloud.delete(&path, &cloud.admin).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = cloud.get(&path, &cloud.demo).await;
    assert_eq!(reply.body["quota"]["network"], 100);
}

#[tokio::test]
async fn creates_over_quota_are_rejected() {
    let cloud = Cloud::start().await;
    let path = format!("/v2.0/quotas/{}", cloud.demo_project);
    let limits = json!({"quota": {"network": 1, "subnet": 1, "port": 1, "router": 1,
                                  "security_group": 2, "security_group_rule": 1}});
    let reply = cloud.put(&path, &cloud.admin, limits).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let network = cloud.create_network(&cloud.demo, "n1").await;
    let reply = cloud
        .post(
            "/v2.0/networks",
            &cloud.demo,
            json!({"network": {"name": "n2"}}),
        )
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "OverQuota");
    let message = reply.error_message();
    assert!(message.contains("['network']"), "{message}");
    assert!(message.contains("1 of 1"), "{message}");
    // Other projects keep their own limits.
    cloud.create_network(&cloud.alt, "alt-net").await;

    let subnet = |cidr: &str| json!({"cidr": cidr, "ip_version": 4, "network_id": network["id"]});
    let reply = cloud
        .create_subnet(&cloud.demo, subnet("10.0.0.0/24"))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = cloud
        .create_subnet(&cloud.demo, subnet("10.0.1.0/24"))
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "OverQuota");

    let port = json!({"port": {"network_id": network["id"]}});
    let reply = cloud.post("/v2.0/ports", &cloud.demo, port.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = cloud.post("/v2.0/ports", &cloud.demo, port).await;
    assert_error(&reply, StatusCode::CONFLICT, "OverQuota");

    let router = json!({"router": {"name": "r"}});
    let reply = cloud
        .post("/v2.0/routers", &cloud.demo, router.clone())
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = cloud.post("/v2.0/routers", &cloud.demo, router).await;
    assert_error(&reply, StatusCode::CONFLICT, "OverQuota");

    // The default group counts, as in Neutron, so a limit of two leaves one.
    let group = |name: &str| json!({"security_group": {"name": name}});
    let reply = cloud
        .post("/v2.0/security-groups", &cloud.demo, group("web"))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let web = reply.body["security_group"]["id"].clone();
    let reply = cloud
        .post("/v2.0/security-groups", &cloud.demo, group("db"))
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "OverQuota");
    // Default rules already exceed a limit of one rule.
    let rule = json!({"security_group_rule": {"security_group_id": web, "direction": "ingress",
                                             "protocol": "icmp"}});
    let reply = cloud
        .post("/v2.0/security-group-rules", &cloud.demo, rule)
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "OverQuota");

    // Usage is reported per resource.
    let reply = cloud.get(&format!("{path}/details"), &cloud.demo).await;
    assert_eq!(
        reply.body["quota"]["network"],
        json!({"limit": 1, "used": 1, "reserved": 0})
    );
    assert_eq!(reply.body["quota"]["port"]["used"], 1);
}

#[tokio::test]
async fn floating_ip_quota() {
    let cloud = Cloud::start().await;
    let reply = cloud
        .post(
            "/v2.0/networks",
            &cloud.admin,
            json!({"network": {"name": "public", "router:external": true}}),
        )
        .await;
    let public = reply.body["network"]["id"].clone();
    let reply = cloud
        .create_subnet(
            &cloud.admin,
            json!({"cidr": "172.24.4.0/24", "ip_version": 4, "network_id": public}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let path = format!("/v2.0/quotas/{}", cloud.demo_project);
    cloud
        .put(&path, &cloud.admin, json!({"quota": {"floatingip": 0}}))
        .await;
    let reply = cloud
        .post(
            "/v2.0/floatingips",
            &cloud.demo,
            json!({"floatingip": {"floating_network_id": public}}),
        )
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "OverQuota");
    // The rejected create left no port holding an address.
    let reply = cloud
        .get("/v2.0/ports?device_owner=network:floatingip", &cloud.admin)
        .await;
    assert_eq!(reply.body["ports"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_stop_at_the_limit() {
    let cloud = std::sync::Arc::new(Cloud::start().await);
    let path = format!("/v2.0/quotas/{}", cloud.demo_project);
    cloud
        .put(&path, &cloud.admin, json!({"quota": {"router": 3}}))
        .await;
    let mut tasks = Vec::new();
    for index in 0..10 {
        let cloud = cloud.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"router": {"name": format!("r{index}")}});
            let reply = cloud.post("/v2.0/routers", &cloud.demo, body).await;
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
    let reply = cloud.get("/v2.0/routers", &cloud.demo).await;
    assert_eq!(reply.body["routers"].as_array().unwrap().len(), 3);
}
