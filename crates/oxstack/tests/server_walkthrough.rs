//! The operator's walkthrough with a real virtual machine: the unmodified
//! `openstack` CLI against `oxstack up --driver qemu --virt-type qemu`
//! boots the test guest on a VXLAN tenant network, reads its console,
//! pings it from the network's DHCP namespace, drives its power actions,
//! and deletes it leaving nothing behind. A second server on a flat network
//! whose physical network has no bridge mapping ends in ERROR with the
//! binding message.
//!
//! It needs root (taps, bridges, namespaces), QEMU and the test guest
//! (`tools/guest-image/out/oxstack-guest.qcow2`, built by tests/run); without
//! them it prints why and passes, as the other root tests do.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::{
    dhcp_dir, env_as, field, free_port, link_exists, missing_vm_prerequisite, namespace_exists,
    process_mentions, read_openrc, repo_root, rows, skip, step, wait_for, Cli, HostCleanup, Server,
};

/// The first IPv4 address in `server show`'s `addresses` field, which the
/// CLI prints as `{"net1": ["10.0.0.5"]}` in JSON output.
fn first_address(server: &Value) -> String {
    let addresses = &server["addresses"];
    addresses
        .as_object()
        .and_then(|networks| networks.values().next())
        .and_then(|ips| ips.as_array())
        .and_then(|ips| ips.first())
        .and_then(|ip| ip.as_str())
        .unwrap_or_else(|| panic!("no address in {addresses}"))
        .to_owned()
}

#[test]
fn server_walkthrough_boots_a_real_vm() {
    if let Some(reason) = missing_vm_prerequisite() {
        skip(&reason);
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    // A private folder, as `mktemp -d` makes: dnsmasq, which runs as
    // `nobody`, must still read its hosts file.
    std::fs::set_permissions(temp.path(), PermissionsExt::from_mode(0o700)).unwrap();
    let data_dir = temp.path().join("data");
    let home = temp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = temp.path().join("oxstack.toml");
    // A host name of its own keeps this cloud's agent apart from other
    // clouds the test run starts on this machine.
    let host = format!("oxt-{}", std::process::id());
    std::fs::write(
        &config,
        format!("[hypervisor]\ndriver = \"qemu\"\nvirt_type = \"qemu\"\n[netagent]\nhost = \"{host}\"\n"),
    )
    .unwrap();
    let cli = Cli::new(&home);

    step("start oxstack up with the QEMU driver under software emulation");
    let _cleanup = HostCleanup {
        data_dir: data_dir.clone(),
    };
    let mut server = Server::start_with_config(&repo_root(), &data_dir, free_port(), Some(&config));
    let admin = read_openrc(&data_dir.join("openrc"));

    step("server list is empty");
    assert!(rows(&cli.json(&admin, &["server", "list"])).is_empty());

    step("network create, subnet create, network list");
    let network = cli.json(&admin, &["network", "create", "xmodulo"]);
    let network_id = field(&network, "id").to_owned();
    cli.json(
        &admin,
        &[
            "subnet",
            "create",
            "--network",
            "xmodulo",
            "--subnet-range",
            "10.77.0.0/24",
            "xmodulo_subnet",
        ],
    );
    let networks = cli.json(&admin, &["network", "list"]);
    assert!(rows(&networks)
        .iter()
        .any(|row| row["ID"] == network_id.as_str()));

    step("flavor list, image list, security group list, rule list");
    let flavors = cli.json(&admin, &["flavor", "list"]);
    assert!(rows(&flavors).iter().any(|row| row["Name"] == "m1.nano"));
    let images = cli.json(&admin, &["image", "list"]);
    assert!(
        rows(&images)
            .iter()
            .any(|row| row["Name"] == "oxstack-guest"),
        "{images}"
    );
    cli.json(&admin, &["security", "group", "list"]);
    cli.json(&admin, &["security", "group", "rule", "list", "default"]);
    // The default group admits only its own members; the DHCP namespace
    // pings the guest, so ICMP is opened as an operator would.
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

    step("keypair create --public-key");
    let public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFtAoZrMbQCgW5yoLzo6lMB1mSXMTgfXe0jnC3Sdj2NF walkthrough";
    std::fs::write(home.join("mykey.pub"), format!("{public_key}\n")).unwrap();
    cli.json(
        &admin,
        &["keypair", "create", "--public-key", "mykey.pub", "mykey"],
    );

    step("server create --wait vm1");
    let created = cli.json(
        &admin,
        &[
            "server",
            "create",
            "--flavor",
            "m1.nano",
            "--image",
            "oxstack-guest",
            "--security-group",
            "default",
            "--key-name",
            "mykey",
            "--nic",
            &format!("net-id={network_id}"),
            "--wait",
            "vm1",
        ],
    );
    let server_id = field(&created, "id").to_owned();
    let shown = cli.json(&admin, &["server", "show", "vm1"]);
    assert_eq!(field(&shown, "status"), "ACTIVE", "{shown}");
    let address = first_address(&shown);

    step("console log shows the address server show lists, and the key from the metadata");
    let console = wait_for(
        "the guest's DHCP line on the console",
        Duration::from_secs(120),
        || {
            let log = cli.ok(&admin, &["console", "log", "show", "vm1"]);
            log.contains(&format!(" {address}/")).then_some(log)
        },
    );
    let key_prefix: String = public_key.chars().take(40).collect();
    let console = if console.contains(&key_prefix) {
        console
    } else {
        wait_for(
            "the SSH key line on the console",
            Duration::from_secs(60),
            || {
                let log = cli.ok(&admin, &["console", "log", "show", "vm1"]);
                log.contains(&key_prefix).then_some(log)
            },
        )
    };
    assert!(console.contains("oxstack-guest: hostname vm1"), "{console}");

    step("the guest answers ping from the DHCP namespace");
    let namespace = format!("qdhcp-{network_id}");
    wait_for(
        "ping from the DHCP namespace",
        Duration::from_secs(60),
        || {
            let ping = Command::new("ip")
                .args([
                    "netns", "exec", &namespace, "ping", "-c", "1", "-W", "2", &address,
                ])
                .output()
                .unwrap();
            ping.status.success().then_some(())
        },
    );

    step("server stop, start, pause, unpause, suspend, resume");
    for (action, status) in [
        ("stop", "SHUTOFF"),
        ("start", "ACTIVE"),
        ("pause", "PAUSED"),
        ("unpause", "ACTIVE"),
        ("suspend", "SUSPENDED"),
        ("resume", "ACTIVE"),
    ] {
        cli.ok(&admin, &["server", action, "vm1"]);
        wait_for(
            &format!("status {status} after server {action}"),
            Duration::from_secs(120),
            || {
                let shown = cli.json(&admin, &["server", "show", "vm1"]);
                (shown["status"] == status).then_some(())
            },
        );
    }

    step("server lock, then a member's server stop is refused with 409");
    cli.ok(
        &admin,
        &["user", "create", "--password", "dan-secret", "dan"],
    );
    cli.ok(
        &admin,
        &[
            "role",
            "add",
            "--project",
            "admin",
            "--user",
            "dan",
            "member",
        ],
    );
    let dan = env_as(&admin, "dan", "dan-secret", "admin");
    cli.ok(&admin, &["server", "lock", "vm1"]);
    let refusal = cli.fails(&dan, &["server", "stop", "vm1"]);
    assert!(refusal.contains("409"), "{refusal}");
    assert!(refusal.contains("locked"), "{refusal}");
    cli.ok(&admin, &["server", "unlock", "vm1"]);

    step("server delete --wait leaves no QEMU process, tap, disk or port");
    let ports = cli.json(&admin, &["port", "list", "--device-id", &server_id]);
    let port_id = field(&rows(&ports)[0], "ID").to_owned();
    let tap = format!("tap{}", &port_id[..11]);
    assert!(
        link_exists(&tap),
        "tap {tap} should exist while the server runs"
    );
    cli.ok(&admin, &["server", "delete", "--wait", "vm1"]);
    assert!(
        !process_mentions("qemu-system", &server_id),
        "a QEMU process for {server_id} is still running"
    );
    assert!(!link_exists(&tap), "tap {tap} is still there");
    assert!(
        !data_dir.join("instances").join(&server_id).exists(),
        "the instance folder is still there"
    );
    let ports = cli.json(&admin, &["port", "list", "--device-id", &server_id]);
    assert!(rows(&ports).is_empty(), "ports left behind: {ports}");

    step("a flat network on an unmapped physical network: ERROR with the binding message");
    cli.json(
        &admin,
        &[
            "network",
            "create",
            "--provider-network-type",
            "flat",
            "--provider-physical-network",
            "physnet1",
            "flatnet",
        ],
    );
    cli.json(
        &admin,
        &[
            "subnet",
            "create",
            "--network",
            "flatnet",
            "--subnet-range",
            "10.78.0.0/24",
            "flat_subnet",
        ],
    );
    let output = cli.run(
        &admin,
        &[
            "server",
            "create",
            "--flavor",
            "m1.nano",
            "--image",
            "oxstack-guest",
            "--nic",
            "net-id=flatnet",
            "--wait",
            "vm2",
        ],
    );
    assert!(!output.status.success(), "vm2 must not become ACTIVE");
    let shown = cli.json(&admin, &["server", "show", "vm2"]);
    assert_eq!(field(&shown, "status"), "ERROR", "{shown}");
    let fault = shown["fault"].to_string();
    for expected in ["physnet1", &host, "bridge_mappings", "[netagent]"] {
        assert!(
            fault.contains(expected),
            "the fault should name {expected}: {fault}"
        );
    }
    cli.ok(&admin, &["server", "delete", "--wait", "vm2"]);

    step("deleting the router and the networks leaves no namespace, bridge or dnsmasq behind");
    let network_ids: Vec<String> = ["xmodulo", "flatnet", "private", "public"]
        .iter()
        .map(|name| field(&cli.json(&admin, &["network", "show", name]), "id").to_owned())
        .collect();
    let router = cli.json(&admin, &["router", "show", "router1"]);
    let router_id = field(&router, "id").to_owned();
    assert!(
        namespace_exists(&format!("qrouter-{router_id}")),
        "the bootstrap router has no namespace"
    );
    cli.ok(
        &admin,
        &["router", "remove", "subnet", "router1", "private-subnet"],
    );
    cli.ok(&admin, &["router", "delete", "router1"]);
    cli.ok(
        &admin,
        &[
            "network", "delete", "xmodulo", "flatnet", "private", "public",
        ],
    );
    for id in &network_ids {
        let bridge = format!("brq{}", &id[..11]);
        wait_for(
            &format!("bridge {bridge} and qdhcp-{id} to go"),
            Duration::from_secs(20),
            || (!link_exists(&bridge) && !namespace_exists(&format!("qdhcp-{id}"))).then_some(()),
        );
    }
    assert!(
        !namespace_exists(&format!("qrouter-{router_id}")),
        "the router's namespace is still there"
    );
    let data_dir_text = dhcp_dir(&data_dir).to_string_lossy().into_owned();
    wait_for(
        "this cloud's dnsmasq processes to end",
        Duration::from_secs(10),
        || (!process_mentions("dnsmasq", &data_dir_text)).then_some(()),
    );

    server.stop();
}
