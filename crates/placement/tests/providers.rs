//! Resource providers, inventories, traits, aggregates and resource classes
//! through the HTTP API.

mod common;

use axum::http::StatusCode;
use common::{new_uuid, Cloud, LATEST};
use serde_json::json;

#[tokio::test]
async fn root_lists_version_without_token() {
    let cloud = Cloud::start().await;
    for path in ["/", ""] {
        let reply = cloud.call_at(None, "GET", path, None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        let version = &reply.body["versions"][0];
        assert_eq!(version["id"], "v1.0");
        assert_eq!(version["min_version"], "1.0");
        assert_eq!(version["max_version"], "1.28");
        assert_eq!(reply.headers["openstack-api-version"], "placement 1.0");
    }
}

#[tokio::test]
async fn microversion_is_echoed_and_bounded() {
    let cloud = Cloud::start().await;
    let reply = cloud
        .call_at(
            Some("placement latest"),
            "GET",
            "/resource_providers",
            Some(&cloud.admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["openstack-api-version"], "placement 1.28");
    assert_eq!(reply.headers["cache-control"], "no-cache");
    assert!(reply.headers.contains_key("last-modified"));

    let reply = cloud
        .call_at(
            Some("placement 1.99"),
            "GET",
            "/resource_providers",
            Some(&cloud.admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(reply.body["errors"][0]["status"], 406);
}

#[tokio::test]
async fn member_is_forbidden_and_anonymous_unauthorized() {
    let cloud = Cloud::start().await;
    let member = cloud.member.clone();
    let reply = cloud
        .call_at(
            Some(LATEST),
            "GET",
            "/resource_providers",
            Some(&member),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert!(
        reply.detail().contains("placement:resource_providers:list"),
        "{}",
        reply.detail()
    );
    let body = json!({"name": "sneaky"});
    let reply = cloud
        .call_at(
            Some(LATEST),
            "POST",
            "/resource_providers",
            Some(&member),
            Some(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = cloud
        .call_at(Some(LATEST), "GET", "/resource_providers", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn provider_crud_round_trip() {
    let cloud = Cloud::start().await;
    let uuid = cloud.create_provider("cn1").await;

    let reply = cloud
        .call("GET", &format!("/resource_providers/{uuid}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["name"], "cn1");
    assert!(reply.headers["last-modified"]
        .to_str()
        .unwrap()
        .ends_with(" GMT"));
    assert_eq!(reply.body["generation"], 0);
    assert_eq!(reply.body["root_provider_uuid"], uuid.as_str());
    assert!(reply.body["parent_provider_uuid"].is_null());

    let reply = cloud
        .call(
            "PUT",
            &format!("/resource_providers/{uuid}"),
            Some(json!({"name": "cn1-renamed"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["name"], "cn1-renamed");

    let reply = cloud
        .call("GET", "/resource_providers?name=cn1-renamed", None)
        .await;
    assert_eq!(
        reply.body["resource_providers"].as_array().unwrap().len(),
        1
    );

    let reply = cloud
        .call("DELETE", &format!("/resource_providers/{uuid}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud
        .call("GET", &format!("/resource_providers/{uuid}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "placement.resource_provider.not_found");
}

#[tokio::test]
async fn old_microversion_create_returns_location_only() {
    let cloud = Cloud::start().await;
    let uuid = new_uuid();
    let body = json!({"name": "old", "uuid": uuid});
    let reply = cloud
        .call_at(
            Some("placement 1.0"),
            "POST",
            "/resource_providers",
            Some(&cloud.admin),
            Some(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let location = reply.headers["location"].to_str().unwrap();
    assert!(
        location.ends_with(&format!("/placement/resource_providers/{uuid}")),
        "{location}"
    );
    let reply = cloud
        .call_at(
            Some("placement 1.0"),
            "GET",
            &format!("/resource_providers/{uuid}"),
            Some(&cloud.admin),
            None,
        )
        .await;
    assert!(
        reply.body.get("root_provider_uuid").is_none(),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn duplicate_provider_name_conflicts() {
    let cloud = Cloud::start().await;
    cloud.create_provider("twin").await;
    let reply = cloud
        .call("POST", "/resource_providers", Some(json!({"name": "twin"})))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.code(), "placement.duplicate_name");
}

#[tokio::test]
async fn stale_inventory_generation_conflicts() {
    let cloud = Cloud::start().await;
    let uuid = cloud.create_provider("cn1").await;
    let path = format!("/resource_providers/{uuid}/inventories");
    let body = json!({"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 8}}});
    let reply = cloud.call("PUT", &path, Some(body.clone())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["resource_provider_generation"], 1);
    assert_eq!(reply.body["inventories"]["VCPU"]["max_unit"], 2_147_483_647);

    let reply = cloud.call("PUT", &path, Some(body)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.code(), "placement.concurrent_update");

    let reply = cloud.call("GET", &path, None).await;
    assert_eq!(reply.body["inventories"]["VCPU"]["total"], 8);
}

#[tokio::test]
async fn single_inventory_crud() {
    let cloud = Cloud::start().await;
    let uuid = cloud.create_provider("cn1").await;
    let base = format!("/resource_providers/{uuid}/inventories");
    let body = json!({"resource_provider_generation": 0, "resource_class": "DISK_GB", "total": 100, "reserved": 10});
    let reply = cloud.call("POST", &base, Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);

    let body = json!({"resource_provider_generation": 1, "total": 200, "allocation_ratio": 1.5});
    let reply = cloud
        .call("PUT", &format!("{base}/DISK_GB"), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["total"], 200);
    assert_eq!(reply.body["resource_provider_generation"], 2);

    let reply = cloud.call("GET", &format!("{base}/DISK_GB"), None).await;
    assert_eq!(reply.body["allocation_ratio"], 1.5);

    let reply = cloud.call("DELETE", &format!("{base}/DISK_GB"), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud.call("GET", &format!("{base}/DISK_GB"), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_inventories_are_rejected() {
    let cloud = Cloud::start().await;
    let uuid = cloud.create_provider("cn1").await;
    let cases = [
        json!({"VCPU": {"total": 4, "reserved": 5}}),
        json!({"VCPU": {"total": 4, "min_unit": 3, "max_unit": 2}}),
        json!({"VCPU": {"total": 0}}),
        json!({"CUSTOM_UNKNOWN": {"total": 1}}),
    ];
    for inventories in cases {
        let reply = cloud.set_inventories(&uuid, inventories.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{inventories}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn custom_resource_class_lifecycle() {
    let cloud = Cloud::start().await;
    let reply = cloud
        .call("PUT", "/resource_classes/CUSTOM_GOLD", None)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = cloud
        .call("PUT", "/resource_classes/CUSTOM_GOLD", None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud.call("PUT", "/resource_classes/GOLD", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let reply = cloud.call("GET", "/resource_classes", None).await;
    let names: Vec<&str> = reply.body["resource_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"VCPU") && names.contains(&"CUSTOM_GOLD"),
        "{names:?}"
    );

    let uuid = cloud.create_provider("cn1").await;
    let reply = cloud
        .set_inventories(&uuid, json!({"CUSTOM_GOLD": {"total": 2}}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = cloud
        .call("DELETE", "/resource_classes/CUSTOM_GOLD", None)
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let reply = cloud.call("DELETE", "/resource_classes/VCPU", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn traits_on_providers() {
    let cloud = Cloud::start().await;
    let reply = cloud.call("PUT", "/traits/CUSTOM_FAST", None).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = cloud.call("PUT", "/traits/FAST", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = cloud.call("GET", "/traits/CUSTOM_FAST", None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);

    let fast = cloud.create_provider("fast").await;
    let slow = cloud.create_provider("slow").await;
    let body =
        json!({"resource_provider_generation": 0, "traits": ["CUSTOM_FAST", "HW_CPU_X86_AVX"]});
    let reply = cloud
        .call(
            "PUT",
            &format!("/resource_providers/{fast}/traits"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["resource_provider_generation"], 1);
    let reply = cloud
        .call(
            "PUT",
            &format!("/resource_providers/{fast}/traits"),
            Some(body),
        )
        .await;
    assert_eq!(reply.code(), "placement.concurrent_update");
    let unknown = json!({"resource_provider_generation": 0, "traits": ["CUSTOM_NOPE"]});
    let reply = cloud
        .call(
            "PUT",
            &format!("/resource_providers/{slow}/traits"),
            Some(unknown),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let reply = cloud
        .call("GET", "/resource_providers?required=CUSTOM_FAST", None)
        .await;
    let listed = reply.body["resource_providers"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["uuid"], fast.as_str());
    let reply = cloud
        .call("GET", "/resource_providers?required=!CUSTOM_FAST", None)
        .await;
    assert_eq!(reply.body["resource_providers"][0]["uuid"], slow.as_str());

    let reply = cloud.call("GET", "/traits?associated=true", None).await;
    let mut associated: Vec<&str> = reply.body["traits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    associated.sort();
    assert_eq!(associated, ["CUSTOM_FAST", "HW_CPU_X86_AVX"]);
    let reply = cloud.call("DELETE", "/traits/CUSTOM_FAST", None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn aggregates_filter_member_of() {
    let cloud = Cloud::start().await;
    let in_agg = cloud.create_provider("in").await;
    cloud.create_provider("out").await;
    let aggregate = new_uuid();
    let body = json!({"aggregates": [aggregate], "resource_provider_generation": 0});
    let reply = cloud
        .call(
            "PUT",
            &format!("/resource_providers/{in_agg}/aggregates"),
            Some(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["resource_provider_generation"], 1);

    let reply = cloud
        .call(
            "GET",
            &format!(
                "/resource_providers?member_of=in:{aggregate},{}",
                new_uuid()
            ),
            None,
        )
        .await;
    let listed = reply.body["resource_providers"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{}", reply.body);
    assert_eq!(listed[0]["uuid"], in_agg.as_str());

    // Before 1.19 the body is a bare list and the reply has no generation.
    let old = cloud
        .call_at(
            Some("placement 1.1"),
            "PUT",
            &format!("/resource_providers/{in_agg}/aggregates"),
            Some(&cloud.admin),
            Some(json!([])),
        )
        .await;
    assert_eq!(old.status, StatusCode::OK, "{}", old.body);
    assert!(old.body.get("resource_provider_generation").is_none());
}

#[tokio::test]
async fn nested_providers_share_root() {
    let cloud = Cloud::start().await;
    let root = cloud.create_provider("root").await;
    let body = json!({"name": "child", "parent_provider_uuid": root});
    let reply = cloud.call("POST", "/resource_providers", Some(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let child = reply.body["uuid"].as_str().unwrap().to_owned();
    assert_eq!(reply.body["root_provider_uuid"], root.as_str());
    cloud.create_provider("elsewhere").await;

    let reply = cloud
        .call("GET", &format!("/resource_providers?in_tree={child}"), None)
        .await;
    assert_eq!(
        reply.body["resource_providers"].as_array().unwrap().len(),
        2,
        "{}",
        reply.body
    );

    let reply = cloud
        .call("DELETE", &format!("/resource_providers/{root}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        reply.code(),
        "placement.resource_provider.cannot_delete_parent"
    );
}

#[tokio::test]
async fn unknown_query_parameter_is_rejected() {
    let cloud = Cloud::start().await;
    let reply = cloud
        .call("GET", "/resource_providers?colour=blue", None)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = cloud
        .call_at(
            Some("placement 1.3"),
            "GET",
            "/resource_providers?resources=VCPU:1",
            Some(&cloud.admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "resources needs 1.4");
}

#[tokio::test]
async fn unknown_route_and_method_use_placement_errors() {
    let cloud = Cloud::start().await;
    let reply = cloud.call("GET", "/nothing-here", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "placement.undefined_code");
    let reply = cloud.call("PATCH", "/resource_providers", None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.body["errors"][0]["status"], 405);
}

#[tokio::test]
async fn resources_filter_lists_providers_with_room() {
    let cloud = Cloud::start().await;
    let big = cloud.compute_node("big", 16, 32768).await;
    cloud.compute_node("small", 2, 2048).await;
    let reply = cloud
        .call(
            "GET",
            "/resource_providers?resources=VCPU:4,MEMORY_MB:4096",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let listed = reply.body["resource_providers"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["uuid"], big.as_str());
}

#[tokio::test]
async fn provider_gets_parent_by_update() {
    let cloud = Cloud::start().await;
    let root = cloud.create_provider("root").await;
    let child = cloud.create_provider("child").await;
    let body = json!({"name": "child", "parent_provider_uuid": root});
    let reply = cloud
        .call("PUT", &format!("/resource_providers/{child}"), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["root_provider_uuid"], root.as_str());

    // A provider cannot become the child of its own descendant.
    let body = json!({"name": "root", "parent_provider_uuid": child});
    let reply = cloud
        .call("PUT", &format!("/resource_providers/{root}"), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);

    let other = cloud.create_provider("other").await;
    let body = json!({"name": "child", "parent_provider_uuid": other});
    let reply = cloud
        .call("PUT", &format!("/resource_providers/{child}"), Some(body))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "re-parenting is rejected"
    );
}

#[tokio::test]
async fn resource_class_renamed_before_1_7() {
    let cloud = Cloud::start().await;
    let at = Some("placement 1.2");
    let admin = Some(cloud.admin.as_str());
    let body = json!({"name": "CUSTOM_OLD"});
    let reply = cloud
        .call_at(at, "POST", "/resource_classes", admin, Some(body.clone()))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = cloud
        .call_at(at, "POST", "/resource_classes", admin, Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);

    let rename = json!({"name": "CUSTOM_NEW"});
    let reply = cloud
        .call_at(
            at,
            "PUT",
            "/resource_classes/CUSTOM_OLD",
            admin,
            Some(rename),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["name"], "CUSTOM_NEW");
    let reply = cloud
        .call_at(at, "GET", "/resource_classes/CUSTOM_OLD", admin, None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let reply = cloud
        .call_at(
            Some("placement 1.1"),
            "GET",
            "/resource_classes/VCPU",
            admin,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "show needs 1.2");
}

#[tokio::test]
async fn unknown_names_in_filters_are_rejected() {
    let cloud = Cloud::start().await;
    for query in [
        "/resource_providers?resources=CUSTOM_NOPE:1",
        "/resource_providers?required=CUSTOM_NOPE",
        "/allocation_candidates?resources=VCPU:1&required=!CUSTOM_NOPE",
    ] {
        let reply = cloud.call("GET", query, None).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.body
        );
        assert!(
            reply.detail().contains("CUSTOM_NOPE"),
            "{query}: {}",
            reply.detail()
        );
    }
}
