//! Interoperable import with `glance-direct`: stage, then import.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::Cloud;
use md5::{Digest, Md5};
use serde_json::{json, Value};

async fn stage(cloud: &Cloud, disk_format: &str, data: Vec<u8>) -> String {
    let image = cloud
        .create(
            &cloud.demo,
            json!({"name": "imp", "disk_format": disk_format, "container_format": "bare"}),
        )
        .await;
    let id = image["id"].as_str().unwrap().to_owned();
    let path = format!("/image/v2/images/{id}/stage");
    let reply = cloud
        .send(
            "PUT",
            &path,
            Some(&cloud.demo),
            data,
            &[("content-type", "application/octet-stream")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    id
}

async fn import(cloud: &Cloud, id: &str) -> StatusCode {
    let body = json!({"method": {"name": "glance-direct"}, "all_stores": true});
    cloud
        .call(
            "POST",
            &format!("/image/v2/images/{id}/import"),
            &cloud.demo,
            Some(body),
        )
        .await
        .status
}

/// Polls the image until its status leaves `importing`.
async fn settled(cloud: &Cloud, id: &str) -> Value {
    for _ in 0..200 {
        let image = cloud.show(&cloud.demo, id).await.body;
        if image["status"] != "importing" {
            return image;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("image {id} stayed importing");
}

#[tokio::test]
async fn glance_direct_import_activates_image() {
    let cloud = Cloud::start().await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let id = stage(&cloud, "raw", data.clone()).await;
    let staged = cloud.show(&cloud.demo, &id).await.body;
    assert_eq!(staged["status"], "uploading");
    assert_eq!(staged["size"], data.len());

    assert_eq!(import(&cloud, &id).await, StatusCode::ACCEPTED);
    let image = settled(&cloud, &id).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["checksum"], hex::encode(Md5::digest(&data)));
    let file = cloud
        .send(
            "GET",
            &format!("/image/v2/images/{id}/file"),
            Some(&cloud.demo),
            vec![],
            &[],
        )
        .await;
    assert!(file.bytes == data, "imported data differs from staged data");
    assert_eq!(
        cloud.stored_files().len(),
        1,
        "only the image file remains: {:?}",
        cloud.stored_files()
    );
}

#[tokio::test]
async fn import_of_mismatched_format_returns_image_to_queued() {
    let cloud = Cloud::start().await;
    let id = stage(&cloud, "qcow2", vec![0u8; 4096]).await;
    assert_eq!(import(&cloud, &id).await, StatusCode::ACCEPTED);
    let image = settled(&cloud, &id).await;
    assert_eq!(image["status"], "queued");
    assert!(image["checksum"].is_null());
    assert!(
        cloud.stored_files().is_empty(),
        "{:?}",
        cloud.stored_files()
    );
}

#[tokio::test]
async fn import_without_staged_data_conflicts() {
    let cloud = Cloud::start().await;
    let image = cloud
        .create(
            &cloud.demo,
            json!({"disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let id = image["id"].as_str().unwrap();
    assert_eq!(import(&cloud, id).await, StatusCode::CONFLICT);
}

#[tokio::test]
async fn import_with_unknown_method_is_bad_request() {
    let cloud = Cloud::start().await;
    let id = stage(&cloud, "raw", vec![1u8; 10]).await;
    let path = format!("/image/v2/images/{id}/import");
    for body in [
        json!({"method": {"name": "web-download"}}),
        json!({}),
        json!({"method": {}}),
        json!({"method": {"name": "glance-direct"}, "all_stores": "yes"}),
    ] {
        let reply = cloud
            .call("POST", &path, &cloud.demo, Some(body.clone()))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
    }
}
