//! The server record, with Nova's three state fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Nova's `vm_state`, the state of the server at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    Building,
    Active,
    Stopped,
    Paused,
    Suspended,
    Rescued,
    Resized,
    SoftDeleted,
    Deleted,
    Error,
    Shelved,
    ShelvedOffloaded,
}

impl VmState {
    /// The value of `OS-EXT-STS:vm_state`.
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Building => "building",
            VmState::Active => "active",
            VmState::Stopped => "stopped",
            VmState::Paused => "paused",
            VmState::Suspended => "suspended",
            VmState::Rescued => "rescued",
            VmState::Resized => "resized",
            VmState::SoftDeleted => "soft-delete",
            VmState::Deleted => "deleted",
            VmState::Error => "error",
            VmState::Shelved => "shelved",
            VmState::ShelvedOffloaded => "shelved_offloaded",
        }
    }
}

/// Nova's `task_state`, the operation the server is in now. A server at
/// rest has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Scheduling,
    Networking,
    BlockDeviceMapping,
    Spawning,
    PoweringOff,
    PoweringOn,
    Rebooting,
    RebootingHard,
    Pausing,
    Unpausing,
    Suspending,
    Resuming,
    Deleting,
}

impl TaskState {
    /// The value of `OS-EXT-STS:task_state`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Scheduling => "scheduling",
            TaskState::Networking => "networking",
            TaskState::BlockDeviceMapping => "block_device_mapping",
            TaskState::Spawning => "spawning",
            TaskState::PoweringOff => "powering-off",
            TaskState::PoweringOn => "powering-on",
            TaskState::Rebooting => "rebooting",
            TaskState::RebootingHard => "rebooting_hard",
            TaskState::Pausing => "pausing",
            TaskState::Unpausing => "unpausing",
            TaskState::Suspending => "suspending",
            TaskState::Resuming => "resuming",
            TaskState::Deleting => "deleting",
        }
    }
}

/// An action the conductor carries out on a host. Lock and unlock, which
/// touch no host, are not among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerAction {
    Stop,
    Start,
    Reboot { hard: bool },
    Pause,
    Unpause,
    Suspend,
    Resume,
}

/// The flavor as it was when the server was created: later changes to the
/// flavor do not change the server, as in Nova.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlavorSnapshot {
    pub id: String,
    pub name: String,
    pub vcpus: i64,
    /// MiB.
    pub ram: i64,
    /// GB.
    pub disk: i64,
    /// GB.
    pub ephemeral: i64,
    /// MiB.
    pub swap: i64,
    pub extra_specs: BTreeMap<String, String>,
}

/// One entry of the request's `networks`, resolved at the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicRequest {
    pub network_id: Option<String>,
    /// A port the user created. Deleting the server releases this port
    /// rather than deleting it.
    pub port_id: Option<String>,
    pub fixed_ip: Option<String>,
}

/// The reason a server is in `ERROR`, as `fault` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The HTTP status: 500 for failures in the cloud, 4xx for invalid requests.
    pub code: u16,
    /// The failure and what to change.
    pub message: String,
    /// Shown to admins only.
    pub details: Option<String>,
    /// Unix seconds.
    pub created: i64,
}

/// A server, stored whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    /// The image id, empty for a server booted from a volume.
    pub image_id: String,
    pub flavor: FlavorSnapshot,
    pub vm_state: VmState,
    pub task_state: Option<TaskState>,
    /// Nova's `power_state` code (0 no state, 1 running, 3 paused,
    /// 4 shutdown, 6 crashed, 7 suspended).
    pub power_state: i64,
    /// The compute host, or `None` until the server is scheduled.
    pub host: Option<String>,
    /// The hypervisor node name (the host's name, one node per host).
    pub node: Option<String>,
    pub availability_zone: Option<String>,
    /// The availability zone the user requested, if any.
    pub requested_availability_zone: Option<String>,
    pub key_name: Option<String>,
    /// The key pair's public key, copied at create time as Nova does.
    pub key_data: Option<String>,
    /// Base64, as the request gave it.
    pub user_data: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub config_drive: bool,
    pub access_ipv4: String,
    pub access_ipv6: String,
    /// Security group ids given at create time (resolved from names).
    pub security_group_ids: Vec<String>,
    /// Security group names, as the request named them.
    pub security_group_names: Vec<String>,
    pub requested_networks: Vec<NicRequest>,
    /// The server group that the `group` scheduler hint named. Servers stored
    /// before server groups existed read as `None`.
    #[serde(default)]
    pub server_group: Option<String>,
    /// The ports this server created, which are deleted with it.
    pub created_ports: Vec<String>,
    /// Every port attached, in the order of `requested_networks`.
    pub ports: Vec<String>,
    pub locked: bool,
    pub locked_reason: Option<String>,
    /// `admin` or `owner`, as Nova records who locked the server.
    pub locked_by: Option<String>,
    pub description: Option<String>,
    pub hostname: String,
    pub tags: Vec<String>,
    pub fault: Option<Fault>,
    pub progress: i64,
    pub reservation_id: String,
    pub launch_index: i64,
    /// Unix seconds.
    pub launched_at: Option<i64>,
    pub terminated_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted: bool,
    /// The encrypted admin password the guest posted to the metadata
    /// service, as `os-server-password` returns it, or empty when none.
    #[serde(default)]
    pub password: String,
    /// The stored revision this copy was read at. It is kept in its own
    /// column, not in the document.
    #[serde(skip)]
    pub revision: i64,
}
