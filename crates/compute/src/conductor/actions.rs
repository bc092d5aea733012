//! Power actions on a built server: stop, start, reboot, pause, unpause,
//! suspend and resume. The API has set the task state; the conductor calls
//! the host's driver and sets the state the action ends in.

use std::time::Duration;

use oxstack_hypervisor::{DriverError, PowerState};

use super::fault;
use crate::server::store::{self, Modified};
use crate::server::{ServerAction, TaskState, VmState};
use crate::ComputeService;

/// The end state of an action and the event it is recorded under.
struct Plan {
    /// Nova's event name (`compute_stop_instance`, …).
    event: &'static str,
    vm_state: VmState,
    power_state: PowerState,
}

fn plan(action: ServerAction) -> Plan {
    let (event, vm_state, power_state) = match action {
        ServerAction::Stop => (
            "compute_stop_instance",
            VmState::Stopped,
            PowerState::Shutdown,
        ),
        ServerAction::Start => (
            "compute_start_instance",
            VmState::Active,
            PowerState::Running,
        ),
        ServerAction::Reboot { .. } => (
            "compute_reboot_instance",
            VmState::Active,
            PowerState::Running,
        ),
        ServerAction::Pause => (
            "compute_pause_instance",
            VmState::Paused,
            PowerState::Paused,
        ),
        ServerAction::Unpause => (
            "compute_unpause_instance",
            VmState::Active,
            PowerState::Running,
        ),
        ServerAction::Suspend => (
            "compute_suspend_instance",
            VmState::Suspended,
            PowerState::Suspended,
        ),
        ServerAction::Resume => (
            "compute_resume_instance",
            VmState::Active,
            PowerState::Running,
        ),
    };
    Plan {
        event,
        vm_state,
        power_state,
    }
}

impl ComputeService {
    pub(crate) async fn run_action(&self, server_id: &str, action: ServerAction, request_id: &str) {
        let plan = plan(action);
        let server = match store::get(self.pool(), server_id).await {
            Ok(Some(server)) => server,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(server_id, request_id, %error, "could not read the server for its action");
                return;
            }
        };
        if server.task_state == Some(TaskState::Deleting) {
            return;
        }
        let host = server.host.clone().unwrap_or_default();
        self.event_start(server_id, request_id, plan.event, server.host.as_deref())
            .await;

        let result = match self.driver_for(&host) {
            Some(driver) => {
                let timeout = Duration::from_secs(self.config.shutdown_timeout);
                match action {
                    ServerAction::Stop => driver.power_off(server_id, timeout).await,
                    ServerAction::Start => driver.power_on(server_id).await,
                    ServerAction::Reboot { hard } => driver.reboot(server_id, hard).await,
                    ServerAction::Pause => driver.pause(server_id).await,
                    ServerAction::Unpause => driver.unpause(server_id).await,
                    ServerAction::Suspend => driver.suspend(server_id).await,
                    ServerAction::Resume => driver.resume(server_id).await,
                }
            }
            None if host.is_empty() => {
                Err(DriverError::Failed("the server has no host".to_owned()))
            }
            None => Err(DriverError::Failed(format!(
                "host {host} is not run by this process"
            ))),
        };

        match result {
            Ok(()) => {
                let written = store::modify(self.pool(), server_id, |server| {
                    if server.task_state == Some(TaskState::Deleting) {
                        return Err(());
                    }
                    server.vm_state = plan.vm_state;
                    server.power_state = plan.power_state.code();
                    server.task_state = None;
                    Ok(())
                })
                .await;
                if let Err(error) = written {
                    tracing::error!(server_id, request_id, %error, "could not record the action's result");
                }
                self.event_finish(server_id, request_id, plan.event, Ok(()))
                    .await;
                tracing::info!(server_id, request_id, event = plan.event, "action done");
            }
            Err(DriverError::NotFound(_)) => {
                let message = format!(
                    "The instance of this server is gone from host {host}; its disk and state are lost. Delete \
                     the server and create it again."
                );
                tracing::error!(
                    server_id,
                    request_id,
                    host,
                    event = plan.event,
                    "instance is gone from its host"
                );
                self.event_finish(server_id, request_id, plan.event, Err(&message))
                    .await;
                let gone = fault(500, message, None);
                let written = store::modify(self.pool(), server_id, |server| {
                    if server.task_state == Some(TaskState::Deleting) {
                        return Err(());
                    }
                    server.vm_state = VmState::Error;
                    server.power_state = PowerState::NoState.code();
                    server.task_state = None;
                    server.fault = Some(gone.clone());
                    Ok(())
                })
                .await;
                if let Err(error) = written {
                    tracing::error!(server_id, request_id, %error, "could not record the action's failure");
                }
            }
            Err(DriverError::Failed(why)) => {
                tracing::error!(server_id, request_id, host, event = plan.event, error = %why, "action failed");
                self.event_finish(server_id, request_id, plan.event, Err(&why))
                    .await;
                // The server stays in the state it was in, free for the
                // next action, as Nova reverts a failed action's task state.
                let written = store::modify(self.pool(), server_id, |server| {
                    if server.task_state == Some(TaskState::Deleting) {
                        return Err(());
                    }
                    server.task_state = None;
                    Ok(())
                })
                .await;
                match written {
                    Ok(Modified::Saved(_) | Modified::NotFound | Modified::Refused(())) => {}
                    Err(error) => {
                        tracing::error!(server_id, request_id, %error, "could not reset the task state")
                    }
                }
            }
        }
    }
}
