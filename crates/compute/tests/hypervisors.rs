//! `os-hypervisors` and `os-services` over HTTP, with the compute host
//! registered as the binary registers it.

mod common;

use axum::http::StatusCode;
use common::Cloud;
use oxstack_compute::host::records;
use serde_json::{json, Value};

async fn cloud() -> Cloud {
    let cloud = Cloud::start().await;
    cloud.service.start_host().await.expect("host registers");
    cloud
}

#[tokio::test]
async fn hypervisor_list_is_admin_only() {
    let cloud = cloud().await;
    for path in [
        "/v2.1/os-hypervisors",
        "/v2.1/os-hypervisors/detail",
        "/v2.1/os-services",
    ] {
        let reply = cloud.get(path, &cloud.demo, "2.1").await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn hypervisor_list_before_and_after_253() {
    let cloud = cloud().await;
    let node = records::node_by_host(cloud.service.pool(), "node1")
        .await
        .unwrap()
        .unwrap();

    let reply = cloud.get("/v2.1/os-hypervisors", &cloud.admin, "2.1").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"hypervisors": [{"id": node.id, "hypervisor_hostname": "node1", "state": "up", "status": "enabled"}]})
    );

    let reply = cloud
        .get("/v2.1/os-hypervisors", &cloud.admin, "2.53")
        .await;
    assert_eq!(reply.body["hypervisors"][0]["id"], json!(node.uuid));
}

#[tokio::test]
async fn hypervisor_detail_fields() {
    let cloud = cloud().await;
    let reply = cloud
        .get("/v2.1/os-hypervisors/detail", &cloud.admin, "2.1")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let hypervisor = &reply.body["hypervisors"][0];
    // The fake driver's host: 1000 vCPUs, 800000 MiB, 600000 GB; 512 MiB
    // of memory reserved by default.
    assert_eq!(hypervisor["vcpus"], 1000);
    assert_eq!(hypervisor["memory_mb"], 800_000);
    assert_eq!(hypervisor["local_gb"], 600_000);
    assert_eq!(hypervisor["vcpus_used"], 0);
    assert_eq!(hypervisor["memory_mb_used"], 512);
    assert_eq!(hypervisor["free_ram_mb"], 800_000 - 512);
    assert_eq!(hypervisor["running_vms"], 0);
    assert_eq!(hypervisor["hypervisor_type"], "fake");
    assert_eq!(hypervisor["host_ip"], "127.0.0.1");
    assert!(
        hypervisor["cpu_info"].is_string(),
        "cpu_info is text before 2.28"
    );
    assert_eq!(hypervisor["service"]["host"], "node1");
    assert!(hypervisor["service"]["id"].is_i64());
    assert!(hypervisor.get("servers").is_none());

    let reply = cloud
        .get("/v2.1/os-hypervisors/detail", &cloud.admin, "2.53")
        .await;
    let hypervisor = &reply.body["hypervisors"][0];
    assert_eq!(hypervisor["cpu_info"], json!({"arch": "x86_64"}));
    assert!(hypervisor["service"]["id"].is_string());
}

#[tokio::test]
async fn hypervisor_show_by_id() {
    let cloud = cloud().await;
    let node = records::node_by_host(cloud.service.pool(), "node1")
        .await
        .unwrap()
        .unwrap();

    let reply = cloud
        .get(
            &format!("/v2.1/os-hypervisors/{}", node.id),
            &cloud.admin,
            "2.1",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["hypervisor"]["hypervisor_hostname"], "node1");

    let reply = cloud
        .get(
            &format!("/v2.1/os-hypervisors/{}", node.uuid),
            &cloud.admin,
            "2.1",
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "a uuid is no id before 2.53"
    );

    let reply = cloud
        .get(
            &format!("/v2.1/os-hypervisors/{}?with_servers=true", node.uuid),
            &cloud.admin,
            "2.75",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["hypervisor"]["servers"], json!([]));

    let reply = cloud
        .get(
            &format!("/v2.1/os-hypervisors/{}", node.id),
            &cloud.admin,
            "2.53",
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "an integer is no uuid from 2.53"
    );

    let reply = cloud
        .get(
            &format!("/v2.1/os-hypervisors/{}", uuid::Uuid::new_v4()),
            &cloud.admin,
            "2.53",
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn hypervisor_pattern_search() {
    let cloud = cloud().await;
    let reply = cloud
        .get(
            "/v2.1/os-hypervisors?hypervisor_hostname_pattern=ode",
            &cloud.admin,
            "2.53",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["hypervisors"].as_array().unwrap().len(), 1);

    let reply = cloud
        .get(
            "/v2.1/os-hypervisors?hypervisor_hostname_pattern=nothing",
            &cloud.admin,
            "2.53",
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let reply = cloud
        .get(
            "/v2.1/os-hypervisors?hypervisor_hostname_pattern=node&limit=1",
            &cloud.admin,
            "2.53",
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let reply = cloud
        .get("/v2.1/os-hypervisors?unknown=1", &cloud.admin, "2.53")
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let reply = cloud
        .get("/v2.1/os-hypervisors/node/search", &cloud.admin, "2.1")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["hypervisors"][0]["hypervisor_hostname"], "node1");

    let reply = cloud
        .get("/v2.1/os-hypervisors/node/search", &cloud.admin, "2.53")
        .await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "the search route is gone from 2.53"
    );
}

#[tokio::test]
async fn hypervisor_statistics_sum() {
    let cloud = cloud().await;
    let reply = cloud
        .get("/v2.1/os-hypervisors/statistics", &cloud.admin, "2.1")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let statistics = &reply.body["hypervisor_statistics"];
    assert_eq!(statistics["count"], 1);
    assert_eq!(statistics["vcpus"], 1000);
    assert_eq!(statistics["memory_mb_used"], 512);
    assert_eq!(statistics.as_object().unwrap().len(), 12);
}

fn find<'a>(services: &'a Value, binary: &str) -> &'a Value {
    services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["binary"] == binary)
        .unwrap_or_else(|| panic!("{binary} not listed: {services}"))
}

#[tokio::test]
async fn service_list_shows_three_binaries() {
    let cloud = cloud().await;
    let reply = cloud.get("/v2.1/os-services", &cloud.admin, "2.11").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let compute = find(&reply.body, "nova-compute");
    assert_eq!(compute["zone"], "nova");
    assert_eq!(compute["state"], "up");
    assert_eq!(compute["status"], "enabled");
    assert_eq!(compute["forced_down"], false);
    assert!(compute["id"].is_i64());
    assert!(compute["updated_at"].is_string());
    assert_eq!(find(&reply.body, "nova-scheduler")["zone"], "internal");
    assert_eq!(find(&reply.body, "nova-conductor")["zone"], "internal");

    let reply = cloud
        .get("/v2.1/os-services?binary=nova-compute", &cloud.admin, "2.1")
        .await;
    assert_eq!(reply.body["services"].as_array().unwrap().len(), 1);
    assert!(
        reply.body["services"][0].get("forced_down").is_none(),
        "forced_down arrives with 2.11"
    );
}

#[tokio::test]
async fn service_disable_by_uuid() {
    let cloud = cloud().await;
    let list = cloud
        .get(
            "/v2.1/os-services?binary=nova-compute",
            &cloud.admin,
            "2.53",
        )
        .await;
    let id = list.body["services"][0]["id"]
        .as_str()
        .expect("uuid id")
        .to_owned();
    let path = format!("/v2.1/os-services/{id}");

    let reply = cloud
        .put(
            &path,
            &cloud.admin,
            "2.53",
            json!({"status": "disabled", "disabled_reason": "maintenance"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["service"]["status"], "disabled");
    assert_eq!(reply.body["service"]["disabled_reason"], "maintenance");
    assert_eq!(reply.body["service"]["id"], json!(id));

    let hypervisors = cloud
        .get("/v2.1/os-hypervisors", &cloud.admin, "2.53")
        .await;
    assert_eq!(hypervisors.body["hypervisors"][0]["status"], "disabled");

    let reply = cloud
        .put(
            &path,
            &cloud.admin,
            "2.53",
            json!({"status": "enabled", "disabled_reason": "why"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let reply = cloud.put(&path, &cloud.admin, "2.53", json!({})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let reply = cloud
        .put(&path, &cloud.admin, "2.53", json!({"forced_down": true}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["service"]["forced_down"], true);
    assert_eq!(reply.body["service"]["state"], "down");

    let scheduler = cloud
        .get(
            "/v2.1/os-services?binary=nova-scheduler",
            &cloud.admin,
            "2.53",
        )
        .await;
    let scheduler_id = scheduler.body["services"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = cloud
        .put(
            &format!("/v2.1/os-services/{scheduler_id}"),
            &cloud.admin,
            "2.53",
            json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "only nova-compute services can be updated"
    );
}

#[tokio::test]
async fn service_disable_by_action() {
    let cloud = cloud().await;
    let reply = cloud
        .put(
            "/v2.1/os-services/disable-log-reason",
            &cloud.admin,
            "2.11",
            json!({"host": "node1", "binary": "nova-compute", "disabled_reason": "upgrade"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"service": {"host": "node1", "binary": "nova-compute", "status": "disabled", "disabled_reason": "upgrade"}})
    );

    let reply = cloud
        .put(
            "/v2.1/os-services/enable",
            &cloud.admin,
            "2.11",
            json!({"host": "node1", "binary": "nova-compute"}),
        )
        .await;
    assert_eq!(reply.body["service"]["status"], "enabled");

    let reply = cloud
        .put(
            "/v2.1/os-services/enable",
            &cloud.admin,
            "2.11",
            json!({"host": "node9", "binary": "nova-compute"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let reply = cloud
        .put(
            "/v2.1/os-services/reboot",
            &cloud.admin,
            "2.11",
            json!({"host": "node1", "binary": "nova-compute"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn service_delete_removes_hypervisor() {
    let cloud = cloud().await;
    let list = cloud
        .get(
            "/v2.1/os-services?binary=nova-compute",
            &cloud.admin,
            "2.53",
        )
        .await;
    let id = list.body["services"][0]["id"].as_str().unwrap().to_owned();

    let reply = cloud
        .delete("/v2.1/os-services/not-a-uuid", &cloud.admin, "2.53")
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let reply = cloud
        .delete(&format!("/v2.1/os-services/{id}"), &cloud.admin, "2.53")
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let hypervisors = cloud
        .get("/v2.1/os-hypervisors", &cloud.admin, "2.53")
        .await;
    assert_eq!(hypervisors.body["hypervisors"], json!([]));

    let reply = cloud
        .delete(&format!("/v2.1/os-services/{id}"), &cloud.admin, "2.53")
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn service_delete_refused_with_servers() {
    let cloud = cloud().await;
    let list = cloud
        .get(
            "/v2.1/os-services?binary=nova-compute",
            &cloud.admin,
            "2.53",
        )
        .await;
    let id = list.body["services"][0]["id"].as_str().unwrap().to_owned();
    // A server on the host, as the conductor leaves it after a build.
    let mut server: oxstack_compute::server::Server = serde_json::from_value(json!({
        "id": uuid::Uuid::new_v4().to_string(), "name": "resident", "project_id": cloud.demo_project,
        "user_id": "u", "image_id": "i",
        "flavor": {"id": "42", "name": "m1.nano", "vcpus": 1, "ram": 128, "disk": 1, "ephemeral": 0, "swap": 0,
                   "extra_specs": {}},
        "vm_state": "active", "task_state": null, "power_state": 1, "host": "node1", "node": "node1",
        "availability_zone": "nova", "requested_availability_zone": null, "key_name": null, "key_data": null,
        "user_data": null, "metadata": {}, "config_drive": false, "access_ipv4": "", "access_ipv6": "",
        "security_group_ids": [], "security_group_names": [], "requested_networks": [], "created_ports": [],
        "ports": [], "locked": false, "locked_reason": null, "locked_by": null, "description": null,
        "hostname": "resident", "tags": [], "fault": null, "progress": 0, "reservation_id": "r-1",
        "launch_index": 0, "launched_at": 0, "terminated_at": null, "created_at": 0, "updated_at": 0,
        "deleted": false
    }))
    .expect("server document");
    server.revision = 0;
    oxstack_compute::server::store::insert(cloud.service.pool(), &server)
        .await
        .unwrap();

    let reply = cloud
        .delete(&format!("/v2.1/os-services/{id}"), &cloud.admin, "2.53")
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    let detail = cloud
        .get(
            "/v2.1/os-hypervisors/detail?with_servers=1",
            &cloud.admin,
            "2.53",
        )
        .await;
    assert_eq!(detail.body["hypervisors"][0]["running_vms"], 1);
    assert_eq!(
        detail.body["hypervisors"][0]["servers"][0]["name"],
        "resident"
    );
}

#[tokio::test]
async fn services_update_on_postgres() {
    let Ok(url) = std::env::var("OXSTACK_TEST_POSTGRES_URL") else {
        eprintln!(
            "OXSTACK_TEST_POSTGRES_URL is not set; PostgreSQL test not run (tests/run sets it)"
        );
        return;
    };
    let cloud = Cloud::start_postgres(&url).await;
    cloud.service.start_host().await.expect("host registers");

    let list = cloud.get("/v2.1/os-services", &cloud.admin, "2.53").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["services"].as_array().unwrap().len(), 3);
    let id = find(&list.body, "nova-compute")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = cloud
        .put(
            &format!("/v2.1/os-services/{id}"),
            &cloud.admin,
            "2.53",
            json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let detail = cloud
        .get("/v2.1/os-hypervisors/detail", &cloud.admin, "2.53")
        .await;
    assert_eq!(detail.body["hypervisors"][0]["status"], "disabled");
    assert_eq!(detail.body["hypervisors"][0]["memory_mb_used"], 512);
    let reply = cloud
        .delete(&format!("/v2.1/os-services/{id}"), &cloud.admin, "2.53")
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
}
