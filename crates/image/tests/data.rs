//! Uploading and downloading image data through the API: hashes, ranges,
//! format inspection and the status machine.

mod common;

use axum::http::StatusCode;
use common::{qemu_img_create, Cloud};
use md5::{Digest, Md5};
use serde_json::json;
use sha2::Sha512;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn raw_image(cloud: &Cloud) -> String {
    let image = cloud
        .create(
            &cloud.demo,
            json!({"name": "data", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    image["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn upload_then_download_is_byte_identical() {
    let cloud = Cloud::start().await;
    let id = raw_image(&cloud).await;
    let data = pattern(3 << 20);

    let reply = cloud.upload(&cloud.demo, &id, data.clone()).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);

    let image = cloud.show(&cloud.demo, &id).await.body;
    let md5 = hex::encode(Md5::digest(&data));
    assert_eq!(image["status"], "active");
    assert_eq!(image["size"], data.len());
    assert_eq!(image["virtual_size"], data.len());
    assert_eq!(image["checksum"], md5);
    assert_eq!(image["os_hash_algo"], "sha512");
    assert_eq!(image["os_hash_value"], hex::encode(Sha512::digest(&data)));

    let path = format!("/image/v2/images/{id}/file");
    let reply = cloud
        .send("GET", &path, Some(&cloud.demo), vec![], &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-md5"), Some(md5.as_str()));
    assert_eq!(
        reply.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        reply.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert!(
        reply.bytes == data,
        "downloaded data differs from uploaded data"
    );
}

#[tokio::test]
async fn range_download_returns_partial_content() {
    let cloud = Cloud::start().await;
    let id = raw_image(&cloud).await;
    let data = pattern(10_000);
    cloud.upload(&cloud.demo, &id, data.clone()).await;
    let path = format!("/image/v2/images/{id}/file");

    let reply = cloud
        .send(
            "GET",
            &path,
            Some(&cloud.demo),
            vec![],
            &[("range", "bytes=100-199")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.header("content-range"), Some("bytes 100-199/10000"));
    assert_eq!(reply.bytes, data[100..200]);

    let reply = cloud
        .send(
            "GET",
            &path,
            Some(&cloud.demo),
            vec![],
            &[("range", "bytes=-10")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.bytes, data[9_990..]);

    let reply = cloud
        .send(
            "GET",
            &path,
            Some(&cloud.demo),
            vec![],
            &[("range", "bytes=20000-")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(reply.header("content-range"), Some("bytes */10000"));
}

#[tokio::test]
async fn download_without_data_is_no_content() {
    let cloud = Cloud::start().await;
    let id = raw_image(&cloud).await;
    let reply = cloud
        .send(
            "GET",
            &format!("/image/v2/images/{id}/file"),
            Some(&cloud.demo),
            vec![],
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.bytes.is_empty());
}

#[tokio::test]
async fn upload_with_empty_accept_is_not_406() {
    let cloud = Cloud::start().await;
    let id = raw_image(&cloud).await;
    let path = format!("/image/v2/images/{id}/file");
    let headers = [("content-type", "application/octet-stream"), ("accept", "")];
    let reply = cloud
        .send("PUT", &path, Some(&cloud.demo), pattern(512), &headers)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn interrupted_upload_leaves_image_queued() {
    let cloud = Cloud::start().await;
    let id = raw_image(&cloud).await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(pattern(4 << 20)),
        Err(std::io::Error::other("client disconnected")),
    ];
    let body = axum::body::Body::from_stream(futures::stream::iter(chunks));
    let path = format!("/image/v2/images/{id}/file");
    let reply = cloud
        .send_body("PUT", &path, Some(&cloud.demo), body, &[])
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(cloud.show(&cloud.demo, &id).await.body["status"], "queued");
    assert!(
        cloud.stored_files().is_empty(),
        "files left: {:?}",
        cloud.stored_files()
    );
    assert_eq!(
        cloud.upload(&cloud.demo, &id, pattern(10)).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn second_upload_conflicts() {
    let cloud = Cloud::start().await;
    let id = raw_image(&cloud).await;
    assert_eq!(
        cloud.upload(&cloud.demo, &id, pattern(100)).await.status,
        StatusCode::NO_CONTENT
    );
    let reply = cloud.upload(&cloud.demo, &id, pattern(100)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
}

#[tokio::test]
async fn upload_without_formats_is_rejected() {
    let cloud = Cloud::start().await;
    let image = cloud.create(&cloud.demo, json!({"name": "bare"})).await;
    let id = image["id"].as_str().unwrap();
    let reply = cloud.upload(&cloud.demo, id, pattern(100)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(cloud.show(&cloud.demo, id).await.body["status"], "queued");
}

#[tokio::test]
async fn upload_over_size_cap_is_too_large() {
    let config = oxstack_image::ImageConfig {
        image_size_cap: 1000,
        ..Default::default()
    };
    let cloud = Cloud::start_with(config).await;
    let id = raw_image(&cloud).await;
    let reply = cloud.upload(&cloud.demo, &id, pattern(1001)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(cloud.show(&cloud.demo, &id).await.body["status"], "queued");
    assert!(
        cloud.stored_files().is_empty(),
        "{:?}",
        cloud.stored_files()
    );
}

/// Uploads `data` as `disk_format` and checks that it is refused with 400,
/// that nothing is stored, and that the image stays queued.
async fn assert_rejected(cloud: &Cloud, disk_format: &str, data: Vec<u8>, expected_message: &str) {
    let image = cloud
        .create(
            &cloud.demo,
            json!({"name": "bad", "disk_format": disk_format, "container_format": "bare"}),
        )
        .await;
    let id = image["id"].as_str().unwrap();
    let reply = cloud.upload(&cloud.demo, id, data).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&reply.bytes)
    );
    let message = reply.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(expected_message),
        "message {message:?} lacks {expected_message:?}"
    );
    let shown = cloud.show(&cloud.demo, id).await.body;
    assert_eq!(shown["status"], "queued");
    assert!(shown["checksum"].is_null());
    assert!(
        cloud.stored_files().is_empty(),
        "files left: {:?}",
        cloud.stored_files()
    );
}

#[tokio::test]
async fn raw_data_declared_qcow2_is_rejected() {
    let cloud = Cloud::start().await;
    assert_rejected(&cloud, "qcow2", pattern(64 * 1024), "disk_format is qcow2").await;
}

#[tokio::test]
async fn qcow2_with_backing_file_is_rejected() {
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    qemu_img_create(dir.path(), "base.qcow2", &[]);
    let data = qemu_img_create(
        dir.path(),
        "overlay.qcow2",
        &["-b", "base.qcow2", "-F", "qcow2"],
    );
    assert_rejected(&cloud, "qcow2", data, "backing file").await;
}

#[tokio::test]
async fn qcow2_with_external_data_file_is_rejected() {
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = qemu_img_create(dir.path(), "ext.qcow2", &["-o", "data_file=ext.raw"]);
    assert_rejected(&cloud, "qcow2", data, "external data file").await;
}

#[tokio::test]
async fn qcow2_declared_qcow2_is_accepted_with_virtual_size() {
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = qemu_img_create(dir.path(), "good.qcow2", &[]);
    let image = cloud
        .create(
            &cloud.demo,
            json!({"name": "good", "disk_format": "qcow2", "container_format": "bare"}),
        )
        .await;
    let id = image["id"].as_str().unwrap();
    assert_eq!(
        cloud.upload(&cloud.demo, id, data.clone()).await.status,
        StatusCode::NO_CONTENT
    );
    let shown = cloud.show(&cloud.demo, id).await.body;
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["virtual_size"], 1 << 20);
    assert_eq!(shown["size"], data.len());
}

#[tokio::test]
async fn deactivated_image_download_is_forbidden_for_owner() {
    let cloud = Cloud::start().await;
    let id = raw_image(&cloud).await;
    cloud.upload(&cloud.demo, &id, pattern(100)).await;
    let action = format!("/image/v2/images/{id}/actions/deactivate");
    assert_eq!(
        cloud.call("POST", &action, &cloud.demo, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        cloud.show(&cloud.demo, &id).await.body["status"],
        "deactivated"
    );

    let file = format!("/image/v2/images/{id}/file");
    let reply = cloud
        .send("GET", &file, Some(&cloud.demo), vec![], &[])
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = cloud
        .send("GET", &file, Some(&cloud.admin), vec![], &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let action = format!("/image/v2/images/{id}/actions/reactivate");
    assert_eq!(
        cloud.call("POST", &action, &cloud.demo, None).await.status,
        StatusCode::NO_CONTENT
    );
    let reply = cloud
        .send("GET", &file, Some(&cloud.demo), vec![], &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.bytes, pattern(100));
}

#[tokio::test]
async fn deactivate_of_queued_image_is_forbidden() {
    let cloud = Cloud::start().await;
    let id = raw_image(&cloud).await;
    let action = format!("/image/v2/images/{id}/actions/deactivate");
    assert_eq!(
        cloud.call("POST", &action, &cloud.demo, None).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn delete_removes_stored_file() {
    let cloud = Cloud::start().await;
    let id = raw_image(&cloud).await;
    cloud.upload(&cloud.demo, &id, pattern(100)).await;
    assert_eq!(cloud.stored_files().len(), 1);
    let reply = cloud
        .call(
            "DELETE",
            &format!("/image/v2/images/{id}"),
            &cloud.demo,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(cloud.stored_files().is_empty());
    assert_eq!(
        cloud.show(&cloud.demo, &id).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn wrong_upload_media_type_is_unsupported() {
    let cloud = Cloud::start().await;
    let id = raw_image(&cloud).await;
    let path = format!("/image/v2/images/{id}/file");
    let reply = cloud
        .send(
            "PUT",
            &path,
            Some(&cloud.demo),
            pattern(10),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
