//! The metadata proxy: `169.254.169.254:80` inside a network's DHCP
//! namespace, forwarded to the metadata API with the instance identified by
//! network and source address, as Neutron's metadata proxy does.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// The link-local address guests send metadata requests to.
pub const METADATA_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
const METADATA_PORT: u16 = 80;

/// Maximum size of a request head accepted from a guest, in bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Time a guest has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Maximum duration of one proxied exchange.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Maximum connections served at once per network. Further ones are closed.
const MAX_CONNECTIONS: usize = 32;

/// Request headers a guest may not set, because only the proxy identifies the requester.
const STRIPPED_HEADERS: &[&str] = &[
    "x-forwarded-for",
    "x-neutron-network-id",
    "x-neutron-router-id",
    "x-instance-id",
    "x-instance-id-signature",
    "x-tenant-id",
    "connection",
    "keep-alive",
    "proxy-connection",
];

/// One metadata proxy per network.
#[async_trait]
pub trait MetadataProxy: Send + Sync {
    /// Makes a proxy listen on 169.254.169.254:80 inside `namespace` and
    /// forward to `upstream`, unless one already does. The address must
    /// already be on an interface of the namespace.
    async fn ensure(
        &self,
        network_id: &str,
        namespace: &str,
        upstream: SocketAddr,
    ) -> Result<(), MetadataError>;

    /// Stops the network's proxy. A proxy that is not running is not an
    /// error.
    async fn stop(&self, network_id: &str);
}

/// Failure to start a metadata proxy.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("listening on 169.254.169.254:80 in namespace {namespace} failed")]
    Listen {
        namespace: String,
        #[source]
        source: std::io::Error,
    },
    #[error("injected failure starting the metadata proxy of network {network_id}")]
    Injected { network_id: String },
}

struct Running {
    namespace: String,
    upstream: SocketAddr,
    task: JoinHandle<()>,
}

/// Metadata proxies as tasks of this process.
///
/// A short-lived thread joins the namespace with `setns` and creates the
/// listening socket there. A socket stays in the namespace it was created
/// in, so the tasks accept on it from the ordinary runtime. Their upstream
/// connections, opened from runtime threads, leave from the agent's own
/// namespace, where the metadata API listens. No helper process is needed.
/// The proxies end with the agent, and a restarted agent starts them again.
#[derive(Default)]
pub struct NamespaceMetadataProxy {
    running: Mutex<BTreeMap<String, Running>>,
}

impl NamespaceMetadataProxy {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for NamespaceMetadataProxy {
    fn drop(&mut self) {
        for running in self.lock().values() {
            running.task.abort();
        }
    }
}

#[async_trait]
impl MetadataProxy for NamespaceMetadataProxy {
    async fn ensure(
        &self,
        network_id: &str,
        namespace: &str,
        upstream: SocketAddr,
    ) -> Result<(), MetadataError> {
        let current = self.lock().get(network_id).is_some_and(|r| {
            r.namespace == namespace && r.upstream == upstream && !r.task.is_finished()
        });
        if current {
            return Ok(());
        }
        self.stop(network_id).await;

        let listen_error = |source| MetadataError::Listen {
            namespace: namespace.to_string(),
            source,
        };
        let path = Path::new(rtnetlink::NETNS_PATH).join(namespace);
        let listener = tokio::task::spawn_blocking(move || bind_in_namespace(&path))
            .await
            .map_err(|join| listen_error(std::io::Error::other(join.to_string())))?
            .map_err(listen_error)?;
        let listener = TcpListener::from_std(listener).map_err(listen_error)?;

        let task = tokio::spawn(serve_listener(listener, network_id.to_string(), upstream));
        tracing::info!(network_id, namespace, %upstream, "started metadata proxy");
        self.lock().insert(
            network_id.to_string(),
            Running {
                namespace: namespace.to_string(),
                upstream,
                task,
            },
        );
        Ok(())
    }

    async fn stop(&self, network_id: &str) {
        if let Some(running) = self.lock().remove(network_id) {
            running.task.abort();
            tracing::info!(network_id, "stopped metadata proxy");
        }
    }
}

/// Binds 169.254.169.254:80 from a thread that joins the namespace first.
fn bind_in_namespace(path: &Path) -> std::io::Result<std::net::TcpListener> {
    let namespace = std::fs::File::open(path)?;
    std::thread::spawn(move || {
        nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let listener =
            std::net::TcpListener::bind(SocketAddr::from((METADATA_ADDRESS, METADATA_PORT)))?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
    .join()
    .map_err(|_| std::io::Error::other("metadata listener thread panicked"))?
}

async fn serve_listener(listener: TcpListener, network_id: String, upstream: SocketAddr) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let network_id: Arc<str> = network_id.into();
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(network_id = %network_id, %error, "metadata proxy accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // A guest opening connections in a loop gets them closed, not queued.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let network_id = network_id.clone();
        tokio::spawn(async move {
            let result =
                tokio::time::timeout(EXCHANGE_TIMEOUT, proxy(client, peer, &network_id, upstream))
                    .await;
            if let Ok(Err(error)) = result {
                tracing::debug!(network_id = %network_id, peer = %peer, %error, "metadata request failed");
            }
            drop(permit);
        });
    }
}

/// Forwards one request with the identifying headers added, then relays
/// the response until the metadata API closes the connection.
async fn proxy(
    mut client: TcpStream,
    peer: SocketAddr,
    network_id: &str,
    upstream: SocketAddr,
) -> std::io::Result<()> {
    let (head, rest) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "request head timed out")
        })??;
    let Some(head) = rewrite_head(&head, peer.ip(), network_id) else {
        client
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await?;
        return Ok(());
    };

    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(head.as_bytes()).await?;
    server.write_all(&rest).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

/// Reads up to the blank line that ends the request head. Returns the head
/// and any body bytes read past it.
async fn read_head(client: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = find_head_end(&buffer) {
            let rest = buffer.split_off(end);
            return Ok((buffer, rest));
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// Rebuilds the request head: the guest's request line and headers minus
/// the identifying ones, plus the proxy's own. Returns `None` for a head
/// that is not HTTP/1.x.
fn rewrite_head(head: &[u8], source: std::net::IpAddr, network_id: &str) -> Option<String> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next()?;
    let mut parts = request_line.split(' ');
    let (method, _target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || method.is_empty() || !version.starts_with("HTTP/1.") {
        return None;
    }

    let mut out = format!("{request_line}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, _) = line.split_once(':')?;
        if STRIPPED_HEADERS.contains(&name.trim().to_ascii_lowercase().as_str()) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!("X-Forwarded-For: {source}\r\n"));
    out.push_str(&format!("X-Neutron-Network-ID: {network_id}\r\n"));
    // One request per upstream connection, so its end marks the response's.
    out.push_str("Connection: close\r\n\r\n");
    Some(out)
}

/// A change made by [`RecordingMetadataProxy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataOp {
    Start {
        network_id: String,
        namespace: String,
    },
    Stop(String),
}

#[derive(Debug, Default)]
struct FakeProxies {
    running: BTreeMap<String, (String, SocketAddr)>,
    ops: Vec<MetadataOp>,
    fail: bool,
}

/// In-memory [`MetadataProxy`] that records starts and stops.
#[derive(Debug, Default)]
pub struct RecordingMetadataProxy {
    state: Mutex<FakeProxies>,
}

impl RecordingMetadataProxy {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later `ensure` fail until [`Self::clear_failure`].
    pub fn fail(&self) {
        self.lock().fail = true;
    }

    pub fn clear_failure(&self) {
        self.lock().fail = false;
    }

    pub fn take_ops(&self) -> Vec<MetadataOp> {
        std::mem::take(&mut self.lock().ops)
    }

    /// Returns the namespace and upstream of a network's proxy.
    pub fn running(&self, network_id: &str) -> Option<(String, SocketAddr)> {
        self.lock().running.get(network_id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeProxies> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl MetadataProxy for RecordingMetadataProxy {
    async fn ensure(
        &self,
        network_id: &str,
        namespace: &str,
        upstream: SocketAddr,
    ) -> Result<(), MetadataError> {
        let mut state = self.lock();
        if state.fail {
            return Err(MetadataError::Injected {
                network_id: network_id.to_string(),
            });
        }
        let wanted = (namespace.to_string(), upstream);
        if state.running.get(network_id) != Some(&wanted) {
            state.running.insert(network_id.to_string(), wanted);
            state.ops.push(MetadataOp::Start {
                network_id: network_id.to_string(),
                namespace: namespace.to_string(),
            });
        }
        Ok(())
    }

    async fn stop(&self, network_id: &str) {
        let mut state = self.lock();
        if state.running.remove(network_id).is_some() {
            state.ops.push(MetadataOp::Stop(network_id.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_replaces_forged_identity_headers() {
        let head = b"GET /openstack/latest/meta_data.json HTTP/1.1\r\nHost: 169.254.169.254\r\nX-Forwarded-For: 10.0.0.99\r\nx-neutron-network-id: other\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n";
        let out = rewrite_head(head, "10.0.0.5".parse().unwrap(), "net-1").unwrap();
        assert_eq!(
            out,
            "GET /openstack/latest/meta_data.json HTTP/1.1\r\nHost: 169.254.169.254\r\nAccept: */*\r\n\
             X-Forwarded-For: 10.0.0.5\r\nX-Neutron-Network-ID: net-1\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn malformed_heads_are_refused() {
        let ip = "10.0.0.5".parse().unwrap();
        assert!(rewrite_head(b"GET /\r\n\r\n", ip, "n").is_none());
        assert!(rewrite_head(b"GET / SPDY/3\r\n\r\n", ip, "n").is_none());
        assert!(rewrite_head(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", ip, "n").is_none());
        assert!(rewrite_head(&[0xff, 0xfe, b'\r', b'\n', b'\r', b'\n'], ip, "n").is_none());
    }

    #[test]
    fn head_ends_at_blank_line() {
        assert_eq!(find_head_end(b"GET / HTTP/1.0\r\n\r\nbody"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.0\r\n"), None);
    }
}
