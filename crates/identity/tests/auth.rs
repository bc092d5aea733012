//! Token issue, validation and revocation through the HTTP API.

use axum::http::StatusCode;
use oxstack_identity::testing::{password_auth, TestIdentity, ADMIN_PASSWORD};
use serde_json::json;

#[tokio::test]
async fn password_token_carries_project_roles_and_catalog() {
    let cloud = TestIdentity::start().await;
    let reply = cloud
        .call(
            "POST",
            "/v3/auth/tokens",
            None,
            Some(password_auth("admin", ADMIN_PASSWORD, Some("admin"))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(reply.headers.contains_key("x-subject-token"));
    let token = &reply.body["token"];
    assert_eq!(token["project"]["name"], "admin");
    assert_eq!(token["project"]["domain"]["id"], "default");
    assert!(token["expires_at"].as_str().unwrap().ends_with('Z'));
    let roles: Vec<&str> = token["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for role in ["admin", "member", "reader"] {
        assert!(roles.contains(&role), "{roles:?}");
    }
    let catalog = token["catalog"].as_array().unwrap();
    assert!(catalog.iter().any(|s| s["type"] == "identity"));
}

#[tokio::test]
async fn wrong_password_is_unauthorized() {
    let cloud = TestIdentity::start().await;
    let reply = cloud
        .call(
            "POST",
            "/v3/auth/tokens",
            None,
            Some(password_auth("admin", "nope", Some("admin"))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["error"]["code"], 401);
}

#[tokio::test]
async fn unknown_project_is_unauthorized() {
    let cloud = TestIdentity::start().await;
    let reply = cloud
        .call(
            "POST",
            "/v3/auth/tokens",
            None,
            Some(password_auth("admin", ADMIN_PASSWORD, Some("ghost"))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn validate_and_revoke_token() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let subject = cloud.admin_token().await;
    let headers = [("x-subject-token", subject.as_str())];
    let reply = cloud
        .call_with("GET", "/v3/auth/tokens", Some(&admin), None, &headers)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["token"]["user"]["name"], "admin");

    let reply = cloud
        .call_with("DELETE", "/v3/auth/tokens", Some(&admin), None, &headers)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud
        .call_with("GET", "/v3/auth/tokens", Some(&admin), None, &headers)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = cloud
        .call("GET", "/v3/projects", Some(&subject), None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_json_is_bad_request() {
    let cloud = TestIdentity::start().await;
    let reply = cloud
        .call_with(
            "POST",
            "/v3/auth/tokens",
            None,
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = cloud
        .call(
            "POST",
            "/v3/auth/tokens",
            None,
            Some(json!({"auth": {"identity": {"methods": "password"}}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("auth.identity.methods"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn garbage_token_is_unauthorized() {
    let cloud = TestIdentity::start().await;
    let reply = cloud
        .call("GET", "/v3/projects", Some("gAAAAAgarbage"), None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.headers.contains_key("www-authenticate"));
}
