//! Nova's smaller APIs in-process: simple tenant usage, server diagnostics,
//! external events, server password, migrations, hosts, the instance usage
//! audit log, the extension list and the image proxy.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::Cloud;
use oxstack_compute::server::store::{self, Modified};
use serde_json::{json, Value};

const IMAGE: &str = "6b9b6e4c-8f3a-4c1e-9d1b-3a2f0c6e7d10";
const NETWORK: &str = "0c7e5d4a-1b2c-4d3e-8f9a-0a1b2c3d4e5f";

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

/// Creates server `name` as demo and waits until it is active.
async fn active_server(cloud: &Cloud, name: &str) -> String {
    let body = json!({"server": {"name": name, "imageRef": IMAGE, "flavorRef": "42", "networks": [{"uuid": NETWORK}]}});
    let reply = cloud.post("/v2.1/servers", &cloud.demo, "2.85", body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let id = reply.body["server"]["id"].as_str().expect("id").to_owned();
    for _ in 0..200 {
        let reply = cloud
            .get(&format!("/v2.1/servers/{id}"), &cloud.admin, "2.85")
            .await;
        if reply.body["server"]["status"] == "ACTIVE"
            && reply.body["server"]["OS-EXT-STS:task_state"].is_null()
        {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server {id} never became active");
}

const PERIOD: &str = "start=2000-01-01T00:00:00&end=2999-01-01T00:00:00.000000";

#[tokio::test]
async fn usage_lists_and_shows_project() {
    let cloud = cloud().await;
    let id = active_server(&cloud, "u1").await;

    let list = cloud
        .get(
            &format!("/v2.1/os-simple-tenant-usage?{PERIOD}&detailed=1"),
            &cloud.admin,
            "2.1",
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let usages = list.body["tenant_usages"].as_array().expect("list");
    assert_eq!(usages.len(), 1, "{}", list.body);
    assert_eq!(usages[0]["tenant_id"], cloud.demo_project.as_str());
    let server = &usages[0]["server_usages"][0];
    assert_eq!(server["instance_id"], id.as_str());
    assert_eq!(server["flavor"], "m1.nano");
    assert_eq!(server["memory_mb"], 128);
    assert_eq!(server["state"], "active");
    assert!(server["ended_at"].is_null());

    let summary = cloud
        .get(
            &format!("/v2.1/os-simple-tenant-usage?{PERIOD}"),
            &cloud.admin,
            "2.1",
        )
        .await;
    assert!(
        summary.body["tenant_usages"][0]
            .get("server_usages")
            .is_none(),
        "{}",
        summary.body
    );

    let own = cloud
        .get(
            &format!(
                "/v2.1/os-simple-tenant-usage/{}?{PERIOD}",
                cloud.demo_project
            ),
            &cloud.demo,
            "2.1",
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(
        own.body["tenant_usage"]["server_usages"][0]["instance_id"],
        id.as_str()
    );

    let other = cloud
        .get(
            &format!(
                "/v2.1/os-simple-tenant-usage/{}?{PERIOD}",
                cloud.demo_project
            ),
            &cloud.alt,
            "2.1",
        )
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let empty = cloud
        .get(
            &format!(
                "/v2.1/os-simple-tenant-usage/{}?{PERIOD}",
                cloud.alt_project
            ),
            &cloud.alt,
            "2.1",
        )
        .await;
    assert_eq!(empty.body["tenant_usage"], json!({}));
}

#[tokio::test]
async fn usage_rejects_bad_requests() {
    let cloud = cloud().await;
    let forbidden = cloud
        .get("/v2.1/os-simple-tenant-usage", &cloud.demo, "2.1")
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let reversed = cloud
        .get(
            "/v2.1/os-simple-tenant-usage?start=2020-02-01T00:00:00&end=2020-01-01T00:00:00",
            &cloud.admin,
            "2.1",
        )
        .await;
    assert_eq!(reversed.status, StatusCode::BAD_REQUEST);
    let garbage = cloud
        .get(
            "/v2.1/os-simple-tenant-usage?start=yesterday",
            &cloud.admin,
            "2.1",
        )
        .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    let empty_id = cloud
        .get("/v2.1/os-simple-tenant-usage/", &cloud.admin, "2.1")
        .await;
    assert_eq!(empty_id.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn usage_pages_and_counts_deleted() {
    let cloud = cloud().await;
    let first = active_server(&cloud, "p1").await;
    let second = active_server(&cloud, "p2").await;
    let reply = cloud
        .delete(&format!("/v2.1/servers/{second}"), &cloud.demo, "2.85")
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    for _ in 0..200 {
        if cloud
            .get(&format!("/v2.1/servers/{second}"), &cloud.admin, "2.85")
            .await
            .status
            == StatusCode::NOT_FOUND
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let all = cloud
        .get(
            &format!("/v2.1/os-simple-tenant-usage?{PERIOD}&detailed=1"),
            &cloud.admin,
            "2.40",
        )
        .await;
    let servers = all.body["tenant_usages"][0]["server_usages"]
        .as_array()
        .expect("servers")
        .clone();
    assert_eq!(servers.len(), 2, "the deleted server counts: {}", all.body);
    let deleted = servers
        .iter()
        .find(|s| s["instance_id"] == second.as_str())
        .expect("deleted server");
    assert_eq!(deleted["state"], "terminated");
    assert!(deleted["ended_at"].is_string());

    let page = cloud
        .get(
            &format!("/v2.1/os-simple-tenant-usage?{PERIOD}&detailed=1&limit=1"),
            &cloud.admin,
            "2.40",
        )
        .await;
    assert_eq!(
        page.body["tenant_usages"][0]["server_usages"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let next = page.body["tenant_usages_links"][0]["href"]
        .as_str()
        .expect("next link");
    assert!(next.contains("marker="), "{next}");
    let unpaged = cloud
        .get(
            &format!("/v2.1/os-simple-tenant-usage?{PERIOD}&detailed=1&limit=1"),
            &cloud.admin,
            "2.39",
        )
        .await;
    assert_eq!(
        unpaged.body["tenant_usages"][0]["server_usages"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert!(unpaged.body.get("tenant_usages_links").is_none());
    assert!(servers.iter().any(|s| s["instance_id"] == first.as_str()));
}

#[tokio::test]
async fn diagnostics_formats_and_policy() {
    let cloud = cloud().await;
    let id = active_server(&cloud, "d1").await;
    let path = format!("/v2.1/servers/{id}/diagnostics");

    let standard = cloud.get(&path, &cloud.admin, "2.48").await;
    assert_eq!(standard.status, StatusCode::OK, "{}", standard.body);
    assert_eq!(standard.body["state"], "running");
    assert_eq!(standard.body["driver"], "libvirt");
    assert_eq!(standard.body["num_cpus"], 1);
    assert_eq!(standard.body["memory_details"]["maximum"], 128);
    assert_eq!(standard.body["num_nics"], 1);
    assert!(standard.body["nic_details"][0]["mac_address"].is_string());

    let legacy = cloud.get(&path, &cloud.admin, "2.47").await;
    assert_eq!(legacy.status, StatusCode::OK);
    assert_eq!(legacy.body["memory"], 128 * 1024);
    assert!(legacy.body.get("cpu0_time").is_some(), "{}", legacy.body);

    let member = cloud.get(&path, &cloud.demo, "2.48").await;
    assert_eq!(member.status, StatusCode::FORBIDDEN);
    let other = cloud.get(&path, &cloud.alt, "2.48").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn external_events_result_codes() {
    let cloud = cloud().await;
    let id = active_server(&cloud, "e1").await;
    let unknown = "9c1b2c4e-0000-4000-8000-000000000001";

    let ok = cloud
        .post(
            "/v2.1/os-server-external-events",
            &cloud.admin,
            "2.1",
            json!({"events": [{"name": "network-changed", "server_uuid": id}]}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["events"][0]["code"], 200);
    assert!(ok.body["events"][0].get("status").is_none());

    let mixed = cloud
        .post(
            "/v2.1/os-server-external-events",
            &cloud.admin,
            "2.1",
            json!({"events": [
                {"name": "network-vif-plugged", "server_uuid": id, "tag": "port-1"},
                {"name": "network-vif-plugged", "server_uuid": unknown},
            ]}),
        )
        .await;
    assert_eq!(mixed.status, StatusCode::MULTI_STATUS, "{}", mixed.body);
    assert_eq!(mixed.body["events"][0]["code"], 200);
    assert_eq!(mixed.body["events"][1]["code"], 404);
    assert_eq!(mixed.body["events"][1]["status"], "failed");

    let none = cloud
        .post(
            "/v2.1/os-server-external-events",
            &cloud.admin,
            "2.1",
            json!({"events": [{"name": "network-changed", "server_uuid": unknown}]}),
        )
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);

    let bad_name = cloud
        .post(
            "/v2.1/os-server-external-events",
            &cloud.admin,
            "2.1",
            json!({"events": [{"name": "volume-extended", "server_uuid": id}]}),
        )
        .await;
    assert_eq!(
        bad_name.status,
        StatusCode::BAD_REQUEST,
        "volume-extended needs 2.51"
    );

    let member = cloud
        .post(
            "/v2.1/os-server-external-events",
            &cloud.demo,
            "2.1",
            json!({"events": [{"name": "network-changed", "server_uuid": id}]}),
        )
        .await;
    assert_eq!(member.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn server_password_show_and_clear() {
    let cloud = cloud().await;
    let id = active_server(&cloud, "pw").await;
    let path = format!("/v2.1/servers/{id}/os-server-password");

    let empty = cloud.get(&path, &cloud.demo, "2.1").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.body, json!({"password": ""}));

    let saved = store::modify(cloud.service.pool(), &id, |server| {
        server.password = "ZW5jcnlwdGVk".to_owned();
        Ok::<(), ()>(())
    })
    .await
    .expect("database");
    assert!(matches!(saved, Modified::Saved(_)));
    let stored = cloud.get(&path, &cloud.demo, "2.1").await;
    assert_eq!(stored.body["password"], "ZW5jcnlwdGVk");

    let other = cloud.get(&path, &cloud.alt, "2.1").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let other_clear = cloud.delete(&path, &cloud.alt, "2.1").await;
    assert_eq!(other_clear.status, StatusCode::NOT_FOUND);

    let cleared = cloud.delete(&path, &cloud.demo, "2.1").await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT);
    assert_eq!(
        cloud.get(&path, &cloud.demo, "2.1").await.body["password"],
        ""
    );
}

#[tokio::test]
async fn migrations_list_and_checks() {
    let cloud = cloud().await;
    let list = cloud
        .get("/v2.1/os-migrations?host=node1", &cloud.admin, "2.80")
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body, json!({"migrations": []}));
    let ignored = cloud
        .get("/v2.1/os-migrations?foo=1", &cloud.admin, "2.58")
        .await;
    assert_eq!(ignored.status, StatusCode::OK);
    let strict = cloud
        .get("/v2.1/os-migrations?foo=1", &cloud.admin, "2.59")
        .await;
    assert_eq!(strict.status, StatusCode::BAD_REQUEST);
    let marker = cloud
        .get("/v2.1/os-migrations?marker=abc", &cloud.admin, "2.59")
        .await;
    assert_eq!(marker.status, StatusCode::BAD_REQUEST);
    let member = cloud.get("/v2.1/os-migrations", &cloud.demo, "2.1").await;
    assert_eq!(member.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn hosts_list_show_update() {
    let cloud = cloud().await;
    active_server(&cloud, "h1").await;

    let list = cloud.get("/v2.1/os-hosts", &cloud.admin, "2.1").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let hosts = list.body["hosts"].as_array().expect("hosts").clone();
    let compute = hosts
        .iter()
        .find(|h| h["service"] == "compute")
        .expect("compute host");
    assert_eq!(compute["host_name"], "node1");
    let zone = compute["zone"].as_str().expect("zone");
    let by_zone = cloud
        .get(&format!("/v2.1/os-hosts?zone={zone}"), &cloud.admin, "2.1")
        .await;
    assert!(by_zone.body["hosts"]
        .as_array()
        .expect("hosts")
        .contains(compute));
    let no_zone = cloud
        .get("/v2.1/os-hosts?zone=xxx", &cloud.admin, "2.1")
        .await;
    assert_eq!(no_zone.body["hosts"], json!([]));

    let show = cloud.get("/v2.1/os-hosts/node1", &cloud.admin, "2.1").await;
    assert_eq!(show.status, StatusCode::OK, "{}", show.body);
    let resources: Vec<Value> = show.body["host"].as_array().expect("resources").clone();
    assert_eq!(resources[0]["resource"]["project"], "(total)");
    assert_eq!(resources[2]["resource"]["project"], "(used_max)");
    assert_eq!(resources[2]["resource"]["memory_mb"], 128);
    assert_eq!(
        resources[3]["resource"]["project"],
        cloud.demo_project.as_str()
    );

    assert_eq!(
        cloud
            .get("/v2.1/os-hosts/nowhere", &cloud.admin, "2.1")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        cloud
            .get("/v2.1/os-hosts", &cloud.admin, "2.43")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        cloud.get("/v2.1/os-hosts", &cloud.demo, "2.1").await.status,
        StatusCode::FORBIDDEN
    );

    let invalid = cloud
        .put(
            "/v2.1/os-hosts/node1",
            &cloud.admin,
            "2.1",
            json!({"status": "bad"}),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    let empty = cloud
        .put("/v2.1/os-hosts/node1", &cloud.admin, "2.1", json!({}))
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let disabled = cloud
        .put(
            "/v2.1/os-hosts/node1",
            &cloud.admin,
            "2.1",
            json!({"status": "disable"}),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    assert_eq!(
        disabled.body,
        json!({"host": "node1", "status": "disabled"})
    );
    let services = cloud
        .get("/v2.1/os-services?binary=nova-compute", &cloud.admin, "2.1")
        .await;
    assert_eq!(
        services.body["services"][0]["status"], "disabled",
        "{}",
        services.body
    );
    let enabled = cloud
        .put(
            "/v2.1/os-hosts/node1",
            &cloud.admin,
            "2.1",
            json!({"status": "enable"}),
        )
        .await;
    assert_eq!(enabled.body["status"], "enabled");

    let power = cloud
        .get("/v2.1/os-hosts/node1/reboot", &cloud.admin, "2.1")
        .await;
    assert_eq!(power.status, StatusCode::NOT_IMPLEMENTED);
    let missing = cloud
        .get("/v2.1/os-hosts/nowhere/startup", &cloud.admin, "2.1")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn usage_audit_log_shape() {
    let cloud = cloud().await;
    let index = cloud
        .get("/v2.1/os-instance_usage_audit_log", &cloud.admin, "2.1")
        .await;
    assert_eq!(index.status, StatusCode::OK, "{}", index.body);
    let log = &index.body["instance_usage_audit_logs"];
    assert_eq!(log["num_hosts"], 1);
    assert_eq!(log["hosts_not_run"], json!(["node1"]));
    assert_eq!(log["overall_status"], "0 of 1 hosts done. 0 errors.");

    let show = cloud
        .get(
            "/v2.1/os-instance_usage_audit_log/2024-03-15%2010:00:00",
            &cloud.admin,
            "2.1",
        )
        .await;
    assert_eq!(show.status, StatusCode::OK, "{}", show.body);
    assert_eq!(
        show.body["instance_usage_audit_log"]["period_beginning"],
        "2024-02-01 00:00:00"
    );
    assert_eq!(
        show.body["instance_usage_audit_log"]["period_ending"],
        "2024-03-01 00:00:00"
    );

    let invalid = cloud
        .get(
            "/v2.1/os-instance_usage_audit_log/invalid",
            &cloud.admin,
            "2.1",
        )
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    let member = cloud
        .get("/v2.1/os-instance_usage_audit_log", &cloud.demo, "2.1")
        .await;
    assert_eq!(member.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn extensions_list_and_show() {
    let cloud = cloud().await;
    let list = cloud.get("/v2.1/extensions", &cloud.demo, "2.1").await;
    assert_eq!(list.status, StatusCode::OK);
    let names: Vec<&str> = list.body["extensions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.contains(&"Hosts"));
    let show = cloud
        .get("/v2.1/extensions/os-consoles", &cloud.demo, "2.1")
        .await;
    assert_eq!(show.body["extension"]["alias"], "os-consoles");
    let missing = cloud
        .get("/v2.1/extensions/os-nothing", &cloud.demo, "2.1")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn image_proxy_and_metadata() {
    let cloud = cloud().await;
    let list = cloud.get("/v2.1/images", &cloud.demo, "2.1").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["images"][0]["id"], IMAGE);
    assert_eq!(
        list.body["images"][0]["links"].as_array().map(Vec::len),
        Some(3)
    );

    let detail = cloud
        .get(
            "/v2.1/images/detail?status=ACTIVE&name=cirros",
            &cloud.demo,
            "2.1",
        )
        .await;
    assert_eq!(
        detail.body["images"][0]["status"], "ACTIVE",
        "{}",
        detail.body
    );
    assert_eq!(detail.body["images"][0]["progress"], 100);
    let none = cloud
        .get("/v2.1/images/detail?name=other", &cloud.demo, "2.1")
        .await;
    assert_eq!(none.body["images"], json!([]));
    let limited = cloud.get("/v2.1/images?limit=1", &cloud.demo, "2.1").await;
    assert!(limited.body["images_links"][0]["href"]
        .as_str()
        .is_some_and(|href| href.contains("marker=")));

    let path = format!("/v2.1/images/{IMAGE}/metadata");
    let set = cloud
        .post(
            &path,
            &cloud.demo,
            "2.1",
            json!({"metadata": {"os_distro": "cirros", "a": "1"}}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(
        set.body["metadata"],
        json!({"os_distro": "cirros", "a": "1"})
    );
    let item = cloud
        .put(
            &format!("{path}/a"),
            &cloud.demo,
            "2.1",
            json!({"meta": {"a": "2"}}),
        )
        .await;
    assert_eq!(item.body, json!({"meta": {"a": "2"}}));
    let mismatch = cloud
        .put(
            &format!("{path}/a"),
            &cloud.demo,
            "2.1",
            json!({"meta": {"b": "2"}}),
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        cloud
            .get(&format!("{path}/a"), &cloud.demo, "2.1")
            .await
            .body,
        json!({"meta": {"a": "2"}})
    );
    let replaced = cloud
        .put(
            &path,
            &cloud.demo,
            "2.1",
            json!({"metadata": {"only": "x"}}),
        )
        .await;
    assert_eq!(replaced.body["metadata"], json!({"only": "x"}));
    assert_eq!(
        cloud.get(&path, &cloud.demo, "2.1").await.body["metadata"],
        json!({"only": "x"})
    );
    assert_eq!(
        cloud
            .delete(&format!("{path}/only"), &cloud.demo, "2.1")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        cloud
            .delete(&format!("{path}/only"), &cloud.demo, "2.1")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        cloud
            .get(&format!("/v2.1/images/{IMAGE}"), &cloud.demo, "2.36")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let show = cloud
        .get(&format!("/v2.1/images/{IMAGE}"), &cloud.demo, "2.35")
        .await;
    assert_eq!(show.body["image"]["name"], "cirros");
    assert_eq!(
        cloud
            .delete(&format!("/v2.1/images/{IMAGE}"), &cloud.demo, "2.1")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let gone = cloud
        .get(&format!("/v2.1/images/{IMAGE}"), &cloud.demo, "2.1")
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}
