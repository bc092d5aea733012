//! End-to-end walkthrough of the `oxstack` binary with the unmodified
//! OpenStack CLI: an operator's first session, a restart on the same data
//! directory, and the error codes of bad requests.
//!
//! The `openstack` command comes from the venv that `tests/setup-python.sh`
//! builds (`$OXSTACK_VENV`, default `REPO/.venv`). Every CLI run takes about
//! two seconds, so one test runs all steps against one server.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// One `oxstack up` process. Dropping it kills the process, so a failed
/// assertion never leaves a server behind.
struct Server {
    child: Option<Child>,
    data_dir: PathBuf,
    base_url: String,
}

impl Server {
    /// Starts `oxstack up` on `port` and waits until `GET /v3` returns 200.
    fn start(data_dir: &Path, port: u16) -> Server {
        let log_path = data_dir.with_extension("stdout.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("cannot open the server output file");
        let child = Command::new(env!("CARGO_BIN_EXE_oxstack"))
            .arg("up")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env_remove("OXSTACK_CONFIG")
            .env_remove("OXSTACK_DATA_DIR")
            .env_remove("OXSTACK_ADMIN_PASSWORD")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start the oxstack binary");
        let mut server = Server {
            child: Some(child),
            data_dir: data_dir.to_owned(),
            base_url: format!("http://127.0.0.1:{port}"),
        };
        server.wait_ready(&log_path);
        server
    }

    fn wait_ready(&mut self, log_path: &Path) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(response) = ureq::get(&format!("{}/v3", self.base_url)).call() {
                assert_eq!(
                    response.status(),
                    200,
                    "GET /v3 must answer 200 once the server is up"
                );
                return;
            }
            let child = self.child.as_mut().unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                let output = std::fs::read_to_string(log_path).unwrap_or_default();
                panic!("oxstack up exited with {status} before GET /v3 returned 200. Its output:\n{output}");
            }
            assert!(
                Instant::now() < deadline,
                "oxstack up did not answer GET /v3 within {READY_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server already stopped");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("cannot run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                panic!("oxstack did not stop within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// Returns a port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn venv_dir() -> PathBuf {
    match std::env::var_os("OXSTACK_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"),
    }
}

/// Reads the `export NAME=VALUE` lines of an openrc file, as `source` would.
fn read_openrc(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let Some(assignment) = line.trim().strip_prefix("export ") else {
            continue;
        };
        let (name, value) = assignment
            .split_once('=')
            .expect("openrc export without '='");
        let value = value.trim_matches('\'').trim_matches('"');
        vars.insert(name.to_owned(), value.to_owned());
    }
    vars
}

/// Runs the `openstack` CLI with exactly the given OS_* variables, a private
/// HOME (so no `~/.config/openstack/clouds.yaml` interferes) and nothing else.
struct Cli {
    openstack: PathBuf,
    home: PathBuf,
}

impl Cli {
    fn new(home: &Path) -> Cli {
        let openstack = venv_dir().join("bin/openstack");
        assert!(
            openstack.is_file(),
            "{} is missing: run tests/setup-python.sh to create the venv (or set OXSTACK_VENV)",
            openstack.display()
        );
        Cli {
            openstack,
            home: home.to_owned(),
        }
    }

    fn run(&self, env: &BTreeMap<String, String>, args: &[&str]) -> Output {
        Command::new(&self.openstack)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("LANG", "C.UTF-8")
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run the openstack CLI")
    }

    /// Runs a command that must succeed and returns its standard output.
    fn ok(&self, env: &BTreeMap<String, String>, args: &[&str]) -> String {
        let output = self.run(env, args);
        assert!(
            output.status.success(),
            "`openstack {}` failed with {}:\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs a command with `-f json` and parses its output.
    fn json(&self, env: &BTreeMap<String, String>, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-f", "json"]);
        let stdout = self.ok(env, &args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "`openstack {}` printed invalid JSON ({e}):\n{stdout}",
                args.join(" ")
            )
        })
    }

    /// Runs a command that must fail and returns its standard error.
    fn fails(&self, env: &BTreeMap<String, String>, args: &[&str]) -> String {
        let output = self.run(env, args);
        assert!(
            !output.status.success(),
            "`openstack {}` succeeded but should have failed",
            args.join(" ")
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

/// A raw HTTP response: status, the `X-Subject-Token` header and the body.
struct Reply {
    status: u16,
    subject_token: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("invalid JSON body ({e}): {}", self.body))
    }

    /// Returns the `error.message` of a Keystone error body.
    fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Sends one request. A 4xx or 5xx status comes back as a `Reply`, not as an error.
fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    let mut request = ureq::request(method, url).timeout(Duration::from_secs(30));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(body) => request
            .set("Content-Type", "application/json")
            .send_string(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("{method} {url} failed: {error}"),
    };
    let status = response.status();
    let subject_token = response.header("X-Subject-Token").map(str::to_owned);
    let body = response.into_string().unwrap_or_default();
    Reply {
        status,
        subject_token,
        body,
    }
}

fn password_auth_body(user: &str, password: &str, project: &str) -> String {
    json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}
    }})
    .to_string()
}

/// Issues a project-scoped token over HTTP, asserting a 201.
fn issue_token(base_url: &str, user: &str, password: &str, project: &str) -> String {
    let reply = http(
        "POST",
        &format!("{base_url}/v3/auth/tokens"),
        &[],
        Some(&password_auth_body(user, password, project)),
    );
    assert_eq!(
        reply.status, 201,
        "token for {user} on {project}: {}",
        reply.body
    );
    reply
        .subject_token
        .expect("a token response must carry X-Subject-Token")
}

fn rows(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected a JSON list, got {value}"))
}

fn count_rows(value: &Value, column: &str, expected: &str) -> usize {
    rows(value)
        .iter()
        .filter(|row| row[column] == expected)
        .count()
}

fn step(name: &str) {
    eprintln!("--- step: {name}");
}

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
