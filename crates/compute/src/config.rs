//! Settings of the compute service.

use std::path::PathBuf;

use serde::Deserialize;

/// The `[compute]` settings. The names of the scheduling and host settings
/// are those of Nova's options with the same meaning.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeConfig {
    /// An oslo.policy file whose rules override the defaults.
    pub policy_file: Option<PathBuf>,
    /// The availability zone of this process's compute host.
    pub default_availability_zone: String,
    /// VCPU allocation ratio reported to placement.
    pub cpu_allocation_ratio: f64,
    /// MEMORY_MB allocation ratio reported to placement.
    pub ram_allocation_ratio: f64,
    /// DISK_GB allocation ratio reported to placement.
    pub disk_allocation_ratio: f64,
    /// vCPUs kept back for the host itself.
    pub reserved_host_cpus: u64,
    /// MiB of memory kept back for the host itself. On a host with less
    /// than twice this much memory, half of its memory is reserved instead.
    pub reserved_host_memory_mb: u64,
    /// MiB of disk kept back for the host itself (rounded up to whole GB).
    pub reserved_host_disk_mb: u64,
    /// Seconds between two heartbeats of this host's services.
    pub report_interval: u64,
    /// Seconds without a heartbeat after which a service counts as down and
    /// the scheduler skips its host.
    pub service_down_time: u64,
    /// Seconds a guest gets to shut down on `os-stop` before it is stopped
    /// forcibly.
    pub shutdown_timeout: u64,
    /// Whether to attach a config drive to every server, requested or not.
    /// On by default, so a guest gets its key and user data even on a
    /// network without DHCP, where no route to the metadata proxy exists.
    pub force_config_drive: bool,
    /// The address of this host as other hosts reach it, shown as the
    /// hypervisor's `host_ip` [default: 127.0.0.1].
    pub my_ip: Option<String>,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        ComputeConfig {
            policy_file: None,
            default_availability_zone: "nova".to_owned(),
            cpu_allocation_ratio: 16.0,
            ram_allocation_ratio: 1.5,
            disk_allocation_ratio: 1.0,
            reserved_host_cpus: 0,
            reserved_host_memory_mb: 512,
            reserved_host_disk_mb: 0,
            report_interval: 10,
            service_down_time: 60,
            shutdown_timeout: 60,
            force_config_drive: true,
            my_ip: None,
        }
    }
}
