//! Groups and group membership through the HTTP API.

use axum::http::StatusCode;
use oxstack_identity::testing::{password_auth, TestIdentity};
use serde_json::{json, Value};

const PASSWORD: &str = "secret-password";

async fn create(cloud: &TestIdentity, token: &str, path: &str, body: Value) -> Value {
    let reply = cloud.call("POST", path, Some(token), Some(body)).await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "POST {path}: {}",
        reply.body
    );
    reply.body
}

async fn create_id(cloud: &TestIdentity, token: &str, kind: &str, body: Value) -> String {
    let reply = create(cloud, token, &format!("/v3/{kind}s"), json!({ kind: body })).await;
    reply[kind]["id"].as_str().unwrap().to_owned()
}

async fn role_id(cloud: &TestIdentity, token: &str, name: &str) -> String {
    let reply = cloud
        .call("GET", &format!("/v3/roles?name={name}"), Some(token), None)
        .await;
    reply.body["roles"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("role {name}: {}", reply.body))
        .to_owned()
}

async fn status(cloud: &TestIdentity, method: &str, path: &str, token: &str) -> StatusCode {
    cloud.call(method, path, Some(token), None).await.status
}

async fn token_status(cloud: &TestIdentity, user: &str, project: &str) -> StatusCode {
    cloud
        .call(
            "POST",
            "/v3/auth/tokens",
            None,
            Some(password_auth(user, PASSWORD, Some(project))),
        )
        .await
        .status
}

#[tokio::test]
async fn group_create_show_update_delete() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;

    let body = create(
        &cloud,
        &admin,
        "/v3/groups",
        json!({"group": {"name": "ops", "description": "operators"}}),
    )
    .await;
    let group = &body["group"];
    let id = group["id"].as_str().unwrap().to_owned();
    assert_eq!(group["name"], "ops");
    assert_eq!(group["domain_id"], "default");
    assert_eq!(group["description"], "operators");
    assert!(group["links"]["self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v3/groups/{id}")));

    let reply = cloud
        .call("GET", &format!("/v3/groups/{id}"), Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["group"]["name"], "ops");

    let patch = json!({"group": {"name": "operations", "description": "on call"}});
    let reply = cloud
        .call(
            "PATCH",
            &format!("/v3/groups/{id}"),
            Some(&admin),
            Some(patch),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["group"]["name"], "operations");
    assert_eq!(reply.body["group"]["description"], "on call");

    let patch = json!({"group": {"domain_id": "elsewhere"}});
    let reply = cloud
        .call(
            "PATCH",
            &format!("/v3/groups/{id}"),
            Some(&admin),
            Some(patch),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let reply = cloud
        .call("DELETE", &format!("/v3/groups/{id}"), Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud
        .call("GET", &format!("/v3/groups/{id}"), Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body["error"]["message"],
        format!("Could not find group: {id}.")
    );
}

#[tokio::test]
async fn group_names_are_unique_per_domain() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let other = create_id(&cloud, &admin, "domain", json!({"name": "Other"})).await;
    create_id(&cloud, &admin, "group", json!({"name": "devs"})).await;

    let reply = cloud
        .call(
            "POST",
            "/v3/groups",
            Some(&admin),
            Some(json!({"group": {"name": "devs"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body["error"]["code"], 409);
    create_id(
        &cloud,
        &admin,
        "group",
        json!({"name": "devs", "domain_id": other}),
    )
    .await;

    let reply = cloud
        .call("GET", "/v3/groups?name=devs", Some(&admin), None)
        .await;
    assert_eq!(reply.body["groups"].as_array().unwrap().len(), 2);
    let reply = cloud
        .call(
            "GET",
            &format!("/v3/groups?domain_id={other}"),
            Some(&admin),
            None,
        )
        .await;
    let groups = reply.body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["domain_id"], other.as_str());

    let reply = cloud
        .call(
            "POST",
            "/v3/groups",
            Some(&admin),
            Some(json!({"group": {"name": "x", "domain_id": "nowhere"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body["error"]["message"],
        "Could not find domain: nowhere."
    );
}

#[tokio::test]
async fn membership_add_check_list_remove() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let group = create_id(&cloud, &admin, "group", json!({"name": "team"})).await;
    let user = create_id(
        &cloud,
        &admin,
        "user",
        json!({"name": "dana", "password": PASSWORD}),
    )
    .await;
    let membership = format!("/v3/groups/{group}/users/{user}");

    assert_eq!(
        status(&cloud, "HEAD", &membership, &admin).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(&cloud, "PUT", &membership, &admin).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status(&cloud, "PUT", &membership, &admin).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status(&cloud, "HEAD", &membership, &admin).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status(&cloud, "GET", &membership, &admin).await,
        StatusCode::NO_CONTENT
    );

    let reply = cloud
        .call(
            "GET",
            &format!("/v3/groups/{group}/users"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let users = reply.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["name"], "dana");

    let reply = cloud
        .call(
            "GET",
            &format!("/v3/users/{user}/groups"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let groups = reply.body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["name"], "team");

    assert_eq!(
        status(&cloud, "DELETE", &membership, &admin).await,
        StatusCode::NO_CONTENT
    );
    let reply = cloud.call("DELETE", &membership, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body["error"]["message"],
        format!("User '{user}' not found in group '{group}'.")
    );
    let reply = cloud
        .call(
            "GET",
            &format!("/v3/groups/{group}/users"),
            Some(&admin),
            None,
        )
        .await;
    assert!(reply.body["users"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn membership_with_unknown_ids_is_not_found() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let group = create_id(&cloud, &admin, "group", json!({"name": "team"})).await;
    let user = create_id(&cloud, &admin, "user", json!({"name": "eve"})).await;

    let reply = cloud
        .call(
            "PUT",
            &format!("/v3/groups/{group}/users/ghost"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body["error"]["message"],
        "Could not find user: ghost."
    );
    let reply = cloud
        .call(
            "PUT",
            &format!("/v3/groups/ghost/users/{user}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body["error"]["message"],
        "Could not find group: ghost."
    );
    let reply = cloud
        .call("GET", "/v3/groups/ghost/users", Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = cloud
        .call("GET", "/v3/users/ghost/groups", Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body["error"]["message"],
        "Could not find user: ghost."
    );
}

#[tokio::test]
async fn group_grant_gives_members_project_token() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let project = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "shared", "domain_id": "default"}),
    )
    .await;
    let user = create_id(
        &cloud,
        &admin,
        "user",
        json!({"name": "frank", "password": PASSWORD}),
    )
    .await;
    let group = create_id(&cloud, &admin, "group", json!({"name": "crew"})).await;
    let member = role_id(&cloud, &admin, "member").await;
    let grant = format!("/v3/projects/{project}/groups/{group}/roles/{member}");
    assert_eq!(
        status(&cloud, "PUT", &grant, &admin).await,
        StatusCode::NO_CONTENT
    );

    assert_eq!(
        token_status(&cloud, "frank", "shared").await,
        StatusCode::UNAUTHORIZED
    );

    let membership = format!("/v3/groups/{group}/users/{user}");
    assert_eq!(
        status(&cloud, "PUT", &membership, &admin).await,
        StatusCode::NO_CONTENT
    );
    let token = cloud.token("frank", PASSWORD, "shared").await;
    let reply = cloud
        .call_with(
            "GET",
            "/v3/auth/tokens",
            Some(&admin),
            None,
            &[("x-subject-token", token.as_str())],
        )
        .await;
    let roles: Vec<&str> = reply.body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(roles.contains(&"member"), "{roles:?}");

    assert_eq!(
        status(&cloud, "DELETE", &membership, &admin).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        token_status(&cloud, "frank", "shared").await,
        StatusCode::UNAUTHORIZED
    );
    // The token issued while a member loses the group's roles at once.
    let reply = cloud
        .call("GET", "/v3/auth/projects", Some(&token), None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn group_delete_removes_memberships_and_grants() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let project = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "tmp", "domain_id": "default"}),
    )
    .await;
    let user = create_id(
        &cloud,
        &admin,
        "user",
        json!({"name": "gina", "password": PASSWORD}),
    )
    .await;
    let group = create_id(&cloud, &admin, "group", json!({"name": "short-lived"})).await;
    let member = role_id(&cloud, &admin, "member").await;
    assert_eq!(
        status(
            &cloud,
            "PUT",
            &format!("/v3/projects/{project}/groups/{group}/roles/{member}"),
            &admin
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status(
            &cloud,
            "PUT",
            &format!("/v3/groups/{group}/users/{user}"),
            &admin
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        token_status(&cloud, "gina", "tmp").await,
        StatusCode::CREATED
    );

    assert_eq!(
        status(&cloud, "DELETE", &format!("/v3/groups/{group}"), &admin).await,
        StatusCode::NO_CONTENT
    );

    let reply = cloud
        .call(
            "GET",
            &format!("/v3/role_assignments?group.id={group}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body["role_assignments"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{}",
        reply.body
    );
    let reply = cloud
        .call(
            "GET",
            &format!("/v3/users/{user}/groups"),
            Some(&admin),
            None,
        )
        .await;
    assert!(reply.body["groups"].as_array().unwrap().is_empty());
    assert_eq!(
        token_status(&cloud, "gina", "tmp").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn member_cannot_manage_groups() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let project = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "home", "domain_id": "default"}),
    )
    .await;
    let user = create_id(
        &cloud,
        &admin,
        "user",
        json!({"name": "hal", "password": PASSWORD}),
    )
    .await;
    let member = role_id(&cloud, &admin, "member").await;
    assert_eq!(
        status(
            &cloud,
            "PUT",
            &format!("/v3/projects/{project}/users/{user}/roles/{member}"),
            &admin
        )
        .await,
        StatusCode::NO_CONTENT
    );
    let token = cloud.token("hal", PASSWORD, "home").await;
    let group = create_id(&cloud, &admin, "group", json!({"name": "closed"})).await;

    let calls = [
        ("GET", "/v3/groups".to_owned()),
        ("POST", "/v3/groups".to_owned()),
        ("GET", format!("/v3/groups/{group}")),
        ("PATCH", format!("/v3/groups/{group}")),
        ("DELETE", format!("/v3/groups/{group}")),
        ("GET", format!("/v3/groups/{group}/users")),
        ("PUT", format!("/v3/groups/{group}/users/{user}")),
        ("HEAD", format!("/v3/groups/{group}/users/{user}")),
        ("DELETE", format!("/v3/groups/{group}/users/{user}")),
    ];
    for (method, path) in calls {
        let body = matches!(method, "POST" | "PATCH").then(|| json!({"group": {"name": "x"}}));
        let reply = cloud.call(method, &path, Some(&token), body).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            reply.body
        );
    }
    // A user may list their own groups.
    let reply = cloud
        .call(
            "GET",
            &format!("/v3/users/{user}/groups"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}
