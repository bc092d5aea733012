//! Per-project quota limits stored by the identity service.

use axum::http::StatusCode;
use oxstack_core::ErrorKind;
use oxstack_identity::db::quotas::{self, UNLIMITED};
use oxstack_identity::testing::TestIdentity;
use serde_json::json;

#[tokio::test]
async fn unknown_project_has_no_limits() {
    let cloud = TestIdentity::start().await;
    let limits = quotas::get_limits(cloud.state.pool(), "nope")
        .await
        .unwrap();
    assert!(limits.is_empty(), "{limits:?}");
}

#[tokio::test]
async fn set_get_and_update() {
    let cloud = TestIdentity::start().await;
    let pool = cloud.state.pool();
    quotas::set_limit(pool, "p1", "instances", 10)
        .await
        .unwrap();
    quotas::set_limit(pool, "p1", "cores", UNLIMITED)
        .await
        .unwrap();
    quotas::set_limit(pool, "p1", "ram", 0).await.unwrap();
    quotas::set_limit(pool, "p2", "instances", 3).await.unwrap();

    let limits = quotas::get_limits(pool, "p1").await.unwrap();
    assert_eq!(limits.len(), 3, "{limits:?}");
    assert_eq!(limits["instances"], 10);
    assert_eq!(limits["cores"], -1);
    assert_eq!(limits["ram"], 0);

    quotas::set_limit(pool, "p1", "instances", 20)
        .await
        .unwrap();
    let limits = quotas::get_limits(pool, "p1").await.unwrap();
    assert_eq!(limits["instances"], 20, "second set replaces the first");
    assert_eq!(limits.len(), 3);
    assert_eq!(
        quotas::get_limits(pool, "p2").await.unwrap()["instances"],
        3,
        "other project untouched"
    );
}

#[tokio::test]
async fn invalid_limits_are_rejected() {
    let cloud = TestIdentity::start().await;
    let pool = cloud.state.pool();
    let error = quotas::set_limit(pool, "p1", "instances", -2)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadRequest);
    assert!(
        error.message.contains("-1 for unlimited"),
        "{}",
        error.message
    );
    let error = quotas::set_limit(pool, "p1", "", 5).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadRequest);
    let long_name = "r".repeat(256);
    assert!(quotas::set_limit(pool, "p1", &long_name, 5).await.is_err());
    assert!(quotas::get_limits(pool, "p1").await.unwrap().is_empty());
}

#[tokio::test]
async fn delete_limits_removes_one_project() {
    let cloud = TestIdentity::start().await;
    let pool = cloud.state.pool();
    quotas::set_limit(pool, "p1", "instances", 1).await.unwrap();
    quotas::set_limit(pool, "p1", "cores", 2).await.unwrap();
    quotas::set_limit(pool, "p2", "cores", 4).await.unwrap();

    assert_eq!(quotas::delete_limits(pool, "p1").await.unwrap(), 2);
    assert!(quotas::get_limits(pool, "p1").await.unwrap().is_empty());
    assert_eq!(quotas::get_limits(pool, "p2").await.unwrap()["cores"], 4);
    assert_eq!(
        quotas::delete_limits(pool, "p1").await.unwrap(),
        0,
        "deleting again is harmless"
    );
}

#[tokio::test]
async fn project_delete_removes_limits() {
    let cloud = TestIdentity::start().await;
    let admin = cloud.admin_token().await;
    let reply = cloud
        .call(
            "POST",
            "/v3/projects",
            Some(&admin),
            Some(json!({"project": {"name": "quota-demo"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let project_id = reply.body["project"]["id"].as_str().unwrap().to_owned();
    let pool = cloud.state.pool();
    quotas::set_limit(pool, &project_id, "instances", 5)
        .await
        .unwrap();

    let reply = cloud
        .call(
            "DELETE",
            &format!("/v3/projects/{project_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(quotas::get_limits(pool, &project_id)
        .await
        .unwrap()
        .is_empty());
}
