//! DHCP ports: the port each network with a DHCP-enabled subnet gets, so
//! the DHCP server of its host has an address on every such subnet.
//!
//! Neutron's DHCP agent creates this port once the network is scheduled to
//! an agent, so a cloud without a live DHCP agent has none. OxStack's host
//! network agent serves DHCP, so a network gets its port when a network
//! agent is alive; without one (API tests without any agent) the network
//! has no DHCP port, as in Neutron.

use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use crate::api::port_input::IpRequest;
use crate::api::{db_error, port_update, ports, service_ports};
use crate::db;
use crate::model::{now, Binding, Network, NetworkId, Port, PortId, Subnet};
use crate::policy::Caller;
use crate::NetworkService;

/// The device owner of DHCP ports.
pub const DHCP_OWNER: &str = "network:dhcp";

/// Returns the device id Neutron's DHCP agent gives its port on
/// `network_id`: `dhcp`, the UUID v5 of the agent's host name in the DNS
/// namespace, `-`, the network id.
pub fn device_id(host: &str, network_id: &NetworkId) -> String {
    let host_uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, host.as_bytes());
    format!("dhcp{host_uuid}-{network_id}")
}

/// Returns the subnets of `subnets` that DHCP serves.
fn dhcp_subnets(subnets: &[Subnet]) -> Vec<&Subnet> {
    subnets.iter().filter(|subnet| subnet.enable_dhcp).collect()
}

impl NetworkService {
    /// Returns the host whose network agent serves DHCP: the first alive
    /// agent that is administratively up, by host name, or `None`.
    pub async fn dhcp_host(&self) -> Result<Option<String>, ApiError> {
        let agents = db::agents::list(self.pool()).await.map_err(db_error)?;
        let now = now();
        Ok(agents
            .into_iter()
            .find(|agent| agent.admin_state_up && agent.is_alive(now, self.config.agent_down_time))
            .map(|agent| agent.host))
    }

    /// Returns the DHCP port of `network_id`, if it has one.
    pub async fn dhcp_port(&self, network_id: &NetworkId) -> Result<Option<Port>, ApiError> {
        let ports = db::ports::list(self.pool()).await.map_err(db_error)?;
        Ok(ports
            .into_iter()
            .find(|port| &port.network_id == network_id && port.device_owner == DHCP_OWNER))
    }

    /// Gives `network_id` its DHCP port when a network agent is alive and
    /// the network has a DHCP-enabled subnet: creates the port with the
    /// first free address of each such subnet, or adds an address on each
    /// such subnet the existing port lacks. Returns the port, or `None`
    /// when the network needs none or no agent can serve it.
    pub async fn ensure_dhcp_port(&self, network_id: &NetworkId) -> Result<Option<Port>, ApiError> {
        let Some(network) = db::networks::get(self.pool(), network_id)
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        let subnets = db::subnets::list_for_network(self.pool(), network_id)
            .await
            .map_err(db_error)?;
        let served = dhcp_subnets(&subnets);
        if served.is_empty() {
            return Ok(None);
        }
        if let Some(port) = self.dhcp_port(network_id).await? {
            return self.add_dhcp_addresses(port, &served).await.map(Some);
        }
        let Some(host) = self.dhcp_host().await? else {
            tracing::debug!(network_id = %network_id, "no network agent is alive; the network gets no DHCP port yet");
            return Ok(None);
        };
        // NOTE: two subnets created at once on a network without a DHCP
        // port may each create one; the dataplane then serves the first.
        let port = self.create_dhcp_port(&network, &served, &host).await?;
        self.notify_change();
        Ok(Some(port))
    }

    /// Gives every network with a DHCP-enabled subnet its DHCP port, as
    /// Neutron schedules networks to a DHCP agent that starts, and binds the
    /// router ports that no host has bound yet to the host that runs the
    /// routers. Returns how many networks have a DHCP port afterwards.
    pub async fn schedule_dhcp(&self) -> Result<usize, ApiError> {
        self.bind_router_ports().await?;
        let subnets = db::subnets::list(self.pool()).await.map_err(db_error)?;
        let mut network_ids: Vec<NetworkId> = subnets
            .into_iter()
            .filter(|subnet| subnet.enable_dhcp)
            .map(|subnet| subnet.network_id)
            .collect();
        network_ids.sort();
        network_ids.dedup();
        let mut served = 0;
        for network_id in &network_ids {
            if self.ensure_dhcp_port(network_id).await?.is_some() {
                served += 1;
            }
        }
        Ok(served)
    }

    /// Binds the unbound ports of routers created while no network agent
    /// was alive to the host that runs the routers, as an L3 agent that
    /// starts does. A port changed meanwhile is left for the next start.
    async fn bind_router_ports(&self) -> Result<(), ApiError> {
        if self.dhcp_host().await?.is_none() {
            return Ok(());
        }
        let ports = db::ports::list(self.pool()).await.map_err(db_error)?;
        for mut port in ports {
            if !service_ports::is_router_port(&port.device_owner)
                || !port.binding.host_id.is_empty()
            {
                continue;
            }
            let Some(network) = db::networks::get(self.pool(), &port.network_id)
                .await
                .map_err(db_error)?
            else {
                continue;
            };
            service_ports::bind_to_router_host(self, &mut port, &network).await?;
            port.revision_number += 1;
            port.updated_at = now();
            if db::ports::update(self.pool(), &port)
                .await
                .map_err(db_error)?
            {
                tracing::info!(port_id = %port.id, host = %port.binding.host_id, device_id = %port.device_id,
                               "bound router port");
                self.notify_change();
            }
        }
        Ok(())
    }

    async fn create_dhcp_port(
        &self,
        network: &Network,
        served: &[&Subnet],
        host: &str,
    ) -> Result<Port, ApiError> {
        let created = now();
        let mut port = Port {
            id: PortId::generate(),
            // Neutron's DHCP agent creates the port in the network's project.
            project_id: network.project_id.clone(),
            network_id: network.id.clone(),
            name: String::new(),
            description: String::new(),
            mac_address: String::new(),
            admin_state_up: true,
            status: "DOWN".to_owned(),
            device_owner: DHCP_OWNER.to_owned(),
            device_id: device_id(host, &network.id),
            fixed_ips: Vec::new(),
            binding: Binding {
                host_id: host.to_owned(),
                vnic_type: "normal".to_owned(),
                vif_type: ports::UNBOUND.to_owned(),
                vif_details: json!({}),
                profile: json!({}),
            },
            port_security_enabled: false,
            allowed_address_pairs: Vec::new(),
            security_groups: Vec::new(),
            tags: Vec::new(),
            revision_number: 1,
            created_at: created,
            updated_at: created,
        };
        port_update::bind(self, &mut port, network).await?;
        let requests: Vec<IpRequest> = served
            .iter()
            .map(|subnet| IpRequest {
                subnet_id: Some(subnet.id.clone()),
                ip_address: None,
            })
            .collect();
        // Like ports Neutron's agents create over RPC, the DHCP port counts
        // in its project's usage but is not refused by the port quota.
        ports::store_new_port(self, &mut port, &Map::new(), None, Some(&requests), None).await?;
        let addresses: Vec<String> = port
            .fixed_ips
            .iter()
            .map(|f| f.ip_address.to_string())
            .collect();
        tracing::info!(port_id = %port.id, network_id = %network.id, host, addresses = ?addresses,
                       "created DHCP port");
        Ok(port)
    }

    async fn add_dhcp_addresses(&self, port: Port, served: &[&Subnet]) -> Result<Port, ApiError> {
        let missing: Vec<&&Subnet> = served
            .iter()
            .filter(|subnet| !port.fixed_ips.iter().any(|f| f.subnet_id == subnet.id))
            .collect();
        if missing.is_empty() {
            return Ok(port);
        }
        let mut fixed_ips: Vec<Value> = port
            .fixed_ips
            .iter()
            .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address.to_string()}))
            .collect();
        fixed_ips.extend(missing.iter().map(|subnet| json!({"subnet_id": subnet.id})));
        let mut object = Map::new();
        object.insert("fixed_ips".to_owned(), Value::Array(fixed_ips));
        let caller = Caller::service(&self.policy, port.project_id.as_str());
        let (port, _) =
            port_update::update_port(self, &caller, &port.id, &object, |_| Ok(())).await?;
        tracing::info!(port_id = %port.id, network_id = %port.network_id, "added subnets to DHCP port");
        self.notify_change();
        Ok(port)
    }
}
