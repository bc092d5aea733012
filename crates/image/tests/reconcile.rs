//! Start-up reconciliation after simulated crashes, and registration of an
//! image from a local file.

mod common;

use axum::http::StatusCode;
use common::Cloud;
use oxstack_image::db::images;
use oxstack_image::model::{ImageId, Status};
use oxstack_image::Visibility;
use serde_json::json;

async fn set_status(cloud: &Cloud, id: &str, from: Status, to: Status) {
    let changed = images::set_status(cloud.service.pool(), &ImageId::new(id), from, to, 0)
        .await
        .unwrap();
    assert!(changed, "image {id} was not {from}");
}

#[tokio::test]
async fn restart_requeues_interrupted_upload() {
    let mut cloud = Cloud::start().await;
    let image = cloud
        .create(
            &cloud.demo,
            json!({"disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let id = image["id"].as_str().unwrap().to_owned();
    // A crash mid-upload: the row is in saving, and a partial file is in incoming/.
    set_status(&cloud, &id, Status::Queued, Status::Saving).await;
    let partial = cloud.service.incoming_path(&ImageId::new(id.clone()));
    std::fs::write(&partial, b"partial upload").unwrap();
    // A crash after the store took the file but before the row became active.
    std::fs::write(
        cloud.data_dir.path().join("images").join(&id),
        b"unacknowledged",
    )
    .unwrap();

    cloud.restart().await;
    assert_eq!(cloud.show(&cloud.demo, &id).await.body["status"], "queued");
    assert!(
        cloud.stored_files().is_empty(),
        "files left: {:?}",
        cloud.stored_files()
    );
    // The image takes an upload again.
    assert_eq!(
        cloud.upload(&cloud.demo, &id, vec![1, 2, 3]).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn restart_requeues_image_missing_data() {
    let mut cloud = Cloud::start().await;
    let image = cloud
        .create(
            &cloud.demo,
            json!({"disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let id = image["id"].as_str().unwrap().to_owned();
    assert_eq!(
        cloud.upload(&cloud.demo, &id, vec![9; 100]).await.status,
        StatusCode::NO_CONTENT
    );
    let store_dir = cloud.data_dir.path().join("images");
    std::fs::remove_file(store_dir.join(&id)).unwrap();
    std::fs::write(
        store_dir.join("0d9e4f9c-0000-4000-8000-00000000dead"),
        b"orphan",
    )
    .unwrap();
    std::fs::write(store_dir.join(".tmp-interrupted-write"), b"tmp").unwrap();
    std::fs::write(store_dir.join("staging").join("orphan-stage"), b"tmp").unwrap();

    cloud.restart().await;
    let shown = cloud.show(&cloud.demo, &id).await.body;
    assert_eq!(shown["status"], "queued");
    assert!(shown["size"].is_null());
    assert!(
        cloud.stored_files().is_empty(),
        "files left: {:?}",
        cloud.stored_files()
    );
    assert!(!store_dir.join(".tmp-interrupted-write").exists());
}

#[tokio::test]
async fn restart_keeps_staged_data() {
    let mut cloud = Cloud::start().await;
    let image = cloud
        .create(
            &cloud.demo,
            json!({"disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let id = image["id"].as_str().unwrap().to_owned();
    let stage = format!("/image/v2/images/{id}/stage");
    cloud
        .send("PUT", &stage, Some(&cloud.demo), vec![5; 64], &[])
        .await;
    set_status(&cloud, &id, Status::Uploading, Status::Importing).await;

    cloud.restart().await;
    assert_eq!(
        cloud.show(&cloud.demo, &id).await.body["status"],
        "uploading"
    );
    assert_eq!(cloud.stored_files().len(), 1, "the staged file is kept");
}

#[tokio::test]
async fn register_image_is_idempotent_by_name_and_owner() {
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("guest.raw");
    std::fs::write(&file, vec![7u8; 8192]).unwrap();
    let owner = cloud.demo_project.clone();

    let first = cloud
        .service
        .register_image(&file, "guest", "raw", &owner, Visibility::Public)
        .await
        .unwrap();
    let second = cloud
        .service
        .register_image(&file, "guest", "raw", &owner, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(first, second);
    assert!(file.exists(), "the source file is left in place");

    let shown = cloud.show(&cloud.alt, first.as_str()).await.body;
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["visibility"], "public");
    assert_eq!(shown["size"], 8192);

    let error = cloud
        .service
        .register_image(&file, "bad", "qcow2", &owner, Visibility::Private)
        .await;
    assert!(
        error.is_err(),
        "raw data registered as qcow2 must be rejected"
    );
}
