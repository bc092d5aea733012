//! Reconciling a host's servers with what its driver runs, when the
//! compute service starts: a crash or restart may have left servers in the
//! middle of a task, and instances may have stopped while no one watched.

use std::collections::BTreeMap;

use oxstack_hypervisor::PowerState;

use crate::conductor::Created;
use crate::server::store::{self, ListScope};
use crate::server::{Fault, Server, TaskState, VmState};
use crate::ComputeService;

fn sync_request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}

impl ComputeService {
    /// Reconciles the servers of `host` with its driver:
    /// - a server being deleted is deleted now;
    /// - a server being built is set to `ERROR`, what its build created is
    ///   undone, and the fault states that the agent restarted mid-build;
    /// - any other task is abandoned, since nothing carries it out any more;
    /// - an active server whose instance is gone or shut down becomes
    ///   `stopped` with power state 4 (SHUTOFF), as Nova's power sync does,
    ///   and a stopped server whose instance runs is powered off;
    /// - an instance of a deleted server is destroyed.
    ///
    /// Failures are logged; the service starts regardless.
    pub async fn sync_host(&self, host: &str) {
        let Some(driver) = self.driver_for(host) else {
            return;
        };
        let running: BTreeMap<String, PowerState> = match driver.list().await {
            Ok(instances) => instances.into_iter().collect(),
            Err(error) => {
                tracing::error!(host, %error, "could not list the driver's instances; servers not reconciled");
                return;
            }
        };
        let scope = ListScope {
            host: Some(host.to_owned()),
            ..ListScope::default()
        };
        let mut servers = match store::list(self.pool(), &scope).await {
            Ok(servers) => servers,
            Err(error) => {
                tracing::error!(host, %error, "could not list the host's servers; servers not reconciled");
                return;
            }
        };
        // Servers still waiting for a host were being scheduled by this
        // process, the only conductor of an all-in-one deployment.
        // NOTE: with several controllers this would fail another one's
        // builds; it runs for the process's own host only.
        if host == self.backends.host {
            match store::list(self.pool(), &ListScope::default()).await {
                Ok(all) => servers.extend(
                    all.into_iter()
                        .filter(|s| s.host.is_none() && s.vm_state == VmState::Building),
                ),
                Err(error) => tracing::error!(%error, "could not list unscheduled servers"),
            }
        }

        for server in &servers {
            self.sync_server(host, server, running.get(&server.id).copied())
                .await;
        }

        for (uuid, _) in running
            .iter()
            .filter(|(uuid, _)| !servers.iter().any(|s| &s.id == *uuid))
        {
            match store::get_any(self.pool(), uuid).await {
                Ok(Some(server)) if server.deleted => {
                    tracing::warn!(host, server_id = %uuid, "destroying the instance of a deleted server");
                    if let Err(error) = driver.destroy(uuid).await {
                        tracing::error!(host, server_id = %uuid, %error, "could not destroy the deleted server's instance");
                    }
                }
                Ok(_) => {
                    tracing::warn!(host, server_id = %uuid, "the driver runs an instance no server of this host owns")
                }
                Err(error) => {
                    tracing::error!(host, server_id = %uuid, %error, "could not look up an instance's server")
                }
            }
        }
    }

    async fn sync_server(&self, host: &str, server: &Server, observed: Option<PowerState>) {
        let server_id = server.id.as_str();
        if server.task_state == Some(TaskState::Deleting) {
            tracing::info!(
                host,
                server_id,
                "finishing a delete interrupted by a restart"
            );
            self.delete_server(server_id, &sync_request_id()).await;
            return;
        }

        if Self::is_build_task(server.task_state) && server.vm_state == VmState::Building {
            let task = server.task_state.map(TaskState::as_str).unwrap_or_default();
            tracing::warn!(
                host,
                server_id,
                task,
                "build interrupted by a restart; setting the server to ERROR"
            );
            let user_ports: Vec<String> = server
                .requested_networks
                .iter()
                .filter_map(|nic| nic.port_id.clone())
                .collect();
            let created = Created {
                host: server.host.clone(),
                created_ports: server.created_ports.clone(),
                claimed_ports: server
                    .ports
                    .iter()
                    .filter(|p| user_ports.contains(p))
                    .cloned()
                    .collect(),
                spawned: true,
            };
            self.undo_build(server_id, &created).await;
            let at = server.host.as_deref().unwrap_or(host);
            self.set_error(
                server_id,
                Fault {
                    code: 500,
                    message: format!(
                        "The compute agent on host {at} restarted while the server was being built (task state \
                         {task}); what the build had created was removed. Delete the server and create it again."
                    ),
                    details: None,
                    created: chrono::Utc::now().timestamp(),
                },
            )
            .await;
            return;
        }

        let shut_off = PowerState::Shutdown.code();
        let (vm_state, power_state) = match (server.vm_state, observed) {
            (
                VmState::Active | VmState::Paused | VmState::Suspended,
                None | Some(PowerState::Shutdown | PowerState::Crashed),
            ) => {
                tracing::warn!(
                    host,
                    server_id,
                    ?observed,
                    "instance is gone or shut down; marking the server stopped"
                );
                (VmState::Stopped, shut_off)
            }
            (VmState::Stopped, Some(PowerState::Running | PowerState::Paused)) => {
                tracing::warn!(
                    host,
                    server_id,
                    "stopped server's instance runs; powering it off"
                );
                if let Some(driver) = self.driver_for(host) {
                    let timeout = std::time::Duration::from_secs(self.config.shutdown_timeout);
                    if let Err(error) = driver.power_off(server_id, timeout).await {
                        tracing::error!(host, server_id, %error, "could not power off the instance");
                    }
                }
                (VmState::Stopped, shut_off)
            }
            (VmState::Stopped, None) => (VmState::Stopped, shut_off),
            (state, Some(power)) => (state, power.code()),
            (state, None) => (state, server.power_state),
        };
        let unchanged = vm_state == server.vm_state
            && power_state == server.power_state
            && server.task_state.is_none();
        if unchanged {
            return;
        }
        if server.task_state.is_some() {
            tracing::warn!(host, server_id, task = ?server.task_state, "abandoning a task interrupted by a restart");
        }
        let written = store::modify(self.pool(), server_id, |stored| {
            if stored.task_state == Some(TaskState::Deleting) {
                return Err(());
            }
            stored.vm_state = vm_state;
            stored.power_state = power_state;
            stored.task_state = None;
            Ok(())
        })
        .await;
        if let Err(error) = written {
            tracing::error!(host, server_id, %error, "could not record the reconciled state");
        }
    }
}
