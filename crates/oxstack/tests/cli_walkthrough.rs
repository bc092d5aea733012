//! End-to-end walkthrough of the `oxstack` binary with the unmodified
//! OpenStack CLI: an operator's first session, a restart on the same data
//! directory, and the error codes of bad requests.
//!
//! The `openstack` command comes from the venv that `tests/setup-python.sh`
//! builds (`$OXSTACK_VENV`, default `REPO/.venv`). Every CLI run takes about
//! two seconds, so one test runs all steps against one server.

mod common;

use std::collections::BTreeMap;

use serde_json::json;

use common::{
    count_rows, free_port, http, issue_token, password_auth_body, read_openrc, rows, step, Cli,
    Server,
};

#[test]
fn cli_walkthrough_restart_and_bad_input() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let home = temp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cli = Cli::new(&home);
    let port = free_port();

    step("start oxstack up");
    let mut server = Server::start(&data_dir, port);
    let base_url = server.base_url.clone();
    let admin = read_openrc(&server.data_dir.join("openrc"));
    assert_eq!(admin["OS_AUTH_URL"], format!("{base_url}/v3"));
    let admin_password = std::fs::read_to_string(data_dir.join("admin-password"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        admin["OS_PASSWORD"], admin_password,
        "openrc must carry the stored admin password"
    );

    step("token issue");
    let token = cli.json(&admin, &["token", "issue"]);
    assert!(
        token["id"].as_str().is_some_and(|id| !id.is_empty()),
        "token issue printed no id: {token}"
    );
    assert!(
        token["expires"].as_str().is_some(),
        "token issue printed no expiry: {token}"
    );

    step("catalog list shows identity");
    let catalog = cli.json(&admin, &["catalog", "list"]);
    assert_eq!(
        count_rows(&catalog, "Type", "identity"),
        1,
        "catalog: {catalog}"
    );

    step("project create --domain default demo");
    let demo = cli.json(
        &admin,
        &["project", "create", "--domain", "default", "demo"],
    );
    assert_eq!(demo["name"], "demo");
    assert_eq!(demo["domain_id"], "default");

    step("user create --project demo --password s3cret dan");
    let dan = cli.json(
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
    assert_eq!(dan["name"], "dan");
    assert_eq!(dan["default_project_id"], demo["id"]);

    step("role add --project demo --user dan member");
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

    step("role assignment list --names");
    let assignments = cli.json(&admin, &["role", "assignment", "list", "--names"]);
    let dan_member_on_demo = rows(&assignments)
        .iter()
        .filter(|row| {
            row["User"] == "dan@Default"
                && row["Role"] == "member"
                && row["Project"] == "demo@Default"
        })
        .count();
    assert_eq!(dan_member_on_demo, 1, "role assignments: {assignments}");

    step("project list and user list");
    let projects = cli.json(&admin, &["project", "list"]);
    assert_eq!(
        count_rows(&projects, "Name", "demo"),
        1,
        "projects: {projects}"
    );
    assert_eq!(
        count_rows(&projects, "Name", "admin"),
        1,
        "projects: {projects}"
    );
    let users = cli.json(&admin, &["user", "list"]);
    assert_eq!(count_rows(&users, "Name", "dan"), 1, "users: {users}");
    assert_eq!(count_rows(&users, "Name", "admin"), 1, "users: {users}");

    step("token revoke");
    let admin_token = issue_token(&base_url, "admin", &admin_password, "admin");
    let revoked_token = cli.json(&admin, &["token", "issue"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = http(
        "GET",
        &format!("{base_url}/v3/auth/tokens"),
        &[
            ("X-Auth-Token", &admin_token),
            ("X-Subject-Token", &revoked_token),
        ],
        None,
    );
    assert_eq!(
        before.status, 200,
        "the token must validate before revocation: {}",
        before.body
    );
    cli.ok(&admin, &["token", "revoke", &revoked_token]);
    let validated = http(
        "GET",
        &format!("{base_url}/v3/auth/tokens"),
        &[
            ("X-Auth-Token", &admin_token),
            ("X-Subject-Token", &revoked_token),
        ],
        None,
    );
    assert_eq!(
        validated.status, 404,
        "validating a revoked token: {}",
        validated.body
    );
    let used = http(
        "GET",
        &format!("{base_url}/v3/projects"),
        &[("X-Auth-Token", &revoked_token)],
        None,
    );
    assert_eq!(
        used.status, 401,
        "calling the API with a revoked token: {}",
        used.body
    );

    step("token issue as dan with --os-* options");
    let dan_cli = cli.json(
        &admin,
        &[
            "--os-username",
            "dan",
            "--os-password",
            "s3cret",
            "--os-project-name",
            "demo",
            "token",
            "issue",
        ],
    );
    assert_eq!(dan_cli["user_id"], dan["id"]);
    assert_eq!(dan_cli["project_id"], demo["id"]);

    step("token issue with OS_CLOUD and clouds.yaml");
    let cloud_env = BTreeMap::from([
        ("OS_CLOUD".to_owned(), "oxstack".to_owned()),
        (
            "OS_CLIENT_CONFIG_FILE".to_owned(),
            data_dir.join("clouds.yaml").display().to_string(),
        ),
    ]);
    let cloud_token = cli.json(&cloud_env, &["token", "issue"]);
    assert_eq!(
        cloud_token["project_id"], token["project_id"],
        "clouds.yaml must scope to the admin project"
    );

    step("bad input: authentication");
    let tokens_url = format!("{base_url}/v3/auth/tokens");
    let wrong_password = http(
        "POST",
        &tokens_url,
        &[],
        Some(&password_auth_body("admin", "not-the-password", "admin")),
    );
    assert_eq!(
        wrong_password.status, 401,
        "wrong password: {}",
        wrong_password.body
    );
    let unknown_project = http(
        "POST",
        &tokens_url,
        &[],
        Some(&password_auth_body(
            "admin",
            &admin_password,
            "no-such-project",
        )),
    );
    assert_eq!(
        unknown_project.status, 401,
        "unknown project: {}",
        unknown_project.body
    );
    let wrong_password_cli = cli.fails(
        &admin,
        &["--os-password", "not-the-password", "token", "issue"],
    );
    assert!(
        wrong_password_cli.contains("HTTP 401"),
        "CLI with a wrong password: {wrong_password_cli}"
    );

    step("bad input: request bodies");
    let users_url = format!("{base_url}/v3/users");
    let auth = [("X-Auth-Token", admin_token.as_str())];
    let duplicate = http(
        "POST",
        &users_url,
        &auth,
        Some(&json!({"user": {"name": "dan", "domain_id": "default"}}).to_string()),
    );
    assert_eq!(
        duplicate.status, 409,
        "duplicate user name: {}",
        duplicate.body
    );
    let duplicate_cli = cli.fails(&admin, &["user", "create", "--password", "x", "dan"]);
    assert!(
        duplicate_cli.contains("409"),
        "CLI creating a duplicate user: {duplicate_cli}"
    );
    let malformed = http("POST", &users_url, &auth, Some("{\"user\": {\"name\": "));
    assert_eq!(malformed.status, 400, "malformed JSON: {}", malformed.body);
    let long_name = "n".repeat(256);
    let too_long = http(
        "POST",
        &users_url,
        &auth,
        Some(&json!({"user": {"name": long_name}}).to_string()),
    );
    assert_eq!(
        too_long.status, 400,
        "256-character user name: {}",
        too_long.body
    );
    assert!(
        too_long.error_message().contains("name"),
        "the message must name the field: {}",
        too_long.body
    );
    let too_long_project = http(
        "POST",
        &format!("{base_url}/v3/projects"),
        &auth,
        Some(&json!({"project": {"name": "p".repeat(256)}}).to_string()),
    );
    assert_eq!(
        too_long_project.status, 400,
        "256-character project name: {}",
        too_long_project.body
    );
    assert!(
        too_long_project.error_message().contains("name"),
        "the message must name the field: {}",
        too_long_project.body
    );
    let wrong_type = http(
        "POST",
        &users_url,
        &auth,
        Some(&json!({"user": {"name": 42}}).to_string()),
    );
    assert_eq!(
        wrong_type.status, 400,
        "user name as a number: {}",
        wrong_type.body
    );
    let wrong_enabled = http(
        "POST",
        &format!("{base_url}/v3/projects"),
        &auth,
        Some(&json!({"project": {"name": "typed", "enabled": "yes"}}).to_string()),
    );
    assert_eq!(
        wrong_enabled.status, 400,
        "project enabled as a string: {}",
        wrong_enabled.body
    );
    assert!(
        wrong_enabled.error_message().contains("enabled"),
        "the message must name the field: {}",
        wrong_enabled.body
    );

    step("bad input: a member is not an admin");
    let dan_env = BTreeMap::from_iter(admin.clone().into_iter().chain([
        ("OS_USERNAME".to_owned(), "dan".to_owned()),
        ("OS_PASSWORD".to_owned(), "s3cret".to_owned()),
        ("OS_PROJECT_NAME".to_owned(), "demo".to_owned()),
    ]));
    let forbidden_cli = cli.fails(&dan_env, &["user", "create", "--password", "x", "eve"]);
    assert!(
        forbidden_cli.contains("403"),
        "member creating a user: {forbidden_cli}"
    );
    let dan_token = issue_token(&base_url, "dan", "s3cret", "demo");
    let admin_project_id = token["project_id"].as_str().unwrap();
    let other_project = http(
        "GET",
        &format!("{base_url}/v3/projects/{admin_project_id}"),
        &[("X-Auth-Token", &dan_token)],
        None,
    );
    assert_eq!(
        other_project.status, 403,
        "member reading another project: {}",
        other_project.body
    );
    let own_project = http(
        "GET",
        &format!("{base_url}/v3/projects/{}", demo["id"].as_str().unwrap()),
        &[("X-Auth-Token", &dan_token)],
        None,
    );
    assert_eq!(
        own_project.status, 200,
        "member reading its own project: {}",
        own_project.body
    );

    step("restart on the same data directory");
    let status = server.stop();
    assert!(
        status.success(),
        "oxstack up must exit 0 on SIGTERM, got {status}"
    );
    drop(server);
    let server = Server::start(&data_dir, port);
    let restarted_password = std::fs::read_to_string(data_dir.join("admin-password"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        restarted_password, admin_password,
        "a restart must keep the admin password"
    );

    step("old token still valid after restart");
    let old_token = http(
        "GET",
        &tokens_url,
        &[
            ("X-Auth-Token", &admin_token),
            ("X-Subject-Token", &admin_token),
        ],
        None,
    );
    assert_eq!(
        old_token.status, 200,
        "a token issued before the restart: {}",
        old_token.body
    );
    let still_revoked = http(
        "GET",
        &tokens_url,
        &[
            ("X-Auth-Token", &admin_token),
            ("X-Subject-Token", &revoked_token),
        ],
        None,
    );
    assert_eq!(
        still_revoked.status, 404,
        "a token revoked before the restart: {}",
        still_revoked.body
    );

    step("users, assignments and bootstrap data after restart");
    let dan_after = cli.json(&admin, &["user", "show", "dan"]);
    assert_eq!(dan_after["id"], dan["id"]);
    let assignments = cli.json(
        &admin,
        &["role", "assignment", "list", "--names", "--user", "dan"],
    );
    assert_eq!(
        rows(&assignments).len(),
        1,
        "dan's assignments after restart: {assignments}"
    );
    assert_eq!(assignments[0]["Role"], "member");
    assert_eq!(assignments[0]["Project"], "demo@Default");
    let roles = cli.json(&admin, &["role", "list"]);
    assert_eq!(
        count_rows(&roles, "Name", "admin"),
        1,
        "roles after restart: {roles}"
    );
    assert_eq!(
        count_rows(&roles, "Name", "member"),
        1,
        "roles after restart: {roles}"
    );
    let catalog = cli.json(&admin, &["catalog", "list"]);
    assert_eq!(
        count_rows(&catalog, "Type", "identity"),
        1,
        "catalog after restart: {catalog}"
    );
    let projects = cli.json(&admin, &["project", "list"]);
    assert_eq!(
        count_rows(&projects, "Name", "admin"),
        1,
        "projects after restart: {projects}"
    );
    let users = cli.json(&admin, &["user", "list"]);
    assert_eq!(
        count_rows(&users, "Name", "admin"),
        1,
        "users after restart: {users}"
    );
    let dan_again = cli.json(&dan_env, &["token", "issue"]);
    assert_eq!(dan_again["project_id"], demo["id"]);

    drop(server);
}
