//! Tests of the Linux dataplane and dnsmasq on the real host: a VXLAN device
//! in a bridge, and a full network whose two client namespaces lease their
//! addresses from dnsmasq and ping each other.
//!
//! Needs root, `ip` (iproute2), `dnsmasq` and `busybox` (for udhcpc and ping).
//! Every name it creates carries a random `oxt…` tag, and a drop guard removes
//! them even when an assertion fails.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use oxstack_netagent::{
    Dataplane, DesiredState, Dnsmasq, LinuxDataplane, MacAddr, NetworkSpec, PortSpec, Reconciler,
    SubnetSpec,
};
use rand::Rng;

/// Upper bound on every external command, in seconds.
const COMMAND_TIMEOUT_SECONDS: u32 = 30;

fn run(program: &str, args: &[&str]) -> Output {
    let timeout = COMMAND_TIMEOUT_SECONDS.to_string();
    let mut full = vec![timeout.as_str(), program];
    full.extend_from_slice(args);
    Command::new("timeout")
        .args(&full)
        .output()
        .unwrap_or_else(|error| panic!("running {program} {args:?} failed: {error}"))
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?} exited with {}: {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Removes everything a test may have created: its dnsmasq, then namespaces, then links.
struct Cleanup {
    namespaces: Vec<String>,
    links: Vec<String>,
    pid_file: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let is_dnsmasq = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "dnsmasq");
            if is_dnsmasq {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for namespace in &self.namespaces {
            if Path::new("/run/netns").join(namespace).exists() {
                let _ = run("ip", &["netns", "del", namespace]);
            }
        }
        for link in &self.links {
            if Path::new("/sys/class/net").join(link).exists() {
                let _ = run("ip", &["link", "del", link]);
            }
        }
    }
}

fn random_mac(rng: &mut impl Rng) -> MacAddr {
    MacAddr([0xfa, 0x16, 0x3e, rng.gen(), rng.gen(), rng.gen()])
}

/// Runs udhcpc once in `namespace` and returns the address it was offered.
fn lease_address(namespace: &str, interface: &str, script: &Path) -> Ipv4Addr {
    let script = script.to_str().unwrap();
    let output = run_ok(
        "ip",
        &[
            "netns", "exec", namespace, "busybox", "udhcpc", "-f", "-q", "-n", "-t", "5", "-T",
            "2", "-i", interface, "-s", script,
        ],
    );
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix("LEASE "))
        .unwrap_or_else(|| panic!("udhcpc printed no lease: {output}"));
    line.trim()
        .parse()
        .unwrap_or_else(|_| panic!("udhcpc printed an invalid address: {line:?}"))
}

/// Runs `body` on a thread that has joined `namespace`, with a fresh Tokio
/// runtime, so that every netlink socket it opens belongs to that namespace.
fn in_namespace<T: Send + 'static>(
    namespace: &str,
    body: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    let file = std::fs::File::open(Path::new("/run/netns").join(namespace)).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(body())
    })
    .join()
    .unwrap()
}

#[test]
fn vxlan_joins_bridge_idempotently() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping vxlan_joins_bridge_idempotently: creating namespaces needs root");
        return;
    }
    let mut rng = rand::thread_rng();
    let tag = format!("oxt{:06x}", rng.gen::<u32>() & 0xff_ffff);
    // The whole test runs in a namespace of its own, so the VXLAN socket and
    // the conventional device names never appear on the host.
    let namespace = format!("{tag}-vx");
    let _cleanup = Cleanup {
        namespaces: vec![namespace.clone()],
        links: Vec::new(),
        pid_file: PathBuf::new(),
    };
    run_ok("ip", &["netns", "add", &namespace]);
    let vni: u32 = rng.gen_range(1..1 << 24);
    let bridge = format!("brq{}", &tag[..9]);
    let vxlan = format!("vxlan-{vni}");

    let (bridge_for_thread, vxlan_for_thread) = (bridge.clone(), vxlan.clone());
    in_namespace(&namespace, move || {
        Box::pin(async move {
            let dataplane = LinuxDataplane::new().unwrap();
            for _ in 0..2 {
                dataplane
                    .ensure_bridge(&bridge_for_thread, 1450)
                    .await
                    .unwrap();
                dataplane
                    .ensure_vxlan(
                        &vxlan_for_thread,
                        vni,
                        Ipv4Addr::LOCALHOST,
                        &bridge_for_thread,
                        1450,
                    )
                    .await
                    .unwrap();
            }
        })
    });

    let details = run_ok(
        "ip",
        &["-n", &namespace, "-d", "link", "show", "dev", &vxlan],
    );
    assert!(details.contains(&format!("vxlan id {vni}")), "{details}");
    assert!(details.contains(&format!("master {bridge}")), "{details}");
    assert!(details.contains("mtu 1450"), "{details}");
    assert!(details.contains("dstport 4789"), "{details}");

    let vxlan_for_thread = vxlan.clone();
    in_namespace(&namespace, move || {
        Box::pin(async move {
            let dataplane = LinuxDataplane::new().unwrap();
            dataplane.delete_link(&vxlan_for_thread).await.unwrap();
            dataplane.delete_link(&vxlan_for_thread).await.unwrap();
            assert!(!dataplane.link_exists(&vxlan_for_thread).await.unwrap());
        })
    });
}

#[test]
fn ensure_address_keeps_other_addresses() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping ensure_address_keeps_other_addresses: creating namespaces needs root");
        return;
    }
    let mut rng = rand::thread_rng();
    let tag = format!("oxt{:06x}", rng.gen::<u32>() & 0xff_ffff);
    // A namespace of its own keeps the test addresses off the host's routes.
    let namespace = format!("{tag}-ad");
    let _cleanup = Cleanup {
        namespaces: vec![namespace.clone()],
        links: Vec::new(),
        pid_file: PathBuf::new(),
    };
    run_ok("ip", &["netns", "add", &namespace]);
    let bridge = format!("br-{tag}");
    run_ok(
        "ip",
        &["-n", &namespace, "link", "add", &bridge, "type", "bridge"],
    );
    run_ok(
        "ip",
        &[
            "-n",
            &namespace,
            "addr",
            "add",
            "198.51.100.7/24",
            "dev",
            &bridge,
        ],
    );

    let bridge_for_thread = bridge.clone();
    in_namespace(&namespace, move || {
        Box::pin(async move {
            let dataplane = LinuxDataplane::new().unwrap();
            let address = "203.0.113.1/24".parse().unwrap();
            for _ in 0..2 {
                dataplane
                    .ensure_address(&bridge_for_thread, address)
                    .await
                    .unwrap();
            }
            let missing = dataplane.ensure_address("oxt-no-such", address).await;
            assert!(missing.is_err(), "a missing link must be an error");
        })
    });

    let shown = run_ok(
        "ip",
        &["-n", &namespace, "-4", "addr", "show", "dev", &bridge],
    );
    assert_eq!(shown.matches("inet 203.0.113.1/24").count(), 1, "{shown}");
    assert!(shown.contains("inet 198.51.100.7/24"), "{shown}");
    let link = run_ok("ip", &["-n", &namespace, "link", "show", "dev", &bridge]);
    assert!(link.contains(",UP"), "the link must be up: {link}");
}

/// Leases an address for `port` in its namespace, checks it is the port's fixed
/// address, and configures it on the interface.
fn take_lease(port: &PortSpec, namespace: &str, interface: &str, script: &Path) {
    let leased = lease_address(namespace, interface, script);
    assert_eq!(
        leased, port.ip,
        "client with MAC {} got the wrong address",
        port.mac
    );
    let address = format!("{leased}/24");
    run_ok(
        "ip",
        &[
            "netns", "exec", namespace, "ip", "addr", "add", &address, "dev", interface,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_network_serves_dhcp_and_forwards() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping linux_network_serves_dhcp_and_forwards: creating bridges and namespaces needs root");
        return;
    }
    for tool in ["ip", "dnsmasq", "busybox", "timeout"] {
        if !run("sh", &["-c", &format!("command -v {tool}")])
            .status
            .success()
        {
            eprintln!("skipping linux_network_serves_dhcp_and_forwards: {tool} is not installed");
            return;
        }
    }

    let mut rng = rand::thread_rng();
    let tag = format!("oxt{:06x}", rng.gen::<u32>() & 0xff_ffff);
    let octet: u8 = rng.gen();
    let base = Ipv4Addr::new(198, 18 + rng.gen_range(0..2), octet, 0);
    let host = |last: u8| Ipv4Addr::new(base.octets()[0], base.octets()[1], base.octets()[2], last);

    // Ids start with the tag so that every derived device and namespace name carries it.
    let network_id = format!("{tag}a-0000-4000-8000-000000000000");
    let dhcp_port = PortSpec {
        id: format!("{tag}b-dhcp"),
        mac: random_mac(&mut rng),
        ip: host(2),
        ..PortSpec::default()
    };
    let vm_ports: Vec<PortSpec> = (0..2u8)
        .map(|i| PortSpec {
            id: format!("{tag}{}-vm", i + 3),
            mac: random_mac(&mut rng),
            ip: host(10 + i),
            // Filtering is covered by linux_security_e2e.rs.
            port_security: false,
            ..PortSpec::default()
        })
        .collect();
    let vm_namespaces: Vec<String> = (0..2).map(|i| format!("{tag}-vm{i}")).collect();
    let vm_taps: Vec<String> = vm_ports
        .iter()
        .map(|p| format!("tap{}", &p.id[..11]))
        .collect();
    let vm_interfaces: Vec<String> = (0..2).map(|i| format!("{tag}v{i}")).collect();
    let bridge = format!("brq{}", &network_id[..11]);
    let dhcp_namespace = format!("qdhcp-{network_id}");

    let state_dir = tempfile::tempdir().unwrap();
    let dnsmasq_dir = state_dir.path().join("dhcp");
    let _cleanup = Cleanup {
        namespaces: [vm_namespaces.clone(), vec![dhcp_namespace.clone()]].concat(),
        links: [
            vm_taps.clone(),
            vec![format!("tap{}", &dhcp_port.id[..11]), bridge.clone()],
        ]
        .concat(),
        pid_file: dnsmasq_dir.join(&network_id).join("pid"),
    };

    // dnsmasq drops root to `nobody` and rereads its hosts file as that user.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(state_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = state_dir.path().join("udhcpc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && echo \"LEASE $ip\"\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let dataplane = LinuxDataplane::new().unwrap();
    let dhcp = Dnsmasq::new(&dnsmasq_dir);

    // Client "servers": a namespace each, joined by a veth whose host end is the port's tap.
    for ((port, namespace), (tap, interface)) in vm_ports
        .iter()
        .zip(&vm_namespaces)
        .zip(vm_taps.iter().zip(&vm_interfaces))
    {
        run_ok("ip", &["netns", "add", namespace]);
        dataplane
            .ensure_veth(tap, interface, port.mac, 1500)
            .await
            .unwrap();
        run_ok("ip", &["link", "set", interface, "netns", namespace]);
        run_ok(
            "ip",
            &[
                "netns", "exec", namespace, "ip", "link", "set", interface, "up",
            ],
        );
        run_ok(
            "ip",
            &["netns", "exec", namespace, "ip", "link", "set", "lo", "up"],
        );
    }

    // The network starts with the first server's port only, so that adding
    // the second later exercises the SIGHUP reload of the hosts file.
    let network = NetworkSpec {
        id: network_id.clone(),
        mtu: 1500,
        vxlan: None,
        subnet: Some(SubnetSpec {
            cidr: format!("{base}/24").parse().unwrap(),
            lease_seconds: 600,
            gateway: None,
        }),
        dhcp_port: Some(dhcp_port.clone()),
        ports: vm_ports[..1].to_vec(),
        bridge: None,
    };
    let first = DesiredState {
        networks: vec![network.clone()],
        ..DesiredState::default()
    };
    let both = DesiredState {
        networks: vec![NetworkSpec {
            ports: vm_ports.clone(),
            ..network
        }],
        ..DesiredState::default()
    };

    let mut reconciler = Reconciler::new();
    reconciler
        .reconcile(&first, &dataplane, &dhcp)
        .await
        .unwrap();
    let pid = dhcp
        .running_pid(&network_id)
        .expect("dnsmasq is not running after reconcile");

    // A second run finds everything in place and must not fail or restart dnsmasq.
    reconciler
        .reconcile(&first, &dataplane, &dhcp)
        .await
        .unwrap();
    assert_eq!(
        dhcp.running_pid(&network_id),
        Some(pid),
        "second reconcile restarted dnsmasq"
    );
    take_lease(&vm_ports[0], &vm_namespaces[0], &vm_interfaces[0], &script);

    reconciler
        .reconcile(&both, &dataplane, &dhcp)
        .await
        .unwrap();
    assert_eq!(
        dhcp.running_pid(&network_id),
        Some(pid),
        "adding a port restarted dnsmasq instead of reloading it"
    );
    take_lease(&vm_ports[1], &vm_namespaces[1], &vm_interfaces[1], &script);

    for tap in &vm_taps {
        let master = std::fs::read_link(format!("/sys/class/net/{tap}/master")).unwrap();
        assert_eq!(master.file_name().unwrap().to_str().unwrap(), bridge);
    }

    // A dnsmasq that died is started again by the next run.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let dead = (0..100).any(|_| {
        let running = dhcp.running_pid(&network_id).is_some();
        if running {
            std::thread::sleep(Duration::from_millis(50));
        }
        !running
    });
    assert!(dead, "dnsmasq pid {pid} still runs after SIGKILL");
    reconciler
        .reconcile(&both, &dataplane, &dhcp)
        .await
        .unwrap();
    let pid = dhcp
        .running_pid(&network_id)
        .expect("dnsmasq was not restarted after it died");

    let target = vm_ports[1].ip.to_string();
    run_ok(
        "ip",
        &[
            "netns",
            "exec",
            &vm_namespaces[0],
            "busybox",
            "ping",
            "-c",
            "2",
            "-W",
            "5",
            &target,
        ],
    );
    run_ok(
        "ip",
        &[
            "netns",
            "exec",
            &vm_namespaces[0],
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "5",
            &dhcp_port.ip.to_string(),
        ],
    );

    // An address handed to another MAC, as when a server is deleted and
    // the next one gets its address, is leased to the new MAC: the agent
    // makes dnsmasq forget the old lease.
    let (namespace, interface) = (&vm_namespaces[1], &vm_interfaces[1]);
    run_ok("ip", &["-n", namespace, "addr", "flush", "dev", interface]);
    assert_eq!(lease_address(namespace, interface, &script), vm_ports[1].ip);
    let moved = PortSpec {
        mac: random_mac(&mut rng),
        ..vm_ports[1].clone()
    };
    let mac_text = moved.mac.to_string();
    run_ok(
        "ip",
        &["-n", namespace, "link", "set", "dev", interface, "down"],
    );
    run_ok(
        "ip",
        &[
            "-n", namespace, "link", "set", "dev", interface, "address", &mac_text,
        ],
    );
    run_ok(
        "ip",
        &["-n", namespace, "link", "set", "dev", interface, "up"],
    );
    let moved_state = DesiredState {
        networks: vec![NetworkSpec {
            ports: vec![vm_ports[0].clone(), moved.clone()],
            ..both.networks[0].clone()
        }],
        ..DesiredState::default()
    };
    reconciler
        .reconcile(&moved_state, &dataplane, &dhcp)
        .await
        .unwrap();
    assert_eq!(
        lease_address(namespace, interface, &script),
        moved.ip,
        "the address that moved to MAC {mac_text} was not leased to it"
    );
    if run("sh", &["-c", "command -v dhcp_release"])
        .status
        .success()
    {
        assert_eq!(
            dhcp.running_pid(&network_id),
            Some(pid),
            "dnsmasq was restarted instead of releasing the lease"
        );
    }

    // Teardown through the agent: the network disappears from the desired state.
    reconciler
        .reconcile(&DesiredState::default(), &dataplane, &dhcp)
        .await
        .unwrap();

    assert!(
        !Path::new("/sys/class/net").join(&bridge).exists(),
        "bridge {bridge} is left"
    );
    assert!(
        !Path::new("/run/netns").join(&dhcp_namespace).exists(),
        "namespace {dhcp_namespace} is left"
    );
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let alive = comm.trim() == "dnsmasq"
        && !state
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    assert!(!alive, "dnsmasq pid {pid} is still running");
    assert!(dhcp.running_pid(&network_id).is_none());

    for namespace in &vm_namespaces {
        run_ok("ip", &["netns", "del", namespace]);
    }
    // Deleting a namespace deletes the veth end inside it and so its peer; allow the kernel a moment.
    for tap in &vm_taps {
        let removed = (0..50).any(|_| {
            let exists = Path::new("/sys/class/net").join(tap).exists();
            if exists {
                std::thread::sleep(Duration::from_millis(100));
            }
            !exists
        });
        assert!(removed, "tap {tap} is left");
    }
}
