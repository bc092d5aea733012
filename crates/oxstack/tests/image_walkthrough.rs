//! End-to-end walkthrough of the image service with the unmodified
//! OpenStack CLI against the `oxstack` binary: upload, list, show, set,
//! download, sharing between two projects, uploads the format inspection
//! must reject, and protected images.
//!
//! The server runs in the repository root, so it registers
//! `tools/guest-image/out/oxstack-guest.qcow2` as the public image
//! `oxstack-guest` when that file exists. As root the test builds the guest
//! image first when it is missing. `qemu-img` (Debian package qemu-utils)
//! makes the test images. Every CLI run takes one to two seconds, so one
//! test runs all steps against one server.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{
    env_as, free_port, http, issue_token, read_openrc, repo_root, rows, step,
    stored_admin_password, Cli, Server,
};

const GUEST_IMAGE: &str = "tools/guest-image/out/oxstack-guest.qcow2";
const GUEST_BUILD_TIMEOUT: Duration = Duration::from_secs(600);

fn is_root() -> bool {
    let output = Command::new("id")
        .arg("-u")
        .output()
        .expect("cannot run id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// Builds the guest image with `tools/guest-image/build.sh` when it is
/// missing and this process runs as root, and returns whether it exists.
fn ensure_guest_image(repo: &Path) -> bool {
    let path = repo.join(GUEST_IMAGE);
    if path.is_file() {
        return true;
    }
    if !is_root() {
        eprintln!(
            "{} is missing and building it needs root; expecting no oxstack-guest image",
            path.display()
        );
        return false;
    }
    eprintln!("{} is missing; running build.sh", path.display());
    let mut build = Command::new("bash")
        .arg(repo.join("tools/guest-image/build.sh"))
        .current_dir(repo.join("tools/guest-image"))
        .stdin(Stdio::null())
        .spawn()
        .expect("cannot run tools/guest-image/build.sh");
    let deadline = Instant::now() + GUEST_BUILD_TIMEOUT;
    let status = loop {
        if let Some(status) = build.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            build.kill().ok();
            build.wait().ok();
            panic!("tools/guest-image/build.sh did not finish within {GUEST_BUILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status.success(),
        "tools/guest-image/build.sh failed with {status}"
    );
    assert!(
        path.is_file(),
        "build.sh succeeded but {} is missing",
        path.display()
    );
    true
}

/// Runs `qemu-img` with `args` in `dir`, asserting success.
fn qemu_img(dir: &Path, args: &[&str]) {
    let output = Command::new("qemu-img")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run qemu-img; install the qemu-utils package");
    assert!(
        output.status.success(),
        "qemu-img {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn sha512_hex(path: &Path) -> String {
    let output = Command::new("sha512sum")
        .arg(path)
        .output()
        .expect("cannot run sha512sum");
    assert!(
        output.status.success(),
        "sha512sum {} failed",
        path.display()
    );
    let text = String::from_utf8(output.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_owned()
}

/// Returns the names of the regular files directly in `dir`.
fn files_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Asserts that the image store holds exactly one file per active image
/// and that no partial upload or staged file is left.
fn assert_stored_files(data_dir: &Path, active_ids: &BTreeSet<String>, context: &str) {
    let images_dir = data_dir.join("images");
    assert_eq!(
        &files_in(&images_dir),
        active_ids,
        "{context}: {} must hold one file per active image and nothing else",
        images_dir.display()
    );
    for leftover_dir in ["incoming", "staging"] {
        let dir = images_dir.join(leftover_dir);
        assert_eq!(
            files_in(&dir),
            BTreeSet::new(),
            "{context}: {} must be empty",
            dir.display()
        );
    }
}

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

fn list_names(list: &Value) -> Vec<String> {
    rows(list)
        .iter()
        .map(|row| row["Name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// An upload the format inspection must reject: the file, the image name,
/// and a fragment of the message the CLI must print.
struct RejectedUpload {
    file: &'static str,
    name: &'static str,
    message: &'static str,
}

#[test]
fn image_walkthrough_with_cli() {
    let repo = repo_root();
    let guest_expected = ensure_guest_image(&repo);
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let work = temp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let cli = Cli::new(&work);

    step("start oxstack up in the repository root");
    let server = Server::start_in(&repo, &data_dir, free_port());
    let base_url = server.base_url.clone();
    let admin = read_openrc(&data_dir.join("openrc"));
    let mut active_ids = BTreeSet::new();

    step("catalog list shows image");
    let catalog = cli.json(&admin, &["catalog", "list"]);
    let image_entries = rows(&catalog)
        .iter()
        .filter(|row| row["Type"] == "image")
        .count();
    assert_eq!(image_entries, 1, "catalog: {catalog}");

    step("oxstack-guest is listed when the guest image is built");
    let list = cli.json(&admin, &["image", "list"]);
    let guest_rows: Vec<&Value> = rows(&list)
        .iter()
        .filter(|row| row["Name"] == "oxstack-guest")
        .collect();
    if guest_expected {
        assert_eq!(guest_rows.len(), 1, "image list: {list}");
        assert_eq!(guest_rows[0]["Status"], "active", "image list: {list}");
        let guest = cli.json(&admin, &["image", "show", "oxstack-guest"]);
        assert_eq!(guest["visibility"], "public", "guest image: {guest}");
        assert_eq!(guest["disk_format"], "qcow2", "guest image: {guest}");
        let guest_size = std::fs::metadata(repo.join(GUEST_IMAGE)).unwrap().len();
        assert_eq!(guest["size"], guest_size, "guest image: {guest}");
        active_ids.insert(id_of(&guest));
    } else {
        assert!(guest_rows.is_empty(), "image list: {list}");
    }
    assert_stored_files(&data_dir, &active_ids, "after start-up");

    step("image create --file tiny.qcow2 --public tiny");
    qemu_img(&work, &["create", "-q", "-f", "qcow2", "tiny.qcow2", "1M"]);
    let tiny_path = work.join("tiny.qcow2");
    let tiny_bytes = std::fs::read(&tiny_path).unwrap();
    let created = cli.json(
        &admin,
        &[
            "image",
            "create",
            "--file",
            "tiny.qcow2",
            "--disk-format",
            "qcow2",
            "--container-format",
            "bare",
            "--public",
            "tiny",
        ],
    );
    assert_eq!(created["name"], "tiny");
    assert_eq!(created["status"], "active", "created: {created}");
    let tiny_id = id_of(&created);
    active_ids.insert(tiny_id.clone());

    step("image list");
    let list = cli.json(&admin, &["image", "list"]);
    let tiny_rows: Vec<&Value> = rows(&list)
        .iter()
        .filter(|row| row["Name"] == "tiny")
        .collect();
    assert_eq!(tiny_rows.len(), 1, "image list: {list}");
    assert_eq!(tiny_rows[0]["ID"], tiny_id.as_str());
    assert_eq!(tiny_rows[0]["Status"], "active");

    step("image show tiny");
    let shown = cli.json(&admin, &["image", "show", "tiny"]);
    assert_eq!(shown["id"], tiny_id.as_str());
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["disk_format"], "qcow2");
    assert_eq!(shown["container_format"], "bare");
    assert_eq!(shown["visibility"], "public");
    assert_eq!(shown["protected"], false);
    assert_eq!(shown["size"], tiny_bytes.len(), "image: {shown}");
    assert_eq!(shown["virtual_size"], 1024 * 1024, "image: {shown}");
    assert_eq!(
        shown["properties"]["os_hash_algo"], "sha512",
        "image: {shown}"
    );
    assert_eq!(
        shown["properties"]["os_hash_value"],
        sha512_hex(&tiny_path).as_str(),
        "image: {shown}"
    );
    assert_stored_files(&data_dir, &active_ids, "after uploading tiny");

    step("image set --property os_type=windows tiny");
    cli.ok(
        &admin,
        &["image", "set", "--property", "os_type=windows", "tiny"],
    );
    let shown = cli.json(&admin, &["image", "show", "tiny"]);
    assert_eq!(shown["properties"]["os_type"], "windows", "image: {shown}");

    step("image save --file out.qcow2 tiny");
    cli.ok(&admin, &["image", "save", "--file", "out.qcow2", "tiny"]);
    let saved = std::fs::read(work.join("out.qcow2")).unwrap();
    assert_eq!(saved.len(), tiny_bytes.len(), "saved image size");
    assert!(
        saved == tiny_bytes,
        "the saved image differs from the uploaded file"
    );

    step("two projects, each with a member user");
    let project_a = cli.json(
        &admin,
        &["project", "create", "--domain", "default", "proj-a"],
    );
    let project_b = cli.json(
        &admin,
        &["project", "create", "--domain", "default", "proj-b"],
    );
    let project_b_id = id_of(&project_b);
    for (user, password, project) in [("alice", "alice-pw", "proj-a"), ("bob", "bob-pw", "proj-b")]
    {
        cli.json(
            &admin,
            &[
                "user",
                "create",
                "--project",
                project,
                "--password",
                password,
                user,
            ],
        );
        cli.ok(
            &admin,
            &[
                "role",
                "add",
                "--project",
                project,
                "--user",
                user,
                "member",
            ],
        );
    }
    let alice = env_as(&admin, "alice", "alice-pw", "proj-a");
    let bob = env_as(&admin, "bob", "bob-pw", "proj-b");

    step("a private image of project A is invisible to project B");
    let private = cli.json(
        &alice,
        &[
            "image",
            "create",
            "--file",
            "tiny.qcow2",
            "--disk-format",
            "qcow2",
            "--container-format",
            "bare",
            "--private",
            "alice-image",
        ],
    );
    let private_id = id_of(&private);
    assert_eq!(private["owner"], project_a["id"], "image: {private}");
    assert_eq!(private["visibility"], "private", "image: {private}");
    assert_eq!(private["status"], "active", "image: {private}");
    active_ids.insert(private_id.clone());
    let not_found = cli.fails(&bob, &["image", "show", &private_id]);
    assert!(
        not_found.contains("No Image found"),
        "project B showing A's private image: {not_found}"
    );
    let bob_token = issue_token(&base_url, "bob", "bob-pw", "proj-b");
    let image_url = format!("{base_url}/image/v2/images/{private_id}");
    let reply = http("GET", &image_url, &[("X-Auth-Token", &bob_token)], None);
    assert_eq!(
        reply.status, 404,
        "GET A's private image as B: {}",
        reply.body
    );
    let bob_list = cli.json(&bob, &["image", "list"]);
    assert!(
        !list_names(&bob_list).contains(&"alice-image".to_owned()),
        "project B lists A's private image: {bob_list}"
    );

    step("image add project on a private image is rejected");
    let private_member = cli.fails(
        &alice,
        &["image", "add", "project", &private_id, &project_b_id],
    );
    assert!(
        private_member.contains("403")
            && private_member.contains("Only shared images have members"),
        "adding a member to a private image: {private_member}"
    );

    step("image set --shared, image add project, then B accepts");
    cli.ok(&alice, &["image", "set", "--shared", &private_id]);
    let member = cli.json(
        &alice,
        &["image", "add", "project", &private_id, &project_b_id],
    );
    assert_eq!(member["status"], "pending", "member: {member}");
    assert_eq!(
        member["member_id"],
        project_b_id.as_str(),
        "member: {member}"
    );
    let bob_list = cli.json(&bob, &["image", "list"]);
    assert!(
        !list_names(&bob_list).contains(&"alice-image".to_owned()),
        "a pending shared image must not be in B's default list: {bob_list}"
    );
    cli.ok(&bob, &["image", "set", "--accept", &private_id]);
    let bob_list = cli.json(&bob, &["image", "list"]);
    assert!(
        list_names(&bob_list).contains(&"alice-image".to_owned()),
        "an accepted shared image must be in B's list: {bob_list}"
    );
    let bob_view = cli.json(&bob, &["image", "show", &private_id]);
    assert_eq!(bob_view["name"], "alice-image");
    cli.ok(&bob, &["image", "save", "--file", "bob.qcow2", &private_id]);
    let bob_saved = std::fs::read(work.join("bob.qcow2")).unwrap();
    assert!(
        bob_saved == tiny_bytes,
        "B's download of the shared image differs from the upload"
    );

    step("uploads the format inspection rejects");
    std::fs::write(work.join("raw.img"), vec![0u8; 64 * 1024]).unwrap();
    qemu_img(
        &work,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            "/etc/hostname",
            "-F",
            "raw",
            "backing.qcow2",
            "1M",
        ],
    );
    qemu_img(
        &work,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=external.raw",
            "data-file.qcow2",
            "1M",
        ],
    );
    let rejected = [
        RejectedUpload {
            file: "raw.img",
            name: "raw-as-qcow2",
            message: "image is a raw file but disk_format is qcow2",
        },
        RejectedUpload {
            file: "backing.qcow2",
            name: "with-backing-file",
            message: "qcow2 image has a backing file (/etc/hostname)",
        },
        RejectedUpload {
            file: "data-file.qcow2",
            name: "with-data-file",
            message: "qcow2 image uses an external data file (external.raw)",
        },
    ];
    for upload in &rejected {
        let stderr = cli.fails(
            &admin,
            &[
                "image",
                "create",
                "--file",
                upload.file,
                "--disk-format",
                "qcow2",
                "--container-format",
                "bare",
                upload.name,
            ],
        );
        assert!(
            stderr.contains("400"),
            "{}: the CLI must print the 400: {stderr}",
            upload.file
        );
        assert!(
            stderr.contains(upload.message),
            "{}: the CLI must print the reason '{}': {stderr}",
            upload.file,
            upload.message
        );
        assert_stored_files(
            &data_dir,
            &active_ids,
            &format!("after rejecting {}", upload.file),
        );
        let list = cli.json(&admin, &["image", "list", "--long"]);
        let active_with_name = rows(&list)
            .iter()
            .filter(|row| row["Name"] == upload.name && row["Status"] == "active")
            .count();
        assert_eq!(active_with_name, 0, "{}: image list: {list}", upload.file);
    }

    step("a protected image cannot be deleted");
    cli.ok(&admin, &["image", "set", "--protected", "tiny"]);
    let refused = cli.fails(&admin, &["image", "delete", "tiny"]);
    assert!(
        refused.contains("403"),
        "deleting a protected image: {refused}"
    );
    let shown = cli.json(&admin, &["image", "show", "tiny"]);
    assert_eq!(shown["status"], "active", "image: {shown}");
    assert_eq!(shown["protected"], true, "image: {shown}");
    assert_stored_files(&data_dir, &active_ids, "after the refused delete");

    step("unprotect, then delete");
    cli.ok(&admin, &["image", "set", "--unprotected", "tiny"]);
    cli.ok(&admin, &["image", "delete", "tiny"]);
    let gone = cli.fails(&admin, &["image", "show", &tiny_id]);
    assert!(
        gone.contains("No Image found"),
        "showing a deleted image: {gone}"
    );
    active_ids.remove(&tiny_id);
    assert_stored_files(&data_dir, &active_ids, "after deleting tiny");

    let admin_token = issue_token(
        &base_url,
        "admin",
        &stored_admin_password(&data_dir),
        "admin",
    );
    let deleted = http(
        "GET",
        &format!("{base_url}/image/v2/images/{tiny_id}"),
        &[("X-Auth-Token", &admin_token)],
        None,
    );
    assert_eq!(deleted.status, 404, "GET a deleted image: {}", deleted.body);
    drop(server);
}
