//! The fake driver: instances live in memory and change state at once.
//! API tests, Tempest and scale benchmarks run on it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::{
    CpuDiagnostics, Diagnostics, DiskDiagnostics, Driver, DriverError, HostResources, InstanceInfo,
    InstanceSpec, NicDiagnostics, PowerState,
};

/// An in-memory host with the resources it was created with.
pub struct FakeDriver {
    resources: HostResources,
    instances: Mutex<BTreeMap<String, FakeInstance>>,
}

struct FakeInstance {
    spec: InstanceSpec,
    power: PowerState,
}

impl FakeDriver {
    /// Creates a host as large as Nova's fake driver reports by default.
    pub fn new() -> Self {
        Self::with_resources(HostResources {
            vcpus: 1000,
            memory_mb: 800_000,
            disk_gb: 600_000,
            hypervisor_type: "fake".to_owned(),
            hypervisor_version: 1000,
            virt_type: "fake".to_owned(),
        })
    }

    pub fn with_resources(resources: HostResources) -> Self {
        FakeDriver {
            resources,
            instances: Mutex::new(BTreeMap::new()),
        }
    }

    fn set_power(
        &self,
        uuid: &str,
        from: &[PowerState],
        to: PowerState,
    ) -> Result<(), DriverError> {
        let mut instances = self.instances.lock().expect("fake driver lock");
        let instance = instances
            .get_mut(uuid)
            .ok_or_else(|| DriverError::NotFound(uuid.to_owned()))?;
        if instance.power != to && !from.contains(&instance.power) {
            return Err(DriverError::Failed(format!(
                "instance {uuid} is {:?}; it cannot become {to:?}",
                instance.power
            )));
        }
        instance.power = to;
        Ok(())
    }
}

impl Default for FakeDriver {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl Driver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn host_resources(&self) -> Result<HostResources, DriverError> {
        Ok(self.resources.clone())
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<(), DriverError> {
        let mut instances = self.instances.lock().expect("fake driver lock");
        instances.insert(
            spec.uuid.clone(),
            FakeInstance {
                spec: spec.clone(),
                power: PowerState::Running,
            },
        );
        Ok(())
    }

    async fn destroy(&self, uuid: &str) -> Result<(), DriverError> {
        self.instances
            .lock()
            .expect("fake driver lock")
            .remove(uuid);
        Ok(())
    }

    async fn power_off(&self, uuid: &str, _timeout: Duration) -> Result<(), DriverError> {
        self.set_power(
            uuid,
            &[
                PowerState::Running,
                PowerState::Paused,
                PowerState::Crashed,
                PowerState::Suspended,
            ],
            PowerState::Shutdown,
        )
    }

    async fn power_on(&self, uuid: &str) -> Result<(), DriverError> {
        self.set_power(
            uuid,
            &[PowerState::Shutdown, PowerState::Crashed],
            PowerState::Running,
        )
    }

    async fn reboot(&self, uuid: &str, _hard: bool) -> Result<(), DriverError> {
        // As with QEMU, a reboot brings the instance up from any state:
        // Nova allows a hard reboot of a paused or suspended server.
        self.set_power(
            uuid,
            &[
                PowerState::Running,
                PowerState::Shutdown,
                PowerState::Crashed,
                PowerState::Paused,
                PowerState::Suspended,
            ],
            PowerState::Running,
        )
    }

    async fn pause(&self, uuid: &str) -> Result<(), DriverError> {
        self.set_power(uuid, &[PowerState::Running], PowerState::Paused)
    }

    async fn unpause(&self, uuid: &str) -> Result<(), DriverError> {
        self.set_power(uuid, &[PowerState::Paused], PowerState::Running)
    }

    async fn suspend(&self, uuid: &str) -> Result<(), DriverError> {
        self.set_power(
            uuid,
            &[PowerState::Running, PowerState::Paused],
            PowerState::Suspended,
        )
    }

    async fn resume(&self, uuid: &str) -> Result<(), DriverError> {
        self.set_power(uuid, &[PowerState::Suspended], PowerState::Running)
    }

    async fn info(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        let instances = self.instances.lock().expect("fake driver lock");
        let instance = instances
            .get(uuid)
            .ok_or_else(|| DriverError::NotFound(uuid.to_owned()))?;
        Ok(InstanceInfo {
            power_state: instance.power,
        })
    }

    async fn list(&self) -> Result<Vec<(String, PowerState)>, DriverError> {
        let instances = self.instances.lock().expect("fake driver lock");
        Ok(instances
            .iter()
            .map(|(uuid, instance)| (uuid.clone(), instance.power))
            .collect())
    }

    async fn console_output(
        &self,
        uuid: &str,
        length: Option<usize>,
    ) -> Result<String, DriverError> {
        let instances = self.instances.lock().expect("fake driver lock");
        let instance = instances
            .get(uuid)
            .ok_or_else(|| DriverError::NotFound(uuid.to_owned()))?;
        // Nova's fake driver returns a fixed text. This one names the
        // instance so a test can tell two consoles apart.
        let lines = [
            format!(
                "fake console of {} ({})",
                instance.spec.name, instance.spec.uuid
            ),
            format!(
                "{} vCPU, {} MiB",
                instance.spec.vcpus, instance.spec.memory_mb
            ),
            "login:".to_owned(),
        ];
        let keep = length.unwrap_or(lines.len()).min(lines.len());
        Ok(lines[lines.len() - keep..].join("\n") + "\n")
    }

    /// Reports the spec's sizes and MACs with fixed counters, as Nova's
    /// fake driver reports fixed numbers.
    async fn diagnostics(&self, uuid: &str) -> Result<Diagnostics, DriverError> {
        let instances = self.instances.lock().expect("fake driver lock");
        let instance = instances
            .get(uuid)
            .ok_or_else(|| DriverError::NotFound(uuid.to_owned()))?;
        let spec = &instance.spec;
        let cpus = (0..spec.vcpus)
            .map(|id| CpuDiagnostics {
                id,
                time_ns: Some(17_300_000_000),
                utilisation: Some(15),
            })
            .collect();

        let nics = spec
            .vifs
            .iter()
            .map(|vif| NicDiagnostics {
                mac_address: Some(vif.mac.clone()),
                rx_octets: Some(2_070_139),
                rx_errors: Some(0),
                rx_drop: Some(0),
                rx_packets: Some(26_701),
                rx_rate: Some(300),
                tx_octets: Some(140_208),
                tx_errors: Some(0),
                tx_drop: Some(0),
                tx_packets: Some(662),
                tx_rate: Some(300),
            })
            .collect();

        let disk = DiskDiagnostics {
            read_bytes: Some(262_144),
            read_requests: Some(112),
            write_bytes: Some(5_778_432),
            write_requests: Some(488),
            errors_count: Some(0),
        };

        Ok(Diagnostics {
            power_state: instance.power,
            hypervisor: Some("fake".to_owned()),
            hypervisor_os: Some("fake-os".to_owned()),
            uptime_secs: Some(46_664),
            config_drive: spec.config_drive.is_some(),
            memory_max_mb: Some(spec.memory_mb),
            memory_used_mb: Some(spec.memory_mb / 2),
            cpus,
            nics,
            disks: vec![disk],
        })
    }
}
