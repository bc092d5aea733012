//! This host's network agent: plugs the networks that have ports on this
//! host into Linux (one bridge per network, its VXLAN device, a `qdhcp-`
//! namespace with dnsmasq) and keeps them in line with the network service.
//!
//! It reconciles at start, immediately after every write to the network
//! service, and every few seconds. A periodic pass that finds the desired
//! state unchanged only checks, through sysfs and dnsmasq's pid file, that
//! every bridge exists, every present tap is in its bridge and every dnsmasq
//! runs. It reconciles again when one of these checks fails.

mod desired;
pub mod dhcp_dir;
pub mod external_bridge;
mod probe;
#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use oxstack_netagent::ipnet::Ipv4Net;
use oxstack_netagent::{
    Dataplane, DesiredState, DhcpServer, Dnsmasq, LinuxDataplane, NamespaceMetadataProxy,
    NftCommand, Reconciler,
};
use oxstack_network::NetworkService;
use tokio::sync::Mutex;

use crate::config::{Config, DataplaneKind};
pub use desired::HostSettings;
pub use probe::{HostProbe, LinuxProbe};

/// How often the agent checks the host when nothing was written. Neutron's
/// Linux bridge agent polls for new taps every 2 s (`polling_interval`).
const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// DHCP lease time handed to instances, Neutron's `dhcp_lease_duration`
/// default, in seconds.
pub const LEASE_SECONDS: u32 = 86_400;

/// A failure of one pass of the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("reading the networks of host {host} failed: {message}")]
    Read { host: String, message: String },
    #[error(transparent)]
    Reconcile(#[from] oxstack_netagent::ReconcileError),
    #[error("network {network_id} has no port bound to host {host}, so the agent does not plug it in; bind a port of the network to {host} first")]
    NotOnHost { network_id: String, host: String },
}

struct Applied {
    reconciler: Reconciler,
    /// The desired state of the last pass.
    last: Option<DesiredState>,
    /// Whether the last pass failed, so the next pass reconciles in any case.
    failed: bool,
}

/// The network agent of one host.
pub struct HostAgent {
    networks: Arc<NetworkService>,
    host: String,
    settings: HostSettings,
    dataplane: Arc<dyn Dataplane>,
    dhcp: Arc<dyn DhcpServer>,
    probe: Arc<dyn HostProbe>,
    applied: Mutex<Applied>,
}

impl HostAgent {
    /// Builds the agent of `host`. `reconciler` applies the desired state
    /// with `dataplane` and `dhcp`, and `probe` checks the host between
    /// changes.
    pub fn new(
        networks: Arc<NetworkService>,
        host: String,
        settings: HostSettings,
        reconciler: Reconciler,
        dataplane: Arc<dyn Dataplane>,
        dhcp: Arc<dyn DhcpServer>,
        probe: Arc<dyn HostProbe>,
    ) -> Self {
        HostAgent {
            networks,
            host,
            settings,
            dataplane,
            dhcp,
            probe,
            applied: Mutex::new(Applied {
                reconciler,
                last: None,
                failed: false,
            }),
        }
    }

    /// Builds the desired state of this host from the network service.
    pub async fn desired_state(&self) -> Result<DesiredState, AgentError> {
        let view = self
            .networks
            .host_view(&self.host)
            .await
            .map_err(|error| AgentError::Read {
                host: self.host.clone(),
                message: error.message,
            })?;
        Ok(desired::build(&view, &self.settings))
    }

    /// Runs one pass: reads the desired state and reconciles the host
    /// unless the state is the one last applied and `probe` finds the host
    /// still matching it. `force` reconciles in any case. Returns whether
    /// it reconciled.
    pub async fn sync(&self, force: bool) -> Result<bool, AgentError> {
        let desired = self.desired_state().await?;
        let mut applied = self.applied.lock().await;
        let unchanged = !applied.failed && applied.last.as_ref() == Some(&desired);
        if !force && unchanged && !self.probe.drifted(&desired) {
            return Ok(false);
        }
        let Applied { reconciler, .. } = &mut *applied;
        let result = reconciler
            .reconcile(&desired, self.dataplane.as_ref(), self.dhcp.as_ref())
            .await;
        applied.failed = result.is_err();
        applied.last = Some(desired);
        result?;
        Ok(true)
    }

    /// Plugs network `network_id` into this host now, so its bridge exists
    /// before the hypervisor creates a server's tap. The network must have
    /// a port bound to this host.
    pub async fn ensure_network_plugged(&self, network_id: &str) -> Result<(), AgentError> {
        self.sync(true).await?;
        let applied = self.applied.lock().await;
        let plugged = applied.last.as_ref().is_some_and(|state| {
            state
                .networks
                .iter()
                .any(|network| network.id == network_id)
        });
        if !plugged {
            return Err(AgentError::NotOnHost {
                network_id: network_id.to_owned(),
                host: self.host.clone(),
            });
        }
        Ok(())
    }

    /// Reconciles at once after every change to the network service, and
    /// checks the host every `interval` in between, until the process ends.
    pub fn spawn(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let agent = self.clone();
        let mut changes = self.networks.changes();
        tokio::spawn(async move {
            let mut failures: u64 = 0;
            loop {
                match agent.sync(false).await {
                    Ok(_) if failures > 0 => {
                        tracing::info!(host = %agent.host, failures, "network agent pass succeeded again");
                        failures = 0;
                    }
                    Ok(_) => {}
                    // The first failure and then every 30th are logged, so a
                    // lasting fault does not flood the log every 2 s.
                    Err(error) => {
                        if failures.is_multiple_of(30) {
                            tracing::error!(host = %agent.host, error = %error, failures, "network agent pass failed; retrying");
                        }
                        failures += 1;
                    }
                }
                tokio::select! {
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    () = tokio::time::sleep(interval) => {}
                }
            }
        })
    }
}

/// Returns whether this process may change the host's network, which
/// requires CAP_NET_ADMIN (bit 12 of the effective capabilities), as root has.
pub fn can_administer_network() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// Gives networks without one their DHCP port, then starts this host's
/// network agent as `[netagent] dataplane` selects. The agent reconciles once
/// and keeps reconciling in the background.
///
/// dnsmasq keeps its files under `/run/oxstack`, and `DATA_DIR/dhcp` links
/// there (see [`dhcp_dir`]). The agent keeps its record of what it created in
/// `DATA_DIR/netagent`. Metadata proxies forward to `metadata`, the metadata
/// API's listener, when given. When `bridge_mappings` is the default, it
/// first creates br-ex with the address `external_gateway`, the gateway of
/// the `public-subnet` just created.
///
/// Returns the agent, or `None` when the host runs without a dataplane.
pub async fn start(
    networks: Arc<NetworkService>,
    config: &Config,
    data_dir: &Path,
    metadata: Option<SocketAddr>,
    external_gateway: Option<Ipv4Net>,
) -> anyhow::Result<Option<Arc<HostAgent>>> {
    let capable = can_administer_network();
    let kind = match config.netagent.dataplane {
        Some(DataplaneKind::Linux) if !capable => anyhow::bail!(
            "[netagent] dataplane = \"linux\" needs root (CAP_NET_ADMIN) to create bridges and namespaces; \
             run oxstack as root or set dataplane = \"none\""
        ),
        Some(kind) => kind,
        None if capable => DataplaneKind::Linux,
        None => {
            tracing::warn!(
                "not running as root (no CAP_NET_ADMIN): the network dataplane is off, so servers get \
                 addresses but no connectivity; run oxstack as root for bridges, VXLAN and DHCP, or set \
                 [netagent] dataplane = \"none\" to silence this warning"
            );
            DataplaneKind::None
        }
    };
    // A network created while no agent was alive gets its DHCP port now,
    // as Neutron schedules networks to a DHCP agent that starts.
    match networks.schedule_dhcp().await {
        Ok(served) => tracing::info!(networks = served, "networks with DHCP ports"),
        Err(error) => {
            tracing::warn!(error = %error.message, "scheduling DHCP ports for networks failed")
        }
    }
    if kind == DataplaneKind::None {
        tracing::info!("network dataplane disabled by [netagent] dataplane = \"none\"");
        return Ok(None);
    }

    let host = crate::agent::host_name(config);
    let report = crate::agent::agent_config(config)?;
    let tunnel_ip = report
        .tunneling_ip
        .map(|ip| ip.parse::<Ipv4Addr>())
        .transpose()
        .context("[netagent] tunneling_ip must be an IPv4 address for VXLAN")?;
    let dataplane =
        LinuxDataplane::new().context("cannot open a netlink socket for the network dataplane")?;
    // The mapped bridge must exist before the first pass plugs `public`.
    if let Some(bridge) = config.netagent.default_bridge() {
        let ledger_dir = data_dir.join("netagent");
        if let Err(error) =
            external_bridge::ensure(&dataplane, &ledger_dir, bridge, external_gateway).await
        {
            tracing::error!(bridge, error = format!("{error:#}"),
                            "setting up the bridge of the default external network failed, so routers on it get no gateway and floating IPs do not work");
        }
    }
    let state_dir = dhcp_dir::prepare(data_dir)?;
    let dnsmasq = Dnsmasq::new(&state_dir);
    let reconciler = Reconciler::new()
        .with_state_dir(data_dir.join("netagent"))
        .context("cannot load the network agent's record of what it created")?
        .with_nftables(Arc::new(NftCommand::new()))
        .with_metadata_proxy(Arc::new(NamespaceMetadataProxy::new()));
    let settings = HostSettings {
        tunnel_ip,
        bridge_mappings: report.bridge_mappings,
        metadata,
    };
    let agent = Arc::new(HostAgent::new(
        networks.clone(),
        host.clone(),
        settings,
        reconciler,
        Arc::new(dataplane),
        Arc::new(dnsmasq.clone()),
        Arc::new(LinuxProbe::new(dnsmasq)),
    ));

    if let Err(error) = agent.sync(true).await {
        tracing::error!(%host, error = %error, "first network agent pass failed; retrying in the background");
    }
    agent.spawn(CHECK_INTERVAL);
    tracing::info!(%host, state_dir = %state_dir.display(), "network dataplane agent started");
    Ok(Some(agent))
}

/// The counts of networks and routers that [`teardown`] removed, and the
/// bridge it deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub networks: usize,
    pub routers: usize,
    /// The default external bridge (br-ex), when this data directory
    /// created it.
    pub bridge: Option<String>,
}

/// Removes from this host everything that the network agent of `data_dir`
/// created, as its record in `DATA_DIR/netagent` lists it. That covers
/// bridges, VXLAN devices, the taps it plugged, `qdhcp-` and `qrouter-`
/// namespaces, dnsmasq processes, its nftables tables, and br-ex when this
/// data directory created it. The cloud must be stopped, because a running
/// agent would plug everything back.
pub async fn teardown(data_dir: &Path) -> anyhow::Result<Removed> {
    let ledger_dir = data_dir.join("netagent");
    if !ledger_dir.exists() {
        return Ok(Removed::default());
    }
    let mut reconciler = Reconciler::new()
        .with_state_dir(&ledger_dir)
        .context("cannot load the network agent's record of what it created")?
        .with_nftables(Arc::new(NftCommand::new()))
        .with_metadata_proxy(Arc::new(NamespaceMetadataProxy::new()));
    let (networks, routers) = reconciler.owned_counts();
    let dataplane = LinuxDataplane::new().context("cannot open a netlink socket; run as root")?;
    let dnsmasq = Dnsmasq::new(dhcp_dir::locate(data_dir)?);
    reconciler
        .reconcile(&DesiredState::default(), &dataplane, &dnsmasq)
        .await
        .context("cannot remove the network agent's devices")?;
    dhcp_dir::remove(data_dir)?;
    // Removed after the routers, because their gateway ports sit in the
    // bridge.
    let bridge = external_bridge::remove(&dataplane, &ledger_dir).await?;
    Ok(Removed {
        networks,
        routers,
        bridge,
    })
}
