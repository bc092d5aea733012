//! The catalog admin API: services, endpoints and regions.

use axum::http::StatusCode;
use oxstack_identity::db::{assignments, projects, roles, users};
use oxstack_identity::testing::TestIdentity;
use serde_json::{json, Value};

/// Creates user `dan` with the `member` role on a new project `demo` and
/// returns a token for that project.
async fn member_token(cloud: &TestIdentity) -> String {
    let pool = cloud.state.pool();
    let project = projects::Project {
        id: oxstack_identity::db::new_id(),
        name: "demo".into(),
        domain_id: "default".into(),
        parent_id: None,
        description: String::new(),
        enabled: true,
        tags: json!([]),
        options: json!({}),
    };
    projects::insert(pool, &project).await.unwrap();
    let user = users::User {
        id: oxstack_identity::db::new_id(),
        name: "dan".into(),
        domain_id: "default".into(),
        enabled: true,
        default_project_id: None,
        password_hash: Some(cloud.state.passwords.hash("dan-pw").await.unwrap()),
        description: String::new(),
        email: None,
        options: json!({}),
        extra: json!({}),
        password_changed_at: None,
    };
    users::insert(pool, &user).await.unwrap();
    let member = roles::list(pool, Some("member"), None)
        .await
        .unwrap()
        .remove(0);
    let grant = assignments::Assignment {
        kind: assignments::AssignmentType::UserProject,
        actor_id: user.id.clone(),
        target_id: project.id.clone(),
        role_id: member.id,
        inherited: false,
    };
    assignments::grant(pool, &grant).await.unwrap();
    cloud.token("dan", "dan-pw", "demo").await
}

async fn create_service(cloud: &TestIdentity, token: &str, service_type: &str) -> Value {
    let body = json!({"service": {"type": service_type, "name": format!("{service_type}-svc"), "description": "d"}});
    let reply = cloud
        .call("POST", "/v3/services", Some(token), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["service"].clone()
}

fn endpoint_body(service_id: &str, interface: &str, region_id: Option<&str>) -> Value {
    json!({"endpoint": {"service_id": service_id, "interface": interface, "region_id": region_id,
                        "url": "http://127.0.0.1:8774/v2.1"}})
}

#[tokio::test]
async fn service_crud_round_trip() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let service = create_service(&cloud, &admin, "compute").await;
    let id = service["id"].as_str().unwrap().to_owned();
    assert_eq!(service["type"], "compute");
    assert_eq!(service["name"], "compute-svc");
    assert_eq!(service["description"], "d");
    assert_eq!(service["enabled"], true);
    assert!(service["links"]["self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v3/services/{id}")));

    let reply = cloud
        .call("GET", &format!("/v3/services/{id}"), Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["service"]["id"], id.as_str());

    let reply = cloud
        .call("GET", "/v3/services?type=compute", Some(&admin), None)
        .await;
    let listed = reply.body["services"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{}", reply.body);
    assert_eq!(listed[0]["id"], id.as_str());
    let reply = cloud.call("GET", "/v3/services", Some(&admin), None).await;
    assert_eq!(
        reply.body["services"].as_array().unwrap().len(),
        2,
        "identity and compute: {}",
        reply.body
    );

    let patch = json!({"service": {"description": "new", "enabled": false}});
    let reply = cloud
        .call(
            "PATCH",
            &format!("/v3/services/{id}"),
            Some(&admin),
            Some(patch),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["service"]["description"], "new");
    assert_eq!(reply.body["service"]["enabled"], false);
    assert_eq!(reply.body["service"]["type"], "compute");

    let reply = cloud
        .call("DELETE", &format!("/v3/services/{id}"), Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud
        .call("GET", &format!("/v3/services/{id}"), Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn service_bad_requests() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let reply = cloud
        .call("GET", "/v3/services/nope", Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body["error"]["message"],
        "Could not find service: nope."
    );

    let reply = cloud
        .call(
            "POST",
            "/v3/services",
            Some(&admin),
            Some(json!({"service": {"name": "x"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "type is required");
    let reply = cloud
        .call(
            "POST",
            "/v3/services",
            Some(&admin),
            Some(json!({"service": {"type": ""}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "empty type");
    let reply = cloud
        .call(
            "POST",
            "/v3/services",
            Some(&admin),
            Some(json!({"service": {"type": "x", "enabled": "yes"}})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "enabled must be a boolean"
    );

    let service = create_service(&cloud, &admin, "image").await;
    let path = format!("/v3/services/{}", service["id"].as_str().unwrap());
    let reply = cloud
        .call(
            "PATCH",
            &path,
            Some(&admin),
            Some(json!({"service": {"id": "other"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "id cannot change");
    let reply = cloud
        .call("PATCH", &path, Some(&admin), Some(json!({"service": {}})))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "empty update");
}

#[tokio::test]
async fn member_cannot_manage_catalog() {
    let cloud = TestIdentity::start().await;
    let member = member_token(&cloud).await;
    let reply = cloud
        .call(
            "POST",
            "/v3/services",
            Some(&member),
            Some(json!({"service": {"type": "compute"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = cloud.call("GET", "/v3/services", Some(&member), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = cloud
        .call("GET", "/v3/endpoints", Some(&member), None)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = cloud
        .call(
            "PUT",
            "/v3/regions/r1",
            Some(&member),
            Some(json!({"region": {}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Keystone lets any authenticated user read regions.
    let reply = cloud.call("GET", "/v3/regions", Some(&member), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = cloud
        .call("GET", "/v3/regions/RegionOne", Some(&member), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = cloud.call("GET", "/v3/regions", None, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn endpoint_crud_and_filters() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let service = create_service(&cloud, &admin, "compute").await;
    let service_id = service["id"].as_str().unwrap();

    let reply = cloud
        .call(
            "POST",
            "/v3/endpoints",
            Some(&admin),
            Some(endpoint_body(service_id, "public", Some("RegionOne"))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let endpoint = &reply.body["endpoint"];
    let id = endpoint["id"].as_str().unwrap().to_owned();
    assert_eq!(endpoint["interface"], "public");
    assert_eq!(endpoint["region_id"], "RegionOne");
    assert_eq!(endpoint["region"], "RegionOne");
    assert_eq!(endpoint["service_id"], service_id);
    assert_eq!(endpoint["url"], "http://127.0.0.1:8774/v2.1");
    assert_eq!(endpoint["enabled"], true);
    let reply = cloud
        .call(
            "POST",
            "/v3/endpoints",
            Some(&admin),
            Some(endpoint_body(service_id, "internal", None)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["endpoint"]["region_id"], Value::Null);

    let count = |body: &Value| body["endpoints"].as_array().unwrap().len();
    let reply = cloud
        .call(
            "GET",
            &format!("/v3/endpoints?service_id={service_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(count(&reply.body), 2, "{}", reply.body);
    let reply = cloud
        .call(
            "GET",
            &format!("/v3/endpoints?service_id={service_id}&interface=public"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(count(&reply.body), 1, "{}", reply.body);
    let reply = cloud
        .call(
            "GET",
            "/v3/endpoints?region_id=RegionOne",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        count(&reply.body),
        4,
        "3 identity endpoints and 1 compute: {}",
        reply.body
    );
    let reply = cloud
        .call(
            "GET",
            "/v3/endpoints?interface=sideways",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let path = format!("/v3/endpoints/{id}");
    let patch = json!({"endpoint": {"url": "http://127.0.0.2:8774/v2.1", "interface": "admin", "enabled": false}});
    let reply = cloud.call("PATCH", &path, Some(&admin), Some(patch)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["endpoint"]["url"], "http://127.0.0.2:8774/v2.1");
    assert_eq!(reply.body["endpoint"]["interface"], "admin");
    assert_eq!(reply.body["endpoint"]["enabled"], false);
    assert_eq!(
        reply.body["endpoint"]["region_id"], "RegionOne",
        "region kept"
    );
    let reply = cloud
        .call(
            "PATCH",
            &path,
            Some(&admin),
            Some(json!({"endpoint": {"region_id": null}})),
        )
        .await;
    assert_eq!(
        reply.body["endpoint"]["region_id"],
        Value::Null,
        "{}",
        reply.body
    );

    let reply = cloud.call("DELETE", &path, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud.call("GET", &path, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = cloud.call("DELETE", &path, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn endpoint_bad_input_is_rejected() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let service = create_service(&cloud, &admin, "network").await;
    let service_id = service["id"].as_str().unwrap();
    let post = |body: Value| cloud.call("POST", "/v3/endpoints", Some(&admin), Some(body));

    let reply = post(endpoint_body(service_id, "sideways", None)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "bad interface");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("interface"),
        "{}",
        reply.body
    );

    let reply = post(endpoint_body("no-such-service", "public", None)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "unknown service");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("endpoint service_id"),
        "{}",
        reply.body
    );

    let reply = post(endpoint_body(service_id, "public", Some("Atlantis"))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "unknown region_id");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("endpoint region_id"),
        "{}",
        reply.body
    );

    let reply = post(json!({"endpoint": {"service_id": service_id, "interface": "public"}})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "url is required");
    let reply = post(
        json!({"endpoint": {"service_id": service_id, "interface": "public", "url": "no-scheme"}}),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "url without a scheme"
    );
    let reply = post(json!({"endpoint": {"service_id": service_id, "interface": "public", "url": "http://h/$(nope)s"}})).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "unknown substitution"
    );
    let reply = post(json!({"endpoint": {"service_id": service_id, "interface": "public", "url": "http://h", "enabled": "False"}})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "enabled as a string");

    let reply = cloud.call("GET", "/v3/endpoints", Some(&admin), None).await;
    assert_eq!(
        reply.body["endpoints"].as_array().unwrap().len(),
        3,
        "only the identity endpoints: {}",
        reply.body
    );
}

#[tokio::test]
async fn endpoint_legacy_region_creates_region() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let service = create_service(&cloud, &admin, "image").await;
    let body = json!({"endpoint": {"service_id": service["id"], "interface": "public", "region": "RegionTwo",
                                   "url": "http://127.0.0.1:9292"}});
    let reply = cloud
        .call("POST", "/v3/endpoints", Some(&admin), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["endpoint"]["region_id"], "RegionTwo");
    let reply = cloud
        .call("GET", "/v3/regions/RegionTwo", Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn deleting_service_deletes_its_endpoints() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let service = create_service(&cloud, &admin, "compute").await;
    let service_id = service["id"].as_str().unwrap();
    let reply = cloud
        .call(
            "POST",
            "/v3/endpoints",
            Some(&admin),
            Some(endpoint_body(service_id, "public", None)),
        )
        .await;
    let endpoint_id = reply.body["endpoint"]["id"].as_str().unwrap().to_owned();

    let reply = cloud
        .call(
            "DELETE",
            &format!("/v3/services/{service_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud
        .call(
            "GET",
            &format!("/v3/endpoints/{endpoint_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = cloud
        .call(
            "DELETE",
            &format!("/v3/services/{service_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_catalog_follows_endpoint_changes() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let service = create_service(&cloud, &admin, "compute").await;
    let service_id = service["id"].as_str().unwrap();
    let reply = cloud
        .call(
            "POST",
            "/v3/endpoints",
            Some(&admin),
            Some(endpoint_body(service_id, "public", Some("RegionOne"))),
        )
        .await;
    let endpoint_id = reply.body["endpoint"]["id"].as_str().unwrap().to_owned();

    let compute_endpoints = |catalog: &Value| -> usize {
        catalog
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["type"] == "compute")
            .map(|s| s["endpoints"].as_array().unwrap().len())
            .sum()
    };
    let reply = cloud
        .call("GET", "/v3/auth/catalog", Some(&admin), None)
        .await;
    assert_eq!(
        compute_endpoints(&reply.body["catalog"]),
        1,
        "{}",
        reply.body
    );

    let patch = json!({"endpoint": {"enabled": false}});
    cloud
        .call(
            "PATCH",
            &format!("/v3/endpoints/{endpoint_id}"),
            Some(&admin),
            Some(patch),
        )
        .await;
    let reply = cloud
        .call("GET", "/v3/auth/catalog", Some(&admin), None)
        .await;
    assert_eq!(
        compute_endpoints(&reply.body["catalog"]),
        0,
        "disabled endpoint hidden: {}",
        reply.body
    );
}

#[tokio::test]
async fn region_create_forms() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;

    let reply = cloud
        .call(
            "POST",
            "/v3/regions",
            Some(&admin),
            Some(json!({"region": {"id": "West", "description": "w"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["region"]["id"], "West");
    assert_eq!(reply.body["region"]["description"], "w");
    assert_eq!(reply.body["region"]["parent_region_id"], Value::Null);
    assert!(reply.body["region"]["links"]["self"]
        .as_str()
        .unwrap()
        .ends_with("/v3/regions/West"));

    let reply = cloud
        .call(
            "POST",
            "/v3/regions",
            Some(&admin),
            Some(json!({"region": {"description": null}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        reply.body["region"]["id"].as_str().unwrap().len(),
        32,
        "generated id"
    );
    assert_eq!(reply.body["region"]["description"], "");

    let body = json!({"region": {"parent_region_id": "West"}});
    let reply = cloud
        .call("PUT", "/v3/regions/West-1", Some(&admin), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["region"]["id"], "West-1");
    assert_eq!(reply.body["region"]["parent_region_id"], "West");

    let reply = cloud
        .call(
            "PUT",
            "/v3/regions/a",
            Some(&admin),
            Some(json!({"region": {"id": "b"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "conflicting ids");
    let reply = cloud
        .call(
            "PUT",
            "/v3/regions/West",
            Some(&admin),
            Some(json!({"region": {}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "duplicate id");
    let reply = cloud
        .call(
            "POST",
            "/v3/regions",
            Some(&admin),
            Some(json!({"region": {"id": "West"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "duplicate id");
    let reply = cloud
        .call(
            "POST",
            "/v3/regions",
            Some(&admin),
            Some(json!({"region": {"parent_region_id": "Nowhere"}})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "unknown parent, as Keystone answers"
    );
    assert_eq!(
        reply.body["error"]["message"],
        "Could not find region: Nowhere."
    );

    let reply = cloud
        .call(
            "GET",
            "/v3/regions?parent_region_id=West",
            Some(&admin),
            None,
        )
        .await;
    let children = reply.body["regions"].as_array().unwrap();
    assert_eq!(children.len(), 1, "{}", reply.body);
    assert_eq!(children[0]["id"], "West-1");
    let reply = cloud
        .call("GET", "/v3/regions/Nowhere", Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn region_update_rejects_cycles() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    for (id, parent) in [("a", None), ("b", Some("a")), ("c", Some("b"))] {
        let reply = cloud
            .call(
                "PUT",
                &format!("/v3/regions/{id}"),
                Some(&admin),
                Some(json!({"region": {"parent_region_id": parent}})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let patch = |id: &str, parent: Value| {
        let path = format!("/v3/regions/{id}");
        let body = json!({"region": {"parent_region_id": parent}});
        let (cloud, admin) = (&cloud, &admin);
        async move { cloud.call("PATCH", &path, Some(admin), Some(body)).await }
    };
    let reply = patch("a", json!("c")).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "a under its grandchild"
    );
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("circular"),
        "{}",
        reply.body
    );
    let reply = patch("a", json!("a")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "a under itself");
    let reply = patch("a", json!("Nowhere")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let reply = patch("c", json!("a")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["region"]["parent_region_id"], "a");
    let reply = patch("c", Value::Null).await;
    assert_eq!(reply.body["region"]["parent_region_id"], Value::Null);
    let reply = cloud
        .call(
            "PATCH",
            "/v3/regions/c",
            Some(&admin),
            Some(json!({"region": {"description": "cee"}})),
        )
        .await;
    assert_eq!(reply.body["region"]["description"], "cee");
    let reply = cloud
        .call(
            "PATCH",
            "/v3/regions/c",
            Some(&admin),
            Some(json!({"region": {"id": "d"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "id cannot change");
    let reply = cloud
        .call(
            "PATCH",
            "/v3/regions/zzz",
            Some(&admin),
            Some(json!({"region": {"description": "x"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn region_delete_takes_children_unless_endpoints() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    for (id, parent) in [("top", None), ("mid", Some("top")), ("leaf", Some("mid"))] {
        let reply = cloud
            .call(
                "PUT",
                &format!("/v3/regions/{id}"),
                Some(&admin),
                Some(json!({"region": {"parent_region_id": parent}})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let service = create_service(&cloud, &admin, "compute").await;
    let reply = cloud
        .call(
            "POST",
            "/v3/endpoints",
            Some(&admin),
            Some(endpoint_body(
                service["id"].as_str().unwrap(),
                "public",
                Some("leaf"),
            )),
        )
        .await;
    let endpoint_id = reply.body["endpoint"]["id"].as_str().unwrap().to_owned();

    let reply = cloud
        .call("DELETE", "/v3/regions/top", Some(&admin), None)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "a grandchild holds an endpoint"
    );
    let reply = cloud
        .call("GET", "/v3/regions/leaf", Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "nothing deleted");

    cloud
        .call(
            "DELETE",
            &format!("/v3/endpoints/{endpoint_id}"),
            Some(&admin),
            None,
        )
        .await;
    let reply = cloud
        .call("DELETE", "/v3/regions/top", Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    for id in ["top", "mid", "leaf"] {
        let reply = cloud
            .call("GET", &format!("/v3/regions/{id}"), Some(&admin), None)
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{id} should be gone");
    }
    let reply = cloud
        .call("DELETE", "/v3/regions/top", Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}
