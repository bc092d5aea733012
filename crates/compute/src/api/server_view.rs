//! The JSON shapes of a server at each microversion, after Nova's
//! `views/servers.py`. They are the summary of lists, the detailed view of show and
//! detail lists (also update and rebuild from 2.75), the smaller view
//! update returned before 2.75, and the create response.

use oxstack_core::microversion::Microversion;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha224};

use crate::external::PortInfo;
use crate::server::{state, Server, VmState};
use crate::ComputeService;

/// Formats unix seconds as Nova's `isotime` (`2025-01-01T00:00:00Z`).
pub fn iso_time(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Formats unix seconds as Nova writes `OS-SRV-USG` times: no zone, with
/// microseconds.
pub fn usage_time(seconds: i64) -> String {
    micros_time(seconds.saturating_mul(1_000_000))
}

/// Formats unix microseconds as Nova writes instance action times.
pub fn micros_time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S.%6f")
        .to_string()
}

/// Returns Nova's `hostId`: SHA-224 of the project id followed by the host
/// name, or "" when the server has no host.
pub fn host_id(project_id: &str, host: Option<&str>) -> String {
    match host {
        Some(host) if !host.is_empty() => {
            let digest = Sha224::digest(format!("{project_id}{host}").as_bytes());
            hex::encode(digest)
        }
        _ => String::new(),
    }
}

/// Returns the `self` and `bookmark` links of server `id`.
pub fn links(service: &ComputeService, id: &str) -> Value {
    let path = format!("servers/{id}");
    json!([
        {"rel": "self", "href": service.v21_url(&path)},
        {"rel": "bookmark", "href": service.bookmark_url(&path)},
    ])
}

/// Renders the list summary: id, name and links.
pub fn summary(service: &ComputeService, server: &Server) -> Value {
    json!({"id": server.id, "name": server.name, "links": links(service, &server.id)})
}

/// Groups the addresses of `ports` by network name. `extended` adds the
/// type and MAC keys of Nova's `OS-EXT-IPS` extensions, which every view
/// but the pre-2.75 update response carries.
pub fn addresses(ports: &[PortInfo], extended: bool) -> Map<String, Value> {
    let mut networks: Map<String, Value> = Map::new();
    for port in ports {
        let entries = networks
            .entry(port.network_name.clone())
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .expect("every entry is an array");
        let mut add = |address: &str, version: u8, kind: &str| {
            let mut entry = json!({"version": version, "addr": address});
            if extended {
                entry["OS-EXT-IPS:type"] = json!(kind);
                entry["OS-EXT-IPS-MAC:mac_addr"] = json!(port.mac_address);
            }
            entries.push(entry);
        };
        for fixed in &port.fixed_ips {
            add(&fixed.ip_address, fixed.ip_version, "fixed");
        }
        for floating in &port.floating_ips {
            let version = if floating.contains(':') { 6 } else { 4 };
            add(floating, version, "floating");
        }
    }
    networks
}

/// The optional parts of the detailed view that a response carries.
#[derive(Debug, Clone, Copy)]
pub struct Shown {
    /// Whether to show everything `GET /servers/{id}` shows. It is false only
    /// for update and rebuild before 2.75.
    pub full: bool,
    /// `OS-EXT-SRV-ATTR:*` (admin by default policy).
    pub extended_attributes: bool,
    /// The `host_status` shown from 2.16 (to admins by default policy).
    pub host_status: Option<&'static str>,
    /// `server_groups` from 2.71: show, update and rebuild, never lists.
    pub server_groups: bool,
    /// The flavor's `extra_specs` from 2.47.
    pub flavor_extra_specs: bool,
    /// The fault's `details` even for a 500 fault (admins).
    pub fault_details: bool,
}

/// Renders the detailed view of `server` with its `ports` at `version`.
pub fn detail(
    service: &ComputeService,
    server: &Server,
    ports: &[PortInfo],
    version: Microversion,
    shown: Shown,
) -> Value {
    let status = state::server_status(server);
    let mut body = Map::new();
    body.insert("id".into(), json!(server.id));
    body.insert("name".into(), json!(server.name));
    body.insert("status".into(), json!(status));
    body.insert("tenant_id".into(), json!(server.project_id));
    body.insert("user_id".into(), json!(server.user_id));
    body.insert("metadata".into(), json!(server.metadata));
    body.insert(
        "hostId".into(),
        json!(host_id(&server.project_id, server.host.as_deref())),
    );
    body.insert("created".into(), json!(iso_time(server.created_at)));
    body.insert("updated".into(), json!(iso_time(server.updated_at)));
    body.insert("image".into(), image(service, server));
    body.insert(
        "flavor".into(),
        flavor(service, server, version, shown.flavor_extra_specs),
    );
    // Nova hides addresses while the server builds.
    let addresses = if server.vm_state == VmState::Building {
        Map::new()
    } else {
        addresses(ports, shown.full)
    };
    body.insert("addresses".into(), Value::Object(addresses));
    body.insert("links".into(), links(service, &server.id));
    body.insert("accessIPv4".into(), json!(server.access_ipv4));
    body.insert("accessIPv6".into(), json!(server.access_ipv6));
    // NOTE: `AUTO` disk configuration is accepted at create but not
    // carried out (the guest's partition is not grown), so servers show
    // `MANUAL`.
    body.insert("OS-DCF:diskConfig".into(), json!("MANUAL"));
    if matches!(status, "ERROR" | "DELETED") {
        if let Some(fault) = &server.fault {
            let mut rendered = json!({
                "code": fault.code,
                "created": iso_time(fault.created),
                "message": fault.message,
            });
            if let Some(details) = &fault.details {
                if shown.fault_details || fault.code != 500 {
                    rendered["details"] = json!(details);
                }
            }
            body.insert("fault".into(), rendered);
        }
    }
    if matches!(
        status,
        "ACTIVE" | "BUILD" | "REBUILD" | "RESIZE" | "VERIFY_RESIZE" | "MIGRATING"
    ) {
        body.insert("progress".into(), json!(server.progress));
    }
    if shown.full {
        insert_full_parts(&mut body, server, ports, version);
    }
    if shown.extended_attributes {
        insert_extended_attributes(&mut body, server, version);
    }
    insert_versioned_parts(&mut body, server, version, shown);
    Value::Object(body)
}

fn image(service: &ComputeService, server: &Server) -> Value {
    if server.image_id.is_empty() {
        return json!("");
    }
    json!({
        "id": server.image_id,
        "links": [{"rel": "bookmark", "href": service.bookmark_url(&format!("images/{}", server.image_id))}],
    })
}

fn flavor(
    service: &ComputeService,
    server: &Server,
    version: Microversion,
    extra_specs: bool,
) -> Value {
    let flavor = &server.flavor;
    if version.at_least(2, 47) {
        let mut body = json!({
            "vcpus": flavor.vcpus,
            "ram": flavor.ram,
            "disk": flavor.disk,
            "ephemeral": flavor.ephemeral,
            "swap": flavor.swap,
            "original_name": flavor.name,
        });
        if extra_specs {
            body["extra_specs"] = json!(flavor.extra_specs);
        }
        return body;
    }
    json!({
        "id": flavor.id,
        "links": [{"rel": "bookmark", "href": service.bookmark_url(&format!("flavors/{}", flavor.id))}],
    })
}

/// Adds the keys that `GET /servers/{id}` shows beyond the basic view: zone, config drive,
/// key, usage times, security groups, states and volumes.
fn insert_full_parts(
    body: &mut Map<String, Value>,
    server: &Server,
    ports: &[PortInfo],
    version: Microversion,
) {
    let zone = server.availability_zone.clone().unwrap_or_default();
    body.insert("OS-EXT-AZ:availability_zone".into(), json!(zone));
    body.insert(
        "config_drive".into(),
        json!(if server.config_drive { "True" } else { "" }),
    );
    body.insert("key_name".into(), json!(server.key_name));
    body.insert(
        "OS-SRV-USG:launched_at".into(),
        json!(server.launched_at.map(usage_time)),
    );
    body.insert(
        "OS-SRV-USG:terminated_at".into(),
        json!(server.terminated_at.map(usage_time)),
    );
    // Nova reads the groups from the server's ports, so a server without
    // ports has no `security_groups` key.
    if !ports.is_empty() && !server.security_group_names.is_empty() {
        let groups: Vec<Value> = server
            .security_group_names
            .iter()
            .map(|name| json!({"name": name}))
            .collect();
        body.insert("security_groups".into(), Value::Array(groups));
    }
    body.insert(
        "OS-EXT-STS:task_state".into(),
        json!(server.task_state.map(|t| t.as_str())),
    );
    body.insert(
        "OS-EXT-STS:vm_state".into(),
        json!(server.vm_state.as_str()),
    );
    body.insert("OS-EXT-STS:power_state".into(), json!(server.power_state));
    // No volumes can be attached yet, so the list is always empty. From 2.3,
    // each entry would also carry `delete_on_termination`.
    let _ = version;
    body.insert("os-extended-volumes:volumes_attached".into(), json!([]));
}

fn insert_extended_attributes(
    body: &mut Map<String, Value>,
    server: &Server,
    version: Microversion,
) {
    body.insert("OS-EXT-SRV-ATTR:host".into(), json!(server.host));
    body.insert(
        "OS-EXT-SRV-ATTR:hypervisor_hostname".into(),
        json!(server.node),
    );
    body.insert(
        "OS-EXT-SRV-ATTR:instance_name".into(),
        json!(instance_name(&server.id)),
    );
    if version.at_least(2, 3) {
        body.insert("OS-EXT-SRV-ATTR:hostname".into(), json!(server.hostname));
        body.insert("OS-EXT-SRV-ATTR:kernel_id".into(), json!(""));
        body.insert(
            "OS-EXT-SRV-ATTR:launch_index".into(),
            json!(server.launch_index),
        );
        body.insert("OS-EXT-SRV-ATTR:ramdisk_id".into(), json!(""));
        body.insert(
            "OS-EXT-SRV-ATTR:reservation_id".into(),
            json!(server.reservation_id),
        );
        let root = server.launched_at.map(|_| "/dev/vda");
        body.insert("OS-EXT-SRV-ATTR:root_device_name".into(), json!(root));
        body.insert("OS-EXT-SRV-ATTR:user_data".into(), json!(server.user_data));
    }
}

/// Returns the hypervisor's name for the instance. Nova formats its integer row
/// id as `instance-%08x`. OxStack has no such id, so it uses the first eight
/// characters of the UUID, which are hexadecimal too.
pub fn instance_name(server_id: &str) -> String {
    let short: String = server_id.chars().take(8).collect();
    format!("instance-{short}")
}

fn insert_versioned_parts(
    body: &mut Map<String, Value>,
    server: &Server,
    version: Microversion,
    shown: Shown,
) {
    if version.at_least(2, 9) {
        body.insert("locked".into(), json!(server.locked));
    }
    if version.at_least(2, 16) {
        if let Some(host_status) = shown.host_status {
            body.insert("host_status".into(), json!(host_status));
        }
    }
    if version.at_least(2, 19) {
        body.insert("description".into(), json!(server.description));
    }
    if version.at_least(2, 26) {
        body.insert("tags".into(), json!(server.tags));
    }
    if version.at_least(2, 63) {
        body.insert("trusted_image_certificates".into(), Value::Null);
    }
    if version.at_least(2, 71) && shown.server_groups {
        let groups: Vec<&String> = server.server_group.iter().collect();
        body.insert("server_groups".into(), json!(groups));
    }
    if version.at_least(2, 73) {
        body.insert("locked_reason".into(), json!(server.locked_reason));
    }
}

/// Renders the create response: id, links, disk config and the security groups
/// the request named (`default` when none).
pub fn created(
    service: &ComputeService,
    server: &Server,
    security_groups: Option<&Value>,
    admin_pass: Option<&str>,
) -> Value {
    let groups = security_groups
        .cloned()
        .unwrap_or_else(|| json!([{"name": "default"}]));
    let mut body = json!({
        "id": server.id,
        "links": links(service, &server.id),
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": groups,
    });
    if let Some(password) = admin_pass {
        body["adminPass"] = json!(password);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_id_hashes_project_then_host() {
        // sha224("p1h1")
        let expected = format!("{:x}", Sha224::digest(b"p1h1"));
        assert_eq!(host_id("p1", Some("h1")), expected);
        assert_eq!(host_id("p1", None), "");
    }

    #[test]
    fn times_use_nova_formats() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(usage_time(4), "1970-01-01T00:00:04.000000");
    }
}
