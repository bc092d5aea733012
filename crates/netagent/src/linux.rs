//! `Dataplane` over rtnetlink for the Linux host this process runs on.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use async_trait::async_trait;
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;

use rtnetlink::{
    Handle, LinkBridge, LinkUnspec, LinkVeth, LinkVxlan, NetworkNamespace, RouteMessageBuilder,
};

use crate::dataplane::{Dataplane, DataplaneError};
use crate::desired::MacAddr;

/// IANA-assigned VXLAN UDP port.
const VXLAN_PORT: u16 = 4789;

/// Linux links and namespaces, changed through a netlink socket opened in the
/// host namespace. Work inside another namespace uses a socket opened there.
pub struct LinuxDataplane {
    handle: Handle,
}

impl LinuxDataplane {
    /// Opens a netlink socket in the caller's namespace. Must be called inside a
    /// Tokio runtime, which drives the socket.
    pub fn new() -> std::io::Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }
}

fn netlink_error(
    operation: &'static str,
    name: &str,
) -> impl FnOnce(rtnetlink::Error) -> DataplaneError {
    let name = name.to_string();
    move |source| DataplaneError::Netlink {
        operation,
        name,
        source: Box::new(source),
    }
}

fn namespace_path(name: &str) -> PathBuf {
    PathBuf::from(rtnetlink::NETNS_PATH).join(name)
}

fn is_no_such_device(error: &rtnetlink::Error) -> bool {
    matches!(error, rtnetlink::Error::NetlinkError(message) if message.raw_code() == -nix::libc::ENODEV)
}

/// Returns the index of a link, or `None` when the kernel reports no such device.
async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, DataplaneError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(message)) => Ok(Some(message.header.index)),
        Ok(None) => Ok(None),
        Err(error) if is_no_such_device(&error) => Ok(None),
        Err(source) => Err(DataplaneError::Netlink {
            operation: "get link",
            name: name.to_string(),
            source: Box::new(source),
        }),
    }
}

async fn require_link(handle: &Handle, name: &str) -> Result<u32, DataplaneError> {
    link_index(handle, name)
        .await?
        .ok_or_else(|| DataplaneError::LinkNotFound(name.to_string()))
}

/// Sets MTU (when given), brings the link up and optionally sets its bridge.
async fn set_up(
    handle: &Handle,
    index: u32,
    name: &str,
    mtu: Option<u32>,
    bridge: Option<u32>,
) -> Result<(), DataplaneError> {
    let mut builder = LinkUnspec::new_with_index(index).up();
    if let Some(mtu) = mtu {
        builder = builder.mtu(mtu);
    }
    if let Some(bridge) = bridge {
        builder = builder.controller(bridge);
    }
    handle
        .link()
        .set(builder.build())
        .execute()
        .await
        .map_err(netlink_error("set link", name))
}

#[async_trait]
impl Dataplane for LinuxDataplane {
    async fn ensure_bridge(&self, name: &str, mtu: u32) -> Result<(), DataplaneError> {
        if link_index(&self.handle, name).await?.is_none() {
            let message = LinkBridge::new(name).mtu(mtu).build();
            self.handle
                .link()
                .add(message)
                .execute()
                .await
                .map_err(netlink_error("add bridge", name))?;
            tracing::info!(bridge = name, "created bridge");
        }
        let index = require_link(&self.handle, name).await?;
        set_up(&self.handle, index, name, Some(mtu), None).await
    }

    async fn ensure_vxlan(
        &self,
        name: &str,
        vni: u32,
        local_ip: Ipv4Addr,
        bridge: &str,
        mtu: u32,
    ) -> Result<(), DataplaneError> {
        let bridge_index = require_link(&self.handle, bridge).await?;
        if link_index(&self.handle, name).await?.is_none() {
            let message = LinkVxlan::new(name, vni)
                .local(local_ip)
                .port(VXLAN_PORT)
                .learning(true)
                .mtu(mtu)
                .build();
            self.handle
                .link()
                .add(message)
                .execute()
                .await
                .map_err(netlink_error("add vxlan", name))?;
            tracing::info!(link = name, vni, "created VXLAN device");
        }
        let index = require_link(&self.handle, name).await?;
        set_up(&self.handle, index, name, Some(mtu), Some(bridge_index)).await
    }

    async fn ensure_veth(
        &self,
        host_end: &str,
        peer_end: &str,
        peer_mac: MacAddr,
        mtu: u32,
    ) -> Result<(), DataplaneError> {
        if link_index(&self.handle, host_end).await?.is_none() {
            let message = LinkVeth::new(host_end, peer_end).mtu(mtu).build();
            self.handle
                .link()
                .add(message)
                .execute()
                .await
                .map_err(netlink_error("add veth", host_end))?;
            tracing::info!(link = host_end, peer = peer_end, "created veth pair");
        }

        // The MAC is set on every call while the peer is still in this
        // namespace, so a failure right after creation is repaired next time.
        let Some(peer_index) = link_index(&self.handle, peer_end).await? else {
            return Ok(());
        };
        let set_mac = LinkUnspec::new_with_index(peer_index)
            .address(peer_mac.0.to_vec())
            .mtu(mtu)
            .build();
        self.handle
            .link()
            .set(set_mac)
            .execute()
            .await
            .map_err(netlink_error("set MAC", peer_end))
    }

    async fn link_exists(&self, name: &str) -> Result<bool, DataplaneError> {
        Ok(link_index(&self.handle, name).await?.is_some())
    }

    async fn attach_to_bridge(
        &self,
        link: &str,
        bridge: &str,
        mtu: u32,
    ) -> Result<(), DataplaneError> {
        let bridge_index = require_link(&self.handle, bridge).await?;
        let index = require_link(&self.handle, link).await?;
        set_up(&self.handle, index, link, Some(mtu), Some(bridge_index)).await
    }

    async fn delete_link(&self, name: &str) -> Result<(), DataplaneError> {
        let Some(index) = link_index(&self.handle, name).await? else {
            return Ok(());
        };
        // The kernel may remove the link between the lookup and the delete,
        // for example a veth whose peer's namespace is being torn down.
        match self.handle.link().del(index).execute().await {
            Err(error) if is_no_such_device(&error) => return Ok(()),
            result => result.map_err(netlink_error("delete link", name))?,
        }
        tracing::info!(link = name, "deleted link");
        Ok(())
    }

    async fn ensure_address(&self, link: &str, address: Ipv4Net) -> Result<(), DataplaneError> {
        let index = require_link(&self.handle, link).await?;
        if !link_addresses(&self.handle, index, link)
            .await?
            .contains(&address)
        {
            let added = self
                .handle
                .address()
                .add(index, IpAddr::V4(address.addr()), address.prefix_len())
                .execute()
                .await;
            match added {
                // Another writer added it between the dump and the request.
                Err(rtnetlink::Error::NetlinkError(message))
                    if message.raw_code() == -nix::libc::EEXIST => {}
                result => result.map_err(netlink_error("add address", link))?,
            }
            tracing::info!(link, %address, "added address");
        }
        set_up(&self.handle, index, link, None, None).await
    }

    async fn ensure_namespace(&self, name: &str) -> Result<(), DataplaneError> {
        if namespace_path(name).exists() {
            return Ok(());
        }
        let path = namespace_path(name);
        tokio::task::spawn_blocking(move || create_namespace(&path))
            .await
            .map_err(|join| std::io::Error::other(join.to_string()))
            .and_then(|result| result)
            .map_err(|source| DataplaneError::Namespace {
                operation: "create namespace",
                name: name.to_string(),
                source,
            })?;
        tracing::info!(namespace = name, "created network namespace");
        Ok(())
    }

    async fn delete_namespace(&self, name: &str) -> Result<(), DataplaneError> {
        if !namespace_path(name).exists() {
            return Ok(());
        }
        NetworkNamespace::del(name.to_string())
            .await
            .map_err(netlink_error("delete namespace", name))?;
        tracing::info!(namespace = name, "deleted network namespace");
        Ok(())
    }

    async fn move_into_namespace_with_addresses(
        &self,
        link: &str,
        namespace: &str,
        addresses: &[Ipv4Net],
    ) -> Result<(), DataplaneError> {
        let namespace_file = open_namespace(namespace)?;
        if let Some(index) = link_index(&self.handle, link).await? {
            let message = LinkUnspec::new_with_index(index)
                .setns_by_fd(std::os::fd::AsRawFd::as_raw_fd(&namespace_file))
                .build();
            self.handle
                .link()
                .set(message)
                .execute()
                .await
                .map_err(netlink_error("move link", link))?;
            tracing::info!(link, namespace, "moved link into namespace");
        }

        let link = link.to_string();
        let addresses = addresses.to_vec();
        run_in_namespace(namespace_file, namespace, move |handle| {
            Box::pin(async move {
                address_link(&handle, &link, &addresses).await?;
                let loopback = require_link(&handle, "lo").await?;
                set_up(&handle, loopback, "lo", None, None).await
            })
        })
        .await
    }

    async fn configure_routing(
        &self,
        namespace: &str,
        default_gateway: Option<Ipv4Addr>,
    ) -> Result<(), DataplaneError> {
        let namespace_file = open_namespace(namespace)?;
        run_in_namespace(namespace_file, namespace, move |handle| {
            Box::pin(async move {
                // /proc/sys/net resolves to the namespace of the thread that
                // opens it, which run_in_namespace has moved.
                std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|source| {
                    DataplaneError::Namespace {
                        operation: "enable IPv4 forwarding",
                        name: String::new(),
                        source,
                    }
                })?;
                let Some(gateway) = default_gateway else {
                    return Ok(());
                };
                let route = RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(gateway)
                    .build();
                handle
                    .route()
                    .add(route)
                    .replace()
                    .execute()
                    .await
                    .map_err(netlink_error("replace default route", "default"))
            })
        })
        .await
    }

    async fn ensure_bridge_netfilter(&self) -> Result<(), DataplaneError> {
        // Debian builds br_netfilter as a module that nothing loads by default.
        if !std::path::Path::new(BRIDGE_NETFILTER_SYSCTLS[0]).exists() {
            let status = tokio::process::Command::new("modprobe")
                .arg("br_netfilter")
                .status()
                .await;
            tracing::info!(?status, "loaded the br_netfilter module");
        }
        for path in BRIDGE_NETFILTER_SYSCTLS {
            if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
                continue;
            }
            std::fs::write(path, "1").map_err(|source| DataplaneError::Namespace {
                operation: "enable br_netfilter; load it with `modprobe br_netfilter`",
                name: path.to_string(),
                source,
            })?;
            tracing::info!(sysctl = path, "enabled netfilter on bridged traffic");
        }
        Ok(())
    }
}

/// sysctls that send bridged packets through the IP netfilter hooks.
const BRIDGE_NETFILTER_SYSCTLS: [&str; 2] = [
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
];

fn open_namespace(namespace: &str) -> Result<File, DataplaneError> {
    File::open(namespace_path(namespace)).map_err(|source| DataplaneError::Namespace {
        operation: "open namespace",
        name: namespace.to_string(),
        source,
    })
}

type NamespaceWork = Box<
    dyn FnOnce(
            Handle,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), DataplaneError>> + Send>,
        > + Send,
>;

/// Runs `work` with a netlink handle opened inside the namespace.
async fn run_in_namespace<F>(
    namespace_file: File,
    namespace: &str,
    work: F,
) -> Result<(), DataplaneError>
where
    F: FnOnce(
            Handle,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), DataplaneError>> + Send>,
        > + Send
        + 'static,
{
    let name = namespace.to_string();
    let work: NamespaceWork = Box::new(work);
    tokio::task::spawn_blocking(move || configure_in_namespace(namespace_file, &name, work))
        .await
        .map_err(|join| DataplaneError::Namespace {
            operation: "configure namespace",
            name: namespace.to_string(),
            source: std::io::Error::other(join.to_string()),
        })?
}

/// Creates a network namespace and pins it by bind-mounting it on `path`, as
/// `ip netns add` does. A thread of its own unshares, so that no other thread
/// changes namespace and no fork is needed in this multi-threaded process.
fn create_namespace(path: &std::path::Path) -> std::io::Result<()> {
    let directory = path.parent().expect("namespace paths are under /run/netns");
    std::fs::create_dir_all(directory)?;
    File::create(path)?;
    let target = path.to_path_buf();
    let result = std::thread::spawn(move || -> std::io::Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })
    .join()
    .map_err(|_| std::io::Error::other("namespace thread panicked"))?;
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Runs `work` on a thread that joins the namespace, so that the netlink
/// socket it opens (and any /proc/sys/net file) belongs to that namespace.
fn configure_in_namespace(
    namespace_file: File,
    namespace: &str,
    work: NamespaceWork,
) -> Result<(), DataplaneError> {
    let namespace_error =
        |operation: &'static str, source: std::io::Error| DataplaneError::Namespace {
            operation,
            name: namespace.to_string(),
            source,
        };

    // setns changes only the calling thread, so it runs on a thread of its own
    // that ends with this request instead of returning to the blocking pool.
    let thread = std::thread::spawn(move || -> Result<(), DataplaneError> {
        nix::sched::setns(&namespace_file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(
            |errno| DataplaneError::Namespace {
                operation: "setns",
                name: String::new(),
                source: errno.into(),
            },
        )?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| DataplaneError::Namespace {
                operation: "start runtime",
                name: String::new(),
                source,
            })?;
        runtime.block_on(async move {
            let (connection, handle, _) =
                rtnetlink::new_connection().map_err(|source| DataplaneError::Namespace {
                    operation: "open netlink",
                    name: String::new(),
                    source,
                })?;
            tokio::spawn(connection);
            work(handle).await
        })
    });
    thread
        .join()
        .map_err(|_| {
            namespace_error(
                "configure namespace",
                std::io::Error::other("namespace thread panicked"),
            )
        })?
        .map_err(|error| match error {
            DataplaneError::Namespace {
                operation, source, ..
            } => namespace_error(operation, source),
            other => other,
        })
}

/// Returns the IPv4 addresses of the link with index `index`, with their
/// prefix lengths.
async fn link_addresses(
    handle: &Handle,
    index: u32,
    link: &str,
) -> Result<Vec<Ipv4Net>, DataplaneError> {
    let mut found = Vec::new();
    let mut messages = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    while let Some(message) = messages
        .try_next()
        .await
        .map_err(netlink_error("get addresses", link))?
    {
        for attribute in &message.attributes {
            if let AddressAttribute::Address(IpAddr::V4(ip)) = attribute {
                found.extend(Ipv4Net::new(*ip, message.header.prefix_len).ok());
            }
        }
    }
    found.dedup();
    Ok(found)
}

/// Gives `link` exactly `addresses` and brings it up.
async fn address_link(
    handle: &Handle,
    link: &str,
    addresses: &[Ipv4Net],
) -> Result<(), DataplaneError> {
    let index = require_link(handle, link).await?;
    let mut present = Vec::new();
    let mut existing = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    while let Some(message) = existing
        .try_next()
        .await
        .map_err(netlink_error("get addresses", link))?
    {
        let ip = message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
        let Some(ip) = ip else { continue };
        let found = Ipv4Net::new(ip, message.header.prefix_len).ok();
        if let Some(found) = found.filter(|f| addresses.contains(f)) {
            present.push(found);
        } else {
            handle
                .address()
                .del(message)
                .execute()
                .await
                .map_err(netlink_error("delete address", link))?;
        }
    }
    for address in addresses.iter().filter(|a| !present.contains(a)) {
        handle
            .address()
            .add(index, IpAddr::V4(address.addr()), address.prefix_len())
            .execute()
            .await
            .map_err(netlink_error("add address", link))?;
    }
    set_up(handle, index, link, None, None).await
}
