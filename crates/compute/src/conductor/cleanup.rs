//! Freeing what a server has outside its own record: the instance on its
//! host, its ports and its placement claim. Every step is idempotent, so a
//! build's undo and a concurrent delete may both run it.

use std::collections::BTreeSet;

use oxstack_placement::ConsumerId;

use crate::external::ExternalErrorKind;
use crate::server::Server;
use crate::ComputeService;

/// The resources a build has created so far, undone when it fails or the server is
/// deleted under it.
#[derive(Debug, Default)]
pub(crate) struct Created {
    /// The host the server was scheduled to.
    pub host: Option<String>,
    /// Ports the build created; deleted on undo.
    pub created_ports: Vec<String>,
    /// Ports the user passed in that the build took; released on undo.
    pub claimed_ports: Vec<String>,
    /// Whether the driver was requested to spawn the instance.
    pub spawned: bool,
}

impl ComputeService {
    /// Undoes a build: destroys the instance, deletes the ports it created,
    /// releases the ports it took and its placement claim. Failures are
    /// logged; the server's delete repeats these steps.
    pub(crate) async fn undo_build(&self, server_id: &str, created: &Created) {
        if let (true, Some(host)) = (created.spawned, created.host.as_deref()) {
            self.destroy_on_host(server_id, host).await.ok();
        }
        for port in &created.created_ports {
            self.delete_port_logged(server_id, port).await;
        }
        for port in &created.claimed_ports {
            self.release_port_logged(server_id, port).await;
        }
        if let Err(error) = self
            .backends
            .placement
            .release(&ConsumerId(server_id.to_owned()))
            .await
        {
            tracing::warn!(server_id, %error, "could not release the server's placement claim");
        }
    }

    /// Frees everything `server` holds: the instance on its host, the ports
    /// it created (deleted), the ports the user passed in (released) and
    /// its placement claim. An error means the server must not be marked
    /// deleted yet, because something would be left behind.
    pub(crate) async fn release_server(&self, server: &Server) -> Result<(), String> {
        if let Some(host) = server.host.as_deref() {
            self.destroy_on_host(&server.id, host).await?;
        }

        let user_ports: BTreeSet<&str> = server
            .requested_networks
            .iter()
            .filter_map(|nic| nic.port_id.as_deref())
            .collect();
        let mut ports: Vec<String> = server.ports.clone();
        ports.extend(server.created_ports.iter().cloned());
        // A build that stopped between creating a port and recording it
        // leaves a port that only names the server as its device.
        let on_device: Option<BTreeSet<String>> = match self
            .backends
            .networks
            .ports_for_device(&server.id, &server.project_id)
            .await
        {
            Ok(found) => Some(found.into_iter().map(|port| port.id).collect()),
            Err(error) => {
                tracing::warn!(server_id = %server.id, %error, "could not list the server's ports");
                None
            }
        };
        ports.extend(on_device.iter().flatten().cloned());
        let mut seen = BTreeSet::new();
        for port in ports {
            if !seen.insert(port.clone()) {
                continue;
            }
            if !user_ports.contains(port.as_str()) {
                self.delete_port_logged(&server.id, &port).await;
                continue;
            }
            // A user's port is released only while this server holds it: a
            // build that failed to take it must not free another server's.
            let held = match &on_device {
                Some(device_ports) => device_ports.contains(&port),
                None => server.ports.contains(&port),
            };
            if held {
                self.release_port_logged(&server.id, &port).await;
            }
        }

        self.backends
            .placement
            .release(&ConsumerId(server.id.clone()))
            .await
            .map_err(|error| {
                format!("releasing the server's resources in placement failed: {error}")
            })?;
        Ok(())
    }

    /// Destroys the instance on `host`. A host this process does not run
    /// has nothing to destroy here.
    pub(crate) async fn destroy_on_host(&self, server_id: &str, host: &str) -> Result<(), String> {
        let Some(driver) = self.driver_for(host) else {
            // NOTE: with one process per deployment every host is local; a
            // server on a host this process does not run is left to it.
            tracing::warn!(
                server_id,
                host,
                "host is not run by this process; its instance is not destroyed"
            );
            return Ok(());
        };
        driver.destroy(server_id).await.map_err(|error| {
            tracing::error!(server_id, host, %error, "destroying the instance failed");
            format!("The hypervisor on host {host} failed to destroy the instance: {error}")
        })
    }

    async fn delete_port_logged(&self, server_id: &str, port: &str) {
        if let Err(error) = self.backends.networks.delete_port(port).await {
            tracing::warn!(server_id, port_id = port, %error, "could not delete the server's port");
        }
    }

    async fn release_port_logged(&self, server_id: &str, port: &str) {
        match self.backends.networks.release_port(port).await {
            Ok(()) => {}
            Err(error) if error.kind == ExternalErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(server_id, port_id = port, %error, "could not release the user's port")
            }
        }
    }
}
