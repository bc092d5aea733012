//! Keypairs: import of real ssh-keygen keys with their fingerprints,
//! generation, errors, ownership and the microversion-dependent shapes.

mod common;

use std::process::Command;

use axum::http::StatusCode;
use common::Cloud;
use serde_json::json;

/// A public key made by ssh-keygen and its MD5 fingerprint as
/// `ssh-keygen -l -E md5` prints it.
struct TestKey {
    public_key: String,
    md5: String,
    _dir: tempfile::TempDir,
}

fn ssh_keygen(key_type: &str, bits: Option<&str>) -> TestKey {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("key");
    let mut command = Command::new("ssh-keygen");
    command
        .args(["-q", "-t", key_type, "-N", "", "-C", "test@oxstack", "-f"])
        .arg(&path);
    if let Some(bits) = bits {
        command.args(["-b", bits]);
    }
    let status = command
        .status()
        .expect("these tests need ssh-keygen (package openssh-client) on PATH");
    assert!(status.success(), "ssh-keygen -t {key_type} failed");
    let public_path = path.with_extension("pub");
    let public_key = std::fs::read_to_string(&public_path).expect("public key");
    let output = Command::new("ssh-keygen")
        .args(["-l", "-E", "md5", "-f"])
        .arg(&public_path)
        .output()
        .expect("ssh-keygen -l");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    // "256 MD5:ab:cd:… test@oxstack (ED25519)"
    let md5 = text
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.strip_prefix("MD5:"))
        .unwrap_or_else(|| panic!("unexpected ssh-keygen -l output: {text}"))
        .to_owned();
    TestKey {
        public_key,
        md5,
        _dir: dir,
    }
}

#[tokio::test]
async fn import_fingerprints_match_ssh_keygen() {
    let cloud = Cloud::start().await;
    let keys = [
        ("ed", ssh_keygen("ed25519", None)),
        ("rsa", ssh_keygen("rsa", Some("3072"))),
        ("ec", ssh_keygen("ecdsa", Some("384"))),
    ];
    for (name, key) in &keys {
        let body = json!({"keypair": {"name": name, "public_key": key.public_key}});
        let reply = cloud
            .post("/v2.1/os-keypairs", &cloud.demo, "2.10", body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{name}: {}", reply.body);
        assert_eq!(
            reply.body["keypair"]["fingerprint"],
            key.md5.as_str(),
            "{name}"
        );
        assert_eq!(reply.body["keypair"]["type"], "ssh");
        assert!(reply.body["keypair"].get("private_key").is_none());
    }
    let listed = cloud.get("/v2.1/os-keypairs", &cloud.demo, "2.10").await;
    let items = listed.body["keypairs"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[0]["keypair"]["name"], "ec",
        "items are wrapped and sorted by name"
    );
    let mut keys_of_item: Vec<&str> = items[0]["keypair"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys_of_item.sort_unstable();
    assert_eq!(keys_of_item, ["fingerprint", "name", "public_key", "type"]);
}

#[tokio::test]
async fn status_codes_follow_microversion() {
    let cloud = Cloud::start().await;
    let key = ssh_keygen("ed25519", None);
    let body = json!({"keypair": {"name": "k", "public_key": key.public_key}});
    let old = cloud
        .post("/v2.1/os-keypairs", &cloud.demo, "2.1", body.clone())
        .await;
    assert_eq!(old.status, StatusCode::OK);
    assert!(old.body["keypair"].get("type").is_none());
    let deleted = cloud
        .delete("/v2.1/os-keypairs/k", &cloud.demo, "2.1")
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    let new = cloud
        .post("/v2.1/os-keypairs", &cloud.demo, "2.2", body)
        .await;
    assert_eq!(new.status, StatusCode::CREATED);
    let deleted = cloud
        .delete("/v2.1/os-keypairs/k", &cloud.demo, "2.2")
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn invalid_and_duplicate_keys_rejected() {
    let cloud = Cloud::start().await;
    let bad = json!({"keypair": {"name": "bad", "public_key": "ssh-rsa AAAAnotakey"}});
    let reply = cloud
        .post("/v2.1/os-keypairs", &cloud.demo, "2.10", bad)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = reply.body["badRequest"]["message"].as_str().unwrap();
    assert!(message.contains("Keypair data is invalid"), "{message}");

    let bad_name = json!({"keypair": {"name": "no/slash", "public_key": "x"}});
    let reply = cloud
        .post("/v2.1/os-keypairs", &cloud.demo, "2.10", bad_name)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let key = ssh_keygen("ed25519", None);
    let body = json!({"keypair": {"name": "dup", "public_key": key.public_key}});
    let first = cloud
        .post("/v2.1/os-keypairs", &cloud.demo, "2.10", body.clone())
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = cloud
        .post("/v2.1/os-keypairs", &cloud.demo, "2.10", body.clone())
        .await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(second.body["conflictingRequest"]["code"], 409);
    // Another user may use the same name.
    let other = cloud
        .post("/v2.1/os-keypairs", &cloud.alt, "2.10", body)
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
}

#[tokio::test]
async fn keypairs_are_private_to_their_user() {
    let cloud = Cloud::start().await;
    let key = ssh_keygen("ed25519", None);
    let body = json!({"keypair": {"name": "mine", "public_key": key.public_key}});
    let created = cloud
        .post("/v2.1/os-keypairs", &cloud.demo, "2.10", body)
        .await;
    let owner = created.body["keypair"]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let shown = cloud
        .get("/v2.1/os-keypairs/mine", &cloud.demo, "2.10")
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body["keypair"]["id"].is_i64(), "{}", shown.body);
    assert_eq!(shown.body["keypair"]["deleted"], false);
    assert_eq!(shown.body["keypair"]["user_id"], owner.as_str());

    let other = cloud
        .get("/v2.1/os-keypairs/mine", &cloud.alt, "2.10")
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let other_list = cloud.get("/v2.1/os-keypairs", &cloud.alt, "2.10").await;
    assert_eq!(other_list.body["keypairs"], json!([]));
    let spy = cloud
        .get(
            &format!("/v2.1/os-keypairs?user_id={owner}"),
            &cloud.alt,
            "2.10",
        )
        .await;
    assert_eq!(spy.status, StatusCode::FORBIDDEN);
    let admin = cloud
        .get(
            &format!("/v2.1/os-keypairs/mine?user_id={owner}"),
            &cloud.admin,
            "2.10",
        )
        .await;
    assert_eq!(admin.status, StatusCode::OK);
    let delete_other = cloud
        .delete("/v2.1/os-keypairs/mine", &cloud.alt, "2.10")
        .await;
    assert_eq!(delete_other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn generated_key_returns_private_key_once() {
    let cloud = Cloud::start().await;
    let reply = cloud
        .post(
            "/v2.1/os-keypairs",
            &cloud.demo,
            "2.10",
            json!({"keypair": {"name": "gen"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let private = reply.body["keypair"]["private_key"]
        .as_str()
        .expect("private key");
    assert!(private.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let shown = cloud
        .get("/v2.1/os-keypairs/gen", &cloud.demo, "2.10")
        .await;
    assert!(shown.body["keypair"].get("private_key").is_none());
    let refused = cloud
        .post(
            "/v2.1/os-keypairs",
            &cloud.demo,
            "2.92",
            json!({"keypair": {"name": "gen2"}}),
        )
        .await;
    // 2.92 (which refuses generation) is above the announced maximum.
    assert_eq!(refused.status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn list_pages_from_2_35() {
    let cloud = Cloud::start().await;
    let key = ssh_keygen("ed25519", None);
    for name in ["a", "b", "c"] {
        let body = json!({"keypair": {"name": name, "public_key": key.public_key}});
        cloud
            .post("/v2.1/os-keypairs", &cloud.demo, "2.35", body)
            .await;
    }
    let page = cloud
        .get("/v2.1/os-keypairs?limit=2", &cloud.demo, "2.35")
        .await;
    assert_eq!(page.body["keypairs"].as_array().unwrap().len(), 2);
    let next = page.body["keypairs_links"][0]["href"]
        .as_str()
        .expect("next link");
    assert!(next.contains("marker=b"), "{next}");
    let rest = cloud
        .get("/v2.1/os-keypairs?limit=2&marker=b", &cloud.demo, "2.35")
        .await;
    assert_eq!(rest.body["keypairs"][0]["keypair"]["name"], "c");
    let unpaged = cloud
        .get("/v2.1/os-keypairs?limit=2", &cloud.demo, "2.34")
        .await;
    assert_eq!(unpaged.body["keypairs"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn keypair_quota_enforced() {
    let cloud = Cloud::start().await;
    let path = format!("/v2.1/os-quota-sets/{}", cloud.demo_project);
    let set = cloud
        .put(
            &path,
            &cloud.admin,
            "2.56",
            json!({"quota_set": {"key_pairs": 1}}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let key = ssh_keygen("ed25519", None);
    let first = json!({"keypair": {"name": "one", "public_key": key.public_key}});
    assert_eq!(
        cloud
            .post("/v2.1/os-keypairs", &cloud.demo, "2.10", first)
            .await
            .status,
        StatusCode::CREATED
    );
    let second = json!({"keypair": {"name": "two", "public_key": key.public_key}});
    let reply = cloud
        .post("/v2.1/os-keypairs", &cloud.demo, "2.10", second)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let message = reply.body["forbidden"]["message"].as_str().unwrap();
    assert!(message.contains("key_pairs"), "{message}");
    assert!(message.contains("1 of 1"), "{message}");
}

#[tokio::test]
async fn x509_keypair_checked_by_openssl() {
    let cloud = Cloud::start().await;
    let body = json!({"keypair": {"name": "cert", "type": "x509"}});
    let reply = cloud
        .post("/v2.1/os-keypairs", &cloud.demo, "2.2", body)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["keypair"]["type"], "x509");
    let certificate = reply.body["keypair"]["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let fingerprint = reply.body["keypair"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reply.body["keypair"]["private_key"].is_string());

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cert.pem");
    std::fs::write(&path, &certificate).expect("write certificate");
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
        .arg(&path)
        .output()
        .expect("this test needs openssl on PATH");
    assert!(
        output.status.success(),
        "openssl x509: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let expected = text.trim().rsplit('=').next().unwrap().to_ascii_lowercase();
    assert_eq!(fingerprint, expected);
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&path)
        .arg(&path)
        .output()
        .expect("openssl verify");
    assert!(
        verify.status.success(),
        "self-signature: {}",
        String::from_utf8_lossy(&verify.stdout)
    );

    let import = json!({"keypair": {"name": "cert2", "type": "x509", "public_key": certificate}});
    let imported = cloud
        .post("/v2.1/os-keypairs", &cloud.demo, "2.2", import)
        .await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.body);
    assert_eq!(
        imported.body["keypair"]["fingerprint"],
        fingerprint.as_str()
    );
    let listed = cloud.get("/v2.1/os-keypairs", &cloud.demo, "2.2").await;
    assert_eq!(listed.body["keypairs"][0]["keypair"]["type"], "x509");
}
