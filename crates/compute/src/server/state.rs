//! Nova's state rules for servers: the `status` the API shows for each
//! `vm_state`/`task_state` pair, the reverse mapping the `status` list
//! filter uses, and which requests each state allows. The tables follow
//! Nova's `nova/api/openstack/common.py` (`_STATE_MAP`) and the
//! `check_instance_state` guards of `nova/compute/api.py`.

use super::model::{Server, TaskState, VmState};

/// Returns the `status` Nova shows for `vm_state` with `task_state`.
pub fn status(vm_state: VmState, task_state: Option<TaskState>) -> &'static str {
    let by_task = task_state.and_then(|task| status_for_task(vm_state, task));
    by_task.unwrap_or(match vm_state {
        VmState::Building => "BUILD",
        VmState::Active => "ACTIVE",
        VmState::Stopped => "SHUTOFF",
        VmState::Paused => "PAUSED",
        VmState::Suspended => "SUSPENDED",
        VmState::Rescued => "RESCUE",
        VmState::Resized => "VERIFY_RESIZE",
        VmState::SoftDeleted => "SOFT_DELETED",
        VmState::Deleted => "DELETED",
        VmState::Error => "ERROR",
        VmState::Shelved => "SHELVED",
        VmState::ShelvedOffloaded => "SHELVED_OFFLOADED",
    })
}

/// Returns the status a task state shows in place of the vm state's own.
/// Among the task states OxStack sets, only the reboots have one. Nova's
/// others (rebuild, resize, migrating, password) are never set here.
fn status_for_task(vm_state: VmState, task: TaskState) -> Option<&'static str> {
    match (vm_state, task) {
        (VmState::Active, TaskState::Rebooting) => Some("REBOOT"),
        (VmState::Active, TaskState::RebootingHard) => Some("HARD_REBOOT"),
        _ => None,
    }
}

/// Returns the status of `server`, which is `DELETED` once it is deleted,
/// whatever its vm and task states are.
pub fn server_status(server: &Server) -> &'static str {
    if server.deleted {
        return "DELETED";
    }
    status(server.vm_state, server.task_state)
}

/// Every status Nova's `status` filter accepts.
pub const STATUSES: &[&str] = &[
    "ACTIVE",
    "BUILD",
    "DELETED",
    "ERROR",
    "HARD_REBOOT",
    "MIGRATING",
    "PASSWORD",
    "PAUSED",
    "REBOOT",
    "REBUILD",
    "RESCUE",
    "RESIZE",
    "REVERT_RESIZE",
    "SHELVED",
    "SHELVED_OFFLOADED",
    "SHUTOFF",
    "SOFT_DELETED",
    "SUSPENDED",
    "VERIFY_RESIZE",
];

/// The selection of a `status` filter: the vm states, and the task states
/// within them. `None` selects any task state, as Nova does when a status is
/// a vm state's default.
#[derive(Debug, Default, PartialEq)]
pub struct StatusFilter {
    pub vm_states: Vec<&'static str>,
    pub task_states: Option<Vec<&'static str>>,
}

/// Nova's `(vm_state, task_state) → status` table, with `None` as the
/// vm state's default. Task states OxStack never sets are listed too, so
/// filtering by `REBUILD` or `RESIZE` selects the vm states Nova selects.
const STATE_TABLE: &[(&str, Option<&str>, &str)] = &[
    ("active", None, "ACTIVE"),
    ("active", Some("rebooting"), "REBOOT"),
    ("active", Some("reboot_pending"), "REBOOT"),
    ("active", Some("reboot_started"), "REBOOT"),
    ("active", Some("rebooting_hard"), "HARD_REBOOT"),
    ("active", Some("reboot_pending_hard"), "HARD_REBOOT"),
    ("active", Some("reboot_started_hard"), "HARD_REBOOT"),
    ("active", Some("updating_password"), "PASSWORD"),
    ("active", Some("rebuilding"), "REBUILD"),
    ("active", Some("rebuild_block_device_mapping"), "REBUILD"),
    ("active", Some("rebuild_spawning"), "REBUILD"),
    ("active", Some("migrating"), "MIGRATING"),
    ("active", Some("resize_prep"), "RESIZE"),
    ("active", Some("resize_migrating"), "RESIZE"),
    ("active", Some("resize_migrated"), "RESIZE"),
    ("active", Some("resize_finish"), "RESIZE"),
    ("building", None, "BUILD"),
    ("stopped", None, "SHUTOFF"),
    ("stopped", Some("resize_prep"), "RESIZE"),
    ("stopped", Some("resize_migrating"), "RESIZE"),
    ("stopped", Some("resize_migrated"), "RESIZE"),
    ("stopped", Some("resize_finish"), "RESIZE"),
    ("stopped", Some("rebuilding"), "REBUILD"),
    ("stopped", Some("rebuild_block_device_mapping"), "REBUILD"),
    ("stopped", Some("rebuild_spawning"), "REBUILD"),
    ("resized", None, "VERIFY_RESIZE"),
    ("resized", Some("resize_reverting"), "REVERT_RESIZE"),
    ("paused", None, "PAUSED"),
    ("paused", Some("migrating"), "MIGRATING"),
    ("suspended", None, "SUSPENDED"),
    ("rescued", None, "RESCUE"),
    ("error", None, "ERROR"),
    ("error", Some("rebuilding"), "REBUILD"),
    ("error", Some("rebuild_block_device_mapping"), "REBUILD"),
    ("error", Some("rebuild_spawning"), "REBUILD"),
    ("deleted", None, "DELETED"),
    ("soft-delete", None, "SOFT_DELETED"),
    ("shelved", None, "SHELVED"),
    ("shelved_offloaded", None, "SHELVED_OFFLOADED"),
];

/// Maps `status` filter values (any case) to the states they select, as
/// Nova's `task_and_vm_state_from_status` does. An empty result means that no
/// value was a status.
pub fn filter_from_statuses(statuses: &[String]) -> StatusFilter {
    let wanted: Vec<String> = statuses.iter().map(|s| s.to_ascii_uppercase()).collect();
    let mut filter = StatusFilter::default();
    let mut tasks: Vec<&'static str> = Vec::new();
    let mut any_task = false;
    for (vm_state, task_state, status) in STATE_TABLE {
        if !wanted.iter().any(|w| w == status) {
            continue;
        }
        if !filter.vm_states.contains(vm_state) {
            filter.vm_states.push(vm_state);
        }
        match task_state {
            None => any_task = true,
            Some(task) => tasks.push(task),
        }
    }
    if !filter.vm_states.is_empty() && !any_task {
        filter.task_states = Some(tasks);
    }
    filter
}

impl StatusFilter {
    pub fn is_empty(&self) -> bool {
        self.vm_states.is_empty()
    }

    /// Returns whether the filter selects `server`.
    pub fn matches(&self, server: &Server) -> bool {
        if !self.vm_states.contains(&server.vm_state.as_str()) {
            return false;
        }
        match &self.task_states {
            None => true,
            Some(tasks) => server
                .task_state
                .is_some_and(|t| tasks.contains(&t.as_str())),
        }
    }
}

/// The reason a request may not run on a server now. The API returns 409
/// with Nova's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A non-admin requested a change to a locked server.
    Locked { server_id: String },
    /// The server's `attr` (`vm_state`, `task_state`, `launched_at`) is
    /// `state`, which the request does not allow.
    InvalidState {
        action: &'static str,
        server_id: String,
        attr: &'static str,
        state: String,
    },
    /// The server is not on a host yet.
    NotReady { server_id: String },
}

impl Refusal {
    /// Returns Nova's message for this refusal.
    pub fn message(&self) -> String {
        match self {
            Refusal::Locked { server_id } => format!("Instance {server_id} is locked"),
            Refusal::InvalidState {
                action,
                server_id,
                attr,
                state,
            } => {
                format!("Cannot '{action}' instance {server_id} while it is in {attr} {state}")
            }
            Refusal::NotReady { server_id } => format!("Instance {server_id} is not ready"),
        }
    }
}

/// A request that changes a server's state. Its Nova name appears in 409
/// messages and in the recorded instance action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Stop,
    Start,
    SoftReboot,
    HardReboot,
    Pause,
    Unpause,
    Suspend,
    Resume,
    Delete,
    /// `forceDelete`: a delete that needs no task in progress.
    ForceDelete,
    /// `restore` of a soft-deleted server.
    Restore,
}

impl Request {
    /// Returns the action name in Nova's 409 messages (`os-stop` is `stop`).
    pub fn name(self) -> &'static str {
        match self {
            Request::Stop => "stop",
            Request::Start => "start",
            Request::SoftReboot | Request::HardReboot => "reboot",
            Request::Pause => "pause",
            Request::Unpause => "unpause",
            Request::Suspend => "suspend",
            Request::Resume => "resume",
            Request::Delete => "delete",
            Request::ForceDelete => "forceDelete",
            Request::Restore => "restore",
        }
    }

    /// Returns the task state the server takes when the request is accepted.
    pub fn task_state(self) -> TaskState {
        match self {
            Request::Stop => TaskState::PoweringOff,
            Request::Start => TaskState::PoweringOn,
            Request::SoftReboot => TaskState::Rebooting,
            Request::HardReboot => TaskState::RebootingHard,
            Request::Pause => TaskState::Pausing,
            Request::Unpause => TaskState::Unpausing,
            Request::Suspend => TaskState::Suspending,
            Request::Resume => TaskState::Resuming,
            Request::Delete | Request::ForceDelete => TaskState::Deleting,
            // Soft delete is not implemented, so no server is ever restored.
            // `check` rejects every restore before this is read.
            Request::Restore => TaskState::PoweringOn,
        }
    }

    /// Returns the vm states the request runs in, or `None` for any.
    fn allowed_vm_states(self) -> Option<&'static [VmState]> {
        Some(match self {
            Request::Stop => &[VmState::Active, VmState::Error],
            Request::Start => &[VmState::Stopped],
            Request::SoftReboot | Request::Pause | Request::Suspend => &[VmState::Active],
            Request::HardReboot => &[
                VmState::Active,
                VmState::Stopped,
                VmState::Paused,
                VmState::Suspended,
                VmState::Error,
            ],
            Request::Unpause => &[VmState::Paused],
            Request::Resume => &[VmState::Suspended],
            Request::Restore => &[VmState::SoftDeleted],
            Request::Delete | Request::ForceDelete => return None,
        })
    }

    /// Returns whether the request runs while `task` is in progress. As in
    /// Nova, a hard reboot may interrupt a reboot, pause, unpause, suspend or
    /// resume in flight. Delete runs in any task state, and everything else,
    /// `forceDelete` included, needs no task in progress.
    fn allows_task(self, task: Option<TaskState>) -> bool {
        match self {
            Request::Delete => true,
            Request::HardReboot => matches!(
                task,
                None | Some(
                    TaskState::Rebooting
                        | TaskState::RebootingHard
                        | TaskState::Resuming
                        | TaskState::Unpausing
                        | TaskState::Pausing
                        | TaskState::Suspending
                )
            ),
            _ => task.is_none(),
        }
    }

    /// Returns whether Nova requires the server to have been launched once
    /// (`must_have_launched`, false only for the deletes).
    fn needs_launch(self) -> bool {
        !matches!(self, Request::Delete | Request::ForceDelete)
    }

    /// Returns whether the request needs the server on a host (Nova's
    /// `check_instance_host`).
    fn needs_host(self) -> bool {
        matches!(self, Request::Stop | Request::Start)
    }
}

/// Checks that `request` may run on `server` now, in Nova's order: the
/// lock (admins pass it), the vm state, the task state, then whether the
/// server ever launched and whether it is on a host.
pub fn check(server: &Server, request: Request, is_admin: bool) -> Result<(), Refusal> {
    if server.locked && !is_admin {
        return Err(Refusal::Locked {
            server_id: server.id.clone(),
        });
    }
    if request.needs_host() && server.host.is_none() {
        return Err(Refusal::NotReady {
            server_id: server.id.clone(),
        });
    }
    let invalid = |attr: &'static str, state: String| Refusal::InvalidState {
        action: request.name(),
        server_id: server.id.clone(),
        attr,
        state,
    };
    if let Some(allowed) = request.allowed_vm_states() {
        if !allowed.contains(&server.vm_state) {
            return Err(invalid("vm_state", server.vm_state.as_str().to_owned()));
        }
    }
    if !request.allows_task(server.task_state) {
        let state = server.task_state.map_or("None", TaskState::as_str);
        return Err(invalid("task_state", state.to_owned()));
    }
    if request.needs_launch() && server.launched_at.is_none() {
        return Err(invalid("launched_at", "None".to_owned()));
    }
    Ok(())
}

/// The vm states in which a server's metadata and tags may change.
const EDITABLE: &[VmState] = &[
    VmState::Active,
    VmState::Paused,
    VmState::Suspended,
    VmState::Stopped,
];

/// Checks that `server`'s metadata may change, where `action` is `update
/// metadata` or `delete metadata` in the message. As in Nova, it rejects a
/// locked server for non-admins, a server in a vm state other than active,
/// paused, suspended or stopped, and a server that never launched.
pub fn check_metadata_change(
    server: &Server,
    action: &'static str,
    is_admin: bool,
) -> Result<(), Refusal> {
    if server.locked && !is_admin {
        return Err(Refusal::Locked {
            server_id: server.id.clone(),
        });
    }
    check_tag_change(server, action)?;
    if server.launched_at.is_none() {
        return Err(Refusal::InvalidState {
            action,
            server_id: server.id.clone(),
            attr: "launched_at",
            state: "None".to_owned(),
        });
    }
    Ok(())
}

/// Checks that `server`'s tags may change. Only its vm state is checked.
pub fn check_tag_change(server: &Server, action: &'static str) -> Result<(), Refusal> {
    if !EDITABLE.contains(&server.vm_state) {
        return Err(Refusal::InvalidState {
            action,
            server_id: server.id.clone(),
            attr: "vm_state",
            state: server.vm_state.as_str().to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_vm_state() {
        let cases = [
            (VmState::Building, None, "BUILD"),
            (VmState::Building, Some(TaskState::Spawning), "BUILD"),
            (VmState::Active, None, "ACTIVE"),
            (VmState::Active, Some(TaskState::PoweringOff), "ACTIVE"),
            (VmState::Active, Some(TaskState::Rebooting), "REBOOT"),
            (
                VmState::Active,
                Some(TaskState::RebootingHard),
                "HARD_REBOOT",
            ),
            (VmState::Stopped, None, "SHUTOFF"),
            (VmState::Stopped, Some(TaskState::RebootingHard), "SHUTOFF"),
            (VmState::Paused, None, "PAUSED"),
            (VmState::Suspended, None, "SUSPENDED"),
            (VmState::Error, None, "ERROR"),
            (VmState::Error, Some(TaskState::Deleting), "ERROR"),
            (VmState::Deleted, None, "DELETED"),
            (VmState::SoftDeleted, None, "SOFT_DELETED"),
            (VmState::Rescued, None, "RESCUE"),
            (VmState::Resized, None, "VERIFY_RESIZE"),
            (VmState::Shelved, None, "SHELVED"),
            (VmState::ShelvedOffloaded, None, "SHELVED_OFFLOADED"),
        ];
        for (vm, task, expected) in cases {
            assert_eq!(status(vm, task), expected, "{vm:?} {task:?}");
        }
    }

    #[test]
    fn every_table_status_is_a_filter_status() {
        for (_, _, status) in STATE_TABLE {
            assert!(STATUSES.contains(status), "{status}");
        }
    }

    #[test]
    fn active_filter_selects_any_task() {
        let filter = filter_from_statuses(&["active".to_owned()]);
        assert_eq!(filter.vm_states, vec!["active"]);
        assert_eq!(filter.task_states, None);
    }

    #[test]
    fn reboot_filter_selects_reboot_tasks() {
        let filter = filter_from_statuses(&["REBOOT".to_owned()]);
        assert_eq!(filter.vm_states, vec!["active"]);
        assert_eq!(
            filter.task_states,
            Some(vec!["rebooting", "reboot_pending", "reboot_started"])
        );
    }

    #[test]
    fn unknown_status_selects_nothing() {
        assert!(filter_from_statuses(&["SLEEPY".to_owned()]).is_empty());
    }

    fn server(vm_state: VmState, task_state: Option<TaskState>) -> Server {
        use super::super::model::FlavorSnapshot;
        Server {
            id: "s1".into(),
            name: "vm".into(),
            project_id: "p".into(),
            user_id: "u".into(),
            image_id: "i".into(),
            flavor: FlavorSnapshot {
                id: "42".into(),
                name: "m1.nano".into(),
                vcpus: 1,
                ram: 128,
                disk: 1,
                ephemeral: 0,
                swap: 0,
                extra_specs: Default::default(),
            },
            vm_state,
            task_state,
            power_state: 1,
            host: Some("node1".into()),
            node: Some("node1".into()),
            availability_zone: None,
            requested_availability_zone: None,
            key_name: None,
            key_data: None,
            user_data: None,
            metadata: Default::default(),
            config_drive: false,
            access_ipv4: String::new(),
            access_ipv6: String::new(),
            security_group_ids: Vec::new(),
            security_group_names: Vec::new(),
            requested_networks: Vec::new(),
            server_group: None,
            created_ports: Vec::new(),
            ports: Vec::new(),
            locked: false,
            locked_reason: None,
            locked_by: None,
            description: None,
            hostname: "vm".into(),
            tags: Vec::new(),
            fault: None,
            progress: 0,
            reservation_id: "r-1".into(),
            launch_index: 0,
            launched_at: Some(1),
            terminated_at: None,
            created_at: 0,
            updated_at: 0,
            deleted: false,
            password: String::new(),
            revision: 0,
        }
    }

    #[test]
    fn allowed_states_follow_nova() {
        let cases = [
            (Request::Stop, VmState::Active, None, true),
            (Request::Stop, VmState::Error, None, true),
            (Request::Stop, VmState::Stopped, None, false),
            (Request::Start, VmState::Stopped, None, true),
            (Request::Start, VmState::Active, None, false),
            (Request::SoftReboot, VmState::Active, None, true),
            (Request::SoftReboot, VmState::Stopped, None, false),
            (
                Request::SoftReboot,
                VmState::Active,
                Some(TaskState::Rebooting),
                false,
            ),
            (Request::HardReboot, VmState::Stopped, None, true),
            (Request::HardReboot, VmState::Error, None, true),
            (
                Request::HardReboot,
                VmState::Active,
                Some(TaskState::Rebooting),
                true,
            ),
            (
                Request::HardReboot,
                VmState::Active,
                Some(TaskState::PoweringOff),
                false,
            ),
            (Request::Pause, VmState::Active, None, true),
            (Request::Pause, VmState::Paused, None, false),
            (Request::Unpause, VmState::Paused, None, true),
            (Request::Suspend, VmState::Paused, None, false),
            (Request::Resume, VmState::Suspended, None, true),
            (
                Request::Delete,
                VmState::Building,
                Some(TaskState::Scheduling),
                true,
            ),
            (
                Request::ForceDelete,
                VmState::Active,
                Some(TaskState::PoweringOff),
                false,
            ),
            (Request::Restore, VmState::Active, None, false),
        ];
        for (request, vm_state, task_state, allowed) in cases {
            let result = check(&server(vm_state, task_state), request, false);
            assert_eq!(
                result.is_ok(),
                allowed,
                "{request:?} in {vm_state:?}/{task_state:?}: {result:?}"
            );
        }
    }

    #[test]
    fn lock_binds_members_only() {
        let mut locked = server(VmState::Active, None);
        locked.locked = true;
        assert_eq!(
            check(&locked, Request::Stop, false),
            Err(Refusal::Locked {
                server_id: "s1".into()
            })
        );
        assert!(check(&locked, Request::Stop, true).is_ok());
        assert!(check(&locked, Request::Delete, false).is_err());
    }

    #[test]
    fn unscheduled_server_is_not_ready() {
        let mut unscheduled = server(VmState::Error, None);
        unscheduled.host = None;
        assert_eq!(
            check(&unscheduled, Request::Stop, false),
            Err(Refusal::NotReady {
                server_id: "s1".into()
            })
        );
        unscheduled.launched_at = None;
        assert!(check(&unscheduled, Request::Delete, false).is_ok());
    }

    #[test]
    fn never_launched_server_refuses_reboot() {
        let mut fresh = server(VmState::Active, None);
        fresh.launched_at = None;
        let refusal = check(&fresh, Request::HardReboot, false).unwrap_err();
        assert_eq!(
            refusal.message(),
            "Cannot 'reboot' instance s1 while it is in launched_at None"
        );
    }

    #[test]
    fn metadata_change_needs_launched_server() {
        let building = server(VmState::Building, Some(TaskState::Spawning));
        let refusal = check_metadata_change(&building, "update metadata", false).unwrap_err();
        assert_eq!(
            refusal.message(),
            "Cannot 'update metadata' instance s1 while it is in vm_state building"
        );
        assert!(
            check_metadata_change(&server(VmState::Stopped, None), "update metadata", false)
                .is_ok()
        );
    }

    #[test]
    fn refusal_messages_match_nova() {
        let refusal = Refusal::InvalidState {
            action: "stop",
            server_id: "s1".into(),
            attr: "vm_state",
            state: "stopped".into(),
        };
        assert_eq!(
            refusal.message(),
            "Cannot 'stop' instance s1 while it is in vm_state stopped"
        );
        assert_eq!(
            Refusal::Locked {
                server_id: "s1".into()
            }
            .message(),
            "Instance s1 is locked"
        );
    }
}
