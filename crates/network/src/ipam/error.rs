//! Reasons for rejecting an address plan or an address request, and the
//! Neutron exception each is reported as.

use oxstack_core::{ApiError, ErrorKind};

/// A rejected subnet layout or address request. Each variant maps to the
/// Neutron exception class that clients match on `NeutronError.type`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("'{cidr}' is not a valid IP subnet")]
    InvalidCidr { cidr: String },
    #[error("'{cidr}' isn't a recognized IP subnet cidr, '{recommended}' is recommended")]
    HostBitsSet { cidr: String, recommended: String },
    #[error("cidr {cidr} does not match ip_version {ip_version}")]
    CidrVersionMismatch { cidr: String, ip_version: u8 },
    #[error("'{value}' is not a valid IP address")]
    InvalidAddress { value: String },
    #[error("the IP address {address} does not match the IP version of subnet {cidr}")]
    AddressVersionMismatch { address: String, cidr: String },
    #[error("The allocation pool {pool} is not valid.")]
    InvalidPool { pool: String },
    #[error("The allocation pool {pool} spans beyond the subnet cidr {cidr}.")]
    PoolOutOfBounds { pool: String, cidr: String },
    #[error("Found overlapping allocation pools: {first} {second} for subnet {cidr}.")]
    OverlappingPools {
        first: String,
        second: String,
        cidr: String,
    },
    #[error("Gateway ip {gateway} conflicts with allocation pool {pool}.")]
    GatewayInPool { gateway: String, pool: String },
    #[error(
        "Gateway is not valid on subnet {cidr}: {gateway} is its network or broadcast address"
    )]
    GatewayNotUsable { gateway: String, cidr: String },
    #[error(
        "Requested subnet with cidr: {cidr} for network: {network_id} overlaps with another subnet"
    )]
    SubnetOverlap { cidr: String, network_id: String },
    #[error("IP address {address} is not a valid IP for the specified subnet.")]
    AddressNotInSubnet { address: String },
    #[error("IP address {address} already allocated in subnet {subnet_id}")]
    AddressAlreadyAllocated { address: String, subnet_id: String },
    #[error("No more IP addresses available for subnet {subnet_id}: every address in its allocation pools is in use.")]
    PoolsExhausted { subnet_id: String },
}

impl IpamError {
    /// Returns the Neutron exception class name of this rejection.
    pub fn neutron_type(&self) -> &'static str {
        match self {
            IpamError::InvalidCidr { .. }
            | IpamError::HostBitsSet { .. }
            | IpamError::CidrVersionMismatch { .. }
            | IpamError::InvalidAddress { .. }
            | IpamError::AddressVersionMismatch { .. }
            | IpamError::GatewayNotUsable { .. }
            | IpamError::SubnetOverlap { .. } => "InvalidInput",
            IpamError::InvalidPool { .. } => "InvalidAllocationPool",
            IpamError::PoolOutOfBounds { .. } => "OutOfBoundsAllocationPool",
            IpamError::OverlappingPools { .. } => "OverlappingAllocationPools",
            IpamError::GatewayInPool { .. } => "GatewayConflictWithAllocationPools",
            IpamError::AddressNotInSubnet { .. } => "InvalidIpForSubnet",
            IpamError::AddressAlreadyAllocated { .. } => "IpAddressAlreadyAllocated",
            IpamError::PoolsExhausted { .. } => "IpAddressGenerationFailure",
        }
    }

    /// Returns the error kind, whose HTTP status is the one Neutron gives
    /// the exception: `Conflict` and `InUse` subclasses are 409, the others
    /// here 400.
    pub fn kind(&self) -> ErrorKind {
        match self {
            IpamError::OverlappingPools { .. }
            | IpamError::GatewayInPool { .. }
            | IpamError::AddressAlreadyAllocated { .. }
            | IpamError::PoolsExhausted { .. } => ErrorKind::Conflict,
            _ => ErrorKind::BadRequest,
        }
    }
}

impl From<IpamError> for ApiError {
    fn from(error: IpamError) -> Self {
        // Neutron's InvalidInput wraps its detail in this sentence.
        let message = match error.neutron_type() {
            "InvalidInput" => format!("Invalid input for operation: {error}."),
            _ => error.to_string(),
        };
        ApiError::new(error.kind(), message).with_type(error.neutron_type())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_is_wrapped_like_neutron() {
        let error: ApiError = IpamError::InvalidCidr {
            cidr: "10.0.0.0/33".into(),
        }
        .into();
        assert_eq!(error.kind, ErrorKind::BadRequest);
        assert_eq!(error.error_type, Some("InvalidInput"));
        assert_eq!(
            error.message,
            "Invalid input for operation: '10.0.0.0/33' is not a valid IP subnet."
        );
    }

    #[test]
    fn gateway_conflict_is_409() {
        let error: ApiError = IpamError::GatewayInPool {
            gateway: "10.0.0.5".into(),
            pool: "10.0.0.2-10.0.0.9".into(),
        }
        .into();
        assert_eq!(error.kind, ErrorKind::Conflict);
        assert_eq!(error.error_type, Some("GatewayConflictWithAllocationPools"));
    }
}
