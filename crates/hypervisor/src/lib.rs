//! The boundary between the compute service and virtualisation: the
//! [`Driver`] trait, the description of an instance a driver is asked to
//! run ([`InstanceSpec`]), and two drivers: `fake` (in memory, for API
//! tests and scale tests) and `qemu` (one QEMU process per instance,
//! controlled over QMP).
//!
//! Every operation is idempotent where Nova's are: destroying an instance
//! that is gone succeeds, powering off a stopped one succeeds. The compute
//! service stores the server's state. A driver only reports what it finds
//! on the host.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Nova's `power_state` values, as the API shows them in
/// `OS-EXT-STS:power_state`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerState {
    #[default]
    NoState = 0,
    Running = 1,
    Paused = 3,
    Shutdown = 4,
    Crashed = 6,
    Suspended = 7,
}

impl PowerState {
    /// Returns the number the API shows.
    pub fn code(self) -> i64 {
        self as i64
    }
}

/// The image a server boots from, as the host can read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageSource {
    pub id: String,
    /// A local file containing the image's bytes. The driver copies it into
    /// its cache once per image and never writes to it.
    pub path: PathBuf,
    /// Glance's `disk_format` (`qcow2`, `raw`, …).
    pub disk_format: String,
    /// Image properties the driver honours (`os_type`, `hw_*`).
    pub properties: BTreeMap<String, String>,
}

/// One network interface of an instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vif {
    pub port_id: String,
    pub network_id: String,
    /// `fa:16:3e:…`, as Neutron allocated it.
    pub mac: String,
    pub mtu: u32,
    /// The tap device name, `tap` plus the first 11 characters of the port
    /// id, as the network agent expects to find it.
    pub tap: String,
}

impl Vif {
    /// Returns the tap name that the network agent plugs into the network's
    /// bridge.
    pub fn tap_name(port_id: &str) -> String {
        let short: String = port_id.chars().take(11).collect();
        format!("tap{short}")
    }
}

/// The description of an instance to run. It contains everything a driver
/// needs to start the instance again after a stop, so drivers keep it beside
/// the instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// The server's UUID, which names the instance folder and the QEMU
    /// process.
    pub uuid: String,
    /// The server's display name, for logs.
    pub name: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    /// The root disk's size in GB. 0 keeps the image's virtual size.
    pub root_gb: u64,
    pub image: ImageSource,
    pub vifs: Vec<Vif>,
    /// Files of the config drive (`openstack/latest/meta_data.json` …),
    /// written into an ISO 9660 image labelled `config-2`. `None` attaches
    /// no config drive.
    pub config_drive: Option<BTreeMap<String, Vec<u8>>>,
}

/// A driver's report on one instance's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceInfo {
    pub power_state: PowerState,
}

/// A driver's report on one instance for the diagnostics API. Counters a
/// driver cannot read are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    pub power_state: PowerState,
    /// The hypervisor (`kvm`, `qemu`, `fake`), when known.
    pub hypervisor: Option<String>,
    /// The host's operating system, when known.
    pub hypervisor_os: Option<String>,
    /// Seconds since the instance started.
    pub uptime_secs: Option<u64>,
    pub config_drive: bool,
    /// MiB given to the instance.
    pub memory_max_mb: Option<u64>,
    /// MiB the guest uses.
    pub memory_used_mb: Option<u64>,
    pub cpus: Vec<CpuDiagnostics>,
    pub nics: Vec<NicDiagnostics>,
    pub disks: Vec<DiskDiagnostics>,
}

/// One virtual CPU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuDiagnostics {
    pub id: u32,
    /// Nanoseconds of CPU time used.
    pub time_ns: Option<u64>,
    /// CPU utilisation in percent.
    pub utilisation: Option<u64>,
}

/// One network interface, with counters since it was plugged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicDiagnostics {
    pub mac_address: Option<String>,
    pub rx_octets: Option<u64>,
    pub rx_errors: Option<u64>,
    pub rx_drop: Option<u64>,
    pub rx_packets: Option<u64>,
    pub rx_rate: Option<u64>,
    pub tx_octets: Option<u64>,
    pub tx_errors: Option<u64>,
    pub tx_drop: Option<u64>,
    pub tx_packets: Option<u64>,
    pub tx_rate: Option<u64>,
}

/// One disk, with counters since the instance started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskDiagnostics {
    pub read_bytes: Option<u64>,
    pub read_requests: Option<u64>,
    pub write_bytes: Option<u64>,
    pub write_requests: Option<u64>,
    pub errors_count: Option<u64>,
}

/// The host's resources, which the compute service reports to placement
/// and shows in `os-hypervisors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostResources {
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
    /// `QEMU` or `fake`.
    pub hypervisor_type: String,
    /// Nova's integer form: 7.2.0 is 7002000.
    pub hypervisor_version: u64,
    /// `kvm` or `qemu` for the QEMU driver.
    pub virt_type: String,
}

/// A driver failure. The message is shown to users in the server's fault,
/// so it states what went wrong and what to change.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("instance {0} is not on this host")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

/// The virtualisation layer of one compute host.
#[async_trait::async_trait]
pub trait Driver: Send + Sync {
    /// Returns the driver's name: `fake` or `qemu`.
    fn name(&self) -> &'static str;

    /// Returns the host's total resources.
    async fn host_resources(&self) -> Result<HostResources, DriverError>;

    /// Creates the instance's disks and config drive and starts it. When
    /// it fails, what it created is removed before it returns.
    async fn spawn(&self, spec: &InstanceSpec) -> Result<(), DriverError>;

    /// Stops the instance if it runs and removes all its files.
    async fn destroy(&self, uuid: &str) -> Result<(), DriverError>;

    /// Asks the guest to shut down, waits up to `timeout`, then stops it.
    async fn power_off(&self, uuid: &str, timeout: Duration) -> Result<(), DriverError>;

    /// Starts a stopped instance again from its kept spec and disks.
    async fn power_on(&self, uuid: &str) -> Result<(), DriverError>;

    /// Reboots the instance. A soft reboot requests it from the guest over
    /// ACPI, and a hard reboot resets the virtual machine.
    async fn reboot(&self, uuid: &str, hard: bool) -> Result<(), DriverError>;

    async fn pause(&self, uuid: &str) -> Result<(), DriverError>;
    async fn unpause(&self, uuid: &str) -> Result<(), DriverError>;

    /// Saves the instance's memory to disk and stops it.
    async fn suspend(&self, uuid: &str) -> Result<(), DriverError>;
    /// Starts the instance again from its saved memory.
    async fn resume(&self, uuid: &str) -> Result<(), DriverError>;

    /// Returns the instance's power state, or `NotFound` when the host has
    /// no such instance.
    async fn info(&self, uuid: &str) -> Result<InstanceInfo, DriverError>;

    /// Lists every instance on this host with its power state. A restarted
    /// agent compares this list with the database.
    async fn list(&self) -> Result<Vec<(String, PowerState)>, DriverError>;

    /// Returns the serial console's output. `length` keeps only that many
    /// last lines.
    async fn console_output(
        &self,
        uuid: &str,
        length: Option<usize>,
    ) -> Result<String, DriverError>;

    /// Returns the instance's diagnostics. The default reports only the
    /// power state from [`Driver::info`], and drivers override it.
    async fn diagnostics(&self, uuid: &str) -> Result<Diagnostics, DriverError> {
        let info = self.info(uuid).await?;
        Ok(Diagnostics {
            power_state: info.power_state,
            ..Diagnostics::default()
        })
    }
}

pub mod fake;
pub mod qemu;

pub use fake::FakeDriver;
pub use qemu::{QemuConfig, QemuDriver, VirtType};
