//! A floating IP on the default external network, reached from the host as
//! on devstack. The first `oxstack up` creates br-ex with 172.24.4.1/24 for
//! the physical network `public`, and router1's gateway port binds to it.
//! The host then pings a real virtual machine on `private` through the
//! floating IP the unmodified `openstack` CLI gives it. Deleting everything and
//! `oxstack netagent teardown` leave no namespace and no br-ex behind.
//!
//! It needs root (bridges, namespaces, nftables), QEMU and the test guest
//! (`tools/guest-image/out/oxstack-guest.qcow2`); without them it prints why
//! and passes. It also passes with a message when br-ex already exists,
//! because only one cloud at a time may own br-ex on a host.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    dhcp_dir, field, free_port, link_exists, missing_vm_prerequisite, namespace_exists,
    process_mentions, read_openrc, repo_root, rows, skip, step, wait_for, Cli, HostCleanup, Server,
};

const BRIDGE: &str = "br-ex";

/// Returns why this test cannot run here: the VM prerequisites, and br-ex
/// free for the cloud it starts.
fn missing_prerequisite() -> Option<String> {
    if let Some(reason) = missing_vm_prerequisite() {
        return Some(reason);
    }
    if link_exists(BRIDGE) {
        return Some(format!(
            "{BRIDGE} already exists on this host, so another cloud or the operator owns it"
        ));
    }
    None
}

/// Returns the IPv4 addresses of `link` in the host namespace, as
/// `ADDRESS/PREFIX`.
fn addresses_of(link: &str) -> Vec<String> {
    let output = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", link])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|word| *word == "inet")?;
            words.next().map(str::to_owned)
        })
        .collect()
}

/// Pings `address` once from the host; returns ping's output when a reply came.
fn ping(address: &str) -> Option<String> {
    let output = Command::new("ping")
        .args(["-c1", "-W2", address])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn floating_ip_reaches_vm_from_host() {
    if let Some(reason) = missing_prerequisite() {
        skip(&reason);
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let home = temp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = temp.path().join("oxstack.toml");
    // No bridge_mappings, so the default public:br-ex applies; the
    // bootstrap networks are on, as they are by default.
    let host = format!("oxt-fip-{}", std::process::id());
    std::fs::write(
        &config,
        format!("[hypervisor]\ndriver = \"qemu\"\nvirt_type = \"qemu\"\n[netagent]\nhost = \"{host}\"\n"),
    )
    .unwrap();
    let cli = Cli::new(&home);

    step("start oxstack up: it creates br-ex with the gateway of public-subnet");
    let _cleanup = HostCleanup {
        data_dir: data_dir.clone(),
    };
    let mut server = Server::start_with_config(&repo_root(), &data_dir, free_port(), Some(&config));
    // Read before teardown removes the link.
    let dnsmasq_dir = dhcp_dir(&data_dir).to_string_lossy().into_owned();
    let admin = read_openrc(&data_dir.join("openrc"));
    assert!(link_exists(BRIDGE), "oxstack up did not create {BRIDGE}");
    let addresses = addresses_of(BRIDGE);
    assert_eq!(
        addresses,
        vec!["172.24.4.1/24".to_owned()],
        "{BRIDGE} addresses"
    );
    // IFF_UP is bit 0 of the link flags.
    let flags_text = std::fs::read_to_string(format!("/sys/class/net/{BRIDGE}/flags")).unwrap();
    let flags = u32::from_str_radix(flags_text.trim().trim_start_matches("0x"), 16).unwrap();
    assert!(flags & 1 != 0, "{BRIDGE} is not up (flags {flags_text})");

    step("the agent reports public:br-ex and router1's gateway port is bound");
    let agents = cli.json(&admin, &["network", "agent", "list", "--host", &host]);
    let agent_id = field(&rows(&agents)[0], "ID").to_owned();
    let agent = cli.json(&admin, &["network", "agent", "show", &agent_id]);
    assert_eq!(
        agent["configuration"]["bridge_mappings"]["public"], "br-ex",
        "{agent}"
    );
    let router = cli.json(&admin, &["router", "show", "router1"]);
    let router_id = field(&router, "id").to_owned();
    let gateway_ports = cli.json(
        &admin,
        &[
            "port",
            "list",
            "--device-id",
            &router_id,
            "--device-owner",
            "network:router_gateway",
        ],
    );
    let gateway_port_id = field(&rows(&gateway_ports)[0], "ID").to_owned();
    let gateway_port = cli.json(&admin, &["port", "show", &gateway_port_id]);
    assert_eq!(
        gateway_port["binding_host_id"],
        host.as_str(),
        "{gateway_port}"
    );
    assert_ne!(
        gateway_port["binding_vif_type"], "binding_failed",
        "{gateway_port}"
    );

    step("security group rule create --protocol icmp default");
    cli.json(
        &admin,
        &[
            "security",
            "group",
            "rule",
            "create",
            "--protocol",
            "icmp",
            "default",
        ],
    );

    step("server create --nic net-id=private --wait fipvm");
    let created = cli.json(
        &admin,
        &[
            "server",
            "create",
            "--flavor",
            "m1.nano",
            "--image",
            "oxstack-guest",
            "--nic",
            "net-id=private",
            "--wait",
            "fipvm",
        ],
    );
    let server_id = field(&created, "id").to_owned();
    let shown = cli.json(&admin, &["server", "show", "fipvm"]);
    assert_eq!(field(&shown, "status"), "ACTIVE", "{shown}");
    let fixed_ip = shown["addresses"]["private"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no address on private in {}", shown["addresses"]))
        .to_owned();

    step("the guest leases its address over DHCP");
    wait_for(
        "the guest's DHCP line on the console",
        Duration::from_secs(120),
        || {
            let log = cli.ok(&admin, &["console", "log", "show", "fipvm"]);
            log.contains(&format!(" {fixed_ip}/")).then_some(())
        },
    );

    step("floating ip create public, server add floating ip");
    let floating = cli.json(&admin, &["floating", "ip", "create", "public"]);
    let floating_ip = field(&floating, "floating_ip_address").to_owned();
    let floating_id = field(&floating, "id").to_owned();
    assert!(floating_ip.starts_with("172.24.4."), "{floating}");
    cli.ok(
        &admin,
        &["server", "add", "floating", "ip", "fipvm", &floating_ip],
    );
    let associated = cli.json(&admin, &["floating", "ip", "show", &floating_id]);
    assert_eq!(
        associated["fixed_ip_address"],
        fixed_ip.as_str(),
        "{associated}"
    );

    step("the host pings the floating IP");
    let reply = wait_for(
        &format!("ping {floating_ip} from the host"),
        Duration::from_secs(60),
        || ping(&floating_ip),
    );
    // The floating IP is also an address of the router's qg- interface, so
    // a reply could come from the router itself. The guest's reply crossed
    // the router once: Linux sends with TTL 64 and the router forwards with 63.
    assert!(
        reply.contains("ttl=63"),
        "the reply did not come through the router from the guest:\n{reply}"
    );

    step("delete the server, the floating IP, router1 and the networks");
    let network_ids: Vec<String> = ["private", "public"]
        .iter()
        .map(|name| field(&cli.json(&admin, &["network", "show", name]), "id").to_owned())
        .collect();
    assert!(
        namespace_exists(&format!("qrouter-{router_id}")),
        "router1 has no namespace"
    );
    cli.ok(&admin, &["server", "delete", "--wait", "fipvm"]);
    assert!(
        !process_mentions("qemu-system", &server_id),
        "a QEMU process for {server_id} is still running"
    );
    cli.ok(&admin, &["floating", "ip", "delete", &floating_id]);
    cli.ok(
        &admin,
        &["router", "remove", "subnet", "router1", "private-subnet"],
    );
    cli.ok(&admin, &["router", "delete", "router1"]);
    cli.ok(&admin, &["network", "delete", "private", "public"]);
    wait_for("router1's namespace to go", Duration::from_secs(20), || {
        (!namespace_exists(&format!("qrouter-{router_id}"))).then_some(())
    });
    for id in &network_ids {
        wait_for(
            &format!("qdhcp-{id} to go"),
            Duration::from_secs(20),
            || (!namespace_exists(&format!("qdhcp-{id}"))).then_some(()),
        );
    }
    assert!(
        ping(&floating_ip).is_none(),
        "the deleted floating IP {floating_ip} still answers"
    );
    // br-ex belongs to the cloud, not to the network public, so it stays
    // until the cloud's devices are torn down.
    assert!(
        link_exists(BRIDGE),
        "{BRIDGE} went away with the network public"
    );

    step("oxstack netagent teardown removes br-ex");
    let status = server.stop();
    assert!(status.success(), "oxstack exited with {status} on SIGTERM");
    let teardown = Command::new(env!("CARGO_BIN_EXE_oxstack"))
        .args(["netagent", "teardown", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&teardown.stdout);
    assert!(
        teardown.status.success(),
        "teardown failed: {printed}{}",
        String::from_utf8_lossy(&teardown.stderr)
    );
    assert!(
        printed.contains(&format!("Removed the bridge {BRIDGE}")),
        "{printed}"
    );
    assert!(
        !link_exists(BRIDGE),
        "{BRIDGE} is still there after teardown"
    );
    assert!(
        !namespace_exists(&format!("qrouter-{router_id}")),
        "router1's namespace is back"
    );
    for id in &network_ids {
        assert!(
            !namespace_exists(&format!("qdhcp-{id}")),
            "qdhcp-{id} is still there"
        );
    }
    assert!(
        !process_mentions("dnsmasq", &dnsmasq_dir),
        "a dnsmasq of this cloud still runs"
    );
}
