//! Deleting a server: free what it holds, then mark it deleted. Works in
//! any state, also for a server in `ERROR` that never got a host, and a
//! second delete of the same server does nothing.

use oxstack_hypervisor::PowerState;

use super::fault;
use crate::server::store::{self, Modified};
use crate::server::{TaskState, VmState};
use crate::ComputeService;

const DELETE_EVENT: &str = "compute_terminate_instance";

impl ComputeService {
    pub(crate) async fn delete_server(&self, server_id: &str, request_id: &str) {
        let server = match store::get(self.pool(), server_id).await {
            Ok(Some(server)) => server,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(server_id, request_id, %error, "could not read the server to delete");
                return;
            }
        };
        self.event_start(server_id, request_id, DELETE_EVENT, server.host.as_deref())
            .await;

        if let Err(message) = self.release_server(&server).await {
            self.event_finish(server_id, request_id, DELETE_EVENT, Err(&message))
                .await;
            let failure = fault(
                500,
                format!("{message} Delete the server again to retry."),
                None,
            );
            let written = store::modify(self.pool(), server_id, |server| {
                server.vm_state = VmState::Error;
                server.task_state = None;
                server.fault = Some(failure.clone());
                Ok::<(), ()>(())
            })
            .await;
            if let Err(error) = written {
                tracing::error!(server_id, request_id, %error, "could not record the failed delete");
            }
            return;
        }

        let now = chrono::Utc::now().timestamp();
        let marked = store::modify(self.pool(), server_id, |server| {
            server.vm_state = VmState::Deleted;
            server.task_state = None;
            server.power_state = PowerState::NoState.code();
            server.deleted = true;
            server.terminated_at = Some(now);
            Ok::<(), ()>(())
        })
        .await;
        match marked {
            Ok(Modified::Saved(last)) => {
                // A build running meanwhile may have recorded a host or
                // ports after this delete read the server; free those too.
                let grew = last.host != server.host
                    || last.ports != server.ports
                    || last.created_ports != server.created_ports;
                if grew {
                    if let Err(message) = self.release_server(&last).await {
                        tracing::warn!(
                            server_id,
                            request_id,
                            message,
                            "freeing what a concurrent build added failed"
                        );
                    }
                }
                self.event_finish(server_id, request_id, DELETE_EVENT, Ok(()))
                    .await;
                tracing::info!(server_id, request_id, "server deleted");
            }
            Ok(Modified::NotFound | Modified::Refused(())) => {}
            Err(error) => {
                tracing::error!(server_id, request_id, %error, "could not mark the server deleted")
            }
        }
    }

    /// Returns whether `task` is one a build runs under.
    pub(crate) fn is_build_task(task: Option<TaskState>) -> bool {
        matches!(
            task,
            Some(
                TaskState::Scheduling
                    | TaskState::Networking
                    | TaskState::BlockDeviceMapping
                    | TaskState::Spawning
            )
        )
    }
}
