//! Reconciliation: brings the host from what this agent applied before to
//! the desired state.
//!
//! The agent records what it created in a ledger, kept in its state
//! directory when it has one. An agent restarted over an existing host then
//! removes what its predecessor created and the desired state dropped. It
//! deletes only the `brq`, `vxlan-`, `tap`, `qdhcp-` and `qrouter-` devices
//! and namespaces of ids in the ledger, and its own `oxstack` nftables tables.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::dataplane::{Dataplane, DataplaneError};
use crate::desired::{
    bridge_name, dhcp_namespace, ns_link_name, tap_name, vxlan_name, DesiredState, NetworkSpec,
};
use crate::dhcp::{DhcpConfig, DhcpError, DhcpHost, DhcpServer};
use crate::firewall::{security_tables, MAX_PORTS, TABLE};
use crate::metadata::{MetadataError, MetadataProxy, METADATA_ADDRESS};
use crate::nft::{NftError, Nftables, TableRef};
use crate::router::{apply_router, remove_router, router_port_ids};

/// File of the ledger inside the state directory.
const LEDGER_FILE: &str = "netagent-ledger.json";

/// Failure to apply one network, router or ruleset.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("dataplane change for network {network_id} failed")]
    Dataplane {
        network_id: String,
        #[source]
        source: DataplaneError,
    },
    #[error("DHCP change for network {network_id} failed")]
    Dhcp {
        network_id: String,
        #[source]
        source: DhcpError,
    },
    #[error("DHCP port {port_ip} of network {network_id} is outside subnet {subnet}")]
    DhcpPortOutsideSubnet {
        network_id: String,
        port_ip: std::net::Ipv4Addr,
        subnet: Ipv4Net,
    },
    #[error(
        "bridge {bridge} of network {network_id} does not exist; create it or fix bridge_mappings in [netagent]"
    )]
    BridgeMissing { network_id: String, bridge: String },
    #[error("dataplane change for router {router_id} failed")]
    Router {
        router_id: String,
        #[source]
        source: DataplaneError,
    },
    #[error("router {router_id} has a port on network {network_id}, which is not in the desired networks")]
    RouterNetworkMissing {
        router_id: String,
        network_id: String,
    },
    #[error("port {port_ip} of router {router_id} is outside its subnet {subnet}")]
    RouterPortOutsideSubnet {
        router_id: String,
        port_ip: std::net::Ipv4Addr,
        subnet: Ipv4Net,
    },
    #[error("turning on netfilter for bridged traffic failed; security groups need br_netfilter")]
    BridgeNetfilter {
        #[source]
        source: DataplaneError,
    },
    #[error("nftables change for {scope} failed")]
    Nftables {
        scope: String,
        #[source]
        source: NftError,
    },
    #[error("{count} ports with port security exceed the {MAX_PORTS} one host can filter")]
    TooManyFilteredPorts { count: usize },
    #[error(
        "the desired state has security groups or routers, but this reconciler has no nftables; build it with Reconciler::with_nftables"
    )]
    NoNftables,
    #[error(
        "the desired state requests a metadata proxy, but this reconciler has none; build it with Reconciler::with_metadata_proxy"
    )]
    NoMetadataProxy,
    #[error("metadata proxy of network {network_id} failed")]
    Metadata {
        network_id: String,
        #[source]
        source: MetadataError,
    },
    #[error("agent state file {path} is unreadable or corrupt; move it away to start with an empty ledger (devices it listed are then left in place)")]
    Ledger {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Devices and namespaces the agent created for one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct OwnedNetwork {
    /// Whether the agent created `brq<id>`. False for a mapped bridge that
    /// the agent only uses.
    own_bridge: bool,
    vxlan_vni: Option<u32>,
    /// DHCP port whose `tap` and `qdhcp-` namespace exist.
    dhcp_port_id: Option<String>,
}

/// Devices the agent created for one router: its namespace and these
/// ports' host-side `tap` devices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct OwnedRouter {
    port_ids: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Ledger {
    networks: BTreeMap<String, OwnedNetwork>,
    routers: BTreeMap<String, OwnedRouter>,
}

/// Applies desired states one after another, remembering what it created so
/// that it can remove what disappears from the desired state.
#[derive(Default)]
pub struct Reconciler {
    ledger: Ledger,
    ledger_path: Option<PathBuf>,
    nftables: Option<Arc<dyn Nftables>>,
    metadata: Option<Arc<dyn MetadataProxy>>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("ledger", &self.ledger)
            .field("ledger_path", &self.ledger_path)
            .finish_non_exhaustive()
    }
}

/// Returns the bridge a network's devices go in.
pub(crate) fn bridge_of(network: &NetworkSpec) -> String {
    network
        .bridge
        .clone()
        .unwrap_or_else(|| bridge_name(&network.id))
}

impl Reconciler {
    /// Creates a reconciler that keeps its ledger in memory only, with
    /// neither nftables nor a metadata proxy. It can apply networks and DHCP.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the ledger in `dir` (created if missing) and loads what an
    /// earlier agent process recorded there.
    pub fn with_state_dir(mut self, dir: impl AsRef<Path>) -> Result<Self, ReconcileError> {
        let path = dir.as_ref().join(LEDGER_FILE);
        let ledger_error = |source| ReconcileError::Ledger {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir.as_ref()).map_err(ledger_error)?;
        self.ledger = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| ledger_error(std::io::Error::other(error)))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ledger::default(),
            Err(error) => return Err(ledger_error(error)),
        };
        self.ledger_path = Some(path);
        Ok(self)
    }

    /// Returns the number of networks and routers that the ledger records as
    /// created by this agent.
    pub fn owned_counts(&self) -> (usize, usize) {
        (self.ledger.networks.len(), self.ledger.routers.len())
    }

    /// Sets the nftables client used to filter ports (security groups) and to
    /// translate router traffic.
    pub fn with_nftables(mut self, nftables: Arc<dyn Nftables>) -> Self {
        self.nftables = Some(nftables);
        self
    }

    /// Sets the metadata proxies that serve 169.254.169.254 in DHCP
    /// namespaces.
    pub fn with_metadata_proxy(mut self, metadata: Arc<dyn MetadataProxy>) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Creates, updates and removes devices, namespaces, DHCP servers,
    /// metadata proxies and nftables tables until the host matches `desired`.
    /// Every network and router is attempted even when an earlier one fails,
    /// and the first failure is returned. Each call applies everything again,
    /// so a failed step is retried on the next call.
    pub async fn reconcile(
        &mut self,
        desired: &DesiredState,
        dataplane: &dyn Dataplane,
        dhcp: &dyn DhcpServer,
    ) -> Result<(), ReconcileError> {
        let mut errors = Vec::new();

        // Routers go first: their devices sit in the networks' bridges.
        self.remove_stale_routers(desired, dataplane, &mut errors)
            .await;
        self.remove_stale_networks(desired, dataplane, dhcp, &mut errors)
            .await;

        for network in &desired.networks {
            let result = self.apply_network(network, desired, dataplane, dhcp).await;
            errors.extend(result.err());
        }
        for router in &desired.routers {
            errors.extend(self.apply_router(router, desired, dataplane).await.err());
        }
        errors.extend(self.apply_security(desired, dataplane).await.err());
        errors.extend(self.save_ledger().err());

        for error in &errors {
            tracing::error!(error = %error, source = ?std::error::Error::source(error), "reconcile step failed");
        }
        errors.into_iter().next().map_or(Ok(()), Err)
    }

    async fn remove_stale_routers(
        &mut self,
        desired: &DesiredState,
        dataplane: &dyn Dataplane,
        errors: &mut Vec<ReconcileError>,
    ) {
        let stale: Vec<(String, OwnedRouter)> = self
            .ledger
            .routers
            .iter()
            .filter(|(id, _)| !desired.routers.iter().any(|r| &r.id == *id))
            .map(|(id, owned)| (id.clone(), owned.clone()))
            .collect();
        for (id, owned) in stale {
            match remove_router(&id, &owned.port_ids, dataplane).await {
                Ok(()) => {
                    self.ledger.routers.remove(&id);
                }
                Err(error) => errors.push(error),
            }
        }
    }

    async fn remove_stale_networks(
        &mut self,
        desired: &DesiredState,
        dataplane: &dyn Dataplane,
        dhcp: &dyn DhcpServer,
        errors: &mut Vec<ReconcileError>,
    ) {
        let stale: Vec<(String, OwnedNetwork)> = self
            .ledger
            .networks
            .iter()
            .filter(|(id, _)| !desired.networks.iter().any(|n| &n.id == *id))
            .map(|(id, owned)| (id.clone(), owned.clone()))
            .collect();
        for (id, owned) in stale {
            match self.remove_network(&id, &owned, dataplane, dhcp).await {
                Ok(()) => {
                    self.ledger.networks.remove(&id);
                }
                Err(error) => errors.push(error),
            }
        }
    }

    async fn apply_network(
        &mut self,
        network: &NetworkSpec,
        desired: &DesiredState,
        dataplane: &dyn Dataplane,
        dhcp: &dyn DhcpServer,
    ) -> Result<(), ReconcileError> {
        let previous = self.ledger.networks.get(&network.id).cloned();
        // Whatever exists after a failure must still be removable later, so
        // the ledger first records the union of the old and the new devices.
        let mut owned = previous.clone().unwrap_or_default();
        owned.own_bridge |= network.bridge.is_none();
        owned.vxlan_vni = owned.vxlan_vni.or(network.vxlan.map(|v| v.vni));
        self.ledger
            .networks
            .insert(network.id.clone(), owned.clone());

        plug_network(network, previous.as_ref(), dataplane).await?;
        let dhcp_port_id = self
            .apply_dhcp(network, previous.as_ref(), desired, dataplane, dhcp)
            .await?;

        self.ledger.networks.insert(
            network.id.clone(),
            OwnedNetwork {
                own_bridge: owned.own_bridge,
                vxlan_vni: network.vxlan.map(|v| v.vni),
                dhcp_port_id,
            },
        );
        Ok(())
    }

    /// Starts, updates or removes the network's DHCP namespace, dnsmasq and
    /// metadata proxy. Returns the DHCP port now plugged, if any.
    async fn apply_dhcp(
        &mut self,
        network: &NetworkSpec,
        previous: Option<&OwnedNetwork>,
        desired: &DesiredState,
        dataplane: &dyn Dataplane,
        dhcp: &dyn DhcpServer,
    ) -> Result<Option<String>, ReconcileError> {
        let id = network.id.as_str();
        let previous_port = previous.and_then(|p| p.dhcp_port_id.clone());
        let (Some(subnet), Some(dhcp_port)) = (&network.subnet, &network.dhcp_port) else {
            if let Some(old_port) = previous_port {
                self.remove_dhcp(id, Some(&old_port), dataplane, dhcp)
                    .await?;
            }
            return Ok(None);
        };

        if let Some(entry) = self.ledger.networks.get_mut(id) {
            entry.dhcp_port_id = Some(dhcp_port.id.clone());
        }
        if let Some(old_port) = previous_port.filter(|p| *p != dhcp_port.id) {
            dataplane
                .delete_link(&tap_name(&old_port))
                .await
                .map_err(dataplane_error(id))?;
        }
        if !subnet.cidr.contains(&dhcp_port.ip) {
            return Err(ReconcileError::DhcpPortOutsideSubnet {
                network_id: id.to_string(),
                port_ip: dhcp_port.ip,
                subnet: subnet.cidr,
            });
        }

        let metadata = match (desired.metadata, &self.metadata) {
            (Some(spec), Some(proxy)) => Some((spec, proxy.clone())),
            (Some(_), None) => return Err(ReconcileError::NoMetadataProxy),
            (None, _) => None,
        };
        let mut addresses = vec![Ipv4Net::new(dhcp_port.ip, subnet.cidr.prefix_len())
            .expect("prefix length comes from a valid network")];
        if metadata.is_some() {
            addresses.push(Ipv4Net::from(METADATA_ADDRESS));
        }

        let namespace = dhcp_namespace(id);
        let host_end = tap_name(&dhcp_port.id);
        let namespace_end = ns_link_name(&dhcp_port.id);
        dataplane
            .ensure_namespace(&namespace)
            .await
            .map_err(dataplane_error(id))?;
        dataplane
            .ensure_veth(&host_end, &namespace_end, dhcp_port.mac, network.mtu)
            .await
            .map_err(dataplane_error(id))?;
        dataplane
            .attach_to_bridge(&host_end, &bridge_of(network), network.mtu)
            .await
            .map_err(dataplane_error(id))?;
        dataplane
            .move_into_namespace_with_addresses(&namespace_end, &namespace, &addresses)
            .await
            .map_err(dataplane_error(id))?;

        let config = DhcpConfig {
            network_id: id.to_string(),
            namespace: namespace.clone(),
            interface: namespace_end,
            subnet: subnet.cidr,
            lease_seconds: subnet.lease_seconds,
            mtu: network.mtu,
            hosts: network
                .ports
                .iter()
                .map(|p| DhcpHost {
                    mac: p.mac,
                    ip: p.ip,
                })
                .collect(),
            router: subnet.gateway,
            metadata_next_hop: metadata.as_ref().map(|_| dhcp_port.ip),
        };
        dhcp.ensure_running(&config).await.map_err(dhcp_error(id))?;

        match (metadata, &self.metadata) {
            (Some((spec, proxy)), _) => {
                proxy
                    .ensure(id, &namespace, spec.upstream)
                    .await
                    .map_err(|source| ReconcileError::Metadata {
                        network_id: id.to_string(),
                        source,
                    })?
            }
            (None, Some(proxy)) => proxy.stop(id).await,
            (None, None) => {}
        }
        Ok(Some(dhcp_port.id.clone()))
    }

    async fn remove_dhcp(
        &self,
        network_id: &str,
        dhcp_port_id: Option<&str>,
        dataplane: &dyn Dataplane,
        dhcp: &dyn DhcpServer,
    ) -> Result<(), ReconcileError> {
        if let Some(proxy) = &self.metadata {
            proxy.stop(network_id).await;
        }
        dhcp.stop(network_id)
            .await
            .map_err(dhcp_error(network_id))?;
        dataplane
            .delete_namespace(&dhcp_namespace(network_id))
            .await
            .map_err(dataplane_error(network_id))?;
        if let Some(port) = dhcp_port_id {
            dataplane
                .delete_link(&tap_name(port))
                .await
                .map_err(dataplane_error(network_id))?;
        }
        Ok(())
    }

    async fn remove_network(
        &self,
        id: &str,
        owned: &OwnedNetwork,
        dataplane: &dyn Dataplane,
        dhcp: &dyn DhcpServer,
    ) -> Result<(), ReconcileError> {
        self.remove_dhcp(id, owned.dhcp_port_id.as_deref(), dataplane, dhcp)
            .await?;
        if let Some(vni) = owned.vxlan_vni {
            dataplane
                .delete_link(&vxlan_name(vni))
                .await
                .map_err(dataplane_error(id))?;
        }
        // Deleting the bridge releases instance taps still in it, and their owner
        // deletes them. A mapped bridge belongs to the operator.
        if owned.own_bridge {
            dataplane
                .delete_link(&bridge_name(id))
                .await
                .map_err(dataplane_error(id))?;
        }
        tracing::info!(network_id = id, "removed network from host");
        Ok(())
    }

    async fn apply_router(
        &mut self,
        router: &crate::desired::RouterSpec,
        desired: &DesiredState,
        dataplane: &dyn Dataplane,
    ) -> Result<(), ReconcileError> {
        let nftables = self.nftables.clone().ok_or(ReconcileError::NoNftables)?;
        let previous = self
            .ledger
            .routers
            .get(&router.id)
            .map(|r| r.port_ids.clone())
            .unwrap_or_default();
        let wanted = router_port_ids(router);
        self.ledger.routers.insert(
            router.id.clone(),
            OwnedRouter {
                port_ids: previous.union(&wanted).cloned().collect(),
            },
        );
        apply_router(router, &previous, desired, dataplane, nftables.as_ref()).await?;
        self.ledger
            .routers
            .insert(router.id.clone(), OwnedRouter { port_ids: wanted });
        Ok(())
    }

    /// Replaces both filtering tables in one transaction when the kernel's
    /// differ from the wanted ones, and deletes them when no port is
    /// filtered. Identical tables are left alone, so a restart drops nothing.
    async fn apply_security(
        &self,
        desired: &DesiredState,
        dataplane: &dyn Dataplane,
    ) -> Result<(), ReconcileError> {
        let wanted = security_tables(desired)
            .map_err(|count| ReconcileError::TooManyFilteredPorts { count })?;
        let Some(nftables) = &self.nftables else {
            return match wanted {
                Some(_) => Err(ReconcileError::NoNftables),
                None => Ok(()),
            };
        };
        let nft_error = |source| ReconcileError::Nftables {
            scope: "security groups".into(),
            source,
        };
        let refs = ["bridge", "inet"].map(|family| TableRef {
            family,
            name: TABLE,
        });
        let mut current = Vec::new();
        for table in refs {
            current.push(nftables.fingerprint(None, table).await.map_err(nft_error)?);
        }

        match wanted {
            Some(tables) => {
                let same = tables
                    .iter()
                    .zip(&current)
                    .all(|(t, c)| c.as_deref() == Some(t.fingerprint().as_str()));
                // Checked on every call, because filtering silently stops when
                // netfilter for bridged traffic is turned off.
                dataplane
                    .ensure_bridge_netfilter()
                    .await
                    .map_err(|source| ReconcileError::BridgeNetfilter { source })?;
                if same {
                    return Ok(());
                }
                nftables.replace(None, &tables).await.map_err(nft_error)?;
                tracing::info!("applied security group rules");
            }
            None => {
                for (table, current) in refs.into_iter().zip(current) {
                    if current.is_some() {
                        nftables.delete(None, table).await.map_err(nft_error)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn save_ledger(&self) -> Result<(), ReconcileError> {
        let Some(path) = &self.ledger_path else {
            return Ok(());
        };
        let ledger_error = |source| ReconcileError::Ledger {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_vec_pretty(&self.ledger)
            .map_err(|error| ledger_error(std::io::Error::other(error)))?;
        if std::fs::read(path).is_ok_and(|current| current == text) {
            return Ok(());
        }
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, &text).map_err(ledger_error)?;
        std::fs::rename(&temporary, path).map_err(ledger_error)
    }
}

fn dataplane_error(network_id: &str) -> impl FnOnce(DataplaneError) -> ReconcileError {
    let network_id = network_id.to_string();
    move |source| ReconcileError::Dataplane { network_id, source }
}

fn dhcp_error(network_id: &str) -> impl FnOnce(DhcpError) -> ReconcileError {
    let network_id = network_id.to_string();
    move |source| ReconcileError::Dhcp { network_id, source }
}

/// Makes the network's bridge, VXLAN device and instance taps.
async fn plug_network(
    network: &NetworkSpec,
    previous: Option<&OwnedNetwork>,
    dataplane: &dyn Dataplane,
) -> Result<(), ReconcileError> {
    let id = network.id.as_str();
    let bridge = bridge_of(network);
    match &network.bridge {
        None => dataplane
            .ensure_bridge(&bridge, network.mtu)
            .await
            .map_err(dataplane_error(id))?,
        Some(mapped) => {
            let exists = dataplane
                .link_exists(mapped)
                .await
                .map_err(dataplane_error(id))?;
            if !exists {
                return Err(ReconcileError::BridgeMissing {
                    network_id: id.to_string(),
                    bridge: mapped.clone(),
                });
            }
        }
    }

    // A changed or removed segment leaves its old VXLAN device behind.
    let old_vni = previous
        .and_then(|p| p.vxlan_vni)
        .filter(|old| Some(*old) != network.vxlan.map(|v| v.vni));
    if let Some(old) = old_vni {
        dataplane
            .delete_link(&vxlan_name(old))
            .await
            .map_err(dataplane_error(id))?;
    }
    if let Some(vxlan) = network.vxlan {
        dataplane
            .ensure_vxlan(
                &vxlan_name(vxlan.vni),
                vxlan.vni,
                vxlan.local_ip,
                &bridge,
                network.mtu,
            )
            .await
            .map_err(dataplane_error(id))?;
    }

    for port in &network.ports {
        let tap = tap_name(&port.id);
        // The hypervisor creates an instance's tap. Until then there is
        // nothing to plug.
        if dataplane
            .link_exists(&tap)
            .await
            .map_err(dataplane_error(id))?
        {
            dataplane
                .attach_to_bridge(&tap, &bridge, network.mtu)
                .await
                .map_err(dataplane_error(id))?;
        } else {
            tracing::debug!(network_id = id, port_id = %port.id, link = %tap, "tap not present yet");
        }
    }
    Ok(())
}
