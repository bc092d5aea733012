//! The servers API in-process: create validation and quota, the view at
//! each microversion, lists and their filters, power actions and their
//! state rules, locks, project isolation and delete. Builds and actions
//! run through the conductor on the fake driver.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{Cloud, Reply};
use serde_json::{json, Value};

const IMAGE: &str = "6b9b6e4c-8f3a-4c1e-9d1b-3a2f0c6e7d10";
const NETWORK: &str = "0c7e5d4a-1b2c-4d3e-8f9a-0a1b2c3d4e5f";

/// Starts a cloud whose host is registered, with an image and a network
/// in project `demo`.
async fn cloud() -> Cloud {
    let cloud = Cloud::start().await;
    cloud.service.start_host().await.expect("host registers");
    cloud.fakes.images.add(IMAGE, "cirros");
    cloud
        .fakes
        .networks
        .add(NETWORK, "private", &cloud.demo_project, false);
    cloud
}

fn server_body(name: &str) -> Value {
    json!({"server": {"name": name, "imageRef": IMAGE, "flavorRef": "42", "networks": [{"uuid": NETWORK}]}})
}

async fn create(cloud: &Cloud, token: &str, version: &str, body: Value) -> Reply {
    cloud.post("/v2.1/servers", token, version, body).await
}

/// Creates server `name` as demo and returns its id.
async fn create_server(cloud: &Cloud, name: &str) -> String {
    let reply = create(cloud, &cloud.demo, "2.85", server_body(name)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    reply.body["server"]["id"].as_str().expect("id").to_owned()
}

/// Polls the server until its status is `status` with no task running, and
/// panics after 200 polls 50 ms apart (at least 10 s).
async fn wait_status(cloud: &Cloud, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let reply = cloud
            .get(&format!("/v2.1/servers/{id}"), &cloud.admin, "2.85")
            .await;
        if reply.status == StatusCode::OK {
            if reply.body["server"]["status"] == status
                && reply.body["server"]["OS-EXT-STS:task_state"].is_null()
            {
                return reply.body["server"].clone();
            }
            last = reply.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server {id} never reached {status}: {last}");
}

async fn action(cloud: &Cloud, token: &str, id: &str, body: Value) -> Reply {
    cloud
        .post(&format!("/v2.1/servers/{id}/action"), token, "2.85", body)
        .await
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

#[tokio::test]
async fn create_returns_id_links_and_password() {
    let cloud = cloud().await;
    let reply = create(&cloud, &cloud.demo, "2.85", server_body("vm1")).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let server = &reply.body["server"];
    let id = server["id"].as_str().unwrap();
    assert!(server["adminPass"].as_str().is_some_and(|p| p.len() >= 8));
    assert_eq!(server["OS-DCF:diskConfig"], "MANUAL");
    assert_eq!(server["security_groups"], json!([{"name": "default"}]));
    assert_eq!(
        server["links"][0]["href"],
        format!("{}/compute/v2.1/servers/{id}", common::PUBLIC_URL)
    );
    let location = reply
        .headers
        .get("location")
        .expect("location header")
        .to_str()
        .unwrap();
    assert!(location.ends_with(id));
    let keys: Vec<&String> = server.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
}

#[tokio::test]
async fn fixed_ip_needs_network_owner() {
    let cloud = cloud().await;
    let shared = "3f1c2b4a-0000-4000-8000-0000000000aa";
    cloud
        .fakes
        .networks
        .add(shared, "shared", &cloud.alt_project, true);
    let body = |fixed_ip: Option<&str>| {
        let mut network = json!({"uuid": shared});
        if let Some(ip) = fixed_ip {
            network["fixed_ip"] = json!(ip);
        }
        json!({"server": {"name": "s", "imageRef": IMAGE, "flavorRef": "42", "networks": [network]}})
    };

    // The gateway address of a network the caller does not own.
    let reply = create(&cloud, &cloud.demo, "2.85", body(Some("10.0.0.1"))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert!(
        message(&reply).contains("Only the owner of network"),
        "{}",
        reply.body
    );

    let assigned = create(&cloud, &cloud.demo, "2.85", body(None)).await;
    assert_eq!(assigned.status, StatusCode::ACCEPTED, "{}", assigned.body);
    let owner = create(&cloud, &cloud.alt, "2.85", body(Some("10.0.0.9"))).await;
    assert_eq!(owner.status, StatusCode::ACCEPTED, "{}", owner.body);
}

#[tokio::test]
async fn foreign_port_is_hidden_and_kept() {
    let cloud = cloud().await;
    let id = create_server(&cloud, "victim").await;
    wait_status(&cloud, &id, "ACTIVE").await;
    let foreign = oxstack_compute::external::PortInfo {
        id: "3f1c2b4a-0000-4000-8000-0000000000bb".into(),
        network_id: "3f1c2b4a-0000-4000-8000-0000000000cc".into(),
        network_name: "alt-net".into(),
        project_id: cloud.alt_project.clone(),
        mac_address: "fa:16:3e:00:00:bb".into(),
        fixed_ips: Vec::new(),
        floating_ips: Vec::new(),
        mtu: 1450,
        device_id: id.clone(),
        device_owner: "compute:nova".into(),
        status: "DOWN".into(),
        security_group_ids: Vec::new(),
        binding_host: String::new(),
        vif_type: "unbound".into(),
    };
    cloud
        .fakes
        .networks
        .ports
        .lock()
        .unwrap()
        .push(foreign.clone());

    let shown = cloud
        .get(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.85")
        .await;
    assert!(
        shown.body["server"]["addresses"].get("alt-net").is_none(),
        "{}",
        shown.body
    );
    let interfaces = cloud
        .get(
            &format!("/v2.1/servers/{id}/os-interface"),
            &cloud.demo,
            "2.85",
        )
        .await;
    assert!(
        !interfaces.body.to_string().contains(&foreign.id),
        "{}",
        interfaces.body
    );

    let deleted = cloud
        .delete(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.85")
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    for _ in 0..200 {
        let gone = cloud
            .get(&format!("/v2.1/servers/{id}"), &cloud.admin, "2.85")
            .await;
        if gone.status == StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ports = cloud.fakes.networks.ports.lock().unwrap().clone();
    assert!(
        ports.iter().any(|port| port.id == foreign.id),
        "the other project's port was deleted with the server"
    );
}

#[tokio::test]
async fn create_rejects_bad_references() {
    let cloud = cloud().await;
    cloud
        .fakes
        .images
        .add("3f1c2b4a-0000-4000-8000-000000000001", "queued");
    cloud
        .fakes
        .images
        .images
        .lock()
        .unwrap()
        .get_mut("3f1c2b4a-0000-4000-8000-000000000001")
        .unwrap()
        .status = "queued".to_owned();
    let missing_image = "3f1c2b4a-0000-4000-8000-000000000002";
    let missing_network = "3f1c2b4a-0000-4000-8000-000000000003";
    let cases: Vec<(Value, StatusCode, String)> = vec![
        (
            json!({"flavorRef": "99"}),
            StatusCode::BAD_REQUEST,
            "Flavor 99 could not be found.".into(),
        ),
        (
            json!({"imageRef": missing_image}),
            StatusCode::BAD_REQUEST,
            format!("Image {missing_image} could not be found."),
        ),
        (
            json!({"imageRef": "3f1c2b4a-0000-4000-8000-000000000001"}),
            StatusCode::BAD_REQUEST,
            "Image 3f1c2b4a-0000-4000-8000-000000000001 is not active.".into(),
        ),
        (
            json!({"networks": [{"uuid": missing_network}]}),
            StatusCode::BAD_REQUEST,
            format!("Network {missing_network} could not be found."),
        ),
        (
            json!({"key_name": "nokey"}),
            StatusCode::BAD_REQUEST,
            "Invalid key_name provided.".into(),
        ),
        (
            json!({"security_groups": [{"name": "nosuchgroup"}]}),
            StatusCode::BAD_REQUEST,
            "Security group nosuchgroup not found.".into(),
        ),
        (
            json!({"availability_zone": "elsewhere"}),
            StatusCode::BAD_REQUEST,
            "The requested availability zone is not available".into(),
        ),
    ];
    for (change, status, expected) in cases {
        let mut body = server_body("bad");
        for (key, value) in change.as_object().unwrap() {
            body["server"][key] = value.clone();
        }
        let reply = create(&cloud, &cloud.demo, "2.85", body).await;
        assert_eq!(reply.status, status, "{change}: {}", reply.body);
        assert_eq!(message(&reply), expected, "{change}");
    }
}

#[tokio::test]
async fn create_checks_flavor_against_image() {
    let cloud = cloud().await;
    {
        let mut images = cloud.fakes.images.images.lock().unwrap();
        let image = images.get_mut(IMAGE).unwrap();
        image.min_ram = 256;
    }
    let reply = create(&cloud, &cloud.demo, "2.85", server_body("small")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(
        message(&reply),
        "Flavor's memory is too small for requested image."
    );
    {
        let mut images = cloud.fakes.images.images.lock().unwrap();
        let image = images.get_mut(IMAGE).unwrap();
        image.min_ram = 0;
        image.min_disk = 2;
    }
    let reply = create(&cloud, &cloud.demo, "2.85", server_body("small")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert!(
        message(&reply).starts_with("Flavor's disk is smaller than the minimum size"),
        "{}",
        reply.body
    );
    {
        let mut images = cloud.fakes.images.images.lock().unwrap();
        let image = images.get_mut(IMAGE).unwrap();
        image.min_disk = 0;
        image.size = Some(3 << 30);
    }
    let reply = create(&cloud, &cloud.demo, "2.85", server_body("small")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert!(
        message(&reply).starts_with("Flavor's disk is too small for requested image."),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn create_networks_rules_follow_microversion() {
    let cloud = cloud().await;
    let mut body = server_body("nets");
    body["server"].as_object_mut().unwrap().remove("networks");
    let reply = create(&cloud, &cloud.demo, "2.37", body.clone()).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "networks is required at 2.37: {}",
        reply.body
    );
    // Before 2.37 the one available network is used.
    let reply = create(&cloud, &cloud.demo, "2.36", body.clone()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);

    cloud.fakes.networks.add(
        "0c7e5d4a-1b2c-4d3e-8f9a-0a1b2c3d4e60",
        "second",
        &cloud.demo_project,
        false,
    );
    body["server"]["networks"] = json!("auto");
    let reply = create(&cloud, &cloud.demo, "2.37", body.clone()).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert!(message(&reply).starts_with("More than one possible network found."));

    // alt has no network at all.
    let reply = create(&cloud, &cloud.alt, "2.37", body.clone()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert!(message(&reply).starts_with("Unable to automatically allocate a network"));

    body["server"]["networks"] = json!("none");
    let reply = create(&cloud, &cloud.alt, "2.37", body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
}

#[tokio::test]
async fn create_over_quota_returns_nova_403() {
    let cloud = cloud().await;
    let path = format!("/v2.1/os-quota-sets/{}", cloud.demo_project);
    let reply = cloud
        .put(
            &path,
            &cloud.admin,
            "2.85",
            json!({"quota_set": {"instances": 1}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    create_server(&cloud, "first").await;
    let reply = create(&cloud, &cloud.demo, "2.85", server_body("second")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert_eq!(
        message(&reply),
        "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances"
    );

    let limits = cloud.get("/v2.1/limits", &cloud.demo, "2.85").await;
    assert_eq!(limits.body["limits"]["absolute"]["totalInstancesUsed"], 1);
    assert_eq!(limits.body["limits"]["absolute"]["totalCoresUsed"], 1);
    assert_eq!(limits.body["limits"]["absolute"]["totalRAMUsed"], 128);
    let detail = cloud
        .get(&format!("{path}/detail"), &cloud.demo, "2.85")
        .await;
    assert_eq!(
        detail.body["quota_set"]["instances"]["in_use"], 1,
        "{}",
        detail.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_respect_quota() {
    let cloud = std::sync::Arc::new(cloud().await);
    let path = format!("/v2.1/os-quota-sets/{}", cloud.demo_project);
    cloud
        .put(
            &path,
            &cloud.admin,
            "2.85",
            json!({"quota_set": {"instances": 2}}),
        )
        .await;
    let mut tasks = Vec::new();
    for index in 0..8 {
        let cloud = cloud.clone();
        tasks.push(tokio::spawn(async move {
            create(
                &cloud,
                &cloud.demo,
                "2.85",
                server_body(&format!("race{index}")),
            )
            .await
            .status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("create task"));
    }
    let accepted = statuses
        .iter()
        .filter(|status| **status == StatusCode::ACCEPTED)
        .count();
    let rejected = statuses
        .iter()
        .filter(|status| **status == StatusCode::FORBIDDEN)
        .count();
    assert_eq!(accepted, 2, "{statuses:?}");
    assert_eq!(rejected, 6, "{statuses:?}");
}

#[tokio::test]
async fn min_max_count_names_servers() {
    let cloud = cloud().await;
    let mut body = server_body("multi");
    body["server"]["min_count"] = json!(2);
    body["server"]["max_count"] = json!(3);
    body["server"]["return_reservation_id"] = json!(true);
    let reply = create(&cloud, &cloud.demo, "2.85", body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let reservation = reply.body["reservation_id"]
        .as_str()
        .expect("reservation id")
        .to_owned();
    assert!(reservation.starts_with("r-"));
    let list = cloud
        .get("/v2.1/servers?name=multi", &cloud.demo, "2.85")
        .await;
    let mut names: Vec<&str> = list.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["multi-1", "multi-2", "multi-3"]);
    let by_reservation = cloud
        .get(
            &format!("/v2.1/servers?reservation_id={reservation}"),
            &cloud.demo,
            "2.85",
        )
        .await;
    assert_eq!(by_reservation.body["servers"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn server_becomes_active_with_addresses() {
    let cloud = cloud().await;
    let id = create_server(&cloud, "vm1").await;
    let server = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(server["OS-EXT-STS:vm_state"], "active");
    assert_eq!(server["OS-EXT-STS:power_state"], 1);
    let private = server["addresses"]["private"]
        .as_array()
        .expect("private network addresses");
    assert_eq!(private[0]["version"], 4);
    assert_eq!(private[0]["OS-EXT-IPS:type"], "fixed");
    assert!(private[0]["OS-EXT-IPS-MAC:mac_addr"]
        .as_str()
        .unwrap()
        .starts_with("fa:16:3e"));
    assert_eq!(server["hostId"].as_str().unwrap().len(), 56);
    assert!(server["OS-SRV-USG:launched_at"].as_str().is_some());
    assert_eq!(server["security_groups"], json!([{"name": "default"}]));
    let ips = cloud
        .get(&format!("/v2.1/servers/{id}/ips"), &cloud.demo, "2.85")
        .await;
    assert_eq!(
        ips.body["addresses"]["private"][0]["addr"],
        private[0]["addr"]
    );
    let one = cloud
        .get(
            &format!("/v2.1/servers/{id}/ips/private"),
            &cloud.demo,
            "2.85",
        )
        .await;
    assert_eq!(one.status, StatusCode::OK);
    let none = cloud
        .get(
            &format!("/v2.1/servers/{id}/ips/public"),
            &cloud.demo,
            "2.85",
        )
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);

    let interfaces = cloud
        .get(
            &format!("/v2.1/servers/{id}/os-interface"),
            &cloud.demo,
            "2.70",
        )
        .await;
    let attachment = &interfaces.body["interfaceAttachments"][0];
    assert_eq!(attachment["net_id"], NETWORK);
    assert_eq!(attachment["fixed_ips"][0]["ip_address"], private[0]["addr"]);
    assert!(attachment["tag"].is_null());
    let port_id = attachment["port_id"].as_str().unwrap();
    let shown = cloud
        .get(
            &format!("/v2.1/servers/{id}/os-interface/{port_id}"),
            &cloud.demo,
            "2.1",
        )
        .await;
    assert_eq!(shown.body["interfaceAttachment"]["port_id"], port_id);
    assert!(
        shown.body["interfaceAttachment"].get("tag").is_none(),
        "tag appears at 2.70"
    );
    let other = cloud
        .get(
            &format!("/v2.1/servers/{id}/os-interface/{NETWORK}"),
            &cloud.demo,
            "2.1",
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn view_keys_follow_microversion() {
    let cloud = cloud().await;
    let id = create_server(&cloud, "vm1").await;
    wait_status(&cloud, &id, "ACTIVE").await;
    let path = format!("/v2.1/servers/{id}");

    let v21 = cloud.get(&path, &cloud.demo, "2.1").await.body["server"].clone();
    for absent in [
        "locked",
        "description",
        "tags",
        "locked_reason",
        "OS-EXT-SRV-ATTR:host",
        "host_status",
    ] {
        assert!(v21.get(absent).is_none(), "{absent} at 2.1: {v21}");
    }
    assert_eq!(keys(&v21["flavor"]), vec!["id", "links"]);
    assert_eq!(v21["flavor"]["id"], "42");

    let v247 = cloud.get(&path, &cloud.demo, "2.47").await.body["server"].clone();
    assert_eq!(v247["flavor"]["original_name"], "m1.nano");
    assert_eq!(v247["flavor"]["ram"], 128);
    assert!(v247["flavor"].get("id").is_none());
    assert_eq!(v247["locked"], false);
    assert_eq!(v247["tags"], json!([]));
    assert!(v247.get("locked_reason").is_none());

    let v273 = cloud.get(&path, &cloud.demo, "2.73").await.body["server"].clone();
    assert!(v273["locked_reason"].is_null());
    assert_eq!(v273["server_groups"], json!([]));
    assert!(v273["trusted_image_certificates"].is_null());

    let admin = cloud.get(&path, &cloud.admin, "2.73").await.body["server"].clone();
    assert_eq!(admin["OS-EXT-SRV-ATTR:host"], "node1");
    assert_eq!(admin["OS-EXT-SRV-ATTR:hostname"], "vm1");
    assert_eq!(admin["host_status"], "UP");
    assert!(
        v273.get("OS-EXT-SRV-ATTR:host").is_none(),
        "members see no extended attributes"
    );
}

#[tokio::test]
async fn update_response_follows_microversion() {
    let cloud = cloud().await;
    let id = create_server(&cloud, "vm1").await;
    let path = format!("/v2.1/servers/{id}");
    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            "2.74",
            json!({"server": {"name": "renamed", "description": "d"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["server"]["name"], "renamed");
    assert_eq!(reply.body["server"]["description"], "d");
    assert!(reply.body["server"].get("OS-EXT-STS:vm_state").is_none());
    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            "2.75",
            json!({"server": {"name": "again"}}),
        )
        .await;
    assert!(
        reply.body["server"].get("OS-EXT-STS:vm_state").is_some(),
        "{}",
        reply.body
    );
    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            "2.18",
            json!({"server": {"description": "d"}}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "description needs 2.19"
    );
}

#[tokio::test]
async fn other_projects_server_is_not_found() {
    let cloud = cloud().await;
    let id = create_server(&cloud, "mine").await;
    let path = format!("/v2.1/servers/{id}");
    assert_eq!(
        cloud.get(&path, &cloud.alt, "2.85").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        cloud.delete(&path, &cloud.alt, "2.85").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        action(&cloud, &cloud.alt, &id, json!({"os-stop": null}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        cloud
            .get(&format!("{path}/metadata"), &cloud.alt, "2.85")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let list = cloud.get("/v2.1/servers", &cloud.alt, "2.85").await;
    assert_eq!(list.body["servers"], json!([]));
    assert_eq!(
        cloud
            .get("/v2.1/servers/vm1", &cloud.demo, "2.85")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn power_actions_follow_state_rules() {
    let cloud = cloud().await;
    let id = create_server(&cloud, "vm1").await;
    wait_status(&cloud, &id, "ACTIVE").await;

    let reply = action(&cloud, &cloud.demo, &id, json!({"os-start": null})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        message(&reply),
        format!("Cannot 'start' instance {id} while it is in vm_state active")
    );

    let reply = action(&cloud, &cloud.demo, &id, json!({"os-stop": null})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let server = wait_status(&cloud, &id, "SHUTOFF").await;
    assert_eq!(server["OS-EXT-STS:power_state"], 4);
    let reply = action(&cloud, &cloud.demo, &id, json!({"os-stop": {}})).await;
    assert_eq!(
        message(&reply),
        format!("Cannot 'stop' instance {id} while it is in vm_state stopped")
    );
    let reply = action(&cloud, &cloud.demo, &id, json!({"pause": null})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);

    assert_eq!(
        action(&cloud, &cloud.demo, &id, json!({"os-start": null}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(
        action(&cloud, &cloud.demo, &id, json!({"pause": null}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    wait_status(&cloud, &id, "PAUSED").await;
    assert_eq!(
        action(&cloud, &cloud.demo, &id, json!({"suspend": null}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        action(&cloud, &cloud.demo, &id, json!({"unpause": null}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(
        action(&cloud, &cloud.demo, &id, json!({"suspend": null}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    wait_status(&cloud, &id, "SUSPENDED").await;
    assert_eq!(
        action(
            &cloud,
            &cloud.demo,
            &id,
            json!({"reboot": {"type": "SOFT"}})
        )
        .await
        .status,
        StatusCode::CONFLICT,
        "soft reboot needs an active server"
    );
    assert_eq!(
        action(&cloud, &cloud.demo, &id, json!({"resume": null}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(
        action(
            &cloud,
            &cloud.demo,
            &id,
            json!({"reboot": {"type": "HARD"}})
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    wait_status(&cloud, &id, "ACTIVE").await;

    let reply = action(&cloud, &cloud.demo, &id, json!({"fly": null})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(message(&reply), "There is no such action: fly");
    let reply = action(
        &cloud,
        &cloud.demo,
        &id,
        json!({"resize": {"flavorRef": "1"}}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_IMPLEMENTED);
}

#[tokio::test]
async fn unscheduled_server_refuses_stop() {
    // Without a registered host the build cannot schedule, so the server
    // stays out of `active`.
    let bare = Cloud::start().await;
    bare.fakes.images.add(IMAGE, "cirros");
    bare.fakes
        .networks
        .add(NETWORK, "private", &bare.demo_project, false);
    let id = create_server(&bare, "stuck").await;
    let reply = action(&bare, &bare.demo, &id, json!({"os-stop": null})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
}

#[tokio::test]
async fn locked_server_refuses_members() {
    let cloud = cloud().await;
    let id = create_server(&cloud, "vm1").await;
    wait_status(&cloud, &id, "ACTIVE").await;

    let reply = cloud
        .post(
            &format!("/v2.1/servers/{id}/action"),
            &cloud.demo,
            "2.73",
            json!({"lock": {"locked_reason": "keep"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let shown = cloud
        .get(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.73")
        .await;
    assert_eq!(shown.body["server"]["locked"], true);
    assert_eq!(shown.body["server"]["locked_reason"], "keep");
    let reply = action(&cloud, &cloud.demo, &id, json!({"os-stop": null})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(message(&reply), format!("Instance {id} is locked"));
    let reply = cloud
        .delete(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.85")
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let locked = cloud
        .get("/v2.1/servers?locked=true", &cloud.demo, "2.73")
        .await;
    assert_eq!(locked.body["servers"].as_array().unwrap().len(), 1);

    // An admin's lock cannot be lifted by the owner.
    assert_eq!(
        action(&cloud, &cloud.admin, &id, json!({"lock": null}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        action(&cloud, &cloud.demo, &id, json!({"unlock": null}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        action(&cloud, &cloud.admin, &id, json!({"unlock": null}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let shown = cloud
        .get(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.73")
        .await;
    assert_eq!(shown.body["server"]["locked"], false);
    assert!(shown.body["server"]["locked_reason"].is_null());
}

#[tokio::test]
async fn metadata_api_validates() {
    let cloud = cloud().await;
    let id = create_server(&cloud, "vm1").await;
    wait_status(&cloud, &id, "ACTIVE").await;
    let path = format!("/v2.1/servers/{id}/metadata");

    let reply = cloud
        .post(
            &path,
            &cloud.demo,
            "2.85",
            json!({"metadata": {"a": "1", "b": "2"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["metadata"], json!({"a": "1", "b": "2"}));
    let reply = cloud
        .put(&path, &cloud.demo, "2.85", json!({"metadata": {"c": "3"}}))
        .await;
    assert_eq!(reply.body["metadata"], json!({"c": "3"}));
    let reply = cloud
        .put(
            &format!("{path}/d"),
            &cloud.demo,
            "2.85",
            json!({"meta": {"d": "4"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["meta"], json!({"d": "4"}));
    let reply = cloud.get(&format!("{path}/d"), &cloud.demo, "2.85").await;
    assert_eq!(reply.body["meta"], json!({"d": "4"}));

    let reply = cloud
        .put(
            &format!("{path}/e"),
            &cloud.demo,
            "2.85",
            json!({"meta": {"d": "4"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(message(&reply), "Request body and URI mismatch");
    let reply = cloud
        .put(
            &format!("{path}/d"),
            &cloud.demo,
            "2.85",
            json!({"meta": {"d": "4", "e": "5"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "one item only");
    let long_key = "k".repeat(256);
    let reply = cloud
        .post(
            &path,
            &cloud.demo,
            "2.85",
            json!({"metadata": {long_key: "v"}}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "key over 255 characters"
    );
    let reply = cloud
        .post(
            &path,
            &cloud.demo,
            "2.85",
            json!({"metadata": {"k": "v".repeat(256)}}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "value over 255 characters"
    );

    let many: serde_json::Map<String, Value> =
        (0..129).map(|i| (format!("key{i}"), json!("v"))).collect();
    let reply = cloud
        .put(&path, &cloud.demo, "2.85", json!({"metadata": many}))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        message(&reply),
        "Maximum number of metadata items exceeds 128"
    );

    assert_eq!(
        cloud
            .delete(&format!("{path}/d"), &cloud.demo, "2.85")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let reply = cloud
        .delete(&format!("{path}/d"), &cloud.demo, "2.85")
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(message(&reply), "Metadata item was not found");
}

#[tokio::test]
async fn list_filters_and_paging() {
    let cloud = cloud().await;
    let first = create_server(&cloud, "alpha").await;
    let second = create_server(&cloud, "beta").await;
    let third = create_server(&cloud, "alphabet").await;
    wait_status(&cloud, &first, "ACTIVE").await;
    wait_status(&cloud, &second, "ACTIVE").await;
    wait_status(&cloud, &third, "ACTIVE").await;

    let reply = cloud
        .get("/v2.1/servers?name=alpha", &cloud.demo, "2.85")
        .await;
    assert_eq!(
        reply.body["servers"].as_array().unwrap().len(),
        2,
        "name is a regular expression"
    );
    let reply = cloud
        .get("/v2.1/servers?name=%5Ealpha%24", &cloud.demo, "2.85")
        .await;
    assert_eq!(reply.body["servers"].as_array().unwrap().len(), 1);

    action(&cloud, &cloud.demo, &second, json!({"os-stop": null})).await;
    wait_status(&cloud, &second, "SHUTOFF").await;
    let reply = cloud
        .get("/v2.1/servers/detail?status=SHUTOFF", &cloud.demo, "2.85")
        .await;
    let servers = reply.body["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["id"], second);
    let reply = cloud
        .get("/v2.1/servers?status=sleepy", &cloud.demo, "2.85")
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // Creation times have one-second resolution, so paging is checked in
    // name order, which does not depend on timing.
    let sorted = "/v2.1/servers?sort_key=display_name&sort_dir=asc";
    let reply = cloud
        .get(&format!("{sorted}&limit=2"), &cloud.demo, "2.85")
        .await;
    let page: Vec<&str> = reply.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(page, vec![first.as_str(), third.as_str()]);
    let next = reply.body["servers_links"][0]["href"]
        .as_str()
        .expect("next link");
    assert!(next.contains(&format!("marker={third}")), "{next}");
    let reply = cloud
        .get(
            &format!("{sorted}&limit=2&marker={third}"),
            &cloud.demo,
            "2.85",
        )
        .await;
    assert_eq!(reply.body["servers"][0]["id"], second);
    assert!(reply.body.get("servers_links").is_none());

    let reply = cloud
        .get(
            "/v2.1/servers?sort_key=display_name&sort_dir=asc",
            &cloud.demo,
            "2.85",
        )
        .await;
    let names: Vec<&str> = reply.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["alpha", "alphabet", "beta"]);

    let reply = cloud
        .get(
            "/v2.1/servers/detail?deleted=False&host=node1",
            &cloud.demo,
            "2.85",
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "members' admin filters are dropped"
    );
    assert_eq!(reply.body["servers"].as_array().unwrap().len(), 3);
    let reply = cloud
        .get("/v2.1/servers?all_tenants=True", &cloud.demo, "2.85")
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = cloud
        .get("/v2.1/servers?all_tenants=True", &cloud.admin, "2.85")
        .await;
    assert_eq!(reply.body["servers"].as_array().unwrap().len(), 3);
    let reply = cloud.get("/v2.1/servers", &cloud.admin, "2.85").await;
    assert_eq!(
        reply.body["servers"].as_array().unwrap().len(),
        0,
        "admins see their own project without all_tenants"
    );
    let ip = cloud
        .get(&format!("/v2.1/servers/{first}"), &cloud.demo, "2.85")
        .await
        .body["server"]["addresses"]["private"][0]["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = cloud
        .get(
            &format!("/v2.1/servers?ip=^{}$", ip.replace('.', "%5C.")),
            &cloud.demo,
            "2.85",
        )
        .await;
    assert_eq!(
        reply.body["servers"].as_array().unwrap().len(),
        1,
        "{}",
        reply.body
    );
    let reply = cloud
        .get("/v2.1/servers?colour=red", &cloud.demo, "2.75")
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "unknown filters are a 400 from 2.75"
    );
}

#[tokio::test]
async fn tags_follow_nova_rules() {
    let cloud = cloud().await;
    let mut body = server_body("tagged");
    body["server"]["tags"] = json!(["one", "two"]);
    let reply = create(&cloud, &cloud.demo, "2.52", body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let id = reply.body["server"]["id"].as_str().unwrap().to_owned();
    wait_status(&cloud, &id, "ACTIVE").await;
    let path = format!("/v2.1/servers/{id}/tags");
    let reply = cloud.get(&path, &cloud.demo, "2.26").await;
    assert_eq!(reply.body["tags"], json!(["one", "two"]));
    assert_eq!(
        cloud.get(&path, &cloud.demo, "2.25").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        cloud
            .put(&format!("{path}/three"), &cloud.demo, "2.26", Value::Null)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        cloud
            .get(&format!("{path}/three"), &cloud.demo, "2.26")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let reply = cloud
        .get("/v2.1/servers?tags=one,three", &cloud.demo, "2.26")
        .await;
    assert_eq!(reply.body["servers"].as_array().unwrap().len(), 1);
    let reply = cloud
        .get("/v2.1/servers?not-tags-any=two", &cloud.demo, "2.26")
        .await;
    assert_eq!(reply.body["servers"].as_array().unwrap().len(), 0);
    assert_eq!(
        cloud
            .delete(&format!("{path}/one"), &cloud.demo, "2.26")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        cloud
            .delete(&format!("{path}/one"), &cloud.demo, "2.26")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let reply = cloud
        .put(&path, &cloud.demo, "2.26", json!({"tags": ["x"]}))
        .await;
    assert_eq!(reply.body["tags"], json!(["x"]));
    let reply = cloud
        .put(&path, &cloud.demo, "2.26", json!({"tags": ["a/b"]}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn instance_actions_record_requests() {
    let cloud = cloud().await;
    let id = create_server(&cloud, "vm1").await;
    wait_status(&cloud, &id, "ACTIVE").await;
    action(&cloud, &cloud.demo, &id, json!({"os-stop": null})).await;
    wait_status(&cloud, &id, "SHUTOFF").await;

    let reply = cloud
        .get(
            &format!("/v2.1/servers/{id}/os-instance-actions"),
            &cloud.demo,
            "2.1",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let actions = reply.body["instanceActions"].as_array().unwrap();
    let names: Vec<&str> = actions
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["stop", "create"]);
    assert!(actions[0].get("updated_at").is_none());
    let create_request = actions[1]["request_id"].as_str().unwrap();

    let path = format!("/v2.1/servers/{id}/os-instance-actions/{create_request}");
    let member = cloud.get(&path, &cloud.demo, "2.1").await;
    assert!(
        member.body["instanceAction"].get("events").is_none(),
        "members see events from 2.51"
    );
    let member = cloud.get(&path, &cloud.demo, "2.62").await;
    let events = member.body["instanceAction"]["events"]
        .as_array()
        .expect("events");
    assert!(!events.is_empty());
    assert!(events[0].get("traceback").is_none());
    assert!(events[0].get("host").is_none());
    assert!(events[0]["hostId"].is_string());
    let admin = cloud.get(&path, &cloud.admin, "2.84").await;
    let events = admin.body["instanceAction"]["events"]
        .as_array()
        .expect("events");
    assert!(
        events.iter().any(|event| event["host"] == "node1"),
        "{events:?}"
    );
    assert!(events.iter().all(|event| event.get("details").is_some()));

    let paged = cloud
        .get(
            &format!("/v2.1/servers/{id}/os-instance-actions?limit=1"),
            &cloud.demo,
            "2.58",
        )
        .await;
    assert_eq!(paged.body["instanceActions"].as_array().unwrap().len(), 1);
    assert!(paged.body["links"][0]["href"].is_string());
    let missing = cloud
        .get(
            &format!("/v2.1/servers/{id}/os-instance-actions/req-none"),
            &cloud.demo,
            "2.1",
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn console_output_returns_tail() {
    let cloud = cloud().await;
    let id = create_server(&cloud, "vm1").await;
    wait_status(&cloud, &id, "ACTIVE").await;
    // Nova keeps the last `length` pieces of the log split at newlines.
    // The log ends in a newline, so its last piece is empty.
    let reply = action(
        &cloud,
        &cloud.demo,
        &id,
        json!({"os-getConsoleOutput": {"length": 2}}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["output"], "login:\n");
    let reply = action(
        &cloud,
        &cloud.demo,
        &id,
        json!({"os-getConsoleOutput": {"length": 3}}),
    )
    .await;
    assert_eq!(
        reply.body["output"].as_str().unwrap().split('\n').count(),
        3,
        "{}",
        reply.body
    );
    let reply = action(&cloud, &cloud.demo, &id, json!({"os-getConsoleOutput": {}})).await;
    assert!(reply.body["output"].as_str().unwrap().contains("vm1"));
}

#[tokio::test]
async fn delete_removes_server() {
    let cloud = cloud().await;
    let id = create_server(&cloud, "vm1").await;
    // Delete is accepted while the server still builds.
    let reply = cloud
        .delete(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.85")
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let mut gone = false;
    for _ in 0..200 {
        if cloud
            .get(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.85")
            .await
            .status
            == StatusCode::NOT_FOUND
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "server still shown after delete");
    let deleted = cloud
        .get(
            &format!("/v2.1/servers/detail?deleted=True&all_tenants=1&uuid={id}"),
            &cloud.admin,
            "2.85",
        )
        .await;
    assert_eq!(
        deleted.body["servers"][0]["status"], "DELETED",
        "{}",
        deleted.body
    );
    let limits = cloud.get("/v2.1/limits", &cloud.demo, "2.85").await;
    assert_eq!(limits.body["limits"]["absolute"]["totalInstancesUsed"], 0);
}

#[tokio::test]
async fn create_rejects_unsupported_requests() {
    let cloud = cloud().await;
    let mut body = server_body("files");
    body["server"]["personality"] = json!([{"path": "/etc/motd", "contents": "aGk="}]);
    let reply = create(&cloud, &cloud.demo, "2.56", body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let mut body = server_body("files");
    body["server"]["personality"] = json!([]);
    assert_eq!(
        create(&cloud, &cloud.demo, "2.57", body).await.status,
        StatusCode::BAD_REQUEST,
        "personality is gone at 2.57"
    );

    let mut body = server_body("grouped");
    let group = "9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
    body["os:scheduler_hints"] = json!({"group": group});
    let reply = create(&cloud, &cloud.demo, "2.85", body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        message(&reply),
        format!("Instance group {group} could not be found.")
    );

    let mut body = server_body("volume");
    body["server"]["block_device_mapping_v2"] = json!([{"uuid": IMAGE, "boot_index": 0, "source_type": "image", "destination_type": "volume", "volume_size": 1}]);
    let reply = create(&cloud, &cloud.demo, "2.85", body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);

    let flavor =
        json!({"flavor": {"name": "zero", "ram": 128, "vcpus": 1, "disk": 0, "id": "zero"}});
    assert_eq!(
        cloud
            .post("/v2.1/flavors", &cloud.admin, "2.85", flavor)
            .await
            .status,
        StatusCode::OK
    );
    let mut body = server_body("zero");
    body["server"]["flavorRef"] = json!("zero");
    let reply = create(&cloud, &cloud.demo, "2.85", body).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert_eq!(
        message(&reply),
        "Only volume-backed servers are allowed for flavors with zero disk."
    );
}

#[tokio::test]
async fn admin_deletes_locked_server() {
    let cloud = cloud().await;
    let id = create_server(&cloud, "vm1").await;
    wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(
        action(&cloud, &cloud.demo, &id, json!({"lock": null}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let reply = cloud
        .delete(&format!("/v2.1/servers/{id}"), &cloud.admin, "2.85")
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let actions = cloud
        .get(
            &format!("/v2.1/servers/{id}/os-instance-actions"),
            &cloud.admin,
            "2.21",
        )
        .await;
    let names: Vec<&str> = actions.body["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"delete"), "{names:?}");
}

#[tokio::test]
async fn admin_actions_and_deferred_delete() {
    let cloud = cloud().await;
    let id = create_server(&cloud, "vm1").await;
    wait_status(&cloud, &id, "ACTIVE").await;

    let reset = json!({"os-resetState": {"state": "error"}});
    assert_eq!(
        action(&cloud, &cloud.demo, &id, reset.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        action(&cloud, &cloud.admin, &id, reset).await.status,
        StatusCode::ACCEPTED
    );
    let shown = cloud
        .get(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.85")
        .await;
    assert_eq!(shown.body["server"]["status"], "ERROR");
    let bad = action(
        &cloud,
        &cloud.admin,
        &id,
        json!({"os-resetState": {"state": "paused"}}),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let reply = action(&cloud, &cloud.demo, &id, json!({"restore": null})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        message(&reply),
        format!("Cannot 'restore' instance {id} while it is in vm_state error")
    );

    assert_eq!(
        action(&cloud, &cloud.demo, &id, json!({"forceDelete": null}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let mut gone = false;
    for _ in 0..200 {
        if cloud
            .get(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.85")
            .await
            .status
            == StatusCode::NOT_FOUND
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "server still shown after forceDelete");
}

#[tokio::test]
async fn quota_below_usage_needs_force() {
    let cloud = cloud().await;
    create_server(&cloud, "one").await;
    create_server(&cloud, "two").await;
    let path = format!("/v2.1/os-quota-sets/{}", cloud.demo_project);
    let reply = cloud
        .put(
            &path,
            &cloud.admin,
            "2.85",
            json!({"quota_set": {"instances": 1}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(
        message(&reply),
        "Quota limit 1 for instances must be greater than or equal to already used and reserved 2."
    );
    let forced = json!({"quota_set": {"instances": 1, "force": true}});
    assert_eq!(
        cloud.put(&path, &cloud.admin, "2.85", forced).await.status,
        StatusCode::OK
    );
}
