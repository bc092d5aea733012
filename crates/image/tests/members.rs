//! Sharing images between projects with image members.

mod common;

use axum::http::StatusCode;
use common::Cloud;
use serde_json::{json, Value};

fn listed(body: &Value, id: &str) -> bool {
    body["images"]
        .as_array()
        .unwrap()
        .iter()
        .any(|image| image["id"] == id)
}

async fn shared_image(cloud: &Cloud, visibility: &str) -> String {
    let image = cloud
        .create(&cloud.demo, json!({"name": "s", "visibility": visibility}))
        .await;
    image["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn private_image_becomes_visible_after_membership_is_accepted() {
    let cloud = Cloud::start().await;
    let id = shared_image(&cloud, "private").await;
    assert_eq!(
        cloud.show(&cloud.alt, &id).await.status,
        StatusCode::NOT_FOUND
    );

    // Private images take no members; the owner shares it first.
    let members = format!("/image/v2/images/{id}/members");
    let add = json!({"member": cloud.alt_project});
    assert_eq!(
        cloud
            .call("POST", &members, &cloud.demo, Some(add.clone()))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let share = json!([{"op": "replace", "path": "/visibility", "value": "shared"}]);
    let path = format!("/image/v2/images/{id}");
    assert_eq!(
        cloud
            .call("PATCH", &path, &cloud.demo, Some(share))
            .await
            .status,
        StatusCode::OK
    );

    let reply = cloud
        .call("POST", &members, &cloud.demo, Some(add.clone()))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], "pending");
    assert_eq!(reply.body["member_id"], cloud.alt_project.as_str());
    assert_eq!(reply.body["image_id"], id.as_str());
    assert_eq!(reply.body["schema"], "/v2/schemas/member");
    assert_eq!(
        cloud
            .call("POST", &members, &cloud.demo, Some(add))
            .await
            .status,
        StatusCode::CONFLICT
    );

    // Pending: visible by id, not in the default list, listed with member_status=pending.
    assert_eq!(cloud.show(&cloud.alt, &id).await.status, StatusCode::OK);
    assert!(!listed(
        &cloud
            .call("GET", "/image/v2/images", &cloud.alt, None)
            .await
            .body,
        &id
    ));
    let pending = cloud
        .call(
            "GET",
            "/image/v2/images?member_status=pending&visibility=shared",
            &cloud.alt,
            None,
        )
        .await;
    assert!(listed(&pending.body, &id));

    let member = format!("{members}/{}", cloud.alt_project);
    let accept = json!({"status": "accepted"});
    assert_eq!(
        cloud
            .call("PUT", &member, &cloud.demo, Some(accept.clone()))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let reply = cloud.call("PUT", &member, &cloud.alt, Some(accept)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], "accepted");
    assert!(listed(
        &cloud
            .call("GET", "/image/v2/images", &cloud.alt, None)
            .await
            .body,
        &id
    ));

    let list = cloud.call("GET", &members, &cloud.demo, None).await;
    assert_eq!(list.body["members"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["schema"], "/v2/schemas/members");
    assert_eq!(
        cloud.call("GET", &member, &cloud.alt, None).await.body["status"],
        "accepted"
    );
}

#[tokio::test]
async fn member_cannot_delete_or_modify_image() {
    let cloud = Cloud::start().await;
    let id = shared_image(&cloud, "shared").await;
    let members = format!("/image/v2/images/{id}/members");
    cloud
        .call(
            "POST",
            &members,
            &cloud.demo,
            Some(json!({"member": cloud.alt_project})),
        )
        .await;
    let member = format!("{members}/{}", cloud.alt_project);
    cloud
        .call(
            "PUT",
            &member,
            &cloud.alt,
            Some(json!({"status": "accepted"})),
        )
        .await;

    let path = format!("/image/v2/images/{id}");
    assert_eq!(
        cloud.call("DELETE", &path, &cloud.alt, None).await.status,
        StatusCode::FORBIDDEN
    );
    let rename = json!([{"op": "replace", "path": "/name", "value": "mine"}]);
    assert_eq!(
        cloud
            .call("PATCH", &path, &cloud.alt, Some(rename))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        cloud.call("DELETE", &member, &cloud.alt, None).await.status,
        StatusCode::FORBIDDEN
    );
    let other = json!({"member": "some-project"});
    assert_eq!(
        cloud
            .call("POST", &members, &cloud.alt, Some(other))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(cloud.show(&cloud.demo, &id).await.status, StatusCode::OK);
}

#[tokio::test]
async fn rejected_and_removed_members_lose_the_image() {
    let cloud = Cloud::start().await;
    let id = shared_image(&cloud, "shared").await;
    let members = format!("/image/v2/images/{id}/members");
    cloud
        .call(
            "POST",
            &members,
            &cloud.demo,
            Some(json!({"member": cloud.alt_project})),
        )
        .await;
    let member = format!("{members}/{}", cloud.alt_project);

    let reply = cloud
        .call(
            "PUT",
            &member,
            &cloud.alt,
            Some(json!({"status": "rejected"})),
        )
        .await;
    assert_eq!(reply.body["status"], "rejected");
    assert!(!listed(
        &cloud
            .call("GET", "/image/v2/images", &cloud.alt, None)
            .await
            .body,
        &id
    ));

    assert_eq!(
        cloud
            .call("DELETE", &member, &cloud.demo, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        cloud.show(&cloud.alt, &id).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        cloud
            .call("DELETE", &member, &cloud.demo, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn invalid_member_requests_are_rejected() {
    let cloud = Cloud::start().await;
    let id = shared_image(&cloud, "shared").await;
    let members = format!("/image/v2/images/{id}/members");
    for body in [json!({}), json!({"member": ""}), json!({"member": 5})] {
        let reply = cloud
            .call("POST", &members, &cloud.demo, Some(body.clone()))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
    }
    cloud
        .call(
            "POST",
            &members,
            &cloud.demo,
            Some(json!({"member": cloud.alt_project})),
        )
        .await;
    let member = format!("{members}/{}", cloud.alt_project);
    let reply = cloud
        .call("PUT", &member, &cloud.alt, Some(json!({"status": "maybe"})))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}
