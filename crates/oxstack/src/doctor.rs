//! `oxstack doctor`: checks the host against the configuration before
//! anything is booted, and prints each problem with the change that fixes
//! it. The checks read the host through `HostProbe`, so tests run them on
//! a fake host. The networks already in the database are checked against
//! this host's `bridge_mappings` with the port binding's own rule, so a
//! flat or VLAN network that no server could be plugged into is reported
//! before a boot fails with `PortBindingFailed`.

use std::path::{Path, PathBuf};

use oxstack_hypervisor::VirtType;
use oxstack_network::agents::{Agent, LINUX_BRIDGE_AGENT};
use oxstack_network::model::{Network, NetworkType};

use crate::config::{Config, DataplaneKind, DriverKind};

/// The sysctl that sends bridged IPv4 packets through the netfilter hooks.
/// Without it, security group rules never match traffic between two ports on
/// one bridge.
const BRIDGE_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";
/// The device QEMU opens to create a server's tap.
const TUN_DEVICE: &str = "/dev/net/tun";

/// The host facts that the checks read.
pub trait HostProbe {
    /// Returns whether a network interface of that name exists.
    fn interface_exists(&self, name: &str) -> bool;
    /// Returns whether the interface is a Linux bridge.
    fn is_bridge(&self, name: &str) -> bool;
    /// Returns whether an executable of that name is on the PATH.
    fn has_program(&self, name: &str) -> bool;
    /// Returns whether the kernel module is loaded, built in, or installed so
    /// that `modprobe` can load it.
    fn has_kernel_module(&self, name: &str) -> bool;
    /// Returns whether the kernel module is loaded or built in right now.
    fn kernel_module_loaded(&self, name: &str) -> bool;
    /// Returns the trimmed content of a file under /proc or /sys, or `None`
    /// when it does not exist.
    fn read_setting(&self, path: &str) -> Option<String>;
    /// Returns whether the file or device exists.
    fn path_exists(&self, path: &str) -> bool;
    /// Checks that QEMU at `qemu_binary` can run a guest on KVM. Returns the
    /// reason when it cannot.
    fn kvm_check(&self, qemu_binary: &Path) -> Result<(), String>;
}

/// The real host, read from /sys, /proc, /dev and the PATH.
pub struct LinuxHost;

impl HostProbe for LinuxHost {
    fn interface_exists(&self, name: &str) -> bool {
        Path::new("/sys/class/net").join(name).exists()
    }

    fn is_bridge(&self, name: &str) -> bool {
        Path::new("/sys/class/net")
            .join(name)
            .join("bridge")
            .is_dir()
    }

    fn has_program(&self, name: &str) -> bool {
        let Some(path) = std::env::var_os("PATH") else {
            return false;
        };
        std::env::split_paths(&path)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .any(|dir| dir.join(name).is_file())
    }

    fn has_kernel_module(&self, name: &str) -> bool {
        // Loaded modules appear under /sys/module, but built-in ones appear
        // there only when they have parameters. So the module lists and the
        // kernel's own config are read as well.
        if self.kernel_module_loaded(name) {
            return true;
        }
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let base = Path::new("/lib/modules").join(release.trim());
        let needle = format!("/{name}.ko");
        let listed = ["modules.builtin", "modules.dep"].iter().any(|list| {
            std::fs::read_to_string(base.join(list)).is_ok_and(|text| {
                text.lines()
                    .any(|line| line.split(':').next().is_some_and(|m| m.contains(&needle)))
            })
        });
        listed || kernel_config_enables(release.trim(), name)
    }

    fn kernel_module_loaded(&self, name: &str) -> bool {
        Path::new("/sys/module").join(name).exists()
    }

    fn read_setting(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(path)
            .ok()
            .map(|text| text.trim().to_owned())
    }

    fn path_exists(&self, path: &str) -> bool {
        Path::new(path).exists()
    }

    fn kvm_check(&self, qemu_binary: &Path) -> Result<(), String> {
        // Resolving `kvm` (unlike `auto`) fails with the reason. It runs the
        // same probe as the QEMU driver, because nested KVM can open /dev/kvm
        // and still fail to run a guest with `-cpu host`.
        VirtType::Kvm
            .resolve(qemu_binary)
            .map(drop)
            .map_err(|error| kvm_reason(&error.to_string()))
    }
}

/// Returns the reason in the QEMU driver's error for `virt_type = "kvm"`
/// ("virt_type is kvm but REASON; FIX"), because the doctor states its own
/// fix for each virt_type. Any other text is returned whole.
fn kvm_reason(message: &str) -> String {
    let reason = message
        .strip_prefix("virt_type is kvm but ")
        .unwrap_or(message);
    match reason.rfind("; enable hardware virtualisation") {
        Some(end) => reason[..end].to_owned(),
        None => reason.to_owned(),
    }
}

/// Returns whether the kernel's build configuration (/boot/config-RELEASE, or
/// /proc/config.gz through `zcat`) builds in or modularises the feature.
fn kernel_config_enables(release: &str, module: &str) -> bool {
    let symbol = match module {
        "bridge" => "CONFIG_BRIDGE",
        "br_netfilter" => "CONFIG_BRIDGE_NETFILTER",
        "vxlan" => "CONFIG_VXLAN",
        "tun" => "CONFIG_TUN",
        "veth" => "CONFIG_VETH",
        "nf_tables" => "CONFIG_NF_TABLES",
        _ => return false,
    };
    let text = std::fs::read_to_string(format!("/boot/config-{release}"))
        .ok()
        .or_else(|| {
            let output = std::process::Command::new("zcat")
                .arg("/proc/config.gz")
                .output()
                .ok()?;
            output
                .status
                .success()
                .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
        });
    text.is_some_and(|text| {
        text.lines()
            .any(|line| line == format!("{symbol}=y") || line == format!("{symbol}=m"))
    })
}

/// A problem that a check found, with the change that fixes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Problem {
    pub check: &'static str,
    pub message: String,
    pub fix: String,
}

/// The findings of one run: problems, and notes that are not problems (such
/// as KVM being absent where software emulation works).
#[derive(Debug, Default)]
pub struct Findings {
    pub problems: Vec<Problem>,
    pub notes: Vec<String>,
}

impl Findings {
    fn problem(&mut self, check: &'static str, message: String, fix: String) {
        self.problems.push(Problem {
            check,
            message,
            fix,
        });
    }
}

/// Runs every check of the host and returns the findings.
pub fn check(config: &Config, host: &dyn HostProbe) -> Findings {
    let mut findings = Findings::default();
    check_bridge_mappings(config, host, &mut findings);
    if config.netagent.dataplane == Some(DataplaneKind::None) {
        findings.notes.push(
            "[netagent] dataplane is none: nothing plugs networks into this host, so dnsmasq, nftables and \
             the kernel modules are not checked"
                .into(),
        );
    } else {
        check_dataplane(host, &mut findings);
    }
    match config.hypervisor.driver {
        DriverKind::Qemu => check_qemu(config, host, &mut findings),
        DriverKind::Fake => findings.notes.push(
            "[hypervisor] driver is fake: servers are not run, so QEMU and KVM are not checked"
                .into(),
        ),
    }
    findings
}

fn check_bridge_mappings(config: &Config, host: &dyn HostProbe, findings: &mut Findings) {
    for mapping in &config.netagent.bridge_mappings {
        let Some((physnet, bridge)) = mapping
            .split_once(':')
            .filter(|(p, b)| !p.is_empty() && !b.is_empty())
        else {
            findings.problem(
                "bridge_mappings",
                format!("bridge mapping '{mapping}' is not PHYSNET:BRIDGE"),
                "write each entry of bridge_mappings in [netagent] as physnet1:br-ex".into(),
            );
            continue;
        };
        if !host.interface_exists(bridge) {
            findings.problem(
                "bridge_mappings",
                format!("bridge {bridge} for physical network {physnet} does not exist on this host"),
                format!("create it (`ip link add {bridge} type bridge && ip link set {bridge} up`) and add the physical interface to it, or change the mapping"),
            );
        } else if !host.is_bridge(bridge) {
            findings.problem(
                "bridge_mappings",
                format!("{bridge}, mapped to physical network {physnet}, is an interface but not a bridge"),
                format!("map {physnet} to a Linux bridge that contains {bridge}, e.g. `{physnet}:br-{physnet}`"),
            );
        }
    }
    if config.netagent.bridge_mappings.is_empty() {
        findings.notes.push(
            "no bridge_mappings in [netagent]: flat and VLAN networks cannot be bound on this host; VXLAN networks can"
                .into(),
        );
    }
}

fn check_dataplane(host: &dyn HostProbe, findings: &mut Findings) {
    for (program, package, purpose) in [
        ("dnsmasq", "dnsmasq-base", "DHCP for tenant networks"),
        ("nft", "nftables", "security groups, SNAT and floating IPs"),
        ("ip", "iproute2", "network namespaces"),
    ] {
        if !host.has_program(program) {
            findings.problem(
                "programs",
                format!("{program} is missing; it is needed for {purpose}"),
                format!("apt-get install {package}"),
            );
        }
    }

    if !host.has_program("dhcp_release") {
        findings.notes.push(
            "dhcp_release is missing (apt-get install dnsmasq-utils): when a deleted port's address goes to a new \
             port, dnsmasq is restarted to forget the old lease instead of releasing that one lease"
                .into(),
        );
    }

    for (module, purpose) in [
        ("bridge", "one bridge per network"),
        (
            "br_netfilter",
            "security groups between ports on one bridge",
        ),
        ("vxlan", "VXLAN tenant networks"),
        ("tun", "tap devices for servers"),
        ("veth", "namespace links for DHCP and routers"),
        ("nf_tables", "security groups and NAT"),
    ] {
        if !host.has_kernel_module(module) {
            findings.problem(
                "kernel modules",
                format!("kernel module {module} is not available; it is needed for {purpose}"),
                format!("`modprobe {module}`, or install the kernel package that provides it (linux-modules-extra on some distributions)"),
            );
        }
    }

    // The network agent loads br_netfilter and sets the sysctl when it
    // starts as root, so these are notes with the command that does it.
    // The sysctl exists only while br_netfilter is active, which also
    // covers kernels that build it in without listing it in /sys/module.
    if host.kernel_module_loaded("br_netfilter")
        || host.read_setting(BRIDGE_NF_CALL_IPTABLES).is_some()
    {
        match host.read_setting(BRIDGE_NF_CALL_IPTABLES).as_deref() {
            Some("1") => {}
            value => findings.notes.push(format!(
                "net.bridge.bridge-nf-call-iptables is {}; security groups need 1. The network agent sets it when it \
                 starts as root; otherwise run `sysctl -w net.bridge.bridge-nf-call-iptables=1 \
                 net.bridge.bridge-nf-call-ip6tables=1`",
                value.unwrap_or("missing")
            )),
        }
    } else if host.has_kernel_module("br_netfilter") {
        findings.notes.push(
            "br_netfilter is not loaded; the network agent loads it and sets net.bridge.bridge-nf-call-iptables=1 \
             when it starts as root"
                .into(),
        );
    }

    if !host.path_exists(TUN_DEVICE) {
        findings.problem(
            "devices",
            format!("{TUN_DEVICE} does not exist; servers' tap devices are created through it"),
            format!(
                "`modprobe tun`; in a container, create the device (`mkdir -p /dev/net && mknod {TUN_DEVICE} c 10 200`) \
                 or pass the host's {TUN_DEVICE} in"
            ),
        );
    }
}

fn check_qemu(config: &Config, host: &dyn HostProbe, findings: &mut Findings) {
    let qemu_binary = config
        .hypervisor
        .qemu_binary
        .clone()
        .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64"));
    let qemu_name = qemu_binary.display().to_string();
    let qemu_present = if qemu_binary.components().count() > 1 {
        host.path_exists(&qemu_name)
    } else {
        host.has_program(&qemu_name)
    };
    if !qemu_present {
        findings.problem(
            "programs",
            format!("{qemu_name} is missing; it runs servers with the qemu driver"),
            "apt-get install qemu-system-x86, or set qemu_binary in [hypervisor]".into(),
        );
    }
    for (program, package, purpose) in [
        (
            "qemu-img",
            "qemu-utils",
            "disk overlays and image conversion",
        ),
        ("genisoimage", "genisoimage", "config drives"),
    ] {
        if !host.has_program(program) {
            findings.problem(
                "programs",
                format!("{program} is missing; it is needed for {purpose}"),
                format!("apt-get install {package}"),
            );
        }
    }
    if !qemu_present {
        return;
    }

    let virt_type: VirtType = match config.hypervisor.virt_type.parse() {
        Ok(virt_type) => virt_type,
        Err(error) => {
            findings.problem(
                "hypervisor",
                format!("[hypervisor] virt_type: {error}"),
                "set virt_type to auto, kvm or qemu".into(),
            );
            return;
        }
    };
    if virt_type == VirtType::Qemu {
        findings.notes.push(
            "virt_type is qemu: servers run under software emulation (TCG); KVM is not checked"
                .into(),
        );
        return;
    }
    match host.kvm_check(&qemu_binary) {
        Ok(()) => findings.notes.push(
            "KVM is usable: servers run with hardware virtualisation unless `oxstack up --virt-type qemu` \
             requests software emulation"
                .into(),
        ),
        Err(reason) if virt_type == VirtType::Auto => findings.notes.push(format!(
            "KVM is not usable, so virt_type auto runs servers under software emulation (TCG), which works but \
             slowly: {reason}"
        )),
        Err(reason) => findings.problem(
            "hypervisor",
            format!("KVM is not usable: {reason}"),
            "enable hardware virtualisation and load the kvm module, give this user access to /dev/kvm, or set \
             virt_type to auto or qemu in [hypervisor]"
                .into(),
        ),
    }
}

/// Checks each network of `networks` against this host's network agent as
/// `[netagent]` configures it, with the rule that port binding applies.
/// Reports each network that no port could be bound to here. In practice
/// these are flat and VLAN networks whose physical network has no bridge
/// mapping.
pub fn check_networks(config: &Config, networks: &[Network], findings: &mut Findings) {
    // A malformed mapping is already a problem of its own.
    let Ok(configurations) = crate::agent::agent_config(config) else {
        return;
    };
    let host = crate::agent::host_name(config);
    let agent = Agent {
        id: String::new(),
        host: host.clone(),
        agent_type: LINUX_BRIDGE_AGENT.to_owned(),
        binary: oxstack_network::agents::AGENT_BINARY.to_owned(),
        topic: "N/A".to_owned(),
        admin_state_up: true,
        configurations,
        started_at: 0,
        heartbeat_at: 0,
        created_at: 0,
    };
    for network in networks {
        let Err(reason) =
            oxstack_network::binding::check_host(Some(&agent), &host, network, 0, i64::MAX)
        else {
            continue;
        };
        let physnet = network
            .segment
            .physical_network
            .as_deref()
            .unwrap_or_default();
        let fix = match network.segment.network_type {
            NetworkType::Flat | NetworkType::Vlan => format!(
                "set `bridge_mappings = [\"{physnet}:br-ex\"]` in the [netagent] section, where br-ex is a Linux \
                 bridge on {host} that reaches {physnet} (`ip link add br-ex type bridge`, then add the uplink \
                 interface to it), and restart oxstack"
            ),
            NetworkType::Vxlan => "set `tunneling_ip` in the [netagent] section and restart oxstack".into(),
        };
        findings.problem(
            "networks",
            format!(
                "servers on network {} ({}) would fail with PortBindingFailed: {reason}",
                network.name, network.id
            ),
            fix,
        );
    }
}

/// The outcome of reading the stored networks.
enum StoredNetworks {
    Read(Vec<Network>),
    /// The SQLite file does not exist yet.
    NoDatabase(PathBuf),
}

/// Reads the networks from the database `config` names, without creating
/// or migrating it. A SQLite file is opened read-only.
async fn read_networks(config: &Config) -> anyhow::Result<StoredNetworks> {
    let url = config.database_url();
    let url = match url.strip_prefix("sqlite://") {
        Some(path) => {
            let file = PathBuf::from(path.split('?').next().unwrap_or(path));
            if !file.exists() {
                return Ok(StoredNetworks::NoDatabase(file));
            }
            if url.contains('?') {
                url
            } else {
                format!("{url}?mode=ro")
            }
        }
        None => url,
    };
    let store = oxstack_store::Store::connect(&url).await?;
    let networks = oxstack_network::db::networks::list(store.pool()).await;
    store.close().await;
    Ok(StoredNetworks::Read(networks?))
}

/// Checks the host and the stored networks.
pub async fn diagnose(config: &Config, host: &dyn HostProbe) -> Findings {
    let mut findings = check(config, host);
    match read_networks(config).await {
        Ok(StoredNetworks::Read(networks)) => check_networks(config, &networks, &mut findings),
        Ok(StoredNetworks::NoDatabase(file)) => findings.notes.push(format!(
            "no database at {} yet, so no networks were checked; run `oxstack doctor` again after `oxstack up`",
            file.display()
        )),
        Err(error) => findings.problem(
            "networks",
            format!("reading the networks from {} failed: {error:#}", redacted(&config.database_url())),
            "check database_url in [server] (or --data-dir), and that oxstack up has created the database".into(),
        ),
    }
    findings
}

/// Returns `url` without its password.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

/// Formats the findings as `oxstack doctor` prints them.
pub fn format_report(findings: &Findings) -> String {
    let mut report = String::new();
    for note in &findings.notes {
        report.push_str(&format!("note: {note}\n"));
    }
    for problem in &findings.problems {
        report.push_str(&format!(
            "problem ({}): {}\n  fix: {}\n",
            problem.check, problem.message, problem.fix
        ));
    }
    if findings.problems.is_empty() {
        report.push_str("oxstack doctor: no problems found\n");
    }
    report
}

/// Runs the checks on this host, prints the report and fails when any
/// problem was found.
pub fn run(config: &Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let findings = runtime.block_on(diagnose(config, &LinuxHost));
    print!("{}", format_report(&findings));
    if findings.problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "{} problem(s) found; fix them and run `oxstack doctor` again",
        findings.problems.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HypervisorConfig, NetAgentConfig, ServerConfig};
    use crate::testing::TestNetworks;
    use serde_json::json;
    use std::collections::HashSet;

    struct FakeHost {
        interfaces: HashSet<&'static str>,
        bridges: HashSet<&'static str>,
        programs: HashSet<&'static str>,
        modules: HashSet<&'static str>,
        loaded: HashSet<&'static str>,
        paths: HashSet<&'static str>,
        bridge_nf_call_iptables: Option<&'static str>,
        kvm: Result<(), String>,
    }

    impl FakeHost {
        fn complete() -> Self {
            FakeHost {
                interfaces: ["br-ex"].into(),
                bridges: ["br-ex"].into(),
                programs: [
                    "dnsmasq",
                    "nft",
                    "ip",
                    "qemu-system-x86_64",
                    "qemu-img",
                    "genisoimage",
                    "dhcp_release",
                ]
                .into(),
                modules: [
                    "bridge",
                    "br_netfilter",
                    "vxlan",
                    "tun",
                    "veth",
                    "nf_tables",
                ]
                .into(),
                loaded: ["bridge", "br_netfilter"].into(),
                paths: [TUN_DEVICE].into(),
                bridge_nf_call_iptables: Some("1"),
                kvm: Err("a KVM test guest failed: failed to set MSR 0x10a".into()),
            }
        }

        fn empty() -> Self {
            FakeHost {
                interfaces: HashSet::new(),
                bridges: HashSet::new(),
                programs: HashSet::new(),
                modules: HashSet::new(),
                loaded: HashSet::new(),
                paths: HashSet::new(),
                bridge_nf_call_iptables: None,
                kvm: Err("/dev/kvm cannot be opened read-write".into()),
            }
        }
    }

    impl HostProbe for FakeHost {
        fn interface_exists(&self, name: &str) -> bool {
            self.interfaces.contains(name)
        }
        fn is_bridge(&self, name: &str) -> bool {
            self.bridges.contains(name)
        }
        fn has_program(&self, name: &str) -> bool {
            self.programs.contains(name)
        }
        fn has_kernel_module(&self, name: &str) -> bool {
            self.modules.contains(name)
        }
        fn kernel_module_loaded(&self, name: &str) -> bool {
            self.loaded.contains(name)
        }
        fn read_setting(&self, path: &str) -> Option<String> {
            (path == BRIDGE_NF_CALL_IPTABLES)
                .then_some(self.bridge_nf_call_iptables)
                .flatten()
                .map(str::to_owned)
        }
        fn path_exists(&self, path: &str) -> bool {
            self.paths.contains(path)
        }
        fn kvm_check(&self, _qemu_binary: &Path) -> Result<(), String> {
            self.kvm.clone()
        }
    }

    fn config_with(mappings: &[&str]) -> Config {
        Config {
            netagent: NetAgentConfig {
                bridge_mappings: mappings.iter().map(|m| m.to_string()).collect(),
                host: Some("node1".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn complete_host_has_no_problems() {
        let findings = check(&config_with(&["physnet1:br-ex"]), &FakeHost::complete());
        assert_eq!(findings.problems, vec![]);
        assert!(
            findings
                .notes
                .iter()
                .any(|n| n.contains("software emulation")),
            "{:?}",
            findings.notes
        );
        assert!(
            findings.notes.iter().any(|n| n.contains("MSR 0x10a")),
            "{:?}",
            findings.notes
        );
    }

    #[test]
    fn missing_bridge_names_physnet_and_fix() {
        let findings = check(
            &config_with(&["physnet1:br-missing"]),
            &FakeHost::complete(),
        );
        assert_eq!(findings.problems.len(), 1);
        let message = &findings.problems[0].message;
        assert!(message.contains("br-missing"), "{message}");
        assert!(message.contains("physnet1"), "{message}");
        assert!(findings.problems[0]
            .fix
            .contains("ip link add br-missing type bridge"));
    }

    #[test]
    fn non_bridge_interface_is_reported() {
        let mut host = FakeHost::complete();
        host.interfaces.insert("eth1");
        let findings = check(&config_with(&["physnet1:eth1"]), &host);
        assert!(
            findings.problems[0].message.contains("not a bridge"),
            "{:?}",
            findings.problems
        );
    }

    #[test]
    fn malformed_mapping_is_reported() {
        let findings = check(&config_with(&["physnet1"]), &FakeHost::complete());
        assert!(
            findings.problems[0].message.contains("PHYSNET:BRIDGE"),
            "{:?}",
            findings.problems
        );
    }

    #[test]
    fn missing_programs_and_modules_name_packages() {
        let findings = check(&config_with(&[]), &FakeHost::empty());
        let fixes: Vec<&str> = findings.problems.iter().map(|p| p.fix.as_str()).collect();
        for package in ["dnsmasq-base", "nftables", "qemu-utils", "genisoimage"] {
            assert!(
                fixes.contains(&format!("apt-get install {package}").as_str()),
                "{package}: {fixes:?}"
            );
        }
        assert!(
            findings
                .notes
                .iter()
                .any(|note| note.contains("dnsmasq-utils")),
            "{:?}",
            findings.notes
        );
        assert!(findings
            .problems
            .iter()
            .any(|p| p.message.contains("qemu-system-x86_64")));
        for module in ["vxlan", "br_netfilter", "nf_tables"] {
            assert!(
                findings
                    .problems
                    .iter()
                    .any(|p| p.message.contains(&format!("kernel module {module} "))),
                "{module}: {:?}",
                findings.problems
            );
        }
        let tun = findings
            .problems
            .iter()
            .find(|p| p.message.contains(TUN_DEVICE))
            .expect("tun problem");
        assert!(tun.fix.contains("mknod"), "{}", tun.fix);
    }

    #[test]
    fn kvm_reason_drops_driver_fix() {
        let message = "virt_type is kvm but QEMU cannot run a KVM guest with -cpu host (signal: 6): failed to set \
                       MSR 0x10a; enable hardware virtualisation and load the kvm module, or set virt_type to qemu";
        assert_eq!(
            kvm_reason(message),
            "QEMU cannot run a KVM guest with -cpu host (signal: 6): failed to set MSR 0x10a"
        );
        assert_eq!(kvm_reason("other failure"), "other failure");
    }

    #[test]
    fn bridge_netfilter_sysctl_off_is_noted() {
        let mut host = FakeHost::complete();
        host.bridge_nf_call_iptables = Some("0");
        let findings = check(&config_with(&[]), &host);
        let note = findings
            .notes
            .iter()
            .find(|n| n.contains("bridge-nf-call-iptables is 0"))
            .unwrap_or_else(|| panic!("no sysctl note in {:?}", findings.notes));
        assert!(note.contains("sysctl -w"), "{note}");
    }

    #[test]
    fn built_in_br_netfilter_not_noted() {
        let mut host = FakeHost::complete();
        host.loaded.remove("br_netfilter");
        let findings = check(&config_with(&[]), &host);
        assert!(
            !findings
                .notes
                .iter()
                .any(|n| n.contains("br_netfilter is not loaded")),
            "{:?}",
            findings.notes
        );
    }

    #[test]
    fn required_unusable_kvm_is_problem() {
        let mut config = config_with(&[]);
        config.hypervisor = HypervisorConfig {
            virt_type: "kvm".into(),
            ..Default::default()
        };
        let findings = check(&config, &FakeHost::complete());
        let kvm = findings
            .problems
            .iter()
            .find(|p| p.check == "hypervisor")
            .expect("KVM problem");
        assert!(kvm.message.contains("MSR 0x10a"), "{}", kvm.message);
        assert!(kvm.fix.contains("virt_type"), "{}", kvm.fix);
    }

    #[test]
    fn fake_driver_without_dataplane_skips_checks() {
        let mut config = config_with(&[]);
        config.hypervisor.driver = DriverKind::Fake;
        config.netagent.dataplane = Some(DataplaneKind::None);
        let findings = check(&config, &FakeHost::empty());
        assert_eq!(findings.problems, vec![]);
    }

    /// Builds a config whose database is the one `networks` runs on.
    fn config_on(networks: &TestNetworks, mappings: &[&str]) -> Config {
        let mut config = config_with(mappings);
        config.server = ServerConfig {
            data_dir: Some(networks.dir.path().to_owned()),
            ..Default::default()
        };
        config.server.database_url = Some(format!(
            "sqlite://{}/test.db",
            networks.dir.path().display()
        ));
        config
    }

    #[tokio::test]
    async fn unmapped_flat_network_reported_with_fix() {
        let networks = TestNetworks::start(Default::default()).await;
        let body = json!({"name": "public", "router:external": true, "provider:network_type": "flat",
                          "provider:physical_network": "physnet1"});
        networks
            .admin
            .create("networks", "network", body)
            .await
            .unwrap();
        networks
            .network("demo", "private", "10.0.0.0/24", json!({}))
            .await;

        let findings = diagnose(&config_on(&networks, &[]), &FakeHost::complete()).await;
        let report = format_report(&findings);
        let network_problems: Vec<&Problem> = findings
            .problems
            .iter()
            .filter(|p| p.check == "networks")
            .collect();
        assert_eq!(network_problems.len(), 1, "{report}");
        for expected in [
            "public",
            "physnet1",
            "node1",
            "PortBindingFailed",
            "bridge_mappings",
            "physnet1:br-ex",
        ] {
            assert!(
                report.contains(expected),
                "{expected} missing from:\n{report}"
            );
        }
    }

    #[tokio::test]
    async fn mapped_flat_network_is_not_reported() {
        let networks = TestNetworks::start(Default::default()).await;
        let body = json!({"name": "public", "provider:network_type": "flat",
                          "provider:physical_network": "physnet1"});
        networks
            .admin
            .create("networks", "network", body)
            .await
            .unwrap();

        let findings = diagnose(
            &config_on(&networks, &["physnet1:br-ex"]),
            &FakeHost::complete(),
        )
        .await;
        assert_eq!(findings.problems, vec![], "{}", format_report(&findings));
    }

    #[tokio::test]
    async fn missing_database_is_noted_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_with(&[]);
        config.server.data_dir = Some(dir.path().to_owned());
        let findings = diagnose(&config, &FakeHost::complete()).await;
        assert_eq!(findings.problems, vec![]);
        assert!(
            findings.notes.iter().any(|n| n.contains("no database")),
            "{:?}",
            findings.notes
        );
        assert!(!dir.path().join("oxstack.db").exists());
    }
}
