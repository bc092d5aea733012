//! In-memory stand-ins for the image and network services, for the compute
//! crate's own tests: they keep just enough state to boot servers on the
//! fake driver.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use oxstack_core::AuthContext;
use oxstack_hypervisor::FakeDriver;
use oxstack_placement::PlacementService;
use oxstack_store::Store;

use crate::external::{
    ExternalError, ExternalErrorKind, FixedIp, ImageApi, ImageChangeError, ImageInfo, NetworkApi,
    NetworkInfo, PortInfo, PortRequest, SecurityGroupInfo, SecurityGroupRuleInfo,
};
use crate::Backends;

/// Images tests add by hand.
#[derive(Default)]
pub struct FakeImages {
    pub images: Mutex<BTreeMap<String, ImageInfo>>,
}

impl FakeImages {
    /// Adds an active, public qcow2 image of 16 MiB.
    pub fn add(&self, id: &str, name: &str) -> ImageInfo {
        let image = ImageInfo {
            id: id.to_owned(),
            name: Some(name.to_owned()),
            status: "active".to_owned(),
            disk_format: Some("qcow2".to_owned()),
            container_format: Some("bare".to_owned()),
            size: Some(16 << 20),
            virtual_size: Some(64 << 20),
            min_disk: 0,
            min_ram: 0,
            properties: BTreeMap::new(),
            // The fake driver never reads the image, so the file need not
            // exist; a build only needs a path to hand to the driver.
            path: Some(std::path::PathBuf::from(format!("fake-images/{id}"))),
            created_at: 1_700_000_000,
            updated_at: 1_700_000_000,
        };
        self.images
            .lock()
            .unwrap()
            .insert(id.to_owned(), image.clone());
        image
    }
}

#[async_trait::async_trait]
impl ImageApi for FakeImages {
    async fn get_image(
        &self,
        _caller: &AuthContext,
        id: &str,
    ) -> Result<Option<ImageInfo>, ExternalError> {
        Ok(self.images.lock().unwrap().get(id).cloned())
    }

    async fn image_for_host(&self, id: &str) -> Result<Option<ImageInfo>, ExternalError> {
        Ok(self.images.lock().unwrap().get(id).cloned())
    }

    /// Supports the `name`, `status`, `limit` and `marker` keys and extra
    /// properties by name; images are in id order.
    async fn list_images(
        &self,
        _caller: &AuthContext,
        query: &[(String, String)],
    ) -> Result<Vec<ImageInfo>, ExternalError> {
        let images = self.images.lock().unwrap();
        let mut limit = usize::MAX;
        let mut marker = None;
        let mut selected: Vec<ImageInfo> = Vec::new();
        for (key, value) in query {
            match key.as_str() {
                "limit" => {
                    limit = value.parse().map_err(|_| {
                        ExternalError::new(
                            ExternalErrorKind::BadRequest,
                            format!("invalid limit {value}"),
                        )
                    })?
                }
                "marker" => marker = Some(value.clone()),
                _ => {}
            }
        }
        if let Some(marker) = &marker {
            if !images.contains_key(marker) {
                return Err(ExternalError::new(
                    ExternalErrorKind::BadRequest,
                    format!("No image found with ID {marker}"),
                ));
            }
        }
        for image in images.values() {
            if marker.as_ref().is_some_and(|marker| image.id <= *marker) {
                continue;
            }
            let matches = query.iter().all(|(key, value)| match key.as_str() {
                "limit" | "marker" => true,
                "name" => image.name.as_deref() == Some(value.as_str()),
                "status" => image.status == *value,
                other => image.properties.get(other) == Some(value),
            });
            if matches {
                selected.push(image.clone());
            }
        }
        selected.truncate(limit);
        Ok(selected)
    }

    async fn delete_image(&self, _caller: &AuthContext, id: &str) -> Result<(), ImageChangeError> {
        match self.images.lock().unwrap().remove(id) {
            Some(_) => Ok(()),
            None => Err(ExternalError::new(
                ExternalErrorKind::NotFound,
                format!("No image found with ID {id}"),
            )
            .into()),
        }
    }

    async fn replace_image_properties(
        &self,
        _caller: &AuthContext,
        id: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<ImageInfo, ImageChangeError> {
        let mut images = self.images.lock().unwrap();
        let image = images.get_mut(id).ok_or_else(|| {
            ExternalError::new(
                ExternalErrorKind::NotFound,
                format!("No image found with ID {id}"),
            )
        })?;
        image.properties = properties.clone();
        Ok(image.clone())
    }
}

/// Networks with one /24 each; ports take the next free address.
#[derive(Default)]
pub struct FakeNetworks {
    pub networks: Mutex<BTreeMap<String, NetworkInfo>>,
    pub ports: Mutex<Vec<PortInfo>>,
    /// Hosts whose bindings fail, with the failure's message.
    pub unbindable: Mutex<BTreeMap<String, String>>,
    /// Router id to the ids of the networks it has an interface on.
    pub routers: Mutex<BTreeMap<String, Vec<String>>>,
    /// Security group id to name, besides `default` (whose id is
    /// `default`), visible to every project.
    pub security_groups: Mutex<BTreeMap<String, String>>,
    next_address: Mutex<u32>,
}

impl FakeNetworks {
    /// Adds a network owned by `project_id` (shared when `shared`).
    pub fn add(&self, id: &str, name: &str, project_id: &str, shared: bool) -> NetworkInfo {
        let network = NetworkInfo {
            id: id.to_owned(),
            name: name.to_owned(),
            project_id: project_id.to_owned(),
            mtu: 1450,
            shared,
            external: false,
            has_subnets: true,
        };
        self.networks
            .lock()
            .unwrap()
            .insert(id.to_owned(), network.clone());
        network
    }

    fn visible(network: &NetworkInfo, caller: &AuthContext) -> bool {
        network.shared
            || caller.project_id.as_deref() == Some(network.project_id.as_str())
            || caller.roles.iter().any(|r| r == "admin")
    }

    fn port_mut<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut PortInfo) -> T,
    ) -> Result<T, ExternalError> {
        let mut ports = self.ports.lock().unwrap();
        let port = ports.iter_mut().find(|p| p.id == id).ok_or_else(|| {
            ExternalError::new(
                ExternalErrorKind::NotFound,
                format!("Port {id} could not be found."),
            )
        })?;
        Ok(change(port))
    }
}

#[async_trait::async_trait]
impl NetworkApi for FakeNetworks {
    async fn get_network(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<Option<NetworkInfo>, ExternalError> {
        Ok(self
            .networks
            .lock()
            .unwrap()
            .get(id)
            .filter(|n| Self::visible(n, caller))
            .cloned())
    }

    /// Applies Neutron's default rule: the network's owner or an admin.
    async fn may_choose_address(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<bool, ExternalError> {
        let owner = self
            .networks
            .lock()
            .unwrap()
            .get(id)
            .map(|network| network.project_id.clone());
        Ok(caller.has_role("admin") || owner.is_some() && owner == caller.project_id)
    }

    async fn available_networks(
        &self,
        caller: &AuthContext,
    ) -> Result<Vec<NetworkInfo>, ExternalError> {
        Ok(self
            .networks
            .lock()
            .unwrap()
            .values()
            .filter(|n| {
                !n.external
                    && (n.shared || caller.project_id.as_deref() == Some(n.project_id.as_str()))
            })
            .cloned()
            .collect())
    }

    async fn security_group_ids(
        &self,
        _caller: &AuthContext,
        names: &[String],
    ) -> Result<Vec<String>, ExternalError> {
        let groups = self.security_groups.lock().unwrap();
        names
            .iter()
            .map(|name| match name.as_str() {
                "default" => Ok("default".to_owned()),
                other => groups
                    .iter()
                    .find(|(id, group_name)| *id == other || *group_name == other)
                    .map(|(id, _)| id.clone())
                    .ok_or_else(|| {
                        ExternalError::new(
                            ExternalErrorKind::NotFound,
                            format!("Security group {other} not found."),
                        )
                    }),
            })
            .collect()
    }

    async fn set_port_security_groups(
        &self,
        port_id: &str,
        group_ids: &[String],
    ) -> Result<PortInfo, ExternalError> {
        self.port_mut(port_id, |port| {
            port.security_group_ids = group_ids.to_vec();
            port.clone()
        })
    }

    async fn security_groups(
        &self,
        group_ids: &[String],
    ) -> Result<Vec<SecurityGroupInfo>, ExternalError> {
        let groups = self.security_groups.lock().unwrap();
        Ok(group_ids
            .iter()
            .filter_map(|id| {
                let name = if id == "default" {
                    Some("default".to_owned())
                } else {
                    groups.get(id).cloned()
                }?;
                // The fake `default` group admits what its members send, as
                // Neutron's default group does for IPv4.
                let rules = if id == "default" {
                    vec![SecurityGroupRuleInfo {
                        id: "default-ingress".to_owned(),
                        direction: "ingress".to_owned(),
                        protocol: None,
                        port_range_min: None,
                        port_range_max: None,
                        remote_ip_prefix: None,
                        remote_group_id: Some("default".to_owned()),
                    }]
                } else {
                    Vec::new()
                };
                Some(SecurityGroupInfo {
                    id: id.clone(),
                    name,
                    description: String::new(),
                    project_id: String::new(),
                    rules,
                })
            })
            .collect())
    }

    async fn security_group_names(
        &self,
        group_ids: &[String],
    ) -> Result<Vec<String>, ExternalError> {
        let groups = self.security_groups.lock().unwrap();
        Ok(group_ids
            .iter()
            .map(|id| groups.get(id).cloned().unwrap_or_else(|| id.clone()))
            .collect())
    }

    async fn get_port(
        &self,
        _caller: &AuthContext,
        id: &str,
    ) -> Result<Option<PortInfo>, ExternalError> {
        Ok(self
            .ports
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.id == id)
            .cloned())
    }

    async fn create_port(&self, request: &PortRequest) -> Result<PortInfo, ExternalError> {
        let network = self
            .networks
            .lock()
            .unwrap()
            .get(&request.network_id)
            .cloned()
            .ok_or_else(|| {
                ExternalError::new(
                    ExternalErrorKind::NotFound,
                    format!("Network {} could not be found.", request.network_id),
                )
            })?;
        let n = {
            let mut next = self.next_address.lock().unwrap();
            *next += 1;
            *next
        };
        let ip = request
            .fixed_ip
            .clone()
            .unwrap_or_else(|| format!("10.0.{}.{}", n / 250, n % 250 + 2));
        let port = PortInfo {
            id: uuid::Uuid::new_v4().to_string(),
            network_id: network.id.clone(),
            network_name: network.name.clone(),
            project_id: request.project_id.clone(),
            mac_address: format!("fa:16:3e:00:{:02x}:{:02x}", n / 256, n % 256),
            fixed_ips: vec![FixedIp {
                subnet_id: format!("{}-subnet", network.id),
                ip_address: ip,
                ip_version: 4,
                cidr: "10.0.0.0/16".to_owned(),
                gateway_ip: Some("10.0.0.1".to_owned()),
                dns_nameservers: Vec::new(),
                host_routes: Vec::new(),
                enable_dhcp: true,
            }],
            floating_ips: Vec::new(),
            mtu: network.mtu,
            device_id: request.device_id.clone(),
            device_owner: request.device_owner.clone(),
            status: "DOWN".to_owned(),
            security_group_ids: request.security_group_ids.clone(),
            binding_host: String::new(),
            vif_type: "unbound".to_owned(),
        };
        self.ports.lock().unwrap().push(port.clone());
        Ok(port)
    }

    async fn claim_port(
        &self,
        port_id: &str,
        device_id: &str,
        device_owner: &str,
    ) -> Result<PortInfo, ExternalError> {
        self.port_mut(port_id, |port| {
            if !port.device_id.is_empty() && port.device_id != device_id {
                return Err(ExternalError::new(
                    ExternalErrorKind::Conflict,
                    format!("Port {port_id} is still in use."),
                ));
            }
            port.device_id = device_id.to_owned();
            port.device_owner = device_owner.to_owned();
            Ok(port.clone())
        })?
    }

    async fn bind_port(&self, port_id: &str, host: &str) -> Result<PortInfo, ExternalError> {
        let failure = self.unbindable.lock().unwrap().get(host).cloned();
        self.port_mut(port_id, |port| {
            port.binding_host = host.to_owned();
            match failure {
                Some(message) => {
                    port.vif_type = "binding_failed".to_owned();
                    Err(ExternalError::new(ExternalErrorKind::Conflict, message))
                }
                None => {
                    port.vif_type = "bridge".to_owned();
                    port.status = "ACTIVE".to_owned();
                    Ok(port.clone())
                }
            }
        })?
    }

    async fn release_port(&self, port_id: &str) -> Result<(), ExternalError> {
        self.port_mut(port_id, |port| {
            port.device_id.clear();
            port.device_owner.clear();
            port.binding_host.clear();
            port.vif_type = "unbound".to_owned();
            port.status = "DOWN".to_owned();
        })
    }

    async fn delete_port(&self, port_id: &str) -> Result<(), ExternalError> {
        self.ports.lock().unwrap().retain(|p| p.id != port_id);
        Ok(())
    }

    async fn ports_for_device(
        &self,
        device_id: &str,
        project_id: &str,
    ) -> Result<Vec<PortInfo>, ExternalError> {
        Ok(self
            .ports
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.device_id == device_id && p.project_id == project_id)
            .cloned()
            .collect())
    }

    async fn port_by_ip(
        &self,
        network_id: &str,
        ip: &str,
    ) -> Result<Option<PortInfo>, ExternalError> {
        Ok(self
            .ports
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.network_id == network_id && p.fixed_ips.iter().any(|f| f.ip_address == ip))
            .cloned())
    }

    async fn router_network_ids(&self, router_id: &str) -> Result<Vec<String>, ExternalError> {
        Ok(self
            .routers
            .lock()
            .unwrap()
            .get(router_id)
            .cloned()
            .unwrap_or_default())
    }
}

/// The fakes behind a [`Backends`], kept so tests can add images and
/// networks and look at the driver.
pub struct TestBackends {
    pub images: Arc<FakeImages>,
    pub networks: Arc<FakeNetworks>,
    pub driver: Arc<FakeDriver>,
    pub backends: Backends,
}

/// Backends over the fakes and a placement service on `store`, for host
/// `host`.
pub async fn backends(store: Store, host: &str) -> TestBackends {
    let images = Arc::new(FakeImages::default());
    let networks = Arc::new(FakeNetworks::default());
    let driver = Arc::new(FakeDriver::new());
    let placement = Arc::new(
        PlacementService::open(store, "http://127.0.0.1:5000".to_owned())
            .await
            .expect("placement opens on the test store"),
    );
    let backends = Backends {
        images: images.clone(),
        networks: networks.clone(),
        placement,
        driver: driver.clone(),
        host: host.to_owned(),
    };
    TestBackends {
        images,
        networks,
        driver,
        backends,
    }
}
