//! The conductor: drives servers through their states in the background,
//! after the API has accepted a request and set the server's task state.
//!
//! Each entry point spawns a task and returns at once. Every state write
//! goes through [`store::modify`], which re-reads on a concurrent write.
//! So a delete that arrives while a build or an action runs is noticed at
//! the next write, and the build then undoes what it created and leaves the
//! server to the delete.

mod actions;
mod build;
mod cleanup;
mod delete;
mod spec;

pub(crate) use cleanup::Created;

use std::sync::Arc;

use tracing::Instrument;

use crate::server::store::{self, Modified};
use crate::server::{Fault, ServerAction, TaskState, VmState};
use crate::ComputeService;

impl ComputeService {
    /// Builds server `server_id` (stored as `building`/`scheduling`):
    /// schedules it, claims its resources, creates and binds its ports and
    /// spawns it on the host. Failures leave it in `ERROR` with a fault
    /// and undo what was created.
    pub fn start_build(self: &Arc<Self>, server_id: String, request_id: String) {
        let span = tracing::info_span!("build", server_id = %server_id, request_id = %request_id);
        let service = self.clone();
        tokio::spawn(async move { service.build(&server_id, &request_id).await }.instrument(span));
    }

    /// Carries out `action` on the server's host; the API has already set
    /// the task state the action runs under.
    pub fn start_action(
        self: &Arc<Self>,
        server_id: String,
        action: ServerAction,
        request_id: String,
    ) {
        let span = tracing::info_span!("action", server_id = %server_id, request_id = %request_id, ?action);
        let service = self.clone();
        tokio::spawn(
            async move { service.run_action(&server_id, action, &request_id).await }
                .instrument(span),
        );
    }

    /// Deletes the server (task state `deleting`): destroys the instance,
    /// deletes or releases its ports, releases its claim, marks it deleted.
    pub fn start_delete(self: &Arc<Self>, server_id: String, request_id: String) {
        let span = tracing::info_span!("delete", server_id = %server_id, request_id = %request_id);
        let service = self.clone();
        tokio::spawn(
            async move { service.delete_server(&server_id, &request_id).await }.instrument(span),
        );
    }

    /// Puts the server in `ERROR` with `fault`, unless a delete has taken
    /// it over meanwhile; returns whether it was written.
    pub(crate) async fn set_error(&self, server_id: &str, fault: Fault) -> bool {
        let written = store::modify(self.pool(), server_id, |server| {
            if server.task_state == Some(TaskState::Deleting) {
                return Err(());
            }
            server.vm_state = VmState::Error;
            server.task_state = None;
            server.fault = Some(fault.clone());
            Ok(())
        })
        .await;
        match written {
            Ok(Modified::Saved(_)) => {
                tracing::warn!(server_id, code = fault.code, message = %fault.message, "server set to ERROR");
                true
            }
            Ok(Modified::NotFound | Modified::Refused(())) => false,
            Err(error) => {
                tracing::error!(server_id, %error, "could not set the server to ERROR");
                false
            }
        }
    }

    /// Records the start of an instance-action event; a failure to record
    /// it is logged, never fatal to the step it describes.
    pub(crate) async fn event_start(
        &self,
        server_id: &str,
        request_id: &str,
        event: &str,
        host: Option<&str>,
    ) {
        if let Err(error) =
            crate::server::actions::event_start(self.pool(), server_id, request_id, event, host)
                .await
        {
            tracing::warn!(server_id, request_id, event, %error, "could not record the event start");
        }
    }

    /// Records how an instance-action event ended.
    pub(crate) async fn event_finish(
        &self,
        server_id: &str,
        request_id: &str,
        event: &str,
        outcome: Result<(), &str>,
    ) {
        if let Err(error) =
            crate::server::actions::event_finish(self.pool(), server_id, request_id, event, outcome)
                .await
        {
            tracing::warn!(server_id, request_id, event, %error, "could not record the event result");
        }
    }
}

/// Returns a fault created now.
pub(crate) fn fault(code: u16, message: impl Into<String>, details: Option<String>) -> Fault {
    Fault {
        code,
        message: message.into(),
        details,
        created: chrono::Utc::now().timestamp(),
    }
}
