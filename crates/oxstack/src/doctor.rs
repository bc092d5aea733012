//! `oxstack doctor`: checks the host against the configuration before
//! anything is booted, and prints each problem with the change that fixes
//! it. The checks read the host through `HostProbe`, so tests run them on
//! a fake host.

use std::path::Path;

use crate::config::Config;

/// What the checks need to know about the host.
pub trait HostProbe {
    /// True when a network interface of that name exists.
    fn interface_exists(&self, name: &str) -> bool;
    /// True when the interface is a Linux bridge.
    fn is_bridge(&self, name: &str) -> bool;
    /// True when an executable of that name is on the PATH.
    fn has_program(&self, name: &str) -> bool;
    /// True when the kernel module is loaded or built in.
    fn has_kernel_module(&self, name: &str) -> bool;
    /// True when /dev/kvm exists and can be opened for reading and writing.
    fn kvm_usable(&self) -> bool;
}

/// The real host, read from /sys, /dev and the PATH.
pub struct LinuxHost;

impl HostProbe for LinuxHost {
    fn interface_exists(&self, name: &str) -> bool {
        Path::new("/sys/class/net").join(name).exists()
    }

    fn is_bridge(&self, name: &str) -> bool {
        Path::new("/sys/class/net").join(name).join("bridge").is_dir()
    }

    fn has_program(&self, name: &str) -> bool {
        let Some(path) = std::env::var_os("PATH") else { return false };
        std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]).any(|dir| dir.join(name).is_file())
    }

    fn has_kernel_module(&self, name: &str) -> bool {
        // Loaded modules appear under /sys/module; built-in ones only when
        // they have parameters, so the module lists and the kernel's own
        // config are consulted as well.
        if Path::new("/sys/module").join(name).exists() {
            return true;
        }
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let base = Path::new("/lib/modules").join(release.trim());
        let needle = format!("/{name}.ko");
        let listed = ["modules.builtin", "modules.dep"].iter().any(|list| {
            std::fs::read_to_string(base.join(list))
                .is_ok_and(|text| text.lines().any(|line| line.split(':').next().is_some_and(|m| m.contains(&needle))))
        });
        listed || kernel_config_enables(release.trim(), name)
    }

    fn kvm_usable(&self) -> bool {
        std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
    }
}

/// True when the kernel's build configuration (/boot/config-RELEASE, or
/// /proc/config.gz through `zcat`) builds in or modularises the feature.
fn kernel_config_enables(release: &str, module: &str) -> bool {
    let symbol = match module {
        "bridge" => "CONFIG_BRIDGE",
        "vxlan" => "CONFIG_VXLAN",
        "tun" => "CONFIG_TUN",
        "veth" => "CONFIG_VETH",
        "nf_tables" => "CONFIG_NF_TABLES",
        _ => return false,
    };
    let text = std::fs::read_to_string(format!("/boot/config-{release}")).ok().or_else(|| {
        let output = std::process::Command::new("zcat").arg("/proc/config.gz").output().ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    });
    text.is_some_and(|text| text.lines().any(|line| line == format!("{symbol}=y") || line == format!("{symbol}=m")))
}

/// One finding: what is wrong and how to fix it.
#[derive(Debug, PartialEq, Eq)]
pub struct Problem {
    pub check: &'static str,
    pub message: String,
    pub fix: String,
}

/// Runs every check and returns the problems found, plus notes that are
/// not problems (such as KVM being absent where software emulation works).
pub fn check(config: &Config, host: &dyn HostProbe) -> (Vec<Problem>, Vec<String>) {
    let mut problems = Vec::new();
    let mut notes = Vec::new();

    for mapping in &config.netagent.bridge_mappings {
        let Some((physnet, bridge)) = mapping.split_once(':').filter(|(p, b)| !p.is_empty() && !b.is_empty()) else {
            problems.push(Problem {
                check: "bridge_mappings",
                message: format!("bridge mapping '{mapping}' is not PHYSNET:BRIDGE"),
                fix: "write each entry of bridge_mappings in [netagent] as physnet1:br-ex".into(),
            });
            continue;
        };
        if !host.interface_exists(bridge) {
            problems.push(Problem {
                check: "bridge_mappings",
                message: format!("bridge {bridge} for physical network {physnet} does not exist on this host"),
                fix: format!("create it (`ip link add {bridge} type bridge && ip link set {bridge} up`) and add the physical interface to it, or change the mapping"),
            });
        } else if !host.is_bridge(bridge) {
            problems.push(Problem {
                check: "bridge_mappings",
                message: format!("{bridge}, mapped to physical network {physnet}, is an interface but not a bridge"),
                fix: format!("map {physnet} to a Linux bridge that contains {bridge}, e.g. `{physnet}:br-{physnet}`"),
            });
        }
    }
    if config.netagent.bridge_mappings.is_empty() {
        notes.push("no bridge_mappings in [netagent]: flat and VLAN networks cannot be bound on this host; VXLAN networks can".into());
    }

    for (program, package, purpose) in [
        ("dnsmasq", "dnsmasq-base", "DHCP for tenant networks"),
        ("nft", "nftables", "security groups, SNAT and floating IPs"),
        ("ip", "iproute2", "network namespaces"),
        ("qemu-system-x86_64", "qemu-system-x86", "running servers with the qemu driver"),
        ("qemu-img", "qemu-utils", "disk overlays and image conversion"),
    ] {
        if !host.has_program(program) {
            problems.push(Problem {
                check: "programs",
                message: format!("{program} is missing; it is needed for {purpose}"),
                fix: format!("apt-get install {package}"),
            });
        }
    }

    for (module, purpose) in [
        ("bridge", "one bridge per network"),
        ("vxlan", "VXLAN tenant networks"),
        ("tun", "tap devices for servers"),
        ("veth", "namespace links for DHCP and routers"),
        ("nf_tables", "security groups and NAT"),
    ] {
        if !host.has_kernel_module(module) {
            problems.push(Problem {
                check: "kernel modules",
                message: format!("kernel module {module} is not available; it is needed for {purpose}"),
                fix: format!("`modprobe {module}`, or install the kernel package that provides it"),
            });
        }
    }

    if host.kvm_usable() {
        notes.push("/dev/kvm is usable: virt_type auto will use KVM (on nested hosts it can be slower than qemu; set virt_type = \"qemu\" then)".into());
    } else {
        notes.push("/dev/kvm is not usable: virt_type auto will use software emulation (qemu), which works but runs guests slowly".into());
    }
    (problems, notes)
}

/// Runs the checks on this host, prints the report and fails when any
/// problem was found.
pub fn run(config: &Config) -> anyhow::Result<()> {
    let (problems, notes) = check(config, &LinuxHost);
    for note in &notes {
        println!("note: {note}");
    }
    for problem in &problems {
        println!("problem ({}): {}\n  fix: {}", problem.check, problem.message, problem.fix);
    }
    if problems.is_empty() {
        println!("oxstack doctor: no problems found");
        return Ok(());
    }
    anyhow::bail!("{} problem(s) found; fix them and run `oxstack doctor` again", problems.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NetAgentConfig;
    use std::collections::HashSet;

    #[derive(Default)]
    struct FakeHost {
        interfaces: HashSet<&'static str>,
        bridges: HashSet<&'static str>,
        programs: HashSet<&'static str>,
        modules: HashSet<&'static str>,
        kvm: bool,
    }

    impl FakeHost {
        fn complete() -> Self {
            FakeHost {
                interfaces: ["br-ex"].into(),
                bridges: ["br-ex"].into(),
                programs: ["dnsmasq", "nft", "ip", "qemu-system-x86_64", "qemu-img"].into(),
                modules: ["bridge", "vxlan", "tun", "veth", "nf_tables"].into(),
                kvm: false,
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
        fn kvm_usable(&self) -> bool {
            self.kvm
        }
    }

    fn config_with(mappings: &[&str]) -> Config {
        Config {
            netagent: NetAgentConfig { bridge_mappings: mappings.iter().map(|m| m.to_string()).collect(), ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn complete_host_has_no_problems() {
        let (problems, notes) = check(&config_with(&["physnet1:br-ex"]), &FakeHost::complete());
        assert_eq!(problems, vec![]);
        assert!(notes.iter().any(|n| n.contains("software emulation")), "{notes:?}");
    }

    #[test]
    fn missing_bridge_names_physnet_and_fix() {
        let (problems, _) = check(&config_with(&["physnet1:br-missing"]), &FakeHost::complete());
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("br-missing") && problems[0].message.contains("physnet1"));
        assert!(problems[0].fix.contains("ip link add br-missing type bridge"));
    }

    #[test]
    fn interface_that_is_not_a_bridge_is_reported() {
        let mut host = FakeHost::complete();
        host.interfaces.insert("eth1");
        let (problems, _) = check(&config_with(&["physnet1:eth1"]), &host);
        assert!(problems[0].message.contains("not a bridge"), "{problems:?}");
    }

    #[test]
    fn malformed_mapping_is_reported() {
        let (problems, _) = check(&config_with(&["physnet1"]), &FakeHost::complete());
        assert!(problems[0].message.contains("PHYSNET:BRIDGE"), "{problems:?}");
    }

    #[test]
    fn missing_programs_and_modules_name_packages() {
        let host = FakeHost { kvm: true, ..Default::default() };
        let (problems, notes) = check(&config_with(&[]), &host);
        assert!(problems.iter().any(|p| p.fix == "apt-get install dnsmasq-base"));
        assert!(problems.iter().any(|p| p.message.contains("vxlan")));
        assert!(notes.iter().any(|n| n.contains("KVM")));
    }
}
