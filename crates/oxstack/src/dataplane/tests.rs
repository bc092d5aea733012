//! The network agent against the recording dataplane, and against the
//! real Linux dataplane when the tests run as root.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxstack_netagent::{
    Dataplane, DhcpServer, Dnsmasq, LinuxDataplane, Reconciler, RecordingDataplane, RecordingDhcp,
    RecordingNftables, RuleRemote,
};
use oxstack_network::agents::AgentConfig;
use oxstack_network::inproc::DevicePort;
use oxstack_network::model::PortId;
use oxstack_network::NetworkConfig;
use serde_json::json;

use super::probe::NoProbe;
use super::*;
use crate::testing::TestNetworks;

fn vxlan_agent() -> AgentConfig {
    AgentConfig {
        tunneling_ip: Some("127.0.0.1".into()),
        tunnel_types: vec!["vxlan".into()],
        ..AgentConfig::default()
    }
}

/// Builds a reconciler whose nftables rules are only recorded: these tests check
/// bridges, taps and DHCP, and the firewall has tests of its own.
fn filtered_reconciler() -> Reconciler {
    Reconciler::new().with_nftables(Arc::new(RecordingNftables::new()))
}

fn settings() -> HostSettings {
    HostSettings {
        tunnel_ip: Some(Ipv4Addr::LOCALHOST),
        bridge_mappings: BTreeMap::new(),
        metadata: None,
    }
}

/// Creates a server port on `network_id` in `project` and binds it to `host`.
async fn bound_port(
    cloud: &TestNetworks,
    project: &str,
    network_id: &str,
    host: &str,
) -> oxstack_network::model::Port {
    let request = DevicePort {
        project_id: project.to_owned(),
        network_id: network_id.to_owned(),
        device_id: format!("server-{}", rand::random::<u32>()),
        device_owner: "compute:nova".to_owned(),
        ..DevicePort::default()
    };
    let port = cloud.service.create_device_port(&request).await.unwrap();
    cloud.service.bind_port(&port.id, host).await.unwrap();
    cloud.service.get_port(&port.id).await.unwrap().unwrap()
}

#[tokio::test]
async fn desired_state_of_bound_ports() {
    let cloud = TestNetworks::start(NetworkConfig::default()).await;
    cloud
        .service
        .report_agent("h1", vxlan_agent())
        .await
        .unwrap();
    let (network_id, _) = cloud.network("p1", "net1", "10.5.0.0/24", json!({})).await;
    let (elsewhere, _) = cloud.network("p1", "net2", "10.6.0.0/24", json!({})).await;
    let port = bound_port(&cloud, "p1", &network_id, "h1").await;
    let agent = HostAgent::new(
        cloud.service.clone(),
        "h1".into(),
        settings(),
        filtered_reconciler(),
        Arc::new(RecordingDataplane::new()),
        Arc::new(RecordingDhcp::new()),
        Arc::new(NoProbe),
    );

    let desired = agent.desired_state().await.unwrap();
    // Both networks have a DHCP port on h1; only net1 has a server port.
    let ids: Vec<&str> = desired.networks.iter().map(|n| n.id.as_str()).collect();
    assert!(ids.contains(&network_id.as_str()), "{ids:?}");
    assert!(ids.contains(&elsewhere.as_str()), "{ids:?}");
    let network = desired
        .networks
        .iter()
        .find(|n| n.id == network_id)
        .unwrap();
    assert_eq!(network.mtu, 1450);
    let vxlan = network.vxlan.expect("a VXLAN network gets its VNI");
    assert_eq!(vxlan.local_ip, Ipv4Addr::LOCALHOST);
    let subnet = network.subnet.expect("the DHCP subnet");
    assert_eq!(subnet.cidr.to_string(), "10.5.0.0/24");
    assert_eq!(subnet.gateway, Some(Ipv4Addr::new(10, 5, 0, 1)));
    let dhcp_port = network.dhcp_port.as_ref().expect("the DHCP port");
    assert_eq!(dhcp_port.ip, Ipv4Addr::new(10, 5, 0, 2));
    assert!(!dhcp_port.port_security);
    assert_eq!(network.ports.len(), 1);
    let spec = &network.ports[0];
    assert_eq!(spec.id, port.id.as_str());
    assert_eq!(spec.mac.to_string(), port.mac_address);
    assert_eq!(spec.ip, Ipv4Addr::new(10, 5, 0, 3));
    assert!(spec.port_security);
    // The default group: egress anywhere, ingress from its members.
    assert_eq!(spec.security_rules.len(), 4, "{:?}", spec.security_rules);
    let members = spec
        .security_rules
        .iter()
        .find_map(|rule| match &rule.remote {
            RuleRemote::Members(members) if rule.ethertype == oxstack_netagent::EtherType::Ipv4 => {
                Some(members)
            }
            _ => None,
        })
        .expect("an ingress rule from the default group");
    assert_eq!(
        members.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["10.5.0.3/32"]
    );

    // Another host plugs nothing: no port is bound to it and it serves no DHCP.
    let other = HostAgent::new(
        cloud.service.clone(),
        "h2".into(),
        settings(),
        filtered_reconciler(),
        Arc::new(RecordingDataplane::new()),
        Arc::new(RecordingDhcp::new()),
        Arc::new(NoProbe),
    );
    assert!(other.desired_state().await.unwrap().networks.is_empty());
}

#[tokio::test]
async fn sync_applies_changes_once() {
    let cloud = TestNetworks::start(NetworkConfig::default()).await;
    cloud
        .service
        .report_agent("h1", vxlan_agent())
        .await
        .unwrap();
    let (network_id, _) = cloud.network("p1", "net1", "10.5.0.0/24", json!({})).await;
    let dataplane = Arc::new(RecordingDataplane::new());
    let dhcp = Arc::new(RecordingDhcp::new());
    let agent = HostAgent::new(
        cloud.service.clone(),
        "h1".into(),
        settings(),
        filtered_reconciler(),
        dataplane.clone(),
        dhcp.clone(),
        Arc::new(NoProbe),
    );

    assert!(
        agent.sync(false).await.unwrap(),
        "the first pass reconciles"
    );
    assert!(!agent.sync(false).await.unwrap(), "nothing changed");
    let bridge = format!("brq{}", &network_id[..11]);
    assert!(
        dataplane.host_links().contains(&bridge),
        "{:?}",
        dataplane.host_links()
    );
    assert!(dhcp.running(&network_id).unwrap().hosts.is_empty());

    let port = bound_port(&cloud, "p1", &network_id, "h1").await;
    assert!(agent.sync(false).await.unwrap(), "a new port is a change");
    let hosts = dhcp.running(&network_id).unwrap().hosts;
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].mac.to_string(), port.mac_address);

    agent.ensure_network_plugged(&network_id).await.unwrap();
    let error = agent
        .ensure_network_plugged("no-such-network")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no port bound to host h1"),
        "{error}"
    );

    assert!(cloud.service.delete_device_port(&port.id).await.unwrap());
    cloud
        .admin
        .call(
            axum::http::Method::DELETE,
            &format!("networks/{network_id}"),
            None,
        )
        .await
        .unwrap();
    assert!(agent.sync(false).await.unwrap());
    assert!(
        !dataplane.host_links().contains(&bridge),
        "{:?}",
        dataplane.host_links()
    );
    assert!(dhcp.running(&network_id).is_none());
}

#[tokio::test]
async fn loop_wakes_on_change() {
    let cloud = TestNetworks::start(NetworkConfig::default()).await;
    cloud
        .service
        .report_agent("h1", vxlan_agent())
        .await
        .unwrap();
    let dhcp = Arc::new(RecordingDhcp::new());
    let agent = Arc::new(HostAgent::new(
        cloud.service.clone(),
        "h1".into(),
        settings(),
        filtered_reconciler(),
        Arc::new(RecordingDataplane::new()),
        dhcp.clone(),
        Arc::new(NoProbe),
    ));
    // The periodic check is an hour away, so only the change wakes the loop.
    let task = agent.spawn(Duration::from_secs(3600));
    let (network_id, _) = cloud.network("p1", "net1", "10.5.0.0/24", json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while dhcp.running(&network_id).is_none() {
        assert!(
            Instant::now() < deadline,
            "the agent did not serve DHCP for the new network within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
}

#[tokio::test]
async fn bootstrap_creates_networks_once() {
    let cloud = TestNetworks::start(NetworkConfig::default()).await;
    cloud
        .service
        .report_agent("h1", vxlan_agent())
        .await
        .unwrap();
    let first = crate::bootstrap_network::run(&cloud.service, "admin-project")
        .await
        .unwrap();
    assert_eq!(first.public_gateway, Some("172.24.4.1/24".parse().unwrap()));
    let second = crate::bootstrap_network::run(&cloud.service, "admin-project")
        .await
        .unwrap();
    assert_eq!(
        second.public_gateway, None,
        "a second run creates no public-subnet"
    );

    let networks = cloud
        .admin
        .call(axum::http::Method::GET, "networks", None)
        .await
        .unwrap();
    let names: Vec<&str> = networks["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "public").count(),
        1,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| **n == "private").count(),
        1,
        "{names:?}"
    );
    let public = networks["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "public")
        .unwrap();
    assert_eq!(public["router:external"], true);
    assert_eq!(public["provider:network_type"], "flat");
    let private = networks["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "private")
        .unwrap();
    assert_eq!(private["provider:network_type"], "vxlan");
    assert_eq!(private["project_id"], "admin-project");

    let subnets = cloud
        .admin
        .call(axum::http::Method::GET, "subnets", None)
        .await
        .unwrap();
    let subnets = subnets["subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 2, "{subnets:?}");
    let public_subnet = subnets
        .iter()
        .find(|s| s["name"] == "public-subnet")
        .unwrap();
    assert_eq!(public_subnet["cidr"], "172.24.4.0/24");
    assert_eq!(public_subnet["enable_dhcp"], false);
    let private_subnet = subnets
        .iter()
        .find(|s| s["name"] == "private-subnet")
        .unwrap();
    assert_eq!(private_subnet["cidr"], "10.0.0.0/24");

    let routers = cloud
        .admin
        .call(axum::http::Method::GET, "routers", None)
        .await
        .unwrap();
    let routers = routers["routers"].as_array().unwrap();
    assert_eq!(routers.len(), 1);
    assert_eq!(routers[0]["name"], "router1");
    assert_eq!(
        routers[0]["external_gateway_info"]["network_id"],
        public["id"]
    );
    let router_id = routers[0]["id"].as_str().unwrap();
    let interfaces = cloud
        .admin
        .call(
            axum::http::Method::GET,
            &format!("ports?device_id={router_id}&device_owner=network:router_interface"),
            None,
        )
        .await
        .unwrap();
    let interfaces = interfaces["ports"].as_array().unwrap();
    assert_eq!(interfaces.len(), 1);
    assert_eq!(interfaces[0]["fixed_ips"][0]["ip_address"], "10.0.0.1");

    // The private network has its DHCP port, and the host runs router1.
    let private_id = private["id"].as_str().unwrap();
    let agent = HostAgent::new(
        cloud.service.clone(),
        "h1".into(),
        settings(),
        filtered_reconciler(),
        Arc::new(RecordingDataplane::new()),
        Arc::new(RecordingDhcp::new()),
        Arc::new(NoProbe),
    );
    let desired = agent.desired_state().await.unwrap();
    let private_spec = desired
        .networks
        .iter()
        .find(|n| n.id == private_id)
        .expect("private is on h1");
    assert_eq!(
        private_spec.dhcp_port.as_ref().unwrap().ip,
        Ipv4Addr::new(10, 0, 0, 2)
    );
    assert_eq!(desired.routers.len(), 1);
    let router = &desired.routers[0];
    assert!(router.enable_snat);
    assert_eq!(router.interfaces.len(), 1);
    assert_eq!(router.interfaces[0].ip, Ipv4Addr::new(10, 0, 0, 1));
    let gateway = router.gateway.as_ref().expect("router1's gateway");
    assert_eq!(gateway.cidr.to_string(), "172.24.4.0/24");
    assert_eq!(gateway.gateway_ip, Some(Ipv4Addr::new(172, 24, 4, 1)));
    assert!(
        desired.networks.iter().any(|n| n.id == gateway.network_id),
        "the external network gets its bridge"
    );
}

// ---------------------------------------------------------------------
// The real dataplane. Every device the test creates carries ids made up
// for this run, and the guard removes them even when an assertion fails.

fn is_root() -> bool {
    can_administer_network() && Path::new("/run").exists()
}

fn command_ok(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .status()
        .is_ok_and(|status| status.success())
}

struct LinuxCleanup {
    links: Vec<String>,
    namespaces: Vec<String>,
    dnsmasq_pid_file: PathBuf,
}

impl Drop for LinuxCleanup {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.dnsmasq_pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let is_dnsmasq = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "dnsmasq");
            if is_dnsmasq {
                command_ok("kill", &["-KILL", &pid.to_string()]);
            }
        }
        for namespace in &self.namespaces {
            if Path::new("/run/netns").join(namespace).exists() {
                command_ok("ip", &["netns", "del", namespace]);
            }
        }
        for link in &self.links {
            if Path::new("/sys/class/net").join(link).exists() {
                command_ok("ip", &["link", "del", link]);
            }
        }
    }
}

async fn wait_for(what: &str, seconds: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {seconds} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn master_of(link: &str) -> Option<String> {
    let target = std::fs::read_link(Path::new("/sys/class/net").join(link).join("master")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_agent_plugs_taps_and_restarts_dnsmasq() {
    if !is_root() {
        eprintln!("skipped: creating bridges and namespaces needs root (CAP_NET_ADMIN)");
        return;
    }
    if !command_ok("sh", &["-c", "command -v dnsmasq && command -v ip"]) {
        eprintln!("skipped: dnsmasq or ip (iproute2) is not installed");
        return;
    }
    // A VNI of this run only, so no other cloud on this machine has it.
    let vni: i64 = 100_000 + i64::from(rand::random::<u32>() % 16_000_000);
    let config = NetworkConfig {
        vni_min: vni,
        vni_max: vni,
        ..NetworkConfig::default()
    };
    let cloud = TestNetworks::start(config).await;
    let host = format!("h-{:08x}", rand::random::<u32>());
    cloud
        .service
        .report_agent(&host, vxlan_agent())
        .await
        .unwrap();
    let (network_id, _) = cloud.network("p1", "net1", "10.5.0.0/24", json!({})).await;
    let port = bound_port(&cloud, "p1", &network_id, &host).await;
    let dhcp_port = cloud
        .service
        .dhcp_port(&oxstack_network::model::NetworkId::new(&network_id))
        .await
        .unwrap()
        .unwrap();

    let bridge = format!("brq{}", &network_id[..11]);
    let tap = format!("tap{}", &port.id.as_str()[..11]);
    let namespace = format!("qdhcp-{network_id}");
    let state_dir = cloud.dir.path().join("dhcp");
    std::fs::create_dir_all(&state_dir).unwrap();
    // dnsmasq drops root to `nobody` and rereads its hosts file as that user.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(cloud.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let _cleanup = LinuxCleanup {
        links: vec![
            tap.clone(),
            format!("tap{}", &dhcp_port.id.as_str()[..11]),
            format!("vxlan-{vni}"),
            bridge.clone(),
        ],
        namespaces: vec![namespace.clone()],
        dnsmasq_pid_file: state_dir.join(&network_id).join("pid"),
    };

    let dnsmasq = Dnsmasq::new(&state_dir);
    let agent = Arc::new(HostAgent::new(
        cloud.service.clone(),
        host.clone(),
        settings(),
        filtered_reconciler(),
        Arc::new(LinuxDataplane::new().unwrap()),
        Arc::new(dnsmasq.clone()),
        Arc::new(LinuxProbe::new(dnsmasq.clone())),
    ));
    agent.ensure_network_plugged(&network_id).await.unwrap();
    assert!(
        Path::new("/sys/class/net").join(&bridge).exists(),
        "bridge {bridge} exists before any tap"
    );
    let task = agent.spawn(Duration::from_millis(500));

    // The hypervisor's tap appears after the bridge; the periodic check
    // finds it outside the bridge and plugs it.
    assert!(
        command_ok("ip", &["tuntap", "add", "dev", &tap, "mode", "tap"]),
        "ip tuntap add {tap}"
    );
    wait_for("the tap joins its bridge", 5, || {
        master_of(&tap).as_deref() == Some(bridge.as_str())
    })
    .await;

    let first_pid = dnsmasq
        .running_pid(&network_id)
        .expect("dnsmasq runs for the network");
    let hosts = std::fs::read_to_string(state_dir.join(&network_id).join("host")).unwrap();
    assert!(
        hosts.contains(&format!("{},", port.mac_address)),
        "hosts file: {hosts}"
    );
    assert!(hosts.contains("10.5.0.3"), "hosts file: {hosts}");

    assert!(command_ok("kill", &["-KILL", &first_pid.to_string()]));
    wait_for("dnsmasq is restarted", 5, || {
        dnsmasq
            .running_pid(&network_id)
            .is_some_and(|pid| pid != first_pid)
    })
    .await;

    assert!(cloud
        .service
        .delete_device_port(&PortId::new(port.id.as_str()))
        .await
        .unwrap());
    cloud
        .admin
        .call(
            axum::http::Method::DELETE,
            &format!("networks/{network_id}"),
            None,
        )
        .await
        .unwrap();
    wait_for("the bridge, namespace and dnsmasq are removed", 5, || {
        !Path::new("/sys/class/net").join(&bridge).exists()
            && !Path::new("/run/netns").join(&namespace).exists()
            && dnsmasq.running_pid(&network_id).is_none()
    })
    .await;
    task.abort();
    assert!(
        LinuxDataplane::new()
            .unwrap()
            .link_exists(&tap)
            .await
            .unwrap(),
        "the agent leaves the hypervisor's tap to it"
    );
    let _ = dnsmasq.stop(&network_id).await;
}
