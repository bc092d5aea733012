//! Grants and `GET /v3/role_assignments` through the HTTP API.

use axum::http::StatusCode;
use oxstack_identity::testing::{TestIdentity, PUBLIC_URL};
use serde_json::{json, Value};

const PASSWORD: &str = "secret-password";

async fn create_id(cloud: &TestIdentity, token: &str, kind: &str, body: Value) -> String {
    let reply = cloud
        .call(
            "POST",
            &format!("/v3/{kind}s"),
            Some(token),
            Some(json!({ kind: body })),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "POST {kind}: {}",
        reply.body
    );
    reply.body[kind]["id"].as_str().unwrap().to_owned()
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

async fn assignments(cloud: &TestIdentity, token: &str, query: &str) -> Vec<Value> {
    let reply = cloud
        .call(
            "GET",
            &format!("/v3/role_assignments?{query}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
    reply.body["role_assignments"].as_array().unwrap().clone()
}

/// Issues a token scoped to a project given by id, for users and projects
/// outside the Default domain too.
async fn project_token(
    cloud: &TestIdentity,
    user_id: &str,
    project_id: &str,
) -> Result<Value, StatusCode> {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"id": user_id, "password": PASSWORD}}},
        "scope": {"project": {"id": project_id}}
    }});
    let reply = cloud
        .call("POST", "/v3/auth/tokens", None, Some(body))
        .await;
    if reply.status == StatusCode::CREATED {
        Ok(reply.body)
    } else {
        Err(reply.status)
    }
}

#[tokio::test]
async fn project_user_grant_lifecycle() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let project = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "demo", "domain_id": "default"}),
    )
    .await;
    let user = create_id(
        &cloud,
        &admin,
        "user",
        json!({"name": "dan", "password": PASSWORD}),
    )
    .await;
    let member = role_id(&cloud, &admin, "member").await;
    let grant = format!("/v3/projects/{project}/users/{user}/roles/{member}");

    assert_eq!(
        status(&cloud, "HEAD", &grant, &admin).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(&cloud, "PUT", &grant, &admin).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status(&cloud, "HEAD", &grant, &admin).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status(&cloud, "GET", &grant, &admin).await,
        StatusCode::NO_CONTENT
    );

    let reply = cloud
        .call(
            "GET",
            &format!("/v3/projects/{project}/users/{user}/roles"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let roles = reply.body["roles"].as_array().unwrap();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["name"], "member");
    assert!(reply.body["links"]["self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v3/projects/{project}/users/{user}/roles")));

    let token = project_token(&cloud, &user, &project)
        .await
        .expect("token after grant");
    assert_eq!(token["token"]["project"]["id"], project.as_str());

    assert_eq!(
        status(&cloud, "DELETE", &grant, &admin).await,
        StatusCode::NO_CONTENT
    );
    let reply = cloud.call("DELETE", &grant, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Could not find role assignment"));
    assert_eq!(
        project_token(&cloud, &user, &project).await.unwrap_err(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn grant_with_unknown_ids_names_the_missing_one() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let project = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "real", "domain_id": "default"}),
    )
    .await;
    let user = create_id(&cloud, &admin, "user", json!({"name": "ivy"})).await;
    let group = create_id(&cloud, &admin, "group", json!({"name": "band"})).await;
    let member = role_id(&cloud, &admin, "member").await;

    let cases = [
        (
            format!("/v3/projects/{project}/users/{user}/roles/ghost"),
            "Could not find role: ghost.",
        ),
        (
            format!("/v3/projects/{project}/users/ghost/roles/{member}"),
            "Could not find user: ghost.",
        ),
        (
            format!("/v3/projects/ghost/users/{user}/roles/{member}"),
            "Could not find project: ghost.",
        ),
        (
            format!("/v3/domains/ghost/users/{user}/roles/{member}"),
            "Could not find domain: ghost.",
        ),
        (
            format!("/v3/projects/{project}/groups/ghost/roles/{member}"),
            "Could not find group: ghost.",
        ),
        (
            format!("/v3/domains/default/groups/{group}/roles/ghost"),
            "Could not find role: ghost.",
        ),
        (
            format!("/v3/system/users/ghost/roles/{member}"),
            "Could not find user: ghost.",
        ),
        (
            format!(
                "/v3/OS-INHERIT/domains/ghost/users/{user}/roles/{member}/inherited_to_projects"
            ),
            "Could not find domain: ghost.",
        ),
    ];
    for (path, message) in cases {
        let reply = cloud.call("PUT", &path, Some(&admin), None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.body["error"]["code"], 404, "{path}");
        assert_eq!(reply.body["error"]["message"], message, "{path}");
    }
}

#[tokio::test]
async fn domain_group_and_system_grants() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let user = create_id(
        &cloud,
        &admin,
        "user",
        json!({"name": "jo", "password": PASSWORD}),
    )
    .await;
    let group = create_id(&cloud, &admin, "group", json!({"name": "readers"})).await;
    let reader = role_id(&cloud, &admin, "reader").await;

    for base in [
        format!("/v3/domains/default/users/{user}/roles"),
        format!("/v3/domains/default/groups/{group}/roles"),
        format!("/v3/system/users/{user}/roles"),
        format!("/v3/system/groups/{group}/roles"),
    ] {
        let one = format!("{base}/{reader}");
        assert_eq!(
            status(&cloud, "PUT", &one, &admin).await,
            StatusCode::NO_CONTENT,
            "{one}"
        );
        assert_eq!(
            status(&cloud, "HEAD", &one, &admin).await,
            StatusCode::NO_CONTENT,
            "{one}"
        );
        let reply = cloud.call("GET", &base, Some(&admin), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{base}");
        let roles = reply.body["roles"].as_array().unwrap();
        assert_eq!(roles.len(), 1, "{base}");
        assert_eq!(roles[0]["id"], reader.as_str());
    }

    let rows = assignments(&cloud, &admin, &format!("scope.system=all&user.id={user}")).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["scope"], json!({"system": {"all": true}}));
    assert_eq!(
        rows[0]["links"]["assignment"],
        format!("{PUBLIC_URL}/v3/system/users/{user}/roles/{reader}")
    );

    let rows = assignments(&cloud, &admin, "scope.domain.id=default").await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().any(|r| r["group"]["id"] == group.as_str()));

    let system_token = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"id": user, "password": PASSWORD}}},
        "scope": {"system": {"all": true}}
    }});
    let reply = cloud
        .call("POST", "/v3/auth/tokens", None, Some(system_token))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn domain_specific_role_stays_in_its_domain() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let other = create_id(&cloud, &admin, "domain", json!({"name": "Other"})).await;
    let project = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "outside", "domain_id": other}),
    )
    .await;
    let user = create_id(&cloud, &admin, "user", json!({"name": "kim"})).await;
    let local = create_id(
        &cloud,
        &admin,
        "role",
        json!({"name": "local", "domain_id": "default"}),
    )
    .await;

    let reply = cloud
        .call(
            "PUT",
            &format!("/v3/projects/{project}/users/{user}/roles/{local}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = cloud
        .call(
            "PUT",
            &format!("/v3/system/users/{user}/roles/{local}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn inherited_domain_grant_reaches_projects() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let domain = create_id(&cloud, &admin, "domain", json!({"name": "Acme"})).await;
    let project = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "widgets", "domain_id": domain}),
    )
    .await;
    let user = create_id(
        &cloud,
        &admin,
        "user",
        json!({"name": "lee", "password": PASSWORD}),
    )
    .await;
    let member = role_id(&cloud, &admin, "member").await;
    let grant = format!(
        "/v3/OS-INHERIT/domains/{domain}/users/{user}/roles/{member}/inherited_to_projects"
    );

    assert_eq!(
        project_token(&cloud, &user, &project).await.unwrap_err(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&cloud, "PUT", &grant, &admin).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status(&cloud, "HEAD", &grant, &admin).await,
        StatusCode::NO_CONTENT
    );
    // The inherited grant is not a grant on the domain itself.
    assert_eq!(
        status(
            &cloud,
            "HEAD",
            &format!("/v3/domains/{domain}/users/{user}/roles/{member}"),
            &admin
        )
        .await,
        StatusCode::NOT_FOUND
    );
    let reply = cloud
        .call(
            "GET",
            &format!("/v3/OS-INHERIT/domains/{domain}/users/{user}/roles/inherited_to_projects"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.body["roles"].as_array().unwrap().len(), 1);

    let token = project_token(&cloud, &user, &project)
        .await
        .expect("token through inherited grant");
    let roles: Vec<&str> = token["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(roles.contains(&"member"), "{roles:?}");
    assert!(roles.contains(&"reader"), "{roles:?}");

    let direct = assignments(&cloud, &admin, &format!("user.id={user}")).await;
    assert_eq!(direct.len(), 1);
    assert_eq!(
        direct[0]["scope"],
        json!({"domain": {"id": domain}, "OS-INHERIT:inherited_to": "projects"})
    );
    assert_eq!(
        direct[0]["links"]["assignment"],
        format!("{PUBLIC_URL}/v3{}", grant.trim_start_matches("/v3"))
    );

    let effective = assignments(
        &cloud,
        &admin,
        &format!("user.id={user}&effective&role.id={member}"),
    )
    .await;
    assert_eq!(effective.len(), 1, "{effective:?}");
    assert_eq!(effective[0]["scope"]["project"]["id"], project.as_str());
    assert_eq!(effective[0]["scope"]["OS-INHERIT:inherited_to"], "projects");
    assert_eq!(
        effective[0]["links"]["assignment"],
        format!("{PUBLIC_URL}/v3{}", grant.trim_start_matches("/v3"))
    );

    assert_eq!(
        status(&cloud, "DELETE", &grant, &admin).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        project_token(&cloud, &user, &project).await.unwrap_err(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn inherited_project_grant_skips_the_project_itself() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let parent = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "parent", "domain_id": "default"}),
    )
    .await;
    let child = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "child", "parent_id": parent}),
    )
    .await;
    let user = create_id(
        &cloud,
        &admin,
        "user",
        json!({"name": "max", "password": PASSWORD}),
    )
    .await;
    let member = role_id(&cloud, &admin, "member").await;
    let grant = format!(
        "/v3/OS-INHERIT/projects/{parent}/users/{user}/roles/{member}/inherited_to_projects"
    );
    assert_eq!(
        status(&cloud, "PUT", &grant, &admin).await,
        StatusCode::NO_CONTENT
    );

    assert!(project_token(&cloud, &user, &child).await.is_ok());
    assert_eq!(
        project_token(&cloud, &user, &parent).await.unwrap_err(),
        StatusCode::UNAUTHORIZED
    );

    let rows = assignments(
        &cloud,
        &admin,
        &format!("user.id={user}&effective&scope.project.id={parent}"),
    )
    .await;
    assert!(rows.is_empty(), "{rows:?}");
    let rows = assignments(
        &cloud,
        &admin,
        &format!("user.id={user}&effective&scope.project.id={child}"),
    )
    .await;
    assert!(
        rows.iter().any(|r| r["role"]["id"] == member.as_str()),
        "{rows:?}"
    );
}

#[tokio::test]
async fn role_assignment_filters() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let p1 = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "p1", "domain_id": "default"}),
    )
    .await;
    let p2 = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "p2", "domain_id": "default"}),
    )
    .await;
    let u1 = create_id(&cloud, &admin, "user", json!({"name": "u1"})).await;
    let u2 = create_id(&cloud, &admin, "user", json!({"name": "u2"})).await;
    let member = role_id(&cloud, &admin, "member").await;
    let reader = role_id(&cloud, &admin, "reader").await;
    for (project, user, role) in [
        (&p1, &u1, &member),
        (&p1, &u2, &reader),
        (&p2, &u1, &reader),
    ] {
        assert_eq!(
            status(
                &cloud,
                "PUT",
                &format!("/v3/projects/{project}/users/{user}/roles/{role}"),
                &admin
            )
            .await,
            StatusCode::NO_CONTENT
        );
    }

    let rows = assignments(&cloud, &admin, &format!("user.id={u1}")).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["user"]["id"] == u1.as_str()));
    let rows = assignments(&cloud, &admin, &format!("scope.project.id={p1}")).await;
    assert_eq!(rows.len(), 2);
    let rows = assignments(
        &cloud,
        &admin,
        &format!("scope.project.id={p1}&role.id={reader}"),
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["user"]["id"], u2.as_str());
    assert_eq!(
        rows[0]["links"]["assignment"],
        format!("{PUBLIC_URL}/v3/projects/{p1}/users/{u2}/roles/{reader}")
    );
    assert_eq!(rows[0]["scope"], json!({"project": {"id": p1}}));

    let rows = assignments(
        &cloud,
        &admin,
        &format!("user.id={u1}&scope.project.id={p2}&include_names"),
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]["user"],
        json!({"id": u1, "name": "u1", "domain": {"id": "default", "name": "Default"}})
    );
    assert_eq!(
        rows[0]["scope"]["project"],
        json!({"id": p2, "name": "p2", "domain": {"id": "default", "name": "Default"}})
    );
    assert_eq!(rows[0]["role"], json!({"id": reader, "name": "reader"}));

    let reply = cloud
        .call(
            "GET",
            "/v3/role_assignments?include_names",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let all = reply.body["role_assignments"].as_array().unwrap();
    assert!(all
        .iter()
        .any(|r| r["user"]["name"] == "admin" && r["scope"]["project"]["name"] == "admin"));
    assert!(all
        .iter()
        .any(|r| r["user"]["name"] == "admin" && r["scope"]["system"]["all"] == true));
    assert!(reply.body["links"]["self"]
        .as_str()
        .unwrap()
        .ends_with("/v3/role_assignments?include_names"));

    for bad in [
        format!("user.id={u1}&group.id=g"),
        format!("scope.project.id={p1}&scope.domain.id=default"),
        "include_subtree".to_owned(),
    ] {
        let reply = cloud
            .call(
                "GET",
                &format!("/v3/role_assignments?{bad}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn effective_assignments_expand_groups_and_implied_roles() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let project = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "fx", "domain_id": "default"}),
    )
    .await;
    let user = create_id(&cloud, &admin, "user", json!({"name": "nia"})).await;
    let group = create_id(&cloud, &admin, "group", json!({"name": "fx-team"})).await;
    let member = role_id(&cloud, &admin, "member").await;
    let reader = role_id(&cloud, &admin, "reader").await;
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

    let direct = assignments(&cloud, &admin, &format!("scope.project.id={project}")).await;
    assert_eq!(direct.len(), 1);
    assert_eq!(direct[0]["group"]["id"], group.as_str());

    let rows = assignments(
        &cloud,
        &admin,
        &format!("scope.project.id={project}&user.id={user}&effective"),
    )
    .await;
    // member, and reader which member implies.
    assert_eq!(rows.len(), 2, "{rows:?}");
    let base = format!("{PUBLIC_URL}/v3");
    let by_role = |id: &str| {
        rows.iter()
            .find(|r| r["role"]["id"] == id)
            .cloned()
            .unwrap()
    };
    let granted = by_role(&member);
    assert_eq!(granted["user"]["id"], user.as_str());
    assert_eq!(
        granted["links"]["membership"],
        format!("{base}/groups/{group}/users/{user}")
    );
    assert_eq!(
        granted["links"]["assignment"],
        format!("{base}/projects/{project}/groups/{group}/roles/{member}")
    );
    let implied = by_role(&reader);
    assert_eq!(
        implied["links"]["assignment"],
        format!("{base}/projects/{project}/groups/{group}/roles/{member}")
    );
    assert_eq!(
        implied["links"]["prior_role"],
        format!("{base}/roles/{member}/implies/{reader}")
    );

    let reply = cloud
        .call(
            "GET",
            &format!("/v3/role_assignments?effective&group.id={group}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn include_subtree_lists_child_projects() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let parent = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "top", "domain_id": "default"}),
    )
    .await;
    let child = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "leaf", "parent_id": parent}),
    )
    .await;
    let user = create_id(&cloud, &admin, "user", json!({"name": "oz"})).await;
    let reader = role_id(&cloud, &admin, "reader").await;
    assert_eq!(
        status(
            &cloud,
            "PUT",
            &format!("/v3/projects/{child}/users/{user}/roles/{reader}"),
            &admin
        )
        .await,
        StatusCode::NO_CONTENT
    );

    assert!(
        assignments(&cloud, &admin, &format!("scope.project.id={parent}"))
            .await
            .is_empty()
    );
    let rows = assignments(
        &cloud,
        &admin,
        &format!("scope.project.id={parent}&include_subtree=true"),
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["scope"]["project"]["id"], child.as_str());

    let reply = cloud
        .call(
            "GET",
            "/v3/role_assignments?scope.project.id=ghost&include_subtree=1",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body["error"]["message"],
        "Could not find project: ghost."
    );
}

#[tokio::test]
async fn member_cannot_grant_or_list_assignments() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let project = create_id(
        &cloud,
        &admin,
        "project",
        json!({"name": "mine", "domain_id": "default"}),
    )
    .await;
    let user = create_id(
        &cloud,
        &admin,
        "user",
        json!({"name": "pat", "password": PASSWORD}),
    )
    .await;
    let member = role_id(&cloud, &admin, "member").await;
    let admin_role = role_id(&cloud, &admin, "admin").await;
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
    let token = cloud.token("pat", PASSWORD, "mine").await;

    let calls = [
        ("PUT", format!("/v3/projects/{project}/users/{user}/roles/{admin_role}")),
        ("DELETE", format!("/v3/projects/{project}/users/{user}/roles/{member}")),
        ("HEAD", format!("/v3/projects/{project}/users/{user}/roles/{member}")),
        ("GET", format!("/v3/projects/{project}/users/{user}/roles")),
        ("PUT", format!("/v3/system/users/{user}/roles/{admin_role}")),
        ("PUT", format!("/v3/OS-INHERIT/domains/default/users/{user}/roles/{admin_role}/inherited_to_projects")),
        ("GET", "/v3/role_assignments".to_owned()),
        ("GET", format!("/v3/role_assignments?scope.project.id={project}&include_subtree")),
    ];
    for (method, path) in calls {
        let reply = cloud.call(method, &path, Some(&token), None).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            reply.body
        );
    }
    assert_eq!(
        status(
            &cloud,
            "HEAD",
            &format!("/v3/projects/{project}/users/{user}/roles/{member}"),
            &admin
        )
        .await,
        StatusCode::NO_CONTENT
    );
}
