//! Reconciliation against the in-memory dataplane and DHCP fakes.

use std::net::Ipv4Addr;

use oxstack_netagent::{
    DataplaneOp, DesiredState, DhcpOp, NetworkSpec, PortSpec, ReconcileError, Reconciler,
    RecordingDataplane, RecordingDhcp, SubnetSpec, VxlanSpec,
};

const NET: &str = "0d3f5a7c-1111-4222-8333-944455556666";
const DHCP_PORT: &str = "aa11bb22-cc33-4d44-8e55-f66677778888";
const VM_PORT: &str = "bb22cc33-dd44-4e55-8f66-077788889999";

fn port(id: &str, last: u8) -> PortSpec {
    PortSpec {
        id: id.to_string(),
        mac: format!("fa:16:3e:00:00:{last:02x}").parse().unwrap(),
        ip: Ipv4Addr::new(198, 18, 9, last),
        // These tests cover links and DHCP; filtered ports are in reconcile_security.rs.
        port_security: false,
        ..PortSpec::default()
    }
}

fn network() -> NetworkSpec {
    NetworkSpec {
        id: NET.to_string(),
        mtu: 1450,
        vxlan: Some(VxlanSpec {
            vni: 1001,
            local_ip: Ipv4Addr::new(192, 0, 2, 1),
        }),
        subnet: Some(SubnetSpec {
            cidr: "198.18.9.0/24".parse().unwrap(),
            lease_seconds: 86400,
            gateway: None,
        }),
        dhcp_port: Some(port(DHCP_PORT, 2)),
        ports: vec![port(VM_PORT, 10)],
        bridge: None,
    }
}

fn desired(networks: Vec<NetworkSpec>) -> DesiredState {
    DesiredState {
        networks,
        ..DesiredState::default()
    }
}

#[tokio::test]
async fn first_run_builds_second_changes_nothing() {
    let dataplane = RecordingDataplane::new();
    let dhcp = RecordingDhcp::new();
    let mut reconciler = Reconciler::new();
    let state = desired(vec![network()]);

    reconciler
        .reconcile(&state, &dataplane, &dhcp)
        .await
        .unwrap();

    let ops = dataplane.take_ops();
    assert!(ops.contains(&DataplaneOp::CreateBridge("brq0d3f5a7c-11".into())));
    assert!(ops.contains(&DataplaneOp::CreateVxlan {
        name: "vxlan-1001".into(),
        vni: 1001
    }));
    assert!(ops.contains(&DataplaneOp::CreateNamespace(format!("qdhcp-{NET}"))));
    assert!(ops.contains(&DataplaneOp::CreateVeth {
        host_end: "tapaa11bb22-cc".into(),
        peer_end: "ns-aa11bb22-cc".into()
    }));
    assert!(ops.contains(&DataplaneOp::SetMaster {
        link: "tapaa11bb22-cc".into(),
        bridge: "brq0d3f5a7c-11".into()
    }));
    assert!(ops.contains(&DataplaneOp::SetAddress {
        link: "ns-aa11bb22-cc".into(),
        address: "198.18.9.2/24".parse().unwrap()
    }));
    assert_eq!(dhcp.take_ops(), vec![DhcpOp::Start(NET.into())]);
    let config = dhcp.running(NET).unwrap();
    assert_eq!(config.interface, "ns-aa11bb22-cc");
    assert_eq!(config.hosts.len(), 1);
    assert_eq!(config.hosts[0].ip, Ipv4Addr::new(198, 18, 9, 10));

    reconciler
        .reconcile(&state, &dataplane, &dhcp)
        .await
        .unwrap();

    assert_eq!(dataplane.take_ops(), Vec::new());
    assert_eq!(dhcp.take_ops(), Vec::new());
}

#[tokio::test]
async fn instance_tap_is_attached_once_it_exists() {
    let dataplane = RecordingDataplane::new();
    let dhcp = RecordingDhcp::new();
    let mut reconciler = Reconciler::new();
    let state = desired(vec![network()]);

    reconciler
        .reconcile(&state, &dataplane, &dhcp)
        .await
        .unwrap();
    assert_eq!(dataplane.master_of("tapbb22cc33-dd"), None);

    dataplane.add_tap("tapbb22cc33-dd");
    reconciler
        .reconcile(&state, &dataplane, &dhcp)
        .await
        .unwrap();

    assert_eq!(
        dataplane.master_of("tapbb22cc33-dd").as_deref(),
        Some("brq0d3f5a7c-11")
    );
}

#[tokio::test]
async fn added_port_reloads_dhcp_only() {
    let dataplane = RecordingDataplane::new();
    let dhcp = RecordingDhcp::new();
    let mut reconciler = Reconciler::new();
    reconciler
        .reconcile(&desired(vec![network()]), &dataplane, &dhcp)
        .await
        .unwrap();
    dataplane.take_ops();
    dhcp.take_ops();

    let mut changed = network();
    changed
        .ports
        .push(port("cc33dd44-ee55-4f66-8077-188899990000", 11));
    reconciler
        .reconcile(&desired(vec![changed]), &dataplane, &dhcp)
        .await
        .unwrap();

    assert_eq!(dhcp.take_ops(), vec![DhcpOp::Reload(NET.into())]);
    assert_eq!(dhcp.running(NET).unwrap().hosts.len(), 2);
    assert_eq!(dataplane.take_ops(), Vec::new());
}

#[tokio::test]
async fn dead_dhcp_server_is_restarted() {
    let dataplane = RecordingDataplane::new();
    let dhcp = RecordingDhcp::new();
    let mut reconciler = Reconciler::new();
    let state = desired(vec![network()]);
    reconciler
        .reconcile(&state, &dataplane, &dhcp)
        .await
        .unwrap();
    dhcp.take_ops();

    dhcp.kill(NET);
    reconciler
        .reconcile(&state, &dataplane, &dhcp)
        .await
        .unwrap();

    assert_eq!(dhcp.take_ops(), vec![DhcpOp::Start(NET.into())]);
}

#[tokio::test]
async fn removed_network_leaves_nothing() {
    let dataplane = RecordingDataplane::new();
    let dhcp = RecordingDhcp::new();
    let mut reconciler = Reconciler::new();
    reconciler
        .reconcile(&desired(vec![network()]), &dataplane, &dhcp)
        .await
        .unwrap();

    reconciler
        .reconcile(&desired(Vec::new()), &dataplane, &dhcp)
        .await
        .unwrap();

    assert_eq!(dataplane.host_links(), Vec::<String>::new());
    assert_eq!(dataplane.namespaces(), Vec::<String>::new());
    assert_eq!(dhcp.running(NET), None);
    assert!(dhcp.take_ops().contains(&DhcpOp::Stop(NET.into())));
}

#[tokio::test]
async fn changed_vni_replaces_vxlan_device() {
    let dataplane = RecordingDataplane::new();
    let dhcp = RecordingDhcp::new();
    let mut reconciler = Reconciler::new();
    reconciler
        .reconcile(&desired(vec![network()]), &dataplane, &dhcp)
        .await
        .unwrap();
    dataplane.take_ops();

    let mut changed = network();
    changed.vxlan = Some(VxlanSpec {
        vni: 1002,
        local_ip: Ipv4Addr::new(192, 0, 2, 1),
    });
    reconciler
        .reconcile(&desired(vec![changed]), &dataplane, &dhcp)
        .await
        .unwrap();

    let ops = dataplane.take_ops();
    assert!(ops.contains(&DataplaneOp::DeleteLink("vxlan-1001".into())));
    assert!(ops.contains(&DataplaneOp::CreateVxlan {
        name: "vxlan-1002".into(),
        vni: 1002
    }));
}

#[tokio::test]
async fn failed_step_is_retried_on_next_run() {
    let dataplane = RecordingDataplane::new();
    let dhcp = RecordingDhcp::new();
    let mut reconciler = Reconciler::new();
    let state = desired(vec![network()]);

    dataplane.fail_on("ensure_namespace");
    let error = reconciler
        .reconcile(&state, &dataplane, &dhcp)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ReconcileError::Dataplane { ref network_id, .. } if network_id == NET),
        "{error:?}"
    );
    assert_eq!(dhcp.running(NET), None);

    dataplane.clear_failure();
    reconciler
        .reconcile(&state, &dataplane, &dhcp)
        .await
        .unwrap();

    assert!(dataplane.namespaces().contains(&format!("qdhcp-{NET}")));
    assert_eq!(dhcp.take_ops(), vec![DhcpOp::Start(NET.into())]);
}

#[tokio::test]
async fn failed_removal_is_retried_on_next_run() {
    let dataplane = RecordingDataplane::new();
    let dhcp = RecordingDhcp::new();
    let mut reconciler = Reconciler::new();
    reconciler
        .reconcile(&desired(vec![network()]), &dataplane, &dhcp)
        .await
        .unwrap();

    dhcp.fail_on("stop");
    assert!(reconciler
        .reconcile(&desired(Vec::new()), &dataplane, &dhcp)
        .await
        .is_err());
    assert!(!dataplane.host_links().is_empty());

    dhcp.clear_failure();
    reconciler
        .reconcile(&desired(Vec::new()), &dataplane, &dhcp)
        .await
        .unwrap();

    assert_eq!(dataplane.host_links(), Vec::<String>::new());
    assert_eq!(dataplane.namespaces(), Vec::<String>::new());
}

#[tokio::test]
async fn one_failing_network_does_not_block_others() {
    let dataplane = RecordingDataplane::new();
    let dhcp = RecordingDhcp::new();
    let mut reconciler = Reconciler::new();
    let mut bad = network();
    bad.id = "ffffffff-0000-4000-8000-000000000000".into();
    bad.vxlan = None;
    bad.dhcp_port = Some(PortSpec {
        ip: Ipv4Addr::new(203, 0, 113, 2),
        ..port(DHCP_PORT, 3)
    });
    let mut good = network();
    good.dhcp_port = Some(port("dd44ee55-ff66-4077-8188-299900001111", 2));

    let error = reconciler
        .reconcile(&desired(vec![bad, good]), &dataplane, &dhcp)
        .await
        .unwrap_err();

    assert!(
        matches!(error, ReconcileError::DhcpPortOutsideSubnet { .. }),
        "{error:?}"
    );
    assert!(dhcp.running(NET).is_some());
}

#[tokio::test]
async fn failed_new_network_is_removed_cleanly() {
    let dataplane = RecordingDataplane::new();
    let dhcp = RecordingDhcp::new();
    let mut reconciler = Reconciler::new();

    dataplane.fail_on("move_into_namespace");
    assert!(reconciler
        .reconcile(&desired(vec![network()]), &dataplane, &dhcp)
        .await
        .is_err());
    assert!(!dataplane.host_links().is_empty());
    assert!(!dataplane.namespaces().is_empty());

    dataplane.clear_failure();
    reconciler
        .reconcile(&desired(Vec::new()), &dataplane, &dhcp)
        .await
        .unwrap();

    assert_eq!(dataplane.host_links(), Vec::<String>::new());
    assert_eq!(dataplane.namespaces(), Vec::<String>::new());
}

#[tokio::test]
async fn ensure_address_adds_once_needs_link() {
    use oxstack_netagent::Dataplane;

    let dataplane = RecordingDataplane::new();
    let address: oxstack_netagent::ipnet::Ipv4Net = "203.0.113.1/24".parse().unwrap();
    let missing = dataplane.ensure_address("br-test", address).await;
    assert!(missing.is_err(), "a missing link must be an error");

    dataplane.ensure_bridge("br-test", 1500).await.unwrap();
    dataplane.take_ops();
    dataplane.ensure_address("br-test", address).await.unwrap();
    dataplane.ensure_address("br-test", address).await.unwrap();
    assert_eq!(
        dataplane.take_ops(),
        vec![DataplaneOp::SetAddress {
            link: "br-test".into(),
            address
        }]
    );
    assert_eq!(dataplane.addresses_of("br-test"), vec![address]);
}
