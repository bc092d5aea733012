//! The metadata of an instance: the OpenStack tree
//! (`openstack/<version>/meta_data.json`, …) and the EC2 tree
//! (`<version>/meta-data/…`), as Nova's `nova/api/metadata/base.py`
//! builds them. The config drive and the metadata API serve the same
//! content.

use std::collections::BTreeMap;

use base64::Engine;
use rand::RngCore;
use serde_json::{json, Map, Value};

use super::network_data::network_data;
use crate::api::availability_zones::DEFAULT_ZONE;
use crate::external::PortInfo;
use crate::server::Server;

/// OpenStack metadata versions, oldest first, as Nova lists them. Each adds
/// to the one before: 2013-04-04 `random_seed` and `password`, 2013-10-17
/// `vendor_data.json`, 2015-10-15 `project_id` and `network_data.json`,
/// 2016-06-30 `devices`, 2016-10-06 `vendor_data2.json`, 2020-10-14
/// `dedicated_cpus`.
pub const OPENSTACK_VERSIONS: [&str; 9] = [
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
];

/// EC2 metadata versions, oldest first, as Nova lists them.
pub const EC2_VERSIONS: [&str; 9] = [
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
];

/// EC2 versions written to a config drive: Nova leaves out the older ones
/// (its `config_drive_skip_versions` default).
const CONFIG_DRIVE_EC2_VERSIONS: [&str; 2] = ["2009-04-04", "latest"];

/// Domain appended to the server's host name in `hostname`, Nova's
/// `[api] dhcp_domain` default.
// TODO: make it a setting, as Nova's `[api] dhcp_domain` is.
pub const DHCP_DOMAIN: &str = "novalocal";

const GRIZZLY: &str = "2013-04-04";
const HAVANA: &str = "2013-10-17";
const LIBERTY: &str = "2015-10-15";
const NEWTON_ONE: &str = "2016-06-30";
const NEWTON_TWO: &str = "2016-10-06";
const VICTORIA: &str = "2020-10-14";

/// Bytes of `random_seed`, as Nova sends.
const RANDOM_SEED_BYTES: usize = 512;

/// One metadata document and how to serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataItem {
    /// `application/json`.
    Json(Vec<u8>),
    /// `text/plain`: a listing (one entry a line), a single value, or the
    /// user data as the user gave it.
    Text(Vec<u8>),
}

impl MetadataItem {
    pub fn content_type(&self) -> &'static str {
        match self {
            MetadataItem::Json(_) => "application/json",
            MetadataItem::Text(_) => "text/plain; charset=UTF-8",
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            MetadataItem::Json(bytes) | MetadataItem::Text(bytes) => bytes,
        }
    }

    fn listing<S: AsRef<str>>(entries: &[S]) -> Self {
        let lines: Vec<&str> = entries.iter().map(AsRef::as_ref).collect();
        MetadataItem::Text(lines.join("\n").into_bytes())
    }

    fn json(value: &Value) -> Self {
        MetadataItem::Json(serde_json::to_vec(value).expect("a JSON value always serialises"))
    }
}

/// The metadata of one server with its ports.
pub struct InstanceMetadata<'a> {
    server: &'a Server,
    /// The server's ports, in its NIC order.
    ports: &'a [PortInfo],
    user_data: Option<Vec<u8>>,
}

impl<'a> InstanceMetadata<'a> {
    /// Collects the metadata of `server`, whose ports are `ports` in NIC
    /// order. User data that is not valid base64 is left out with a
    /// warning; the API validates it on create, so that means a damaged
    /// record.
    pub fn new(server: &'a Server, ports: &'a [PortInfo]) -> Self {
        let user_data = server.user_data.as_deref().and_then(|encoded| {
            match base64::engine::general_purpose::STANDARD.decode(encoded.trim()) {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    tracing::warn!(server_id = %server.id, %error, "user data is not valid base64; leaving it out of the metadata");
                    None
                }
            }
        });
        InstanceMetadata {
            server,
            ports,
            user_data,
        }
    }

    /// Returns the decoded user data, if the server has any.
    pub fn user_data(&self) -> Option<&[u8]> {
        self.user_data.as_deref()
    }

    /// Returns the host name with [`DHCP_DOMAIN`], as `hostname` shows it,
    /// or an empty string for a server without a host name.
    pub fn hostname(&self) -> String {
        if self.server.hostname.is_empty() {
            return String::new();
        }
        format!("{}.{DHCP_DOMAIN}", self.server.hostname)
    }

    fn availability_zone(&self) -> &str {
        self.server
            .availability_zone
            .as_deref()
            .unwrap_or(DEFAULT_ZONE)
    }

    /// Builds `meta_data.json` as of OpenStack metadata `version` (a member of
    /// [`OPENSTACK_VERSIONS`] or `latest`). `random_seed` is new on every
    /// call.
    pub fn meta_data(&self, version: &str) -> Value {
        let server = self.server;
        let mut meta = Map::new();
        meta.insert("uuid".into(), json!(server.id));
        // Nova leaves `meta` out when the server has no metadata.
        if !server.metadata.is_empty() {
            meta.insert("meta".into(), json!(server.metadata));
        }
        if let (Some(name), Some(key)) = (&server.key_name, &server.key_data) {
            meta.insert("public_keys".into(), json!({ name: key }));
            meta.insert(
                "keys".into(),
                json!([{"name": name, "type": key_type(key), "data": key}]),
            );
        }
        meta.insert("hostname".into(), json!(self.hostname()));
        meta.insert("name".into(), json!(server.name));
        meta.insert("launch_index".into(), json!(server.launch_index));
        meta.insert("availability_zone".into(), json!(self.availability_zone()));

        if version_at_least(version, GRIZZLY) {
            let mut seed = [0u8; RANDOM_SEED_BYTES];
            rand::thread_rng().fill_bytes(&mut seed);
            meta.insert(
                "random_seed".into(),
                json!(base64::engine::general_purpose::STANDARD.encode(seed)),
            );
        }
        if version_at_least(version, LIBERTY) {
            meta.insert("project_id".into(), json!(server.project_id));
        }
        if version_at_least(version, NEWTON_ONE) {
            // Device tags are not supported, so no device has metadata.
            meta.insert("devices".into(), json!([]));
        }
        if version_at_least(version, VICTORIA) {
            // No flavor pins CPUs here.
            meta.insert("dedicated_cpus".into(), json!([]));
        }
        Value::Object(meta)
    }

    /// `network_data.json`.
    pub fn network_data(&self) -> Value {
        network_data(self.ports)
    }

    /// Builds the EC2 `meta-data` tree as of EC2 `version` (a member of
    /// [`EC2_VERSIONS`] or `latest`). A directory whose object has a
    /// `_name` is listed by that name in its parent (`public-keys/` lists
    /// `0=KEYNAME`), as Nova does.
    pub fn ec2_meta_data(&self, version: &str) -> Value {
        let version = if version == "latest" {
            EC2_VERSIONS[EC2_VERSIONS.len() - 1]
        } else {
            version
        };
        let server = self.server;
        let hostname = self.hostname();
        let fixed_ip = self
            .ports
            .iter()
            .flat_map(|port| &port.fixed_ips)
            .find(|ip| ip.ip_version == 4)
            .map(|ip| ip.ip_address.clone())
            .unwrap_or_default();
        let floating_ip = self
            .ports
            .iter()
            .flat_map(|port| &port.floating_ips)
            .next()
            .cloned()
            .unwrap_or_default();
        // Nova puts a server created without security groups into `default`.
        let security_groups = if server.security_group_names.is_empty() {
            vec!["default".to_owned()]
        } else {
            server.security_group_names.clone()
        };

        let mut meta = Map::new();
        meta.insert("ami-id".into(), json!(ec2_id("ami", &server.image_id)));
        meta.insert("ami-launch-index".into(), json!(server.launch_index));
        // Nova's value, kept for clients that expect the key.
        meta.insert("ami-manifest-path".into(), json!("FIXME"));
        meta.insert("instance-id".into(), json!(ec2_id("i", &server.id)));
        meta.insert("hostname".into(), json!(hostname));
        meta.insert("local-ipv4".into(), json!(fixed_ip));
        meta.insert("reservation-id".into(), json!(server.reservation_id));
        meta.insert("security-groups".into(), json!(security_groups));
        if let (Some(name), Some(key)) = (&server.key_name, &server.key_data) {
            meta.insert(
                "public-keys".into(),
                json!({"0": {"_name": format!("0={name}"), "openssh-key": key}}),
            );
        }
        if version >= "2007-01-19" {
            meta.insert("local-hostname".into(), json!(hostname));
            meta.insert("public-hostname".into(), json!(hostname));
            meta.insert("public-ipv4".into(), json!(floating_ip));
        }
        if version >= "2007-08-29" {
            meta.insert("instance-type".into(), json!(server.flavor.name));
        }
        if version >= "2007-12-15" {
            // NOTE: assumes the driver attaches the root disk as the first
            // virtio disk (vda); ephemeral and swap disks are not listed.
            meta.insert(
                "block-device-mapping".into(),
                json!({"ami": "vda", "root": "/dev/vda"}),
            );
        }
        if version >= "2008-02-01" {
            meta.insert(
                "placement".into(),
                json!({"availability-zone": self.availability_zone()}),
            );
        }
        if version >= "2008-09-01" {
            meta.insert("instance-action".into(), json!("none"));
        }
        Value::Object(meta)
    }

    /// Looks up `path` in the metadata tree, as the metadata API serves it:
    /// `/openstack/…` is the OpenStack tree, anything else the EC2 tree
    /// (`/latest/meta-data/…`, `/2009-04-04/user-data`). `None` when
    /// nothing is at `path`.
    pub fn lookup(&self, path: &str) -> Option<MetadataItem> {
        let tokens = normalize_path(path);
        match tokens.split_first() {
            None => Some(MetadataItem::listing(&ec2_versions_listing())),
            Some((&"openstack", rest)) => self.lookup_openstack(rest),
            Some(_) => self.lookup_ec2(&tokens),
        }
    }

    fn lookup_openstack(&self, tokens: &[&str]) -> Option<MetadataItem> {
        let Some((&version, rest)) = tokens.split_first() else {
            let mut versions: Vec<&str> = OPENSTACK_VERSIONS.to_vec();
            versions.push("latest");
            return Some(MetadataItem::listing(&versions));
        };
        if version != "latest" && !OPENSTACK_VERSIONS.contains(&version) {
            return None;
        }
        match rest {
            [] => Some(MetadataItem::listing(&self.openstack_files(version))),
            [name] if self.openstack_files(version).contains(name) => {
                self.openstack_file(version, name)
            }
            _ => None,
        }
    }

    /// Lists the names under `openstack/<version>/`, in Nova's order.
    fn openstack_files(&self, version: &str) -> Vec<&'static str> {
        let mut files = vec!["meta_data.json"];
        if self.user_data.is_some() {
            files.push("user_data");
        }
        if version_at_least(version, GRIZZLY) {
            files.push("password");
        }
        if version_at_least(version, HAVANA) {
            files.push("vendor_data.json");
        }
        if version_at_least(version, LIBERTY) {
            files.push("network_data.json");
        }
        if version_at_least(version, NEWTON_TWO) {
            files.push("vendor_data2.json");
        }
        files
    }

    fn openstack_file(&self, version: &str, name: &str) -> Option<MetadataItem> {
        match name {
            "meta_data.json" => Some(MetadataItem::json(&self.meta_data(version))),
            "user_data" => self.user_data.clone().map(MetadataItem::Text),
            // NOTE: setting a password (POST, as cloudbase-init does) is not
            // supported, so no server has one and the file is empty.
            "password" => Some(MetadataItem::Text(Vec::new())),
            // No static or dynamic vendor data is configured.
            "vendor_data.json" | "vendor_data2.json" => Some(MetadataItem::json(&json!({}))),
            "network_data.json" => Some(MetadataItem::json(&self.network_data())),
            _ => None,
        }
    }

    fn lookup_ec2(&self, tokens: &[&str]) -> Option<MetadataItem> {
        let (&version, rest) = tokens.split_first()?;
        if version != "latest" && !EC2_VERSIONS.contains(&version) {
            return None;
        }
        match rest {
            [] => {
                let mut entries = vec!["meta-data/"];
                if self.user_data.is_some() {
                    entries.push("user-data");
                }
                Some(MetadataItem::listing(&entries))
            }
            ["user-data"] => self.user_data.clone().map(MetadataItem::Text),
            ["meta-data", path @ ..] => {
                let tree = self.ec2_meta_data(version);
                let mut node = &tree;
                for token in path {
                    node = node.as_object()?.get(*token)?;
                }
                Some(MetadataItem::Text(ec2_text(node).into_bytes()))
            }
            _ => None,
        }
    }

    /// Builds the files of a config drive, path (relative to the drive's
    /// root) to content. See [`config_drive_files`].
    pub fn config_drive_files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();

        for version in CONFIG_DRIVE_EC2_VERSIONS {
            let mut meta = self.ec2_meta_data(version);
            // The drive has no listings, so the listing name goes.
            if let Some(key) = meta
                .pointer_mut("/public-keys/0")
                .and_then(Value::as_object_mut)
            {
                key.remove("_name");
            }
            files.insert(
                format!("ec2/{version}/meta-data.json"),
                MetadataItem::json(&meta).into_bytes(),
            );
            if let Some(user_data) = &self.user_data {
                files.insert(format!("ec2/{version}/user-data"), user_data.clone());
            }
        }

        for version in OPENSTACK_VERSIONS.into_iter().chain(["latest"]) {
            for name in self.openstack_files(version) {
                // Nova's drive has no password file: the guest posts its
                // password to the metadata API.
                if name == "password" {
                    continue;
                }
                if let Some(item) = self.openstack_file(version, name) {
                    files.insert(format!("openstack/{version}/{name}"), item.into_bytes());
                }
            }
        }
        files
    }
}

/// Builds the files of `server`'s config drive, path (relative to the
/// drive's root, `/`-separated, no leading `/`) to content, in Nova's
/// layout. `openstack/<version>/` for each of [`OPENSTACK_VERSIONS`] and
/// `openstack/latest/` contain `meta_data.json`, `user_data` (only when
/// the server has user data), `vendor_data.json`, `network_data.json` and
/// `vendor_data2.json`, each from the version that introduced it.
/// `ec2/2009-04-04/` and `ec2/latest/` contain `meta-data.json` and
/// `user-data`. `ports` are the
/// server's ports in NIC order. Every file is the same on each call except
/// `random_seed` in `meta_data.json`. `public_url` is the cloud's URL;
/// none of Nova's files carry it, so it is unused for now.
pub fn config_drive_files(
    server: &Server,
    ports: &[PortInfo],
    public_url: &str,
) -> BTreeMap<String, Vec<u8>> {
    let _ = public_url;
    InstanceMetadata::new(server, ports).config_drive_files()
}

/// Returns the EC2 versions and `latest`, as `/` lists them.
pub fn ec2_versions_listing() -> Vec<&'static str> {
    let mut versions: Vec<&str> = EC2_VERSIONS.to_vec();
    versions.push("latest");
    versions
}

/// Renders an EC2 tree node as text, as Nova's `ec2_md_print` does: a
/// directory lists its keys sorted (subdirectories with a trailing `/` or
/// by their `_name`), a list has one item a line, a scalar is itself.
fn ec2_text(node: &Value) -> String {
    match node {
        Value::Object(entries) => {
            let mut lines = Vec::new();
            // serde_json's Map iterates in key order.
            for (key, value) in entries {
                if key == "_name" {
                    continue;
                }
                match value {
                    Value::Object(child) => match child.get("_name").and_then(Value::as_str) {
                        Some(name) => lines.push(name.to_owned()),
                        None => lines.push(format!("{key}/")),
                    },
                    _ => lines.push(key.clone()),
                }
            }
            lines.join("\n")
        }
        Value::Array(items) => items.iter().map(ec2_text).collect::<Vec<_>>().join("\n"),
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Splits `path` into its components, resolving `.` and `..` and ignoring
/// repeated and trailing slashes, as Python's `posixpath.normpath` does for
/// Nova.
fn normalize_path(path: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    for token in path.split('/') {
        match token {
            "" | "." => {}
            ".." => {
                tokens.pop();
            }
            other => tokens.push(other),
        }
    }
    tokens
}

/// Checks whether OpenStack metadata `version` (known, or `latest`)
/// includes what came with `required`. Versions are ISO dates, so text order is date
/// order.
fn version_at_least(version: &str, required: &str) -> bool {
    version == "latest" || version >= required
}

/// Returns `ssh` or `x509`, the key pair type Nova records, from the key
/// itself: the server record keeps only the key.
fn key_type(key: &str) -> &'static str {
    if key.trim_start().starts_with("-----BEGIN CERTIFICATE-----") {
        "x509"
    } else {
        "ssh"
    }
}

/// Returns an EC2-style id (`i-1a2b3c4d`) for the UUID `uuid`.
///
/// Nova maps each UUID to an integer in a table and prints it as 8 hex
/// digits. The first 8 hex digits of the UUID give the same shape without
/// that table; they can collide, so the id is for display only. An empty
/// `uuid` (a server booted from a volume has no image) gives `ami-00000000`.
fn ec2_id(prefix: &str, uuid: &str) -> String {
    let digits: String = uuid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect();
    format!("{prefix}-{digits:0>8}")
}
