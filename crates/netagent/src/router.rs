//! Routers: a `qrouter-<id>` namespace with one `qr-` interface per internal
//! subnet, a `qg-` interface on the external network, and an `ip oxstack`
//! NAT table for SNAT and floating IPs.
//!
//! Each interface is a veth pair: the `tap<port id>` end sits in the
//! network's bridge in the agent's namespace, the `qr-`/`qg-` end in the
//! router namespace with the port's MAC and address. Floating IPs are extra
//! /32 addresses on `qg-`, so the router replies to ARP for them itself.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use ipnet::Ipv4Net;

use crate::dataplane::Dataplane;
use crate::desired::{
    router_gateway_name, router_interface_name, router_namespace, tap_name, DesiredState, MacAddr,
    RouterSpec,
};
use crate::nft::{NftTable, Nftables, TableRef};
use crate::reconcile::{bridge_of, ReconcileError};

/// Name of the NAT table inside each router namespace.
const NAT_TABLE: &str = "oxstack";

/// Returns the router's NAT table, or `None` when it has no gateway and so
/// nothing to translate.
pub(crate) fn nat_table(router: &RouterSpec) -> Option<NftTable> {
    let gateway = router.gateway.as_ref()?;
    let qg = router_gateway_name(&gateway.port_id);
    let mut body = String::new();

    // NOTE: only traffic arriving on `qg-` is translated, so a server behind
    // the same router cannot reach another server through its floating IP.
    body.push_str(
        "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n",
    );
    for fip in &router.floating_ips {
        let _ = writeln!(
            body,
            "\t\tiifname \"{qg}\" ip daddr {} dnat to {}",
            fip.floating_ip, fip.fixed_ip
        );
    }
    body.push_str("\t}\n");

    body.push_str(
        "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
    );
    // A fixed IP with a floating IP leaves from it, not from the gateway.
    for fip in &router.floating_ips {
        let _ = writeln!(
            body,
            "\t\toifname \"{qg}\" ip saddr {} snat to {}",
            fip.fixed_ip, fip.floating_ip
        );
    }
    let internal: BTreeSet<String> = router
        .interfaces
        .iter()
        .map(|i| i.cidr.trunc().to_string())
        .collect();
    if router.enable_snat && !internal.is_empty() {
        let sources = internal.into_iter().collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            body,
            "\t\toifname \"{qg}\" ip saddr {{ {sources} }} snat to {}",
            gateway.ip
        );
    }
    body.push_str("\t}\n");
    Some(NftTable {
        family: "ip",
        name: NAT_TABLE.to_string(),
        body,
    })
}

/// Returns the ids of the ports whose devices the router owns.
pub(crate) fn router_port_ids(router: &RouterSpec) -> BTreeSet<String> {
    router
        .interfaces
        .iter()
        .map(|i| i.port_id.clone())
        .chain(router.gateway.iter().map(|g| g.port_id.clone()))
        .collect()
}

/// One veth of a router, ready to plug.
struct Leg<'a> {
    port_id: &'a str,
    inner: String,
    mac: MacAddr,
    network_id: &'a str,
    addresses: Vec<Ipv4Net>,
}

/// Brings the router's namespace, interfaces, routes and NAT in line with
/// `router`. `previous_ports` are the ports the router owned before, and
/// the devices of those it no longer owns are deleted.
pub(crate) async fn apply_router(
    router: &RouterSpec,
    previous_ports: &BTreeSet<String>,
    desired: &DesiredState,
    dataplane: &dyn Dataplane,
    nftables: &dyn Nftables,
) -> Result<(), ReconcileError> {
    let id = router.id.as_str();
    let dataplane_error = |source| ReconcileError::Router {
        router_id: id.to_string(),
        source,
    };
    let namespace = router_namespace(id);
    dataplane
        .ensure_namespace(&namespace)
        .await
        .map_err(dataplane_error)?;

    let wanted = router_port_ids(router);
    for gone in previous_ports.difference(&wanted) {
        // Deleting the host end deletes the pair, including the end inside.
        dataplane
            .delete_link(&tap_name(gone))
            .await
            .map_err(dataplane_error)?;
    }

    for leg in legs(router)? {
        plug_leg(&leg, id, &namespace, desired, dataplane).await?;
    }

    let default_gateway = router.gateway.as_ref().and_then(|g| g.gateway_ip);
    dataplane
        .configure_routing(&namespace, default_gateway)
        .await
        .map_err(dataplane_error)?;

    let nft_error = |source| ReconcileError::Nftables {
        scope: format!("router {id}"),
        source,
    };
    let table = TableRef {
        family: "ip",
        name: NAT_TABLE,
    };
    let current = nftables
        .fingerprint(Some(&namespace), table)
        .await
        .map_err(nft_error)?;
    match nat_table(router) {
        Some(wanted) if current.as_deref() != Some(wanted.fingerprint().as_str()) => {
            nftables
                .replace(Some(&namespace), &[wanted])
                .await
                .map_err(nft_error)?;
            tracing::info!(router_id = id, "applied router NAT rules");
        }
        None if current.is_some() => {
            nftables
                .delete(Some(&namespace), table)
                .await
                .map_err(nft_error)?;
        }
        _ => {}
    }
    Ok(())
}

fn legs(router: &RouterSpec) -> Result<Vec<Leg<'_>>, ReconcileError> {
    let mut legs = Vec::new();
    for interface in &router.interfaces {
        legs.push(Leg {
            port_id: &interface.port_id,
            inner: router_interface_name(&interface.port_id),
            mac: interface.mac,
            network_id: &interface.network_id,
            addresses: vec![prefixed(interface.ip, interface.cidr, &router.id)?],
        });
    }
    if let Some(gateway) = &router.gateway {
        let mut addresses = vec![prefixed(gateway.ip, gateway.cidr, &router.id)?];
        addresses.extend(
            router
                .floating_ips
                .iter()
                .map(|f| Ipv4Net::from(f.floating_ip)),
        );
        addresses.dedup();
        legs.push(Leg {
            port_id: &gateway.port_id,
            inner: router_gateway_name(&gateway.port_id),
            mac: gateway.mac,
            network_id: &gateway.network_id,
            addresses,
        });
    }
    Ok(legs)
}

fn prefixed(
    ip: std::net::Ipv4Addr,
    cidr: Ipv4Net,
    router_id: &str,
) -> Result<Ipv4Net, ReconcileError> {
    if !cidr.contains(&ip) {
        return Err(ReconcileError::RouterPortOutsideSubnet {
            router_id: router_id.to_string(),
            port_ip: ip,
            subnet: cidr,
        });
    }
    Ok(Ipv4Net::new(ip, cidr.prefix_len()).expect("prefix length comes from a valid network"))
}

async fn plug_leg(
    leg: &Leg<'_>,
    router_id: &str,
    namespace: &str,
    desired: &DesiredState,
    dataplane: &dyn Dataplane,
) -> Result<(), ReconcileError> {
    let dataplane_error = |source| ReconcileError::Router {
        router_id: router_id.to_string(),
        source,
    };
    let network = desired
        .networks
        .iter()
        .find(|n| n.id == leg.network_id)
        .ok_or_else(|| ReconcileError::RouterNetworkMissing {
            router_id: router_id.to_string(),
            network_id: leg.network_id.to_string(),
        })?;
    let host_end = tap_name(leg.port_id);
    dataplane
        .ensure_veth(&host_end, &leg.inner, leg.mac, network.mtu)
        .await
        .map_err(dataplane_error)?;
    dataplane
        .attach_to_bridge(&host_end, &bridge_of(network), network.mtu)
        .await
        .map_err(dataplane_error)?;
    dataplane
        .move_into_namespace_with_addresses(&leg.inner, namespace, &leg.addresses)
        .await
        .map_err(dataplane_error)
}

/// Deletes the router's namespace (and with it its NAT table and the inner
/// ends of its veths) and the host ends of its ports.
pub(crate) async fn remove_router(
    router_id: &str,
    ports: &BTreeSet<String>,
    dataplane: &dyn Dataplane,
) -> Result<(), ReconcileError> {
    let dataplane_error = |source| ReconcileError::Router {
        router_id: router_id.to_string(),
        source,
    };
    dataplane
        .delete_namespace(&router_namespace(router_id))
        .await
        .map_err(dataplane_error)?;
    for port in ports {
        dataplane
            .delete_link(&tap_name(port))
            .await
            .map_err(dataplane_error)?;
    }
    tracing::info!(router_id, "removed router from host");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{FloatingIpSpec, RouterGateway, RouterInterface};

    fn router() -> RouterSpec {
        RouterSpec {
            id: "r1".into(),
            gateway: Some(RouterGateway {
                port_id: "gwport0000-1111".into(),
                mac: MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]),
                ip: "203.0.113.10".parse().unwrap(),
                cidr: "203.0.113.0/24".parse().unwrap(),
                network_id: "ext".into(),
                gateway_ip: Some("203.0.113.1".parse().unwrap()),
            }),
            interfaces: vec![RouterInterface {
                port_id: "inport0000-2222".into(),
                mac: MacAddr([0xfa, 0x16, 0x3e, 0, 0, 2]),
                ip: "10.0.0.1".parse().unwrap(),
                cidr: "10.0.0.0/24".parse().unwrap(),
                network_id: "net".into(),
            }],
            floating_ips: vec![FloatingIpSpec {
                floating_ip: "203.0.113.20".parse().unwrap(),
                fixed_ip: "10.0.0.5".parse().unwrap(),
            }],
            enable_snat: true,
        }
    }

    #[test]
    fn nat_table_translates_floating_and_internal() {
        let text = nat_table(&router()).unwrap().render();
        assert!(
            text.contains("iifname \"qg-gwport0000-\" ip daddr 203.0.113.20 dnat to 10.0.0.5"),
            "{text}"
        );
        assert!(text.contains("oifname \"qg-gwport0000-\" ip saddr 10.0.0.5 snat to 203.0.113.20"));
        assert!(text
            .contains("oifname \"qg-gwport0000-\" ip saddr { 10.0.0.0/24 } snat to 203.0.113.10"));
        // The floating IP's own SNAT must win over the subnet-wide one.
        assert!(
            text.find("snat to 203.0.113.20").unwrap() < text.find("snat to 203.0.113.10").unwrap()
        );
    }

    #[test]
    fn snat_disabled_keeps_only_floating_ips() {
        let text = nat_table(&RouterSpec {
            enable_snat: false,
            ..router()
        })
        .unwrap()
        .render();
        assert!(!text.contains("snat to 203.0.113.10"), "{text}");
        assert!(text.contains("dnat to 10.0.0.5"));
    }

    #[test]
    fn router_without_gateway_has_no_nat() {
        assert!(nat_table(&RouterSpec {
            gateway: None,
            ..router()
        })
        .is_none());
    }

    #[test]
    fn floating_ips_sit_on_gateway_interface() {
        let router = router();
        let legs = legs(&router).unwrap();
        let gateway = legs.iter().find(|l| l.inner.starts_with("qg-")).unwrap();
        assert_eq!(
            gateway.addresses,
            vec![
                "203.0.113.10/24".parse::<Ipv4Net>().unwrap(),
                "203.0.113.20/32".parse().unwrap()
            ]
        );
    }
}
