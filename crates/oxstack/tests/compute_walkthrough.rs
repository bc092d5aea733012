//! End-to-end walkthrough of the Compute API parts that need no servers,
//! with the unmodified OpenStack CLI: flavors, keypairs, quotas,
//! availability zones and limits.
//!
//! The `openstack` command comes from the venv that `tests/setup-python.sh`
//! builds (`$OXSTACK_VENV`, default `REPO/.venv`). Every CLI run takes about
//! two seconds, so one test runs all steps against one server.

mod common;

use std::process::Command;

use serde_json::Value;

use common::{env_as, free_port, read_openrc, rows, step, Cli, Server};

/// Returns the value of the `Field`/`Value` row named `field` of a
/// `quota show` or `limits show` table, or of the key in a JSON object.
fn table_value<'a>(table: &'a Value, field: &str) -> &'a Value {
    if let Some(object) = table.as_object() {
        return object
            .get(field)
            .unwrap_or_else(|| panic!("no field {field} in {table}"));
    }
    rows(table)
        .iter()
        .find(|row| row["Name"] == field || row["Resource"] == field || row["Field"] == field)
        .map(|row| {
            if row.get("Value").is_some() {
                &row["Value"]
            } else {
                &row["Limit"]
            }
        })
        .unwrap_or_else(|| panic!("no row {field} in {table}"))
}

#[test]
fn compute_walkthrough_flavors_keypairs_quotas() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let home = temp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cli = Cli::new(&home);

    step("start oxstack up");
    let _server = Server::start(&data_dir, free_port());
    let admin = read_openrc(&data_dir.join("openrc"));

    step("flavor list shows the seven defaults");
    let flavors = cli.json(&admin, &["flavor", "list"]);
    let mut names: Vec<&str> = rows(&flavors)
        .iter()
        .map(|row| row["Name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "m1.large",
            "m1.medium",
            "m1.micro",
            "m1.nano",
            "m1.small",
            "m1.tiny",
            "m1.xlarge"
        ],
        "flavor list: {flavors}"
    );

    step("flavor show m1.nano");
    let nano = cli.json(&admin, &["flavor", "show", "m1.nano"]);
    assert_eq!(nano["vcpus"], 1, "m1.nano: {nano}");
    assert_eq!(nano["ram"], 128, "m1.nano: {nano}");
    assert_eq!(nano["disk"], 1, "m1.nano: {nano}");
    assert_eq!(nano["os-flavor-access:is_public"], true, "m1.nano: {nano}");

    step("flavor create --private f1 as admin");
    let f1 = cli.json(
        &admin,
        &[
            "flavor",
            "create",
            "--ram",
            "256",
            "--disk",
            "1",
            "--vcpus",
            "1",
            "--private",
            "f1",
        ],
    );
    assert_eq!(f1["name"], "f1");
    assert_eq!(f1["ram"], 256);
    assert_eq!(f1["os-flavor-access:is_public"], false, "f1: {f1}");
    let public_list = cli.json(&admin, &["flavor", "list"]);
    assert!(
        !public_list.to_string().contains("\"f1\""),
        "a private flavor must not be in the default (public) list: {public_list}"
    );
    let private_list = cli.json(&admin, &["flavor", "list", "--private"]);
    assert!(
        private_list.to_string().contains("\"f1\""),
        "flavor list --private must show f1: {private_list}"
    );

    step("a member's flavor create is rejected with 403");
    cli.ok(
        &admin,
        &["project", "create", "--domain", "default", "demo"],
    );
    cli.ok(
        &admin,
        &[
            "user",
            "create",
            "--project",
            "demo",
            "--password",
            "s3cret",
            "dan",
        ],
    );
    cli.ok(
        &admin,
        &[
            "role",
            "add",
            "--project",
            "demo",
            "--user",
            "dan",
            "member",
        ],
    );
    let member = env_as(&admin, "dan", "s3cret", "demo");
    let stderr = cli.fails(
        &member,
        &["flavor", "create", "--ram", "64", "--vcpus", "1", "f2"],
    );
    assert!(
        stderr.contains("403"),
        "a member's flavor create must fail with 403:\n{stderr}"
    );

    step("keypair create --public-key k.pub mykey");
    let key_path = home.join("k");
    let generated = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "rsa",
            "-b",
            "2048",
            "-N",
            "",
            "-C",
            "walkthrough",
            "-f",
        ])
        .arg(&key_path)
        .status()
        .expect("cannot run ssh-keygen");
    assert!(generated.success(), "ssh-keygen failed with {generated}");
    let listed = Command::new("ssh-keygen")
        .args(["-l", "-E", "md5", "-f"])
        .arg(home.join("k.pub"))
        .output()
        .expect("cannot run ssh-keygen -l");
    assert!(listed.status.success(), "ssh-keygen -l failed");
    // The output is "2048 MD5:aa:bb:... walkthrough (RSA)".
    let listed = String::from_utf8(listed.stdout).unwrap();
    let expected_fingerprint = listed
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.strip_prefix("MD5:"))
        .unwrap_or_else(|| panic!("unexpected ssh-keygen -l output: {listed}"))
        .to_owned();
    let keypair = cli.json(
        &admin,
        &["keypair", "create", "--public-key", "k.pub", "mykey"],
    );
    assert_eq!(keypair["name"], "mykey");
    assert_eq!(
        keypair["fingerprint"],
        expected_fingerprint.as_str(),
        "keypair: {keypair}"
    );
    let shown = cli.json(&admin, &["keypair", "show", "mykey"]);
    assert_eq!(
        shown["fingerprint"],
        expected_fingerprint.as_str(),
        "keypair show: {shown}"
    );

    step("duplicate keypair is rejected with 409");
    let stderr = cli.fails(
        &admin,
        &["keypair", "create", "--public-key", "k.pub", "mykey"],
    );
    assert!(
        stderr.contains("409"),
        "a duplicate keypair must fail with 409:\n{stderr}"
    );

    step("an invalid public key is rejected with 400");
    std::fs::write(home.join("bad.pub"), "ssh-rsa not-base64!! nobody\n").unwrap();
    let stderr = cli.fails(
        &admin,
        &["keypair", "create", "--public-key", "bad.pub", "badkey"],
    );
    assert!(
        stderr.contains("400"),
        "an invalid public key must fail with 400:\n{stderr}"
    );

    step("quota show --compute");
    let quotas = cli.json(&admin, &["quota", "show", "--compute"]);
    let instances = table_value(&quotas, "instances");
    assert!(
        instances.as_i64().is_some_and(|n| n > 0),
        "quota show: {quotas}"
    );

    step("quota set --instances 20 demo, then show");
    cli.ok(&admin, &["quota", "set", "--instances", "20", "demo"]);
    let demo_quotas = cli.json(&admin, &["quota", "show", "--compute", "demo"]);
    assert_eq!(
        table_value(&demo_quotas, "instances"),
        20,
        "quota show demo: {demo_quotas}"
    );
    let admin_quotas = cli.json(&admin, &["quota", "show", "--compute"]);
    assert_eq!(
        table_value(&admin_quotas, "instances"),
        instances,
        "quota set on demo must leave the admin project's quota alone"
    );

    step("availability zone list --compute");
    let zones = cli.json(&admin, &["availability", "zone", "list", "--compute"]);
    let nova = rows(&zones)
        .iter()
        .find(|row| row["Zone Name"] == "nova")
        .unwrap_or_else(|| panic!("no zone nova: {zones}"));
    assert_eq!(nova["Zone Status"], "available", "zone: {nova}");

    step("limits show --absolute");
    let limits = cli.json(&admin, &["limits", "show", "--absolute"]);
    let max_instances = table_value(&limits, "max_total_instances");
    assert_eq!(
        max_instances, instances,
        "limits must agree with quota show: {limits}"
    );
    assert_eq!(
        table_value(&limits, "total_instances_used"),
        0,
        "limits: {limits}"
    );
    assert!(
        table_value(&limits, "max_total_keypairs")
            .as_i64()
            .is_some_and(|n| n > 0),
        "limits: {limits}"
    );
}
