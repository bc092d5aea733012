//! The values placement stores: providers, inventories, allocations, and the
//! standard resource classes and traits that exist without being created.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The UUID of a resource provider, in its hyphenated lower-case form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProviderId(pub String);

/// The UUID of a consumer (an instance, a migration) that has allocations.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConsumerId(pub String);

impl std::fmt::Display for ProviderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for ConsumerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a UUID as placement accepts it (with or without hyphens) and
/// returns the hyphenated lower-case form it is stored in.
pub fn normalize_uuid(text: &str) -> Option<String> {
    uuid::Uuid::parse_str(text)
        .ok()
        .map(|id| id.hyphenated().to_string())
}

/// The largest integer placement accepts in an inventory or allocation
/// field, which is the maximum of a signed 32-bit column in OpenStack
/// Placement's schema.
pub const MAX_INT: i64 = 2_147_483_647;

/// A resource provider row.
#[derive(Clone, Debug, PartialEq)]
pub struct Provider {
    pub uuid: ProviderId,
    pub name: String,
    pub generation: i64,
    pub parent_uuid: Option<ProviderId>,
    pub root_uuid: ProviderId,
    pub updated_at: i64,
}

/// The inventory of one resource class on one provider.
#[derive(Clone, Debug, PartialEq)]
pub struct Inventory {
    pub total: i64,
    pub reserved: i64,
    pub min_unit: i64,
    pub max_unit: i64,
    pub step_size: i64,
    pub allocation_ratio: f64,
}

impl Inventory {
    /// Returns an inventory of `total` with placement's defaults for every
    /// other field.
    pub fn with_total(total: i64) -> Self {
        Inventory {
            total,
            reserved: 0,
            min_unit: 1,
            max_unit: MAX_INT,
            step_size: 1,
            allocation_ratio: 1.0,
        }
    }

    /// Returns how much of the class can be allocated in all:
    /// `(total - reserved) * allocation_ratio`, rounded down as placement
    /// rounds it.
    pub fn capacity(&self) -> i64 {
        ((self.total - self.reserved) as f64 * self.allocation_ratio) as i64
    }

    /// Checks an amount against `min_unit`, `max_unit` and `step_size`, and
    /// returns a message naming the violated limit.
    pub fn check_units(&self, amount: i64) -> Result<(), String> {
        if amount < self.min_unit {
            return Err(format!("{amount} is below min_unit {}", self.min_unit));
        }
        if amount > self.max_unit {
            return Err(format!("{amount} is above max_unit {}", self.max_unit));
        }
        if amount % self.step_size != 0 {
            return Err(format!(
                "{amount} is not a multiple of step_size {}",
                self.step_size
            ));
        }
        Ok(())
    }
}

/// Inventories of one provider by resource class.
pub type Inventories = BTreeMap<String, Inventory>;

/// Resources requested or allocated, by resource class.
pub type Resources = BTreeMap<String, i64>;

/// The resource classes every placement service has, in the order of
/// OpenStack's os-resource-classes 1.1.0 list.
pub const STANDARD_RESOURCE_CLASSES: &[&str] = &[
    "VCPU",
    "MEMORY_MB",
    "DISK_GB",
    "PCI_DEVICE",
    "SRIOV_NET_VF",
    "NUMA_SOCKET",
    "NUMA_CORE",
    "NUMA_THREAD",
    "NUMA_MEMORY_MB",
    "IPV4_ADDRESS",
    "VGPU",
    "VGPU_DISPLAY_HEAD",
    "NET_BW_EGR_KILOBIT_PER_SEC",
    "NET_BW_IGR_KILOBIT_PER_SEC",
    "PCPU",
    "MEM_ENCRYPTION_CONTEXT",
    "FPGA",
    "PGPU",
    "NET_PACKET_RATE_KILOPACKET_PER_SEC",
    "NET_PACKET_RATE_EGR_KILOPACKET_PER_SEC",
    "NET_PACKET_RATE_IGR_KILOPACKET_PER_SEC",
];

/// Standard traits that exist without being created.
// NOTE: a subset of os-traits (the CPU, compute and storage traits Nova
// reports for QEMU hosts); other standard names must be created as CUSTOM_.
pub const STANDARD_TRAITS: &[&str] = &[
    "COMPUTE_ACCELERATORS",
    "COMPUTE_DEVICE_TAGGING",
    "COMPUTE_IMAGE_TYPE_AKI",
    "COMPUTE_IMAGE_TYPE_AMI",
    "COMPUTE_IMAGE_TYPE_ARI",
    "COMPUTE_IMAGE_TYPE_ISO",
    "COMPUTE_IMAGE_TYPE_QCOW2",
    "COMPUTE_IMAGE_TYPE_RAW",
    "COMPUTE_NET_ATTACH_INTERFACE",
    "COMPUTE_NET_ATTACH_INTERFACE_WITH_TAG",
    "COMPUTE_NET_VIF_MODEL_E1000",
    "COMPUTE_NET_VIF_MODEL_VIRTIO",
    "COMPUTE_NODE",
    "COMPUTE_RESCUE_BFV",
    "COMPUTE_STATUS_DISABLED",
    "COMPUTE_TRUSTED_CERTS",
    "COMPUTE_VOLUME_ATTACH_WITH_TAG",
    "COMPUTE_VOLUME_EXTEND",
    "COMPUTE_VOLUME_MULTI_ATTACH",
    "HW_ARCH_AARCH64",
    "HW_ARCH_X86_64",
    "HW_CPU_HYPERTHREADING",
    "HW_CPU_X86_AESNI",
    "HW_CPU_X86_AVX",
    "HW_CPU_X86_AVX2",
    "HW_CPU_X86_SSE",
    "HW_CPU_X86_SSE2",
    "HW_CPU_X86_SSE41",
    "HW_CPU_X86_SSE42",
    "HW_CPU_X86_SVM",
    "HW_CPU_X86_VMX",
    "MISC_SHARES_VIA_AGGREGATE",
    "STORAGE_DISK_HDD",
    "STORAGE_DISK_SSD",
];

pub const CUSTOM_PREFIX: &str = "CUSTOM_";

/// True when `name` is a valid custom resource class or trait name:
/// `CUSTOM_` followed by upper-case letters, digits and underscores, at most
/// 255 characters in all.
pub fn is_custom_name(name: &str) -> bool {
    name.len() > CUSTOM_PREFIX.len()
        && name.len() <= 255
        && name.starts_with(CUSTOM_PREFIX)
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_applies_reserved_and_ratio() {
        let inventory = Inventory {
            reserved: 2,
            allocation_ratio: 1.5,
            ..Inventory::with_total(10)
        };
        assert_eq!(inventory.capacity(), 12);
    }

    #[test]
    fn units_reject_step_and_bounds() {
        let inventory = Inventory {
            min_unit: 2,
            max_unit: 8,
            step_size: 2,
            ..Inventory::with_total(16)
        };
        assert!(inventory.check_units(4).is_ok());
        assert!(inventory.check_units(1).unwrap_err().contains("min_unit"));
        assert!(inventory.check_units(10).unwrap_err().contains("max_unit"));
        assert!(inventory.check_units(5).unwrap_err().contains("step_size"));
    }

    #[test]
    fn custom_names_need_prefix_and_upper_case() {
        assert!(is_custom_name("CUSTOM_GOLD_1"));
        assert!(!is_custom_name("CUSTOM_"));
        assert!(!is_custom_name("GOLD"));
        assert!(!is_custom_name("CUSTOM_gold"));
    }
}
