//! Building a server: schedule and claim, create or take its ports and
//! bind them to the host, spawn the instance, then `ACTIVE`. A failed step
//! undoes the earlier ones and leaves the server in `ERROR` with a fault
//! that tells the user what to change.

use crate::external::{ExternalError, ImageInfo, PortInfo, PortRequest};
use crate::scheduler::{Host, ScheduleError};
use crate::server::store::{self, Modified};
use crate::server::{Fault, Server, TaskState, VmState};
use crate::ComputeService;

use super::cleanup::Created;
use super::{fault, spec};

/// Nova's event names for the two halves of a build.
const SCHEDULE_EVENT: &str = "schedule_instances";
const BUILD_EVENT: &str = "compute__do_build_and_run_instance";

/// The reason a build stopped.
enum Stop {
    /// The server was deleted, or a delete started: the delete owns it now.
    Deleted,
    /// The build failed; the server goes to `ERROR` with this fault.
    Failed(Fault),
}

impl From<Fault> for Stop {
    fn from(failure: Fault) -> Self {
        Stop::Failed(failure)
    }
}

impl From<sqlx::Error> for Stop {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "database error during the build");
        Stop::Failed(fault(500, "The build failed because the database could not be written; delete the server and try again.", Some(error.to_string())))
    }
}

impl ComputeService {
    pub(crate) async fn build(&self, server_id: &str, request_id: &str) {
        let mut created = Created::default();
        let outcome = self.run_build(server_id, request_id, &mut created).await;
        let event = if created.host.is_some() {
            BUILD_EVENT
        } else {
            SCHEDULE_EVENT
        };
        match outcome {
            Ok(()) => {}
            Err(Stop::Deleted) => {
                tracing::info!(
                    server_id,
                    "server deleted during its build; undoing the build"
                );
                self.undo_build(server_id, &created).await;
                self.event_finish(
                    server_id,
                    request_id,
                    event,
                    Err("The server was deleted during the build."),
                )
                .await;
            }
            Err(Stop::Failed(failure)) => {
                tracing::warn!(server_id, message = %failure.message, "build failed; undoing it");
                self.undo_build(server_id, &created).await;
                self.event_finish(server_id, request_id, event, Err(&failure.message))
                    .await;
                self.set_error(server_id, failure).await;
            }
        }
    }

    async fn run_build(
        &self,
        server_id: &str,
        request_id: &str,
        created: &mut Created,
    ) -> Result<(), Stop> {
        let Some(server) = store::get(self.pool(), server_id).await? else {
            return Err(Stop::Deleted);
        };
        if server.task_state == Some(TaskState::Deleting) {
            return Err(Stop::Deleted);
        }
        if server.vm_state != VmState::Building {
            tracing::warn!(
                server_id,
                vm_state = server.vm_state.as_str(),
                "server is not building; build skipped"
            );
            return Ok(());
        }

        self.event_start(server_id, request_id, SCHEDULE_EVENT, None)
            .await;
        let image = self.build_image(&server).await?;
        let host = match self.schedule(&server, &image).await {
            Ok(host) => host,
            Err(ScheduleError::NoValidHost(no_host)) => return Err(Stop::Failed(fault(500, no_host.message, None))),
            Err(ScheduleError::Failed(message)) => {
                return Err(Stop::Failed(fault(
                    500,
                    "Scheduling the server failed because of an internal error; delete the server and try again.",
                    Some(message),
                )))
            }
        };
        self.event_finish(server_id, request_id, SCHEDULE_EVENT, Ok(()))
            .await;
        created.host = Some(host.name.clone());

        let server = self.record_host(server_id, &host).await?;
        self.event_start(server_id, request_id, BUILD_EVENT, Some(&host.name))
            .await;

        let ports = self.allocate_ports(&server, &host, created).await?;
        let ports = self.bind_ports(server_id, &host, &ports).await?;

        let server = self.advance(server_id, TaskState::Spawning).await?;
        spec::check_image_fits(&server, &image)?;
        let config_drive = (server.config_drive || self.config.force_config_drive)
            .then(|| crate::metadata::config_drive_files(&server, &ports, &self.public_url));
        let spec = spec::instance_spec(&server, &image, &ports, config_drive)?;
        let Some(driver) = self.driver_for(&host.name) else {
            return Err(Stop::Failed(fault(
                500,
                format!("Host {} was chosen but this process does not run it; delete the server and try again.", host.name),
                None,
            )));
        };
        created.spawned = true;
        if let Err(error) = driver.spawn(&spec).await {
            return Err(Stop::Failed(fault(
                500,
                format!(
                    "The hypervisor on host {} failed to start the server: {error}",
                    host.name
                ),
                None,
            )));
        }

        self.finish_build(server_id).await?;
        self.event_finish(server_id, request_id, BUILD_EVENT, Ok(()))
            .await;
        tracing::info!(server_id, host = %host.name, "server built");
        Ok(())
    }

    /// Returns the image to boot, checked to be usable.
    async fn build_image(&self, server: &Server) -> Result<ImageInfo, Stop> {
        if server.image_id.is_empty() {
            return Err(Stop::Failed(fault(
                400,
                "Booting from a volume is not supported yet; create the server from an image.",
                None,
            )));
        }
        let image = self
            .backends
            .images
            .image_for_host(&server.image_id)
            .await
            .map_err(|error| {
                Stop::Failed(fault(
                    500,
                    format!(
                        "Fetching image {} failed: {}",
                        server.image_id, error.message
                    ),
                    None,
                ))
            })?;
        let Some(image) = image else {
            return Err(Stop::Failed(fault(
                400,
                format!(
                    "Image {} could not be found: it was deleted after the server was created. Create the server \
                     with another image.",
                    server.image_id
                ),
                None,
            )));
        };
        if image.status != "active" {
            return Err(Stop::Failed(fault(
                400,
                format!(
                    "Image {} is {}, not active; wait until its upload finished or choose another image.",
                    image.id, image.status
                ),
                None,
            )));
        }
        Ok(image)
    }

    /// Records the chosen host and moves the server to `networking`.
    async fn record_host(&self, server_id: &str, host: &Host) -> Result<Server, Stop> {
        self.write(server_id, |server| {
            server.host = Some(host.name.clone());
            server.node = Some(host.node.clone());
            server.availability_zone = Some(host.availability_zone.clone());
            server.task_state = Some(TaskState::Networking);
        })
        .await
    }

    /// Moves the server to task state `task`.
    async fn advance(&self, server_id: &str, task: TaskState) -> Result<Server, Stop> {
        self.write(server_id, |server| server.task_state = Some(task))
            .await
    }

    async fn finish_build(&self, server_id: &str) -> Result<Server, Stop> {
        let now = chrono::Utc::now().timestamp();
        self.write(server_id, |server| {
            server.vm_state = VmState::Active;
            server.task_state = None;
            server.power_state = oxstack_hypervisor::PowerState::Running.code();
            server.launched_at = Some(now);
            server.fault = None;
        })
        .await
    }

    /// Applies `change` unless the server was deleted or a delete started.
    async fn write(
        &self,
        server_id: &str,
        mut change: impl FnMut(&mut Server),
    ) -> Result<Server, Stop> {
        let written = store::modify(self.pool(), server_id, |server| {
            if server.task_state == Some(TaskState::Deleting) {
                return Err(());
            }
            change(server);
            Ok(())
        })
        .await?;
        match written {
            Modified::Saved(server) => Ok(server),
            Modified::NotFound | Modified::Refused(()) => Err(Stop::Deleted),
        }
    }

    /// Creates a port for each requested network and takes each port the
    /// user passed in, recording each one on the server as it is made.
    async fn allocate_ports(
        &self,
        server: &Server,
        host: &Host,
        created: &mut Created,
    ) -> Result<Vec<PortInfo>, Stop> {
        let device_owner = format!("compute:{}", host.availability_zone);
        let mut ports = Vec::with_capacity(server.requested_networks.len());
        for nic in &server.requested_networks {
            let (port, made) = if let Some(port_id) = &nic.port_id {
                let port = self
                    .backends
                    .networks
                    .claim_port(port_id, &server.id, &device_owner)
                    .await
                    .map_err(|error| {
                        port_failure(format!("Attaching port {port_id} failed"), &error)
                    })?;
                created.claimed_ports.push(port.id.clone());
                (port, false)
            } else if let Some(network_id) = &nic.network_id {
                let request = PortRequest {
                    project_id: server.project_id.clone(),
                    network_id: network_id.clone(),
                    fixed_ip: nic.fixed_ip.clone(),
                    security_group_ids: server.security_group_ids.clone(),
                    device_id: server.id.clone(),
                    device_owner: device_owner.clone(),
                };
                let port = self
                    .backends
                    .networks
                    .create_port(&request)
                    .await
                    .map_err(|error| {
                        port_failure(
                            format!("Creating a port on network {network_id} failed"),
                            &error,
                        )
                    })?;
                created.created_ports.push(port.id.clone());
                (port, true)
            } else {
                continue;
            };
            tracing::info!(server_id = %server.id, port_id = %port.id, created = made, "port allocated");
            let port_id = port.id.clone();
            self.write(&server.id, |stored| {
                if made && !stored.created_ports.contains(&port_id) {
                    stored.created_ports.push(port_id.clone());
                }
                if !stored.ports.contains(&port_id) {
                    stored.ports.push(port_id.clone());
                }
            })
            .await?;
            ports.push(port);
        }
        Ok(ports)
    }

    /// Binds every port to the host. A binding failure's message, which
    /// names the setting to fix, becomes the fault as the network service
    /// wrote it.
    async fn bind_ports(
        &self,
        server_id: &str,
        host: &Host,
        ports: &[PortInfo],
    ) -> Result<Vec<PortInfo>, Stop> {
        let mut bound = Vec::with_capacity(ports.len());
        for port in ports {
            match self.backends.networks.bind_port(&port.id, &host.name).await {
                Ok(port) => bound.push(port),
                Err(error) => {
                    tracing::warn!(server_id, port_id = %port.id, host = %host.name, %error, "port binding failed");
                    return Err(Stop::Failed(fault(500, error.message, None)));
                }
            }
        }
        Ok(bound)
    }
}

fn port_failure(context: String, error: &ExternalError) -> Stop {
    Stop::Failed(fault(500, format!("{context}: {}", error.message), None))
}
