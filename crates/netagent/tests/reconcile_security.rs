//! Reconciliation of security groups, routers and metadata proxies against
//! the in-memory fakes, including an agent restarted over an existing host.

use std::net::Ipv4Addr;
use std::sync::Arc;

use oxstack_netagent::{
    DataplaneOp, DesiredState, DhcpOp, Direction, FloatingIpSpec, MetadataOp, MetadataSpec,
    NetworkSpec, NftOp, PortSpec, ReconcileError, Reconciler, RecordingDataplane, RecordingDhcp,
    RecordingMetadataProxy, RecordingNftables, RouterGateway, RouterInterface, RouterSpec,
    RuleRemote, SecurityRule, SubnetSpec,
};

const NET: &str = "0d3f5a7c-1111-4222-8333-944455556666";
const EXT: &str = "e0e0e0e0-1111-4222-8333-944455556666";
const ROUTER: &str = "7a7a7a7a-1111-4222-8333-944455556666";
const VM_A: &str = "aa22cc33-dd44-4e55-8f66-077788889999";
const VM_B: &str = "bb22cc33-dd44-4e55-8f66-077788889999";
const DHCP_PORT: &str = "dd11bb22-cc33-4d44-8e55-f66677778888";
const QR_PORT: &str = "c1c1c1c1-cc33-4d44-8e55-f66677778888";
const QG_PORT: &str = "c2c2c2c2-cc33-4d44-8e55-f66677778888";

struct Host {
    dataplane: RecordingDataplane,
    dhcp: RecordingDhcp,
    nft: Arc<RecordingNftables>,
    metadata: Arc<RecordingMetadataProxy>,
}

impl Host {
    fn new() -> Self {
        Self {
            dataplane: RecordingDataplane::new(),
            dhcp: RecordingDhcp::new(),
            nft: Arc::new(RecordingNftables::new()),
            metadata: Arc::new(RecordingMetadataProxy::new()),
        }
    }

    /// Builds a reconciler over this host, as the agent does at start.
    fn reconciler(&self, state_dir: Option<&std::path::Path>) -> Reconciler {
        let reconciler = Reconciler::new()
            .with_nftables(self.nft.clone())
            .with_metadata_proxy(self.metadata.clone());
        match state_dir {
            Some(dir) => reconciler.with_state_dir(dir).unwrap(),
            None => reconciler,
        }
    }

    async fn apply(&self, reconciler: &mut Reconciler, state: &DesiredState) {
        reconciler
            .reconcile(state, &self.dataplane, &self.dhcp)
            .await
            .unwrap();
    }

    fn take_all_ops(&self) -> (Vec<DataplaneOp>, Vec<DhcpOp>, Vec<NftOp>, Vec<MetadataOp>) {
        (
            self.dataplane.take_ops(),
            self.dhcp.take_ops(),
            self.nft.take_ops(),
            self.metadata.take_ops(),
        )
    }
}

fn icmp_from(members: &[Ipv4Addr]) -> SecurityRule {
    SecurityRule {
        direction: Direction::Ingress,
        protocol: Some(1),
        remote: RuleRemote::Members(
            members
                .iter()
                .map(|ip| ipnet::IpNet::V4((*ip).into()))
                .collect(),
        ),
        ..SecurityRule::default()
    }
}

fn vm(id: &str, last: u8) -> PortSpec {
    let group = [Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 11)];
    PortSpec {
        id: id.into(),
        mac: format!("fa:16:3e:00:00:{last:02x}").parse().unwrap(),
        ip: Ipv4Addr::new(10, 0, 0, last),
        security_rules: vec![
            icmp_from(&group),
            SecurityRule {
                direction: Direction::Egress,
                ..SecurityRule::default()
            },
        ],
        ..PortSpec::default()
    }
}

fn tenant_network() -> NetworkSpec {
    NetworkSpec {
        id: NET.into(),
        mtu: 1450,
        subnet: Some(SubnetSpec {
            cidr: "10.0.0.0/24".parse().unwrap(),
            lease_seconds: 600,
            gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
        }),
        dhcp_port: Some(PortSpec {
            id: DHCP_PORT.into(),
            mac: "fa:16:3e:00:00:02".parse().unwrap(),
            ip: Ipv4Addr::new(10, 0, 0, 2),
            ..PortSpec::default()
        }),
        ports: vec![vm(VM_A, 10), vm(VM_B, 11)],
        ..NetworkSpec::default()
    }
}

fn external_network() -> NetworkSpec {
    NetworkSpec {
        id: EXT.into(),
        mtu: 1500,
        bridge: Some("br-ex".into()),
        ..NetworkSpec::default()
    }
}

fn router(floating: bool) -> RouterSpec {
    RouterSpec {
        id: ROUTER.into(),
        gateway: Some(RouterGateway {
            port_id: QG_PORT.into(),
            mac: "fa:16:3e:00:01:01".parse().unwrap(),
            ip: Ipv4Addr::new(203, 0, 113, 10),
            cidr: "203.0.113.0/24".parse().unwrap(),
            network_id: EXT.into(),
            gateway_ip: Some(Ipv4Addr::new(203, 0, 113, 1)),
        }),
        interfaces: vec![RouterInterface {
            port_id: QR_PORT.into(),
            mac: "fa:16:3e:00:01:02".parse().unwrap(),
            ip: Ipv4Addr::new(10, 0, 0, 1),
            cidr: "10.0.0.0/24".parse().unwrap(),
            network_id: NET.into(),
        }],
        floating_ips: floating
            .then(|| FloatingIpSpec {
                floating_ip: Ipv4Addr::new(203, 0, 113, 20),
                fixed_ip: Ipv4Addr::new(10, 0, 0, 10),
            })
            .into_iter()
            .collect(),
        enable_snat: true,
    }
}

fn everything() -> DesiredState {
    DesiredState {
        networks: vec![tenant_network(), external_network()],
        routers: vec![router(true)],
        metadata: Some(MetadataSpec {
            upstream: "127.0.0.1:8775".parse().unwrap(),
        }),
    }
}

#[tokio::test]
async fn filtered_ports_replace_both_tables() {
    let host = Host::new();
    let mut reconciler = host.reconciler(None);
    host.apply(
        &mut reconciler,
        &DesiredState {
            networks: vec![tenant_network()],
            ..DesiredState::default()
        },
    )
    .await;

    assert!(host
        .dataplane
        .take_ops()
        .contains(&DataplaneOp::EnableBridgeNetfilter));
    let inet = host.nft.table(None, "inet", "oxstack").unwrap();
    assert!(
        inet.contains("ip saddr { 10.0.0.10/32, 10.0.0.11/32 } meta l4proto icmp accept"),
        "{inet}"
    );
    let bridge = host.nft.table(None, "bridge", "oxstack").unwrap();
    assert!(bridge.contains("jump spoof_aa22cc33_dd"));
    assert!(bridge.contains("jump spoof_bb22cc33_dd"));
    assert!(
        !bridge.contains("dd11bb22"),
        "the DHCP port is not filtered"
    );
}

#[tokio::test]
async fn rule_changes_replace_or_drop_tables() {
    let host = Host::new();
    let mut reconciler = host.reconciler(None);
    let mut state = DesiredState {
        networks: vec![tenant_network()],
        ..DesiredState::default()
    };
    host.apply(&mut reconciler, &state).await;
    host.nft.take_ops();

    state.networks[0].ports[1].security_rules.clear();
    host.apply(&mut reconciler, &state).await;
    let ops = host.nft.take_ops();
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert!(ops.iter().all(|op| matches!(op, NftOp::Replace { .. })));

    for port in &mut state.networks[0].ports {
        port.port_security = false;
    }
    host.apply(&mut reconciler, &state).await;
    assert_eq!(host.nft.tables(), Vec::new());
}

#[tokio::test]
async fn filtered_ports_without_nftables_fail() {
    let dataplane = RecordingDataplane::new();
    let dhcp = RecordingDhcp::new();
    let error = Reconciler::new()
        .reconcile(
            &DesiredState {
                networks: vec![tenant_network()],
                ..DesiredState::default()
            },
            &dataplane,
            &dhcp,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, ReconcileError::NoNftables), "{error:?}");
}

#[tokio::test]
async fn router_gets_namespace_interfaces_routes_and_nat() {
    let host = Host::new();
    host.dataplane.add_tap("br-ex");
    let mut reconciler = host.reconciler(None);
    host.apply(&mut reconciler, &everything()).await;

    let namespace = format!("qrouter-{ROUTER}");
    assert!(host.dataplane.namespaces().contains(&namespace));
    assert_eq!(
        host.dataplane.master_of("tapc1c1c1c1-cc").as_deref(),
        Some("brq0d3f5a7c-11")
    );
    assert_eq!(
        host.dataplane.master_of("tapc2c2c2c2-cc").as_deref(),
        Some("br-ex")
    );
    assert_eq!(
        host.dataplane.namespace_of("qr-c1c1c1c1-cc"),
        Some(namespace.clone())
    );
    assert_eq!(
        host.dataplane.addresses_of("qr-c1c1c1c1-cc"),
        vec!["10.0.0.1/24".parse().unwrap()]
    );
    assert_eq!(
        host.dataplane.addresses_of("qg-c2c2c2c2-cc"),
        vec![
            "203.0.113.10/24".parse().unwrap(),
            "203.0.113.20/32".parse().unwrap()
        ]
    );
    assert_eq!(
        host.dataplane.routing_of(&namespace),
        Some(Some(Ipv4Addr::new(203, 0, 113, 1)))
    );
    let nat = host.nft.table(Some(&namespace), "ip", "oxstack").unwrap();
    assert!(
        nat.contains("ip daddr 203.0.113.20 dnat to 10.0.0.10"),
        "{nat}"
    );
    assert!(nat.contains("snat to 203.0.113.10"));

    // Disassociating the floating IP takes its address and rules away.
    let mut state = everything();
    state.routers[0] = router(false);
    host.apply(&mut reconciler, &state).await;
    assert_eq!(
        host.dataplane.addresses_of("qg-c2c2c2c2-cc"),
        vec!["203.0.113.10/24".parse().unwrap()]
    );
    let nat = host.nft.table(Some(&namespace), "ip", "oxstack").unwrap();
    assert!(!nat.contains("203.0.113.20"), "{nat}");
}

#[tokio::test]
async fn router_on_unknown_network_is_refused() {
    let host = Host::new();
    let mut reconciler = host.reconciler(None);
    let state = DesiredState {
        networks: vec![tenant_network()],
        routers: vec![router(false)],
        ..DesiredState::default()
    };
    let error = reconciler
        .reconcile(&state, &host.dataplane, &host.dhcp)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ReconcileError::RouterNetworkMissing { ref network_id, .. } if network_id == EXT),
        "{error:?}"
    );
}

#[tokio::test]
async fn missing_mapped_bridge_is_never_created() {
    let host = Host::new();
    let mut reconciler = host.reconciler(None);
    let error = reconciler
        .reconcile(
            &DesiredState {
                networks: vec![external_network()],
                ..DesiredState::default()
            },
            &host.dataplane,
            &host.dhcp,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ReconcileError::BridgeMissing { ref bridge, .. } if bridge == "br-ex"),
        "{error:?}"
    );
    assert!(!host.dataplane.host_links().contains(&"br-ex".to_string()));
}

#[tokio::test]
async fn metadata_proxy_runs_in_dhcp_namespace() {
    let host = Host::new();
    host.dataplane.add_tap("br-ex");
    let mut reconciler = host.reconciler(None);
    host.apply(&mut reconciler, &everything()).await;

    let namespace = format!("qdhcp-{NET}");
    assert_eq!(
        host.metadata.running(NET),
        Some((namespace, "127.0.0.1:8775".parse().unwrap()))
    );
    assert!(host
        .dataplane
        .addresses_of("ns-dd11bb22-cc")
        .contains(&"169.254.169.254/32".parse().unwrap()));
    let config = host.dhcp.running(NET).unwrap();
    assert_eq!(config.metadata_next_hop, Some(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(config.router, Some(Ipv4Addr::new(10, 0, 0, 1)));

    let mut without = everything();
    without.metadata = None;
    host.apply(&mut reconciler, &without).await;
    assert_eq!(host.metadata.running(NET), None);
    assert_eq!(host.dhcp.running(NET).unwrap().metadata_next_hop, None);
}

#[tokio::test]
async fn restarted_agent_keeps_unchanged_host() {
    let host = Host::new();
    host.dataplane.add_tap("br-ex");
    host.dataplane.add_tap("tapaa22cc33-dd");
    host.dataplane.add_tap("tapbb22cc33-dd");
    let state_dir = tempfile::tempdir().unwrap();
    let mut first = host.reconciler(Some(state_dir.path()));
    host.apply(&mut first, &everything()).await;
    drop(first);
    let (_, _, nft_ops, _) = host.take_all_ops();
    assert!(!nft_ops.is_empty());

    let mut second = host.reconciler(Some(state_dir.path()));
    host.apply(&mut second, &everything()).await;

    let (dataplane_ops, dhcp_ops, nft_ops, _) = host.take_all_ops();
    assert_eq!(dataplane_ops, Vec::new());
    assert_eq!(dhcp_ops, Vec::new());
    assert_eq!(
        nft_ops,
        Vec::new(),
        "a restart must not rewrite identical tables"
    );
}

#[tokio::test]
async fn restarted_agent_removes_what_its_predecessor_created() {
    let host = Host::new();
    host.dataplane.add_tap("br-ex");
    let state_dir = tempfile::tempdir().unwrap();
    let mut first = host.reconciler(Some(state_dir.path()));
    host.apply(&mut first, &everything()).await;
    drop(first);

    let mut second = host.reconciler(Some(state_dir.path()));
    host.apply(&mut second, &DesiredState::default()).await;

    // Only the operator's bridge is left: it was mapped, never created.
    assert_eq!(host.dataplane.host_links(), vec!["br-ex".to_string()]);
    assert_eq!(host.dataplane.namespaces(), Vec::<String>::new());
    assert_eq!(host.dhcp.running(NET), None);
    assert_eq!(host.metadata.running(NET), None);
    host.nft.drop_namespace(&format!("qrouter-{ROUTER}"));
    assert_eq!(host.nft.tables(), Vec::new());
}

#[tokio::test]
async fn agent_without_ledger_leaves_unknown_devices_alone() {
    let host = Host::new();
    host.dataplane.add_tap("br-ex");
    let mut first = host.reconciler(None);
    host.apply(&mut first, &everything()).await;
    drop(first);
    let before = host.dataplane.host_links();

    let empty_state_dir = tempfile::tempdir().unwrap();
    let mut stranger = host.reconciler(Some(empty_state_dir.path()));
    host.apply(&mut stranger, &DesiredState::default()).await;

    assert_eq!(host.dataplane.host_links(), before);
}

#[tokio::test]
async fn removed_router_interface_deletes_its_veth() {
    let host = Host::new();
    host.dataplane.add_tap("br-ex");
    let mut reconciler = host.reconciler(None);
    host.apply(&mut reconciler, &everything()).await;

    let mut state = everything();
    state.routers[0].interfaces.clear();
    host.apply(&mut reconciler, &state).await;

    let links = host.dataplane.host_links();
    assert!(!links.contains(&"tapc1c1c1c1-cc".to_string()), "{links:?}");
    assert!(links.contains(&"tapc2c2c2c2-cc".to_string()));
    let nat = host
        .nft
        .table(Some(&format!("qrouter-{ROUTER}")), "ip", "oxstack")
        .unwrap();
    assert!(!nat.contains("10.0.0.0/24"), "{nat}");
}
