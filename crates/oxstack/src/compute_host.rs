//! This host's compute agent: the hypervisor driver `[hypervisor]` selects,
//! joined to the network agent so a server's tap lands on a bridge that
//! exists and is plugged into it at once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use oxstack_hypervisor::qemu::{QemuConfig, QemuDriver, VirtType};
use oxstack_hypervisor::{
    Driver, DriverError, FakeDriver, HostResources, InstanceInfo, InstanceSpec, PowerState,
};

use crate::config::{Config, DriverKind};
use crate::dataplane::HostAgent;

/// Builds the driver that `[hypervisor] driver` names. With a network agent,
/// that agent plugs the taps of the driver's instances.
pub fn driver(
    config: &Config,
    data_dir: &Path,
    agent: Option<Arc<HostAgent>>,
) -> anyhow::Result<Arc<dyn Driver>> {
    let driver: Arc<dyn Driver> = match config.hypervisor.driver {
        DriverKind::Fake => return Ok(Arc::new(FakeDriver::new())),
        DriverKind::Qemu => {
            let virt_type: VirtType = config
                .hypervisor
                .virt_type
                .parse()
                .map_err(|error| anyhow::anyhow!("[hypervisor] virt_type: {error}"))?;
            let mut qemu = QemuConfig::new(data_dir.join("instances"));
            qemu.virt_type = virt_type;
            if let Some(binary) = &config.hypervisor.qemu_binary {
                qemu.qemu_binary = binary.clone();
            }
            Arc::new(QemuDriver::new(qemu).context("cannot start the QEMU driver")?)
        }
    };
    Ok(match agent {
        Some(agent) => Arc::new(PluggedDriver {
            inner: driver,
            agent,
        }),
        None => driver,
    })
}

/// A driver whose instances' networks are plugged before they start and
/// whose new taps are put on their bridges right after.
struct PluggedDriver {
    inner: Arc<dyn Driver>,
    agent: Arc<HostAgent>,
}

impl PluggedDriver {
    /// Runs the network agent now rather than at its next pass, so a tap
    /// QEMU just created joins its bridge before the guest sends its DHCP
    /// request.
    async fn plug_taps(&self, uuid: &str) {
        if let Err(error) = self.agent.sync(true).await {
            tracing::warn!(server_id = uuid, %error, "network agent pass after starting the server failed; it retries");
        }
    }
}

#[async_trait::async_trait]
impl Driver for PluggedDriver {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn host_resources(&self) -> Result<HostResources, DriverError> {
        self.inner.host_resources().await
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<(), DriverError> {
        for vif in &spec.vifs {
            self.agent
                .ensure_network_plugged(&vif.network_id)
                .await
                .map_err(|error| {
                    DriverError::Failed(format!(
                        "cannot plug network {} into this host: {error}",
                        vif.network_id
                    ))
                })?;
        }
        self.inner.spawn(spec).await?;
        self.plug_taps(&spec.uuid).await;
        Ok(())
    }

    async fn destroy(&self, uuid: &str) -> Result<(), DriverError> {
        self.inner.destroy(uuid).await
    }

    async fn power_off(&self, uuid: &str, timeout: Duration) -> Result<(), DriverError> {
        self.inner.power_off(uuid, timeout).await
    }

    async fn power_on(&self, uuid: &str) -> Result<(), DriverError> {
        self.inner.power_on(uuid).await?;
        self.plug_taps(uuid).await;
        Ok(())
    }

    async fn reboot(&self, uuid: &str, hard: bool) -> Result<(), DriverError> {
        self.inner.reboot(uuid, hard).await?;
        self.plug_taps(uuid).await;
        Ok(())
    }

    async fn pause(&self, uuid: &str) -> Result<(), DriverError> {
        self.inner.pause(uuid).await
    }

    async fn unpause(&self, uuid: &str) -> Result<(), DriverError> {
        self.inner.unpause(uuid).await
    }

    async fn suspend(&self, uuid: &str) -> Result<(), DriverError> {
        self.inner.suspend(uuid).await
    }

    async fn resume(&self, uuid: &str) -> Result<(), DriverError> {
        self.inner.resume(uuid).await?;
        self.plug_taps(uuid).await;
        Ok(())
    }

    async fn info(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        self.inner.info(uuid).await
    }

    async fn list(&self) -> Result<Vec<(String, PowerState)>, DriverError> {
        self.inner.list().await
    }

    async fn console_output(
        &self,
        uuid: &str,
        length: Option<usize>,
    ) -> Result<String, DriverError> {
        self.inner.console_output(uuid, length).await
    }

    async fn diagnostics(
        &self,
        uuid: &str,
    ) -> Result<oxstack_hypervisor::Diagnostics, DriverError> {
        self.inner.diagnostics(uuid).await
    }
}
