//! Server create, quota and list on PostgreSQL: the quota lock there is an
//! advisory lock, so concurrent creates are checked on this backend too.
//! Runs against the server named by `OXSTACK_TEST_POSTGRES_URL`; in CI the
//! variable must be set. Elsewhere the test prints how to set it and
//! passes.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::Cloud;
use serde_json::{json, Value};

const IMAGE: &str = "6b9b6e4c-8f3a-4c1e-9d1b-3a2f0c6e7d10";
const NETWORK: &str = "0c7e5d4a-1b2c-4d3e-8f9a-0a1b2c3d4e5f";

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

fn server_body(name: &str) -> Value {
    json!({"server": {"name": name, "imageRef": IMAGE, "flavorRef": "42", "networks": [{"uuid": NETWORK}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_run_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let cloud = Cloud::start_postgres(&url).await;
    cloud.service.start_host().await.expect("host registers");
    cloud.fakes.images.add(IMAGE, "cirros");
    cloud
        .fakes
        .networks
        .add(NETWORK, "private", &cloud.demo_project, false);
    let path = format!("/v2.1/os-quota-sets/{}", cloud.demo_project);
    let reply = cloud
        .put(
            &path,
            &cloud.admin,
            "2.85",
            json!({"quota_set": {"instances": 2}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // Eight creates at once on separate threads: the advisory lock lets two
    // through and rejects the rest.
    let cloud = std::sync::Arc::new(cloud);
    let mut tasks = Vec::new();
    for index in 0..8 {
        let cloud = cloud.clone();
        tasks.push(tokio::spawn(async move {
            cloud
                .post(
                    "/v2.1/servers",
                    &cloud.demo,
                    "2.85",
                    server_body(&format!("pg{index}")),
                )
                .await
                .status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("create task"));
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::ACCEPTED)
            .count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::FORBIDDEN)
            .count(),
        6,
        "{statuses:?}"
    );

    let list = cloud.get("/v2.1/servers/detail", &cloud.demo, "2.85").await;
    let servers = list.body["servers"].as_array().expect("servers").clone();
    assert_eq!(servers.len(), 2, "{}", list.body);
    let id = servers[0]["id"].as_str().unwrap().to_owned();
    let mut status = Value::Null;
    for _ in 0..200 {
        status = cloud
            .get(&format!("/v2.1/servers/{id}"), &cloud.demo, "2.85")
            .await
            .body["server"]["status"]
            .clone();
        if status == "ACTIVE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "ACTIVE");
    let limits = cloud.get("/v2.1/limits", &cloud.demo, "2.85").await;
    assert_eq!(limits.body["limits"]["absolute"]["totalInstancesUsed"], 2);
}
