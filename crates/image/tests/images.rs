//! Image metadata through the API: create, show, list, patch, delete, tags,
//! discovery and schemas.

mod common;

use axum::http::StatusCode;
use common::Cloud;
use serde_json::{json, Value};

fn ids(body: &Value) -> Vec<String> {
    body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn create_returns_queued_image_with_glance_fields() {
    let cloud = Cloud::start().await;
    let body = json!({"name": "cirros", "disk_format": "qcow2", "container_format": "bare",
                      "owner_specified.openstack.md5": "", "hw_disk_bus": "scsi",
                      "tags": ["a", "b"], "min_ram": 64});
    let reply = cloud
        .call("POST", "/image/v2/images", &cloud.demo, Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        reply.header("openstack-image-import-methods"),
        Some("glance-direct")
    );
    let image = reply.body;
    let id = image["id"].as_str().unwrap();
    assert_eq!(image["status"], "queued");
    assert_eq!(image["visibility"], "shared");
    assert_eq!(image["owner"], cloud.demo_project.as_str());
    assert_eq!(image["owner_specified.openstack.md5"], "");
    assert_eq!(image["hw_disk_bus"], "scsi");
    assert_eq!(image["tags"], json!(["a", "b"]));
    assert_eq!(image["min_ram"], 64);
    assert_eq!(image["self"], format!("/v2/images/{id}"));
    assert_eq!(image["file"], format!("/v2/images/{id}/file"));
    assert_eq!(image["schema"], "/v2/schemas/image");
    assert!(image["size"].is_null());
    assert!(image["created_at"].as_str().unwrap().ends_with('Z'));

    let shown = cloud.show(&cloud.demo, id).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body, image);
}

#[tokio::test]
async fn create_with_duplicate_id_conflicts() {
    let cloud = Cloud::start().await;
    let id = "c1a2b3c4-0000-4000-8000-000000000001";
    let image = cloud
        .create(&cloud.demo, json!({"id": id, "name": "fixed"}))
        .await;
    assert_eq!(image["id"], id);
    let reply = cloud
        .call(
            "POST",
            "/image/v2/images",
            &cloud.demo,
            Some(json!({"id": id})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn invalid_create_bodies_are_rejected() {
    let cloud = Cloud::start().await;
    let cases = [
        (json!({"disk_format": "qcow3"}), StatusCode::BAD_REQUEST),
        (json!({"container_format": "zip"}), StatusCode::BAD_REQUEST),
        (json!({"hw_disk_bus": 5}), StatusCode::BAD_REQUEST),
        (json!({"id": "not-a-uuid"}), StatusCode::BAD_REQUEST),
        (json!({"status": "active"}), StatusCode::FORBIDDEN),
        (json!({"size": 5}), StatusCode::FORBIDDEN),
        (json!({"os_glance_foo": "bar"}), StatusCode::FORBIDDEN),
        (json!({"deleted": "x"}), StatusCode::FORBIDDEN),
        (json!({"visibility": "public"}), StatusCode::FORBIDDEN),
        (json!({"owner": "someone-else"}), StatusCode::FORBIDDEN),
    ];
    for (body, status) in cases {
        let reply = cloud
            .call("POST", "/image/v2/images", &cloud.demo, Some(body.clone()))
            .await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
    }
}

#[tokio::test]
async fn admin_may_create_public_image() {
    let cloud = Cloud::start().await;
    let image = cloud
        .create(&cloud.admin, json!({"name": "pub", "visibility": "public"}))
        .await;
    let shown = cloud.show(&cloud.alt, image["id"].as_str().unwrap()).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body["visibility"], "public");
}

#[tokio::test]
async fn unknown_image_is_not_found() {
    let cloud = Cloud::start().await;
    let reply = cloud.show(&cloud.demo, "cirros").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body["code"], "404 Not Found");
    let reply = cloud
        .send(
            "GET",
            "/image/v2/images/cirros",
            Some(&cloud.demo),
            vec![],
            &[("accept", "*/*")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = cloud
        .send("GET", "/image/v2/images/", Some(&cloud.demo), vec![], &[])
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn request_without_token_is_unauthorized() {
    let cloud = Cloud::start().await;
    let reply = cloud
        .send("GET", "/image/v2/images", None, vec![], &[])
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn patch_adds_replaces_and_removes() {
    let cloud = Cloud::start().await;
    let image = cloud
        .create(&cloud.demo, json!({"name": "p", "foo": "1"}))
        .await;
    let path = format!("/image/v2/images/{}", image["id"].as_str().unwrap());
    let changes = json!([
        {"op": "add", "path": "/foo", "value": "2"},
        {"op": "add", "path": "/bar", "value": "x"},
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "add", "path": "/tags", "value": ["t1"]},
        {"op": "add", "path": "/visibility", "value": "private"},
        {"op": "remove", "path": "/bar"},
        {"op": "replace", "path": "/protected", "value": true}
    ]);
    let reply = cloud.call("PATCH", &path, &cloud.demo, Some(changes)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["foo"], "2");
    assert!(reply.body.get("bar").is_none());
    assert_eq!(reply.body["name"], "renamed");
    assert_eq!(reply.body["tags"], json!(["t1"]));
    assert_eq!(reply.body["visibility"], "private");
    assert_eq!(reply.body["protected"], true);
    assert_eq!(
        cloud.call("GET", &path, &cloud.demo, None).await.body,
        reply.body
    );
}

#[tokio::test]
async fn patch_errors_follow_glance() {
    let cloud = Cloud::start().await;
    let image = cloud.create(&cloud.demo, json!({"name": "p"})).await;
    let path = format!("/image/v2/images/{}", image["id"].as_str().unwrap());
    let cases = [
        (
            json!([{"op": "replace", "path": "/status", "value": "active"}]),
            StatusCode::FORBIDDEN,
        ),
        (
            json!([{"op": "add", "path": "/os_glance_foo", "value": "x"}]),
            StatusCode::FORBIDDEN,
        ),
        (
            json!([{"op": "replace", "path": "/missing", "value": "x"}]),
            StatusCode::CONFLICT,
        ),
        (
            json!([{"op": "remove", "path": "/missing"}]),
            StatusCode::CONFLICT,
        ),
        (
            json!([{"op": "remove", "path": "/name"}]),
            StatusCode::FORBIDDEN,
        ),
        (
            json!([{"op": "add", "path": "/visibility", "value": "public"}]),
            StatusCode::FORBIDDEN,
        ),
        (
            json!([{"op": "add", "path": "/min_ram", "value": "lots"}]),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!([{"op": "add", "path": "/a/b", "value": "x"}]),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"op": "add"}), StatusCode::BAD_REQUEST),
    ];
    for (changes, status) in cases {
        let reply = cloud
            .call("PATCH", &path, &cloud.demo, Some(changes.clone()))
            .await;
        assert_eq!(reply.status, status, "{changes}: {}", reply.body);
    }
    let plain_json = [("content-type", "application/json")];
    let reply = cloud
        .send(
            "PATCH",
            &path,
            Some(&cloud.demo),
            b"[]".to_vec(),
            &plain_json,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(reply
        .header("accept-patch")
        .is_some_and(|v| v.contains("v2.1-json-patch")));
}

#[tokio::test]
async fn patch_in_v2_0_dialect_works() {
    let cloud = Cloud::start().await;
    let image = cloud.create(&cloud.demo, json!({"name": "old"})).await;
    let path = format!("/image/v2/images/{}", image["id"].as_str().unwrap());
    let headers = [(
        "content-type",
        "application/openstack-images-v2.0-json-patch",
    )];
    let body = json!([{"replace": "/name", "value": "new"}])
        .to_string()
        .into_bytes();
    let reply = cloud
        .send("PATCH", &path, Some(&cloud.demo), body, &headers)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["name"], "new");
    let body = json!([{"add": "/name", "value": "again"}])
        .to_string()
        .into_bytes();
    let reply = cloud
        .send("PATCH", &path, Some(&cloud.demo), body, &headers)
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn other_project_cannot_modify_visible_image() {
    let cloud = Cloud::start().await;
    let image = cloud
        .create(&cloud.demo, json!({"name": "c", "visibility": "community"}))
        .await;
    let path = format!("/image/v2/images/{}", image["id"].as_str().unwrap());
    assert_eq!(
        cloud.call("GET", &path, &cloud.alt, None).await.status,
        StatusCode::OK
    );
    let changes = json!([{"op": "replace", "path": "/name", "value": "x"}]);
    assert_eq!(
        cloud
            .call("PATCH", &path, &cloud.alt, Some(changes))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        cloud.call("DELETE", &path, &cloud.alt, None).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn protected_image_cannot_be_deleted() {
    let cloud = Cloud::start().await;
    let image = cloud
        .create(&cloud.demo, json!({"name": "keep", "protected": true}))
        .await;
    let path = format!("/image/v2/images/{}", image["id"].as_str().unwrap());
    assert_eq!(
        cloud.call("DELETE", &path, &cloud.demo, None).await.status,
        StatusCode::FORBIDDEN
    );
    let unprotect = json!([{"op": "replace", "path": "/protected", "value": false}]);
    assert_eq!(
        cloud
            .call("PATCH", &path, &cloud.demo, Some(unprotect))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        cloud.call("DELETE", &path, &cloud.demo, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        cloud.call("DELETE", &path, &cloud.demo, None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn private_image_is_invisible_to_other_project() {
    let cloud = Cloud::start().await;
    let image = cloud
        .create(
            &cloud.demo,
            json!({"name": "mine", "visibility": "private"}),
        )
        .await;
    let id = image["id"].as_str().unwrap();
    assert_eq!(
        cloud.show(&cloud.alt, id).await.status,
        StatusCode::NOT_FOUND
    );
    let list = cloud
        .call("GET", "/image/v2/images", &cloud.alt, None)
        .await;
    assert!(!ids(&list.body).contains(&id.to_owned()));
    assert_eq!(cloud.show(&cloud.admin, id).await.status, StatusCode::OK);
}

#[tokio::test]
async fn tags_are_added_and_removed() {
    let cloud = Cloud::start().await;
    let image = cloud.create(&cloud.demo, json!({"name": "t"})).await;
    let id = image["id"].as_str().unwrap();
    let tag = format!("/image/v2/images/{id}/tags/x86");
    assert_eq!(
        cloud.call("PUT", &tag, &cloud.demo, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        cloud.call("PUT", &tag, &cloud.demo, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        cloud.show(&cloud.demo, id).await.body["tags"],
        json!(["x86"])
    );
    let list = cloud
        .call("GET", "/image/v2/images?tag=x86", &cloud.demo, None)
        .await;
    assert_eq!(ids(&list.body), vec![id.to_owned()]);
    assert_eq!(
        cloud.call("DELETE", &tag, &cloud.demo, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        cloud.call("DELETE", &tag, &cloud.demo, None).await.status,
        StatusCode::NOT_FOUND
    );
    let missing = "/image/v2/images/00000000-0000-0000-0000-000000000000/tags/x";
    assert_eq!(
        cloud.call("PUT", missing, &cloud.demo, None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn list_pages_follow_next_links() {
    let cloud = Cloud::start().await;
    let mut created = Vec::new();
    for i in 0..5 {
        let image = cloud
            .create(&cloud.demo, json!({"name": format!("img{i}")}))
            .await;
        created.push(image["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/image/v2/images?limit=2&sort=name:asc".to_owned();
    let mut pages = 0;
    loop {
        let reply = cloud.call("GET", &path, &cloud.demo, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["schema"], "/v2/schemas/images");
        assert!(reply.body["first"]
            .as_str()
            .unwrap()
            .starts_with("/v2/images?"));
        seen.extend(ids(&reply.body));
        pages += 1;
        match reply.body["next"].as_str() {
            Some(next) => path = format!("/image{next}"),
            None => break,
        }
    }
    assert_eq!(seen, created, "pages in name order cover every image once");
    assert_eq!(pages, 3);

    let reply = cloud
        .call("GET", "/image/v2/images?marker=nope", &cloud.demo, None)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn list_filters_by_id_in_and_other_attributes() {
    let cloud = Cloud::start().await;
    let a = cloud
        .create(
            &cloud.demo,
            json!({"name": "a", "disk_format": "raw", "os_distro": "debian"}),
        )
        .await;
    let b = cloud
        .create(&cloud.demo, json!({"name": "b", "disk_format": "qcow2"}))
        .await;
    let c = cloud
        .create(&cloud.demo, json!({"name": "c", "os_hidden": true}))
        .await;
    let (a, b, c) = (
        a["id"].as_str().unwrap(),
        b["id"].as_str().unwrap(),
        c["id"].as_str().unwrap(),
    );

    let query = |q: &str| format!("/image/v2/images?{q}");
    let reply = cloud
        .call(
            "GET",
            &query(&format!("id=in:{a},{b}&sort=name:asc")),
            &cloud.demo,
            None,
        )
        .await;
    assert_eq!(ids(&reply.body), vec![a, b]);
    let reply = cloud
        .call("GET", &query("disk_format=qcow2"), &cloud.demo, None)
        .await;
    assert_eq!(ids(&reply.body), vec![b]);
    let reply = cloud
        .call("GET", &query("os_distro=debian"), &cloud.demo, None)
        .await;
    assert_eq!(ids(&reply.body), vec![a]);
    let reply = cloud.call("GET", &query("name=c"), &cloud.demo, None).await;
    assert!(
        ids(&reply.body).is_empty(),
        "hidden images are not listed by default"
    );
    let reply = cloud
        .call("GET", &query("os_hidden=true"), &cloud.demo, None)
        .await;
    assert_eq!(ids(&reply.body), vec![c]);
    let reply = cloud
        .call(
            "GET",
            &query("status=queued&sort_key=name&sort_dir=desc"),
            &cloud.demo,
            None,
        )
        .await;
    assert_eq!(ids(&reply.body), vec![b, a]);
    let reply = cloud
        .call("GET", &query("sort_key=owner"), &cloud.demo, None)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn community_images_are_listed_only_on_request() {
    let cloud = Cloud::start().await;
    let image = cloud
        .create(
            &cloud.demo,
            json!({"name": "comm", "visibility": "community"}),
        )
        .await;
    let id = image["id"].as_str().unwrap().to_owned();
    let default = cloud
        .call("GET", "/image/v2/images", &cloud.alt, None)
        .await;
    assert!(!ids(&default.body).contains(&id));
    let requested = cloud
        .call(
            "GET",
            "/image/v2/images?visibility=community",
            &cloud.alt,
            None,
        )
        .await;
    assert!(ids(&requested.body).contains(&id));
    let own = cloud
        .call("GET", "/image/v2/images", &cloud.demo, None)
        .await;
    assert!(
        ids(&own.body).contains(&id),
        "the owner lists its community images"
    );
}

#[tokio::test]
async fn versions_are_discoverable_without_token() {
    let cloud = Cloud::start().await;
    for path in ["/image", "/image/"] {
        let reply = cloud.send("GET", path, None, vec![], &[]).await;
        assert_eq!(reply.status, StatusCode::MULTIPLE_CHOICES, "{path}");
        let versions = reply.body["versions"].as_array().unwrap();
        assert_eq!(versions[0]["id"], "v2.17");
        assert_eq!(versions[0]["status"], "CURRENT");
        assert_eq!(
            versions[0]["links"][0]["href"],
            "http://127.0.0.1:5000/image/v2/"
        );
        assert_eq!(versions.last().unwrap()["id"], "v2.0");
    }
    let reply = cloud
        .send("GET", "/image/versions", None, vec![], &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn schemas_and_import_info_are_served() {
    let cloud = Cloud::start().await;
    for (path, name) in [
        ("image", "image"),
        ("images", "images"),
        ("member", "member"),
        ("members", "members"),
    ] {
        let reply = cloud
            .call(
                "GET",
                &format!("/image/v2/schemas/{path}"),
                &cloud.demo,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["name"], name);
    }
    let schema = cloud
        .call("GET", "/image/v2/schemas/image", &cloud.demo, None)
        .await
        .body;
    assert_eq!(schema["additionalProperties"], json!({"type": "string"}));
    let info = cloud
        .call("GET", "/image/v2/info/import", &cloud.demo, None)
        .await
        .body;
    assert_eq!(info["import-methods"]["value"], json!(["glance-direct"]));
    let stores = cloud
        .call("GET", "/image/v2/info/stores", &cloud.demo, None)
        .await;
    assert_eq!(stores.status, StatusCode::NOT_FOUND);
}
