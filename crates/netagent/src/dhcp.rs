//! The `DhcpServer` trait, its dnsmasq implementation and an in-memory fake.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ipnet::Ipv4Net;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::desired::MacAddr;

/// DHCP service of one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    pub network_id: String,
    /// Namespace the server runs in.
    pub namespace: String,
    /// Interface inside `namespace` that the server binds to.
    pub interface: String,
    pub subnet: Ipv4Net,
    pub lease_seconds: u32,
    /// MTU announced to clients (DHCP option 26), in bytes.
    pub mtu: u32,
    /// Fixed leases, one per port.
    pub hosts: Vec<DhcpHost>,
    /// Default gateway announced to clients. `None` announces no router.
    pub router: Option<Ipv4Addr>,
    /// Next hop for the classless static route to 169.254.169.254/32 (the
    /// DHCP port, where the metadata proxy listens). `None` pushes no route.
    pub metadata_next_hop: Option<Ipv4Addr>,
}

/// A fixed lease: the MAC gets `ip` and the hostname derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpHost {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
}

/// One DHCP server per network.
#[async_trait]
pub trait DhcpServer: Send + Sync {
    /// Starts the server if it is not running, restarts it if its command line
    /// changed, and makes it reload the fixed leases if they changed. The
    /// namespace and interface must already exist.
    async fn ensure_running(&self, config: &DhcpConfig) -> Result<(), DhcpError>;

    /// Stops the network's server and removes its files. A server that is not
    /// running is not an error.
    async fn stop(&self, network_id: &str) -> Result<(), DhcpError>;
}

/// Failure of one DHCP server operation.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error("writing {path} failed")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting dnsmasq for network {network_id} failed")]
    Spawn {
        network_id: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "dnsmasq for network {network_id} exited with {status} at startup; its reason is on the agent's stderr and in the system log"
    )]
    Exited {
        network_id: String,
        status: std::process::ExitStatus,
    },
    #[error("signalling dnsmasq pid {pid} for network {network_id} failed")]
    Signal {
        network_id: String,
        pid: i32,
        #[source]
        source: nix::Error,
    },
    #[error(
        "dnsmasq pid {pid} for network {network_id} did not exit within {seconds} s of SIGTERM"
    )]
    StopTimedOut {
        network_id: String,
        pid: i32,
        seconds: u64,
    },
    #[error("blocking task for network {network_id} panicked or was cancelled")]
    Task {
        network_id: String,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("injected failure in {operation} for network {network_id}")]
    Injected {
        operation: &'static str,
        network_id: String,
    },
}

/// The `dnsmasq-utils` program that makes dnsmasq drop one lease.
const DHCP_RELEASE: &str = "dhcp_release";

/// How long `stop` waits for dnsmasq to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// dnsmasq (Debian's `dnsmasq-base`), one daemon per network, each with its
/// files under `<state_dir>/<network id>/`.
#[derive(Debug, Clone)]
pub struct Dnsmasq {
    state_dir: PathBuf,
    binary: PathBuf,
}

impl Dnsmasq {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            binary: PathBuf::from("dnsmasq"),
        }
    }

    /// Uses another dnsmasq executable than the one on `PATH`.
    pub fn with_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = binary.into();
        self
    }

    fn network_dir(&self, network_id: &str) -> PathBuf {
        self.state_dir.join(network_id)
    }

    /// Returns the pid of the network's dnsmasq if it is alive.
    pub fn running_pid(&self, network_id: &str) -> Option<Pid> {
        let dir = self.network_dir(network_id);
        let pid: i32 = fs::read_to_string(dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        is_our_dnsmasq(pid, &dir).then(|| Pid::from_raw(pid))
    }

    fn command_line(&self, config: &DhcpConfig, dir: &Path) -> Vec<String> {
        let subnet = config.subnet;
        let mut args = self.base_arguments(config, dir, subnet);
        // Clients that get option 121 ignore option 3, so the default route
        // travels in it too, as in Neutron's DHCP agent. Option 249 is the
        // same route list for older Windows clients.
        let mut routes = Vec::new();
        if let Some(hop) = config.metadata_next_hop {
            routes.push(format!("169.254.169.254/32,{hop}"));
        }
        if let (Some(router), false) = (config.router, routes.is_empty()) {
            routes.push(format!("0.0.0.0/0,{router}"));
        }
        if !routes.is_empty() {
            let routes = routes.join(",");
            args.push(format!(
                "--dhcp-option=option:classless-static-route,{routes}"
            ));
            args.push(format!("--dhcp-option=249,{routes}"));
        }
        args
    }

    fn base_arguments(&self, config: &DhcpConfig, dir: &Path, subnet: Ipv4Net) -> Vec<String> {
        // Flags follow the dnsmasq command line of Neutron's DHCP agent: fixed
        // leases only, nothing read from /etc, bound to the one interface.
        vec![
            "--no-hosts".into(),
            "--no-resolv".into(),
            "--strict-order".into(),
            "--conf-file=/dev/null".into(),
            // NOTE: DNS is off (port 0), so instance names are not resolvable yet.
            "--port=0".into(),
            "--except-interface=lo".into(),
            "--bind-interfaces".into(),
            format!("--interface={}", config.interface),
            format!("--pid-file={}", dir.join("pid").display()),
            format!("--dhcp-hostsfile={}", dir.join("host").display()),
            format!(
                "--dhcp-range={},static,{},{}s",
                subnet.network(),
                subnet.netmask(),
                config.lease_seconds
            ),
            format!("--dhcp-option-force=option:mtu,{}", config.mtu),
            match config.router {
                Some(router) => format!("--dhcp-option=option:router,{router}"),
                // An empty option stops dnsmasq announcing itself as router.
                None => "--dhcp-option=option:router".into(),
            },
            "--dhcp-authoritative".into(),
            "--leasefile-ro".into(),
            "--domain=openstacklocal".into(),
        ]
    }

    fn start(&self, config: &DhcpConfig, args: &[String]) -> Result<(), DhcpError> {
        // `ip netns exec` runs dnsmasq inside the namespace. dnsmasq forks into
        // the background and the foreground process exits once it is serving.
        let status = Command::new("ip")
            .args(["netns", "exec", &config.namespace])
            .arg(&self.binary)
            .args(args)
            .stdin(Stdio::null())
            .status()
            .map_err(|source| DhcpError::Spawn {
                network_id: config.network_id.clone(),
                source,
            })?;
        if !status.success() {
            return Err(DhcpError::Exited {
                network_id: config.network_id.clone(),
                status,
            });
        }
        tracing::info!(network_id = %config.network_id, namespace = %config.namespace, "started dnsmasq");
        Ok(())
    }

    fn ensure_running_blocking(&self, config: &DhcpConfig) -> Result<(), DhcpError> {
        let dir = self.network_dir(&config.network_id);
        create_private_dir(&dir)?;

        let host_path = dir.join("host");
        let old_hosts = fs::read_to_string(&host_path).unwrap_or_default();
        let new_hosts = hosts_file(&config.hosts);
        let hosts_changed = write_if_changed(&host_path, &new_hosts)?;
        let args = self.command_line(config, &dir);
        let args_changed = write_if_changed(&dir.join("args"), &args.join("\n"))?;

        match self.running_pid(&config.network_id) {
            Some(pid) if args_changed => {
                terminate(&config.network_id, pid)?;
                self.start(config, &args)
            }
            Some(pid) if hosts_changed => {
                // dnsmasq rereads --dhcp-hostsfile on SIGHUP.
                kill(pid, Signal::SIGHUP).map_err(|source| DhcpError::Signal {
                    network_id: config.network_id.clone(),
                    pid: pid.as_raw(),
                    source,
                })?;
                tracing::debug!(network_id = %config.network_id, pid = pid.as_raw(), "reloaded dnsmasq hosts");
                // dnsmasq keeps a removed host's lease in memory and rejects
                // the next MAC that is assigned its address. Neutron's agent
                // releases such leases the same way.
                let stale = stale_leases(&old_hosts, &new_hosts);
                if !stale.is_empty() && !self.release(config, &stale) {
                    terminate(&config.network_id, pid)?;
                    return self.start(config, &args);
                }
                Ok(())
            }
            Some(_) => Ok(()),
            None => self.start(config, &args),
        }
    }

    /// Sends dnsmasq a DHCPRELEASE for each `(mac, address)` with
    /// `dhcp_release` (Debian's `dnsmasq-utils`). Returns false when one
    /// could not be sent. The caller then restarts dnsmasq, which drops every
    /// lease and acknowledges the remaining hosts again on renewal.
    fn release(&self, config: &DhcpConfig, stale: &[(String, String)]) -> bool {
        for (mac, address) in stale {
            let outcome = Command::new("ip")
                .args(["netns", "exec", &config.namespace, DHCP_RELEASE])
                .args([&config.interface, address, mac])
                .stdin(Stdio::null())
                .output();
            match outcome {
                Ok(output) if output.status.success() => {
                    tracing::info!(network_id = %config.network_id, %mac, %address, "released DHCP lease");
                }
                Ok(output) => {
                    tracing::warn!(
                        network_id = %config.network_id, %mac, %address,
                        stderr = %String::from_utf8_lossy(&output.stderr).trim(),
                        "{DHCP_RELEASE} failed (is dnsmasq-utils installed?); restarting dnsmasq to forget the lease"
                    );
                    return false;
                }
                Err(error) => {
                    tracing::warn!(network_id = %config.network_id, %error,
                        "running {DHCP_RELEASE} failed (is dnsmasq-utils installed?); restarting dnsmasq to forget the lease");
                    return false;
                }
            }
        }
        true
    }

    fn stop_blocking(&self, network_id: &str) -> Result<(), DhcpError> {
        if let Some(pid) = self.running_pid(network_id) {
            terminate(network_id, pid)?;
            tracing::info!(network_id, pid = pid.as_raw(), "stopped dnsmasq");
        }
        let dir = self.network_dir(network_id);
        match fs::remove_dir_all(&dir) {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                Err(DhcpError::Write { path: dir, source })
            }
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl DhcpServer for Dnsmasq {
    async fn ensure_running(&self, config: &DhcpConfig) -> Result<(), DhcpError> {
        let dnsmasq = self.clone();
        let owned = config.clone();
        tokio::task::spawn_blocking(move || dnsmasq.ensure_running_blocking(&owned))
            .await
            .map_err(|source| DhcpError::Task {
                network_id: config.network_id.clone(),
                source,
            })?
    }

    async fn stop(&self, network_id: &str) -> Result<(), DhcpError> {
        let dnsmasq = self.clone();
        let owned = network_id.to_string();
        tokio::task::spawn_blocking(move || dnsmasq.stop_blocking(&owned))
            .await
            .map_err(|source| DhcpError::Task {
                network_id: network_id.to_string(),
                source,
            })?
    }
}

/// Renders dnsmasq's `--dhcp-hostsfile`: `MAC,host-<ip with dashes>.openstacklocal,IP`
/// per line, the hostname Neutron gives a port without a DNS name.
fn hosts_file(hosts: &[DhcpHost]) -> String {
    let mut text = String::new();
    for host in hosts {
        let name = host.ip.to_string().replace('.', "-");
        text.push_str(&format!(
            "{},host-{name}.openstacklocal,{}\n",
            host.mac, host.ip
        ));
    }
    text
}

/// Returns `(mac, address)` of each line of the hosts file `old` that `new`
/// no longer contains. dnsmasq must forget these leases.
fn stale_leases(old: &str, new: &str) -> Vec<(String, String)> {
    let kept: std::collections::BTreeSet<&str> = new.lines().collect();
    old.lines()
        .filter(|line| !kept.contains(line))
        .filter_map(|line| {
            let mut fields = line.split(',');
            let mac = fields.next()?;
            let address = fields.next_back()?;
            Some((mac.to_owned(), address.to_owned()))
        })
        .collect()
}

/// Creates the per-network directory readable by dnsmasq after it drops root
/// to `nobody`, because it rereads the hosts file on SIGHUP as that user.
fn create_private_dir(dir: &Path) -> Result<(), DhcpError> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir).map_err(|source| DhcpError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(|source| DhcpError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Replaces `path` atomically (temporary file, then rename) when its content
/// differs from `content`. Returns whether it changed.
fn write_if_changed(path: &Path, content: &str) -> Result<bool, DhcpError> {
    if fs::read_to_string(path).is_ok_and(|current| current == content) {
        return Ok(false);
    }
    let write_error = |source| DhcpError::Write {
        path: path.to_path_buf(),
        source,
    };
    let temporary = path.with_extension("tmp");
    let mut file = fs::File::create(&temporary).map_err(write_error)?;
    file.write_all(content.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    fs::rename(&temporary, path).map_err(write_error)?;
    Ok(true)
}

/// Returns whether `pid` is a live, non-zombie dnsmasq started with files in
/// `dir`. The check on the command line guards against a reused pid.
fn is_our_dnsmasq(pid: i32, dir: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(cmdline) = fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    let expected = format!("--pid-file={}", dir.join("pid").display());
    let matches = cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == expected.as_bytes());
    matches && !is_zombie(&proc_dir)
}

/// Returns whether the process is a zombie or gone. A daemonized dnsmasq is
/// reparented, and its zombie stays until the new parent reaps it.
fn is_zombie(proc_dir: &Path) -> bool {
    let Ok(stat) = fs::read_to_string(proc_dir.join("stat")) else {
        return true;
    };
    // The state follows the parenthesised command name, which may contain spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        == Some("Z")
}

fn terminate(network_id: &str, pid: Pid) -> Result<(), DhcpError> {
    let signal_error = |source| DhcpError::Signal {
        network_id: network_id.to_string(),
        pid: pid.as_raw(),
        source,
    };
    match kill(pid, Signal::SIGTERM) {
        Err(nix::Error::ESRCH) => return Ok(()),
        result => result.map_err(signal_error)?,
    }
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.as_raw()));
    let deadline = Instant::now() + STOP_TIMEOUT;
    while proc_dir.exists() && !is_zombie(&proc_dir) {
        if Instant::now() > deadline {
            return Err(DhcpError::StopTimedOut {
                network_id: network_id.to_string(),
                pid: pid.as_raw(),
                seconds: STOP_TIMEOUT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A change made by [`RecordingDhcp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpOp {
    Start(String),
    Reload(String),
    Restart(String),
    Stop(String),
}

#[derive(Debug, Default)]
struct FakeServers {
    running: BTreeMap<String, DhcpConfig>,
    ops: Vec<DhcpOp>,
    fail_on: Option<&'static str>,
}

/// In-memory [`DhcpServer`] that records starts, reloads, restarts and
/// stops.
#[derive(Debug, Default)]
pub struct RecordingDhcp {
    servers: Mutex<FakeServers>,
}

impl RecordingDhcp {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later `"ensure_running"` or `"stop"` call fail.
    pub fn fail_on(&self, operation: &'static str) {
        self.lock().fail_on = Some(operation);
    }

    pub fn clear_failure(&self) {
        self.lock().fail_on = None;
    }

    pub fn take_ops(&self) -> Vec<DhcpOp> {
        std::mem::take(&mut self.lock().ops)
    }

    /// Returns the configuration a network's server runs with.
    pub fn running(&self, network_id: &str) -> Option<DhcpConfig> {
        self.lock().running.get(network_id).cloned()
    }

    /// Forgets a server, as if its process died.
    pub fn kill(&self, network_id: &str) {
        self.lock().running.remove(network_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeServers> {
        self.servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl DhcpServer for RecordingDhcp {
    async fn ensure_running(&self, config: &DhcpConfig) -> Result<(), DhcpError> {
        let mut servers = self.lock();
        if servers.fail_on == Some("ensure_running") {
            return Err(DhcpError::Injected {
                operation: "ensure_running",
                network_id: config.network_id.clone(),
            });
        }
        let id = config.network_id.clone();
        let op = match servers.running.get(&id) {
            None => Some(DhcpOp::Start(id.clone())),
            Some(current) if current == config => None,
            Some(current)
                if current.hosts != config.hosts
                    && DhcpConfig {
                        hosts: config.hosts.clone(),
                        ..current.clone()
                    } == *config =>
            {
                Some(DhcpOp::Reload(id.clone()))
            }
            Some(_) => Some(DhcpOp::Restart(id.clone())),
        };
        if let Some(op) = op {
            servers.ops.push(op);
            servers.running.insert(id, config.clone());
        }
        Ok(())
    }

    async fn stop(&self, network_id: &str) -> Result<(), DhcpError> {
        let mut servers = self.lock();
        if servers.fail_on == Some("stop") {
            return Err(DhcpError::Injected {
                operation: "stop",
                network_id: network_id.to_string(),
            });
        }
        if servers.running.remove(network_id).is_some() {
            servers.ops.push(DhcpOp::Stop(network_id.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_uses_neutron_hostnames() {
        let hosts = [
            DhcpHost {
                mac: MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]),
                ip: Ipv4Addr::new(198, 18, 5, 10),
            },
            DhcpHost {
                mac: MacAddr([0xfa, 0x16, 0x3e, 0, 0, 2]),
                ip: Ipv4Addr::new(198, 18, 5, 11),
            },
        ];
        assert_eq!(
            hosts_file(&hosts),
            "fa:16:3e:00:00:01,host-198-18-5-10.openstacklocal,198.18.5.10\n\
             fa:16:3e:00:00:02,host-198-18-5-11.openstacklocal,198.18.5.11\n"
        );
    }

    #[test]
    fn stale_leases_are_removed_or_changed_lines() {
        let old = "fa:16:3e:00:00:01,host-10-0-0-3.openstacklocal,10.0.0.3\n\
                   fa:16:3e:00:00:02,host-10-0-0-4.openstacklocal,10.0.0.4\n";
        // 10.0.0.3 moved to another MAC, and 10.0.0.4 stays.
        let new = "fa:16:3e:00:00:09,host-10-0-0-3.openstacklocal,10.0.0.3\n\
                   fa:16:3e:00:00:02,host-10-0-0-4.openstacklocal,10.0.0.4\n";
        assert_eq!(
            stale_leases(old, new),
            vec![("fa:16:3e:00:00:01".to_owned(), "10.0.0.3".to_owned())]
        );
        assert!(stale_leases("", new).is_empty());
        assert_eq!(stale_leases(old, "").len(), 2);
    }

    #[test]
    fn write_if_changed_reports_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host");
        assert!(write_if_changed(&path, "a\n").unwrap());
        assert!(!write_if_changed(&path, "a\n").unwrap());
        assert!(write_if_changed(&path, "b\n").unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "b\n");
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn dhcp_range_is_static_with_mask() {
        let dnsmasq = Dnsmasq::new("/var/lib/oxstack/dhcp");
        let config = DhcpConfig {
            network_id: "net".into(),
            namespace: "qdhcp-net".into(),
            interface: "ns-port".into(),
            subnet: "198.18.5.0/24".parse().unwrap(),
            lease_seconds: 86400,
            mtu: 1450,
            hosts: Vec::new(),
            router: Some("198.18.5.1".parse().unwrap()),
            metadata_next_hop: Some("198.18.5.2".parse().unwrap()),
        };
        let args = dnsmasq.command_line(&config, Path::new("/d"));
        assert!(args.contains(&"--dhcp-option=option:router,198.18.5.1".to_string()));
        assert!(args.contains(
            &"--dhcp-option=option:classless-static-route,169.254.169.254/32,198.18.5.2,0.0.0.0/0,198.18.5.1"
                .to_string()
        ));
        let no_gateway = DhcpConfig {
            router: None,
            metadata_next_hop: None,
            ..config.clone()
        };
        let args_without = dnsmasq.command_line(&no_gateway, Path::new("/d"));
        assert!(args_without.contains(&"--dhcp-option=option:router".to_string()));
        assert!(!args_without.iter().any(|a| a.contains("classless")));
        assert!(args.contains(&"--dhcp-range=198.18.5.0,static,255.255.255.0,86400s".to_string()));
        assert!(args.contains(&"--interface=ns-port".to_string()));
        assert!(args.contains(&"--dhcp-option-force=option:mtu,1450".to_string()));
        assert!(args.contains(&"--dhcp-hostsfile=/d/host".to_string()));
    }

    #[test]
    fn foreign_pid_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let dnsmasq = Dnsmasq::new(dir.path());
        fs::create_dir_all(dir.path().join("net")).unwrap();
        // Our own pid is alive but is not a dnsmasq with this pid file.
        fs::write(dir.path().join("net/pid"), std::process::id().to_string()).unwrap();
        assert_eq!(dnsmasq.running_pid("net"), None);
    }
}
