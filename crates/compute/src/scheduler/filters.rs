//! Host filters, in the order the scheduler runs them. Each returns why it
//! rejects a host, so a "No valid host" fault can name what emptied the list.

use super::{HostState, RequestSpec};

/// A filter: `Err` carries why the host cannot take the request.
pub trait Filter: Send + Sync {
    /// Nova's name of the filter, as faults and logs show it.
    fn name(&self) -> &'static str;
    fn check(&self, host: &HostState, request: &RequestSpec) -> Result<(), String>;
}

/// Returns, in order, the filters that run before placement is queried for
/// resources.
pub fn default_filters() -> Vec<Box<dyn Filter>> {
    vec![
        Box::new(ComputeFilter),
        Box::new(AvailabilityZoneFilter),
        Box::new(ImagePropertiesFilter),
        Box::new(ServerGroupAffinityFilter),
        Box::new(ServerGroupAntiAffinityFilter),
    ]
}

/// Keeps hosts whose `nova-compute` service is enabled and up.
pub struct ComputeFilter;

impl Filter for ComputeFilter {
    fn name(&self) -> &'static str {
        "ComputeFilter"
    }

    fn check(&self, host: &HostState, request: &RequestSpec) -> Result<(), String> {
        let name = &host.node.host;
        let Some(service) = &host.service else {
            return Err(format!("host {name} has no nova-compute service"));
        };
        if service.disabled {
            return Err(match service.disabled_reason.as_deref() {
                Some(reason) if !reason.is_empty() => format!("host {name} is disabled ({reason})"),
                _ => format!("host {name} is disabled"),
            });
        }
        if service.forced_down {
            return Err(format!("host {name} is forced down"));
        }
        if !service.is_up(request.now, request.service_down_time) {
            return Err(match service.last_seen_up {
                Some(seen) => format!(
                    "host {name} is down: its last heartbeat was {} s ago, more than service_down_time ({} s)",
                    request.now.saturating_sub(seen),
                    request.service_down_time
                ),
                None => format!("host {name} is down: it never sent a heartbeat"),
            });
        }
        Ok(())
    }
}

/// Keeps hosts in the requested availability zone. The request may name a
/// host as well (`zone:host` or `zone:host:node`), as admins do to place a
/// server on one host.
pub struct AvailabilityZoneFilter;

impl Filter for AvailabilityZoneFilter {
    fn name(&self) -> &'static str {
        "AvailabilityZoneFilter"
    }

    fn check(&self, host: &HostState, request: &RequestSpec) -> Result<(), String> {
        let Some(requested) = request
            .availability_zone
            .as_deref()
            .filter(|zone| !zone.is_empty())
        else {
            return Ok(());
        };
        let mut parts = requested.splitn(3, ':');
        let zone = parts.next().unwrap_or_default();
        let forced_host = parts.next().filter(|h| !h.is_empty());
        let forced_node = parts.next().filter(|n| !n.is_empty());
        if !zone.is_empty() && zone != host.node.availability_zone {
            return Err(format!(
                "host {} is in availability zone {}, not {zone}",
                host.node.host, host.node.availability_zone
            ));
        }
        if forced_host.is_some_and(|forced| forced != host.node.host) {
            return Err(format!("host {} is not the requested host", host.node.host));
        }
        if forced_node.is_some_and(|forced| forced != host.node.hypervisor_hostname) {
            return Err(format!(
                "node {} is not the requested node",
                host.node.hypervisor_hostname
            ));
        }
        Ok(())
    }
}

/// Keeps hosts that can run the image: its `hw_architecture`
/// (`architecture`), `img_hv_type` (`hypervisor_type`) and `hw_vm_mode`
/// (`vm_mode`) properties, when set, must match what the host runs.
pub struct ImagePropertiesFilter;

/// Returns Nova's canonical name of an architecture (`amd64` is `x86_64`).
pub fn canonical_arch(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "amd64" | "x64" | "x86-64" => "x86_64".to_owned(),
        "arm64" => "aarch64".to_owned(),
        "i386" | "i486" | "i586" | "x86" | "ia32" => "i686".to_owned(),
        _ => lower,
    }
}

fn property<'a>(request: &'a RequestSpec, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|name| request.image_properties.get(*name))
        .map(String::as_str)
        .filter(|value| !value.trim().is_empty())
}

impl Filter for ImagePropertiesFilter {
    fn name(&self) -> &'static str {
        "ImagePropertiesFilter"
    }

    fn check(&self, host: &HostState, request: &RequestSpec) -> Result<(), String> {
        let name = &host.node.host;
        if let Some(arch) = property(request, &["hw_architecture", "architecture"]) {
            let wanted = canonical_arch(arch);
            if wanted != canonical_arch(&host.node.cpu_arch) {
                return Err(format!(
                    "host {name} runs {} guests but the image's hw_architecture is {wanted}",
                    host.node.cpu_arch
                ));
            }
        }
        if let Some(hv_type) = property(request, &["img_hv_type", "hypervisor_type"]) {
            let wanted = hv_type.trim().to_ascii_lowercase();
            let virt_type = host.node.virt_type.to_ascii_lowercase();
            let mut offered = vec![
                host.node.hypervisor_type.to_ascii_lowercase(),
                virt_type.clone(),
            ];
            // A KVM host runs software-emulated (`qemu`) guests as well.
            if virt_type == "kvm" {
                offered.push("qemu".to_owned());
            }
            if !offered.contains(&wanted) {
                return Err(format!(
                    "host {name} runs {} ({}) but the image's img_hv_type is {wanted}",
                    host.node.hypervisor_type, host.node.virt_type
                ));
            }
        }
        if let Some(mode) = property(request, &["hw_vm_mode", "vm_mode"]) {
            let wanted = mode.trim().to_ascii_lowercase();
            if wanted != "hvm" && wanted != "hv" {
                return Err(format!(
                    "host {name} runs hvm guests only but the image's hw_vm_mode is {wanted}"
                ));
            }
        }
        Ok(())
    }
}

/// Keeps, for a server in an `affinity` group, the hosts that run the
/// group's other members; any host while no member has one.
// NOTE: `soft-affinity` and `soft-anti-affinity` filter nothing. Nova ranks
// hosts for them with weighers, which OxStack does not have yet, so those
// groups place servers as if they had no policy.
pub struct ServerGroupAffinityFilter;

impl Filter for ServerGroupAffinityFilter {
    fn name(&self) -> &'static str {
        "ServerGroupAffinityFilter"
    }

    fn check(&self, host: &HostState, request: &RequestSpec) -> Result<(), String> {
        let Some(group) = request.group.as_ref().filter(|g| g.policy == "affinity") else {
            return Ok(());
        };
        if group.member_hosts.is_empty() || group.member_hosts.contains(&host.node.host) {
            return Ok(());
        }
        let mut hosts = group.member_hosts.clone();
        hosts.sort();
        hosts.dedup();
        Err(format!(
            "host {} is not where the other members of affinity server group {} run ({})",
            host.node.host,
            group.id,
            hosts.join(", ")
        ))
    }
}

/// Keeps, for a server in an `anti-affinity` group, the hosts that run
/// fewer of the group's other members than its `max_server_per_host`
/// rule allows (1 without the rule).
pub struct ServerGroupAntiAffinityFilter;

impl Filter for ServerGroupAntiAffinityFilter {
    fn name(&self) -> &'static str {
        "ServerGroupAntiAffinityFilter"
    }

    fn check(&self, host: &HostState, request: &RequestSpec) -> Result<(), String> {
        let Some(group) = request
            .group
            .as_ref()
            .filter(|g| g.policy == "anti-affinity")
        else {
            return Ok(());
        };
        let on_host = group
            .member_hosts
            .iter()
            .filter(|member_host| **member_host == host.node.host)
            .count() as i64;
        if on_host < group.max_server_per_host {
            return Ok(());
        }
        Err(format!(
            "host {} already runs {on_host} member(s) of anti-affinity server group {} (max_server_per_host {})",
            host.node.host, group.id, group.max_server_per_host
        ))
    }
}
