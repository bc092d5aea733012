//! Roles and implied roles through the HTTP API.

use axum::http::StatusCode;
use oxstack_identity::testing::TestIdentity;
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

async fn create_role(cloud: &TestIdentity, token: &str, name: &str) -> String {
    let body = create(cloud, token, "/v3/roles", json!({"role": {"name": name}})).await;
    body["role"]["id"].as_str().unwrap().to_owned()
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

/// Creates a project and a user in the Default domain; returns their ids.
async fn project_and_user(
    cloud: &TestIdentity,
    admin: &str,
    project: &str,
    user: &str,
) -> (String, String) {
    let project = create(
        cloud,
        admin,
        "/v3/projects",
        json!({"project": {"name": project, "domain_id": "default"}}),
    )
    .await;
    let user = create(
        cloud,
        admin,
        "/v3/users",
        json!({"user": {"name": user, "password": PASSWORD}}),
    )
    .await;
    (
        project["project"]["id"].as_str().unwrap().to_owned(),
        user["user"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn grant(cloud: &TestIdentity, admin: &str, project_id: &str, user_id: &str, role_id: &str) {
    let path = format!("/v3/projects/{project_id}/users/{user_id}/roles/{role_id}");
    let reply = cloud.call("PUT", &path, Some(admin), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
}

/// Returns a token of a user with `member` (and so `reader`) on a new project.
async fn member_token(cloud: &TestIdentity, admin: &str) -> String {
    let (project_id, user_id) =
        project_and_user(cloud, admin, "member-project", "member-user").await;
    let member = role_id(cloud, admin, "member").await;
    grant(cloud, admin, &project_id, &user_id, &member).await;
    cloud.token("member-user", PASSWORD, "member-project").await
}

#[tokio::test]
async fn role_create_show_update_delete() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;

    let body = create(
        &cloud,
        &admin,
        "/v3/roles",
        json!({"role": {"name": "observer", "description": "looks"}}),
    )
    .await;
    let role = &body["role"];
    let id = role["id"].as_str().unwrap().to_owned();
    assert_eq!(role["name"], "observer");
    assert_eq!(role["domain_id"], Value::Null);
    assert_eq!(role["description"], "looks");
    assert_eq!(role["options"], json!({}));
    assert!(role["links"]["self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v3/roles/{id}")));

    let reply = cloud
        .call("GET", &format!("/v3/roles/{id}"), Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["role"]["name"], "observer");

    let patch = json!({"role": {"name": "watcher"}});
    let reply = cloud
        .call(
            "PATCH",
            &format!("/v3/roles/{id}"),
            Some(&admin),
            Some(patch),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["role"]["name"], "watcher");
    assert_eq!(reply.body["role"]["description"], "looks");

    let reply = cloud.call("GET", "/v3/roles", Some(&admin), None).await;
    let names: Vec<&str> = reply.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for expected in ["admin", "member", "reader", "watcher"] {
        assert!(names.contains(&expected), "{names:?}");
    }

    let reply = cloud
        .call("DELETE", &format!("/v3/roles/{id}"), Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud
        .call("GET", &format!("/v3/roles/{id}"), Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn duplicate_role_name_is_conflict() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    create_role(&cloud, &admin, "auditor").await;
    let reply = cloud
        .call(
            "POST",
            "/v3/roles",
            Some(&admin),
            Some(json!({"role": {"name": "auditor"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body["error"]["code"], 409);
}

#[tokio::test]
async fn role_lookup_by_name_falls_back_to_filter() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;

    // The CLI tries the name as an id first and needs a 404 to go on.
    let reply = cloud
        .call("GET", "/v3/roles/member", Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body["error"]["code"], 404);
    assert_eq!(
        reply.body["error"]["message"],
        "Could not find role: member."
    );
    assert_eq!(reply.body["error"]["title"], "Not Found");

    let reply = cloud
        .call("GET", "/v3/roles?name=member", Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let roles = reply.body["roles"].as_array().unwrap();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["name"], "member");
    assert!(reply.body["links"]["self"].is_string());
}

#[tokio::test]
async fn domain_roles_list_only_by_domain() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let body = json!({"role": {"name": "local", "domain_id": "default"}});
    let role = create(&cloud, &admin, "/v3/roles", body).await;
    assert_eq!(role["role"]["domain_id"], "default");

    let reply = cloud
        .call("GET", "/v3/roles?domain_id=default", Some(&admin), None)
        .await;
    let roles = reply.body["roles"].as_array().unwrap();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["name"], "local");

    let reply = cloud.call("GET", "/v3/roles", Some(&admin), None).await;
    assert!(reply.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["name"] != "local"));

    let body = json!({"role": {"name": "orphan", "domain_id": "nowhere"}});
    let reply = cloud
        .call("POST", "/v3/roles", Some(&admin), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body["error"]["message"],
        "Could not find domain: nowhere."
    );

    let id = role["role"]["id"].as_str().unwrap();
    let patch = json!({"role": {"domain_id": null}});
    let reply = cloud
        .call(
            "PATCH",
            &format!("/v3/roles/{id}"),
            Some(&admin),
            Some(patch),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn immutable_role_resists_change_until_cleared() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let body = json!({"role": {"name": "pinned", "options": {"immutable": true}}});
    let role = create(&cloud, &admin, "/v3/roles", body).await;
    let path = format!("/v3/roles/{}", role["role"]["id"].as_str().unwrap());

    let rename = json!({"role": {"name": "moved"}});
    let reply = cloud
        .call("PATCH", &path, Some(&admin), Some(rename.clone()))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = cloud.call("DELETE", &path, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let clear = json!({"role": {"options": {"immutable": false}}});
    let reply = cloud.call("PATCH", &path, Some(&admin), Some(clear)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["role"]["options"]["immutable"], false);
    let reply = cloud.call("PATCH", &path, Some(&admin), Some(rename)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = cloud.call("DELETE", &path, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);

    let bad = json!({"role": {"name": "odd", "options": {"sticky": true}}});
    let reply = cloud
        .call("POST", "/v3/roles", Some(&admin), Some(bad))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn implied_role_chain_shows_in_token() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let a = create_role(&cloud, &admin, "role-a").await;
    let b = create_role(&cloud, &admin, "role-b").await;
    let c = create_role(&cloud, &admin, "role-c").await;

    let reply = cloud
        .call(
            "PUT",
            &format!("/v3/roles/{a}/implies/{b}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let inference = &reply.body["role_inference"];
    assert_eq!(inference["prior_role"]["id"], a.as_str());
    assert_eq!(inference["prior_role"]["name"], "role-a");
    assert!(inference["prior_role"]["links"]["self"].is_string());
    assert_eq!(inference["implies"]["id"], b.as_str());
    assert_eq!(inference["implies"]["name"], "role-b");
    let reply = cloud
        .call(
            "PUT",
            &format!("/v3/roles/{b}/implies/{c}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);

    let (project_id, user_id) = project_and_user(&cloud, &admin, "chain", "chained").await;
    grant(&cloud, &admin, &project_id, &user_id, &a).await;
    let reply = cloud
        .call(
            "POST",
            "/v3/auth/tokens",
            None,
            Some(oxstack_identity::testing::password_auth(
                "chained",
                PASSWORD,
                Some("chain"),
            )),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let mut roles: Vec<&str> = reply.body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["role-a", "role-b", "role-c"]);
}

#[tokio::test]
async fn implied_role_check_list_and_delete() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let a = create_role(&cloud, &admin, "prior").await;
    let b = create_role(&cloud, &admin, "implied-1").await;
    let c = create_role(&cloud, &admin, "implied-2").await;
    for implied in [&b, &c] {
        let reply = cloud
            .call(
                "PUT",
                &format!("/v3/roles/{a}/implies/{implied}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let one = format!("/v3/roles/{a}/implies/{b}");

    let reply = cloud.call("HEAD", &one, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud.call("GET", &one, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["role_inference"]["implies"]["id"], b.as_str());

    let reply = cloud
        .call("GET", &format!("/v3/roles/{a}/implies"), Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let implies = reply.body["role_inference"]["implies"].as_array().unwrap();
    assert_eq!(implies.len(), 2);

    let reply = cloud
        .call("GET", "/v3/role_inferences", Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let rules = reply.body["role_inferences"].as_array().unwrap();
    let ours = rules
        .iter()
        .find(|r| r["prior_role"]["id"] == a.as_str())
        .expect("rule for prior");
    assert_eq!(ours["implies"].as_array().unwrap().len(), 2);
    // Bootstrap's admin → member rule is listed too.
    assert!(rules.iter().any(|r| r["prior_role"]["name"] == "admin"));

    let reply = cloud.call("DELETE", &one, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud.call("GET", &one, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body["error"]["message"],
        format!("{a} does not imply {b}.")
    );
    let reply = cloud.call("DELETE", &one, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_implications_are_rejected() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let a = create_role(&cloud, &admin, "first").await;
    let b = create_role(&cloud, &admin, "second").await;
    let put = |prior: &str, implied: &str| format!("/v3/roles/{prior}/implies/{implied}");
    assert_eq!(
        cloud
            .call("PUT", &put(&a, &b), Some(&admin), None)
            .await
            .status,
        StatusCode::CREATED
    );

    let duplicate = cloud.call("PUT", &put(&a, &b), Some(&admin), None).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    let cycle = cloud.call("PUT", &put(&b, &a), Some(&admin), None).await;
    assert_eq!(cycle.status, StatusCode::CONFLICT);
    assert!(
        cycle.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cycle"),
        "{}",
        cycle.body
    );
    let itself = cloud.call("PUT", &put(&a, &a), Some(&admin), None).await;
    assert_eq!(itself.status, StatusCode::CONFLICT);

    let admin_role = role_id(&cloud, &admin, "admin").await;
    let to_admin = cloud
        .call("PUT", &put(&a, &admin_role), Some(&admin), None)
        .await;
    assert_eq!(to_admin.status, StatusCode::FORBIDDEN);

    let local = create(
        &cloud,
        &admin,
        "/v3/roles",
        json!({"role": {"name": "local", "domain_id": "default"}}),
    )
    .await;
    let local = local["role"]["id"].as_str().unwrap();
    let global_to_domain = cloud.call("PUT", &put(&a, local), Some(&admin), None).await;
    assert_eq!(global_to_domain.status, StatusCode::FORBIDDEN);
    let domain_to_global = cloud.call("PUT", &put(local, &b), Some(&admin), None).await;
    assert_eq!(domain_to_global.status, StatusCode::CREATED);

    let missing = cloud
        .call("PUT", &put("ghost", &b), Some(&admin), None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.body["error"]["message"],
        "Could not find role: ghost."
    );
}

#[tokio::test]
async fn member_cannot_manage_roles() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let member = member_token(&cloud, &admin).await;
    let reader = role_id(&cloud, &admin, "reader").await;
    let a = create_role(&cloud, &admin, "protected").await;

    let calls = [
        ("GET", "/v3/roles".to_owned()),
        ("POST", "/v3/roles".to_owned()),
        ("GET", format!("/v3/roles/{a}")),
        ("PATCH", format!("/v3/roles/{a}")),
        ("DELETE", format!("/v3/roles/{a}")),
        ("PUT", format!("/v3/roles/{a}/implies/{reader}")),
        ("GET", format!("/v3/roles/{a}/implies")),
        ("GET", "/v3/role_inferences".to_owned()),
    ];
    for (method, path) in calls {
        let body = matches!(method, "POST" | "PATCH").then(|| json!({"role": {"name": "x"}}));
        let reply = cloud.call(method, &path, Some(&member), body).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            reply.body
        );
        assert_eq!(reply.body["error"]["code"], 403);
    }
}
