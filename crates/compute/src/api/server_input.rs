//! Validation of server create and update bodies, after Nova's request
//! schemas for each microversion (`nova/api/openstack/compute/schemas/
//! servers.py`): the JSON schema checks shapes and unknown keys, and the
//! checks here add the formats (UUIDs, addresses, base64, names) that the
//! schema library leaves unchecked.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use base64::Engine;
use oxstack_core::microversion::Microversion;
use oxstack_core::validate::Schema;
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

/// Nova's limits on server tags.
pub const MAX_TAG_COUNT: usize = 50;
pub const MAX_TAG_LENGTH: usize = 60;

fn invalid(field: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {field}. {reason}"
    ))
}

/// The `networks` of a create request.
#[derive(Debug, Clone, PartialEq)]
pub enum Networks {
    /// Absent (allowed before 2.37): Nova picks the one available network.
    Unset,
    /// `"auto"`: the one available network, or an error.
    Auto,
    /// `"none"`: no network interface.
    None,
    List(Vec<NetworkEntry>),
}

/// One entry of a `networks` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkEntry {
    pub network_id: Option<String>,
    pub port_id: Option<String>,
    pub fixed_ip: Option<String>,
    pub tag: Option<String>,
}

/// A validated `POST /servers` body.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub name: String,
    /// The image to boot; empty when no image was named.
    pub image_ref: String,
    pub flavor_ref: String,
    pub admin_pass: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub networks: Networks,
    /// Names or ids, deduplicated; `None` when the request named none.
    pub security_groups: Option<Vec<String>>,
    /// The request's `security_groups` as given, which the create response
    /// echoes.
    pub security_groups_raw: Option<Value>,
    pub key_name: Option<String>,
    pub user_data: Option<String>,
    pub config_drive: bool,
    pub availability_zone: Option<String>,
    pub min_count: u32,
    pub max_count: u32,
    pub return_reservation_id: bool,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub access_ipv4: String,
    pub access_ipv6: String,
    /// Block device mappings other than the image's own root disk
    /// (volumes, snapshots, blank disks), which need a block storage
    /// service.
    pub volume_mappings: usize,
    pub trusted_image_certificates: Option<Vec<String>>,
    pub host: Option<String>,
    pub hypervisor_hostname: Option<String>,
    /// Files to inject (`personality`, before 2.57).
    pub personality_files: usize,
    /// The server groups named by the `group` scheduler hint.
    pub hint_groups: Vec<String>,
}

/// A validated `PUT /servers/{id}` body; `None` leaves a field unchanged,
/// and `description: Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub access_ipv4: Option<String>,
    pub access_ipv6: Option<String>,
}

fn name_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 255})
}

fn boolean_schema() -> Value {
    json!({"type": ["boolean", "string"], "enum": [
        true, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
        false, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]})
}

fn positive_integer_schema() -> Value {
    json!({"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1, "minLength": 1})
}

fn metadata_schema() -> Value {
    json!({
        "type": "object",
        "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255}},
        "additionalProperties": false
    })
}

fn tag_schema() -> Value {
    json!({"type": "string", "pattern": "^[^,/]*$", "minLength": 1, "maxLength": MAX_TAG_LENGTH})
}

/// The microversions at which Nova's create schema changes; a request is
/// checked against the schema of the highest one at or below its version.
const CREATE_BANDS: &[(u32, u32)] = &[
    (2, 1),
    (2, 19),
    (2, 32),
    (2, 33),
    (2, 37),
    (2, 42),
    (2, 52),
    (2, 57),
    (2, 63),
    (2, 67),
    (2, 74),
];

fn create_schema_json(band: Microversion) -> Value {
    let at = |major, minor| band.at_least(major, minor);
    let mut bdm_item = json!({
        "virtual_name": {"type": "string", "maxLength": 255},
        "volume_id": {"type": "string"},
        "snapshot_id": {"type": "string"},
        "volume_size": {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1},
        "device_name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9._/-]*$"},
        "delete_on_termination": boolean_schema(),
        "no_device": {},
        "connection_info": {"type": "string", "maxLength": 16777215},
        "source_type": {"type": "string", "enum": ["volume", "image", "snapshot", "blank"]},
        "uuid": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9._-]*$"},
        "image_id": {"type": "string"},
        "destination_type": {"type": "string", "enum": ["local", "volume"]},
        "guest_format": {"type": "string", "maxLength": 255},
        "device_type": {"type": "string", "maxLength": 255},
        "disk_bus": {"type": "string", "maxLength": 255},
        "boot_index": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$"}
    });

    let legacy_bdm_item = json!({
        "type": "object",
        "properties": {
            "virtual_name": {"type": "string", "maxLength": 255},
            "volume_id": {"type": "string"},
            "snapshot_id": {"type": "string"},
            "volume_size": {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1},
            "device_name": {"type": "string", "minLength": 1, "maxLength": 255},
            "delete_on_termination": boolean_schema(),
            "no_device": {},
            "connection_info": {"type": "string", "maxLength": 16777215}
        },
        "additionalProperties": false
    });
    // Tags on BDMs exist at 2.32 only, then again from 2.42.
    if band == Microversion::new(2, 32) || at(2, 42) {
        bdm_item["tag"] = tag_schema();
    }
    if at(2, 67) {
        bdm_item["volume_type"] =
            json!({"type": ["string", "null"], "minLength": 0, "maxLength": 255});
    }

    let mut network_item = json!({
        "fixed_ip": {"type": "string"},
        "port": {"type": ["string", "null"]},
        "uuid": {"type": "string"}
    });
    if at(2, 32) && (band < Microversion::new(2, 37) || at(2, 42)) {
        network_item["tag"] = tag_schema();
    }
    let network_list = json!({
        "type": "array",
        "items": {"type": "object", "properties": network_item, "additionalProperties": false}
    });
    let networks = if at(2, 37) {
        json!({"oneOf": [network_list, {"type": "string", "enum": ["none", "auto"]}]})
    } else {
        network_list
    };

    let mut server = json!({
        "name": name_schema(),
        "imageRef": {"type": "string"},
        "flavorRef": {"type": ["string", "integer"], "minLength": 1},
        "adminPass": {"type": "string"},
        "metadata": metadata_schema(),
        "networks": networks,
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": "string"},
        "accessIPv6": {"type": "string"},
        "availability_zone": name_schema(),
        "block_device_mapping": {"type": "array", "items": legacy_bdm_item},
        "block_device_mapping_v2": {
            "type": "array",
            "items": {"type": "object", "properties": bdm_item, "additionalProperties": false}
        },
        "config_drive": boolean_schema(),
        "key_name": name_schema(),
        "min_count": positive_integer_schema(),
        "max_count": positive_integer_schema(),
        "return_reservation_id": boolean_schema(),
        "security_groups": {
            "type": "array",
            "items": {"type": "object", "properties": {"name": name_schema()}, "additionalProperties": false}
        },
        "user_data": {"type": "string", "maxLength": 65535}
    });
    if !at(2, 57) {
        server["personality"] = json!({
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "contents": {"type": "string"}},
                "additionalProperties": false
            }
        });
    }
    if at(2, 19) {
        server["description"] =
            json!({"type": ["string", "null"], "minLength": 0, "maxLength": 255});
    }
    if at(2, 52) {
        server["tags"] = json!({"type": "array", "items": tag_schema(), "maxItems": MAX_TAG_COUNT});
    }
    if at(2, 63) {
        server["trusted_image_certificates"] = json!({
            "type": ["array", "null"], "minItems": 1, "maxItems": 50, "uniqueItems": true,
            "items": {"type": "string", "minLength": 1}
        });
    }
    if at(2, 74) {
        let fqdn = json!({"type": "string", "pattern": "^[a-zA-Z0-9-._]*$", "minLength": 1, "maxLength": 255});
        server["host"] = fqdn.clone();
        server["hypervisor_hostname"] = fqdn;
    }

    let mut required = vec!["name", "flavorRef"];
    if at(2, 37) {
        required.push("networks");
    }
    // Scheduler hints are open-ended in Nova (`additionalProperties: true`).
    json!({
        "type": "object",
        "properties": {
            "server": {
                "type": "object",
                "properties": server,
                "required": required,
                "additionalProperties": false
            },
            "os:scheduler_hints": {"type": "object"},
            "OS-SCH-HNT:scheduler_hints": {"type": "object"}
        },
        "required": ["server"],
        "additionalProperties": false
    })
}

fn create_schema(version: Microversion) -> &'static Schema {
    static SCHEMAS: OnceLock<Vec<(Microversion, Schema)>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        CREATE_BANDS
            .iter()
            .map(|&(major, minor)| {
                let band = Microversion::new(major, minor);
                (band, Schema::compile(&create_schema_json(band)))
            })
            .collect()
    });
    let (_, schema) = schemas
        .iter()
        .rev()
        .find(|(band, _)| version >= *band)
        .expect("the first band is the minimum microversion");
    schema
}

fn update_schema(version: Microversion) -> &'static Schema {
    static BEFORE_219: OnceLock<Schema> = OnceLock::new();
    static FROM_219: OnceLock<Schema> = OnceLock::new();
    let build = |description: bool| {
        let mut server = json!({
            "name": name_schema(),
            "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
            "accessIPv4": {"type": "string"},
            "accessIPv6": {"type": "string"}
        });
        if description {
            server["description"] =
                json!({"type": ["string", "null"], "minLength": 0, "maxLength": 255});
        }
        Schema::compile(&json!({
            "type": "object",
            "properties": {"server": {"type": "object", "properties": server, "additionalProperties": false}},
            "required": ["server"],
            "additionalProperties": false
        }))
    };
    if version.at_least(2, 19) {
        FROM_219.get_or_init(|| build(true))
    } else {
        BEFORE_219.get_or_init(|| build(false))
    }
}

/// Checks Nova's `name` format: printable, without leading or trailing
/// whitespace.
pub fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    let trimmed = name.trim();
    if trimmed.len() != name.len() || name.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("Value {name:?} must be printable characters and cannot start or end with whitespace."),
        ));
    }
    Ok(())
}

/// Checks a description: printable characters (newlines and tabs allowed).
fn check_description(description: &str) -> Result<(), ApiError> {
    if description
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(
            "description",
            "Value must contain printable characters only.",
        ));
    }
    Ok(())
}

pub fn is_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

/// Validates an IPv4 address and returns its canonical form, which Nova
/// stores in place of what the request spelled.
fn canonical_ipv4(field: &str, value: &str) -> Result<String, ApiError> {
    value
        .parse::<Ipv4Addr>()
        .map(|ip| ip.to_string())
        .map_err(|_| invalid(field, format!("'{value}' is not a 'ipv4'")))
}

/// Validates an IPv6 address and returns its canonical (RFC 5952) form:
/// Nova stores `str(netaddr.IPAddress(value))`, so
/// `0000:0000:0000:0000:0000:babe:220.12.22.2` becomes `::babe:dc0c:1602`.
fn canonical_ipv6(field: &str, value: &str) -> Result<String, ApiError> {
    value
        .parse::<Ipv6Addr>()
        .map(|ip| ip.to_string())
        .map_err(|_| invalid(field, format!("'{value}' is not a 'ipv6'")))
}

/// Reads one of Nova's boolean spellings (`true`, `"yes"`, `"0"` …).
pub fn boolean(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "on" | "yes"),
        _ => false,
    }
}

fn count(value: Option<&Value>, field: &str) -> Result<Option<u32>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    let number = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    };
    number
        .filter(|n| *n >= 1)
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| invalid(field, format!("{value} is not a positive integer.")))
}

fn string_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Validates a create body at `version`.
pub fn parse_create(body: &Value, version: Microversion) -> Result<CreateRequest, ApiError> {
    create_schema(version).check(body)?;
    let server = body["server"]
        .as_object()
        .expect("the schema requires an object");

    let name = string_field(server, "name").unwrap_or_default();
    check_name("name", &name)?;
    let image_ref = string_field(server, "imageRef").unwrap_or_default();
    if !image_ref.is_empty() && !is_uuid(&image_ref) {
        return Err(invalid(
            "imageRef",
            format!("Value {image_ref} is not a valid UUID."),
        ));
    }
    let flavor_ref = match &server["flavorRef"] {
        Value::Number(n) => n.to_string(),
        other => flavor_id_from_href(other.as_str().unwrap_or_default()),
    };

    let metadata = server
        .get("metadata")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();

    let networks = parse_networks(server.get("networks"), version)?;

    let security_groups_raw = server.get("security_groups").cloned();
    let security_groups = security_groups_raw
        .as_ref()
        .and_then(Value::as_array)
        .map(|groups| {
            let mut names: Vec<String> = Vec::new();
            for group in groups {
                if let Some(name) = group.get("name").and_then(Value::as_str) {
                    if !name.is_empty() && !names.iter().any(|n| n == name) {
                        names.push(name.to_owned());
                    }
                }
            }
            names
        });

    // Nova decodes with Python's base64.decodebytes, which skips line
    // breaks, so user data wrapped at 76 columns (`base64` without `-w0`)
    // is valid; it is stored without them.
    let user_data = string_field(server, "user_data").map(|data| {
        data.chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect::<String>()
    });
    if let Some(data) = &user_data {
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| ApiError::bad_request("User data needs to be valid base 64."))?;
    }

    let mut access_ipv4 = string_field(server, "accessIPv4").unwrap_or_default();
    if !access_ipv4.is_empty() {
        access_ipv4 = canonical_ipv4("accessIPv4", &access_ipv4)?;
    }
    let mut access_ipv6 = string_field(server, "accessIPv6").unwrap_or_default();
    if !access_ipv6.is_empty() {
        access_ipv6 = canonical_ipv6("accessIPv6", &access_ipv6)?;
    }

    let description = if version.at_least(2, 19) {
        match server.get("description") {
            Some(Value::String(text)) => {
                check_description(text)?;
                Some(text.clone())
            }
            _ => None,
        }
    } else {
        // Before 2.19 Nova stores the name as the description.
        Some(name.clone())
    };

    let min_count = count(server.get("min_count"), "min_count")?.unwrap_or(1);
    let max_count = count(server.get("max_count"), "max_count")?.unwrap_or(min_count);
    if min_count > max_count {
        return Err(ApiError::bad_request("min_count must be <= max_count"));
    }

    let tags: Vec<String> = server
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();

    let (image_ref, volume_mappings) = root_image(server, image_ref)?;

    Ok(CreateRequest {
        name,
        image_ref,
        flavor_ref,
        admin_pass: string_field(server, "adminPass"),
        metadata,
        networks,
        security_groups,
        security_groups_raw,
        key_name: string_field(server, "key_name"),
        user_data,
        config_drive: server.get("config_drive").is_some_and(boolean),
        availability_zone: string_field(server, "availability_zone"),
        min_count,
        max_count,
        return_reservation_id: server.get("return_reservation_id").is_some_and(boolean),
        description,
        tags,
        access_ipv4,
        access_ipv6,
        volume_mappings,
        trusted_image_certificates: server
            .get("trusted_image_certificates")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            }),
        host: string_field(server, "host"),
        hypervisor_hostname: string_field(server, "hypervisor_hostname"),
        personality_files: server
            .get("personality")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        hint_groups: hint_groups(body)?,
    })
}

/// Reads the `group` scheduler hint: one server group UUID or a list.
fn hint_groups(body: &Value) -> Result<Vec<String>, ApiError> {
    let hints = body
        .get("os:scheduler_hints")
        .or_else(|| body.get("OS-SCH-HNT:scheduler_hints"));
    let groups: Vec<String> = match hints.and_then(|h| h.get("group")) {
        None => return Ok(Vec::new()),
        Some(Value::String(group)) => vec![group.clone()],
        Some(Value::Array(groups)) => groups
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(other) => {
            return Err(invalid(
                "group",
                format!("{other} is not a server group UUID or a list of them."),
            ))
        }
    };
    if let Some(bad) = groups.iter().find(|g| !is_uuid(g)) {
        return Err(invalid("group", format!("'{bad}' is not a 'uuid'")));
    }
    Ok(groups)
}

/// Returns the flavor id of a `flavorRef`, which may be a bare id or a
/// link ending in it, as Nova's `get_id_from_href` reads it.
fn flavor_id_from_href(href: &str) -> String {
    href.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(href)
        .to_owned()
}

/// Resolves the image to boot from `imageRef` and the block device
/// mappings, and counts the mappings that need a volume. OSC sends an
/// image-to-local mapping at boot index 0 beside `imageRef`; that is a
/// plain image boot.
fn root_image(server: &Map<String, Value>, image_ref: String) -> Result<(String, usize), ApiError> {
    let legacy = server
        .get("block_device_mapping")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let v2 = server
        .get("block_device_mapping_v2")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !legacy.is_empty() && !v2.is_empty() {
        return Err(ApiError::bad_request(
            "Using different block_device_mapping syntaxes is not allowed in the same request.",
        ));
    }
    let mut image = image_ref;
    let mut volume_mappings = legacy.len();
    for mapping in &v2 {
        let source = mapping
            .get("source_type")
            .and_then(Value::as_str)
            .unwrap_or("");
        let destination = mapping
            .get("destination_type")
            .and_then(Value::as_str)
            .unwrap_or("local");
        let boot_index = match mapping.get("boot_index") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        let is_root_image = source == "image" && destination == "local" && boot_index == Some(0);
        if is_root_image {
            let uuid = mapping
                .get("uuid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if image.is_empty() {
                image = uuid.to_owned();
            } else if !uuid.is_empty() && uuid != image {
                return Err(ApiError::bad_request(format!(
                    "Block device mapping is invalid: the boot image {uuid} differs from imageRef {image}."
                )));
            }
        } else {
            volume_mappings += 1;
        }
    }
    if image.is_empty() && v2.is_empty() && legacy.is_empty() {
        return Err(ApiError::bad_request("Missing imageRef attribute"));
    }
    Ok((image, volume_mappings))
}

fn parse_networks(value: Option<&Value>, version: Microversion) -> Result<Networks, ApiError> {
    let Some(value) = value else {
        return Ok(Networks::Unset);
    };
    match value {
        Value::String(text) if text == "auto" => return Ok(Networks::Auto),
        Value::String(text) if text == "none" => return Ok(Networks::None),
        _ => {}
    }
    let items = value
        .as_array()
        .expect("the schema allows a list or auto/none");
    let mut entries = Vec::with_capacity(items.len());
    let mut ports: Vec<String> = Vec::new();
    for item in items {
        let port_id = item.get("port").and_then(Value::as_str).map(str::to_owned);
        let fixed_ip = item
            .get("fixed_ip")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(ip) = &fixed_ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(invalid(
                    "fixed_ip",
                    format!("'{ip}' is not a valid IP address."),
                ));
            }
        }
        let tag = item.get("tag").and_then(Value::as_str).map(str::to_owned);
        if let Some(port) = port_id {
            if !is_uuid(&port) {
                return Err(invalid("port", format!("'{port}' is not a 'uuid'")));
            }
            if ports.contains(&port) {
                return Err(ApiError::bad_request(format!(
                    "Port ID '{port}' was specified twice: you cannot attach a port multiple times."
                )));
            }
            if let Some(ip) = fixed_ip {
                return Err(ApiError::bad_request(format!(
                    "Specified Fixed IP '{ip}' cannot be used with port '{port}': the two cannot be specified together."
                )));
            }
            ports.push(port.clone());
            entries.push(NetworkEntry {
                network_id: None,
                port_id: Some(port),
                fixed_ip: None,
                tag,
            });
            continue;
        }
        let Some(network_id) = item.get("uuid").and_then(Value::as_str) else {
            return Err(ApiError::bad_request("Bad network format: missing 'uuid'"));
        };
        if !is_uuid(network_id) {
            if version.at_least(2, 37) {
                return Err(invalid("uuid", format!("'{network_id}' is not a 'uuid'")));
            }
            return Err(ApiError::bad_request(format!(
                "Bad networks format: network uuid is not in proper format ({network_id})"
            )));
        }
        entries.push(NetworkEntry {
            network_id: Some(network_id.to_owned()),
            port_id: None,
            fixed_ip,
            tag,
        });
    }
    Ok(Networks::List(entries))
}

/// Validates an update body at `version`.
pub fn parse_update(body: &Value, version: Microversion) -> Result<UpdateRequest, ApiError> {
    update_schema(version).check(body)?;
    let server = body["server"]
        .as_object()
        .expect("the schema requires an object");
    let mut update = UpdateRequest::default();
    if let Some(name) = string_field(server, "name") {
        check_name("name", &name)?;
        update.name = Some(name);
    }
    if let Some(description) = server.get("description") {
        let description = description.as_str().map(str::to_owned);
        if let Some(text) = &description {
            check_description(text)?;
        }
        update.description = Some(description);
    }
    if let Some(ip) = string_field(server, "accessIPv4") {
        update.access_ipv4 = Some(canonical_ipv4("accessIPv4", &ip)?);
    }
    if let Some(ip) = string_field(server, "accessIPv6") {
        update.access_ipv6 = Some(canonical_ipv6("accessIPv6", &ip)?);
    }
    Ok(update)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(minor: u32) -> Microversion {
        Microversion::new(2, minor)
    }

    fn body(server: Value) -> Value {
        json!({ "server": server })
    }

    #[test]
    fn every_band_schema_compiles() {
        for &(major, minor) in CREATE_BANDS {
            let _ = create_schema(Microversion::new(major, minor));
        }
    }

    #[test]
    fn networks_required_from_2_37() {
        let request =
            body(json!({"name": "a", "flavorRef": "1", "imageRef": uuid::Uuid::nil().to_string()}));
        assert!(parse_create(&request, v(36)).is_ok());
        assert!(parse_create(&request, v(37)).is_err());
    }

    #[test]
    fn auto_and_none_need_2_37() {
        let image = uuid::Uuid::nil().to_string();
        let request =
            body(json!({"name": "a", "flavorRef": "1", "imageRef": image, "networks": "auto"}));
        assert!(parse_create(&request, v(36)).is_err());
        assert_eq!(
            parse_create(&request, v(37)).unwrap().networks,
            Networks::Auto
        );
    }

    #[test]
    fn unknown_key_rejected() {
        let image = uuid::Uuid::nil().to_string();
        let request =
            body(json!({"name": "a", "flavorRef": "1", "imageRef": image, "colour": "red"}));
        assert!(parse_create(&request, v(1)).is_err());
    }

    #[test]
    fn description_needs_2_19() {
        let image = uuid::Uuid::nil().to_string();
        let request =
            body(json!({"name": "a", "flavorRef": "1", "imageRef": image, "description": "d"}));
        assert!(parse_create(&request, v(18)).is_err());
        assert_eq!(
            parse_create(&request, v(19))
                .unwrap()
                .description
                .as_deref(),
            Some("d")
        );
    }

    #[test]
    fn bad_user_data_rejected() {
        let image = uuid::Uuid::nil().to_string();
        let request = body(
            json!({"name": "a", "flavorRef": "1", "imageRef": image, "user_data": "not base64!"}),
        );
        let error = parse_create(&request, v(1)).unwrap_err();
        assert_eq!(error.message, "User data needs to be valid base 64.");
    }

    #[test]
    fn osc_root_mapping_is_image_boot() {
        let image = uuid::Uuid::new_v4().to_string();
        let request = body(json!({
            "name": "vm1", "imageRef": image, "flavorRef": "42", "networks": "auto",
            "block_device_mapping_v2": [{"uuid": image, "boot_index": 0, "source_type": "image",
                                         "destination_type": "local", "delete_on_termination": true}],
            "min_count": 1, "max_count": 1
        }));
        let parsed = parse_create(&request, v(85)).unwrap();
        assert_eq!(parsed.image_ref, image);
        assert_eq!(parsed.volume_mappings, 0);
    }

    #[test]
    fn min_above_max_rejected() {
        let image = uuid::Uuid::nil().to_string();
        let request = body(
            json!({"name": "a", "flavorRef": "1", "imageRef": image, "min_count": 3, "max_count": 2}),
        );
        assert!(parse_create(&request, v(1)).is_err());
    }

    #[test]
    fn name_with_edge_spaces_rejected() {
        let image = uuid::Uuid::nil().to_string();
        let request = body(json!({"name": " a", "flavorRef": "1", "imageRef": image}));
        assert!(parse_create(&request, v(1)).is_err());
    }

    #[test]
    fn flavor_link_gives_id() {
        assert_eq!(
            flavor_id_from_href("http://h/compute/v2.1/flavors/42"),
            "42"
        );
        assert_eq!(flavor_id_from_href("42"), "42");
    }
}
