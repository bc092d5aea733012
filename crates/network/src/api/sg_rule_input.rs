//! Parsing and checking a security group rule request as Neutron does:
//! direction, ethertype, protocol, port range, remote prefix or group, and
//! the key under which two rules count as duplicates.

use ipnet::IpNet;
use oxstack_core::ApiError;
use serde_json::{Map, Value};

use super::body::{self, invalid_attribute};
use crate::model::SecurityGroupRule;

/// Neutron's protocol names (`IP_PROTOCOL_MAP` of neutron-lib) and numbers.
const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ip", 0),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];
/// Protocols whose rules take a port range: TCP, UDP, DCCP, SCTP, UDP-Lite.
const PORT_PROTOCOLS: &[u8] = &[6, 17, 33, 132, 136];
const ICMP_PROTOCOLS: &[u8] = &[1, 58];
/// Protocols that exist only over IPv6.
const IPV6_ONLY: &[&str] = &[
    "ipv6-encap",
    "ipv6-frag",
    "ipv6-icmp",
    "icmpv6",
    "ipv6-nonxt",
    "ipv6-opts",
    "ipv6-route",
];

fn invalid_input(message: String, error_type: &'static str) -> ApiError {
    ApiError::bad_request(message).with_type(error_type)
}

/// Returns the IP protocol number of a stored protocol (a name or a number).
pub fn protocol_number(protocol: &str) -> Option<u8> {
    protocol.parse().ok().or_else(|| {
        PROTOCOLS
            .iter()
            .find(|(name, _)| *name == protocol)
            .map(|(_, number)| *number)
    })
}

/// Reads `protocol`: a name (any case), a number 0–255 (JSON or string),
/// or null/`any` for every protocol. Names are kept as names and numbers
/// as decimal strings, as Neutron stores them.
pub fn protocol(object: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    let text = match object.get("protocol") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::String(text)) => text.to_ascii_lowercase(),
        Some(other) => other.to_string(),
    };
    if text == "any" {
        return Ok(None);
    }
    let known_name = PROTOCOLS.iter().any(|(name, _)| *name == text);
    let number_ok = text.parse::<u8>().is_ok();
    if !known_name && !number_ok {
        let names: Vec<&str> = PROTOCOLS.iter().map(|(name, _)| *name).collect();
        return Err(invalid_input(
            format!(
                "Security group rule protocol {text} not supported. Only protocol values [{}] \
                 and integer representations [0 to 255] are supported.",
                names.join(", ")
            ),
            "SecurityGroupRuleInvalidProtocol",
        ));
    }
    Ok(Some(text))
}

/// Reads one end of the port range: an integer 0–65535.
pub fn port(object: &Map<String, Value>, key: &str) -> Result<Option<i64>, ApiError> {
    let value = match object.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number.as_i64(),
        Some(Value::String(text)) => text.parse().ok(),
        Some(_) => None,
    };
    match value {
        Some(port) if (0..=65535).contains(&port) => Ok(Some(port)),
        _ => Err(invalid_input(
            format!("Invalid value for port {}.", object[key]),
            "SecurityGroupInvalidPortValue",
        )),
    }
}

pub fn direction(object: &Map<String, Value>) -> Result<String, ApiError> {
    match body::string(object, "direction", 16)? {
        Some(direction) if direction == "ingress" || direction == "egress" => Ok(direction),
        Some(other) => Err(invalid_attribute(
            "direction",
            format!("'{other}' is not in ['ingress', 'egress']"),
        )),
        None => Err(body::bad_request(
            "Failed to parse request. Required attribute 'direction' not specified",
        )),
    }
}

/// Reads `ethertype` (any case, default `IPv4`) in Neutron's spelling.
pub fn ethertype(object: &Map<String, Value>) -> Result<String, ApiError> {
    match body::string(object, "ethertype", 16)? {
        None => Ok("IPv4".to_owned()),
        Some(text) if text.eq_ignore_ascii_case("ipv4") => Ok("IPv4".to_owned()),
        Some(text) if text.eq_ignore_ascii_case("ipv6") => Ok("IPv6".to_owned()),
        Some(other) => Err(invalid_input(
            format!(
                "Security group rule for ethertype '{other}' not supported. Allowed values are \
                 ['IPv4', 'IPv6']."
            ),
            "SecurityGroupRuleInvalidEtherType",
        )),
    }
}

/// Reads `remote_ip_prefix` as a CIDR with its host bits cleared (a bare
/// address becomes a /32 or /128), and checks it against `ethertype`.
pub fn remote_ip_prefix(
    object: &Map<String, Value>,
    ethertype: &str,
) -> Result<Option<String>, ApiError> {
    let Some(Some(text)) = body::nullable_string(object, "remote_ip_prefix")? else {
        return Ok(None);
    };
    let net: IpNet = match text.parse::<IpNet>() {
        Ok(net) => net.trunc(),
        Err(_) => match text.parse::<std::net::IpAddr>() {
            Ok(address) => IpNet::from(address),
            Err(_) => {
                return Err(invalid_attribute(
                    "remote_ip_prefix",
                    format!("'{text}' is not a valid IP prefix"),
                ))
            }
        },
    };
    let is_ipv4 = matches!(net, IpNet::V4(_));
    if is_ipv4 != (ethertype == "IPv4") {
        return Err(invalid_input(
            format!("Conflicting value ethertype {ethertype} for CIDR {text}"),
            "SecurityGroupRuleParameterConflict",
        ));
    }
    Ok(Some(net.to_string()))
}

/// Checks the port range against the protocol as Neutron's
/// `_validate_port_range` does.
pub fn check_port_range(
    protocol: Option<&str>,
    min: Option<i64>,
    max: Option<i64>,
) -> Result<(), ApiError> {
    if min.is_none() && max.is_none() {
        return Ok(());
    }
    let Some(protocol) = protocol else {
        return Err(invalid_input(
            "Must also specify protocol if port range is given.".to_owned(),
            "SecurityGroupProtocolRequiredWithPorts",
        ));
    };
    let number = protocol_number(protocol).unwrap_or(u8::MAX);
    if PORT_PROTOCOLS.contains(&number) {
        if min == Some(0) || max == Some(0) {
            return Err(invalid_input(
                "Invalid value for port 0.".to_owned(),
                "SecurityGroupInvalidPortValue",
            ));
        }
        return match (min, max) {
            (Some(min), Some(max)) if min <= max => Ok(()),
            _ => Err(invalid_input(
                "For TCP/UDP protocols, port_range_min must be <= port_range_max".to_owned(),
                "SecurityGroupInvalidPortRange",
            )),
        };
    }
    if ICMP_PROTOCOLS.contains(&number) {
        for (value, attribute, field) in [
            (min, "port_range_min", "type"),
            (max, "port_range_max", "code"),
        ] {
            if let Some(value) = value.filter(|value| *value > 255) {
                return Err(invalid_input(
                    format!(
                        "Invalid value for ICMP {field} ({attribute}) {value}. It must be 0 to 255."
                    ),
                    "SecurityGroupInvalidIcmpValue",
                ));
            }
        }
        if let (None, Some(code)) = (min, max) {
            return Err(invalid_input(
                format!(
                    "ICMP code (port-range-max) {code} is provided but ICMP type \
                     (port-range-min) is missing."
                ),
                "SecurityGroupMissingIcmpType",
            ));
        }
        return Ok(());
    }
    Err(invalid_input(
        format!(
            "Invalid protocol {protocol} for port range, only supported for TCP, UDP, UDPLITE, \
             SCTP and DCCP protocols."
        ),
        "SecurityGroupInvalidProtocolForPort",
    ))
}

/// Returns the protocol an IPv6 rule stores for ICMP: Neutron rewrites the
/// IPv4 names and number (`icmp`, `icmpv6`, `1`) to `ipv6-icmp` and `58`.
pub fn canonical_protocol(ethertype: &str, protocol: Option<String>) -> Option<String> {
    if ethertype != "IPv6" {
        return protocol;
    }
    match protocol.as_deref() {
        Some("icmp") | Some("icmpv6") => Some("ipv6-icmp".to_owned()),
        Some("1") => Some("58".to_owned()),
        _ => protocol,
    }
}

/// Rejects an IPv6-only protocol on an IPv4 rule.
pub fn check_ethertype_protocol(ethertype: &str, protocol: Option<&str>) -> Result<(), ApiError> {
    match protocol {
        Some(protocol) if ethertype == "IPv4" && IPV6_ONLY.contains(&protocol) => {
            Err(invalid_input(
                format!("Invalid ethertype {ethertype} for protocol {protocol}."),
                "SecurityGroupEthertypeConflictWithProtocol",
            ))
        }
        _ => Ok(()),
    }
}

/// Returns the key that the database keeps unique, so a group never contains
/// two rules that match the same traffic. As in Neutron, a protocol name
/// equals its number, and a prefix that matches every address
/// (`0.0.0.0/0`, `::/0`) equals no prefix. The description is no part of it.
pub fn rule_key(rule: &SecurityGroupRule) -> String {
    let protocol = rule
        .protocol
        .as_deref()
        .map(|p| protocol_number(p).map_or_else(|| p.to_owned(), |n| n.to_string()))
        .unwrap_or_default();
    let prefix = match rule.remote_ip_prefix.as_deref() {
        Some("0.0.0.0/0") | Some("::/0") | None => "",
        Some(prefix) => prefix,
    };
    let number = |value: Option<i64>| value.map(|v| v.to_string()).unwrap_or_default();
    format!(
        "{}|{}|{}|{protocol}|{}|{}|{prefix}|{}",
        rule.security_group_id,
        rule.direction,
        rule.ethertype,
        number(rule.port_range_min),
        number(rule.port_range_max),
        rule.remote_group_id
            .as_ref()
            .map(|id| id.as_str())
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn protocol_names_and_numbers() {
        assert_eq!(
            protocol(&object(json!({"protocol": "TCP"}))).unwrap(),
            Some("tcp".into())
        );
        assert_eq!(
            protocol(&object(json!({"protocol": 6}))).unwrap(),
            Some("6".into())
        );
        assert_eq!(protocol(&object(json!({"protocol": "any"}))).unwrap(), None);
        let error = protocol(&object(json!({"protocol": "tcpx"}))).unwrap_err();
        assert_eq!(error.error_type, Some("SecurityGroupRuleInvalidProtocol"));
        let error = protocol(&object(json!({"protocol": 256}))).unwrap_err();
        assert_eq!(error.error_type, Some("SecurityGroupRuleInvalidProtocol"));
    }

    #[test]
    fn port_ranges_follow_protocol() {
        assert!(check_port_range(Some("tcp"), Some(22), Some(22)).is_ok());
        let cases = [
            (
                Some("tcp"),
                Some(23),
                Some(22),
                "SecurityGroupInvalidPortRange",
            ),
            (Some("tcp"), Some(22), None, "SecurityGroupInvalidPortRange"),
            (
                Some("udp"),
                Some(0),
                Some(10),
                "SecurityGroupInvalidPortValue",
            ),
            (
                None,
                Some(22),
                Some(22),
                "SecurityGroupProtocolRequiredWithPorts",
            ),
            (
                Some("icmp"),
                Some(256),
                None,
                "SecurityGroupInvalidIcmpValue",
            ),
            (Some("icmp"), None, Some(0), "SecurityGroupMissingIcmpType"),
            (
                Some("gre"),
                Some(1),
                Some(2),
                "SecurityGroupInvalidProtocolForPort",
            ),
        ];
        for (protocol, min, max, expected) in cases {
            let error = check_port_range(protocol, min, max).unwrap_err();
            assert_eq!(
                error.error_type,
                Some(expected),
                "{protocol:?} {min:?} {max:?}"
            );
        }
        assert!(check_port_range(Some("icmp"), Some(8), Some(0)).is_ok());
        assert!(check_port_range(Some("6"), Some(1), Some(65535)).is_ok());
    }

    #[test]
    fn ipv6_icmp_is_canonical() {
        assert_eq!(
            canonical_protocol("IPv6", Some("icmp".into())),
            Some("ipv6-icmp".into())
        );
        assert_eq!(
            canonical_protocol("IPv6", Some("1".into())),
            Some("58".into())
        );
        assert_eq!(
            canonical_protocol("IPv4", Some("icmp".into())),
            Some("icmp".into())
        );
        assert_eq!(
            canonical_protocol("IPv6", Some("tcp".into())),
            Some("tcp".into())
        );
    }

    #[test]
    fn prefix_is_normalised_and_matches_ethertype() {
        let prefix = |text: &str, ethertype: &str| {
            remote_ip_prefix(&object(json!({"remote_ip_prefix": text})), ethertype)
        };
        assert_eq!(
            prefix("10.0.0.5/24", "IPv4").unwrap(),
            Some("10.0.0.0/24".into())
        );
        assert_eq!(
            prefix("10.0.0.5", "IPv4").unwrap(),
            Some("10.0.0.5/32".into())
        );
        let error = prefix("::/0", "IPv4").unwrap_err();
        assert_eq!(error.error_type, Some("SecurityGroupRuleParameterConflict"));
        let error = prefix("nonsense", "IPv4").unwrap_err();
        assert_eq!(error.error_type, Some("HTTPBadRequest"));
    }
}
