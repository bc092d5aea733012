//! The `Dataplane` trait over host links and namespaces, and its in-memory fake.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;

use async_trait::async_trait;
use ipnet::Ipv4Net;

use crate::desired::MacAddr;

/// Links and network namespaces on one host.
///
/// Every `ensure_*` method is idempotent: it changes only what differs from the
/// request, so callers may repeat it after a partial failure.
#[async_trait]
pub trait Dataplane: Send + Sync {
    /// Creates a Linux bridge if missing, then sets its MTU and brings it up.
    async fn ensure_bridge(&self, name: &str, mtu: u32) -> Result<(), DataplaneError>;

    /// Creates a VXLAN device (default UDP port 4789) if missing and puts it in
    /// `bridge`, which must exist.
    async fn ensure_vxlan(
        &self,
        name: &str,
        vni: u32,
        local_ip: Ipv4Addr,
        bridge: &str,
        mtu: u32,
    ) -> Result<(), DataplaneError>;

    /// Creates a veth pair if `host_end` is missing. Both ends start in the
    /// caller's namespace. Sets `peer_end`'s MAC and MTU while it is still there.
    async fn ensure_veth(
        &self,
        host_end: &str,
        peer_end: &str,
        peer_mac: MacAddr,
        mtu: u32,
    ) -> Result<(), DataplaneError>;

    /// Returns whether a link exists in the host namespace.
    async fn link_exists(&self, name: &str) -> Result<bool, DataplaneError>;

    /// Puts an existing link in `bridge`, sets its MTU and brings it up.
    async fn attach_to_bridge(
        &self,
        link: &str,
        bridge: &str,
        mtu: u32,
    ) -> Result<(), DataplaneError>;

    /// Deletes a link from the host namespace. A missing link is not an error.
    async fn delete_link(&self, name: &str) -> Result<(), DataplaneError>;

    /// Adds `address` to `link` in the host namespace unless the link has
    /// it already, then brings the link up. The link's other addresses stay.
    async fn ensure_address(&self, link: &str, address: Ipv4Net) -> Result<(), DataplaneError>;

    /// Creates a named namespace under /run/netns if missing.
    async fn ensure_namespace(&self, name: &str) -> Result<(), DataplaneError>;

    /// Deletes a named namespace and every link inside it. A missing namespace
    /// is not an error.
    async fn delete_namespace(&self, name: &str) -> Result<(), DataplaneError>;

    /// Moves `link` from the host namespace into `namespace` (which must
    /// exist) unless it is already there, then gives it `address`, and brings
    /// it and the namespace's loopback up.
    async fn move_into_namespace(
        &self,
        link: &str,
        namespace: &str,
        address: Ipv4Net,
    ) -> Result<(), DataplaneError> {
        self.move_into_namespace_with_addresses(link, namespace, &[address])
            .await
    }

    /// Like [`Self::move_into_namespace`], but leaves `link` with exactly
    /// `addresses`: missing ones are added, others removed.
    async fn move_into_namespace_with_addresses(
        &self,
        link: &str,
        namespace: &str,
        addresses: &[Ipv4Net],
    ) -> Result<(), DataplaneError>;

    /// Turns on IPv4 forwarding inside `namespace` (which must exist) and
    /// points its default route at `default_gateway`, replacing any other.
    /// The gateway must be on a subnet of an interface already addressed in
    /// the namespace.
    async fn configure_routing(
        &self,
        namespace: &str,
        default_gateway: Option<Ipv4Addr>,
    ) -> Result<(), DataplaneError>;

    /// Makes bridged IPv4 and IPv6 packets of this namespace traverse the IP
    /// netfilter hooks (`br_netfilter`), where security groups track them.
    async fn ensure_bridge_netfilter(&self) -> Result<(), DataplaneError>;
}

/// Failure of one dataplane operation.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("netlink request {operation} on {name} failed")]
    Netlink {
        operation: &'static str,
        name: String,
        #[source]
        // Boxed: a netlink error carries the whole failed message.
        source: Box<rtnetlink::Error>,
    },
    #[error("link {0} not found")]
    LinkNotFound(String),
    #[error("{operation} in namespace {name} failed")]
    Namespace {
        operation: &'static str,
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("injected failure in {operation} on {name}")]
    Injected {
        operation: &'static str,
        name: String,
    },
}

/// A change made by [`RecordingDataplane`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataplaneOp {
    CreateBridge(String),
    CreateVxlan {
        name: String,
        vni: u32,
    },
    CreateVeth {
        host_end: String,
        peer_end: String,
    },
    SetMaster {
        link: String,
        bridge: String,
    },
    DeleteLink(String),
    CreateNamespace(String),
    DeleteNamespace(String),
    MoveIntoNamespace {
        link: String,
        namespace: String,
    },
    SetAddress {
        link: String,
        address: Ipv4Net,
    },
    RemoveAddress {
        link: String,
        address: Ipv4Net,
    },
    ConfigureRouting {
        namespace: String,
        default_gateway: Option<Ipv4Addr>,
    },
    EnableBridgeNetfilter,
}

#[derive(Debug, Clone, Default)]
struct FakeLink {
    master: Option<String>,
    /// Namespace the link is in, where `None` is the host namespace.
    namespace: Option<String>,
    addresses: Vec<Ipv4Net>,
    /// The other end of a veth pair.
    peer: Option<String>,
}

#[derive(Debug, Default)]
struct FakeHost {
    links: BTreeMap<String, FakeLink>,
    namespaces: BTreeSet<String>,
    /// Default gateway configured per namespace.
    routing: BTreeMap<String, Option<Ipv4Addr>>,
    bridge_netfilter: bool,
    ops: Vec<DataplaneOp>,
    fail_on: Option<&'static str>,
}

/// In-memory [`Dataplane`] that records each change it makes and can be set
/// to fail one kind of operation.
#[derive(Debug, Default)]
pub struct RecordingDataplane {
    host: Mutex<FakeHost>,
}

impl RecordingDataplane {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later call of the named trait method (for example
    /// `"ensure_bridge"`) fail until [`Self::clear_failure`].
    pub fn fail_on(&self, operation: &'static str) {
        self.lock().fail_on = Some(operation);
    }

    pub fn clear_failure(&self) {
        self.lock().fail_on = None;
    }

    /// Adds a link as a hypervisor would when it creates an instance's tap.
    pub fn add_tap(&self, name: &str) {
        self.lock()
            .links
            .insert(name.to_string(), FakeLink::default());
    }

    /// Returns and clears the changes recorded so far.
    pub fn take_ops(&self) -> Vec<DataplaneOp> {
        std::mem::take(&mut self.lock().ops)
    }

    /// Returns the names of links in the host namespace.
    pub fn host_links(&self) -> Vec<String> {
        let host = self.lock();
        host.links
            .iter()
            .filter(|(_, l)| l.namespace.is_none())
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub fn namespaces(&self) -> Vec<String> {
        self.lock().namespaces.iter().cloned().collect()
    }

    /// Returns the addresses of a link, wherever it is.
    pub fn addresses_of(&self, link: &str) -> Vec<Ipv4Net> {
        self.lock()
            .links
            .get(link)
            .map(|l| l.addresses.clone())
            .unwrap_or_default()
    }

    /// Returns the namespace a link is in, or `None` for the host namespace
    /// or a missing link.
    pub fn namespace_of(&self, link: &str) -> Option<String> {
        self.lock()
            .links
            .get(link)
            .and_then(|l| l.namespace.clone())
    }

    /// Returns the default gateway configured in a namespace, if routing was
    /// configured there.
    pub fn routing_of(&self, namespace: &str) -> Option<Option<Ipv4Addr>> {
        self.lock().routing.get(namespace).copied()
    }

    /// Returns the bridge a link is in.
    pub fn master_of(&self, link: &str) -> Option<String> {
        self.lock().links.get(link).and_then(|l| l.master.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeHost> {
        self.host
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Locks the fake host, failing first if `operation` is set to fail.
    fn begin(
        &self,
        operation: &'static str,
        name: &str,
    ) -> Result<std::sync::MutexGuard<'_, FakeHost>, DataplaneError> {
        let host = self.lock();
        if host.fail_on == Some(operation) {
            return Err(DataplaneError::Injected {
                operation,
                name: name.to_string(),
            });
        }
        Ok(host)
    }
}

impl FakeHost {
    fn set_master(&mut self, link: &str, bridge: &str) -> Result<(), DataplaneError> {
        if !self.links.contains_key(bridge) {
            return Err(DataplaneError::LinkNotFound(bridge.to_string()));
        }
        let entry = self
            .links
            .get_mut(link)
            .ok_or_else(|| DataplaneError::LinkNotFound(link.to_string()))?;
        if entry.master.as_deref() != Some(bridge) {
            entry.master = Some(bridge.to_string());
            self.ops.push(DataplaneOp::SetMaster {
                link: link.to_string(),
                bridge: bridge.to_string(),
            });
        }
        Ok(())
    }

    /// Removes a link and, for a veth, its peer, as the kernel does.
    fn remove_link(&mut self, name: &str) {
        if let Some(link) = self.links.remove(name) {
            if let Some(peer) = link.peer {
                self.links.remove(&peer);
            }
        }
    }
}

#[async_trait]
impl Dataplane for RecordingDataplane {
    async fn ensure_bridge(&self, name: &str, _mtu: u32) -> Result<(), DataplaneError> {
        let mut host = self.begin("ensure_bridge", name)?;
        if !host.links.contains_key(name) {
            host.links.insert(name.to_string(), FakeLink::default());
            host.ops.push(DataplaneOp::CreateBridge(name.to_string()));
        }
        Ok(())
    }

    async fn ensure_vxlan(
        &self,
        name: &str,
        vni: u32,
        _local_ip: Ipv4Addr,
        bridge: &str,
        _mtu: u32,
    ) -> Result<(), DataplaneError> {
        let mut host = self.begin("ensure_vxlan", name)?;
        if !host.links.contains_key(name) {
            host.links.insert(name.to_string(), FakeLink::default());
            host.ops.push(DataplaneOp::CreateVxlan {
                name: name.to_string(),
                vni,
            });
        }
        host.set_master(name, bridge)
    }

    async fn ensure_veth(
        &self,
        host_end: &str,
        peer_end: &str,
        _peer_mac: MacAddr,
        _mtu: u32,
    ) -> Result<(), DataplaneError> {
        let mut host = self.begin("ensure_veth", host_end)?;
        if host.links.contains_key(host_end) {
            return Ok(());
        }
        let host_link = FakeLink {
            peer: Some(peer_end.to_string()),
            ..FakeLink::default()
        };
        let peer_link = FakeLink {
            peer: Some(host_end.to_string()),
            ..FakeLink::default()
        };
        host.links.insert(host_end.to_string(), host_link);
        host.links.insert(peer_end.to_string(), peer_link);
        host.ops.push(DataplaneOp::CreateVeth {
            host_end: host_end.to_string(),
            peer_end: peer_end.to_string(),
        });
        Ok(())
    }

    async fn link_exists(&self, name: &str) -> Result<bool, DataplaneError> {
        let host = self.begin("link_exists", name)?;
        Ok(host.links.get(name).is_some_and(|l| l.namespace.is_none()))
    }

    async fn attach_to_bridge(
        &self,
        link: &str,
        bridge: &str,
        _mtu: u32,
    ) -> Result<(), DataplaneError> {
        let mut host = self.begin("attach_to_bridge", link)?;
        host.set_master(link, bridge)
    }

    async fn delete_link(&self, name: &str) -> Result<(), DataplaneError> {
        let mut host = self.begin("delete_link", name)?;
        if host.links.get(name).is_some_and(|l| l.namespace.is_none()) {
            host.remove_link(name);
            host.ops.push(DataplaneOp::DeleteLink(name.to_string()));
        }
        Ok(())
    }

    async fn ensure_address(&self, link: &str, address: Ipv4Net) -> Result<(), DataplaneError> {
        let mut host = self.begin("ensure_address", link)?;
        let entry = host
            .links
            .get_mut(link)
            .filter(|l| l.namespace.is_none())
            .ok_or_else(|| DataplaneError::LinkNotFound(link.to_string()))?;
        if entry.addresses.contains(&address) {
            return Ok(());
        }
        entry.addresses.push(address);
        host.ops.push(DataplaneOp::SetAddress {
            link: link.to_string(),
            address,
        });
        Ok(())
    }

    async fn ensure_namespace(&self, name: &str) -> Result<(), DataplaneError> {
        let mut host = self.begin("ensure_namespace", name)?;
        if host.namespaces.insert(name.to_string()) {
            host.ops
                .push(DataplaneOp::CreateNamespace(name.to_string()));
        }
        Ok(())
    }

    async fn delete_namespace(&self, name: &str) -> Result<(), DataplaneError> {
        let mut host = self.begin("delete_namespace", name)?;
        if !host.namespaces.remove(name) {
            return Ok(());
        }
        host.routing.remove(name);
        let inside: Vec<String> = host
            .links
            .iter()
            .filter(|(_, l)| l.namespace.as_deref() == Some(name))
            .map(|(n, _)| n.clone())
            .collect();
        for link in inside {
            host.remove_link(&link);
        }
        host.ops
            .push(DataplaneOp::DeleteNamespace(name.to_string()));
        Ok(())
    }

    async fn move_into_namespace_with_addresses(
        &self,
        link: &str,
        namespace: &str,
        addresses: &[Ipv4Net],
    ) -> Result<(), DataplaneError> {
        let mut host = self.begin("move_into_namespace", link)?;
        if !host.namespaces.contains(namespace) {
            return Err(DataplaneError::Namespace {
                operation: "move_into_namespace",
                name: namespace.to_string(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let entry = host
            .links
            .get_mut(link)
            .ok_or_else(|| DataplaneError::LinkNotFound(link.to_string()))?;
        let mut ops = Vec::new();
        if entry.namespace.as_deref() != Some(namespace) {
            entry.namespace = Some(namespace.to_string());
            ops.push(DataplaneOp::MoveIntoNamespace {
                link: link.to_string(),
                namespace: namespace.to_string(),
            });
        }
        for old in entry.addresses.clone() {
            if !addresses.contains(&old) {
                ops.push(DataplaneOp::RemoveAddress {
                    link: link.to_string(),
                    address: old,
                });
            }
        }
        for new in addresses {
            if !entry.addresses.contains(new) {
                ops.push(DataplaneOp::SetAddress {
                    link: link.to_string(),
                    address: *new,
                });
            }
        }
        entry.addresses = addresses.to_vec();
        host.ops.extend(ops);
        Ok(())
    }

    async fn configure_routing(
        &self,
        namespace: &str,
        default_gateway: Option<Ipv4Addr>,
    ) -> Result<(), DataplaneError> {
        let mut host = self.begin("configure_routing", namespace)?;
        if !host.namespaces.contains(namespace) {
            return Err(DataplaneError::Namespace {
                operation: "configure_routing",
                name: namespace.to_string(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        if host.routing.get(namespace) != Some(&default_gateway) {
            host.routing.insert(namespace.to_string(), default_gateway);
            host.ops.push(DataplaneOp::ConfigureRouting {
                namespace: namespace.to_string(),
                default_gateway,
            });
        }
        Ok(())
    }

    async fn ensure_bridge_netfilter(&self) -> Result<(), DataplaneError> {
        let mut host = self.begin("ensure_bridge_netfilter", "bridge-nf-call-iptables")?;
        if !host.bridge_netfilter {
            host.bridge_netfilter = true;
            host.ops.push(DataplaneOp::EnableBridgeNetfilter);
        }
        Ok(())
    }
}
