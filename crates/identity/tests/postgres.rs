//! The identity flows on PostgreSQL, proving the SQL is portable. Runs
//! against the server named by `OXSTACK_TEST_POSTGRES_URL`
//! (e.g. `postgres://oxstack:oxstack@127.0.0.1/oxstack_test`). In CI the
//! variable must be set; elsewhere the test prints how to set it and passes.

use axum::http::StatusCode;
use oxstack_identity::testing::{password_auth, TestIdentity};
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
async fn identity_flow_runs_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let cloud = TestIdentity::start_postgres(&url).await;
    let admin = cloud.admin_token().await;

    let reply = cloud
        .call(
            "POST",
            "/v3/projects",
            Some(&admin),
            Some(json!({"project": {"name": "demo", "domain_id": "default"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let project_id = reply.body["project"]["id"].as_str().unwrap().to_owned();
    let reply = cloud
        .call(
            "POST",
            "/v3/projects",
            Some(&admin),
            Some(json!({"project": {"name": "demo", "domain_id": "default"}})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CONFLICT,
        "duplicate project: {}",
        reply.body
    );

    let reply = cloud.call("POST", "/v3/users", Some(&admin), Some(json!({"user": {"name": "dan", "password": "s3cret", "default_project_id": project_id}}))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let user_id = reply.body["user"]["id"].as_str().unwrap().to_owned();

    let roles = cloud
        .call("GET", "/v3/roles?name=member", Some(&admin), None)
        .await;
    let member = roles.body["roles"][0]["id"]
        .as_str()
        .expect("member role")
        .to_owned();
    let grant = format!("/v3/projects/{project_id}/users/{user_id}/roles/{member}");
    let reply = cloud.call("PUT", &grant, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);

    let reply = cloud
        .call(
            "POST",
            "/v3/auth/tokens",
            None,
            Some(password_auth("dan", "s3cret", Some("demo"))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let roles: Vec<&str> = reply.body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(roles.contains(&"member"), "{roles:?}");
    assert!(roles.contains(&"reader"), "{roles:?}");
}
