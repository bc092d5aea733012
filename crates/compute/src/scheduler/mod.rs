//! The scheduler: picks a compute host for a server and claims the
//! server's resources on it in placement.
//!
//! Hosts are the registered compute nodes. The filters ([`filters`]) run
//! first. Then placement is queried for which of the remaining hosts'
//! resource providers can hold the flavor, the weighers ([`weighers`]) order
//! what is left, and the claim is made on the best host. Placement checks capacity
//! in the claim's own transaction, so when two builds race for the last
//! room on a host one claim fails, and that build tries its next host.

pub mod filters;
pub mod weighers;

use std::collections::{BTreeMap, BTreeSet};

use oxstack_placement::{CandidateRequest, ConsumerId, PlacementError, ProviderId, Resources};

use crate::external::ImageInfo;
use crate::host::records::{self, NodeRecord, ServiceRecord, COMPUTE_BINARY};
use crate::server::{FlavorSnapshot, Server};
use crate::ComputeService;

/// The parts of a request the filters and weighers look at.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// Amount by resource class, as claimed in placement.
    pub resources: Resources,
    /// `zone`, `zone:host` or `zone:host:node`, as the user requested.
    pub availability_zone: Option<String>,
    pub image_properties: BTreeMap<String, String>,
    /// Unix seconds, when the request is scheduled.
    pub now: i64,
    /// Seconds without a heartbeat after which a host is down.
    pub service_down_time: u64,
    /// The server group the server is in, for the group filters.
    pub group: Option<GroupSpec>,
}

/// A server group, with the fields the group filters read.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub id: String,
    /// `affinity`, `anti-affinity`, `soft-affinity` or `soft-anti-affinity`.
    pub policy: String,
    /// How many members one host may run under `anti-affinity`.
    pub max_server_per_host: i64,
    /// The host of each other member that has one, once per member.
    pub member_hosts: Vec<String>,
}

/// A candidate host: its node, its `nova-compute` service, and how much of
/// each resource class its provider has free.
#[derive(Debug, Clone)]
pub struct HostState {
    pub node: NodeRecord,
    pub service: Option<ServiceRecord>,
    /// Capacity (`(total - reserved) * allocation_ratio`) minus usage, by
    /// class; empty when the host has no resource provider.
    pub free_by_class: BTreeMap<String, i64>,
    /// The largest single allocation of each class (`max_unit`).
    pub max_unit: BTreeMap<String, i64>,
}

impl HostState {
    /// Free amount of `class`; 0 when the host has none.
    pub fn free(&self, class: &str) -> i64 {
        self.free_by_class.get(class).copied().unwrap_or(0)
    }
}

/// The host chosen for a server, with the server's resources claimed on
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    /// The hypervisor node name (`OS-EXT-SRV-ATTR:hypervisor_hostname`).
    pub node: String,
    pub availability_zone: String,
    pub provider: ProviderId,
}

/// No host can take the server. The message is the server's fault: it
/// names the filter that removed the last hosts and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NoValidHost {
    /// The filter that removed the last hosts (`ComputeFilter`, …); for
    /// placement, the legacy filters of the classes that were short
    /// (`RAMFilter`, `CoreFilter`, `DiskFilter`).
    pub filter: String,
    pub message: String,
}

/// The reason scheduling failed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    NoValidHost(#[from] NoValidHost),
    /// The database or placement failed, as the message describes.
    #[error("scheduling failed: {0}")]
    Failed(String),
}

impl From<sqlx::Error> for ScheduleError {
    fn from(error: sqlx::Error) -> Self {
        ScheduleError::Failed(format!("database error: {error}"))
    }
}

impl From<PlacementError> for ScheduleError {
    fn from(error: PlacementError) -> Self {
        ScheduleError::Failed(format!("placement: {error}"))
    }
}

const NO_VALID_HOST: &str = "No valid host was found.";

/// Returns the resources a flavor claims: its vCPUs, RAM, and disk (root
/// plus ephemeral plus swap, rounded up to whole GB), as Nova requests them.
/// A flavor without disk (boot from volume) claims no DISK_GB.
pub fn flavor_resources(flavor: &FlavorSnapshot) -> Resources {
    let mut resources = Resources::new();
    resources.insert("VCPU".to_owned(), flavor.vcpus.max(0));
    resources.insert("MEMORY_MB".to_owned(), flavor.ram.max(0));
    let swap_gb = (flavor.swap.max(0) + 1023) / 1024;
    let disk = flavor.disk.max(0) + flavor.ephemeral.max(0) + swap_gb;
    if disk > 0 {
        resources.insert("DISK_GB".to_owned(), disk);
    }
    resources.retain(|_, amount| *amount > 0);
    resources
}

/// Describes resources as a user reads them: `128 MiB RAM, 1 VCPU and
/// 1 GB disk`.
pub fn describe(resources: &Resources) -> String {
    let mut parts = Vec::new();
    if let Some(ram) = resources.get("MEMORY_MB") {
        parts.push(format!("{ram} MiB RAM"));
    }
    if let Some(vcpus) = resources.get("VCPU") {
        parts.push(format!("{vcpus} VCPU"));
    }
    if let Some(disk) = resources.get("DISK_GB") {
        parts.push(format!("{disk} GB disk"));
    }
    for (class, amount) in resources {
        if !matches!(class.as_str(), "MEMORY_MB" | "VCPU" | "DISK_GB") {
            parts.push(format!("{amount} {class}"));
        }
    }
    match parts.len() {
        0 => "no resources".to_owned(),
        1 => parts.remove(0),
        _ => {
            let last = parts.pop().unwrap_or_default();
            format!("{} and {last}", parts.join(", "))
        }
    }
}

fn legacy_filter(class: &str) -> &'static str {
    match class {
        "MEMORY_MB" => "RAMFilter",
        "VCPU" => "CoreFilter",
        "DISK_GB" => "DiskFilter",
        _ => "placement",
    }
}

fn describe_free(class: &str, amount: i64) -> String {
    match class {
        "MEMORY_MB" => format!("{amount} MiB RAM"),
        "VCPU" => format!("{amount} VCPU"),
        "DISK_GB" => format!("{amount} GB disk"),
        other => format!("{amount} {other}"),
    }
}

impl ComputeService {
    /// Loads every compute node with its service and free resources.
    pub async fn host_states(&self) -> Result<Vec<HostState>, ScheduleError> {
        let nodes = records::list_nodes(self.pool()).await?;
        let services: BTreeMap<String, ServiceRecord> = records::list_services(self.pool())
            .await?
            .into_iter()
            .filter(|service| service.binary == COMPUTE_BINARY)
            .map(|service| (service.host.clone(), service))
            .collect();
        let zones = crate::aggregate::host_zones(self.pool()).await?;
        let placement = &self.backends.placement;
        let mut states = Vec::with_capacity(nodes.len());
        for mut node in nodes {
            // An aggregate's zone overrides the zone the host registered in.
            if let Some(zone) = zones.get(&node.host) {
                node.availability_zone = zone.clone();
            }
            let provider = ProviderId(node.uuid.clone());
            let mut free_by_class = BTreeMap::new();
            let mut max_unit = BTreeMap::new();
            // NOTE: two placement reads per host; enough for the hosts one
            // deployment has today, not for thousands.
            match placement.inventories_get(&provider).await {
                Ok((_, inventories)) => {
                    let (_, usages) = placement.provider_usages(&provider).await?;
                    for (class, inventory) in inventories {
                        let used = usages.get(&class).copied().unwrap_or(0);
                        free_by_class.insert(class.clone(), (inventory.capacity() - used).max(0));
                        max_unit.insert(class, inventory.max_unit);
                    }
                }
                Err(PlacementError::NotFound { .. }) => {
                    tracing::warn!(host = %node.host, provider = %provider, "compute node has no resource provider");
                }
                Err(error) => return Err(error.into()),
            }
            let service = services.get(&node.host).cloned();
            states.push(HostState {
                node,
                service,
                free_by_class,
                max_unit,
            });
        }
        Ok(states)
    }

    /// Picks a host for `server`, booting `image`, and claims the server's
    /// flavor there in placement (consumer: the server id).
    pub async fn schedule(
        &self,
        server: &Server,
        image: &ImageInfo,
    ) -> Result<Host, ScheduleError> {
        let request = RequestSpec {
            resources: flavor_resources(&server.flavor),
            availability_zone: server.requested_availability_zone.clone(),
            image_properties: image.properties.clone(),
            now: chrono::Utc::now().timestamp(),
            service_down_time: self.config.service_down_time,
            group: self.group_spec(server).await?,
        };
        let hosts = self.host_states().await?;
        if hosts.is_empty() {
            return Err(NoValidHost {
                filter: "ComputeFilter".to_owned(),
                message: format!("{NO_VALID_HOST} There are no compute hosts registered."),
            }
            .into());
        }

        let remaining = run_filters(hosts, &request, &filters::default_filters())?;
        let fitting = self.fit_in_placement(remaining, &request).await?;
        let ordered = weighers::order(fitting, &weighers::default_weighers());
        self.claim_first(server, ordered, &request).await
    }

    /// Loads the server group of `server` with its other members' hosts.
    /// A group deleted since the server was accepted no longer applies.
    // NOTE: two builds of one anti-affinity group scheduled at the same
    // time each read the other as having no host, so both may land on one
    // host. Nova catches this with a late check on the compute host, which
    // OxStack does not make.
    async fn group_spec(&self, server: &Server) -> Result<Option<GroupSpec>, ScheduleError> {
        let Some(group_id) = &server.server_group else {
            return Ok(None);
        };
        let Some(group) = crate::server_group::get(self.pool(), group_id).await? else {
            return Ok(None);
        };
        let member_hosts =
            crate::server_group::member_hosts(self.pool(), group_id, &server.id).await?;
        Ok(Some(GroupSpec {
            id: group.id.clone(),
            max_server_per_host: group.max_server_per_host(),
            policy: group.policy,
            member_hosts,
        }))
    }

    /// Keeps the hosts whose provider placement offers as a candidate for
    /// the request.
    async fn fit_in_placement(
        &self,
        hosts: Vec<HostState>,
        request: &RequestSpec,
    ) -> Result<Vec<HostState>, ScheduleError> {
        if request.resources.is_empty() {
            return Ok(hosts);
        }
        let candidates = self
            .backends
            .placement
            .allocation_candidates(&CandidateRequest {
                resources: request.resources.clone(),
                ..Default::default()
            })
            .await?;
        let offered: BTreeSet<&str> = candidates.iter().map(|c| c.provider.0.as_str()).collect();
        let (fitting, rejected): (Vec<HostState>, Vec<HostState>) = hosts
            .into_iter()
            .partition(|host| offered.contains(host.node.uuid.as_str()));
        if !fitting.is_empty() {
            return Ok(fitting);
        }

        let mut filters = BTreeSet::new();
        let mut shortages = Vec::new();
        for host in &rejected {
            let mut short = Vec::new();
            for (class, amount) in &request.resources {
                let free = host.free(class);
                let max_unit = host.max_unit.get(class).copied().unwrap_or(0);
                if *amount > free || *amount > max_unit {
                    filters.insert(legacy_filter(class));
                    short.push(describe_free(class, free));
                }
            }
            if host.free_by_class.is_empty() {
                shortages.push(format!("{} reports no inventory", host.node.host));
            } else if !short.is_empty() {
                shortages.push(format!(
                    "{} has {} free",
                    host.node.host,
                    short.join(" and ")
                ));
            }
        }
        let filter = if filters.is_empty() {
            "placement".to_owned()
        } else {
            filters.into_iter().collect::<Vec<_>>().join("/")
        };
        let mut message = format!(
            "{NO_VALID_HOST} There are not enough hosts available: {filter}/placement returned no host with {} free",
            describe(&request.resources)
        );
        if !shortages.is_empty() {
            message.push_str(&format!(" ({})", summarize(&shortages)));
        }
        message.push_str(". Choose a smaller flavor, or free or add capacity.");
        Err(NoValidHost { filter, message }.into())
    }

    /// Claims the request on the first host that still has room; a host
    /// another build filled meanwhile is skipped.
    async fn claim_first(
        &self,
        server: &Server,
        ordered: Vec<HostState>,
        request: &RequestSpec,
    ) -> Result<Host, ScheduleError> {
        let consumer = ConsumerId(server.id.clone());
        let mut last_conflict = None;
        for host in ordered {
            let provider = ProviderId(host.node.uuid.clone());
            let allocations = BTreeMap::from([(provider.clone(), request.resources.clone())]);
            let claimed = if request.resources.is_empty() {
                Ok(())
            } else {
                self.backends
                    .placement
                    .claim(&consumer, &server.project_id, &server.user_id, &allocations)
                    .await
            };
            match claimed {
                Ok(()) => {
                    tracing::info!(server_id = %server.id, host = %host.node.host, "resources claimed");
                    return Ok(Host {
                        name: host.node.host.clone(),
                        node: host.node.hypervisor_hostname.clone(),
                        availability_zone: host.node.availability_zone.clone(),
                        provider,
                    });
                }
                Err(
                    conflict @ (PlacementError::CapacityExceeded { .. }
                    | PlacementError::Conflict { .. }),
                ) => {
                    tracing::info!(
                        server_id = %server.id,
                        host = %host.node.host,
                        error = %conflict,
                        "claim failed; trying the next host"
                    );
                    last_conflict = Some(conflict.to_string());
                }
                Err(error) => return Err(error.into()),
            }
        }
        let detail = last_conflict.unwrap_or_else(|| "no host was left to try".to_owned());
        Err(NoValidHost {
            filter: "placement".to_owned(),
            message: format!(
                "{NO_VALID_HOST} There are not enough hosts available: other servers took the last room on \
                 every host that fitted {} ({detail}).",
                describe(&request.resources)
            ),
        }
        .into())
    }
}

/// Joins the first few per-host reasons, so a fault stays readable when a
/// filter rejected many hosts.
fn summarize(reasons: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = reasons
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if reasons.len() > SHOWN {
        text.push_str(&format!("; and {} more hosts", reasons.len() - SHOWN));
    }
    text
}

/// Runs `filters` in order; when one removes the last hosts, the error
/// names it and why it rejected each of them.
pub fn run_filters(
    mut hosts: Vec<HostState>,
    request: &RequestSpec,
    filters: &[Box<dyn filters::Filter>],
) -> Result<Vec<HostState>, NoValidHost> {
    for filter in filters {
        let mut reasons = Vec::new();
        hosts.retain(|host| match filter.check(host, request) {
            Ok(()) => true,
            Err(reason) => {
                tracing::debug!(filter = filter.name(), host = %host.node.host, reason, "host filtered out");
                reasons.push(reason);
                false
            }
        });
        if hosts.is_empty() {
            return Err(NoValidHost {
                filter: filter.name().to_owned(),
                message: format!(
                    "{NO_VALID_HOST} {} removed all hosts: {}.",
                    filter.name(),
                    summarize(&reasons)
                ),
            });
        }
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flavor(vcpus: i64, ram: i64, disk: i64, swap: i64) -> FlavorSnapshot {
        FlavorSnapshot {
            id: "f".to_owned(),
            name: "f".to_owned(),
            vcpus,
            ram,
            disk,
            ephemeral: 0,
            swap,
            extra_specs: BTreeMap::new(),
        }
    }

    #[test]
    fn flavor_resources_omit_zero_disk() {
        let resources = flavor_resources(&flavor(1, 128, 0, 0));
        assert_eq!(resources.get("VCPU"), Some(&1));
        assert_eq!(resources.get("MEMORY_MB"), Some(&128));
        assert!(!resources.contains_key("DISK_GB"));
    }

    #[test]
    fn flavor_resources_round_swap_up() {
        let resources = flavor_resources(&flavor(2, 512, 1, 100));
        assert_eq!(resources.get("DISK_GB"), Some(&2));
    }

    #[test]
    fn summarize_caps_reasons() {
        let reasons: Vec<String> = (1..=7)
            .map(|n| format!("host node{n} is disabled"))
            .collect();
        let text = summarize(&reasons);
        assert!(
            text.starts_with("host node1 is disabled; host node2 is disabled"),
            "{text}"
        );
        assert!(!text.contains("node6"), "{text}");
        assert!(text.ends_with("; and 2 more hosts"), "{text}");
    }

    #[test]
    fn describe_lists_ram_cpu_disk() {
        let resources = flavor_resources(&flavor(1, 128, 1, 0));
        assert_eq!(describe(&resources), "128 MiB RAM, 1 VCPU and 1 GB disk");
    }
}
