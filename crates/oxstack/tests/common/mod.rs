//! Helpers shared by the integration tests that run the `oxstack` binary:
//! a server process guard, the `openstack` CLI runner, a small HTTP
//! client that returns error statuses instead of failing on them, and, for
//! the tests that run a cloud on the host's dataplane, checks of links,
//! namespaces and processes and a guard that cleans the host.
//!
//! The `openstack` command comes from the venv that `tests/setup-python.sh`
//! builds (`$OXSTACK_VENV`, default `REPO/.venv`).

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

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
pub struct Server {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub base_url: String,
}

impl Server {
    /// Starts `oxstack up` on `port` in the parent directory of `data_dir`
    /// and waits until `GET /v3` returns 200. That directory has no
    /// `tools/guest-image/out/oxstack-guest.qcow2`, so no guest image is
    /// registered.
    pub fn start(data_dir: &Path, port: u16) -> Server {
        let parent = data_dir
            .parent()
            .expect("the data directory must have a parent");
        Server::start_in(parent, data_dir, port)
    }

    /// Starts `oxstack up` on `port` with `working_dir` as its current
    /// directory and waits until `GET /v3` returns 200. The server output
    /// is appended to `DATA_DIR.stdout.log`.
    pub fn start_in(working_dir: &Path, data_dir: &Path, port: u16) -> Server {
        Server::start_with_config(working_dir, data_dir, port, None)
    }

    /// Starts `oxstack up` like [`Server::start_in`], reading the TOML
    /// config file `config` (`--config`) when one is given.
    pub fn start_with_config(
        working_dir: &Path,
        data_dir: &Path,
        port: u16,
        config: Option<&Path>,
    ) -> Server {
        // Without a config of its own a test gets no bootstrap networks (it
        // creates the ones it checks) and no host dataplane, so test clouds
        // running side by side never share bridges, VXLAN devices or names.
        let default_config = data_dir.with_extension("toml");
        let config = match config {
            Some(config) => Some(config),
            None => {
                std::fs::write(
                    &default_config,
                    "[network]\nbootstrap = false\n[netagent]\ndataplane = \"none\"\n",
                )
                .expect("cannot write the default test config");
                Some(default_config.as_path())
            }
        };
        let log_path = data_dir.with_extension("stdout.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("cannot open the server output file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_oxstack"));
        command.arg("up");
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(working_dir)
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

    /// Returns the process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server already stopped").id()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
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

    /// Sends SIGKILL to the server's pid, as a crash or power loss would
    /// end it, and reaps the process.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server already stopped");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("cannot run kill");
        assert!(sent.success(), "kill -KILL {pid} failed");
        // SIGKILL cannot be caught, so the wait ends as soon as the kernel
        // has torn the process down.
        child
            .wait()
            .expect("cannot reap the killed oxstack process")
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
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Returns the repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("cannot resolve the repository root")
}

pub fn venv_dir() -> PathBuf {
    match std::env::var_os("OXSTACK_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join(".venv"),
    }
}

/// Reads the `export NAME=VALUE` lines of an openrc file, as `source` would.
pub fn read_openrc(path: &Path) -> BTreeMap<String, String> {
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

/// Returns a copy of `base` (an openrc environment) that authenticates as
/// `user` with `password` on `project`.
pub fn env_as(
    base: &BTreeMap<String, String>,
    user: &str,
    password: &str,
    project: &str,
) -> BTreeMap<String, String> {
    let mut env = base.clone();
    env.insert("OS_USERNAME".to_owned(), user.to_owned());
    env.insert("OS_PASSWORD".to_owned(), password.to_owned());
    env.insert("OS_PROJECT_NAME".to_owned(), project.to_owned());
    env
}

/// Runs the `openstack` CLI with exactly the given OS_* variables, a private
/// HOME (so no `~/.config/openstack/clouds.yaml` interferes) and nothing else.
pub struct Cli {
    openstack: PathBuf,
    home: PathBuf,
    working_dir: PathBuf,
}

impl Cli {
    /// Returns a runner whose commands run in `home`, which is also their
    /// `HOME`, so relative file arguments resolve there.
    pub fn new(home: &Path) -> Cli {
        let openstack = venv_dir().join("bin/openstack");
        assert!(
            openstack.is_file(),
            "{} is missing: run tests/setup-python.sh to create the venv (or set OXSTACK_VENV)",
            openstack.display()
        );
        Cli {
            openstack,
            home: home.to_owned(),
            working_dir: home.to_owned(),
        }
    }

    pub fn run(&self, env: &BTreeMap<String, String>, args: &[&str]) -> Output {
        Command::new(&self.openstack)
            .args(args)
            .current_dir(&self.working_dir)
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
    pub fn ok(&self, env: &BTreeMap<String, String>, args: &[&str]) -> String {
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
    pub fn json(&self, env: &BTreeMap<String, String>, args: &[&str]) -> Value {
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
    pub fn fails(&self, env: &BTreeMap<String, String>, args: &[&str]) -> String {
        let output = self.run(env, args);
        assert!(
            !output.status.success(),
            "`openstack {}` succeeded but should have failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

/// A raw HTTP response: status, the `X-Subject-Token` header and the body.
pub struct Reply {
    pub status: u16,
    pub subject_token: Option<String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("invalid JSON body ({e}): {}", self.body))
    }

    /// Returns the `error.message` of a Keystone error body.
    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Sends one request with a JSON body (or none). A 4xx or 5xx status comes
/// back as a `Reply`, not as an error.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    let body = body.map(|text| ("application/json", text.as_bytes()));
    http_bytes(method, url, headers, body)
}

/// Sends one request with a body of the given content type (or none). A 4xx
/// or 5xx status comes back as a `Reply`, not as an error.
pub fn http_bytes(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Reply {
    let mut request = ureq::request(method, url).timeout(Duration::from_secs(30));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some((content_type, bytes)) => request.set("Content-Type", content_type).send_bytes(bytes),
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

pub fn password_auth_body(user: &str, password: &str, project: &str) -> String {
    json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}
    }})
    .to_string()
}

/// Issues a project-scoped token over HTTP, asserting a 201.
pub fn issue_token(base_url: &str, user: &str, password: &str, project: &str) -> String {
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

/// Returns the admin password that `oxstack up` stored in its data directory.
pub fn stored_admin_password(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin-password"))
        .unwrap()
        .trim()
        .to_owned()
}

pub fn rows(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected a JSON list, got {value}"))
}

pub fn count_rows(value: &Value, column: &str, expected: &str) -> usize {
    rows(value)
        .iter()
        .filter(|row| row[column] == expected)
        .count()
}

/// The test guest, relative to the repository root.
pub const GUEST: &str = "tools/guest-image/out/oxstack-guest.qcow2";

/// Returns why a test that boots the test guest on QEMU cannot run here:
/// it needs root (taps, bridges, namespaces), the guest and QEMU.
pub fn missing_vm_prerequisite() -> Option<String> {
    let root = std::fs::metadata("/proc/self")
        .map(|meta| std::os::unix::fs::MetadataExt::uid(&meta) == 0)
        .unwrap_or(false);
    if !root {
        return Some("not root".into());
    }
    if !repo_root().join(GUEST).is_file() {
        return Some(format!(
            "{GUEST} is missing (tools/guest-image/build.sh builds it)"
        ));
    }
    let qemu = Command::new("qemu-system-x86_64").arg("--version").output();
    if !qemu.is_ok_and(|output| output.status.success()) {
        return Some("qemu-system-x86_64 is missing".into());
    }
    None
}

/// Returns the string field `name` of `object`, failing the test when it
/// is missing.
pub fn field<'a>(object: &'a Value, name: &str) -> &'a str {
    object[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string field {name} in {object}"))
}

/// Reports why a host test cannot run on this machine, and passes it.
/// Under CI (`.ci/run` sets `CI`) the machine is prepared for every test,
/// so a missing prerequisite fails the test rather than hiding it.
pub fn skip(reason: &str) {
    let under_ci = std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false");
    assert!(!under_ci, "cannot run under CI: {reason}");
    eprintln!("skipped: {reason}");
}

/// Returns the folder that holds dnsmasq's files for the cloud in
/// `data_dir`, where `DATA_DIR/dhcp` links.
pub fn dhcp_dir(data_dir: &Path) -> PathBuf {
    std::fs::read_link(data_dir.join("dhcp")).unwrap_or(data_dir.join("dhcp"))
}

pub fn step(name: &str) {
    eprintln!("--- step: {name}");
}

/// Polls `check` every half second until it returns `Some`, or panics with
/// `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Returns whether a process whose command line starts with `program`
/// mentions `needle`.
pub fn process_mentions(program: &str, needle: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .map(|cmdline| {
                let cmdline = String::from_utf8_lossy(&cmdline);
                cmdline.starts_with(program) && cmdline.contains(needle)
            })
            .unwrap_or(false)
    })
}

/// Returns whether a link of that name exists in the host namespace.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Returns whether a named network namespace exists.
pub fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Leaves the host as the test found it, also when an assertion failed:
/// kills the QEMU and dnsmasq processes whose command line names this
/// cloud's data directory (the test started them, through `oxstack up`),
/// then has `oxstack netagent teardown` remove the devices the cloud's
/// network agent recorded. Declare it before the server, so it runs after
/// the server stopped.
pub struct HostCleanup {
    pub data_dir: PathBuf,
}

impl Drop for HostCleanup {
    fn drop(&mut self) {
        let needle = self.data_dir.to_string_lossy().into_owned();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                    continue;
                };
                let cmdline = String::from_utf8_lossy(&cmdline);
                let ours = cmdline.contains(&needle)
                    && (cmdline.starts_with("qemu-system") || cmdline.starts_with("dnsmasq"));
                if ours {
                    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                }
            }
        }
        let teardown = Command::new(env!("CARGO_BIN_EXE_oxstack"))
            .args(["netagent", "teardown", "--data-dir"])
            .arg(&self.data_dir)
            .output();
        if let Ok(output) = teardown {
            eprintln!(
                "cleanup: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
