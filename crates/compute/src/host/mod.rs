//! Compute hosts: registration of this process's host (its services, its
//! compute node and the node's placement resource provider with
//! inventories), heartbeats, and the reconciliation of stored servers with
//! what the driver runs after a restart ([`sync`]).
//!
//! All-in-one runs one host, whose driver is `backends.driver`. Tests and
//! scale benchmarks register further hosts with [`ComputeService::add_host`],
//! each with its own driver, so the scheduler can choose among them.

pub mod records;
pub mod sync;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use oxstack_hypervisor::{Driver, DriverError, HostResources};
use oxstack_placement::{Inventories, Inventory, PlacementError, ProviderId};

use crate::config::ComputeConfig;
use crate::ComputeService;
use records::{NodeRecord, COMPUTE_BINARY, CONDUCTOR_BINARY, SCHEDULER_BINARY};

/// The guest architecture every OxStack host runs: the QEMU driver starts
/// `qemu-system-x86_64` whatever the host's own CPU is.
pub const GUEST_ARCH: &str = "x86_64";

/// Seconds between two checks of a host's resources.
const RESOURCE_REFRESH_SECS: u64 = 60;

/// The drivers of the hosts this process runs besides its own.
#[derive(Default)]
pub struct HostRegistry {
    drivers: RwLock<BTreeMap<String, Arc<dyn Driver>>>,
    heartbeat_started: AtomicBool,
}

/// Registration settings of a host beyond its driver's resources.
#[derive(Debug, Clone)]
pub struct HostOptions {
    pub availability_zone: String,
    /// The guest architecture the host runs.
    pub cpu_arch: String,
    /// The address other hosts reach this one at (`host_ip`).
    pub host_ip: String,
}

impl HostOptions {
    /// Options from the `[compute]` settings: the default zone, x86_64 guests.
    pub fn from_config(config: &ComputeConfig) -> Self {
        HostOptions {
            availability_zone: config.default_availability_zone.clone(),
            cpu_arch: GUEST_ARCH.to_owned(),
            host_ip: config
                .my_ip
                .clone()
                .unwrap_or_else(|| "127.0.0.1".to_owned()),
        }
    }
}

/// A failure to register a compute host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("the hypervisor driver failed to report the host's resources: {0}")]
    Driver(#[from] DriverError),
    #[error("database error while registering the compute host: {0}")]
    Database(#[from] sqlx::Error),
    #[error("placement refused the compute host's resource provider: {0}")]
    Placement(#[from] PlacementError),
}

/// The amounts a host keeps back from placement, from the settings and the
/// host's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    pub vcpus: i64,
    pub memory_mb: i64,
    pub disk_gb: i64,
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Returns what the host keeps back: the configured amounts, but never more
/// than half the memory of a small host, nor more than the host has.
pub fn reserved(config: &ComputeConfig, resources: &HostResources) -> Reserved {
    let memory = as_i64(resources.memory_mb);
    let disk = as_i64(resources.disk_gb);
    Reserved {
        vcpus: as_i64(config.reserved_host_cpus).min(i64::from(resources.vcpus)),
        memory_mb: as_i64(config.reserved_host_memory_mb).min(memory / 2),
        disk_gb: as_i64(config.reserved_host_disk_mb.div_ceil(1024)).min(disk),
    }
}

/// Returns the inventories a host reports to placement.
pub fn inventories(config: &ComputeConfig, resources: &HostResources) -> Inventories {
    let reserved = reserved(config, resources);
    let classes = [
        (
            "VCPU",
            i64::from(resources.vcpus),
            reserved.vcpus,
            config.cpu_allocation_ratio,
        ),
        (
            "MEMORY_MB",
            as_i64(resources.memory_mb),
            reserved.memory_mb,
            config.ram_allocation_ratio,
        ),
        (
            "DISK_GB",
            as_i64(resources.disk_gb),
            reserved.disk_gb,
            config.disk_allocation_ratio,
        ),
    ];
    classes
        .into_iter()
        .filter(|(_, total, _, _)| *total > 0)
        .map(|(class, total, reserved, ratio)| {
            let inventory = Inventory {
                reserved,
                // One server may take the whole host, not more.
                max_unit: total,
                allocation_ratio: ratio,
                ..Inventory::with_total(total)
            };
            (class.to_owned(), inventory)
        })
        .collect()
}

impl ComputeService {
    /// Registers this process's compute host and keeps it alive: records
    /// its `nova-compute`, `nova-scheduler` and `nova-conductor` services
    /// and its compute node, creates the node's resource provider with its
    /// inventories, reconciles the host's servers with the driver
    /// ([`sync`]) and starts the heartbeats. The binary calls it once after
    /// [`ComputeService::open`] and before the API serves requests, because
    /// the reconciliation takes every server still building for one whose
    /// build a restart interrupted. A second call registers nothing new.
    pub async fn start_host(self: &Arc<Self>) -> Result<NodeRecord, HostError> {
        let host = self.backends.host.clone();
        if self.config.service_down_time <= self.config.report_interval {
            tracing::warn!(
                report_interval = self.config.report_interval,
                service_down_time = self.config.service_down_time,
                "service_down_time is not longer than report_interval, so hosts will show as down between \
                 heartbeats; set service_down_time to several report intervals"
            );
        }
        let options = HostOptions::from_config(&self.config);
        let node = self
            .register_host(&host, self.backends.driver.as_ref(), &options)
            .await?;
        for binary in [SCHEDULER_BINARY, CONDUCTOR_BINARY] {
            records::ensure_service(self.pool(), &host, binary).await?;
        }
        records::heartbeat(self.pool(), &host).await?;
        self.sync_host(&host).await;
        self.start_heartbeats();
        tracing::info!(host = %host, node = %node.uuid, "compute host started");
        Ok(node)
    }

    /// Registers another compute host served by `driver` in this process:
    /// a simulated host for tests and scale benchmarks. It gets heartbeats
    /// like the local host.
    pub async fn add_host(
        self: &Arc<Self>,
        host: &str,
        driver: Arc<dyn Driver>,
        options: HostOptions,
    ) -> Result<NodeRecord, HostError> {
        let node = self.register_host(host, driver.as_ref(), &options).await?;
        self.hosts
            .drivers
            .write()
            .expect("host registry lock")
            .insert(host.to_owned(), driver);
        records::heartbeat(self.pool(), host).await?;
        self.start_heartbeats();
        Ok(node)
    }

    /// Returns the driver of `host`, when this process runs it.
    pub fn driver_for(&self, host: &str) -> Option<Arc<dyn Driver>> {
        if host == self.backends.host {
            return Some(self.backends.driver.clone());
        }
        self.hosts
            .drivers
            .read()
            .expect("host registry lock")
            .get(host)
            .cloned()
    }

    /// Returns the hosts this process runs, its own first.
    pub fn local_hosts(&self) -> Vec<String> {
        let mut hosts = vec![self.backends.host.clone()];
        hosts.extend(
            self.hosts
                .drivers
                .read()
                .expect("host registry lock")
                .keys()
                .cloned(),
        );
        hosts
    }

    async fn register_host(
        &self,
        host: &str,
        driver: &dyn Driver,
        options: &HostOptions,
    ) -> Result<NodeRecord, HostError> {
        let resources = driver.host_resources().await?;
        records::ensure_service(self.pool(), host, COMPUTE_BINARY).await?;
        let reserved = reserved(&self.config, &resources);
        let at = chrono::Utc::now().timestamp();
        let node = records::upsert_node(
            self.pool(),
            &NodeRecord {
                id: 0,
                uuid: String::new(),
                host: host.to_owned(),
                hypervisor_hostname: host.to_owned(),
                hypervisor_type: resources.hypervisor_type.clone(),
                hypervisor_version: as_i64(resources.hypervisor_version),
                virt_type: resources.virt_type.clone(),
                cpu_arch: options.cpu_arch.clone(),
                availability_zone: options.availability_zone.clone(),
                host_ip: options.host_ip.clone(),
                vcpus: i64::from(resources.vcpus),
                memory_mb: as_i64(resources.memory_mb),
                local_gb: as_i64(resources.disk_gb),
                reserved_vcpus: reserved.vcpus,
                reserved_memory_mb: reserved.memory_mb,
                reserved_disk_gb: reserved.disk_gb,
                created_at: at,
                updated_at: at,
            },
        )
        .await?;
        let provider = ProviderId(node.uuid.clone());
        let placement = &self.backends.placement;
        placement.ensure_provider(&provider, host).await?;
        placement
            .set_inventory(&provider, &inventories(&self.config, &resources))
            .await?;
        tracing::info!(
            host,
            provider = %provider,
            vcpus = resources.vcpus,
            memory_mb = resources.memory_mb,
            disk_gb = resources.disk_gb,
            "compute node resources reported to placement"
        );
        Ok(node)
    }

    /// Reports the host's resources again when the driver's totals or the
    /// reserved amounts changed since registration: updates the compute
    /// node and the provider's inventories.
    pub async fn refresh_resources(&self, host: &str) -> Result<(), HostError> {
        let (Some(driver), Some(node)) = (
            self.driver_for(host),
            records::node_by_host(self.pool(), host).await?,
        ) else {
            return Ok(());
        };
        let resources = driver.host_resources().await?;
        let reserved = reserved(&self.config, &resources);
        let current = (
            node.vcpus,
            node.memory_mb,
            node.local_gb,
            node.reserved_vcpus,
            node.reserved_memory_mb,
            node.reserved_disk_gb,
        );
        let reported = (
            i64::from(resources.vcpus),
            as_i64(resources.memory_mb),
            as_i64(resources.disk_gb),
            reserved.vcpus,
            reserved.memory_mb,
            reserved.disk_gb,
        );
        if current == reported {
            return Ok(());
        }
        let options = HostOptions {
            availability_zone: node.availability_zone.clone(),
            cpu_arch: node.cpu_arch.clone(),
            host_ip: node.host_ip.clone(),
        };
        self.register_host(host, driver.as_ref(), &options).await?;
        Ok(())
    }

    /// Starts the heartbeat task once per process. The task keeps a weak
    /// reference to the service, so it ends when the service is dropped.
    fn start_heartbeats(self: &Arc<Self>) {
        if self.hosts.heartbeat_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let service: Weak<Self> = Arc::downgrade(self);
        let period = Duration::from_secs(self.config.report_interval.max(1));
        tokio::spawn(async move {
            // The first beat is due one period from now: registration
            // recorded one already.
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Hosts whose last heartbeat failed, so a lasting failure is
            // logged once when it starts and once when it ends.
            let mut failing = std::collections::BTreeSet::new();
            // Resources are checked about once a minute, as Nova's resource
            // tracker does, whatever the heartbeat period.
            let refresh_every = (RESOURCE_REFRESH_SECS / period.as_secs()).max(1);
            let mut beats: u64 = 0;
            loop {
                ticks.tick().await;
                let Some(service) = service.upgrade() else {
                    return;
                };
                beats += 1;
                for host in service.local_hosts() {
                    if beats.is_multiple_of(refresh_every) {
                        if let Err(error) = service.refresh_resources(&host).await {
                            tracing::warn!(host, %error, "could not refresh the host's resources");
                        }
                    }
                    let problem = match records::heartbeat(service.pool(), &host).await {
                        Ok(0) => Some(
                            "no service row; an operator deleted the host's services".to_owned(),
                        ),
                        Ok(_) => None,
                        Err(error) => Some(error.to_string()),
                    };
                    match problem {
                        Some(error) if failing.insert(host.clone()) => {
                            tracing::warn!(
                                host,
                                error,
                                "heartbeat failed; the host will show as down"
                            );
                        }
                        None if failing.remove(&host) => {
                            tracing::info!(host, "heartbeats recorded again")
                        }
                        _ => {}
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(vcpus: u32, memory_mb: u64, disk_gb: u64) -> HostResources {
        HostResources {
            vcpus,
            memory_mb,
            disk_gb,
            hypervisor_type: "fake".to_owned(),
            hypervisor_version: 1,
            virt_type: "fake".to_owned(),
        }
    }

    #[test]
    fn reserved_memory_capped_at_half() {
        let config = ComputeConfig::default();
        assert_eq!(reserved(&config, &resources(1, 600, 10)).memory_mb, 300);
        assert_eq!(reserved(&config, &resources(1, 8192, 10)).memory_mb, 512);
    }

    #[test]
    fn inventories_use_configured_ratios() {
        let config = ComputeConfig::default();
        let inventories = inventories(&config, &resources(4, 8192, 100));
        assert_eq!(inventories["VCPU"].allocation_ratio, 16.0);
        assert_eq!(inventories["MEMORY_MB"].allocation_ratio, 1.5);
        assert_eq!(inventories["MEMORY_MB"].reserved, 512);
        assert_eq!(inventories["DISK_GB"].allocation_ratio, 1.0);
        assert_eq!(inventories["DISK_GB"].total, 100);
    }

    #[test]
    fn inventories_skip_empty_classes() {
        let inventories = inventories(&ComputeConfig::default(), &resources(2, 1024, 0));
        assert!(!inventories.contains_key("DISK_GB"));
    }
}
