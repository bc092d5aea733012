//! The Identity v2.0 token API (`POST /v2.0/tokens`) and its version
//! document, for old openrc files and tools that still authenticate with
//! v2.0. Keystone 13.0.0 (Queens) removed v2.0, so only what clients need to
//! get a token is served here.
//!
//! As Keystone's v2.0 did, it serves users and projects of the Default
//! domain only. The tokens are the same Fernet tokens as v3 issues, so they
//! work as `X-Auth-Token` on every service.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use oxstack_core::validate::JsonBody;
use oxstack_core::{body_schema, ApiError, AuthContext};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{authenticate_token, default_scope, verify_password, Authenticated};
use crate::bootstrap::DEFAULT_DOMAIN_ID;
use crate::db::{catalog, projects, roles, users};
use crate::fernet::{new_audit_id, TokenPayload, TokenScope};
use crate::token::{self, Rejection};
use crate::{Identity, IdentityState};

/// The `updated` date Keystone gave its v2.0 version document when it
/// marked v2.0 deprecated (August 2016).
const V2_UPDATED: &str = "2016-08-04T00:00:00Z";

pub fn routes() -> Router<IdentityState> {
    Router::new()
        .route("/v2.0", get(version))
        .route("/v2.0/", get(version))
        .route("/v2.0/tokens", post(issue))
}

/// The v2.0 version entry. keystoneauth posts to its self link + `tokens`.
pub fn v2_entry(public_url: &str) -> Value {
    json!({
        "id": "v2.0",
        "status": "deprecated",
        "updated": V2_UPDATED,
        "links": [
            {"rel": "self", "href": format!("{public_url}/v2.0/")},
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"}
        ],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v2.0+json"}]
    })
}

async fn version(State(state): State<IdentityState>) -> Json<Value> {
    Json(json!({ "version": v2_entry(&state.public_url) }))
}

#[derive(Deserialize)]
pub struct TokenRequest {
    auth: Value,
}

body_schema!(
    TokenRequest,
    json!({
        "type": "object",
        "required": ["auth"],
        "properties": {"auth": {
            "type": "object",
            "properties": {
                "passwordCredentials": {
                    "type": "object",
                    "required": ["password"],
                    "properties": {
                        "username": {"type": "string", "minLength": 1, "maxLength": 255},
                        "userId": {"type": "string", "minLength": 1, "maxLength": 255},
                        "password": {"type": "string", "maxLength": crate::password::MAX_PASSWORD_LEN}
                    }
                },
                "token": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
                "tenantName": {"type": "string", "minLength": 1, "maxLength": 255},
                "tenantId": {"type": "string", "minLength": 1, "maxLength": 255},
                "trust_id": {"type": "string"}
            }
        }}
    })
);

fn unauthorized() -> ApiError {
    ApiError::unauthenticated("The request you have made requires authentication.")
}

/// `POST /v2.0/tokens`: 200 with `{"access": …}` and the token id in the
/// body, as Keystone's v2.0 returned it.
async fn issue(
    State(state): State<IdentityState>,
    JsonBody(request): JsonBody<TokenRequest>,
) -> Result<Json<Value>, ApiError> {
    let auth = &request.auth;
    if auth.get("trust_id").is_some() {
        return Err(ApiError::bad_request(
            "Trusts are not supported; authenticate without trust_id.",
        ));
    }
    let authenticated = if let Some(credentials) = auth.get("passwordCredentials") {
        authenticate_password(&state, credentials).await?
    } else if let Some(token) = auth.get("token") {
        authenticate_v2_token(&state, token["id"].as_str().unwrap_or_default()).await?
    } else {
        return Err(ApiError::bad_request(
            "Invalid input for field 'auth': give passwordCredentials or token.",
        ));
    };
    let scope = resolve_tenant(&state, auth, &authenticated.user_id).await?;

    let mut expires_at = Utc::now() + Duration::seconds(state.config.token_expiration);
    if let Some(parent) = authenticated.expires_at {
        expires_at = expires_at.min(parent);
    }
    let mut audit_ids = vec![new_audit_id()];
    audit_ids.extend(authenticated.parent_audit_id);
    let payload = TokenPayload {
        user_id: authenticated.user_id.clone(),
        methods: authenticated.methods,
        scope,
        expires_at,
        audit_ids,
        application_credential_id: None,
    };
    let token_text = state.tokens.encode(&payload)?;
    let (payload, issued_at) = state
        .tokens
        .decode(&token_text)
        .map_err(Rejection::into_unauthenticated)?;
    let ctx = token::build_context(&state, token_text, payload, issued_at)
        .await
        .map_err(|rejection| match rejection {
            Rejection::Invalid(reason) => {
                tracing::info!(user_id = %authenticated.user_id, %reason, "v2.0 token scope rejected");
                ApiError::unauthenticated(format!(
                    "User {} is unauthorized for the requested tenant; ask an administrator for a role on it.",
                    authenticated.user_id
                ))
            }
            Rejection::Internal(error) => error,
        })?;
    tracing::info!(user_id = %ctx.user_id, project_id = ?ctx.project_id, "issued v2.0 token");
    Ok(Json(render_access(&state, &ctx).await?))
}

async fn authenticate_password(
    state: &Identity,
    credentials: &Value,
) -> Result<Authenticated, ApiError> {
    let user = if let Some(name) = credentials.get("username").and_then(Value::as_str) {
        users::get_by_name(state.pool(), DEFAULT_DOMAIN_ID, name).await?
    } else if let Some(id) = credentials.get("userId").and_then(Value::as_str) {
        users::get(state.pool(), id).await?
    } else {
        return Err(ApiError::bad_request(
            "Invalid input for field 'auth.passwordCredentials': give username or userId.",
        ));
    };
    // v2.0 serves only the Default domain, so other users are not found.
    let user = user.filter(|u| u.domain_id == DEFAULT_DOMAIN_ID);
    let password = credentials["password"].as_str().unwrap_or_default();
    let user_id = verify_password(state, user, password).await?;
    Ok(Authenticated {
        user_id,
        methods: vec!["password".into()],
        parent_audit_id: None,
        expires_at: None,
        application_credential: None,
    })
}

async fn authenticate_v2_token(
    state: &Identity,
    token_id: &str,
) -> Result<Authenticated, ApiError> {
    let authenticated = authenticate_token(state, token_id).await?;
    let in_default_domain = users::get(state.pool(), &authenticated.user_id)
        .await?
        .is_some_and(|u| u.domain_id == DEFAULT_DOMAIN_ID);
    if !in_default_domain {
        return Err(unauthorized());
    }
    Ok(authenticated)
}

/// Resolves `tenantId` or `tenantName` (in the Default domain). Without
/// either, the token is scoped to the user's default project when the user
/// has a role there, and unscoped otherwise, as v3 does.
async fn resolve_tenant(
    state: &Identity,
    auth: &Value,
    user_id: &str,
) -> Result<TokenScope, ApiError> {
    let project = if let Some(id) = auth.get("tenantId").and_then(Value::as_str) {
        projects::get(state.pool(), id).await?
    } else if let Some(name) = auth.get("tenantName").and_then(Value::as_str) {
        projects::get_by_name(state.pool(), DEFAULT_DOMAIN_ID, name).await?
    } else {
        return default_scope(state, user_id).await;
    };
    // Unknown, disabled and non-Default-domain tenants are all 401, as on v3.
    let project = project
        .filter(|p| p.enabled && p.domain_id == DEFAULT_DOMAIN_ID)
        .ok_or_else(unauthorized)?;
    Ok(TokenScope::Project(project.id))
}

/// Renders Keystone v2.0's `access` document for `ctx`.
async fn render_access(state: &Identity, ctx: &AuthContext) -> Result<Value, ApiError> {
    let mut token = json!({
        "id": ctx.token,
        "expires": oxstack_core::time::iso8601(ctx.expires_at),
        "issued_at": oxstack_core::time::iso8601_micros(ctx.issued_at),
        "audit_ids": ctx.audit_ids,
    });
    let mut service_catalog = json!([]);
    if let Some(project_id) = &ctx.project_id {
        let project = projects::get(state.pool(), project_id).await?;
        let description = project
            .as_ref()
            .map(|p| p.description.clone())
            .unwrap_or_default();
        token["tenant"] = json!({
            "id": project_id,
            "name": ctx.project_name,
            "enabled": true,
            "description": description,
        });
        service_catalog = render_catalog(state).await?;
    }
    let all_roles = roles::all_by_id(state.pool()).await?;
    let role_names: Vec<Value> = ctx
        .role_ids
        .iter()
        .filter_map(|id| all_roles.get(id))
        .map(|role| json!({"name": role.name}))
        .collect();
    Ok(json!({"access": {
        "token": token,
        "serviceCatalog": service_catalog,
        "user": {
            "id": ctx.user_id,
            "name": ctx.user_name,
            "username": ctx.user_name,
            "roles": role_names,
            "roles_links": []
        },
        "metadata": {"is_admin": 0, "roles": ctx.role_ids}
    }}))
}

/// Renders the catalog in v2.0's shape: per service, one endpoint entry per
/// region holding the public, internal and admin URLs. Disabled services
/// and endpoints are left out, as in v3 tokens.
async fn render_catalog(state: &Identity) -> Result<Value, ApiError> {
    let endpoints = catalog::list_endpoints(state.pool()).await?;
    let mut entries = Vec::new();
    for service in catalog::list_services(state.pool())
        .await?
        .into_iter()
        .filter(|s| s.enabled)
    {
        // Region → entry; BTreeMap keeps the output order stable.
        let mut by_region: BTreeMap<String, Value> = BTreeMap::new();
        for endpoint in endpoints
            .iter()
            .filter(|e| e.enabled && e.service_id == service.id)
        {
            let region = endpoint.region_id.clone().unwrap_or_default();
            // Keystone's v2.0 gave each entry the id of the first endpoint
            // it met in that region, and publicURL even when empty.
            let entry = by_region
                .entry(region.clone())
                .or_insert_with(|| json!({"id": endpoint.id, "region": region, "publicURL": ""}));
            entry[format!("{}URL", endpoint.interface)] = json!(endpoint.url);
        }
        entries.push(json!({
            "type": service.service_type,
            "name": service.name,
            "endpoints": by_region.into_values().collect::<Vec<_>>(),
            "endpoints_links": []
        }));
    }
    Ok(Value::Array(entries))
}
