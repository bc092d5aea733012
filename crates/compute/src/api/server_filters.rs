//! The query parameters of `GET /servers` and `/servers/detail`: which
//! filters a caller may use at each microversion, and how each selects
//! servers, after Nova's `_get_servers` and its database filters.

use std::collections::BTreeSet;

use oxstack_core::microversion::Microversion;
use oxstack_core::ApiError;
use regex::Regex;

use crate::external::PortInfo;
use crate::server::state::{self, StatusFilter};
use crate::server::Server;

/// Every parameter that Nova's list query schema defines. Before 2.75 others are
/// ignored; from 2.75 they are a 400.
const KNOWN: &[&str] = &[
    "user_id",
    "project_id",
    "tenant_id",
    "launch_index",
    "image_ref",
    "image",
    "kernel_id",
    "ramdisk_id",
    "hostname",
    "key_name",
    "power_state",
    "vm_state",
    "task_state",
    "host",
    "node",
    "flavor",
    "reservation_id",
    "launched_at",
    "terminated_at",
    "availability_zone",
    "name",
    "display_name",
    "description",
    "display_description",
    "locked_by",
    "uuid",
    "root_device_name",
    "config_drive",
    "access_ip_v4",
    "access_ip_v6",
    "auto_disk_config",
    "progress",
    "sort_key",
    "sort_dir",
    "all_tenants",
    "soft_deleted",
    "deleted",
    "status",
    "changes-since",
    "ip",
    "ip6",
    "created_at",
    "block_device_mapping",
    "services",
    "metadata",
    "system_metadata",
    "info_cache",
    "security_groups",
    "pci_devices",
    "limit",
    "marker",
];

/// Parameters naming joined tables, which Nova rejects with a 400.
const JOINED_TABLES: &[&str] = &[
    "block_device_mapping",
    "services",
    "metadata",
    "system_metadata",
    "info_cache",
    "security_groups",
    "pci_devices",
];

/// Returns the filters a caller without `allow_all_filters` may use at
/// `version` (Nova's `_get_server_search_options`).
fn member_filters(version: Microversion) -> Vec<&'static str> {
    let mut allowed = vec![
        "reservation_id",
        "name",
        "status",
        "image",
        "flavor",
        "ip",
        "changes-since",
        "all_tenants",
    ];
    if version.at_least(2, 5) {
        allowed.push("ip6");
    }
    if version.at_least(2, 26) {
        allowed.extend(["tags", "tags-any", "not-tags", "not-tags-any"]);
    }
    if version.at_least(2, 66) {
        allowed.push("changes-before");
    }
    if version.at_least(2, 73) {
        allowed.push("locked");
    }
    if version.at_least(2, 83) {
        allowed.extend([
            "availability_zone",
            "config_drive",
            "key_name",
            "created_at",
            "launched_at",
            "terminated_at",
            "power_state",
            "task_state",
            "vm_state",
            "progress",
            "user_id",
        ]);
    }
    allowed
}

fn known_at(key: &str, version: Microversion) -> bool {
    KNOWN.contains(&key)
        || (version.at_least(2, 26)
            && matches!(key, "tags" | "tags-any" | "not-tags" | "not-tags-any"))
        || (version.at_least(2, 66) && key == "changes-before")
        || (version.at_least(2, 73) && key == "locked")
}

/// The query of a list request, split into what selects servers and how
/// they are sorted.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub all_tenants: bool,
    /// Whether to include deleted servers; `Some(true)` lists only them.
    pub deleted: Option<bool>,
    pub filters: Vec<(String, Vec<String>)>,
    pub status: Option<StatusFilter>,
    /// A `status` filter naming no known status before 2.38: Nova lists
    /// nothing.
    pub matches_nothing: bool,
    pub sort: Vec<(String, bool)>,
}

fn truthy(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// Reads the list query at `version`. `allow_all` is the outcome of
/// `os_compute_api:servers:allow_all_filters` (admins by default);
/// everyone else has the filters Nova allows members silently dropped.
pub fn parse(
    pairs: &[(String, String)],
    version: Microversion,
    allow_all: bool,
    is_admin: bool,
) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery::default();
    let allowed = member_filters(version);
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    for (key, value) in pairs {
        if key.starts_with('_') || JOINED_TABLES.contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Invalid filter field: {key}."
            )));
        }
        if !known_at(key, version) && version.at_least(2, 75) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for query parameters {key}. Additional properties are not allowed ('{key}' was unexpected)"
            )));
        }
        match grouped.iter_mut().find(|(k, _)| k == key) {
            Some((_, values)) => values.push(value.clone()),
            None => grouped.push((key.clone(), vec![value.clone()])),
        }
    }

    let (sort_keys, sort_dirs) = sort_params(&grouped);
    query.sort = sort_order(&sort_keys, &sort_dirs, version, is_admin)?;

    for (key, values) in grouped {
        if matches!(key.as_str(), "limit" | "marker" | "sort_key" | "sort_dir") {
            continue;
        }
        if !allow_all && !allowed.contains(&key.as_str()) {
            tracing::debug!(filter = %key, "list filter not allowed to this caller; ignored");
            continue;
        }
        let last = values.last().cloned().unwrap_or_default();
        match key.as_str() {
            "all_tenants" => {
                // Nova treats a bare `all_tenants` as true.
                query.all_tenants = last.is_empty()
                    || truthy(&last).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "Invalid value '{last}' for all_tenants: use true or false."
                        ))
                    })?;
            }
            "deleted" => query.deleted = Some(truthy(&last).unwrap_or(false)),
            "status" => {
                let filter = state::filter_from_statuses(&values);
                if filter.is_empty() {
                    if version.at_least(2, 38) {
                        return Err(ApiError::bad_request("Invalid status value"));
                    }
                    query.matches_nothing = true;
                }
                if filter.vm_states == ["deleted"] {
                    if !is_admin {
                        return Err(ApiError::forbidden(
                            "Only administrators may list deleted instances",
                        ));
                    }
                    query.deleted = Some(true);
                }
                query.status = Some(filter);
            }
            _ => query.filters.push((key, values)),
        }
    }
    if !query.all_tenants {
        // Without all_tenants Nova lists the caller's project, whatever
        // project the query names.
        query
            .filters
            .retain(|(k, _)| k != "project_id" && k != "tenant_id");
    }
    check_times(&query.filters)?;
    // Without `deleted`, Nova lists live servers only, unless a
    // changes-since or changes-before filter requests recent changes,
    // deletions included.
    let asks_changes = query
        .filters
        .iter()
        .any(|(k, _)| k == "changes-since" || k == "changes-before");
    if query.deleted.is_none() && !asks_changes {
        query.deleted = Some(false);
    }
    Ok(query)
}

fn sort_params(grouped: &[(String, Vec<String>)]) -> (Vec<String>, Vec<String>) {
    let get = |name: &str| {
        grouped
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| {
                v.iter()
                    .flat_map(|s| s.split(','))
                    .map(|s| s.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    (get("sort_key"), get("sort_dir"))
}

/// Sort keys Nova accepts but ignores (before 2.75) or rejects (from 2.75).
const IGNORED_SORT_KEYS: &[&str] = &[
    "architecture",
    "cell_name",
    "cleaned",
    "default_ephemeral_device",
    "default_swap_device",
    "deleted",
    "deleted_at",
    "disable_terminate",
    "ephemeral_gb",
    "ephemeral_key_uuid",
    "id",
    "key_data",
    "launched_on",
    "locked",
    "memory_mb",
    "os_type",
    "reservation_id",
    "root_gb",
    "shutdown_terminate",
    "user_data",
    "vcpus",
    "vm_mode",
];

const SORT_KEYS: &[&str] = &[
    "access_ip_v4",
    "access_ip_v6",
    "auto_disk_config",
    "availability_zone",
    "config_drive",
    "created_at",
    "display_description",
    "display_name",
    "host",
    "hostname",
    "image_ref",
    "instance_type_id",
    "kernel_id",
    "key_name",
    "launch_index",
    "launched_at",
    "locked_by",
    "node",
    "power_state",
    "progress",
    "project_id",
    "ramdisk_id",
    "root_device_name",
    "task_state",
    "terminated_at",
    "updated_at",
    "user_id",
    "uuid",
    "vm_state",
];

/// Builds the sort order: `(key, descending)` pairs, defaulting to
/// `created_at` then `uuid`, newest first, as Nova sorts.
fn sort_order(
    keys: &[String],
    dirs: &[String],
    version: Microversion,
    is_admin: bool,
) -> Result<Vec<(String, bool)>, ApiError> {
    let mut order = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let locked_valid = version.at_least(2, 73) && key == "locked";
        let ignored = IGNORED_SORT_KEYS.contains(&key.as_str()) && !locked_valid;
        let valid = SORT_KEYS.contains(&key.as_str()) || locked_valid;
        if ignored && !version.at_least(2, 75) {
            continue;
        }
        if !valid {
            return Err(ApiError::bad_request(format!(
                "Invalid input for query parameters sort_key. Value: {key}. '{key}' is not one of the valid sort keys"
            )));
        }
        if matches!(key.as_str(), "host" | "node") && !is_admin {
            return Err(ApiError::forbidden(format!(
                "Only administrators can sort servers by {key}"
            )));
        }
        let dir = dirs
            .get(index)
            .or(dirs.last())
            .map(String::as_str)
            .unwrap_or("desc");
        let descending = match dir {
            "desc" => true,
            "asc" => false,
            other => {
                return Err(ApiError::bad_request(format!(
                    "Unknown sort direction '{other}', must be 'desc' or 'asc'."
                )))
            }
        };
        order.push((key.clone(), descending));
    }
    if order.is_empty() {
        order.push(("created_at".to_owned(), true));
    }
    if !order.iter().any(|(k, _)| k == "uuid") {
        let descending = order[0].1;
        order.push(("uuid".to_owned(), descending));
    }
    Ok(order)
}

/// Parses an ISO 8601 time as Nova's `changes-since` accepts it, with or
/// without a zone (UTC when absent) and fractional seconds.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.fZ",
    ] {
        if let Ok(time) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(time.and_utc().timestamp());
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}

fn check_times(filters: &[(String, Vec<String>)]) -> Result<(), ApiError> {
    let mut since = None;
    let mut before = None;
    for (key, values) in filters {
        if key == "changes-since" || key == "changes-before" {
            let value = values.last().cloned().unwrap_or_default();
            let time = parse_time(&value)
                .ok_or_else(|| ApiError::bad_request(format!("Invalid filter field: {key}.")))?;
            if key == "changes-since" {
                since = Some(time);
            } else {
                before = Some(time);
            }
        }
    }
    if let (Some(since), Some(before)) = (since, before) {
        if before < since {
            return Err(ApiError::bad_request(
                "The value of changes-since must be less than or equal to changes-before.",
            ));
        }
    }
    Ok(())
}

/// True when the query needs each server's ports (`ip`, `ip6`).
pub fn needs_ports(query: &ListQuery) -> bool {
    query.filters.iter().any(|(k, _)| k == "ip" || k == "ip6")
}

fn regex(key: &str, pattern: &str) -> Result<Regex, ApiError> {
    Regex::new(pattern).map_err(|error| {
        ApiError::bad_request(format!(
            "Invalid input for query parameters {key}. Value: {pattern}. {error}"
        ))
    })
}

fn db_time(seconds: Option<i64>) -> String {
    seconds
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// One compiled filter.
enum Test {
    Regex(Regex),
    Exact(BTreeSet<String>),
}

impl Test {
    fn accepts(&self, value: &str) -> bool {
        match self {
            Test::Regex(re) => re.is_match(value),
            Test::Exact(values) => values.contains(value),
        }
    }
}

/// A query compiled once for a whole list.
pub struct Matcher<'q> {
    query: &'q ListQuery,
    tests: Vec<(String, Test)>,
}

const REGEX_FILTERS: &[&str] = &[
    "name",
    "display_name",
    "description",
    "display_description",
    "hostname",
    "key_name",
    "node",
    "kernel_id",
    "ramdisk_id",
    "reservation_id",
    "availability_zone",
    "locked_by",
    "root_device_name",
    "access_ip_v4",
    "access_ip_v6",
    "auto_disk_config",
    "launched_at",
    "terminated_at",
    "created_at",
    "ip",
    "ip6",
    "config_drive",
    "progress",
    "power_state",
];

impl<'q> Matcher<'q> {
    pub fn new(query: &'q ListQuery) -> Result<Self, ApiError> {
        let mut tests = Vec::new();
        for (key, values) in &query.filters {
            let value = values.last().cloned().unwrap_or_default();
            let test = if REGEX_FILTERS.contains(&key.as_str()) {
                Test::Regex(regex(key, &value)?)
            } else {
                Test::Exact(
                    values
                        .iter()
                        .flat_map(|v| v.split(','))
                        .map(str::to_owned)
                        .collect(),
                )
            };
            tests.push((key.clone(), test));
        }
        if let Some((_, Test::Exact(values))) = tests.iter().find(|(k, _)| k == "locked") {
            for value in values {
                truthy(value).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Invalid value '{value}' for locked: use true or false."
                    ))
                })?;
            }
        }
        Ok(Matcher { query, tests })
    }

    /// True when `server` (with `ports`, when the query needs them) is
    /// selected.
    pub fn matches(&self, server: &Server, ports: &[PortInfo]) -> bool {
        if self.query.matches_nothing {
            return false;
        }
        match self.query.deleted {
            Some(true) if !server.deleted => return false,
            Some(false) if server.deleted => return false,
            _ => {}
        }
        if let Some(status) = &self.query.status {
            if !status.matches(server) {
                return false;
            }
        }
        self.tests
            .iter()
            .all(|(key, test)| self.test(key, test, server, ports))
    }

    fn test(&self, key: &str, test: &Test, server: &Server, ports: &[PortInfo]) -> bool {
        let tags_of = || -> Vec<String> {
            match test {
                Test::Exact(values) => values.iter().cloned().collect(),
                Test::Regex(re) => vec![re.as_str().to_owned()],
            }
        };
        match key {
            "name" | "display_name" => test.accepts(&server.name),
            "description" | "display_description" => {
                test.accepts(server.description.as_deref().unwrap_or(""))
            }
            "hostname" => test.accepts(&server.hostname),
            "key_name" => test.accepts(server.key_name.as_deref().unwrap_or("")),
            "node" => test.accepts(server.node.as_deref().unwrap_or("")),
            "host" => test.accepts(server.host.as_deref().unwrap_or("")),
            "reservation_id" => test.accepts(&server.reservation_id),
            "availability_zone" => test.accepts(server.availability_zone.as_deref().unwrap_or("")),
            "image" | "image_ref" => test.accepts(&server.image_id),
            "flavor" => test.accepts(&server.flavor.id),
            "uuid" => test.accepts(&server.id),
            "user_id" => test.accepts(&server.user_id),
            "project_id" | "tenant_id" => test.accepts(&server.project_id),
            "vm_state" => test.accepts(server.vm_state.as_str()),
            "task_state" => test.accepts(server.task_state.map_or("", |t| t.as_str())),
            "power_state" => test.accepts(&server.power_state.to_string()),
            "progress" => test.accepts(&server.progress.to_string()),
            "launch_index" => test.accepts(&server.launch_index.to_string()),
            "config_drive" => test.accepts(if server.config_drive { "True" } else { "" }),
            "access_ip_v4" => test.accepts(&server.access_ipv4),
            "access_ip_v6" => test.accepts(&server.access_ipv6),
            "launched_at" => test.accepts(&db_time(server.launched_at)),
            "terminated_at" => test.accepts(&db_time(server.terminated_at)),
            "created_at" => test.accepts(&db_time(Some(server.created_at))),
            "locked_by" => test.accepts(server.locked_by.as_deref().unwrap_or("")),
            "locked" => {
                let wanted = tags_of().first().and_then(|v| truthy(v)).unwrap_or(false);
                server.locked == wanted
            }
            "changes-since" => tags_of()
                .first()
                .and_then(|v| parse_time(v))
                .is_none_or(|t| server.updated_at >= t),
            "changes-before" => tags_of()
                .first()
                .and_then(|v| parse_time(v))
                .is_none_or(|t| server.updated_at <= t),
            "ip" | "ip6" => {
                let version = if key == "ip" { 4 } else { 6 };
                ports
                    .iter()
                    .flat_map(|p| &p.fixed_ips)
                    .any(|ip| ip.ip_version == version && test.accepts(&ip.ip_address))
            }
            "tags" => tags_of().iter().all(|t| server.tags.contains(t)),
            "tags-any" => tags_of().iter().any(|t| server.tags.contains(t)),
            "not-tags" => !tags_of().iter().all(|t| server.tags.contains(t)),
            "not-tags-any" => !tags_of().iter().any(|t| server.tags.contains(t)),
            // Columns OxStack does not keep (kernel and ramdisk images,
            // root device, automatic disk configuration) are empty.
            "kernel_id" | "ramdisk_id" | "root_device_name" | "auto_disk_config" => {
                test.accepts("")
            }
            "soft_deleted" => true,
            other => {
                tracing::debug!(filter = other, "unknown list filter ignored");
                true
            }
        }
    }
}

fn sort_value(server: &Server, key: &str) -> String {
    let number = |n: i64| format!("{:020}", n.saturating_add(i64::MAX / 2));
    match key {
        "display_name" => server.name.clone(),
        "display_description" => server.description.clone().unwrap_or_default(),
        "created_at" => number(server.created_at),
        "updated_at" => number(server.updated_at),
        "launched_at" => server.launched_at.map(number).unwrap_or_default(),
        "terminated_at" => server.terminated_at.map(number).unwrap_or_default(),
        "uuid" => server.id.clone(),
        "vm_state" => server.vm_state.as_str().to_owned(),
        "task_state" => server
            .task_state
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        "power_state" => number(server.power_state),
        "progress" => number(server.progress),
        "launch_index" => number(server.launch_index),
        "host" => server.host.clone().unwrap_or_default(),
        "node" => server.node.clone().unwrap_or_default(),
        "hostname" => server.hostname.clone(),
        "key_name" => server.key_name.clone().unwrap_or_default(),
        "availability_zone" => server.availability_zone.clone().unwrap_or_default(),
        "project_id" => server.project_id.clone(),
        "user_id" => server.user_id.clone(),
        "image_ref" => server.image_id.clone(),
        "instance_type_id" => server.flavor.id.clone(),
        "access_ip_v4" => server.access_ipv4.clone(),
        "access_ip_v6" => server.access_ipv6.clone(),
        "config_drive" => server.config_drive.to_string(),
        "locked" => server.locked.to_string(),
        "locked_by" => server.locked_by.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

/// Sorts `servers` by `order`.
pub fn sort(servers: &mut [Server], order: &[(String, bool)]) {
    servers.sort_by(|a, b| {
        for (key, descending) in order {
            let ordering = sort_value(a, key).cmp(&sort_value(b, key));
            let ordering = if *descending {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering.is_ne() {
                return ordering;
            }
        }
        std::cmp::Ordering::Equal
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn member_host_filter_dropped() {
        let query = parse(
            &pairs(&[("host", "node1")]),
            Microversion::new(2, 1),
            false,
            false,
        )
        .unwrap();
        assert!(query.filters.is_empty());
    }

    #[test]
    fn unknown_parameter_rejected_from_2_75() {
        let items = pairs(&[("colour", "red")]);
        assert!(parse(&items, Microversion::new(2, 74), false, false).is_ok());
        assert!(parse(&items, Microversion::new(2, 75), false, false).is_err());
    }

    #[test]
    fn bad_status_rejected_from_2_38() {
        let items = pairs(&[("status", "sleepy")]);
        assert!(
            parse(&items, Microversion::new(2, 37), false, false)
                .unwrap()
                .matches_nothing
        );
        assert!(parse(&items, Microversion::new(2, 38), false, false).is_err());
    }

    #[test]
    fn joined_table_filter_rejected() {
        assert!(parse(
            &pairs(&[("metadata", "x")]),
            Microversion::new(2, 1),
            false,
            false
        )
        .is_err());
    }

    #[test]
    fn member_cannot_sort_by_host() {
        let items = pairs(&[("sort_key", "host")]);
        assert_eq!(
            parse(&items, Microversion::new(2, 1), false, false)
                .unwrap_err()
                .kind,
            oxstack_core::ErrorKind::Forbidden
        );
    }

    #[test]
    fn changes_before_must_follow_since() {
        let items = pairs(&[
            ("changes-since", "2025-01-02T00:00:00Z"),
            ("changes-before", "2025-01-01T00:00:00Z"),
        ]);
        assert!(parse(&items, Microversion::new(2, 66), false, false).is_err());
    }

    #[test]
    fn times_parse_with_and_without_zone() {
        assert_eq!(parse_time("1970-01-01T00:01:00Z"), Some(60));
        assert_eq!(parse_time("1970-01-01T00:01:00"), Some(60));
        assert_eq!(parse_time("1970-01-01T00:01:00.000000"), Some(60));
        assert_eq!(parse_time("yesterday"), None);
    }
}
