//! Security groups and anti-spoofing as nftables rules, per instance tap.
//!
//! Two tables in the agent's namespace work together:
//!
//! - `bridge oxstack` filters every frame crossing a network bridge. Its
//!   `prerouting` chain drops frames a port sends from a MAC, IP or ARP
//!   sender it does not own (stateless checks, which need no connection
//!   tracking). Its `forward` chain, where both the incoming and the
//!   outgoing bridge port are known, writes them into the packet mark: the
//!   sending port's index in the high 16 bits, the receiving port's in the
//!   low 16.
//! - `inet oxstack` filters bridged IP traffic with connection tracking.
//!   Kernels without `nf_conntrack_bridge` (Debian's included, and the build
//!   machines') cannot match `ct state` in the bridge family, so bridged IP
//!   packets reach the IP hooks through `br_netfilter`
//!   (`net.bridge.bridge-nf-call-iptables=1`). There only the mark still
//!   identifies the tap they came from and the tap they go to.
//!
//! NOTE: the agent owns the packet mark of frames bridged to or from its
//! filtered ports. Another user of marks on those frames would be overwritten.

use ipnet::{IpNet, Ipv4Net};
use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::desired::{
    short_id, tap_name, DesiredState, Direction, EtherType, MacAddr, PortSpec, RuleRemote,
    SecurityRule,
};
use crate::nft::NftTable;

/// Name of both filtering tables.
pub(crate) const TABLE: &str = "oxstack";

/// Maximum number of filtered ports per host, because port indexes live in
/// 15 bits of the mark.
pub(crate) const MAX_PORTS: usize = 0x7fff;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
const SCTP: u8 = 132;

/// ICMPv6 types that every port sends and receives regardless of its rules,
/// as in Neutron: neighbour discovery, MLD and router solicitation and advertisement.
const ICMPV6_ALWAYS: &str = "{ mld-listener-query, mld-listener-report, mld-listener-done, \
nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report }";

/// A port whose traffic is filtered, with its mark index.
struct FilteredPort<'a> {
    index: u32,
    tap: String,
    chain: String,
    port: &'a PortSpec,
}

/// Returns the two filtering tables for `desired`, or `None` when no port
/// needs filtering, so the tables must not exist at all. Returns `Err` with
/// the port count when more than [`MAX_PORTS`] ports need filtering.
///
/// Router and DHCP ports are never filtered even when listed among a
/// network's ports, because they forward or reply for addresses that are not
/// their own. Neutron trusts its `network:*` ports the same way.
pub(crate) fn security_tables(desired: &DesiredState) -> Result<Option<[NftTable; 2]>, usize> {
    let trusted: BTreeSet<&str> = desired
        .routers
        .iter()
        .flat_map(|r| {
            r.interfaces
                .iter()
                .map(|i| i.port_id.as_str())
                .chain(r.gateway.iter().map(|g| g.port_id.as_str()))
        })
        .chain(
            desired
                .networks
                .iter()
                .filter_map(|n| n.dhcp_port.as_ref().map(|p| p.id.as_str())),
        )
        .collect();
    let mut ports: Vec<&PortSpec> = desired
        .networks
        .iter()
        .flat_map(|n| n.ports.iter())
        .filter(|p| p.port_security && !trusted.contains(p.id.as_str()))
        .collect();
    if ports.is_empty() {
        return Ok(None);
    }
    // A port listed twice is filtered, and counted, once.
    ports.sort_by(|a, b| a.id.cmp(&b.id));
    ports.dedup_by(|a, b| a.id == b.id);
    if ports.len() > MAX_PORTS {
        return Err(ports.len());
    }
    let filtered: Vec<FilteredPort<'_>> = ports
        .into_iter()
        .zip(1u32..)
        .map(|(port, index)| FilteredPort {
            index,
            tap: tap_name(&port.id),
            chain: short_id(&port.id).replace('-', "_"),
            port,
        })
        .collect();
    Ok(Some([bridge_table(&filtered), inet_table(&filtered)]))
}

fn bridge_table(ports: &[FilteredPort<'_>]) -> NftTable {
    let taps = ports
        .iter()
        .map(|p| format!("\"{}\"", p.tap))
        .collect::<Vec<_>>()
        .join(", ");
    let mut body = String::new();

    body.push_str(
        "\tchain prerouting {\n\t\ttype filter hook prerouting priority -300; policy accept;\n",
    );
    let jumps = ports
        .iter()
        .map(|p| format!("\"{}\" : jump spoof_{}", p.tap, p.chain))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(body, "\t\tiifname vmap {{ {jumps} }}");
    body.push_str("\t}\n");

    // Runs before br_netfilter hands the packet to the IP hooks (priority -1).
    body.push_str(
        "\tchain forward {\n\t\ttype filter hook forward priority -300; policy accept;\n",
    );
    let _ = writeln!(
        body,
        "\t\tiifname != {{ {taps} }} oifname {{ {taps} }} meta mark set 0x00000000"
    );
    for port in ports {
        let _ = writeln!(
            body,
            "\t\tiifname \"{}\" meta mark set 0x{:08x}",
            port.tap,
            port.index << 16
        );
        let _ = writeln!(
            body,
            "\t\toifname \"{}\" meta mark set meta mark | 0x{:08x}",
            port.tap, port.index
        );
    }
    body.push_str("\t}\n");

    for port in ports {
        body.push_str(&spoof_chain(port));
    }
    NftTable {
        family: "bridge",
        name: TABLE.to_string(),
        body,
    }
}

/// Renders the chain of what a port may send: its MAC with its fixed IPs,
/// each allowed address pair with its MAC, DHCP discovery and IPv6
/// link-local sources. Everything else is dropped.
fn spoof_chain(port: &FilteredPort<'_>) -> String {
    let spec = port.port;
    let mut sources: Vec<(MacAddr, Vec<Ipv4Net>)> = vec![(
        spec.mac,
        std::iter::once(spec.ip)
            .chain(spec.extra_ips.iter().copied())
            .map(Ipv4Net::from)
            .collect(),
    )];
    for pair in &spec.allowed_address_pairs {
        let mac = pair.mac.unwrap_or(spec.mac);
        match sources.iter_mut().find(|(m, _)| *m == mac) {
            Some((_, ips)) => ips.push(pair.ip),
            None => sources.push((mac, vec![pair.ip])),
        }
    }

    // NOTE: ports carry IPv4 fixed IPs only, so a filtered port may send
    // IPv6 from link-local and unspecified sources alone.
    let mut chain = format!("\tchain spoof_{} {{\n", port.chain);
    // A port may not act as a DHCP server or an IPv6 router.
    chain.push_str("\t\tether type ip udp sport 67 udp dport 68 drop\n");
    chain.push_str("\t\tether type ip6 icmpv6 type nd-router-advert drop\n");
    let _ = writeln!(
        chain,
        "\t\tether saddr {} ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 return",
        spec.mac
    );
    for (mac, ips) in &sources {
        let ips = set(ips.iter().map(ToString::to_string));
        let _ = writeln!(
            chain,
            "\t\tether saddr {mac} ether type arp arp saddr ether {mac} arp saddr ip {ips} return"
        );
        let _ = writeln!(chain, "\t\tether saddr {mac} ip saddr {ips} return");
        let _ = writeln!(
            chain,
            "\t\tether saddr {mac} ip6 saddr {{ ::, fe80::/10 }} return"
        );
    }
    chain.push_str("\t\tdrop\n\t}\n");
    chain
}

fn inet_table(ports: &[FilteredPort<'_>]) -> NftTable {
    let mut body = String::new();
    body.push_str("\tchain forward {\n\t\ttype filter hook forward priority 0; policy accept;\n");
    body.push_str("\t\tmeta mark 0x00000000 accept\n");
    body.push_str("\t\tct state established,related accept\n");
    body.push_str("\t\tct state invalid drop\n");
    let egress = ports
        .iter()
        .map(|p| format!("0x{:08x} : jump egress_{}", p.index << 16, p.chain))
        .collect::<Vec<_>>()
        .join(", ");
    let ingress = ports
        .iter()
        .map(|p| format!("0x{:08x} : jump ingress_{}", p.index, p.chain))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(body, "\t\tmeta mark & 0xffff0000 vmap {{ {egress} }}");
    let _ = writeln!(body, "\t\tmeta mark & 0x0000ffff vmap {{ {ingress} }}");
    body.push_str("\t}\n");

    for port in ports {
        body.push_str(&rules_chain(port, Direction::Egress));
        body.push_str(&rules_chain(port, Direction::Ingress));
    }
    NftTable {
        family: "inet",
        name: TABLE.to_string(),
        body,
    }
}

/// Renders the port's rules of one direction. Egress chains `return` on a
/// match so that the receiving port's ingress chain still runs, and ingress
/// chains accept.
fn rules_chain(port: &FilteredPort<'_>, direction: Direction) -> String {
    let (name, verdict) = match direction {
        Direction::Egress => ("egress", "return"),
        Direction::Ingress => ("ingress", "accept"),
    };
    let mut chain = format!("\tchain {name}_{} {{\n", port.chain);
    match direction {
        Direction::Egress => chain.push_str("\t\tudp sport 68 udp dport 67 return\n"),
        Direction::Ingress => chain.push_str("\t\tudp sport 67 udp dport 68 accept\n"),
    }
    let _ = writeln!(chain, "\t\ticmpv6 type {ICMPV6_ALWAYS} {verdict}");
    let mut seen = BTreeSet::new();
    for rule in port
        .port
        .security_rules
        .iter()
        .filter(|r| r.direction == direction)
    {
        if let Some(matches) = rule_match(rule) {
            if seen.insert(matches.clone()) {
                let _ = writeln!(chain, "\t\t{matches}{verdict}");
            }
        }
    }
    chain.push_str("\t\tdrop\n\t}\n");
    chain
}

/// Renders the match part of one rule (ending in a space), or `None` for a
/// rule that can match nothing (a remote group without members, or a remote
/// prefix of the other IP version).
fn rule_match(rule: &SecurityRule) -> Option<String> {
    let (family, address) = match rule.ethertype {
        EtherType::Ipv4 => ("ipv4", "ip"),
        EtherType::Ipv6 => ("ipv6", "ip6"),
    };
    let side = match rule.direction {
        Direction::Ingress => "saddr",
        Direction::Egress => "daddr",
    };
    let mut text = format!("meta nfproto {family} ");

    let remotes: Vec<IpNet> = match &rule.remote {
        RuleRemote::Any => Vec::new(),
        RuleRemote::Prefix(prefix) => vec![*prefix],
        RuleRemote::Members(members) if members.is_empty() => return None,
        RuleRemote::Members(members) => members.clone(),
    };
    let remotes: Vec<IpNet> = remotes
        .into_iter()
        .filter(|net| {
            matches!(
                (net, rule.ethertype),
                (IpNet::V4(_), EtherType::Ipv4) | (IpNet::V6(_), EtherType::Ipv6)
            )
        })
        .map(|net| net.trunc())
        .collect();
    if !matches!(rule.remote, RuleRemote::Any) {
        if remotes.is_empty() {
            return None;
        }
        let _ = write!(
            text,
            "{address} {side} {} ",
            set(remotes.iter().map(ToString::to_string))
        );
    }

    let Some(protocol) = rule.protocol else {
        return Some(text);
    };
    match protocol {
        TCP | UDP | SCTP => {
            let name = match protocol {
                TCP => "tcp",
                UDP => "udp",
                _ => "sctp",
            };
            let _ = write!(text, "meta l4proto {name} ");
            match (rule.port_range_min, rule.port_range_max) {
                (Some(min), Some(max)) if min == max => {
                    let _ = write!(text, "{name} dport {min} ");
                }
                (Some(min), Some(max)) => {
                    let _ = write!(text, "{name} dport {min}-{max} ");
                }
                (Some(min), None) => {
                    let _ = write!(text, "{name} dport {min}-65535 ");
                }
                (None, _) => {}
            }
        }
        ICMP | ICMPV6 => {
            let name = if protocol == ICMP { "icmp" } else { "icmpv6" };
            let _ = write!(
                text,
                "meta l4proto {} ",
                if protocol == ICMP {
                    "icmp"
                } else {
                    "ipv6-icmp"
                }
            );
            if let Some(kind) = rule.port_range_min {
                let _ = write!(text, "{name} type {kind} ");
                if let Some(code) = rule.port_range_max {
                    let _ = write!(text, "{name} code {code} ");
                }
            }
        }
        other => {
            let _ = write!(text, "meta l4proto {other} ");
        }
    }
    Some(text)
}

/// Renders one element bare and several as an anonymous set.
fn set(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect::<BTreeSet<_>>().into_iter().collect();
    if items.len() == 1 {
        items[0].clone()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{AddressPair, NetworkSpec};
    use std::net::Ipv4Addr;

    const PORT_A: &str = "aaaa1111-2222-4333-8444-555566667777";
    const PORT_B: &str = "bbbb1111-2222-4333-8444-555566667777";

    fn port(id: &str, last: u8, rules: Vec<SecurityRule>) -> PortSpec {
        PortSpec {
            id: id.into(),
            mac: format!("fa:16:3e:00:00:{last:02x}").parse().unwrap(),
            ip: Ipv4Addr::new(10, 0, 0, last),
            security_rules: rules,
            ..PortSpec::default()
        }
    }

    fn state(ports: Vec<PortSpec>) -> DesiredState {
        DesiredState {
            networks: vec![NetworkSpec {
                id: "net".into(),
                mtu: 1450,
                ports,
                ..NetworkSpec::default()
            }],
            ..DesiredState::default()
        }
    }

    fn tables(ports: Vec<PortSpec>) -> (String, String) {
        let [bridge, inet] = security_tables(&state(ports)).unwrap().unwrap();
        (bridge.render(), inet.render())
    }

    fn chain<'a>(text: &'a str, name: &str) -> &'a str {
        let start = text
            .find(&format!("chain {name} {{"))
            .unwrap_or_else(|| panic!("no chain {name} in:\n{text}"));
        let end = text[start..].find("\n\t}").unwrap();
        &text[start..start + end]
    }

    fn ingress_icmp_from(members: Vec<IpNet>) -> SecurityRule {
        SecurityRule {
            direction: Direction::Ingress,
            protocol: Some(ICMP),
            remote: RuleRemote::Members(members),
            ..SecurityRule::default()
        }
    }

    #[test]
    fn anti_spoofing_allows_own_addresses() {
        let (bridge, _) = tables(vec![port(PORT_A, 5, Vec::new())]);
        let spoof = chain(&bridge, "spoof_aaaa1111_22");
        assert!(
            spoof.contains("ether saddr fa:16:3e:00:00:05 ip saddr 10.0.0.5/32 return"),
            "{spoof}"
        );
        assert!(spoof.contains(
            "ether saddr fa:16:3e:00:00:05 ether type arp arp saddr ether fa:16:3e:00:00:05 arp saddr ip 10.0.0.5/32 return"
        ));
        assert!(spoof.contains(
            "ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 return"
        ));
        assert!(spoof.contains("udp sport 67 udp dport 68 drop"));
        assert!(spoof.trim_end().ends_with("drop"));
        assert!(bridge.contains("iifname vmap { \"tapaaaa1111-22\" : jump spoof_aaaa1111_22 }"));
    }

    #[test]
    fn allowed_address_pairs_widen_the_sources() {
        let mut spec = port(PORT_A, 5, Vec::new());
        spec.allowed_address_pairs = vec![
            AddressPair {
                ip: "10.0.9.0/24".parse().unwrap(),
                mac: None,
            },
            AddressPair {
                ip: "10.0.0.99/32".parse().unwrap(),
                mac: Some("fa:16:3e:99:99:99".parse().unwrap()),
            },
        ];
        let (bridge, _) = tables(vec![spec]);
        let spoof = chain(&bridge, "spoof_aaaa1111_22");
        assert!(
            spoof.contains(
                "ether saddr fa:16:3e:00:00:05 ip saddr { 10.0.0.5/32, 10.0.9.0/24 } return"
            ),
            "{spoof}"
        );
        assert!(spoof.contains("ether saddr fa:16:3e:99:99:99 ip saddr 10.0.0.99/32 return"));
    }

    #[test]
    fn conntrack_precedes_rules_then_drop() {
        let (_, inet) = tables(vec![port(PORT_A, 5, Vec::new())]);
        let forward = chain(&inet, "forward");
        let established = forward.find("ct state established,related accept").unwrap();
        let invalid = forward.find("ct state invalid drop").unwrap();
        let rules = forward.find("vmap").unwrap();
        assert!(established < invalid);
        assert!(invalid < rules);
        assert!(forward.contains("0x00010000 : jump egress_aaaa1111_22"));
        assert!(forward.contains("0x00000001 : jump ingress_aaaa1111_22"));
        let ingress = chain(&inet, "ingress_aaaa1111_22");
        assert!(ingress.trim_end().ends_with("drop"));
        assert!(ingress.contains("udp sport 67 udp dport 68 accept"));
        assert!(
            !ingress.contains("meta nfproto"),
            "no rules were given: {ingress}"
        );
    }

    #[test]
    fn rules_render_protocol_ports_and_prefixes() {
        let rules = vec![
            SecurityRule {
                direction: Direction::Ingress,
                protocol: Some(TCP),
                port_range_min: Some(22),
                port_range_max: Some(22),
                remote: RuleRemote::Prefix("192.0.2.0/24".parse().unwrap()),
                ..SecurityRule::default()
            },
            SecurityRule {
                direction: Direction::Ingress,
                protocol: Some(UDP),
                port_range_min: Some(1000),
                port_range_max: Some(2000),
                ..SecurityRule::default()
            },
            SecurityRule {
                direction: Direction::Ingress,
                protocol: Some(ICMP),
                port_range_min: Some(8),
                port_range_max: Some(0),
                ..SecurityRule::default()
            },
            SecurityRule {
                direction: Direction::Egress,
                ethertype: EtherType::Ipv6,
                ..SecurityRule::default()
            },
        ];
        let (_, inet) = tables(vec![port(PORT_A, 5, rules)]);
        let ingress = chain(&inet, "ingress_aaaa1111_22");
        assert!(
            ingress.contains(
                "meta nfproto ipv4 ip saddr 192.0.2.0/24 meta l4proto tcp tcp dport 22 accept"
            ),
            "{ingress}"
        );
        assert!(ingress.contains("meta nfproto ipv4 meta l4proto udp udp dport 1000-2000 accept"));
        assert!(
            ingress.contains("meta nfproto ipv4 meta l4proto icmp icmp type 8 icmp code 0 accept")
        );
        let egress = chain(&inet, "egress_aaaa1111_22");
        assert!(egress.contains("\t\tmeta nfproto ipv6 return"), "{egress}");
        assert!(!egress.contains("meta nfproto ipv4"));
    }

    #[test]
    fn remote_group_expands_to_member_addresses() {
        let members = vec![
            "10.0.0.5/32".parse().unwrap(),
            "10.0.0.6/32".parse().unwrap(),
        ];
        let (_, inet) = tables(vec![
            port(PORT_A, 5, vec![ingress_icmp_from(members.clone())]),
            port(PORT_B, 6, vec![ingress_icmp_from(Vec::new())]),
        ]);
        let a = chain(&inet, "ingress_aaaa1111_22");
        assert!(
            a.contains(
                "meta nfproto ipv4 ip saddr { 10.0.0.5/32, 10.0.0.6/32 } meta l4proto icmp accept"
            ),
            "{a}"
        );
        // A group without members allows nothing, rather than everything.
        let b = chain(&inet, "ingress_bbbb1111_22");
        assert!(!b.contains("meta l4proto icmp accept"), "{b}");
    }

    #[test]
    fn port_security_off_leaves_port_unfiltered() {
        let mut open = port(PORT_B, 6, Vec::new());
        open.port_security = false;
        let (bridge, inet) = tables(vec![port(PORT_A, 5, Vec::new()), open.clone()]);
        assert!(!bridge.contains("tapbbbb1111-22"));
        assert!(!inet.contains("bbbb1111"));
        assert!(security_tables(&state(vec![open])).unwrap().is_none());
    }

    #[test]
    fn router_and_dhcp_ports_unfiltered() {
        let mut state = state(vec![
            port(PORT_A, 5, Vec::new()),
            port(PORT_B, 1, Vec::new()),
        ]);
        state.networks[0].dhcp_port = Some(port(PORT_A, 5, Vec::new()));
        state.routers = vec![crate::desired::RouterSpec {
            id: "r".into(),
            interfaces: vec![crate::desired::RouterInterface {
                port_id: PORT_B.into(),
                mac: MacAddr::default(),
                ip: Ipv4Addr::new(10, 0, 0, 1),
                cidr: "10.0.0.0/24".parse().unwrap(),
                network_id: "net".into(),
            }],
            ..crate::desired::RouterSpec::default()
        }];
        assert!(security_tables(&state).unwrap().is_none());
    }

    #[test]
    fn marks_follow_sorted_port_ids() {
        let (bridge, _) = tables(vec![
            port(PORT_B, 6, Vec::new()),
            port(PORT_A, 5, Vec::new()),
        ]);
        assert!(bridge.contains("iifname \"tapaaaa1111-22\" meta mark set 0x00010000"));
        assert!(bridge.contains("iifname \"tapbbbb1111-22\" meta mark set 0x00020000"));
        assert!(bridge.contains("oifname \"tapbbbb1111-22\" meta mark set meta mark | 0x00000002"));
    }
}
