//! The networks API as the OpenStack CLI drives it: create, find by name,
//! list with filters and fields, project isolation, provider attributes.

mod common;

use axum::http::StatusCode;
use common::Cloud;
use serde_json::json;

#[tokio::test]
async fn cli_network_create_returns_full_network() {
    let cloud = Cloud::start().await;
    // The exact body `openstack network create xmodulo` sends.
    let reply = cloud
        .post(
            "/v2.0/networks",
            &cloud.demo,
            json!({"network": {"admin_state_up": true, "name": "xmodulo"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let network = &reply.body["network"];
    assert_eq!(network["name"], "xmodulo");
    assert_eq!(network["status"], "ACTIVE");
    assert_eq!(network["admin_state_up"], true);
    assert_eq!(network["shared"], false);
    assert_eq!(network["router:external"], false);
    assert_eq!(network["mtu"], 1450);
    assert_eq!(network["subnets"], json!([]));
    assert_eq!(network["project_id"], cloud.demo_project.as_str());
    assert_eq!(network["tenant_id"], cloud.demo_project.as_str());
    assert_eq!(network["revision_number"], 1);
    assert_eq!(network["port_security_enabled"], true);
    assert!(network["ipv4_address_scope"].is_null());
    assert!(network["created_at"].as_str().unwrap().ends_with('Z'));
    // Provider attributes are admin-only, so a member does not see them.
    assert!(network.get("provider:network_type").is_none(), "{network}");
}

#[tokio::test]
async fn find_by_name_falls_back_to_filter() {
    let cloud = Cloud::start().await;
    let created = cloud.create_network(&cloud.demo, "xmodulo").await;
    cloud.create_network(&cloud.demo, "other").await;

    let by_name = cloud.get("/v2.0/networks/xmodulo", &cloud.demo).await;
    assert_eq!(by_name.status, StatusCode::NOT_FOUND);
    assert_eq!(by_name.error_type(), "NetworkNotFound");
    assert_eq!(
        by_name.error_message(),
        "Network xmodulo could not be found."
    );

    let filtered = cloud.get("/v2.0/networks?name=xmodulo", &cloud.demo).await;
    assert_eq!(filtered.status, StatusCode::OK);
    let networks = filtered.body["networks"].as_array().unwrap();
    assert_eq!(networks.len(), 1);
    assert_eq!(networks[0]["id"], created["id"]);
}

#[tokio::test]
async fn list_with_fields_and_repeated_filters() {
    let cloud = Cloud::start().await;
    for name in ["a", "b", "c"] {
        cloud.create_network(&cloud.demo, name).await;
    }
    let reply = cloud
        .get(
            "/v2.0/networks?name=a&name=c&fields=id&fields=name&sort_key=name&sort_dir=desc",
            &cloud.demo,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let networks = reply.body["networks"].as_array().unwrap();
    let names: Vec<&str> = networks
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["c", "a"]);
    let keys: Vec<&String> = networks[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
}

#[tokio::test]
async fn pagination_links_follow_limit() {
    let cloud = Cloud::start().await;
    for name in ["a", "b", "c"] {
        cloud.create_network(&cloud.demo, name).await;
    }
    let unpaged = cloud.get("/v2.0/networks", &cloud.demo).await;
    assert!(
        unpaged.body.get("networks_links").is_none(),
        "{}",
        unpaged.body
    );

    let first = cloud.get("/v2.0/networks?limit=2", &cloud.demo).await;
    assert_eq!(first.body["networks"].as_array().unwrap().len(), 2);
    let next = first.body["networks_links"][0]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        next.starts_with("http://127.0.0.1:5000/networking/v2.0/networks?limit=2&marker="),
        "{next}"
    );

    let path = next.trim_start_matches("http://127.0.0.1:5000/networking");
    let second = cloud.get(path, &cloud.demo).await;
    assert_eq!(
        second.body["networks"].as_array().unwrap().len(),
        1,
        "{}",
        second.body
    );
    let rels: Vec<&str> = second.body["networks_links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    assert_eq!(rels, vec!["previous"]);
}

#[tokio::test]
async fn other_projects_network_is_invisible() {
    let cloud = Cloud::start().await;
    let private = cloud.create_network(&cloud.demo, "private").await;
    let id = private["id"].as_str().unwrap();

    let reply = cloud.get(&format!("/v2.0/networks/{id}"), &cloud.alt).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_type(), "NetworkNotFound");
    let listed = cloud.get("/v2.0/networks", &cloud.alt).await;
    assert_eq!(listed.body["networks"], json!([]));

    let update = cloud
        .put(
            &format!("/v2.0/networks/{id}"),
            &cloud.alt,
            json!({"network": {"name": "x"}}),
        )
        .await;
    assert_eq!(update.status, StatusCode::NOT_FOUND);
    let delete = cloud
        .delete(&format!("/v2.0/networks/{id}"), &cloud.alt)
        .await;
    assert_eq!(delete.status, StatusCode::NOT_FOUND);

    let admin_view = cloud
        .get(&format!("/v2.0/networks/{id}"), &cloud.admin)
        .await;
    assert_eq!(admin_view.status, StatusCode::OK);
    assert_eq!(admin_view.body["network"]["provider:network_type"], "vxlan");
}

#[tokio::test]
async fn shared_networks_visible_not_writable() {
    let cloud = Cloud::start().await;
    let shared = cloud
        .post(
            "/v2.0/networks",
            &cloud.admin,
            json!({"network": {"name": "shared", "shared": true}}),
        )
        .await;
    assert_eq!(shared.status, StatusCode::CREATED, "{}", shared.body);
    let public = json!({"network": {"name": "public", "router:external": true,
        "provider:network_type": "flat", "provider:physical_network": "physnet1"}});
    let external = cloud.post("/v2.0/networks", &cloud.admin, public).await;
    assert_eq!(external.status, StatusCode::CREATED, "{}", external.body);
    assert_eq!(external.body["network"]["mtu"], 1500);

    let listed = cloud
        .get("/v2.0/networks?fields=name&sort_key=name", &cloud.demo)
        .await;
    assert_eq!(
        listed.body["networks"],
        json!([{"name": "public"}, {"name": "shared"}])
    );
    let external_only = cloud
        .get("/v2.0/networks?router:external=True", &cloud.demo)
        .await;
    assert_eq!(external_only.body["networks"].as_array().unwrap().len(), 1);

    let id = shared.body["network"]["id"].as_str().unwrap();
    let update = cloud
        .put(
            &format!("/v2.0/networks/{id}"),
            &cloud.demo,
            json!({"network": {"name": "mine"}}),
        )
        .await;
    assert_eq!(update.status, StatusCode::FORBIDDEN, "{}", update.body);
    assert_eq!(update.error_type(), "PolicyNotAuthorized");
}

#[tokio::test]
async fn member_cannot_create_provider_or_shared_network() {
    let cloud = Cloud::start().await;
    let bodies = [
        json!({"network": {"name": "p", "provider:network_type": "vlan", "provider:physical_network": "physnet1",
                           "provider:segmentation_id": 100}}),
        json!({"network": {"name": "p", "provider:network_type": "vxlan"}}),
        json!({"network": {"name": "s", "shared": true}}),
        json!({"network": {"name": "e", "router:external": true}}),
    ];
    for body in bodies {
        let reply = cloud
            .post("/v2.0/networks", &cloud.demo, body.clone())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.error_type(), "PolicyNotAuthorized", "{body}");
    }
    // Explicit defaults are not privileged.
    let reply = cloud
        .post(
            "/v2.0/networks",
            &cloud.demo,
            json!({"network": {"name": "n", "shared": false}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn admin_provider_networks_and_segment_conflicts() {
    let cloud = Cloud::start().await;
    let vlan = json!({"network": {"name": "v", "provider:network_type": "vlan",
                                  "provider:physical_network": "physnet1", "provider:segmentation_id": 100}});
    let first = cloud
        .post("/v2.0/networks", &cloud.admin, vlan.clone())
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["network"]["provider:segmentation_id"], 100);
    let again = cloud.post("/v2.0/networks", &cloud.admin, vlan).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.error_type(), "VlanIdInUse");

    let flat = json!({"network": {"name": "f", "provider:network_type": "flat", "provider:physical_network": "physnet2"}});
    assert_eq!(
        cloud
            .post("/v2.0/networks", &cloud.admin, flat.clone())
            .await
            .status,
        StatusCode::CREATED
    );
    let again = cloud.post("/v2.0/networks", &cloud.admin, flat).await;
    assert_eq!(again.error_type(), "FlatNetworkInUse");

    let invalid = [
        json!({"network": {"provider:network_type": "flat"}}),
        json!({"network": {"provider:network_type": "vlan", "provider:physical_network": "physnet1"}}),
        json!({"network": {"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                           "provider:segmentation_id": 4095}}),
        json!({"network": {"provider:network_type": "gre"}}),
    ];
    for body in invalid {
        let reply = cloud
            .post("/v2.0/networks", &cloud.admin, body.clone())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.error_type(), "InvalidInput", "{body}");
    }
}

#[tokio::test]
async fn tenant_networks_get_distinct_vnis() {
    let cloud = Cloud::start().await;
    let mut vnis = Vec::new();
    for name in ["a", "b", "c"] {
        let created = cloud.create_network(&cloud.demo, name).await;
        let shown = cloud
            .get(
                &format!("/v2.0/networks/{}", created["id"].as_str().unwrap()),
                &cloud.admin,
            )
            .await;
        vnis.push(
            shown.body["network"]["provider:segmentation_id"]
                .as_i64()
                .unwrap(),
        );
    }
    assert_eq!(vnis, vec![1, 2, 3]);

    // An explicit VNI already given to a tenant network is a conflict.
    let taken =
        json!({"network": {"provider:network_type": "vxlan", "provider:segmentation_id": 2}});
    let reply = cloud.post("/v2.0/networks", &cloud.admin, taken).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.error_type(), "TunnelIdInUse");
}

#[tokio::test]
async fn update_changes_fields_and_revision() {
    let cloud = Cloud::start().await;
    let created = cloud.create_network(&cloud.demo, "n").await;
    let path = format!("/v2.0/networks/{}", created["id"].as_str().unwrap());
    let reply = cloud
        .put(&path, &cloud.demo, json!({"network": {"name": "renamed", "description": "d", "admin_state_up": false, "mtu": 1400}}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let network = &reply.body["network"];
    assert_eq!(network["name"], "renamed");
    assert_eq!(network["admin_state_up"], false);
    assert_eq!(network["mtu"], 1400);
    assert_eq!(network["revision_number"], 2);

    let too_big = cloud
        .put(&path, &cloud.demo, json!({"network": {"mtu": 9000}}))
        .await;
    assert_eq!(too_big.status, StatusCode::BAD_REQUEST);
    let read_only = cloud
        .put(&path, &cloud.demo, json!({"network": {"status": "DOWN"}}))
        .await;
    assert_eq!(read_only.status, StatusCode::BAD_REQUEST);
    let unknown = cloud
        .put(&path, &cloud.demo, json!({"network": {"colour": "blue"}}))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(
        unknown
            .error_message()
            .contains("Unrecognized attribute(s) 'colour'"),
        "{}",
        unknown.body
    );
    let shared = cloud
        .put(&path, &cloud.demo, json!({"network": {"shared": true}}))
        .await;
    assert_eq!(shared.status, StatusCode::FORBIDDEN);
    // On update, naming a guarded field at all needs its rule, as in Neutron.
    let unshare = cloud
        .put(&path, &cloud.demo, json!({"network": {"shared": false}}))
        .await;
    assert_eq!(unshare.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn delete_network_removes_subnets() {
    let cloud = Cloud::start().await;
    let network = cloud.create_network(&cloud.demo, "n").await;
    let network_id = network["id"].as_str().unwrap();
    let subnet = cloud
        .create_subnet(
            &cloud.demo,
            json!({"network_id": network_id, "cidr": "10.0.0.0/24", "ip_version": 4}),
        )
        .await;
    assert_eq!(subnet.status, StatusCode::CREATED, "{}", subnet.body);
    let subnet_id = subnet.body["subnet"]["id"].as_str().unwrap();

    let reply = cloud
        .delete(&format!("/v2.0/networks/{network_id}"), &cloud.demo)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(
        cloud
            .get(&format!("/v2.0/networks/{network_id}"), &cloud.demo)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let gone = cloud
        .get(&format!("/v2.0/subnets/{subnet_id}"), &cloud.demo)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_type(), "SubnetNotFound");
}

#[tokio::test]
async fn discovery_documents_need_no_token() {
    let cloud = Cloud::start().await;
    let bare = cloud.call("GET", "", None, None).await;
    assert_eq!(bare.status, StatusCode::OK, "GET /networking");
    let root = cloud.call("GET", "/", None, None).await;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(root.body["versions"][0]["id"], "v2.0");
    assert_eq!(
        root.body["versions"][0]["links"][0]["href"],
        "http://127.0.0.1:5000/networking/v2.0/"
    );

    let resources = cloud.call("GET", "/v2.0/", None, None).await;
    assert_eq!(resources.status, StatusCode::OK);
    assert_eq!(resources.body["resources"][0]["collection"], "networks");

    let unauthenticated = cloud.call("GET", "/v2.0/networks", None, None).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn extensions_list_and_unknown_alias() {
    let cloud = Cloud::start().await;
    let list = cloud.get("/v2.0/extensions", &cloud.demo).await;
    let aliases: Vec<&str> = list.body["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alias"].as_str().unwrap())
        .collect();
    for alias in ["external-net", "provider", "net-mtu", "project-id"] {
        assert!(aliases.contains(&alias), "{alias} missing from {aliases:?}");
    }
    let known = cloud.get("/v2.0/extensions/provider", &cloud.demo).await;
    assert_eq!(known.status, StatusCode::OK);
    assert_eq!(known.body["extension"]["alias"], "provider");

    // OSC probes this one before setting a router gateway; it must be 404.
    let unknown = cloud
        .get("/v2.0/extensions/external-gateway-multihoming", &cloud.demo)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body["NeutronError"].is_object(), "{}", unknown.body);
}

#[tokio::test]
async fn tags_on_networks_and_subnets() {
    let cloud = Cloud::start().await;
    let network = cloud.create_network(&cloud.demo, "tagged").await;
    let id = network["id"].as_str().unwrap();
    let tags_path = format!("/v2.0/networks/{id}/tags");

    // `openstack network create --tag a --tag b` replaces the tag list after creating.
    let replaced = cloud
        .put(&tags_path, &cloud.demo, json!({"tags": ["a", "b"]}))
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.body["tags"], json!(["a", "b"]));

    let added = cloud
        .call("PUT", &format!("{tags_path}/c"), Some(&cloud.demo), None)
        .await;
    assert_eq!(added.status, StatusCode::CREATED);
    let present = cloud.get(&format!("{tags_path}/c"), &cloud.demo).await;
    assert_eq!(present.status, StatusCode::NO_CONTENT);
    let removed = cloud.delete(&format!("{tags_path}/a"), &cloud.demo).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let absent = cloud.get(&format!("{tags_path}/a"), &cloud.demo).await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
    assert_eq!(absent.error_type(), "TagNotFound");

    let shown = cloud
        .get(&format!("/v2.0/networks/{id}"), &cloud.demo)
        .await;
    assert_eq!(shown.body["network"]["tags"], json!(["b", "c"]));
    assert_eq!(shown.body["network"]["revision_number"], 4);
    let filtered = cloud.get("/v2.0/networks?tags=b,c", &cloud.demo).await;
    assert_eq!(filtered.body["networks"].as_array().unwrap().len(), 1);
    let excluded = cloud
        .get("/v2.0/networks?not-tags-any=c", &cloud.demo)
        .await;
    assert_eq!(excluded.body["networks"], json!([]));

    let other = cloud
        .put(&tags_path, &cloud.alt, json!({"tags": ["x"]}))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let too_long = cloud
        .put(&tags_path, &cloud.demo, json!({"tags": ["x".repeat(256)]}))
        .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_long.error_type(), "InvalidInput");
    let duplicate = cloud
        .put(&tags_path, &cloud.demo, json!({"tags": ["d", "d"]}))
        .await;
    assert_eq!(duplicate.status, StatusCode::BAD_REQUEST);
    let appended = cloud
        .post(&tags_path, &cloud.demo, json!({"tags": ["c", "e"]}))
        .await;
    assert_eq!(appended.status, StatusCode::CREATED, "{}", appended.body);
    assert_eq!(appended.body["tags"], json!(["b", "c", "e"]));
    let cleared = cloud.delete(&tags_path, &cloud.demo).await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT);

    let subnet = cloud
        .create_subnet(
            &cloud.demo,
            json!({"network_id": id, "cidr": "10.0.0.0/24", "ip_version": 4}),
        )
        .await;
    let subnet_id = subnet.body["subnet"]["id"].as_str().unwrap();
    let reply = cloud
        .put(
            &format!("/v2.0/subnets/{subnet_id}/tags"),
            &cloud.demo,
            json!({"tags": ["s"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let shown = cloud
        .get(&format!("/v2.0/subnets/{subnet_id}"), &cloud.demo)
        .await;
    assert_eq!(shown.body["subnet"]["tags"], json!(["s"]));

    let unknown = cloud
        .get(&format!("/v2.0/widgets/{id}/tags"), &cloud.demo)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concurrent_creates_get_distinct_vnis() {
    let cloud = std::sync::Arc::new(Cloud::start().await);
    let mut tasks = Vec::new();
    for index in 0..12 {
        let cloud = cloud.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"network": {"name": format!("n{index}")}});
            let reply = cloud.post("/v2.0/networks", &cloud.admin, body).await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
            reply.body["network"]["provider:segmentation_id"]
                .as_i64()
                .unwrap()
        }));
    }
    let mut vnis = Vec::new();
    for task in tasks {
        vnis.push(task.await.unwrap());
    }
    vnis.sort_unstable();
    assert_eq!(vnis, (1..=12).collect::<Vec<i64>>());
}

#[tokio::test]
async fn exhausted_vni_range_is_unavailable() {
    let config = oxstack_network::NetworkConfig {
        vni_min: 5,
        vni_max: 6,
        ..Default::default()
    };
    let cloud = Cloud::start_with(config).await;
    cloud.create_network(&cloud.demo, "a").await;
    cloud.create_network(&cloud.demo, "b").await;
    let reply = cloud
        .post(
            "/v2.0/networks",
            &cloud.demo,
            json!({"network": {"name": "c"}}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert_eq!(reply.error_type(), "NoNetworkAvailable");
}

#[tokio::test]
async fn malformed_query_is_bad_request() {
    let cloud = Cloud::start().await;
    let reply = cloud.get("/v2.0/networks?limit=-1", &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_type(), "HTTPBadRequest");
    let reply = cloud
        .get("/v2.0/networks?sort_key=secret", &cloud.demo)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = cloud
        .get("/v2.0/networks?marker=unknown", &cloud.demo)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn shared_network_used_by_others_stays_shared() {
    let cloud = Cloud::start().await;
    let reply = cloud
        .post(
            "/v2.0/networks",
            &cloud.admin,
            json!({"network": {"name": "common", "shared": true}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let id = reply.body["network"]["id"].as_str().unwrap().to_owned();
    let unshare = json!({"network": {"shared": false}});

    // Nobody else uses it yet: sharing can be withdrawn and given again.
    let reply = cloud
        .put(
            &format!("/v2.0/networks/{id}"),
            &cloud.admin,
            unshare.clone(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = cloud
        .put(
            &format!("/v2.0/networks/{id}"),
            &cloud.admin,
            json!({"network": {"shared": true}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let port = cloud
        .post(
            "/v2.0/ports",
            &cloud.demo,
            json!({"port": {"network_id": id}}),
        )
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.body);
    let reply = cloud
        .put(&format!("/v2.0/networks/{id}"), &cloud.admin, unshare)
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert_eq!(reply.error_type(), "InvalidSharedSetting", "{}", reply.body);
}
