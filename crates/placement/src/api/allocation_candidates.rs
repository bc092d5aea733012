//! `GET /allocation_candidates` (microversion 1.10), with granular request
//! groups (`resources1`, `required1`, `member_of1`, `group_policy`) from
//! 1.25.

use std::collections::BTreeSet;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::{ApiError, RequestContext};
use serde_json::{json, Map, Value};

use super::query::{parse_member_of_key, parse_required, parse_resources, QueryParams};
use super::{authorize, check_names_exist, require, PlacementState};
use crate::candidates::{Candidate, CandidateRequest};
use crate::catalog::NameKind;
use crate::snapshot::Snapshot;

/// The prefixes of keys that take a group suffix from microversion 1.25.
const GROUPED: &[&str] = &["resources", "required", "member_of"];

pub fn routes() -> Router<PlacementState> {
    Router::new().route("/allocation_candidates", get(list))
}

/// Splits `resources12` into (`resources`, `12`); an unsuffixed key has an
/// empty suffix. Suffixes are digits, as microversions 1.25 to 1.32 allow.
fn split_group_key(key: &str) -> Option<(&'static str, &str)> {
    GROUPED.iter().find_map(|prefix| {
        let suffix = key.strip_prefix(prefix)?;
        suffix
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then_some((*prefix, suffix))
    })
}

fn parse_params(
    version: Microversion,
    pairs: Vec<(String, String)>,
) -> Result<QueryParams, ApiError> {
    let mut plain = vec!["resources"];
    for (minor, key) in [
        (16, "limit"),
        (17, "required"),
        (21, "member_of"),
        (25, "group_policy"),
    ] {
        if version.at_least(1, minor) {
            plain.push(key);
        }
    }
    let granular = version.at_least(1, 25);
    let is_allowed = |key: &str| {
        plain.contains(&key)
            || (granular && split_group_key(key).is_some_and(|(_, suffix)| !suffix.is_empty()))
    };
    let mut expected = plain.join(", ");
    if granular {
        expected.push_str(", resourcesN, requiredN, member_ofN");
    }
    QueryParams::matching(pairs, is_allowed, &expected)
}

/// Merges the request groups into one request for a single provider, and
/// returns whether the groups can share a provider at all. With
/// `group_policy=isolate`, numbered groups need distinct providers, so two
/// or more of them never fit on one.
// NOTE: min_unit, max_unit and step_size are checked against the summed
// amount of a class when several groups request it, not per group.
fn merge_groups(
    params: &QueryParams,
    version: Microversion,
) -> Result<(CandidateRequest, bool), ApiError> {
    let mut suffixes: BTreeSet<&str> = BTreeSet::new();
    let mut with_resources: BTreeSet<&str> = BTreeSet::new();
    for key in params.keys() {
        if let Some((prefix, suffix)) = split_group_key(key) {
            suffixes.insert(suffix);
            if prefix == "resources" {
                with_resources.insert(suffix);
            }
        }
    }
    if let Some(orphan) = suffixes.iter().find(|s| !with_resources.contains(*s)) {
        return Err(ApiError::bad_request(format!(
            "All traits parameters must be associated with resources. Found the following orphaned traits keys: required{orphan} or member_of{orphan}."
        )));
    }
    if with_resources.is_empty() {
        return Err(ApiError::bad_request(
            "Invalid query string parameters: 'resources' is a required property.",
        ));
    }

    let numbered = suffixes.iter().filter(|s| !s.is_empty()).count();
    let policy = params.one("group_policy")?;
    if numbered > 1 && policy.is_none() {
        return Err(ApiError::bad_request(
            "The \"group_policy\" parameter is required when specifying more than one \"resources{N}\" parameter.",
        ));
    }
    let isolate = match policy {
        None | Some("none") => false,
        Some("isolate") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid query string parameters: group_policy must be 'none' or 'isolate'; got '{other}'."
            )))
        }
    };

    let mut request = CandidateRequest::default();
    for suffix in &suffixes {
        let key = |prefix: &str| format!("{prefix}{suffix}");
        if let Some(text) = params.one(&key("resources"))? {
            for (class, amount) in parse_resources(text)? {
                *request.resources.entry(class).or_default() += amount;
            }
        }
        if let Some(text) = params.one(&key("required"))? {
            let (required, forbidden) = parse_required(text, version.at_least(1, 22))?;
            request.required.extend(required);
            request.forbidden.extend(forbidden);
        }
        request.member_of.extend(parse_member_of_key(
            params,
            &key("member_of"),
            version.at_least(1, 24),
        )?);
    }
    if let Some(limit) = params.one("limit")? {
        let limit: usize = limit.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid query string parameters: limit must be a positive integer; got '{limit}'."
            ))
        })?;
        request.limit = Some(limit);
    }
    Ok((request, !(isolate && numbered > 1)))
}

async fn list(
    State(state): State<PlacementState>,
    Extension(version): Extension<Microversion>,
    ctx: RequestContext,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    require(version, 10)?;
    authorize(&state, &ctx, "placement:allocation_candidates:list")?;
    let params = parse_params(version, pairs)?;
    let (request, satisfiable) = merge_groups(&params, version)?;
    let classes: Vec<String> = request.resources.keys().cloned().collect();
    check_names_exist(&state, NameKind::ResourceClass, &classes).await?;
    let traits = [request.required.clone(), request.forbidden.clone()].concat();
    check_names_exist(&state, NameKind::Trait, &traits).await?;
    if !satisfiable {
        return Ok(Json(
            json!({"allocation_requests": [], "provider_summaries": {}}),
        ));
    }

    let (candidates, snapshot) = state.candidates_with_snapshot(&request).await?;
    let requests: Vec<Value> = candidates
        .iter()
        .map(|c| render_request(c, version))
        .collect();
    let summaries: Map<String, Value> = candidates
        .iter()
        .map(|c| (c.provider.0.clone(), render_summary(c, &snapshot, version)))
        .collect();
    Ok(Json(
        json!({"allocation_requests": requests, "provider_summaries": summaries}),
    ))
}

/// Renders one allocation request in the form a `PUT /allocations` at the
/// same microversion takes.
fn render_request(candidate: &Candidate, version: Microversion) -> Value {
    if version.at_least(1, 12) {
        let mut allocations = Map::new();
        allocations.insert(
            candidate.provider.0.clone(),
            json!({"resources": candidate.allocations}),
        );
        return json!({ "allocations": allocations });
    }
    json!({"allocations": [{
        "resource_provider": {"uuid": candidate.provider},
        "resources": candidate.allocations,
    }]})
}

/// Renders the capacity and usage of the requested classes (of every class
/// of the provider from microversion 1.27), and the provider's traits from
/// 1.17.
fn render_summary(candidate: &Candidate, snapshot: &Snapshot, version: Microversion) -> Value {
    let provider = &candidate.provider;
    let mut resources = Map::new();
    for (class, inventory) in snapshot.inventories.get(provider).into_iter().flatten() {
        if version.at_least(1, 27) || candidate.allocations.contains_key(class) {
            let used = snapshot.used(provider, class);
            resources.insert(
                class.clone(),
                json!({"capacity": inventory.capacity(), "used": used}),
            );
        }
    }
    let mut body = json!({ "resources": resources });
    if version.at_least(1, 17) {
        let traits: Vec<&String> = snapshot
            .traits
            .get(provider)
            .map(|t| t.iter().collect())
            .unwrap_or_default();
        body["traits"] = json!(traits);
    }
    body
}
