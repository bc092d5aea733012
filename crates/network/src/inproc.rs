//! Operations for callers inside the process: the compute service's
//! network adapter, the host's network agent and the bootstrap. Each one
//! runs the code path of the matching API request (`POST /v2.0/ports`,
//! `PUT`, `DELETE`), with a [`Caller`] built for the purpose, so in-process
//! ports get the same checks, IPAM, MACs and default security group.

use std::collections::{BTreeMap, BTreeSet};

use oxstack_core::{ApiError, AuthContext};
use serde_json::{json, Map, Value};

use crate::api::{db_error, networks, port_update, ports};
use crate::db;
use crate::model::{
    FloatingIp, Network, NetworkId, Port, PortId, ProjectId, Router, SecurityGroupId,
    SecurityGroupRule, Subnet, FLOATINGIP_OWNER, ROUTER_GATEWAY, ROUTER_INTERFACE,
};
use crate::policy::{network_target, Caller};
use crate::NetworkService;

/// A port another service creates for one of its devices (a server).
#[derive(Clone, Debug, Default)]
pub struct DevicePort {
    /// The project that owns the port: the server's.
    pub project_id: String,
    pub network_id: String,
    /// A requested fixed IP address; `None` takes a free one.
    pub fixed_ip: Option<String>,
    /// Security group ids of the port's project; empty applies the
    /// project's `default` group.
    pub security_groups: Vec<String>,
    pub device_id: String,
    pub device_owner: String,
}

/// A network as the network agent of one host plugs it in.
#[derive(Clone, Debug)]
pub struct HostNetwork {
    pub network: Network,
    pub subnets: Vec<Subnet>,
    /// The network's DHCP port when this host serves its DHCP.
    pub dhcp_port: Option<Port>,
    /// The network's ports that have a tap or a DHCP lease: all of them when
    /// this host serves its DHCP (dnsmasq needs every address), else those
    /// bound to this host. Ports of routers and floating IPs are left out.
    pub ports: Vec<Port>,
}

/// A router the network agent of one host runs.
#[derive(Clone, Debug)]
pub struct HostRouter {
    pub router: Router,
    pub gateway_port: Option<Port>,
    pub interface_ports: Vec<Port>,
    /// Floating IPs associated with a port, through this router.
    pub floating_ips: Vec<FloatingIp>,
}

/// Everything the network agent of one host plugs in.
#[derive(Clone, Debug, Default)]
pub struct HostView {
    /// Networks with a port bound to the host or a router it runs, by id.
    pub networks: Vec<HostNetwork>,
    pub routers: Vec<HostRouter>,
    /// The rules of every security group of the ports in `networks`.
    pub rules: BTreeMap<SecurityGroupId, Vec<SecurityGroupRule>>,
    /// The fixed IPs and allowed address pair addresses of the member ports
    /// of each of those groups, anywhere in the cloud, for rules with a
    /// `remote_group_id`.
    pub members: BTreeMap<SecurityGroupId, Vec<String>>,
}

/// Returns whether `port` belongs to a router or floating IP, which the
/// agent plugs as part of the router.
fn is_router_owned(port: &Port) -> bool {
    [ROUTER_INTERFACE, ROUTER_GATEWAY, FLOATINGIP_OWNER]
        .iter()
        .any(|owner| port.device_owner.starts_with(owner))
}

impl NetworkService {
    /// Returns what `host` must plug in: the networks with a port bound to
    /// it (a server's, or the DHCP port it serves) and, on the host that
    /// serves DHCP, every router with the networks it touches.
    pub async fn host_view(&self, host: &str) -> Result<HostView, ApiError> {
        let networks = db::networks::list(self.pool()).await.map_err(db_error)?;
        let subnets = db::subnets::list(self.pool()).await.map_err(db_error)?;
        let mut ports = db::ports::list(self.pool()).await.map_err(db_error)?;
        ports.sort_by(|a, b| a.id.cmp(&b.id));

        // NOTE: routers run on the host that serves DHCP, the single network
        // node of an all-in-one cloud; there is no L3 agent scheduling.
        let routers = if self.dhcp_host().await?.as_deref() == Some(host) {
            self.host_routers(&ports).await?
        } else {
            Vec::new()
        };
        let router_networks: BTreeSet<&NetworkId> = routers
            .iter()
            .flat_map(|r| r.gateway_port.iter().chain(&r.interface_ports))
            .map(|port| &port.network_id)
            .collect();

        let mut view = HostView::default();
        for network in networks {
            let mut network_ports: Vec<Port> = ports
                .iter()
                .filter(|port| port.network_id == network.id && !is_router_owned(port))
                .cloned()
                .collect();
            let bound_here = network_ports
                .iter()
                .any(|port| port.binding.host_id == host);
            if !bound_here && !router_networks.contains(&network.id) {
                continue;
            }
            let dhcp_index = network_ports.iter().position(|port| {
                port.device_owner == crate::dhcp::DHCP_OWNER && port.binding.host_id == host
            });
            let dhcp_port = dhcp_index.map(|index| network_ports.remove(index));
            if dhcp_port.is_none() {
                network_ports.retain(|port| port.binding.host_id == host);
            }
            view.networks.push(HostNetwork {
                subnets: subnets
                    .iter()
                    .filter(|subnet| subnet.network_id == network.id)
                    .cloned()
                    .collect(),
                network,
                dhcp_port,
                ports: network_ports,
            });
        }
        view.networks
            .sort_by(|a, b| a.network.id.cmp(&b.network.id));
        view.routers = routers;
        self.add_security_groups(&mut view, &ports).await?;
        Ok(view)
    }

    async fn host_routers(&self, ports: &[Port]) -> Result<Vec<HostRouter>, ApiError> {
        let routers = db::routers::list(self.pool()).await.map_err(db_error)?;
        let floating_ips = db::floatingips::list(self.pool()).await.map_err(db_error)?;
        let mut hosted: Vec<HostRouter> = routers
            .into_iter()
            .map(|router| {
                let gateway_port = router.gateway.as_ref().and_then(|(_, port_id)| {
                    ports.iter().find(|port| &port.id == port_id).cloned()
                });
                let interface_ports = ports
                    .iter()
                    .filter(|port| {
                        port.device_id == router.id.as_str()
                            && port.device_owner.starts_with(ROUTER_INTERFACE)
                    })
                    .cloned()
                    .collect();
                let floating_ips = floating_ips
                    .iter()
                    .filter(|fip| {
                        fip.router_id.as_ref() == Some(&router.id) && fip.port_id.is_some()
                    })
                    .cloned()
                    .collect();
                HostRouter {
                    router,
                    gateway_port,
                    interface_ports,
                    floating_ips,
                }
            })
            .collect();
        hosted.sort_by(|a, b| a.router.id.cmp(&b.router.id));
        Ok(hosted)
    }

    async fn add_security_groups(
        &self,
        view: &mut HostView,
        all_ports: &[Port],
    ) -> Result<(), ApiError> {
        let used: BTreeSet<SecurityGroupId> = view
            .networks
            .iter()
            .flat_map(|network| &network.ports)
            .flat_map(|port| port.security_groups.iter().cloned())
            .collect();
        if used.is_empty() {
            return Ok(());
        }
        let rules = db::security_groups::list_rules(self.pool())
            .await
            .map_err(db_error)?;
        for rule in rules {
            if used.contains(&rule.security_group_id) {
                view.rules
                    .entry(rule.security_group_id.clone())
                    .or_default()
                    .push(rule);
            }
        }
        let remote_groups: BTreeSet<SecurityGroupId> = view
            .rules
            .values()
            .flatten()
            .filter_map(|rule| rule.remote_group_id.clone())
            .collect();
        for group in remote_groups {
            let addresses: Vec<String> = all_ports
                .iter()
                .filter(|port| port.security_groups.contains(&group))
                .flat_map(|port| {
                    port.fixed_ips
                        .iter()
                        .map(|fixed| fixed.ip_address.to_string())
                        .chain(
                            port.allowed_address_pairs
                                .iter()
                                .map(|pair| pair.ip_address.clone()),
                        )
                })
                .collect();
            view.members.insert(group, addresses);
        }
        Ok(())
    }

    /// Creates a port for a device through the same path as
    /// `POST /v2.0/ports`, as an admin of the port's project.
    pub async fn create_device_port(&self, request: &DevicePort) -> Result<Port, ApiError> {
        let mut object = Map::new();
        object.insert("network_id".to_owned(), json!(request.network_id));
        object.insert("project_id".to_owned(), json!(request.project_id));
        object.insert("device_id".to_owned(), json!(request.device_id));
        object.insert("device_owner".to_owned(), json!(request.device_owner));
        if let Some(address) = &request.fixed_ip {
            object.insert("fixed_ips".to_owned(), json!([{ "ip_address": address }]));
        }
        if !request.security_groups.is_empty() {
            object.insert("security_groups".to_owned(), json!(request.security_groups));
        }
        let caller = Caller::service(&self.policy, &request.project_id);
        let (port, _) = ports::create_port(self, &caller, &object).await?;
        self.notify_change();
        Ok(port)
    }

    /// Sets the device of port `id`, as Nova does with a port a user passed
    /// in. A port that another device uses is rejected (`PortInUse`).
    pub async fn claim_port(
        &self,
        id: &PortId,
        device_id: &str,
        device_owner: &str,
    ) -> Result<Port, ApiError> {
        let mut object = Map::new();
        object.insert("device_id".to_owned(), json!(device_id));
        object.insert("device_owner".to_owned(), json!(device_owner));
        let port = self
            .update_as_service(id, &object, |port| {
                if port.device_id.is_empty() || port.device_id == device_id {
                    return Ok(());
                }
                Err(ApiError::conflict(format!(
                    "Unable to complete operation on port {id} for network {}. Port already has \
                     an attached device {}.",
                    port.network_id, port.device_id
                ))
                .with_type("PortInUse"))
            })
            .await?;
        Ok(port)
    }

    /// Clears the device and the binding of port `id`, leaving the port
    /// and its addresses to its owner, as Nova does when a server that was
    /// given an existing port goes away.
    pub async fn release_port(&self, id: &PortId) -> Result<Port, ApiError> {
        let mut object = Map::new();
        object.insert("device_id".to_owned(), json!(""));
        object.insert("device_owner".to_owned(), json!(""));
        object.insert("binding:host_id".to_owned(), json!(""));
        self.update_as_service(id, &object, |_| Ok(())).await
    }

    /// Applies `object` to port `id` through the path of `PUT
    /// /v2.0/ports/{id}`, as an admin of the port's project.
    async fn update_as_service(
        &self,
        id: &PortId,
        object: &Map<String, Value>,
        check: impl FnOnce(&Port) -> Result<(), ApiError>,
    ) -> Result<Port, ApiError> {
        let project = match db::ports::get(self.pool(), id).await.map_err(db_error)? {
            Some(port) => port.project_id,
            None => return Err(ports::not_found(id)),
        };
        let caller = Caller::service(&self.policy, project.as_str());
        let (port, _) = port_update::update_port(self, &caller, id, object, check).await?;
        self.notify_change();
        Ok(port)
    }

    /// Deletes port `id` through the path of `DELETE /v2.0/ports/{id}`,
    /// which frees its addresses. Returns false when it was already gone.
    pub async fn delete_device_port(&self, id: &PortId) -> Result<bool, ApiError> {
        let Some(port) = db::ports::get(self.pool(), id).await.map_err(db_error)? else {
            return Ok(false);
        };
        let caller = Caller::service(&self.policy, port.project_id.as_str());
        match ports::delete_port(self, &caller, id).await {
            Ok(()) => {
                self.notify_change();
                Ok(true)
            }
            Err(error) if error.error_type == Some("PortNotFound") => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Returns port `id` of any project.
    pub async fn get_port(&self, id: &PortId) -> Result<Option<Port>, ApiError> {
        db::ports::get(self.pool(), id).await.map_err(db_error)
    }

    /// Returns port `id` if the user of `auth` may see it.
    pub async fn visible_port(
        &self,
        auth: &AuthContext,
        id: &PortId,
    ) -> Result<Option<Port>, ApiError> {
        let caller = Caller::from_auth(&self.policy, auth);
        match ports::find_visible(self, &caller, id).await {
            Ok((port, _)) => Ok(Some(port)),
            Err(error) if error.error_type == Some("PortNotFound") => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Returns the ports whose `device_id` is `device_id`, oldest first.
    pub async fn ports_of_device(&self, device_id: &str) -> Result<Vec<Port>, ApiError> {
        let ports = db::ports::list(self.pool()).await.map_err(db_error)?;
        Ok(ports
            .into_iter()
            .filter(|port| port.device_id == device_id)
            .collect())
    }

    /// Returns the port on `network_id` that has the fixed address
    /// `address`, of any project.
    pub async fn port_with_address(
        &self,
        network_id: &NetworkId,
        address: std::net::IpAddr,
    ) -> Result<Option<Port>, ApiError> {
        let ports = db::ports::list(self.pool()).await.map_err(db_error)?;
        Ok(ports.into_iter().find(|port| {
            &port.network_id == network_id
                && port
                    .fixed_ips
                    .iter()
                    .any(|fixed| fixed.ip_address == address)
        }))
    }

    /// Returns the floating IPs associated with port `id`.
    pub async fn floating_ips_of_port(&self, id: &PortId) -> Result<Vec<FloatingIp>, ApiError> {
        let all = db::floatingips::list(self.pool()).await.map_err(db_error)?;
        Ok(all
            .into_iter()
            .filter(|fip| fip.port_id.as_ref() == Some(id))
            .collect())
    }

    /// Returns network `id` of any project, with its subnets.
    pub async fn network_with_subnets(
        &self,
        id: &NetworkId,
    ) -> Result<Option<(Network, Vec<Subnet>)>, ApiError> {
        let Some(network) = db::networks::get(self.pool(), id).await.map_err(db_error)? else {
            return Ok(None);
        };
        let subnets = db::subnets::list_for_network(self.pool(), id)
            .await
            .map_err(db_error)?;
        Ok(Some((network, subnets)))
    }

    /// Returns network `id` if the user of `auth` may see it.
    pub async fn visible_network(
        &self,
        auth: &AuthContext,
        id: &NetworkId,
    ) -> Result<Option<Network>, ApiError> {
        let caller = Caller::from_auth(&self.policy, auth);
        match networks::find_visible(self, &caller, id).await {
            Ok(network) => Ok(Some(network)),
            Err(error) if error.error_type == Some("NetworkNotFound") => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Returns whether the caller of `auth` may choose the fixed address of
    /// a port it creates on `network`, by the `create_port:fixed_ips:ip_address`
    /// rule. Nova creates a server's ports with the user's token, so a
    /// requested `fixed_ip` passes this rule or the boot fails.
    pub async fn may_choose_address(
        &self,
        auth: &AuthContext,
        network: &NetworkId,
    ) -> Result<bool, ApiError> {
        let caller = Caller::from_auth(&self.policy, auth);
        let network = networks::find_visible(self, &caller, network).await?;
        let project = auth.project_id.clone().unwrap_or_default();
        // The shape of `port_target` for a port not created yet.
        let target = json!({
            "project_id": project,
            "tenant_id": project,
            "network_id": network.id,
            "network_project_id": network.project_id,
            "shared": network.shared,
            "external": network.external,
            "device_owner": "compute:nova",
        });
        Ok(caller.allows(&self.policy, "create_port:fixed_ips:ip_address", &target))
    }

    /// Returns the networks a server of the project of `auth` boots on when
    /// the request names none, as Nova looks them up: the project's own
    /// networks and the shared ones, without external networks, oldest
    /// first.
    pub async fn bootable_networks(&self, auth: &AuthContext) -> Result<Vec<Network>, ApiError> {
        let caller = Caller::from_auth(&self.policy, auth);
        let project = auth.project_id.clone().unwrap_or_default();
        let all = db::networks::list(self.pool()).await.map_err(db_error)?;
        Ok(all
            .into_iter()
            .filter(|network| !network.external)
            .filter(|network| network.shared || network.project_id.as_str() == project)
            .filter(|network| caller.allows(&self.policy, "get_network", &network_target(network)))
            .collect())
    }

    /// Resolves security group names or ids of `project_id` to ids, in
    /// order, as Nova does for `security_groups` of a server. The project's
    /// `default` group is created first when it has none, as the API does
    /// on first use. A name two groups share is rejected (`Conflict`),
    /// and one that matches nothing is `SecurityGroupNotFound`.
    pub async fn resolve_security_groups(
        &self,
        project_id: &str,
        names_or_ids: &[String],
    ) -> Result<Vec<SecurityGroupId>, ApiError> {
        let project = ProjectId::new(project_id);
        crate::api::security_groups::ensure_default_group(self, &project).await?;
        let groups: Vec<_> = db::security_groups::list_groups(self.pool())
            .await
            .map_err(db_error)?
            .into_iter()
            .filter(|group| group.project_id == project)
            .collect();
        let mut resolved: Vec<SecurityGroupId> = Vec::new();
        for requested in names_or_ids {
            let id = if let Some(group) = groups.iter().find(|g| g.id.as_str() == requested) {
                group.id.clone()
            } else {
                let named: Vec<_> = groups.iter().filter(|g| &g.name == requested).collect();
                match named.as_slice() {
                    [group] => group.id.clone(),
                    [] => {
                        return Err(ApiError::not_found(format!(
                            "Security group {requested} not found for project {project_id}."
                        ))
                        .with_type("SecurityGroupNotFound"))
                    }
                    _ => {
                        return Err(ApiError::conflict(format!(
                            "Multiple security_group matches found for name '{requested}', use an \
                             ID to be more specific."
                        ))
                        .with_type("NoUniqueMatch"))
                    }
                }
            };
            if !resolved.contains(&id) {
                resolved.push(id);
            }
        }
        Ok(resolved)
    }
}

/// Security groups of a server's ports, for the compute service's
/// `addSecurityGroup` / `removeSecurityGroup` actions and its server view.
impl NetworkService {
    /// Replaces the security groups of port `id` through the path of
    /// `PUT /v2.0/ports/{id}`, as an admin of the port's project, so the
    /// API's checks (groups of the port's project, port security enabled)
    /// apply.
    pub async fn set_port_security_groups(
        &self,
        id: &PortId,
        groups: &[SecurityGroupId],
    ) -> Result<Port, ApiError> {
        let mut object = Map::new();
        let ids: Vec<&str> = groups.iter().map(|group| group.as_str()).collect();
        object.insert("security_groups".to_owned(), json!(ids));
        self.update_as_service(id, &object, |_| Ok(())).await
    }

    /// Returns the names of the security groups `ids`, by id, of any
    /// project; ids that match no group are left out.
    pub async fn security_group_names(
        &self,
        ids: &[SecurityGroupId],
    ) -> Result<BTreeMap<SecurityGroupId, String>, ApiError> {
        let groups = db::security_groups::list_groups(self.pool())
            .await
            .map_err(db_error)?;
        Ok(groups
            .into_iter()
            .filter(|group| ids.contains(&group.id))
            .map(|group| (group.id, group.name))
            .collect())
    }

    /// Returns the security groups `ids` that exist, of any project, each
    /// with its rules, in the order of `ids`.
    pub async fn security_groups_with_rules(
        &self,
        ids: &[SecurityGroupId],
    ) -> Result<Vec<(crate::model::SecurityGroup, Vec<SecurityGroupRule>)>, ApiError> {
        let groups = db::security_groups::list_groups(self.pool())
            .await
            .map_err(db_error)?;
        let mut found = Vec::new();
        for id in ids {
            let Some(group) = groups.iter().find(|group| &group.id == id) else {
                continue;
            };
            let rules = db::security_groups::rules_of(self.pool(), id)
                .await
                .map_err(db_error)?;
            found.push((group.clone(), rules));
        }
        Ok(found)
    }
}
