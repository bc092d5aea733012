//! `NetworkApi` over the in-process network service.

use std::collections::HashMap;
use std::sync::Arc;

use oxstack_compute::external::{
    ExternalError, ExternalErrorKind, FixedIp, NetworkApi, NetworkInfo, PortInfo, PortRequest,
    SecurityGroupInfo, SecurityGroupRuleInfo,
};
use oxstack_core::AuthContext;
use oxstack_network::binding::BindingFailure;
use oxstack_network::inproc::DevicePort;
use oxstack_network::model::{
    Network, NetworkId, Port, PortId, SecurityGroupId, Subnet, SubnetId, ROUTER_INTERFACE,
};
use oxstack_network::NetworkService;

use super::external;

/// The network service as compute calls it, in the same process.
pub struct NeutronBackend {
    networks: Arc<NetworkService>,
}

impl NeutronBackend {
    pub fn new(networks: Arc<NetworkService>) -> Self {
        NeutronBackend { networks }
    }

    async fn network_info(&self, network: &Network) -> Result<NetworkInfo, ExternalError> {
        let (_, subnets) = self
            .networks
            .network_with_subnets(&network.id)
            .await
            .map_err(external)?
            .unwrap_or_else(|| (network.clone(), Vec::new()));
        Ok(NetworkInfo {
            id: network.id.to_string(),
            name: network.name.clone(),
            project_id: network.project_id.to_string(),
            mtu: mtu(network),
            shared: network.shared,
            external: network.external,
            has_subnets: !subnets.is_empty(),
        })
    }

    /// Builds compute's view of `port`: its addresses with their subnets'
    /// settings, its floating IPs and its network's name and MTU.
    async fn port_info(&self, port: Port) -> Result<PortInfo, ExternalError> {
        let (network, subnets) = self
            .networks
            .network_with_subnets(&port.network_id)
            .await
            .map_err(external)?
            .ok_or_else(|| {
                ExternalError::new(
                    ExternalErrorKind::NotFound,
                    format!(
                        "Network {} of port {} could not be found.",
                        port.network_id, port.id
                    ),
                )
            })?;
        let subnets: HashMap<&SubnetId, &Subnet> = subnets.iter().map(|s| (&s.id, s)).collect();
        let fixed_ips = port
            .fixed_ips
            .iter()
            .filter_map(|fixed| {
                let subnet = subnets.get(&fixed.subnet_id)?;
                Some(FixedIp {
                    subnet_id: subnet.id.to_string(),
                    ip_address: fixed.ip_address.to_string(),
                    ip_version: subnet.ip_version,
                    cidr: subnet.cidr.to_string(),
                    gateway_ip: subnet.gateway_ip.map(|ip| ip.to_string()),
                    dns_nameservers: subnet.dns_nameservers.clone(),
                    host_routes: subnet
                        .host_routes
                        .iter()
                        .map(|route| (route.destination.clone(), route.nexthop.clone()))
                        .collect(),
                    enable_dhcp: subnet.enable_dhcp,
                })
            })
            .collect();
        let floating_ips = self
            .networks
            .floating_ips_of_port(&port.id)
            .await
            .map_err(external)?
            .into_iter()
            .map(|fip| fip.floating_ip_address.to_string())
            .collect();
        Ok(PortInfo {
            id: port.id.to_string(),
            network_id: port.network_id.to_string(),
            network_name: network.name.clone(),
            project_id: port.project_id.to_string(),
            mac_address: port.mac_address,
            fixed_ips,
            floating_ips,
            mtu: mtu(&network),
            device_id: port.device_id,
            device_owner: port.device_owner,
            status: port.status,
            security_group_ids: port
                .security_groups
                .iter()
                .map(|id| id.to_string())
                .collect(),
            binding_host: port.binding.host_id,
            vif_type: port.binding.vif_type,
        })
    }

    async fn load_port(&self, port_id: &PortId) -> Result<PortInfo, ExternalError> {
        let port = self
            .networks
            .get_port(port_id)
            .await
            .map_err(external)?
            .ok_or_else(|| port_not_found(port_id))?;
        self.port_info(port).await
    }
}

fn mtu(network: &Network) -> u32 {
    u32::try_from(network.mtu).unwrap_or(0)
}

fn port_not_found(id: &PortId) -> ExternalError {
    ExternalError::new(
        ExternalErrorKind::NotFound,
        format!("Port {id} could not be found."),
    )
}

#[async_trait::async_trait]
impl NetworkApi for NeutronBackend {
    async fn get_network(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<Option<NetworkInfo>, ExternalError> {
        let network = self
            .networks
            .visible_network(caller, &NetworkId::new(id))
            .await
            .map_err(external)?;
        match network {
            Some(network) => Ok(Some(self.network_info(&network).await?)),
            None => Ok(None),
        }
    }

    async fn may_choose_address(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<bool, ExternalError> {
        self.networks
            .may_choose_address(caller, &NetworkId::new(id))
            .await
            .map_err(external)
    }

    async fn available_networks(
        &self,
        caller: &AuthContext,
    ) -> Result<Vec<NetworkInfo>, ExternalError> {
        let networks = self
            .networks
            .bootable_networks(caller)
            .await
            .map_err(external)?;
        let mut infos = Vec::with_capacity(networks.len());
        for network in &networks {
            infos.push(self.network_info(network).await?);
        }
        Ok(infos)
    }

    async fn security_group_ids(
        &self,
        caller: &AuthContext,
        names: &[String],
    ) -> Result<Vec<String>, ExternalError> {
        let Some(project_id) = caller.project_id.as_deref() else {
            return Err(ExternalError::new(
                ExternalErrorKind::BadRequest,
                "Security groups are looked up in the caller's project; use a project-scoped token.",
            ));
        };
        let ids = self
            .networks
            .resolve_security_groups(project_id, names)
            .await
            .map_err(external)?;
        Ok(ids.into_iter().map(|id| id.to_string()).collect())
    }

    async fn set_port_security_groups(
        &self,
        port_id: &str,
        group_ids: &[String],
    ) -> Result<PortInfo, ExternalError> {
        let ids: Vec<SecurityGroupId> = group_ids.iter().map(SecurityGroupId::new).collect();
        let port = self
            .networks
            .set_port_security_groups(&PortId::new(port_id), &ids)
            .await
            .map_err(external)?;
        self.port_info(port).await
    }

    async fn security_group_names(
        &self,
        group_ids: &[String],
    ) -> Result<Vec<String>, ExternalError> {
        let ids: Vec<SecurityGroupId> = group_ids.iter().map(SecurityGroupId::new).collect();
        let names = self
            .networks
            .security_group_names(&ids)
            .await
            .map_err(external)?;
        Ok(ids
            .iter()
            .map(|id| names.get(id).cloned().unwrap_or_else(|| id.to_string()))
            .collect())
    }

    async fn security_groups(
        &self,
        group_ids: &[String],
    ) -> Result<Vec<SecurityGroupInfo>, ExternalError> {
        let ids: Vec<SecurityGroupId> = group_ids.iter().map(SecurityGroupId::new).collect();
        let groups = self
            .networks
            .security_groups_with_rules(&ids)
            .await
            .map_err(external)?;
        Ok(groups
            .into_iter()
            .map(|(group, rules)| SecurityGroupInfo {
                id: group.id.to_string(),
                name: group.name,
                description: group.description,
                project_id: group.project_id.to_string(),
                rules: rules
                    .into_iter()
                    .map(|rule| SecurityGroupRuleInfo {
                        id: rule.id.to_string(),
                        direction: rule.direction,
                        protocol: rule.protocol,
                        port_range_min: rule.port_range_min,
                        port_range_max: rule.port_range_max,
                        remote_ip_prefix: rule.remote_ip_prefix,
                        remote_group_id: rule.remote_group_id.map(|id| id.to_string()),
                    })
                    .collect(),
            })
            .collect())
    }

    async fn get_port(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<Option<PortInfo>, ExternalError> {
        match self
            .networks
            .visible_port(caller, &PortId::new(id))
            .await
            .map_err(external)?
        {
            Some(port) => Ok(Some(self.port_info(port).await?)),
            None => Ok(None),
        }
    }

    async fn create_port(&self, request: &PortRequest) -> Result<PortInfo, ExternalError> {
        let device_port = DevicePort {
            project_id: request.project_id.clone(),
            network_id: request.network_id.clone(),
            fixed_ip: request.fixed_ip.clone(),
            security_groups: request.security_group_ids.clone(),
            device_id: request.device_id.clone(),
            device_owner: request.device_owner.clone(),
        };
        let port = self
            .networks
            .create_device_port(&device_port)
            .await
            .map_err(external)?;
        self.port_info(port).await
    }

    async fn claim_port(
        &self,
        port_id: &str,
        device_id: &str,
        device_owner: &str,
    ) -> Result<PortInfo, ExternalError> {
        let port = self
            .networks
            .claim_port(&PortId::new(port_id), device_id, device_owner)
            .await
            .map_err(external)?;
        self.port_info(port).await
    }

    async fn bind_port(&self, port_id: &str, host: &str) -> Result<PortInfo, ExternalError> {
        let id = PortId::new(port_id);
        match self.networks.bind_port(&id, host).await {
            Ok(_) => self.load_port(&id).await,
            Err(BindingFailure::PortNotFound(id)) => Err(port_not_found(&id)),
            Err(
                failure @ (BindingFailure::Unbindable { .. } | BindingFailure::Conflict { .. }),
            ) => Err(ExternalError::new(
                ExternalErrorKind::Conflict,
                failure.to_string(),
            )),
            Err(failure @ BindingFailure::Database(_)) => {
                tracing::error!(port_id, host, error = %failure, "binding the port failed");
                Err(ExternalError::new(
                    ExternalErrorKind::Unavailable,
                    format!("Binding port {port_id} to host {host} failed in the network service; retry."),
                ))
            }
        }
    }

    async fn release_port(&self, port_id: &str) -> Result<(), ExternalError> {
        self.networks
            .release_port(&PortId::new(port_id))
            .await
            .map_err(external)?;
        Ok(())
    }

    async fn delete_port(&self, port_id: &str) -> Result<(), ExternalError> {
        self.networks
            .delete_device_port(&PortId::new(port_id))
            .await
            .map_err(external)?;
        Ok(())
    }

    async fn ports_for_device(
        &self,
        device_id: &str,
        project_id: &str,
    ) -> Result<Vec<PortInfo>, ExternalError> {
        let ports = self
            .networks
            .ports_of_device(device_id)
            .await
            .map_err(external)?;
        let mut infos = Vec::with_capacity(ports.len());
        for port in ports
            .into_iter()
            .filter(|port| port.project_id.as_str() == project_id)
        {
            infos.push(self.port_info(port).await?);
        }
        Ok(infos)
    }

    async fn port_by_ip(
        &self,
        network_id: &str,
        ip: &str,
    ) -> Result<Option<PortInfo>, ExternalError> {
        let Ok(address) = ip.parse::<std::net::IpAddr>() else {
            return Ok(None);
        };
        let port = self
            .networks
            .port_with_address(&NetworkId::new(network_id), address)
            .await
            .map_err(external)?;
        match port {
            Some(port) => Ok(Some(self.port_info(port).await?)),
            None => Ok(None),
        }
    }

    async fn router_network_ids(&self, router_id: &str) -> Result<Vec<String>, ExternalError> {
        let ports = self
            .networks
            .ports_of_device(router_id)
            .await
            .map_err(external)?;
        let mut ids: Vec<String> = Vec::new();
        for port in ports
            .iter()
            .filter(|port| port.device_owner.starts_with(ROUTER_INTERFACE))
        {
            let id = port.network_id.to_string();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use oxstack_network::agents::AgentConfig;
    use serde_json::json;

    use super::*;
    use crate::testing::{member_of, TestNetworks};

    fn request(project: &str, network_id: &str, server: &str) -> PortRequest {
        PortRequest {
            project_id: project.to_owned(),
            network_id: network_id.to_owned(),
            fixed_ip: None,
            security_group_ids: Vec::new(),
            device_id: server.to_owned(),
            device_owner: "compute:nova".to_owned(),
        }
    }

    #[tokio::test]
    async fn port_lifecycle_through_backend() {
        let cloud = TestNetworks::start(Default::default()).await;
        let (network_id, subnet_id) = cloud.network("p1", "net1", "10.9.0.0/24", json!({})).await;
        let backend = NeutronBackend::new(cloud.service.clone());

        let port = backend
            .create_port(&request("p1", &network_id, "server-1"))
            .await
            .unwrap();
        assert_eq!(port.network_name, "net1");
        assert_eq!(port.mtu, 1450, "a VXLAN network's MTU");
        assert_eq!(port.project_id, "p1");
        assert_eq!(port.vif_type, "unbound");
        assert_eq!(port.security_group_ids.len(), 1, "the default group");
        let fixed = &port.fixed_ips[0];
        assert_eq!(fixed.subnet_id, subnet_id);
        assert_eq!(fixed.ip_address, "10.9.0.2");
        assert_eq!(fixed.cidr, "10.9.0.0/24");
        assert_eq!(fixed.gateway_ip.as_deref(), Some("10.9.0.1"));
        assert_eq!(fixed.dns_nameservers, ["192.0.2.53"]);
        assert_eq!(fixed.ip_version, 4);
        assert!(fixed.enable_dhcp);

        // No agent has reported from the host: the binding fails with the
        // network service's message, which states what to start.
        let failed = backend.bind_port(&port.id, "node-9").await.unwrap_err();
        assert_eq!(failed.kind, ExternalErrorKind::Conflict);
        assert!(
            failed.message.contains("Binding failed for port"),
            "{}",
            failed.message
        );
        assert!(
            failed
                .message
                .contains("no network agent has reported from node-9"),
            "{}",
            failed.message
        );

        let agent = AgentConfig {
            tunneling_ip: Some("192.0.2.1".into()),
            tunnel_types: vec!["vxlan".into()],
            ..AgentConfig::default()
        };
        cloud.service.report_agent("node-9", agent).await.unwrap();
        let bound = backend.bind_port(&port.id, "node-9").await.unwrap();
        assert_eq!(bound.vif_type, "bridge");
        assert_eq!(bound.binding_host, "node-9");
        assert_eq!(bound.status, "ACTIVE");

        let listed = backend.ports_for_device("server-1", "p1").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, port.id);
        assert!(
            backend
                .ports_for_device("server-1", "p2")
                .await
                .unwrap()
                .is_empty(),
            "another project's view of server-1 lists p1's port"
        );
        let by_ip = backend
            .port_by_ip(&network_id, "10.9.0.2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_ip.id, port.id);
        assert!(backend
            .port_by_ip(&network_id, "10.9.0.99")
            .await
            .unwrap()
            .is_none());
        assert!(backend
            .port_by_ip(&network_id, "not-an-address")
            .await
            .unwrap()
            .is_none());

        backend.delete_port(&port.id).await.unwrap();
        backend.delete_port(&port.id).await.unwrap();
        assert!(backend
            .ports_for_device("server-1", "p1")
            .await
            .unwrap()
            .is_empty());
        let missing = backend.bind_port(&port.id, "node-9").await.unwrap_err();
        assert_eq!(missing.kind, ExternalErrorKind::NotFound);
    }

    #[tokio::test]
    async fn requested_address_and_errors_keep_their_kind() {
        let cloud = TestNetworks::start(Default::default()).await;
        let (network_id, _) = cloud.network("p1", "net1", "10.9.0.0/24", json!({})).await;
        let backend = NeutronBackend::new(cloud.service.clone());

        let mut requested = request("p1", &network_id, "server-1");
        requested.fixed_ip = Some("10.9.0.77".to_owned());
        let port = backend.create_port(&requested).await.unwrap();
        assert_eq!(port.fixed_ips[0].ip_address, "10.9.0.77");
        let taken = backend.create_port(&requested).await.unwrap_err();
        assert_eq!(taken.kind, ExternalErrorKind::Conflict, "{}", taken.message);
        requested.fixed_ip = Some("10.10.0.1".to_owned());
        let outside = backend.create_port(&requested).await.unwrap_err();
        assert_eq!(
            outside.kind,
            ExternalErrorKind::BadRequest,
            "{}",
            outside.message
        );

        let claimed = backend
            .claim_port(&port.id, "server-1", "compute:nova")
            .await
            .unwrap();
        assert_eq!(claimed.device_id, "server-1");
        let in_use = backend
            .claim_port(&port.id, "server-2", "compute:nova")
            .await
            .unwrap_err();
        assert_eq!(in_use.kind, ExternalErrorKind::Conflict);
        backend.release_port(&port.id).await.unwrap();
        let released = backend
            .get_port(&member_of("p1"), &port.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(released.device_id, "");
        assert_eq!(released.binding_host, "");
    }

    #[tokio::test]
    async fn visibility_follows_the_caller() {
        let cloud = TestNetworks::start(Default::default()).await;
        let (own, _) = cloud.network("p1", "own", "10.1.0.0/24", json!({})).await;
        let (shared, _) = cloud
            .network("p2", "shared", "10.2.0.0/24", json!({"shared": true}))
            .await;
        let (other, _) = cloud.network("p2", "other", "10.3.0.0/24", json!({})).await;
        let (external, _) = cloud
            .network("p2", "ext", "10.4.0.0/24", json!({"router:external": true}))
            .await;
        let empty = cloud
            .admin
            .create(
                "networks",
                "network",
                json!({"name": "empty", "project_id": "p1"}),
            )
            .await
            .unwrap();
        let backend = NeutronBackend::new(cloud.service.clone());
        let caller = member_of("p1");

        let seen = backend.get_network(&caller, &own).await.unwrap().unwrap();
        assert!(seen.has_subnets);
        assert_eq!(seen.mtu, 1450);
        assert!(
            !backend
                .get_network(&caller, &empty)
                .await
                .unwrap()
                .unwrap()
                .has_subnets
        );
        assert!(backend
            .get_network(&caller, &shared)
            .await
            .unwrap()
            .is_some());
        assert!(
            backend
                .get_network(&caller, &other)
                .await
                .unwrap()
                .is_none(),
            "another project's network"
        );
        assert!(
            backend
                .get_network(&caller, &external)
                .await
                .unwrap()
                .unwrap()
                .external
        );

        let mut available: Vec<String> = backend
            .available_networks(&caller)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        available.sort();
        assert_eq!(available, ["empty", "own", "shared"]);

        // Only the network's owner may choose an address on it.
        assert!(backend.may_choose_address(&caller, &own).await.unwrap());
        assert!(!backend.may_choose_address(&caller, &shared).await.unwrap());
        let owner = member_of("p2");
        assert!(backend.may_choose_address(&owner, &shared).await.unwrap());

        let port = backend
            .create_port(&request("p2", &other, "server-9"))
            .await
            .unwrap();
        assert!(
            backend.get_port(&caller, &port.id).await.unwrap().is_none(),
            "another project's port"
        );
        assert!(backend
            .get_port(&member_of("p2"), &port.id)
            .await
            .unwrap()
            .is_some());

        let groups = backend
            .security_group_ids(&caller, &["default".to_owned()])
            .await
            .unwrap();
        assert_eq!(groups.len(), 1);
        let unknown = backend
            .security_group_ids(&caller, &["web".to_owned()])
            .await
            .unwrap_err();
        assert_eq!(unknown.kind, ExternalErrorKind::NotFound);
        assert!(unknown.message.contains("web"), "{}", unknown.message);
    }

    #[tokio::test]
    async fn port_security_groups_through_backend() {
        let cloud = TestNetworks::start(Default::default()).await;
        let (network_id, _) = cloud.network("p1", "net1", "10.9.0.0/24", json!({})).await;
        let web = cloud
            .admin
            .create(
                "security-groups",
                "security_group",
                json!({"name": "web", "project_id": "p1"}),
            )
            .await
            .unwrap();
        let backend = NeutronBackend::new(cloud.service.clone());
        let port = backend
            .create_port(&request("p1", &network_id, "server-1"))
            .await
            .unwrap();
        let default = port.security_group_ids[0].clone();

        let groups = [default.clone(), web.clone()];
        let updated = backend
            .set_port_security_groups(&port.id, &groups)
            .await
            .unwrap();
        assert_eq!(updated.security_group_ids.len(), 2);
        assert!(updated.security_group_ids.contains(&web));
        let names = backend
            .security_group_names(&[web.clone(), default.clone(), "no-such-group".to_owned()])
            .await
            .unwrap();
        assert_eq!(names, ["web", "default", "no-such-group"]);
        let details = backend
            .security_groups(&[web.clone(), "no-such-group".to_owned()])
            .await
            .unwrap();
        assert_eq!(details.len(), 1);
        assert_eq!(details[0].name, "web");
        assert_eq!(details[0].project_id, "p1");
        assert!(
            !details[0].rules.is_empty(),
            "a new group has its egress rules"
        );

        let cleared = backend
            .set_port_security_groups(&port.id, &[])
            .await
            .unwrap();
        assert!(cleared.security_group_ids.is_empty());
        let missing = backend
            .set_port_security_groups("no-such-port", &[])
            .await
            .unwrap_err();
        assert_eq!(missing.kind, ExternalErrorKind::NotFound);
    }

    #[tokio::test]
    async fn router_networks_are_its_interfaces() {
        let cloud = TestNetworks::start(Default::default()).await;
        let (network_id, subnet_id) = cloud.network("p1", "net1", "10.9.0.0/24", json!({})).await;
        let router = cloud
            .admin
            .create(
                "routers",
                "router",
                json!({"name": "r1", "project_id": "p1"}),
            )
            .await
            .unwrap();
        cloud
            .admin
            .call(
                axum::http::Method::PUT,
                &format!("routers/{router}/add_router_interface"),
                Some(json!({"subnet_id": subnet_id})),
            )
            .await
            .unwrap();
        let backend = NeutronBackend::new(cloud.service.clone());
        assert_eq!(
            backend.router_network_ids(&router).await.unwrap(),
            [network_id]
        );
        assert!(backend
            .router_network_ids("no-such-router")
            .await
            .unwrap()
            .is_empty());
    }
}
