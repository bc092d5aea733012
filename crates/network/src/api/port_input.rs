//! Parsing and checking the attributes of a port request: MAC address,
//! requested fixed IPs, allowed address pairs and binding attributes.

use std::net::IpAddr;

use oxstack_core::ApiError;
use serde_json::{Map, Value};

use super::body::{self, invalid_attribute};
use crate::model::{AddressPair, SubnetId};

/// Neutron's default `max_allowed_address_pair`.
pub const MAX_ADDRESS_PAIRS: usize = 10;
/// Neutron's default `max_fixed_ips_per_port`.
pub const MAX_FIXED_IPS: usize = 5;
const VNIC_TYPES: &[&str] = &[
    "normal",
    "direct",
    "macvtap",
    "baremetal",
    "direct-physical",
    "virtio-forwarder",
    "smart-nic",
    "vdpa",
    "remote-managed",
    "accelerator-direct",
    "accelerator-direct-physical",
];

/// One entry of a requested `fixed_ips` list: a subnet, an address, or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpRequest {
    pub subnet_id: Option<SubnetId>,
    pub ip_address: Option<IpAddr>,
}

/// Parses a MAC address written with `:` or `-` into Neutron's form
/// (lower case, colons). The all-zero and broadcast addresses are invalid.
pub fn mac_address(text: &str) -> Result<String, ApiError> {
    let invalid = || {
        invalid_attribute(
            "mac_address",
            format!("'{text}' is not a valid MAC address"),
        )
    };
    let octets: Vec<&str> = text.split([':', '-']).collect();
    if octets.len() != 6
        || octets
            .iter()
            .any(|octet| octet.len() != 2 || u8::from_str_radix(octet, 16).is_err())
    {
        return Err(invalid());
    }
    let mac = octets.join(":").to_ascii_lowercase();
    if mac == "00:00:00:00:00:00" || mac == "ff:ff:ff:ff:ff:ff" {
        return Err(invalid());
    }
    Ok(mac)
}

/// Reads `fixed_ips`: `None` when absent.
pub fn fixed_ips(object: &Map<String, Value>) -> Result<Option<Vec<IpRequest>>, ApiError> {
    let items = match object.get("fixed_ips") {
        None => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(invalid_attribute(
                "fixed_ips",
                format!("'{other}' is not a list"),
            ))
        }
    };
    if items.len() > MAX_FIXED_IPS {
        return Err(ApiError::bad_request(format!(
            "Exceeded maximum amount of fixed ips per port: {MAX_FIXED_IPS}."
        ))
        .with_type("InvalidInput"));
    }
    let mut requests = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(entry) = item else {
            return Err(invalid_attribute(
                "fixed_ips",
                format!("'{item}' is not a dictionary"),
            ));
        };
        if let Some(key) = entry
            .keys()
            .find(|key| *key != "subnet_id" && *key != "ip_address")
        {
            return Err(invalid_attribute(
                "fixed_ips",
                format!("'{key}' is not a valid key of a fixed IP"),
            ));
        }
        let subnet_id = body::uuid(entry, "subnet_id")?.map(SubnetId::new);
        let ip_address = match body::string(entry, "ip_address", 64)? {
            Some(text) => Some(text.parse().map_err(|_| {
                invalid_attribute("fixed_ips", format!("'{text}' is not a valid IP address"))
            })?),
            None => None,
        };
        requests.push(IpRequest {
            subnet_id,
            ip_address,
        });
    }
    Ok(Some(requests))
}

/// Reads `allowed_address_pairs`. A pair without `mac_address` gets
/// `port_mac`.
pub fn address_pairs(
    object: &Map<String, Value>,
    port_mac: &str,
) -> Result<Option<Vec<AddressPair>>, ApiError> {
    let items = match object.get("allowed_address_pairs") {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(Vec::new())),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(invalid_attribute(
                "allowed_address_pairs",
                format!("'{other}' is not a list"),
            ))
        }
    };
    if items.len() > MAX_ADDRESS_PAIRS {
        return Err(ApiError::bad_request(format!(
            "The number of allowed address pair exceeds the maximum {MAX_ADDRESS_PAIRS}."
        ))
        .with_type("AllowedAddressPairExhausted"));
    }
    let mut pairs: Vec<AddressPair> = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(entry) = item else {
            return Err(invalid_attribute(
                "allowed_address_pairs",
                format!("'{item}' is not a dictionary"),
            ));
        };
        let Some(ip_address) = body::string(entry, "ip_address", 64)? else {
            return Err(
                ApiError::bad_request("AllowedAddressPair must contain ip_address")
                    .with_type("AllowedAddressPairsMissingIP"),
            );
        };
        let valid_ip =
            ip_address.parse::<IpAddr>().is_ok() || ip_address.parse::<ipnet::IpNet>().is_ok();
        if !valid_ip {
            return Err(invalid_attribute(
                "allowed_address_pairs",
                format!("'{ip_address}' is not a valid IP address or CIDR"),
            ));
        }
        let mac_address = match body::string(entry, "mac_address", 32)? {
            Some(mac) => mac_address(&mac)?,
            None => port_mac.to_owned(),
        };
        let pair = AddressPair {
            ip_address,
            mac_address,
        };
        if pairs.contains(&pair) {
            return Err(ApiError::bad_request(format!(
                "Request contains duplicate address pair: mac_address {} ip_address {}.",
                pair.mac_address, pair.ip_address
            ))
            .with_type("DuplicateAddressPairInRequest"));
        }
        pairs.push(pair);
    }
    Ok(Some(pairs))
}

pub fn vnic_type(object: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match body::string(object, "binding:vnic_type", 64)? {
        Some(vnic) if VNIC_TYPES.contains(&vnic.as_str()) => Ok(Some(vnic)),
        Some(other) => Err(invalid_attribute(
            "binding:vnic_type",
            format!("'{other}' is not in {VNIC_TYPES:?}"),
        )),
        None => Ok(None),
    }
}

/// Reads `binding:profile`, a JSON object. Null clears it.
pub fn profile(object: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    match object.get("binding:profile") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Value::Object(Map::new()))),
        Some(value @ Value::Object(_)) => Ok(Some(value.clone())),
        Some(other) => Err(invalid_attribute(
            "binding:profile",
            format!("'{other}' is not a dictionary"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mac_forms() {
        assert_eq!(
            mac_address("FA-16-3E-00-00-01").unwrap(),
            "fa:16:3e:00:00:01"
        );
        for bad in [
            "fa:16:3e:00:00",
            "00:00:00:00:00:00",
            "zz:16:3e:00:00:01",
            "fa:16:3e:0:00:01",
        ] {
            assert!(mac_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fixed_ip_entries() {
        let subnet = "6e1b9a59-0000-4000-8000-000000000001";
        let object = json!({"fixed_ips": [{"subnet_id": subnet}, {"ip_address": "10.0.0.5"}]});
        let requests = fixed_ips(object.as_object().unwrap()).unwrap().unwrap();
        assert_eq!(requests[0].subnet_id, Some(SubnetId::new(subnet)));
        let object = json!({"fixed_ips": [{"subnet_id": "s"}]});
        assert!(fixed_ips(object.as_object().unwrap()).is_err());
        assert_eq!(requests[1].ip_address, Some("10.0.0.5".parse().unwrap()));
        let object = json!({"fixed_ips": [{"ip_address": "10.0.0.500"}]});
        assert!(fixed_ips(object.as_object().unwrap()).is_err());
    }

    #[test]
    fn address_pairs_default_mac_and_duplicates() {
        let object = json!({"allowed_address_pairs": [{"ip_address": "10.0.0.0/24"}]});
        let pairs = address_pairs(object.as_object().unwrap(), "fa:16:3e:00:00:01")
            .unwrap()
            .unwrap();
        assert_eq!(pairs[0].mac_address, "fa:16:3e:00:00:01");
        let object = json!({"allowed_address_pairs": [{"ip_address": "10.0.0.9"}, {"ip_address": "10.0.0.9"}]});
        let error = address_pairs(object.as_object().unwrap(), "fa:16:3e:00:00:01").unwrap_err();
        assert_eq!(error.error_type, Some("DuplicateAddressPairInRequest"));
        let object = json!({"allowed_address_pairs": [{"mac_address": "fa:16:3e:00:00:01"}]});
        let error = address_pairs(object.as_object().unwrap(), "fa:16:3e:00:00:01").unwrap_err();
        assert_eq!(error.error_type, Some("AllowedAddressPairsMissingIP"));
    }
}
