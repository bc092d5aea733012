//! Application credentials: creation, listing, deletion, and
//! authentication with them.

use axum::http::StatusCode;
use oxstack_identity::db::{app_creds, assignments, projects, roles, users};
use oxstack_identity::testing::TestIdentity;
use serde_json::{json, Value};

/// Creates user `name` with `role` on a new project `project` and returns
/// the user's id and a token for that project.
async fn user_with_role(
    cloud: &TestIdentity,
    name: &str,
    role: &str,
    project: &str,
) -> (String, String) {
    let pool = cloud.state.pool();
    let project = projects::Project {
        id: oxstack_identity::db::new_id(),
        name: project.into(),
        domain_id: "default".into(),
        parent_id: None,
        description: String::new(),
        enabled: true,
        tags: json!([]),
        options: json!({}),
    };
    projects::insert(pool, &project).await.unwrap();
    let password = format!("{name}-pw");
    let user = users::User {
        id: oxstack_identity::db::new_id(),
        name: name.into(),
        domain_id: "default".into(),
        enabled: true,
        default_project_id: None,
        password_hash: Some(cloud.state.passwords.hash(&password).await.unwrap()),
        description: String::new(),
        email: None,
        options: json!({}),
        extra: json!({}),
        password_changed_at: None,
    };
    users::insert(pool, &user).await.unwrap();
    let role = roles::list(pool, Some(role), None).await.unwrap().remove(0);
    let grant = assignments::Assignment {
        kind: assignments::AssignmentType::UserProject,
        actor_id: user.id.clone(),
        target_id: project.id.clone(),
        role_id: role.id,
        inherited: false,
    };
    assignments::grant(pool, &grant).await.unwrap();
    let token = cloud.token(name, &password, &project.name).await;
    (user.id, token)
}

fn collection(user_id: &str) -> String {
    format!("/v3/users/{user_id}/application_credentials")
}

async fn create(cloud: &TestIdentity, token: &str, user_id: &str, body: Value) -> Value {
    let reply = cloud
        .call(
            "POST",
            &collection(user_id),
            Some(token),
            Some(json!({"application_credential": body})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["application_credential"].clone()
}

fn app_cred_auth(id: &str, secret: &str) -> Value {
    json!({"auth": {"identity": {"methods": ["application_credential"],
                                 "application_credential": {"id": id, "secret": secret}}}})
}

/// Authenticates with an application credential; returns the status, the
/// token (when issued) and the token body.
async fn authenticate(
    cloud: &TestIdentity,
    id: &str,
    secret: &str,
) -> (StatusCode, Option<String>, Value) {
    let reply = cloud
        .call(
            "POST",
            "/v3/auth/tokens",
            None,
            Some(app_cred_auth(id, secret)),
        )
        .await;
    let token = reply
        .headers
        .get("x-subject-token")
        .map(|v| v.to_str().unwrap().to_owned());
    (reply.status, token, reply.body)
}

fn role_names(roles: &Value) -> Vec<String> {
    let mut names: Vec<String> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn create_then_authenticate() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let admin_id = cloud.bootstrapped.admin_user_id.clone();
    let project_id = cloud.bootstrapped.admin_project_id.clone();

    let created = create(
        &cloud,
        &admin,
        &admin_id,
        json!({"name": "monitoring", "description": "for the monitor"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 64, "{secret}");
    assert_eq!(created["name"], "monitoring");
    assert_eq!(created["description"], "for the monitor");
    assert_eq!(created["project_id"], project_id.as_str());
    assert_eq!(created["unrestricted"], false);
    assert_eq!(created["expires_at"], Value::Null);
    assert_eq!(
        role_names(&created["roles"]),
        ["admin", "member", "reader"],
        "all the token's roles"
    );
    assert!(created["roles"][0]["domain_id"].is_null());
    let self_link = created["links"]["self"].as_str().unwrap();
    assert!(
        self_link.ends_with(&format!(
            "/v3/users/{admin_id}/application_credentials/{id}"
        )),
        "{self_link}"
    );

    let reply = cloud
        .call(
            "GET",
            &format!("{}/{id}", collection(&admin_id)),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body["application_credential"].get("secret").is_none(),
        "secret shown once: {}",
        reply.body
    );
    assert_eq!(reply.body["application_credential"]["name"], "monitoring");

    let (status, token, body) = authenticate(&cloud, &id, &secret).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(token.is_some());
    assert_eq!(body["token"]["project"]["id"], project_id.as_str());
    assert_eq!(body["token"]["methods"], json!(["application_credential"]));
    assert_eq!(body["token"]["application_credential"]["id"], id.as_str());
    assert_eq!(body["token"]["application_credential"]["restricted"], true);

    let (status, token, _) = authenticate(&cloud, &id, "not-the-secret").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(token.is_none());
    let (status, _, _) = authenticate(&cloud, "no-such-credential", &secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_carries_only_chosen_roles() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let admin_id = cloud.bootstrapped.admin_user_id.clone();
    let body = json!({"name": "ro", "secret": "my-own-secret", "roles": [{"name": "member"}]});
    let created = create(&cloud, &admin, &admin_id, body).await;
    assert_eq!(created["secret"], "my-own-secret");
    assert_eq!(
        role_names(&created["roles"]),
        ["member", "reader"],
        "implied roles are added"
    );

    let (status, token, body) =
        authenticate(&cloud, created["id"].as_str().unwrap(), "my-own-secret").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(role_names(&body["token"]["roles"]), ["member", "reader"]);

    // Without the admin role the token cannot create users.
    let user = json!({"user": {"name": "eve", "password": "x"}});
    let reply = cloud
        .call("POST", "/v3/users", token.as_deref(), Some(user))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn create_rejects_bad_input() {
    let cloud = TestIdentity::start().await;
    let (dan_id, dan) = user_with_role(&cloud, "dan", "member", "demo").await;
    let path = collection(&dan_id);
    let post = |body: Value| {
        cloud.call(
            "POST",
            &path,
            Some(&dan),
            Some(json!({"application_credential": body})),
        )
    };

    let reply = post(json!({"name": "x", "roles": [{"name": "admin"}]})).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "role the user lacks: {}",
        reply.body
    );
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unassigned role"),
        "{}",
        reply.body
    );
    let reply = post(json!({"name": "x", "roles": [{"name": "no-such-role"}]})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    let reply = post(json!({"name": "x", "roles": [{"id": "no-such-id"}]})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let reply = post(json!({"name": "x", "roles": [{"id": "a", "name": "b"}]})).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "a role is given by id or by name"
    );
    let reply = post(json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "expiry in the past");
    let reply = post(json!({"name": "x", "expires_at": "soon"})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "expiry not a time");
    let reply = post(json!({"description": "no name"})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "name is required");
    let reply = post(json!({"name": "x", "colour": "blue"})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "unknown field");
    let reply = post(json!({"name": "x", "access_rules": [{"path": "/v2.1/servers", "method": "GET", "service": "compute"}]})).await;
    assert_eq!(reply.status, StatusCode::NOT_IMPLEMENTED);

    let reply = cloud
        .call("GET", &collection(&dan_id), Some(&dan), None)
        .await;
    assert_eq!(
        reply.body["application_credentials"],
        json!([]),
        "nothing was created: {}",
        reply.body
    );
}

#[tokio::test]
async fn duplicate_name_conflicts() {
    let cloud = TestIdentity::start().await;
    let (dan_id, dan) = user_with_role(&cloud, "dan", "member", "demo").await;
    create(&cloud, &dan, &dan_id, json!({"name": "ci"})).await;
    let reply = cloud
        .call(
            "POST",
            &collection(&dan_id),
            Some(&dan),
            Some(json!({"application_credential": {"name": "ci"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);

    // The name is unique per user, not across users.
    let admin = cloud.admin_token().await;
    create(
        &cloud,
        &admin,
        &cloud.bootstrapped.admin_user_id,
        json!({"name": "ci"}),
    )
    .await;
}

#[tokio::test]
async fn only_owner_creates_and_sees() {
    let cloud = TestIdentity::start().await;
    let (dan_id, dan) = user_with_role(&cloud, "dan", "member", "demo").await;
    let (eve_id, eve) = user_with_role(&cloud, "eve", "member", "other").await;
    let created = create(&cloud, &dan, &dan_id, json!({"name": "mine"})).await;
    let id = created["id"].as_str().unwrap();

    let body = json!({"application_credential": {"name": "stolen"}});
    let reply = cloud
        .call("POST", &collection(&dan_id), Some(&eve), Some(body.clone()))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "create for another user"
    );
    let admin = cloud.admin_token().await;
    let reply = cloud
        .call("POST", &collection(&dan_id), Some(&admin), Some(body))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "even an admin creates only their own"
    );

    let reply = cloud
        .call("GET", &collection(&dan_id), Some(&eve), None)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = cloud
        .call(
            "GET",
            &format!("{}/{id}", collection(&dan_id)),
            Some(&eve),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // Naming herself in the path does not reach dan's credential.
    let reply = cloud
        .call(
            "GET",
            &format!("{}/{id}", collection(&eve_id)),
            Some(&eve),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = cloud
        .call(
            "DELETE",
            &format!("{}/{id}", collection(&eve_id)),
            Some(&eve),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let reply = cloud
        .call(
            "GET",
            &format!("{}/{id}", collection(&dan_id)),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "admins may read");
    let reply = cloud
        .call(
            "GET",
            &format!("{}/nope", collection(&dan_id)),
            Some(&dan),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn list_filters_by_name() {
    let cloud = TestIdentity::start().await;
    let (dan_id, dan) = user_with_role(&cloud, "dan", "member", "demo").await;
    create(&cloud, &dan, &dan_id, json!({"name": "one"})).await;
    create(
        &cloud,
        &dan,
        &dan_id,
        json!({"name": "two", "expires_at": "2999-01-02T03:04:05Z"}),
    )
    .await;

    let reply = cloud
        .call("GET", &collection(&dan_id), Some(&dan), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body["application_credentials"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let reply = cloud
        .call(
            "GET",
            &format!("{}?name=two", collection(&dan_id)),
            Some(&dan),
            None,
        )
        .await;
    let listed = reply.body["application_credentials"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "two");
    assert_eq!(listed[0]["expires_at"], "2999-01-02T03:04:05.000000");
    assert!(listed[0].get("secret").is_none());
}

#[tokio::test]
async fn deleted_credential_tokens_stop_working() {
    let cloud = TestIdentity::start().await;
    let (dan_id, dan) = user_with_role(&cloud, "dan", "member", "demo").await;
    let created = create(&cloud, &dan, &dan_id, json!({"name": "short-lived"})).await;
    let id = created["id"].as_str().unwrap();
    let (_, token, _) = authenticate(&cloud, id, created["secret"].as_str().unwrap()).await;
    let token = token.unwrap();
    let reply = cloud
        .call("GET", "/v3/auth/projects", Some(&token), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let reply = cloud
        .call(
            "DELETE",
            &format!("{}/{id}", collection(&dan_id)),
            Some(&dan),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud
        .call("GET", "/v3/auth/projects", Some(&token), None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = authenticate(&cloud, id, created["secret"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let reply = cloud
        .call(
            "DELETE",
            &format!("{}/{id}", collection(&dan_id)),
            Some(&dan),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn expired_credential_is_unauthorized() {
    let cloud = TestIdentity::start().await;
    let (dan_id, _) = user_with_role(&cloud, "dan", "member", "demo").await;
    let project = projects::get_by_name(cloud.state.pool(), "default", "demo")
        .await
        .unwrap()
        .unwrap();
    let member = roles::list(cloud.state.pool(), Some("member"), None)
        .await
        .unwrap()
        .remove(0);
    // The API refuses past expiry times, so the row is written directly.
    let credential = app_creds::ApplicationCredential {
        id: oxstack_identity::db::new_id(),
        name: "old".into(),
        user_id: dan_id,
        project_id: project.id,
        secret_hash: cloud.state.passwords.hash("s3cret").await.unwrap(),
        description: String::new(),
        expires_at_micros: Some((oxstack_identity::db::now() - 60) * 1_000_000),
        unrestricted: false,
        role_ids: vec![member.id],
    };
    app_creds::insert(cloud.state.pool(), &credential)
        .await
        .unwrap();
    let (status, token, _) = authenticate(&cloud, &credential.id, "s3cret").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(token.is_none());
}

#[tokio::test]
async fn restricted_token_cannot_manage_credentials() {
    let cloud = TestIdentity::start().await;
    let (dan_id, dan) = user_with_role(&cloud, "dan", "member", "demo").await;
    let restricted = create(&cloud, &dan, &dan_id, json!({"name": "restricted"})).await;
    let unrestricted = create(
        &cloud,
        &dan,
        &dan_id,
        json!({"name": "free", "unrestricted": true}),
    )
    .await;
    assert_eq!(unrestricted["unrestricted"], true);

    let (_, token, _) = authenticate(
        &cloud,
        restricted["id"].as_str().unwrap(),
        restricted["secret"].as_str().unwrap(),
    )
    .await;
    let token = token.unwrap();
    let body = json!({"application_credential": {"name": "child"}});
    let reply = cloud
        .call(
            "POST",
            &collection(&dan_id),
            Some(&token),
            Some(body.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let path = format!(
        "{}/{}",
        collection(&dan_id),
        unrestricted["id"].as_str().unwrap()
    );
    let reply = cloud.call("DELETE", &path, Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let (_, token, _) = authenticate(
        &cloud,
        unrestricted["id"].as_str().unwrap(),
        unrestricted["secret"].as_str().unwrap(),
    )
    .await;
    let reply = cloud
        .call("POST", &collection(&dan_id), token.as_deref(), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn unscoped_token_cannot_create() {
    let cloud = TestIdentity::start().await;
    let (dan_id, _) = user_with_role(&cloud, "dan", "member", "demo").await;
    let auth = oxstack_identity::testing::password_auth("dan", "dan-pw", None);
    let reply = cloud
        .call("POST", "/v3/auth/tokens", None, Some(auth))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert!(
        reply.body["token"].get("project").is_none(),
        "dan has no default project"
    );
    let token = reply.headers["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = json!({"application_credential": {"name": "x"}});
    let reply = cloud
        .call("POST", &collection(&dan_id), Some(&token), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
}
