//! Provider attributes: checks on the values an admin requests, the choice
//! of a VXLAN network identifier for tenant networks, and the MTU each type
//! allows.

use oxstack_core::{ApiError, ErrorKind};

use crate::config::{NetworkConfig, VXLAN_OVERHEAD};
use crate::model::{NetworkType, Segment};

/// The largest VXLAN network identifier: VNIs are 24 bits.
pub const MAX_VNI: i64 = (1 << 24) - 1;
/// VLAN ids 0 and 4095 are reserved by 802.1Q.
pub const VLAN_IDS: std::ops::RangeInclusive<i64> = 1..=4094;

/// The `provider:*` attributes of a create request.
#[derive(Clone, Debug, Default)]
pub struct ProviderRequest {
    pub network_type: Option<String>,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<i64>,
}

impl ProviderRequest {
    pub fn is_empty(&self) -> bool {
        self.network_type.is_none()
            && self.physical_network.is_none()
            && self.segmentation_id.is_none()
    }
}

/// The segment a new network will get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentPlan {
    /// Exactly this segment; a clash is a 409.
    Fixed(Segment),
    /// A VXLAN segment with the lowest free VNI of the tenant range.
    TenantVxlan,
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request(format!("Invalid input for operation: {message}."))
        .with_type("InvalidInput")
}

/// Checks the provider attributes of a request against Neutron's ML2 rules
/// for vxlan, vlan and flat networks.
pub fn plan_segment(
    config: &NetworkConfig,
    request: &ProviderRequest,
) -> Result<SegmentPlan, ApiError> {
    if request.is_empty() {
        return Ok(SegmentPlan::TenantVxlan);
    }
    let Some(type_name) = request.network_type.as_deref() else {
        return Err(invalid("provider:network_type required".into()));
    };
    let network_type = NetworkType::parse(type_name).ok_or_else(|| {
        invalid(format!(
            "network_type value '{type_name}' not supported; use vxlan, vlan or flat"
        ))
    })?;
    let physical_network = request.physical_network.clone();
    let segmentation_id = request.segmentation_id;
    if let Some(physical) = &physical_network {
        if network_type != NetworkType::Vxlan && !config.knows_physical_network(physical) {
            return Err(invalid(format!(
                "physical_network '{physical}' unknown for {network_type} provider network; \
                 configured physical networks: {}",
                config.physical_networks.join(", ")
            )));
        }
    }
    match network_type {
        NetworkType::Vxlan => {
            if physical_network.is_some() {
                return Err(invalid(
                    "provider:physical_network specified for vxlan network".into(),
                ));
            }
            match segmentation_id {
                None => Ok(SegmentPlan::TenantVxlan),
                Some(id) if !(1..=MAX_VNI).contains(&id) => Err(invalid(format!(
                    "provider:segmentation_id {id} out of range (1 through {MAX_VNI}) for vxlan network"
                ))),
                Some(id) => Ok(SegmentPlan::Fixed(Segment {
                    network_type,
                    physical_network: None,
                    segmentation_id: Some(id),
                })),
            }
        }
        NetworkType::Vlan => {
            let physical = physical_network.ok_or_else(|| {
                invalid("provider:physical_network required for vlan provider network".into())
            })?;
            let id = segmentation_id.ok_or_else(|| {
                invalid("provider:segmentation_id required for vlan provider network".into())
            })?;
            if !VLAN_IDS.contains(&id) {
                return Err(invalid(format!(
                    "provider:segmentation_id {id} out of range ({} through {})",
                    VLAN_IDS.start(),
                    VLAN_IDS.end()
                )));
            }
            Ok(SegmentPlan::Fixed(Segment {
                network_type,
                physical_network: Some(physical),
                segmentation_id: Some(id),
            }))
        }
        NetworkType::Flat => {
            let physical = physical_network.ok_or_else(|| {
                invalid("provider:physical_network required for flat provider network".into())
            })?;
            if segmentation_id.is_some() {
                return Err(invalid(
                    "provider:segmentation_id specified for flat provider network".into(),
                ));
            }
            Ok(SegmentPlan::Fixed(Segment {
                network_type,
                physical_network: Some(physical),
                segmentation_id: None,
            }))
        }
    }
}

/// Returns the lowest VNI of the tenant range not in `used`, or Neutron's
/// 503 `NoNetworkAvailable` when every one is taken.
pub fn lowest_free_vni(config: &NetworkConfig, used: &[i64]) -> Result<i64, ApiError> {
    let used: std::collections::HashSet<i64> = used.iter().copied().collect();
    config
        .vni_range()
        .find(|vni| !used.contains(vni))
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::Unavailable,
                format!(
                    "Unable to create the network. No tenant network is available for allocation: \
                 all VXLAN ids {} to {} are in use.",
                    config.vni_min, config.vni_max
                ),
            )
            .with_type("NoNetworkAvailable")
        })
}

/// Returns the 409 Neutron gives when `segment` already belongs to a network.
pub fn segment_in_use(segment: &Segment) -> ApiError {
    let physical = segment.physical_network.as_deref().unwrap_or_default();
    let id = segment.segmentation_id.unwrap_or_default();
    let (message, error_type) = match segment.network_type {
        NetworkType::Vxlan => (format!("Unable to create the network. The tunnel ID {id} is in use."), "TunnelIdInUse"),
        NetworkType::Vlan => (
            format!("Unable to create the network. The VLAN {id} on physical network {physical} is in use."),
            "VlanIdInUse",
        ),
        NetworkType::Flat => (
            format!("Unable to create the flat network. Physical network {physical} is in use."),
            "FlatNetworkInUse",
        ),
    };
    ApiError::conflict(message).with_type(error_type)
}

/// Returns the largest MTU a network of `network_type` can carry.
pub fn max_mtu(config: &NetworkConfig, network_type: NetworkType) -> i64 {
    match network_type {
        NetworkType::Vxlan => config.physical_mtu - VXLAN_OVERHEAD,
        NetworkType::Vlan | NetworkType::Flat => config.physical_mtu,
    }
}

/// Checks a requested MTU: at least 68 (the IPv4 minimum) and at most what
/// the network type carries.
pub fn check_mtu(
    config: &NetworkConfig,
    network_type: NetworkType,
    mtu: i64,
) -> Result<(), ApiError> {
    if mtu < 68 {
        return Err(invalid(format!(
            "mtu {mtu} is too small; it must be at least 68"
        )));
    }
    let max = max_mtu(config, network_type);
    if mtu > max {
        return Err(invalid(format!(
            "Requested MTU is too big, maximum is {max}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        network_type: Option<&str>,
        physical: Option<&str>,
        id: Option<i64>,
    ) -> ProviderRequest {
        ProviderRequest {
            network_type: network_type.map(str::to_owned),
            physical_network: physical.map(str::to_owned),
            segmentation_id: id,
        }
    }

    #[test]
    fn no_provider_attributes_means_tenant_vxlan() {
        assert_eq!(
            plan_segment(&NetworkConfig::default(), &request(None, None, None)).unwrap(),
            SegmentPlan::TenantVxlan
        );
    }

    #[test]
    fn flat_needs_physical_network_and_no_id() {
        let config = NetworkConfig::default();
        assert!(plan_segment(&config, &request(Some("flat"), None, None)).is_err());
        assert!(plan_segment(&config, &request(Some("flat"), Some("physnet1"), Some(3))).is_err());
        let plan = plan_segment(&config, &request(Some("flat"), Some("physnet1"), None)).unwrap();
        assert_eq!(
            plan.clone(),
            SegmentPlan::Fixed(Segment {
                network_type: NetworkType::Flat,
                physical_network: Some("physnet1".into()),
                segmentation_id: None,
            })
        );
    }

    #[test]
    fn vlan_needs_physical_network_and_valid_id() {
        let config = NetworkConfig::default();
        for bad in [
            request(Some("vlan"), None, Some(10)),
            request(Some("vlan"), Some("p"), None),
            request(Some("vlan"), Some("p"), Some(0)),
            request(Some("vlan"), Some("p"), Some(4095)),
        ] {
            let error = plan_segment(&config, &bad).unwrap_err();
            assert_eq!(error.error_type, Some("InvalidInput"), "{bad:?}");
        }
        assert!(plan_segment(&config, &request(Some("vlan"), Some("p"), Some(4094))).is_ok());
    }

    #[test]
    fn unknown_type_and_physical_network_are_rejected() {
        let config = NetworkConfig {
            physical_networks: vec!["physnet1".into()],
            ..NetworkConfig::default()
        };
        assert!(plan_segment(&config, &request(Some("gre"), None, None)).is_err());
        assert!(plan_segment(&config, &request(Some("flat"), Some("physnet9"), None)).is_err());
        assert!(plan_segment(&config, &request(None, Some("physnet1"), None)).is_err());
    }

    #[test]
    fn vni_allocation_takes_lowest_free() {
        let config = NetworkConfig {
            vni_min: 1,
            vni_max: 3,
            ..NetworkConfig::default()
        };
        assert_eq!(lowest_free_vni(&config, &[]).unwrap(), 1);
        assert_eq!(lowest_free_vni(&config, &[1, 3, 500]).unwrap(), 2);
        let error = lowest_free_vni(&config, &[1, 2, 3]).unwrap_err();
        assert_eq!(error.error_type, Some("NoNetworkAvailable"));
    }

    #[test]
    fn mtu_limits_follow_type() {
        let config = NetworkConfig::default();
        assert_eq!(max_mtu(&config, NetworkType::Vxlan), 1450);
        assert!(check_mtu(&config, NetworkType::Vxlan, 1451).is_err());
        assert!(check_mtu(&config, NetworkType::Flat, 1500).is_ok());
        assert!(check_mtu(&config, NetworkType::Flat, 67).is_err());
    }
}
