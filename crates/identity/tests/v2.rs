//! The Identity v2.0 token API kept for old clients.

use axum::http::StatusCode;
use oxstack_identity::db::{domains, users};
use oxstack_identity::testing::{TestIdentity, ADMIN_PASSWORD, PUBLIC_URL};
use serde_json::{json, Value};

fn password_body(username: &str, password: &str, tenant_name: Option<&str>) -> Value {
    let mut body =
        json!({"auth": {"passwordCredentials": {"username": username, "password": password}}});
    if let Some(tenant) = tenant_name {
        body["auth"]["tenantName"] = json!(tenant);
    }
    body
}

async fn issue(cloud: &TestIdentity, body: Value) -> (StatusCode, Value) {
    let reply = cloud.call("POST", "/v2.0/tokens", None, Some(body)).await;
    (reply.status, reply.body)
}

#[tokio::test]
async fn version_document_is_deprecated_v2() {
    let cloud = TestIdentity::start().await;
    for path in ["/v2.0", "/v2.0/"] {
        let reply = cloud.call("GET", path, None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let version = &reply.body["version"];
        assert_eq!(version["id"], "v2.0");
        assert_eq!(version["status"], "deprecated");
        assert!(version["updated"].as_str().unwrap().ends_with('Z'));
        assert_eq!(version["links"][0]["rel"], "self");
        assert_eq!(version["links"][0]["href"], format!("{PUBLIC_URL}/v2.0/"));
        assert_eq!(
            version["media-types"][0]["type"],
            "application/vnd.openstack.identity-v2.0+json"
        );
    }
}

#[tokio::test]
async fn password_token_has_v2_shape() {
    let cloud = TestIdentity::start().await;
    let (status, body) = issue(
        &cloud,
        password_body("admin", ADMIN_PASSWORD, Some("admin")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = &body["access"];
    let token = &access["token"];
    assert!(!token["id"].as_str().unwrap().is_empty());
    assert!(token["expires"].as_str().unwrap().ends_with('Z'));
    assert!(token["issued_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        token["tenant"]["id"],
        cloud.bootstrapped.admin_project_id.as_str()
    );
    assert_eq!(token["tenant"]["name"], "admin");
    assert_eq!(token["tenant"]["enabled"], true);
    assert!(token["tenant"]["description"].is_string());

    let user = &access["user"];
    assert_eq!(user["id"], cloud.bootstrapped.admin_user_id.as_str());
    assert_eq!(user["name"], "admin");
    assert_eq!(user["username"], "admin");
    assert_eq!(user["roles_links"], json!([]));
    let mut roles: Vec<&str> = user["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    roles.sort();
    assert_eq!(roles, ["admin", "member", "reader"]);
    assert_eq!(access["metadata"]["is_admin"], 0);
    assert_eq!(access["metadata"]["roles"].as_array().unwrap().len(), 3);

    let identity = access["serviceCatalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "identity")
        .unwrap();
    assert_eq!(identity["name"], "keystone");
    assert_eq!(identity["endpoints_links"], json!([]));
    let endpoints = identity["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1, "one entry per region: {identity}");
    let endpoint = &endpoints[0];
    assert_eq!(endpoint["region"], "RegionOne");
    for key in ["publicURL", "internalURL", "adminURL"] {
        assert_eq!(endpoint[key], format!("{PUBLIC_URL}/v3"), "{key}");
    }
    assert!(endpoint["id"].is_string());
}

#[tokio::test]
async fn v2_token_works_on_v3() {
    let cloud = TestIdentity::start().await;
    let (_, body) = issue(
        &cloud,
        password_body("admin", ADMIN_PASSWORD, Some("admin")),
    )
    .await;
    let token = body["access"]["token"]["id"].as_str().unwrap();

    let reply = cloud.call("GET", "/v3/projects", Some(token), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = cloud
        .call_with(
            "GET",
            "/v3/auth/tokens",
            Some(token),
            None,
            &[("x-subject-token", token)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["token"]["project"]["name"], "admin");
    assert_eq!(reply.body["token"]["methods"], json!(["password"]));
}

#[tokio::test]
async fn tenant_and_user_by_id() {
    let cloud = TestIdentity::start().await;
    let body = json!({"auth": {
        "passwordCredentials": {"userId": cloud.bootstrapped.admin_user_id, "password": ADMIN_PASSWORD},
        "tenantId": cloud.bootstrapped.admin_project_id
    }});
    let (status, body) = issue(&cloud, body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["access"]["token"]["tenant"]["name"], "admin");
}

#[tokio::test]
async fn no_tenant_uses_default_project() {
    let cloud = TestIdentity::start().await;
    let (status, body) = issue(&cloud, password_body("admin", ADMIN_PASSWORD, None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["access"]["token"]["tenant"]["id"],
        cloud.bootstrapped.admin_project_id.as_str()
    );
}

#[tokio::test]
async fn rescope_with_token() {
    let cloud = TestIdentity::start().await;
    let (_, first) = issue(
        &cloud,
        password_body("admin", ADMIN_PASSWORD, Some("admin")),
    )
    .await;
    let token = first["access"]["token"]["id"].as_str().unwrap();
    let (status, body) = issue(
        &cloud,
        json!({"auth": {"token": {"id": token}, "tenantName": "admin"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let audit_ids = body["access"]["token"]["audit_ids"].as_array().unwrap();
    assert_eq!(audit_ids.len(), 2, "audit chain kept: {body}");
    assert_eq!(audit_ids[1], first["access"]["token"]["audit_ids"][0]);

    let (status, _) = issue(&cloud, json!({"auth": {"token": {"id": "garbage"}}})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_password_is_v2_error() {
    let cloud = TestIdentity::start().await;
    let (status, body) = issue(&cloud, password_body("admin", "wrong", Some("admin"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["title"], "Unauthorized");
    assert!(body["error"]["message"].is_string());

    let (status, _) = issue(&cloud, password_body("nobody", "x", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = issue(
        &cloud,
        password_body("admin", ADMIN_PASSWORD, Some("no-such-tenant")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_requests_are_bad() {
    let cloud = TestIdentity::start().await;
    let (status, _) = issue(&cloud, json!({"auth": {}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no credentials");
    let (status, _) = issue(
        &cloud,
        json!({"auth": {"passwordCredentials": {"password": "x"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no user");
    let (status, _) = issue(
        &cloud,
        json!({"auth": {"passwordCredentials": {"username": "admin"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no password");
    let (status, _) = issue(&cloud, json!({"tokens": {}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no auth");
    let mut trust = password_body("admin", ADMIN_PASSWORD, None);
    trust["auth"]["trust_id"] = json!("t1");
    let (status, _) = issue(&cloud, trust).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "trusts");
}

#[tokio::test]
async fn other_domains_are_invisible() {
    let cloud = TestIdentity::start().await;
    let pool = cloud.state.pool();
    domains::insert(
        pool,
        &domains::Domain {
            id: "d2".into(),
            name: "Other".into(),
            description: String::new(),
            enabled: true,
            tags: json!([]),
            options: json!({}),
        },
    )
    .await
    .unwrap();
    let user = users::User {
        id: oxstack_identity::db::new_id(),
        name: "olga".into(),
        domain_id: "d2".into(),
        enabled: true,
        default_project_id: None,
        password_hash: Some(cloud.state.passwords.hash("olga-pw").await.unwrap()),
        description: String::new(),
        email: None,
        options: json!({}),
        extra: json!({}),
        password_changed_at: None,
    };
    users::insert(pool, &user).await.unwrap();

    let (status, _) = issue(&cloud, password_body("olga", "olga-pw", None)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "by name: not in the Default domain"
    );
    let body = json!({"auth": {"passwordCredentials": {"userId": user.id, "password": "olga-pw"}}});
    let (status, _) = issue(&cloud, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "by id");
}

#[tokio::test]
async fn user_without_role_gets_unscoped_or_401() {
    let cloud = TestIdentity::start().await;
    let user = users::User {
        id: oxstack_identity::db::new_id(),
        name: "nora".into(),
        domain_id: "default".into(),
        enabled: true,
        default_project_id: None,
        password_hash: Some(cloud.state.passwords.hash("nora-pw").await.unwrap()),
        description: String::new(),
        email: None,
        options: json!({}),
        extra: json!({}),
        password_changed_at: None,
    };
    users::insert(cloud.state.pool(), &user).await.unwrap();

    let (status, body) = issue(&cloud, password_body("nora", "nora-pw", None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access"]["token"].get("tenant").is_none());
    assert_eq!(body["access"]["serviceCatalog"], json!([]));
    assert_eq!(body["access"]["user"]["roles"], json!([]));

    let (status, _) = issue(&cloud, password_body("nora", "nora-pw", Some("admin"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no role on the tenant");
}
