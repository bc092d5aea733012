//! End-to-end test of security groups, a router and the metadata proxy on
//! the real host. Two "servers" are namespaces plugged through veths named
//! like instance taps. They lease their addresses from dnsmasq and reach each
//! other only as their security groups allow. They reach an "external"
//! namespace through the router's SNAT, are reached through a floating IP,
//! and get metadata through 169.254.169.254. A restarted agent changes
//! nothing, and removing everything from the desired state leaves nothing
//! behind.
//!
//! Needs root, `ip`, `nft` (Debian's nftables), `dnsmasq` and `busybox`; it
//! prints why and passes when one is missing. Every name it creates carries a
//! random `oxt…` tag, and a drop guard removes them even when it fails.
//!
//! NOTE: the filtering tables `bridge oxstack` and `inet oxstack` have fixed
//! names, so this test must not run on a host whose own agent uses them.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use oxstack_netagent::{
    DesiredState, Direction, Dnsmasq, FloatingIpSpec, LinuxDataplane, MacAddr, MetadataSpec,
    NamespaceMetadataProxy, NetworkSpec, NftCommand, PortSpec, Reconciler, RouterGateway,
    RouterInterface, RouterSpec, RuleRemote, SecurityRule, SubnetSpec,
};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const COMMAND_TIMEOUT_SECONDS: &str = "20";

fn run(program: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg(COMMAND_TIMEOUT_SECONDS)
        .arg(program)
        .args(args)
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

/// Runs a command inside a namespace and returns whether it succeeded.
fn in_ns(namespace: &str, args: &[&str]) -> bool {
    let mut full = vec!["netns", "exec", namespace];
    full.extend_from_slice(args);
    run("ip", &full).status.success()
}

fn in_ns_ok(namespace: &str, args: &[&str]) -> String {
    let mut full = vec!["netns", "exec", namespace];
    full.extend_from_slice(args);
    run_ok("ip", &full)
}

fn ping(namespace: &str, target: Ipv4Addr) -> bool {
    in_ns(
        namespace,
        &["busybox", "ping", "-c", "1", "-W", "2", &target.to_string()],
    )
}

/// Returns why the test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root: creating bridges and namespaces needs root".into());
    }
    ["ip", "nft", "dnsmasq", "busybox", "timeout"]
        .into_iter()
        .find(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|tool| {
            format!(
                "{tool} is not installed (apt-get install iproute2 nftables dnsmasq-base busybox)"
            )
        })
}

/// Removes everything the test may have created, in dependency order.
struct Cleanup {
    pid_file: PathBuf,
    namespaces: Vec<String>,
    links: Vec<String>,
    children: Vec<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let pid = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            if std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "dnsmasq")
            {
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
        for family in ["bridge", "inet"] {
            let _ = run("nft", &["delete", "table", family, "oxstack"]);
        }
    }
}

fn random_mac(rng: &mut impl Rng) -> MacAddr {
    MacAddr([0xfa, 0x16, 0x3e, rng.gen(), rng.gen(), rng.gen()])
}

/// Binds a TCP listener inside a namespace from a thread that joined it.
fn listen_in_namespace(namespace: &str, port: u16) -> std::net::TcpListener {
    let file = std::fs::File::open(Path::new("/run/netns").join(namespace)).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        std::net::TcpListener::bind(("0.0.0.0", port)).unwrap()
    })
    .join()
    .unwrap()
}

/// Waits for one connection and returns the address it came from.
fn accept_one(listener: std::net::TcpListener) -> std::sync::mpsc::Receiver<SocketAddr> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((_, peer)) = listener.accept() {
            let _ = sender.send(peer);
        }
    });
    receiver
}

/// Starts a stand-in metadata API on 127.0.0.1 whose responses echo the
/// identifying headers of each request.
async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let echoed: String = request
                    .lines()
                    .filter(|l| l.to_ascii_lowercase().starts_with("x-"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let response = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{echoed}",
                    echoed.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    address
}

struct Server {
    port: PortSpec,
    namespace: String,
    interface: String,
    tap: String,
}

fn tcp_rule(port: u16) -> SecurityRule {
    SecurityRule {
        direction: Direction::Ingress,
        protocol: Some(6),
        port_range_min: Some(port),
        port_range_max: Some(port),
        ..SecurityRule::default()
    }
}

/// Leases an address with udhcpc, checks it and the routes that came with
/// it, and configures them as a guest's DHCP client would.
fn lease_and_configure(server: &Server, script: &Path, dhcp_ip: Ipv4Addr, gateway: Ipv4Addr) {
    let output = in_ns_ok(
        &server.namespace,
        &[
            "busybox",
            "udhcpc",
            "-f",
            "-q",
            "-n",
            "-t",
            "5",
            "-T",
            "2",
            "-O",
            "staticroutes",
            "-i",
            &server.interface,
            "-s",
            script.to_str().unwrap(),
        ],
    );
    let value = |key: &str| {
        output
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("udhcpc printed no {key}: {output}"))
            .trim()
            .to_string()
    };
    assert_eq!(value("LEASE "), server.port.ip.to_string(), "{output}");
    assert_eq!(
        value("ROUTES "),
        format!("169.254.169.254/32 {dhcp_ip} 0.0.0.0/0 {gateway}"),
        "{output}"
    );
    let address = format!("{}/24", server.port.ip);
    in_ns_ok(
        &server.namespace,
        &["ip", "addr", "add", &address, "dev", &server.interface],
    );
    in_ns_ok(
        &server.namespace,
        &[
            "ip",
            "route",
            "add",
            "169.254.169.254/32",
            "via",
            &dhcp_ip.to_string(),
        ],
    );
    in_ns_ok(
        &server.namespace,
        &["ip", "route", "add", "default", "via", &gateway.to_string()],
    );
}

fn table_handle(family: &str) -> Option<String> {
    let output = run("nft", &["-a", "list", "table", family, "oxstack"]);
    output.status.success().then(|| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_router_metadata_on_real_host() {
    if let Some(reason) = missing_prerequisite() {
        eprintln!("skipping security_router_metadata_on_real_host: {reason}");
        return;
    }
    let mut rng = rand::thread_rng();
    let tag = format!("oxt{:06x}", rng.gen::<u32>() & 0xff_ffff);
    let tenant = Ipv4Addr::new(198, 18 + rng.gen_range(0..2), rng.gen(), 0);
    let ip = |base: Ipv4Addr, last: u8| {
        let o = base.octets();
        Ipv4Addr::new(o[0], o[1], o[2], last)
    };
    let external = Ipv4Addr::new(100, 64 + rng.gen_range(0..64), rng.gen(), 0);

    let network_id = format!("{tag}a-0000-4000-8000-000000000000");
    let external_id = format!("{tag}e-0000-4000-8000-000000000000");
    let router_id = format!("{tag}r-0000-4000-8000-000000000000");
    let external_bridge = format!("{tag}x");
    let external_ns = format!("{tag}-ext");
    let dhcp_port = PortSpec {
        id: format!("{tag}b-dhcp"),
        mac: random_mac(&mut rng),
        ip: ip(tenant, 2),
        ..PortSpec::default()
    };
    let members = [ip(tenant, 10), ip(tenant, 11)];
    let servers: Vec<Server> = (0..2u8)
        .map(|i| {
            let id = format!("{tag}{}-vm", i + 3);
            Server {
                tap: format!("tap{}", &id[..11]),
                port: PortSpec {
                    id,
                    mac: random_mac(&mut rng),
                    ip: members[usize::from(i)],
                    security_rules: vec![
                        // The default group's shape: anything out, ICMP in
                        // from members only.
                        SecurityRule {
                            direction: Direction::Egress,
                            ..SecurityRule::default()
                        },
                        SecurityRule {
                            direction: Direction::Ingress,
                            protocol: Some(1),
                            remote: RuleRemote::Members(
                                members
                                    .iter()
                                    .map(|m| ipnet::IpNet::V4((*m).into()))
                                    .collect(),
                            ),
                            ..SecurityRule::default()
                        },
                    ],
                    ..PortSpec::default()
                },
                namespace: format!("{tag}-vm{i}"),
                interface: format!("{tag}v{i}"),
            }
        })
        .collect();
    let qr_port = format!("{tag}q-qr");
    let qg_port = format!("{tag}g-qg");
    let floating_ip = ip(external, 20);

    let state_dir = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup {
        pid_file: state_dir.path().join("dhcp").join(&network_id).join("pid"),
        namespaces: [
            servers.iter().map(|s| s.namespace.clone()).collect(),
            vec![
                external_ns.clone(),
                format!("qdhcp-{network_id}"),
                format!("qrouter-{router_id}"),
            ],
        ]
        .concat(),
        links: [
            servers.iter().map(|s| s.tap.clone()).collect(),
            [&dhcp_port.id, &qr_port, &qg_port]
                .iter()
                .map(|id| format!("tap{}", &id[..11]))
                .collect(),
            vec![format!("brq{}", &network_id[..11]), external_bridge.clone()],
        ]
        .concat(),
        children: Vec::new(),
    };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(state_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = state_dir.path().join("udhcpc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && echo \"LEASE $ip\" && echo \"ROUTES $staticroutes\"\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    // The servers, and an "external" namespace on a bridge the operator owns.
    for server in &servers {
        run_ok("ip", &["netns", "add", &server.namespace]);
        let mac = server.port.mac.to_string();
        run_ok(
            "ip",
            &[
                "link",
                "add",
                &server.tap,
                "type",
                "veth",
                "peer",
                "name",
                &server.interface,
                "address",
                &mac,
                "netns",
                &server.namespace,
            ],
        );
        in_ns_ok(
            &server.namespace,
            &["ip", "link", "set", &server.interface, "up"],
        );
        in_ns_ok(&server.namespace, &["ip", "link", "set", "lo", "up"]);
    }
    run_ok("ip", &["netns", "add", &external_ns]);
    run_ok("ip", &["link", "add", &external_bridge, "type", "bridge"]);
    run_ok("ip", &["link", "set", &external_bridge, "up"]);
    let external_host_end = format!("{tag}xh");
    cleanup.links.push(external_host_end.clone());
    run_ok(
        "ip",
        &[
            "link",
            "add",
            &external_host_end,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &external_ns,
        ],
    );
    run_ok(
        "ip",
        &[
            "link",
            "set",
            &external_host_end,
            "master",
            &external_bridge,
            "up",
        ],
    );
    let external_address = format!("{}/24", ip(external, 1));
    in_ns_ok(
        &external_ns,
        &["ip", "addr", "add", &external_address, "dev", "eth0"],
    );
    in_ns_ok(&external_ns, &["ip", "link", "set", "eth0", "up"]);

    let upstream = echo_upstream().await;
    let mut desired = DesiredState {
        networks: vec![
            NetworkSpec {
                id: network_id.clone(),
                mtu: 1500,
                subnet: Some(SubnetSpec {
                    cidr: format!("{tenant}/24").parse().unwrap(),
                    lease_seconds: 600,
                    gateway: Some(ip(tenant, 1)),
                }),
                dhcp_port: Some(dhcp_port.clone()),
                ports: servers.iter().map(|s| s.port.clone()).collect(),
                ..NetworkSpec::default()
            },
            NetworkSpec {
                id: external_id.clone(),
                mtu: 1500,
                bridge: Some(external_bridge.clone()),
                ..NetworkSpec::default()
            },
        ],
        routers: vec![RouterSpec {
            id: router_id.clone(),
            gateway: Some(RouterGateway {
                port_id: qg_port.clone(),
                mac: random_mac(&mut rng),
                ip: ip(external, 10),
                cidr: format!("{external}/24").parse().unwrap(),
                network_id: external_id.clone(),
                gateway_ip: Some(ip(external, 1)),
            }),
            interfaces: vec![RouterInterface {
                port_id: qr_port.clone(),
                mac: random_mac(&mut rng),
                ip: ip(tenant, 1),
                cidr: format!("{tenant}/24").parse().unwrap(),
                network_id: network_id.clone(),
            }],
            floating_ips: vec![FloatingIpSpec {
                floating_ip,
                fixed_ip: servers[0].port.ip,
            }],
            enable_snat: true,
        }],
        metadata: Some(MetadataSpec { upstream }),
    };
    // The external network may ping the server behind the floating IP.
    desired.networks[0].ports[0]
        .security_rules
        .push(SecurityRule {
            direction: Direction::Ingress,
            protocol: Some(1),
            remote: RuleRemote::Prefix(format!("{external}/24").parse().unwrap()),
            ..SecurityRule::default()
        });

    let dataplane = LinuxDataplane::new().unwrap();
    let dhcp = Dnsmasq::new(state_dir.path().join("dhcp"));
    let agent_dir = state_dir.path().join("agent");
    let new_reconciler = || {
        Reconciler::new()
            .with_state_dir(&agent_dir)
            .unwrap()
            .with_nftables(Arc::new(NftCommand::new()))
            .with_metadata_proxy(Arc::new(NamespaceMetadataProxy::new()))
    };
    let mut reconciler = new_reconciler();
    reconciler
        .reconcile(&desired, &dataplane, &dhcp)
        .await
        .unwrap();

    for server in &servers {
        lease_and_configure(server, &script, dhcp_port.ip, ip(tenant, 1));
    }
    let (a, b) = (&servers[0], &servers[1]);

    // ICMP from the same group passes both ways.
    assert!(
        ping(&a.namespace, b.port.ip),
        "server 0 cannot ping server 1"
    );
    assert!(
        ping(&b.namespace, a.port.ip),
        "server 1 cannot ping server 0"
    );

    // TCP is not in the group: refused until a rule allows it.
    let listener = Command::new("ip")
        .args([
            "netns",
            "exec",
            &b.namespace,
            "busybox",
            "nc",
            "-l",
            "-p",
            "5555",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    cleanup.children.push(listener);
    std::thread::sleep(Duration::from_millis(200));
    let target = b.port.ip.to_string();
    let connect = ["busybox", "nc", "-w", "2", target.as_str(), "5555"];
    assert!(
        !in_ns(&a.namespace, &connect),
        "TCP 5555 got through without a rule"
    );
    desired.networks[0].ports[1]
        .security_rules
        .push(tcp_rule(5555));
    reconciler
        .reconcile(&desired, &dataplane, &dhcp)
        .await
        .unwrap();
    assert!(
        in_ns(&a.namespace, &connect),
        "TCP 5555 blocked although allowed"
    );

    // A source address the port does not own is dropped. The DHCP port is
    // unfiltered and egress is open, so only anti-spoofing can stop this.
    assert!(
        ping(&a.namespace, dhcp_port.ip),
        "server 0 cannot ping the DHCP port"
    );
    let spoofed = ip(tenant, 99);
    let spoofed_cidr = format!("{spoofed}/24");
    in_ns_ok(
        &a.namespace,
        &["ip", "addr", "add", &spoofed_cidr, "dev", &a.interface],
    );
    let dhcp_target = dhcp_port.ip.to_string();
    let spoof_passed = in_ns(
        &a.namespace,
        &[
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "-I",
            &spoofed.to_string(),
            &dhcp_target,
        ],
    );
    in_ns_ok(
        &a.namespace,
        &["ip", "addr", "del", &spoofed_cidr, "dev", &a.interface],
    );
    assert!(!spoof_passed, "a spoofed source address got through");

    // Server 1 reaches the external network from the router's gateway address.
    let external_listener = listen_in_namespace(&external_ns, 7000);
    let peers = accept_one(external_listener);
    let external_ip = ip(external, 1).to_string();
    assert!(
        ping(&b.namespace, ip(external, 1)),
        "server 1 cannot ping the external network"
    );
    in_ns(
        &b.namespace,
        &["busybox", "nc", "-w", "3", &external_ip, "7000"],
    );
    let peer = peers
        .recv_timeout(Duration::from_secs(5))
        .expect("no connection reached the external namespace");
    assert_eq!(peer.ip(), ip(external, 10), "SNAT used the wrong source");

    // The external network reaches server 0 through its floating IP.
    assert!(
        ping(&external_ns, floating_ip),
        "floating IP {floating_ip} unreachable"
    );

    // Metadata: the proxy adds who is asking.
    let metadata = in_ns_ok(
        &a.namespace,
        &[
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            "http://169.254.169.254/latest/meta-data/",
        ],
    );
    assert!(
        metadata.contains(&format!("X-Forwarded-For: {}", a.port.ip)),
        "{metadata}"
    );
    assert!(
        metadata.contains(&format!("X-Neutron-Network-ID: {network_id}")),
        "{metadata}"
    );

    // A restarted agent finds everything in place and replaces nothing.
    let pid = dhcp
        .running_pid(&network_id)
        .expect("dnsmasq is not running");
    let handles = (table_handle("bridge"), table_handle("inet"));
    drop(reconciler);
    let mut reconciler = new_reconciler();
    reconciler
        .reconcile(&desired, &dataplane, &dhcp)
        .await
        .unwrap();
    assert_eq!(
        dhcp.running_pid(&network_id),
        Some(pid),
        "restart restarted dnsmasq"
    );
    assert_eq!(
        (table_handle("bridge"), table_handle("inet")),
        handles,
        "restart rewrote the tables"
    );
    assert!(ping(&a.namespace, b.port.ip), "restart broke traffic");
    let metadata = in_ns_ok(
        &b.namespace,
        &[
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            "http://169.254.169.254/",
        ],
    );
    assert!(
        metadata.contains(&format!("X-Forwarded-For: {}", b.port.ip)),
        "{metadata}"
    );

    // Removing everything leaves only what the test created itself.
    reconciler
        .reconcile(&DesiredState::default(), &dataplane, &dhcp)
        .await
        .unwrap();
    for namespace in [
        format!("qdhcp-{network_id}"),
        format!("qrouter-{router_id}"),
    ] {
        assert!(
            !Path::new("/run/netns").join(&namespace).exists(),
            "{namespace} is left"
        );
    }
    let bridge = format!("brq{}", &network_id[..11]);
    assert!(
        !Path::new("/sys/class/net").join(&bridge).exists(),
        "{bridge} is left"
    );
    for id in [&dhcp_port.id, &qr_port, &qg_port] {
        let tap = format!("tap{}", &id[..11]);
        assert!(
            !Path::new("/sys/class/net").join(&tap).exists(),
            "{tap} is left"
        );
    }
    assert!(
        Path::new("/sys/class/net").join(&external_bridge).exists(),
        "the mapped bridge was deleted"
    );
    assert_eq!(table_handle("bridge"), None, "bridge oxstack is left");
    assert_eq!(table_handle("inet"), None, "inet oxstack is left");
    assert!(dhcp.running_pid(&network_id).is_none(), "dnsmasq is left");
}
