//! `POST /servers`: validates the request as Nova's API and compute API
//! do (flavor, image, key, networks, ports, security groups, zone,
//! metadata), reserves quota and stores the servers in one transaction,
//! records the `create` action and hands each server to the conductor.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use oxstack_core::{ApiError, ErrorKind};
use oxstack_store::Backend;
use rand::Rng;
use serde_json::{json, Value};

use super::flavor_view::{self, Flavor};
use super::server_input::{self, CreateRequest, NetworkEntry, Networks};
use super::server_view;
use super::{db_error, parse_body, ComputeState, Version};
use crate::external::{ExternalError, ExternalErrorKind, ImageInfo};
use crate::policy::Caller;
use crate::quota::{self, ServerUsage};
use crate::server::{actions, store, FlavorSnapshot, NicRequest, Server, TaskState, VmState};
use crate::server_group;

const GIB: u64 = 1 << 30;

/// Maps a failure of the image or network service to an API error. A missing
/// or invalid requested resource is a 400, as Nova's create returns, a
/// conflict is a 409, and an unavailable service is a 503.
fn external(error: ExternalError) -> ApiError {
    match error.kind {
        ExternalErrorKind::NotFound | ExternalErrorKind::BadRequest => {
            ApiError::bad_request(error.message)
        }
        ExternalErrorKind::Conflict => ApiError::conflict(error.message),
        ExternalErrorKind::Unavailable => ApiError::new(ErrorKind::Unavailable, error.message),
    }
}

pub async fn create(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = server_input::parse_create(&parse_body(&body)?, version)?;
    let project_id = caller.project_id().to_owned();
    let target = json!({
        "project_id": project_id,
        "user_id": caller.user_id(),
        "availability_zone": request.availability_zone,
    });
    caller.authorize(
        &state.policy,
        "os_compute_api:servers:create",
        target.clone(),
    )?;

    if request
        .trusted_image_certificates
        .as_ref()
        .is_some_and(|ids| !ids.is_empty())
    {
        caller.authorize(
            &state.policy,
            "os_compute_api:servers:create:trusted_certs",
            target.clone(),
        )?;
        return Err(ApiError::bad_request(
            "Image signature certificate validation failed: this cloud does not verify image signatures, \
             so trusted_image_certificates cannot be used.",
        ));
    }
    if request.personality_files > 0 {
        return Err(ApiError::bad_request(
            "File injection (personality) is not supported by this cloud; pass the files in user_data instead.",
        ));
    }
    let server_group = load_hint_group(&state, &caller, &request).await?;
    let zone = check_zone(&state, &caller, &request, &target)?;
    check_zone_available(&state, zone.as_deref()).await?;
    if request.volume_mappings > 0 {
        caller.authorize(
            &state.policy,
            "os_compute_api:servers:create:attach_volume",
            target.clone(),
        )?;
        return Err(ApiError::bad_request(
            "Block device mappings other than the image's root disk need the block storage service, \
             which this cloud does not run; boot from an image without volume mappings.",
        ));
    }
    if request.image_ref.is_empty() {
        return Err(ApiError::bad_request("Missing imageRef attribute"));
    }
    if matches!(&request.networks, Networks::List(entries) if !entries.is_empty()) {
        caller.authorize(
            &state.policy,
            "os_compute_api:servers:create:attach_network",
            target.clone(),
        )?;
    }

    let flavor = load_flavor(&state, &caller, &request.flavor_ref).await?;
    let image = load_image(&state, &caller, &request.image_ref).await?;
    check_flavor_fits_image(&state, &caller, &flavor, &image, &target)?;
    let key_data = load_key(&state, &caller, request.key_name.as_deref()).await?;
    let limits = quota::limits(&state, &project_id, Some(caller.user_id())).await?;
    let metadata_limit = limits.get("metadata_items").copied().unwrap_or(-1);
    if metadata_limit >= 0 && request.metadata.len() as i64 > metadata_limit {
        return Err(ApiError::new(
            ErrorKind::QuotaExceeded,
            format!("Maximum number of metadata items exceeds {metadata_limit}"),
        ));
    }
    let nics = resolve_networks(&state, &caller, &request).await?;
    let (group_ids, group_names) = resolve_security_groups(&state, &caller, &request).await?;

    let template = ServerTemplate {
        request: &request,
        project_id: &project_id,
        user_id: caller.user_id(),
        flavor: &flavor,
        image: &image,
        key_data,
        zone,
        nics,
        group_ids,
        group_names,
        server_group,
        config_drive: request.config_drive
            || state.config.force_config_drive
            || image_needs_config_drive(&image),
    };
    let servers = insert_within_quota(&state, &caller, &template).await?;

    let request_id = super::servers::request_id(&caller);
    for server in &servers {
        actions::start(
            state.pool(),
            &server.id,
            &request_id,
            "create",
            caller.user_id(),
            &project_id,
        )
        .await
        .map_err(db_error)?;
        tracing::info!(server_id = %server.id, project_id = %project_id, "server create accepted");
        state.start_build(server.id.clone(), request_id.clone());
    }

    if request.return_reservation_id {
        let body = json!({"reservation_id": servers[0].reservation_id});
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let first = &servers[0];
    let password = request.admin_pass.clone().unwrap_or_else(generate_password);
    let body = server_view::created(
        &state,
        first,
        request.security_groups_raw.as_ref(),
        Some(&password),
    );
    let mut response = (StatusCode::ACCEPTED, Json(json!({ "server": body }))).into_response();
    if let Ok(location) = HeaderValue::from_str(&state.v21_url(&format!("servers/{}", first.id))) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Loads the server group of the `group` scheduler hint. Nova accepts one
/// group, and rejects with a 400 a group that does not exist or, for a
/// non-admin caller, belongs to another project.
async fn load_hint_group(
    state: &ComputeState,
    caller: &Caller,
    request: &CreateRequest,
) -> Result<Option<String>, ApiError> {
    let group_id = match request.hint_groups.as_slice() {
        [] => return Ok(None),
        [one] => one,
        _ => {
            return Err(ApiError::bad_request(
                "Invalid input for field/attribute group. Name one server group in the group scheduler hint.",
            ))
        }
    };
    let group = server_group::get(state.pool(), group_id)
        .await
        .map_err(db_error)?
        .filter(|group| caller.is_admin() || group.project_id == caller.project_id());
    match group {
        Some(group) => Ok(Some(group.id)),
        None => Err(ApiError::bad_request(format!(
            "Instance group {group_id} could not be found."
        ))),
    }
}

/// Checks the requested availability zone (`zone`, or Nova's admin-only
/// `zone:host:node`) and the 2.74 `host`/`hypervisor_hostname`, and
/// returns the zone to record. OxStack's one compute host is the only host
/// a request may name.
fn check_zone(
    state: &ComputeState,
    caller: &Caller,
    request: &CreateRequest,
    target: &Value,
) -> Result<Option<String>, ApiError> {
    let mut zone = request.availability_zone.clone();
    let mut forced_host = None;
    if let Some(text) = &request.availability_zone {
        let mut parts = text.splitn(3, ':');
        let name = parts.next().unwrap_or_default().to_owned();
        let host = parts.next().filter(|h| !h.is_empty()).map(str::to_owned);
        let node = parts.next().filter(|n| !n.is_empty()).map(str::to_owned);
        if host.is_some() || node.is_some() {
            caller.authorize(
                &state.policy,
                "os_compute_api:servers:create:forced_host",
                target.clone(),
            )?;
            forced_host = host.or(node);
        }
        zone = (!name.is_empty()).then_some(name);
    }
    if request.host.is_some() || request.hypervisor_hostname.is_some() {
        caller.authorize(
            &state.policy,
            "compute:servers:create:requested_destination",
            target.clone(),
        )?;
        if forced_host.is_some() {
            return Err(ApiError::bad_request(
                "One mechanism with host and/or hypervisor_hostname and another mechanism with zone:host:node are mutually exclusive.",
            ));
        }
        forced_host = request.host.clone().or(request.hypervisor_hostname.clone());
    }
    if let Some(host) = forced_host {
        if host != state.backends.host {
            return Err(ApiError::bad_request(format!(
                "Compute host {host} could not be found."
            )));
        }
    }
    Ok(zone)
}

/// Checks that `zone` is available: the default zone, or the zone of an
/// aggregate that has hosts.
async fn check_zone_available(state: &ComputeState, zone: Option<&str>) -> Result<(), ApiError> {
    let Some(zone) = zone else { return Ok(()) };
    if zone == state.config.default_availability_zone {
        return Ok(());
    }
    let zones = crate::aggregate::host_zones(state.pool())
        .await
        .map_err(db_error)?;
    if zones.values().any(|host_zone| host_zone == zone) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "The requested availability zone is not available",
    ))
}

async fn load_flavor(state: &ComputeState, caller: &Caller, id: &str) -> Result<Flavor, ApiError> {
    let not_found = || ApiError::bad_request(format!("Flavor {id} could not be found."));
    let flavor = match flavor_view::load_visible(state, caller, id).await {
        Ok(flavor) => flavor,
        Err(error) if error.kind == ErrorKind::NotFound => return Err(not_found()),
        Err(error) => return Err(error),
    };
    // Nova treats a disabled flavor as missing at create.
    if flavor.disabled {
        return Err(not_found());
    }
    Ok(flavor)
}

async fn load_image(
    state: &ComputeState,
    caller: &Caller,
    id: &str,
) -> Result<ImageInfo, ApiError> {
    let image = state
        .backends
        .images
        .get_image(&caller.ctx.auth, id)
        .await
        .map_err(external)?
        .ok_or_else(|| ApiError::bad_request(format!("Image {id} could not be found.")))?;
    if image.status != "active" {
        return Err(ApiError::bad_request(format!("Image {id} is not active.")));
    }
    Ok(image)
}

/// Checks the flavor against the image as Nova does: its RAM against the
/// image's `min_ram`, and its root disk against the image's size and
/// `min_disk`. A flavor with no root disk boots images only for callers that
/// the `zero_disk_flavor` rule allows (admins by default), because the
/// instance's disk would then be as large as the image requires.
fn check_flavor_fits_image(
    state: &ComputeState,
    caller: &Caller,
    flavor: &Flavor,
    image: &ImageInfo,
    target: &Value,
) -> Result<(), ApiError> {
    if (flavor.ram as u64) < image.min_ram {
        return Err(ApiError::bad_request(
            "Flavor's memory is too small for requested image.",
        ));
    }
    let flavor_bytes = flavor.disk as u64 * GIB;
    if flavor_bytes == 0 {
        return caller
            .authorize(
                &state.policy,
                "os_compute_api:servers:create:zero_disk_flavor",
                target.clone(),
            )
            .map_err(|_| {
                ApiError::forbidden(
                    "Only volume-backed servers are allowed for flavors with zero disk.",
                )
            });
    }
    // Nova compares the image's file size. The virtual size is checked too,
    // because a root disk smaller than it cannot hold the image.
    let image_bytes = image.size.unwrap_or(0).max(image.virtual_size.unwrap_or(0));
    if image_bytes > flavor_bytes {
        return Err(ApiError::bad_request(format!(
            "Flavor's disk is too small for requested image. Flavor disk is {flavor_bytes} bytes, image is {image_bytes} bytes."
        )));
    }
    let min_disk = image.min_disk * GIB;
    if min_disk > flavor_bytes {
        return Err(ApiError::bad_request(format!(
            "Flavor's disk is smaller than the minimum size specified in image metadata. \
             Flavor disk is {flavor_bytes} bytes, minimum size is {min_disk} bytes."
        )));
    }
    Ok(())
}

fn image_needs_config_drive(image: &ImageInfo) -> bool {
    image
        .properties
        .get("img_config_drive")
        .is_some_and(|v| v == "mandatory")
}

/// Returns the public key of the caller's keypair `name`.
async fn load_key(
    state: &ComputeState,
    caller: &Caller,
    name: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let Some(name) = name else { return Ok(None) };
    let key: Option<(String,)> =
        sqlx::query_as("SELECT public_key FROM compute_keypairs WHERE user_id = $1 AND name = $2")
            .bind(caller.user_id())
            .bind(name)
            .fetch_optional(state.pool())
            .await
            .map_err(db_error)?;
    key.map(|(public_key,)| Some(public_key))
        .ok_or_else(|| ApiError::bad_request("Invalid key_name provided."))
}

/// Resolves `networks` to the NICs the conductor creates, checking each
/// network and port now so that a wrong request fails at the API.
async fn resolve_networks(
    state: &ComputeState,
    caller: &Caller,
    request: &CreateRequest,
) -> Result<Vec<NicRequest>, ApiError> {
    let auth = &caller.ctx.auth;
    let networks = &state.backends.networks;
    // Nova reads an empty list as no request, which picks the one
    // available network.
    let entries: Vec<NetworkEntry> = match &request.networks {
        Networks::None => return Ok(Vec::new()),
        Networks::List(entries) if !entries.is_empty() => entries.clone(),
        Networks::List(_) | Networks::Unset | Networks::Auto => {
            let available = networks.available_networks(auth).await.map_err(external)?;
            match available.as_slice() {
                [] if request.networks == Networks::Auto => {
                    return Err(ApiError::bad_request(format!(
                        "Unable to automatically allocate a network for project {}",
                        caller.project_id()
                    )));
                }
                // Before 2.37 a project without networks boots without one.
                [] => return Ok(Vec::new()),
                [only] => vec![NetworkEntry {
                    network_id: Some(only.id.clone()),
                    port_id: None,
                    fixed_ip: None,
                    tag: None,
                }],
                _ => {
                    return Err(ApiError::conflict(
                        "More than one possible network found. Specify network ID(s) to select which one(s) to connect to.",
                    ));
                }
            }
        }
    };
    let mut nics = Vec::with_capacity(entries.len());
    for entry in entries {
        if let Some(port_id) = &entry.port_id {
            if request.max_count > 1 {
                return Err(ApiError::bad_request(
                    "Failed to launch instances: Unable to launch multiple instances with a single configured port ID. \
                     Please launch your instance one by one with different ports.",
                ));
            }
            let port = networks
                .get_port(auth, port_id)
                .await
                .map_err(external)?
                .ok_or_else(|| {
                    ApiError::bad_request(format!("Port id {port_id} could not be found."))
                })?;
            if !port.device_id.is_empty() {
                return Err(ApiError::conflict(format!(
                    "Port {port_id} is still in use."
                )));
            }
            // An admin can read every port, but a server may only use its own
            // project's ports, as Nova's PortNotUsable check enforces.
            if port.project_id != caller.project_id() {
                return Err(ApiError::bad_request(format!(
                    "Port {port_id} not usable for the new server: it belongs to project {}, not {}. \
                     Create the server in that project or use a port of this one.",
                    port.project_id,
                    caller.project_id()
                )));
            }
            nics.push(NicRequest {
                network_id: Some(port.network_id),
                port_id: Some(port_id.clone()),
                fixed_ip: None,
            });
            continue;
        }
        let network_id = entry.network_id.clone().unwrap_or_default();
        let network = networks
            .get_network(auth, &network_id)
            .await
            .map_err(external)?
            .ok_or_else(|| {
                ApiError::bad_request(format!("Network {network_id} could not be found."))
            })?;
        if network.external {
            caller
                .authorize(
                    &state.policy,
                    "network:attach_external_network",
                    json!({"project_id": caller.project_id()}),
                )
                .map_err(|_| {
                    ApiError::forbidden(format!(
                        "It is not allowed to create an interface on external network {network_id}"
                    ))
                })?;
        }
        if !network.has_subnets {
            return Err(ApiError::bad_request(format!(
                "Network {network_id} requires a subnet in order to boot instances on."
            )));
        }
        if entry.fixed_ip.is_some() && request.max_count > 1 {
            return Err(ApiError::bad_request(
                "Failed to launch instances: max_count cannot be greater than 1 if an fixed_ip is specified.",
            ));
        }
        // The port is created later without the user's token, so the
        // network service's address rule is checked here. Without it a
        // project could take a shared network's gateway address.
        if entry.fixed_ip.is_some()
            && !networks
                .may_choose_address(auth, &network_id)
                .await
                .map_err(external)?
        {
            return Err(ApiError::forbidden(format!(
                "Only the owner of network {network_id} may choose a fixed IP address on it. Leave fixed_ip out to get one assigned."
            )));
        }
        if let Some(ip) = &entry.fixed_ip {
            if let Some(holder) = networks
                .port_by_ip(&network_id, ip)
                .await
                .map_err(external)?
            {
                let user = if holder.device_id.is_empty() {
                    format!("port {}", holder.id)
                } else {
                    format!("instance {}", holder.device_id)
                };
                return Err(ApiError::bad_request(format!(
                    "Fixed IP address {ip} is already in use on {user}; choose another address or leave fixed_ip out."
                )));
            }
        }
        nics.push(NicRequest {
            network_id: Some(network_id),
            port_id: None,
            fixed_ip: entry.fixed_ip,
        });
    }
    Ok(nics)
}

/// Resolves the requested security groups (names or ids, or `default` when
/// none are named) to ids. Nova ignores them for a server without networks.
async fn resolve_security_groups(
    state: &ComputeState,
    caller: &Caller,
    request: &CreateRequest,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let names = request
        .security_groups
        .clone()
        .unwrap_or_else(|| vec!["default".to_owned()]);
    if request.networks == Networks::None || names.is_empty() {
        return Ok((Vec::new(), names));
    }
    let ids = state
        .backends
        .networks
        .security_group_ids(&caller.ctx.auth, &names)
        .await
        .map_err(external)?;
    Ok((ids, names))
}

/// The fields every server of one request shares.
struct ServerTemplate<'a> {
    request: &'a CreateRequest,
    project_id: &'a str,
    user_id: &'a str,
    flavor: &'a Flavor,
    image: &'a ImageInfo,
    key_data: Option<String>,
    zone: Option<String>,
    nics: Vec<NicRequest>,
    group_ids: Vec<String>,
    group_names: Vec<String>,
    /// The server group of the `group` hint, which the servers join.
    server_group: Option<String>,
    config_drive: bool,
}

impl ServerTemplate<'_> {
    /// Builds server `index` of `count`. When there are several, each name and
    /// hostname gets a suffix `-1`, `-2` …, as Nova names them.
    fn build(&self, reservation_id: &str, index: u32, count: u32, now: i64) -> Server {
        let request = self.request;
        let id = uuid::Uuid::new_v4().to_string();
        let mut name = request.name.clone();
        let mut hostname = sanitize_hostname(&request.name);
        if hostname.is_empty() {
            hostname = format!("Server-{id}");
        } else if count > 1 {
            hostname = format!("{hostname}-{}", index + 1);
        }
        if count > 1 {
            name = format!("{name}-{}", index + 1);
        }
        let flavor = self.flavor;
        Server {
            id,
            name,
            project_id: self.project_id.to_owned(),
            user_id: self.user_id.to_owned(),
            image_id: self.image.id.clone(),
            flavor: FlavorSnapshot {
                id: flavor.id.clone(),
                name: flavor.name.clone(),
                vcpus: flavor.vcpus,
                ram: flavor.ram,
                disk: flavor.disk,
                ephemeral: flavor.ephemeral,
                swap: flavor.swap,
                extra_specs: flavor.extra_specs.clone(),
            },
            vm_state: VmState::Building,
            task_state: Some(TaskState::Scheduling),
            power_state: 0,
            host: None,
            node: None,
            availability_zone: self.zone.clone(),
            requested_availability_zone: self.zone.clone(),
            key_name: request.key_name.clone(),
            key_data: self.key_data.clone(),
            user_data: request.user_data.clone(),
            metadata: request.metadata.clone(),
            config_drive: self.config_drive,
            access_ipv4: request.access_ipv4.clone(),
            access_ipv6: request.access_ipv6.clone(),
            security_group_ids: self.group_ids.clone(),
            security_group_names: self.group_names.clone(),
            requested_networks: self.nics.clone(),
            server_group: self.server_group.clone(),
            created_ports: Vec::new(),
            ports: Vec::new(),
            locked: false,
            locked_reason: None,
            locked_by: None,
            description: request.description.clone(),
            hostname,
            tags: request.tags.clone(),
            fault: None,
            progress: 0,
            reservation_id: reservation_id.to_owned(),
            launch_index: i64::from(index),
            launched_at: None,
            terminated_at: None,
            created_at: now,
            updated_at: now,
            deleted: false,
            password: String::new(),
            revision: 0,
        }
    }
}

/// Converts `name` to a hostname as Nova's `sanitize_hostname` does. It keeps
/// only Latin-1 characters and truncates to 63 characters. It then turns
/// spaces, underscores and dots into hyphens, drops other characters outside
/// `[\w.-]`, lowercases, and trims leading and trailing `.` and `-`.
pub fn sanitize_hostname(name: &str) -> String {
    let latin1: String = name.chars().filter(|c| (*c as u32) <= 0xff).collect();
    let truncated: String = latin1.chars().take(63).collect();
    let replaced: String = truncated
        .chars()
        .map(|c| if matches!(c, ' ' | '_' | '.') { '-' } else { c })
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '.' || *c == '_')
        .collect();
    replaced
        .to_lowercase()
        .trim_matches(|c| c == '.' || c == '-')
        .to_owned()
}

/// Generates a reservation id as Nova does: `r-` and eight random lower-case
/// letters and digits.
fn reservation_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let suffix: String = (0..8)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("r-{suffix}")
}

/// Returns a random administrator password of 12 letters and digits, as
/// Nova's `generate_password` makes by default.
fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..12)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The inputs to Nova's per-resource quota check of a create: the limits and
/// the usage, from which [`QuotaCheck::allowed`] computes how many servers fit.
struct QuotaCheck<'a> {
    limits: &'a BTreeMap<String, i64>,
    usage: ServerUsage,
}

impl QuotaCheck<'_> {
    fn limit(&self, resource: &str) -> i64 {
        self.limits.get(resource).copied().unwrap_or(-1)
    }

    fn used(&self, resource: &str) -> i64 {
        match resource {
            "instances" => self.usage.instances,
            "cores" => self.usage.cores,
            _ => self.usage.ram,
        }
    }

    /// Returns how many servers (between `min` and `max`) fit, or Nova's
    /// over-quota message.
    fn allowed(&self, flavor: &Flavor, min: u32, max: u32) -> Result<u32, String> {
        let per_server = [
            ("cores", flavor.vcpus),
            ("instances", 1),
            ("ram", flavor.ram),
        ];
        let fits = |count: i64| {
            per_server
                .iter()
                .filter(|(resource, each)| {
                    let limit = self.limit(resource);
                    limit >= 0 && self.used(resource) + each * count > limit
                })
                .map(|(resource, _)| *resource)
                .collect::<Vec<_>>()
        };
        let overs = fits(i64::from(max));
        if overs.is_empty() {
            return Ok(max);
        }
        let mut allowed = i64::from(max);
        for (resource, each) in per_server {
            let limit = self.limit(resource);
            if limit >= 0 && each > 0 {
                allowed = allowed.min((limit - self.used(resource)) / each);
            }
        }
        if allowed >= i64::from(min) && allowed > 0 {
            return Ok(allowed as u32);
        }
        let requested_count = if min == max {
            min.to_string()
        } else {
            format!("{min}-{max}")
        };
        let requested = |resource: &str| match resource {
            "instances" => requested_count.clone(),
            "cores" => (flavor.vcpus * i64::from(max)).to_string(),
            _ => (flavor.ram * i64::from(max)).to_string(),
        };
        let join =
            |f: &dyn Fn(&str) -> String| overs.iter().map(|r| f(r)).collect::<Vec<_>>().join(", ");
        Err(format!(
            "Quota exceeded for {names}: Requested {requested}, but already used {used} of {limits} {names}",
            names = overs.join(", "),
            requested = join(&|r| requested(r)),
            used = join(&|r| self.used(r).to_string()),
            limits = join(&|r| self.limit(r).to_string()),
        ))
    }
}

/// Returns the key of PostgreSQL's advisory lock on one project's server
/// quota.
fn quota_lock_key(project_id: &str) -> i64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("compute-server-quota:{project_id}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("eight bytes"))
}

/// Counts the project's servers, decides how many of the request fit and
/// stores them, all in one transaction that holds the project's quota
/// lock, so two concurrent creates cannot both take the last instance.
async fn insert_within_quota(
    state: &ComputeState,
    caller: &Caller,
    template: &ServerTemplate<'_>,
) -> Result<Vec<Server>, ApiError> {
    let project_id = template.project_id;
    let user_id = template.user_id;
    let project_limits = quota::limits(state, project_id, None).await?;
    let user_overrides = quota::user_overrides(state, project_id, user_id).await?;
    let check_user = ["instances", "cores", "ram"]
        .iter()
        .any(|r| user_overrides.contains_key(*r));
    let user_limits = if check_user {
        quota::limits(state, project_id, Some(user_id)).await?
    } else {
        BTreeMap::new()
    };

    let mut transaction = state.pool().begin().await.map_err(db_error)?;
    match state.store.backend() {
        Backend::Postgres => {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(quota_lock_key(project_id))
                .execute(&mut *transaction)
                .await
                .map_err(db_error)?;
        }
        Backend::Sqlite => {
            // A write as the first statement takes SQLite's write lock
            // before the usage is read, so concurrent creates queue here.
            sqlx::query("UPDATE compute_servers SET revision = revision WHERE id = ''")
                .execute(&mut *transaction)
                .await
                .map_err(db_error)?;
        }
    }
    let usage = quota::server_usage(&mut *transaction, project_id, None)
        .await
        .map_err(db_error)?;
    let request = template.request;
    let mut count = QuotaCheck {
        limits: &project_limits,
        usage,
    }
    .allowed(template.flavor, request.min_count, request.max_count)
    .map_err(|message| ApiError::new(ErrorKind::QuotaExceeded, message))?;
    if check_user {
        let usage = quota::server_usage(&mut *transaction, project_id, Some(user_id))
            .await
            .map_err(db_error)?;
        count = QuotaCheck {
            limits: &user_limits,
            usage,
        }
        .allowed(template.flavor, request.min_count, count)
        .map_err(|message| ApiError::new(ErrorKind::QuotaExceeded, message))?;
    }

    if let Some(group_id) = &template.server_group {
        let members = server_group::members(&mut *transaction, group_id)
            .await
            .map_err(db_error)?;
        let limit = project_limits
            .get("server_group_members")
            .copied()
            .unwrap_or(-1);
        if limit >= 0 && members.len() as i64 + i64::from(count) > limit {
            return Err(ApiError::new(
                ErrorKind::QuotaExceeded,
                "Quota exceeded, too many servers in group",
            ));
        }
    }

    let now = chrono::Utc::now().timestamp();
    let reservation = reservation_id();
    let servers: Vec<Server> = (0..count)
        .map(|index| template.build(&reservation, index, count, now))
        .collect();
    for server in &servers {
        store::insert(&mut *transaction, server)
            .await
            .map_err(db_error)?;
        if let Some(group_id) = &template.server_group {
            server_group::add_member(&mut *transaction, group_id, &server.id)
                .await
                .map_err(db_error)?;
        }
    }
    transaction.commit().await.map_err(db_error)?;
    tracing::debug!(project_id, user_id = %caller.user_id(), count, "servers stored within quota");
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flavor(vcpus: i64, ram: i64) -> Flavor {
        Flavor {
            id: "1".into(),
            name: "f".into(),
            vcpus,
            ram,
            disk: 1,
            ephemeral: 0,
            swap: 0,
            rxtx_factor: 1.0,
            is_public: true,
            disabled: false,
            description: None,
            created_at: 0,
            extra_specs: BTreeMap::new(),
        }
    }

    fn limits(instances: i64, cores: i64, ram: i64) -> BTreeMap<String, i64> {
        [("instances", instances), ("cores", cores), ("ram", ram)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    #[test]
    fn quota_message_matches_nova() {
        let limits = limits(10, 20, 51200);
        let check = QuotaCheck {
            limits: &limits,
            usage: ServerUsage {
                instances: 10,
                cores: 10,
                ram: 1280,
            },
        };
        assert_eq!(
            check.allowed(&flavor(1, 128), 1, 1).unwrap_err(),
            "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"
        );
    }

    #[test]
    fn quota_allows_part_of_a_range() {
        let limits = limits(10, 20, 51200);
        let check = QuotaCheck {
            limits: &limits,
            usage: ServerUsage {
                instances: 7,
                cores: 7,
                ram: 0,
            },
        };
        assert_eq!(check.allowed(&flavor(1, 128), 2, 5), Ok(3));
        assert!(check.allowed(&flavor(1, 128), 4, 5).is_err());
    }

    #[test]
    fn unlimited_quota_allows_all() {
        let limits = limits(-1, -1, -1);
        let check = QuotaCheck {
            limits: &limits,
            usage: ServerUsage {
                instances: 1000,
                cores: 1000,
                ram: 0,
            },
        };
        assert_eq!(check.allowed(&flavor(4, 128), 1, 3), Ok(3));
    }

    #[test]
    fn several_resources_over_are_listed() {
        let limits = limits(10, 2, 256);
        let check = QuotaCheck {
            limits: &limits,
            usage: ServerUsage {
                instances: 0,
                cores: 2,
                ram: 256,
            },
        };
        assert_eq!(
            check.allowed(&flavor(1, 128), 1, 1).unwrap_err(),
            "Quota exceeded for cores, ram: Requested 1, 128, but already used 2, 256 of 2, 256 cores, ram"
        );
    }

    #[test]
    fn hostnames_are_sanitized() {
        assert_eq!(
            sanitize_hostname("My Server_1.example"),
            "my-server-1-example"
        );
        assert_eq!(sanitize_hostname("--ok--"), "ok");
        assert_eq!(sanitize_hostname("日本"), "");
    }
}
