//! `/v3/users/{user_id}/application_credentials`: secrets a user makes for
//! an application, bound to the project of the token that created them and
//! carrying a subset of that token's roles. Authentication with them is in
//! `super::auth`.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use chrono::Utc;
use oxstack_core::error::ErrorKind;
use oxstack_core::validate::JsonBody;
use oxstack_core::{body_schema, ApiError, RequestContext};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{list_body, name_schema, self_link, QueryMap};
use crate::db::app_creds::{self, ApplicationCredential};
use crate::db::roles;
use crate::password::MAX_PASSWORD_LEN;
use crate::policy::authorize;
use crate::{Identity, IdentityState};

/// Random bytes in a generated secret, as Keystone generates them; the
/// secret is their URL-safe base64 without padding (86 characters).
const SECRET_BYTES: usize = 64;

pub fn routes() -> Router<IdentityState> {
    Router::new()
        .route(
            "/v3/users/{user_id}/application_credentials",
            get(list).post(create),
        )
        .route(
            "/v3/users/{user_id}/application_credentials/{application_credential_id}",
            get(show).delete(remove),
        )
}

fn collection_path(user_id: &str) -> String {
    format!("users/{user_id}/application_credentials")
}

/// Renders a credential without its secret. `all_roles` resolves role ids;
/// roles deleted since the credential was made are left out.
fn render(
    state: &Identity,
    credential: &ApplicationCredential,
    all_roles: &HashMap<String, roles::Role>,
) -> Value {
    let roles: Vec<Value> = credential
        .role_ids
        .iter()
        .filter_map(|id| all_roles.get(id))
        .map(|role| json!({"id": role.id, "name": role.name, "domain_id": role.domain_id}))
        .collect();
    json!({
        "id": credential.id,
        "name": credential.name,
        "description": (!credential.description.is_empty()).then_some(&credential.description),
        "expires_at": credential.expires_at_micros.map(render_expiry),
        "project_id": credential.project_id,
        "roles": roles,
        "unrestricted": credential.unrestricted,
        "access_rules": [],
        "links": self_link(state, &format!("{}/{}", collection_path(&credential.user_id), credential.id)),
    })
}

/// Formats an expiry as Keystone returns it: UTC without a zone suffix, with
/// microseconds (`2030-01-01T12:00:00.000000`).
fn render_expiry(micros: i64) -> String {
    let at = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

#[derive(Deserialize)]
pub struct CreateBody {
    application_credential: Value,
}

body_schema!(
    CreateBody,
    json!({
        "type": "object",
        "required": ["application_credential"],
        "properties": {"application_credential": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": false,
            "properties": {
                "id": {"type": "string"},
                "name": name_schema(),
                "description": {"type": ["string", "null"], "maxLength": 65535},
                "secret": {"type": ["string", "null"], "maxLength": MAX_PASSWORD_LEN},
                "expires_at": {"type": ["string", "null"]},
                "project_id": {"type": "string"},
                "system": {"type": ["string", "null"]},
                "unrestricted": {"type": ["boolean", "null"]},
                "access_rules": {"type": "array"},
                "roles": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "minProperties": 1,
                        "maxProperties": 1,
                        "additionalProperties": false,
                        "properties": {
                            "id": {"type": "string", "minLength": 1, "maxLength": 64},
                            "name": name_schema()
                        }
                    }
                }
            }
        }}
    })
);

fn user_target(user_id: &str) -> Value {
    json!({"user": {"id": user_id}})
}

fn invalid(detail: &str) -> ApiError {
    ApiError::bad_request(format!("Invalid application credential: {detail}"))
}

/// Rejects managing application credentials with a token made from a
/// restricted application credential, as Keystone does, so that a leaked
/// credential cannot mint more of itself.
async fn check_unrestricted(state: &Identity, ctx: &RequestContext) -> Result<(), ApiError> {
    let Some(credential_id) = &ctx.auth.application_credential_id else {
        return Ok(());
    };
    let unrestricted = app_creds::get(state.pool(), credential_id)
        .await?
        .is_some_and(|c| c.unrestricted);
    if unrestricted {
        return Ok(());
    }
    Err(ApiError::forbidden(
        "You are not authorized to perform the requested action: Using method 'application_credential' \
         is not allowed for managing additional application credentials.",
    ))
}

async fn list(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(user_id): Path<String>,
    query: QueryMap,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:list_application_credentials",
        &user_target(&user_id),
    )?;
    let all_roles = roles::all_by_id(state.pool()).await?;
    let items = app_creds::list_for_user(state.pool(), &user_id)
        .await?
        .iter()
        .filter(|c| query.get("name").is_none_or(|name| *name == c.name))
        .map(|c| render(&state, c, &all_roles))
        .collect();
    Ok(Json(list_body(
        &state,
        "application_credentials",
        &collection_path(&user_id),
        items,
    )))
}

async fn create(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(user_id): Path<String>,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:create_application_credential",
        &user_target(&user_id),
    )?;
    check_unrestricted(&state, &ctx).await?;
    if ctx.auth.user_id != user_id {
        return Err(ApiError::forbidden(
            "You are not authorized to perform the requested action: \
             Cannot create an application credential for another user.",
        ));
    }
    let project_id = ctx.auth.project_id.clone().ok_or_else(|| {
        invalid(
            "a project-scoped token is required; the credential is bound to the token's project.",
        )
    })?;
    let input = body.application_credential;
    if input
        .get("access_rules")
        .and_then(Value::as_array)
        .is_some_and(|rules| !rules.is_empty())
    {
        return Err(ApiError::new(
            ErrorKind::NotImplemented,
            "Access rules on application credentials are not supported; create the credential without them.",
        ));
    }

    let expires_at = match input.get("expires_at").and_then(Value::as_str) {
        Some(text) => Some(parse_expiry(text)?),
        None => None,
    };
    let role_ids = requested_roles(&state, &ctx, input.get("roles")).await?;
    let secret = match input
        .get("secret")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(secret) => secret.to_owned(),
        None => generate_secret(),
    };
    let credential = ApplicationCredential {
        id: crate::db::new_id(),
        name: input["name"].as_str().unwrap_or_default().to_owned(),
        user_id,
        project_id,
        secret_hash: state.passwords.hash(&secret).await?,
        description: input
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        expires_at_micros: expires_at,
        unrestricted: input
            .get("unrestricted")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        role_ids,
    };
    app_creds::insert(state.pool(), &credential).await?;
    tracing::info!(
        user_id = %credential.user_id,
        application_credential_id = %credential.id,
        project_id = %credential.project_id,
        "created application credential"
    );

    let all_roles = roles::all_by_id(state.pool()).await?;
    let mut body = render(&state, &credential, &all_roles);
    // The only time the secret is shown: only its hash is stored.
    body["secret"] = json!(secret);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "application_credential": body })),
    ))
}

/// Parses `expires_at` as Keystone does (ISO 8601, UTC when no zone is
/// given) and rejects times in the past.
fn parse_expiry(text: &str) -> Result<i64, ApiError> {
    let at = oxstack_core::time::parse(text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Invalid input for field 'application_credential.expires_at': '{text}' is not an ISO 8601 \
             time such as 2030-01-01T12:00:00Z."
        ))
    })?;
    if at <= Utc::now() {
        return Err(ApiError::bad_request(
            "The 'expires_at' must not be before now.",
        ));
    }
    Ok(at.timestamp_micros())
}

/// Resolves the requested roles, adds the roles they imply, and checks that
/// the caller's token has every one (Keystone: 400). Without a request,
/// the credential gets all of the token's roles.
async fn requested_roles(
    state: &Identity,
    ctx: &RequestContext,
    requested: Option<&Value>,
) -> Result<Vec<String>, ApiError> {
    let requested = requested
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty());
    let Some(requested) = requested else {
        return Ok(ctx.auth.role_ids.clone());
    };
    let mut ids = BTreeSet::new();
    for role in requested {
        if let Some(id) = role.get("id").and_then(Value::as_str) {
            ids.insert(id.to_owned());
            continue;
        }
        let name = role.get("name").and_then(Value::as_str).unwrap_or_default();
        let found = roles::list(state.pool(), Some(name), None)
            .await?
            .into_iter()
            .next();
        let found =
            found.ok_or_else(|| ApiError::not_found(format!("Could not find role: {name}.")))?;
        ids.insert(found.id);
    }
    let edges = roles::implications(state.pool()).await?;
    let ids = roles::expand_implied(&ids, &edges);
    if ids.iter().any(|id| !ctx.auth.role_ids.contains(id)) {
        return Err(invalid(
            "Cannot create an application credential with unassigned role",
        ));
    }
    Ok(ids.into_iter().collect())
}

fn generate_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Finds the credential and authorises `action` against its real owner, not
/// the user named in the URL, so that naming oneself in the path does not
/// reach another user's credential. Unknown ids and ids of another user's
/// credential are both 404 once authorised.
async fn find_authorized(
    state: &Identity,
    ctx: &RequestContext,
    action: &str,
    user_id: &str,
    id: &str,
) -> Result<ApplicationCredential, ApiError> {
    let found = app_creds::get(state.pool(), id).await?;
    let owner = found.as_ref().map_or(user_id, |c| c.user_id.as_str());
    authorize(state, ctx, action, &user_target(owner))?;
    found
        .filter(|c| c.user_id == user_id)
        .ok_or_else(|| ApiError::not_found(format!("Could not find Application Credential: {id}.")))
}

async fn show(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path((user_id, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let credential = find_authorized(
        &state,
        &ctx,
        "identity:get_application_credential",
        &user_id,
        &id,
    )
    .await?;
    let all_roles = roles::all_by_id(state.pool()).await?;
    Ok(Json(
        json!({ "application_credential": render(&state, &credential, &all_roles) }),
    ))
}

/// Deletes the credential; tokens made from it stop validating because
/// token validation looks the credential up.
async fn remove(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path((user_id, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let credential = find_authorized(
        &state,
        &ctx,
        "identity:delete_application_credential",
        &user_id,
        &id,
    )
    .await?;
    check_unrestricted(&state, &ctx).await?;
    app_creds::delete(state.pool(), &credential.id).await?;
    tracing::info!(user_id = %user_id, application_credential_id = %id, "deleted application credential");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_is_url_safe() {
        let secret = generate_secret();
        assert_eq!(secret.len(), 86);
        assert!(
            secret
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{secret}"
        );
        assert_ne!(secret, generate_secret());
    }

    #[test]
    fn expiry_renders_like_keystone() {
        assert_eq!(
            render_expiry(1_900_000_000_123_456),
            "2030-03-17T17:46:40.123456"
        );
    }

    #[test]
    fn past_expiry_is_rejected() {
        assert!(parse_expiry("2001-01-01T00:00:00Z").is_err());
        assert!(parse_expiry("next week").is_err());
        assert_eq!(
            parse_expiry("2999-01-01T00:00:00.123456").unwrap() % 1_000_000,
            123_456
        );
    }
}
