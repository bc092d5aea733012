//! Traits for the calls the compute service makes to other services. The
//! binary implements them over the in-process services, and a multi-node
//! deployment implements them over HTTP. Compute never reads another
//! service's tables.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oxstack_core::AuthContext;

/// The reason a call to another service failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalErrorKind {
    /// The requested resource does not exist or is not visible to the caller.
    NotFound,
    /// The request conflicts with the current state (an address in use, a
    /// port bound elsewhere, no free address left).
    Conflict,
    /// The request itself is wrong (an address outside the subnet).
    BadRequest,
    /// The other service failed, and the message states how.
    Unavailable,
}

/// A failure of another service, with a message fit for a user.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ExternalError {
    pub kind: ExternalErrorKind,
    pub message: String,
}

impl ExternalError {
    pub fn new(kind: ExternalErrorKind, message: impl Into<String>) -> Self {
        ExternalError {
            kind,
            message: message.into(),
        }
    }
}

/// An image, with the fields compute reads.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub id: String,
    pub name: Option<String>,
    /// The Glance status. Only `active` images boot.
    pub status: String,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    /// Bytes.
    pub size: Option<u64>,
    /// Bytes, as the image service's inspection found it.
    pub virtual_size: Option<u64>,
    /// GB.
    pub min_disk: u64,
    /// MiB.
    pub min_ram: u64,
    /// Additional properties (`os_type`, `hw_architecture`, …).
    pub properties: BTreeMap<String, String>,
    /// A local file with the image's bytes, when this host can read it
    /// directly (the all-in-one filesystem store).
    pub path: Option<PathBuf>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// The image service, as compute calls it.
#[async_trait::async_trait]
pub trait ImageApi: Send + Sync {
    /// Returns the image `id` if `caller` may read it.
    async fn get_image(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<Option<ImageInfo>, ExternalError>;

    /// Returns the image `id` whatever its visibility. The build of a server
    /// uses it, because a build runs without the caller's token and the API
    /// already checked that the caller may use the image.
    async fn image_for_host(&self, id: &str) -> Result<Option<ImageInfo>, ExternalError>;

    /// Returns the images `caller` may list that match `query`, which uses the
    /// image service's v2 names (`name`, `status`, `min_ram`,
    /// `updated_at=gte:…`, `limit`, `marker`, extra properties by name).
    /// An invalid query or an unknown marker is `BadRequest`.
    async fn list_images(
        &self,
        caller: &AuthContext,
        query: &[(String, String)],
    ) -> Result<Vec<ImageInfo>, ExternalError>;

    /// Deletes image `id` as `caller`. Fails with `NotFound` when `caller`
    /// cannot read it, `Forbidden` when it may not delete it, and `Conflict`
    /// for a protected image.
    async fn delete_image(&self, caller: &AuthContext, id: &str) -> Result<(), ImageChangeError>;

    /// Makes `properties` the image's complete set of additional
    /// properties, removing those not named, and returns the image.
    async fn replace_image_properties(
        &self,
        caller: &AuthContext,
        id: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<ImageInfo, ImageChangeError>;
}

/// The reason a change to an image through compute's image proxy failed.
/// It is separate from [`ExternalError`] because only these calls can be
/// forbidden for an image the caller can read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageChangeError {
    /// The caller may read the image but not change it.
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Other(#[from] ExternalError),
}

/// A network, with the fields compute reads.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub mtu: u32,
    pub shared: bool,
    pub external: bool,
    /// Whether the network has at least one subnet, because Nova rejects a
    /// boot on a network without one.
    pub has_subnets: bool,
}

/// One fixed address of a port, with what the guest needs to configure it.
#[derive(Debug, Clone)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
    /// `4` or `6`.
    pub ip_version: u8,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub dns_nameservers: Vec<String>,
    /// `(destination, nexthop)` pairs.
    pub host_routes: Vec<(String, String)>,
    pub enable_dhcp: bool,
}

/// A port, with the fields compute reads.
#[derive(Debug, Clone)]
pub struct PortInfo {
    pub id: String,
    pub network_id: String,
    pub network_name: String,
    pub project_id: String,
    pub mac_address: String,
    pub fixed_ips: Vec<FixedIp>,
    /// Floating addresses associated with this port.
    pub floating_ips: Vec<String>,
    pub mtu: u32,
    pub device_id: String,
    pub device_owner: String,
    pub status: String,
    pub security_group_ids: Vec<String>,
    /// `binding:host_id`, or empty when unbound.
    pub binding_host: String,
    /// `binding:vif_type`.
    pub vif_type: String,
}

/// A port that compute requests the network service to create for a server.
#[derive(Debug, Clone)]
pub struct PortRequest {
    /// The server's project, which owns the port.
    pub project_id: String,
    pub network_id: String,
    /// The address requested in `networks: [{"fixed_ip": …}]`.
    pub fixed_ip: Option<String>,
    /// Security group ids. An empty list selects the project's `default` group.
    pub security_group_ids: Vec<String>,
    /// The server id.
    pub device_id: String,
    /// `compute:<availability zone>`, as Nova writes it.
    pub device_owner: String,
}

/// The network service, as compute calls it.
#[async_trait::async_trait]
pub trait NetworkApi: Send + Sync {
    /// Returns the network `id` if `caller` may use it.
    async fn get_network(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<Option<NetworkInfo>, ExternalError>;

    /// Returns the networks `caller` may boot on without naming one: its
    /// project's own and the shared ones, but not external ones.
    async fn available_networks(
        &self,
        caller: &AuthContext,
    ) -> Result<Vec<NetworkInfo>, ExternalError>;

    /// Resolves security group names or ids visible to `caller` to ids.
    /// The error names the first one that matches no group.
    async fn security_group_ids(
        &self,
        caller: &AuthContext,
        names: &[String],
    ) -> Result<Vec<String>, ExternalError>;

    /// Returns the port `id` if `caller` may use it.
    async fn get_port(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<Option<PortInfo>, ExternalError>;

    /// Returns whether `caller` may choose the fixed address of a port on
    /// network `id` (the network service's `create_port:fixed_ips:ip_address`
    /// policy).
    async fn may_choose_address(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<bool, ExternalError>;

    /// Creates a port. The build calls it without a token, because the API
    /// checked that the caller may use the network before it accepted the server.
    async fn create_port(&self, request: &PortRequest) -> Result<PortInfo, ExternalError>;

    /// Sets the device of an existing port (a port the user passed in).
    async fn claim_port(
        &self,
        port_id: &str,
        device_id: &str,
        device_owner: &str,
    ) -> Result<PortInfo, ExternalError>;

    /// Binds the port to `host`. `Conflict` carries the binding failure's
    /// message, which names what to fix.
    async fn bind_port(&self, port_id: &str, host: &str) -> Result<PortInfo, ExternalError>;

    /// Clears the port's device and binding (a port the user passed in).
    async fn release_port(&self, port_id: &str) -> Result<(), ExternalError>;

    /// Deletes the port. A port that is already gone is not an error.
    async fn delete_port(&self, port_id: &str) -> Result<(), ExternalError>;

    /// Lists the ports of project `project_id` whose `device_id` is
    /// `device_id`, in creation order. The project filter matters because any
    /// project may name another's server as a port's device. As in Nova, such
    /// a foreign port is neither shown on the server nor deleted with it.
    async fn ports_for_device(
        &self,
        device_id: &str,
        project_id: &str,
    ) -> Result<Vec<PortInfo>, ExternalError>;

    /// Finds the port of any project on `network_id` with the fixed address
    /// `ip`. The metadata API identifies the instance behind a request this
    /// way, as Neutron's metadata agent does.
    async fn port_by_ip(
        &self,
        network_id: &str,
        ip: &str,
    ) -> Result<Option<PortInfo>, ExternalError>;

    /// Returns the networks that router `router_id` has an interface on
    /// (ports whose `device_owner` is `network:router_interface*`, not the
    /// gateway), or an empty list for an unknown router. The metadata API
    /// searches them for a request that a router namespace's proxy forwarded.
    async fn router_network_ids(&self, router_id: &str) -> Result<Vec<String>, ExternalError>;

    /// Replaces the security groups of port `port_id` with `group_ids`
    /// (`addSecurityGroup` / `removeSecurityGroup` of its server).
    async fn set_port_security_groups(
        &self,
        port_id: &str,
        group_ids: &[String],
    ) -> Result<PortInfo, ExternalError>;

    /// Returns the names of security groups `group_ids`, in the same order.
    /// An id that matches no group is returned as its own name.
    async fn security_group_names(
        &self,
        group_ids: &[String],
    ) -> Result<Vec<String>, ExternalError>;

    /// Returns the security groups `group_ids` that exist, with their
    /// rules, in the order of `group_ids`.
    async fn security_groups(
        &self,
        group_ids: &[String],
    ) -> Result<Vec<SecurityGroupInfo>, ExternalError>;
}

/// A security group as `GET /servers/{id}/os-security-groups` shows it.
#[derive(Debug, Clone)]
pub struct SecurityGroupInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    pub project_id: String,
    pub rules: Vec<SecurityGroupRuleInfo>,
}

/// A rule of a security group, in the network service's terms.
#[derive(Debug, Clone)]
pub struct SecurityGroupRuleInfo {
    pub id: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `None` matches any protocol.
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}
