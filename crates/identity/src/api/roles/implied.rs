//! Implied roles: `PUT/GET/HEAD/DELETE /v3/roles/{prior}/implies/{implied}`,
//! `GET /v3/roles/{prior}/implies` and `GET /v3/role_inferences`. A token
//! carrying the prior role also carries every role it implies, transitively.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::{ApiError, RequestContext};
use serde_json::{json, Value};

use super::find;
use crate::api::self_link;
use crate::db::roles::{self, Role};
use crate::policy::authorize;
use crate::{Identity, IdentityState};

/// Roles no other role may imply, as in Keystone's default
/// `[assignment] prohibited_implied_role`: implying `admin` would hand out
/// cloud administration through an innocent-looking role.
const PROHIBITED_IMPLIED: &[&str] = &["admin"];

pub fn routes() -> Router<IdentityState> {
    Router::new()
        .route("/v3/roles/{role_id}/implies", get(list_implied))
        .route(
            "/v3/roles/{role_id}/implies/{implied_role_id}",
            get(show).head(check).put(create).delete(remove),
        )
        .route("/v3/role_inferences", get(list_inferences))
}

/// Renders a role in the `{id, name, links}` form of inference bodies.
fn role_ref(state: &Identity, role: &Role) -> Value {
    json!({"id": role.id, "name": role.name, "links": self_link(state, &format!("roles/{}", role.id))})
}

fn inference_body(state: &Identity, prior: &Role, implied: &Role) -> Value {
    json!({
        "role_inference": {"prior_role": role_ref(state, prior), "implies": role_ref(state, implied)},
        "links": self_link(state, &format!("roles/{}/implies/{}", prior.id, implied.id)),
    })
}

fn target(prior: &Role, implied: Option<&Role>) -> Value {
    let mut target = json!({"prior_role": {"id": prior.id, "domain_id": prior.domain_id}});
    if let Some(implied) = implied {
        target["implied_role"] = json!({"id": implied.id, "domain_id": implied.domain_id});
    }
    target
}

/// Finds both roles of an inference rule, the prior one first so that 404
/// names it when both are missing.
async fn find_pair(
    state: &Identity,
    prior_id: &str,
    implied_id: &str,
) -> Result<(Role, Role), ApiError> {
    let prior = find(state, prior_id).await?;
    let implied = find(state, implied_id).await?;
    Ok((prior, implied))
}

async fn implication_exists(
    state: &Identity,
    prior_id: &str,
    implied_id: &str,
) -> Result<bool, ApiError> {
    let edges = roles::implications(state.pool()).await?;
    Ok(edges.iter().any(|(p, i)| p == prior_id && i == implied_id))
}

fn not_implied(prior_id: &str, implied_id: &str) -> ApiError {
    ApiError::not_found(format!("{prior_id} does not imply {implied_id}."))
}

async fn list_implied(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(prior_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:list_implied_roles",
        &json!({"prior_role": {"id": prior_id}}),
    )?;
    let prior = find(&state, &prior_id).await?;
    let all = roles::all_by_id(state.pool()).await?;
    let implies: Vec<Value> = roles::implications(state.pool())
        .await?
        .iter()
        .filter(|(p, _)| *p == prior.id)
        .filter_map(|(_, implied)| all.get(implied))
        .map(|r| role_ref(&state, r))
        .collect();
    Ok(Json(json!({
        "role_inference": {"prior_role": role_ref(&state, &prior), "implies": implies},
        "links": self_link(&state, &format!("roles/{prior_id}/implies")),
    })))
}

async fn show(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path((prior_id, implied_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (prior, implied) = find_pair(&state, &prior_id, &implied_id).await?;
    authorize(
        &state,
        &ctx,
        "identity:get_implied_role",
        &target(&prior, Some(&implied)),
    )?;
    if !implication_exists(&state, &prior.id, &implied.id).await? {
        return Err(not_implied(&prior_id, &implied_id));
    }
    Ok(Json(inference_body(&state, &prior, &implied)))
}

// Keystone returns 204 for HEAD where GET returns 200, and clients check
// for 204, so HEAD has its own handler.
async fn check(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path((prior_id, implied_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (prior, implied) = find_pair(&state, &prior_id, &implied_id).await?;
    authorize(
        &state,
        &ctx,
        "identity:get_implied_role",
        &target(&prior, Some(&implied)),
    )?;
    if !implication_exists(&state, &prior.id, &implied.id).await? {
        return Err(not_implied(&prior_id, &implied_id));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn create(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path((prior_id, implied_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (prior, implied) = find_pair(&state, &prior_id, &implied_id).await?;
    authorize(
        &state,
        &ctx,
        "identity:create_implied_role",
        &target(&prior, Some(&implied)),
    )?;
    if PROHIBITED_IMPLIED.contains(&implied.name.as_str()) {
        return Err(ApiError::forbidden(format!(
            "Role {} ({}) cannot be an implied role.",
            implied.id, implied.name
        )));
    }
    if prior.domain_id.is_none() && implied.domain_id.is_some() {
        return Err(ApiError::forbidden(format!(
            "Global role cannot imply a domain-specific role: {} is specific to domain {}.",
            implied.id,
            implied.domain_id.as_deref().unwrap_or_default()
        )));
    }
    let edges = roles::implications(state.pool()).await?;
    if edges
        .iter()
        .any(|(p, i)| *p == prior.id && *i == implied.id)
    {
        return Err(ApiError::conflict(format!(
            "Conflict occurred attempting to store implied_role - {} already implies {}.",
            prior.id, implied.id
        )));
    }
    if creates_cycle(&edges, &prior.id, &implied.id) {
        // NOTE: Keystone (2026 master) stores such rules and stops expanding
        // at the cycle; OxStack rejects them because a cycle makes every
        // role on it equivalent, which is never what an operator means.
        return Err(ApiError::conflict(format!(
            "Role {} already implies role {}, directly or through other roles; \
             the rule {} implies {} would create a cycle.",
            implied.id, prior.id, prior.id, implied.id
        )));
    }
    roles::add_implication(state.pool(), &prior.id, &implied.id).await?;
    tracing::info!(prior_role_id = %prior.id, implied_role_id = %implied.id, "created implied role");
    Ok((
        StatusCode::CREATED,
        Json(inference_body(&state, &prior, &implied)),
    ))
}

/// Checks whether adding `prior` → `implied` closes a loop: true when
/// `prior` is `implied` or is reachable from it.
fn creates_cycle(edges: &[(String, String)], prior: &str, implied: &str) -> bool {
    let start: BTreeSet<String> = [implied.to_owned()].into();
    roles::expand_implied(&start, edges).contains(prior)
}

async fn remove(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path((prior_id, implied_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (prior, implied) = find_pair(&state, &prior_id, &implied_id).await?;
    authorize(
        &state,
        &ctx,
        "identity:delete_implied_role",
        &target(&prior, Some(&implied)),
    )?;
    if !roles::remove_implication(state.pool(), &prior.id, &implied.id).await? {
        return Err(not_implied(&prior_id, &implied_id));
    }
    tracing::info!(prior_role_id = %prior.id, implied_role_id = %implied.id, "deleted implied role");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_inferences(
    State(state): State<IdentityState>,
    ctx: RequestContext,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:list_role_inference_rules",
        &json!({}),
    )?;
    let all = roles::all_by_id(state.pool()).await?;
    let mut by_prior: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let edges = roles::implications(state.pool()).await?;
    for (prior, implied) in &edges {
        if let Some(implied) = all.get(implied) {
            by_prior
                .entry(prior.as_str())
                .or_default()
                .push(role_ref(&state, implied));
        }
    }
    let inferences: Vec<Value> = by_prior
        .into_iter()
        .filter_map(|(prior, implies)| {
            all.get(prior)
                .map(|p| json!({"prior_role": role_ref(&state, p), "implies": implies}))
        })
        .collect();
    Ok(Json(json!({ "role_inferences": inferences })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(prior: &str, implied: &str) -> (String, String) {
        (prior.to_owned(), implied.to_owned())
    }

    #[test]
    fn self_implication_is_a_cycle() {
        assert!(creates_cycle(&[], "a", "a"));
    }

    #[test]
    fn closing_a_chain_is_a_cycle() {
        let edges = [edge("a", "b"), edge("b", "c")];
        assert!(creates_cycle(&edges, "c", "a"));
        assert!(!creates_cycle(&edges, "a", "c"));
        assert!(!creates_cycle(&edges, "d", "a"));
    }
}
