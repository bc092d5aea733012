//! Quota sets, limits and availability zones.

mod common;

use axum::http::StatusCode;
use common::Cloud;
use serde_json::{json, Value};

fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().expect("object").keys().cloned().collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn quota_set_keys_follow_microversion() {
    let cloud = Cloud::start().await;
    let path = format!("/v2.1/os-quota-sets/{}", cloud.demo_project);
    let old = cloud.get(&path, &cloud.demo, "2.1").await;
    assert_eq!(old.status, StatusCode::OK, "{}", old.body);
    assert_eq!(old.body["quota_set"]["floating_ips"], 10);
    assert_eq!(old.body["quota_set"]["id"], cloud.demo_project.as_str());
    let new = cloud.get(&path, &cloud.demo, "2.57").await;
    assert_eq!(
        sorted_keys(&new.body["quota_set"]),
        [
            "cores",
            "id",
            "instances",
            "key_pairs",
            "metadata_items",
            "ram",
            "server_group_members",
            "server_groups"
        ]
    );
    assert_eq!(new.body["quota_set"]["instances"], 10);
    assert_eq!(new.body["quota_set"]["ram"], 51200);
}

#[tokio::test]
async fn cli_quota_set_instances() {
    let cloud = Cloud::start().await;
    let path = format!("/v2.1/os-quota-sets/{}", cloud.demo_project);
    let body = json!({"quota_set": {"instances": 20}});
    let denied = cloud.put(&path, &cloud.demo, "2.56", body.clone()).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let updated = cloud.put(&path, &cloud.admin, "2.56", body).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["quota_set"]["instances"], 20);
    assert!(updated.body["quota_set"].get("id").is_none());
    let shown = cloud.get(&path, &cloud.demo, "2.56").await;
    assert_eq!(shown.body["quota_set"]["instances"], 20);

    let removed_key = json!({"quota_set": {"floating_ips": 5}});
    let rejected = cloud.put(&path, &cloud.admin, "2.36", removed_key).await;
    assert_eq!(rejected.status, StatusCode::BAD_REQUEST);
    let negative = cloud
        .put(
            &path,
            &cloud.admin,
            "2.56",
            json!({"quota_set": {"cores": -2}}),
        )
        .await;
    assert_eq!(negative.status, StatusCode::BAD_REQUEST);

    let defaults = cloud
        .get(&format!("{path}/defaults"), &cloud.demo, "2.56")
        .await;
    assert_eq!(defaults.body["quota_set"]["instances"], 10);
    let reset = cloud.delete(&path, &cloud.admin, "2.56").await;
    assert_eq!(reset.status, StatusCode::ACCEPTED);
    let shown = cloud.get(&path, &cloud.demo, "2.56").await;
    assert_eq!(shown.body["quota_set"]["instances"], 10);
}

#[tokio::test]
async fn quota_detail_and_other_projects() {
    let cloud = Cloud::start().await;
    let path = format!("/v2.1/os-quota-sets/{}/detail", cloud.demo_project);
    let detail = cloud.get(&path, &cloud.demo, "2.57").await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    assert_eq!(
        detail.body["quota_set"]["cores"],
        json!({"limit": 20, "in_use": 0, "reserved": 0})
    );
    let other = format!("/v2.1/os-quota-sets/{}", cloud.alt_project);
    assert_eq!(
        cloud.get(&other, &cloud.demo, "2.57").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn limits_shape_follows_microversion() {
    let cloud = Cloud::start().await;
    let old = cloud.get("/v2.1/limits", &cloud.demo, "2.1").await;
    assert_eq!(old.status, StatusCode::OK, "{}", old.body);
    assert_eq!(old.body["limits"]["rate"], json!([]));
    let absolute = &old.body["limits"]["absolute"];
    assert_eq!(absolute["maxTotalInstances"], 10);
    assert_eq!(absolute["maxTotalCores"], 20);
    assert_eq!(absolute["maxTotalRAMSize"], 51200);
    assert_eq!(absolute["maxTotalKeypairs"], 100);
    assert_eq!(absolute["totalInstancesUsed"], 0);
    assert_eq!(absolute["maxImageMeta"], 128);
    assert_eq!(absolute["maxSecurityGroups"], 10);

    let new = cloud.get("/v2.1/limits", &cloud.demo, "2.57").await;
    assert_eq!(
        sorted_keys(&new.body["limits"]["absolute"]),
        [
            "maxServerGroupMembers",
            "maxServerGroups",
            "maxServerMeta",
            "maxTotalCores",
            "maxTotalInstances",
            "maxTotalKeypairs",
            "maxTotalRAMSize",
            "totalCoresUsed",
            "totalInstancesUsed",
            "totalRAMUsed",
            "totalServerGroupsUsed"
        ]
    );
}

#[tokio::test]
async fn availability_zones() {
    let cloud = Cloud::start().await;
    let list = cloud
        .get("/v2.1/os-availability-zone", &cloud.demo, "2.1")
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["availabilityZoneInfo"][0]["zoneName"], "nova");
    assert_eq!(
        list.body["availabilityZoneInfo"][0]["zoneState"]["available"],
        true
    );
    let detail = cloud
        .get("/v2.1/os-availability-zone/detail", &cloud.demo, "2.1")
        .await;
    assert_eq!(detail.status, StatusCode::FORBIDDEN);
    let detail = cloud
        .get("/v2.1/os-availability-zone/detail", &cloud.admin, "2.1")
        .await;
    assert_eq!(detail.status, StatusCode::OK);
}

#[tokio::test]
async fn per_user_quotas_within_project() {
    let cloud = Cloud::start().await;
    let path = format!("/v2.1/os-quota-sets/{}", cloud.demo_project);
    let project = cloud
        .put(
            &path,
            &cloud.admin,
            "2.57",
            json!({"quota_set": {"ram": 5120}}),
        )
        .await;
    assert_eq!(project.status, StatusCode::OK, "{}", project.body);
    let user_path = format!("{path}?user_id=someone");
    let user = cloud
        .put(
            &user_path,
            &cloud.admin,
            "2.57",
            json!({"quota_set": {"ram": 2048}}),
        )
        .await;
    assert_eq!(user.status, StatusCode::OK, "{}", user.body);
    assert_eq!(user.body["quota_set"]["ram"], 2048);

    let shown_user = cloud.get(&user_path, &cloud.admin, "2.57").await;
    assert_eq!(shown_user.body["quota_set"]["ram"], 2048);
    let shown_project = cloud.get(&path, &cloud.admin, "2.57").await;
    assert_eq!(
        shown_project.body["quota_set"]["ram"], 5120,
        "the project limit is unchanged"
    );

    let too_big = json!({"quota_set": {"ram": 6000}});
    let too_big = cloud.put(&user_path, &cloud.admin, "2.57", too_big).await;
    assert_eq!(too_big.status, StatusCode::BAD_REQUEST);
    let unlimited = json!({"quota_set": {"ram": -1}});
    let unlimited = cloud.put(&user_path, &cloud.admin, "2.57", unlimited).await;
    assert_eq!(unlimited.status, StatusCode::BAD_REQUEST);

    let reset = cloud.delete(&user_path, &cloud.admin, "2.57").await;
    assert_eq!(reset.status, StatusCode::ACCEPTED);
    let shown_user = cloud.get(&user_path, &cloud.admin, "2.57").await;
    assert_eq!(
        shown_user.body["quota_set"]["ram"], 5120,
        "the user falls back to the project"
    );
}

#[tokio::test]
async fn default_quota_class_sets_defaults() {
    let cloud = Cloud::start().await;
    let path = "/v2.1/os-quota-class-sets/default";
    let old = cloud.get(path, &cloud.admin, "2.1").await;
    assert_eq!(old.status, StatusCode::OK, "{}", old.body);
    assert_eq!(old.body["quota_class_set"]["id"], "default");
    assert!(old.body["quota_class_set"].get("server_groups").is_none());
    assert_eq!(old.body["quota_class_set"]["floating_ips"], 10);
    let new = cloud.get(path, &cloud.admin, "2.57").await;
    assert_eq!(
        sorted_keys(&new.body["quota_class_set"]),
        [
            "cores",
            "id",
            "instances",
            "key_pairs",
            "metadata_items",
            "ram",
            "server_group_members",
            "server_groups"
        ]
    );

    let denied = cloud
        .put(
            path,
            &cloud.demo,
            "2.57",
            json!({"quota_class_set": {"cores": 40}}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let updated = cloud
        .put(
            path,
            &cloud.admin,
            "2.57",
            json!({"quota_class_set": {"cores": 40}}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["quota_class_set"]["cores"], 40);
    assert!(updated.body["quota_class_set"].get("id").is_none());

    let project = format!("/v2.1/os-quota-sets/{}", cloud.demo_project);
    let shown = cloud.get(&project, &cloud.demo, "2.57").await;
    assert_eq!(
        shown.body["quota_set"]["cores"], 40,
        "the default class sets project defaults"
    );
    let defaults = cloud
        .get(&format!("{project}/defaults"), &cloud.demo, "2.57")
        .await;
    assert_eq!(defaults.body["quota_set"]["cores"], 40);
    let network_key = json!({"quota_class_set": {"floating_ips": 1}});
    let rejected = cloud.put(path, &cloud.admin, "2.50", network_key).await;
    assert_eq!(rejected.status, StatusCode::BAD_REQUEST);
}
