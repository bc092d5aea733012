//! `/v3/auth/…`: issuing, validating and revoking tokens, and what a token
//! gives access to (catalog, projects, domains).

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Duration, Utc};
use oxstack_core::validate::JsonBody;
use oxstack_core::{body_schema, ApiError, RequestContext};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{list_body, QueryMap};
use crate::db::{app_creds, assignments, domains, groups, projects, users};
use crate::fernet::{new_audit_id, TokenPayload, TokenScope};
use crate::token::{self, Rejection};
use crate::{Identity, IdentityState};

const SUBJECT_TOKEN: &str = "x-subject-token";

pub fn routes() -> Router<IdentityState> {
    Router::new()
        .route(
            "/v3/auth/tokens",
            get(validate).head(check).post(issue).delete(revoke),
        )
        .route("/v3/auth/catalog", get(auth_catalog))
        .route("/v3/auth/projects", get(auth_projects))
        .route("/v3/auth/domains", get(auth_domains))
}

#[derive(Deserialize)]
pub struct AuthRequest {
    auth: Value,
}

fn named_ref_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 255},
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "domain": {"type": "object", "properties": {
                "id": {"type": "string", "minLength": 1, "maxLength": 255},
                "name": {"type": "string", "minLength": 1, "maxLength": 255}
            }}
        }
    })
}

body_schema!(
    AuthRequest,
    json!({
        "type": "object",
        "required": ["auth"],
        "properties": {
            "auth": {
                "type": "object",
                "required": ["identity"],
                "properties": {
                    "identity": {
                        "type": "object",
                        "required": ["methods"],
                        "properties": {
                            "methods": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                            "password": {
                                "type": "object",
                                "required": ["user"],
                                "properties": {"user": {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "string", "minLength": 1, "maxLength": 255},
                                        "name": {"type": "string", "minLength": 1, "maxLength": 255},
                                        "password": {"type": "string", "maxLength": 4096},
                                        "domain": named_ref_schema()
                                    }
                                }}
                            },
                            "token": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
                            "application_credential": {
                                "type": "object",
                                "required": ["secret"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "name": {"type": "string"},
                                    "secret": {"type": "string"},
                                    "user": named_ref_schema()
                                }
                            }
                        }
                    },
                    "scope": {
                        "type": ["object", "string"],
                        "properties": {
                            "project": named_ref_schema(),
                            "domain": named_ref_schema(),
                            "system": {"type": "object"}
                        }
                    }
                }
            }
        }
    })
);

fn unauthorized() -> ApiError {
    ApiError::unauthenticated("The request you have made requires authentication.")
}

/// The identity that the auth methods proved.
pub(crate) struct Authenticated {
    pub user_id: String,
    pub methods: Vec<String>,
    /// For the `token` method: the audit chain and expiry to keep.
    pub parent_audit_id: Option<String>,
    pub expires_at: Option<chrono::DateTime<Utc>>,
    /// For application credentials: the fixed project and the credential.
    pub application_credential: Option<app_creds::ApplicationCredential>,
}

async fn issue(
    State(state): State<IdentityState>,
    query: QueryMap,
    JsonBody(request): JsonBody<AuthRequest>,
) -> Result<Response, ApiError> {
    let identity = &request.auth["identity"];
    let methods: Vec<String> = identity["methods"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let authenticated = authenticate(&state, identity, &methods).await?;

    let scope = match &authenticated.application_credential {
        Some(credential) => {
            if request.auth.get("scope").is_some_and(|s| !s.is_null()) {
                return Err(ApiError::unauthenticated(
                    "Application credentials cannot request a scope; the credential's project is used.",
                ));
            }
            TokenScope::Project(credential.project_id.clone())
        }
        None => resolve_scope(&state, request.auth.get("scope"), &authenticated.user_id).await?,
    };

    let now = Utc::now();
    let mut expires_at = now + Duration::seconds(state.config.token_expiration);
    if let Some(parent_expiry) = authenticated.expires_at {
        expires_at = expires_at.min(parent_expiry);
    }
    let mut audit_ids = vec![new_audit_id()];
    audit_ids.extend(authenticated.parent_audit_id.clone());
    let payload = TokenPayload {
        user_id: authenticated.user_id.clone(),
        methods: authenticated.methods.clone(),
        scope: scope.clone(),
        expires_at,
        audit_ids,
        application_credential_id: authenticated
            .application_credential
            .as_ref()
            .map(|c| c.id.clone()),
    };
    let token_text = state.tokens.encode(&payload)?;
    let (payload, issued_at) = state
        .tokens
        .decode(&token_text)
        .map_err(Rejection::into_unauthenticated)?;
    let ctx = token::build_context(&state, token_text.clone(), payload, issued_at)
        .await
        .map_err(|rejection| match rejection {
            Rejection::Invalid(reason) => {
                tracing::info!(user_id = %authenticated.user_id, %reason, "token scope rejected");
                ApiError::unauthenticated(format!(
                    "User {} has no access to the requested scope; ask an administrator for a role on it.",
                    authenticated.user_id
                ))
            }
            Rejection::Internal(error) => error,
        })?;
    tracing::info!(user_id = %ctx.user_id, project_id = ?ctx.project_id, "issued token");

    let body = token::render(&state, &ctx, !query.contains_key("nocatalog")).await?;
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let header = HeaderValue::from_str(&token_text).map_err(ApiError::internal)?;
    response.headers_mut().insert(SUBJECT_TOKEN, header);
    Ok(response)
}

async fn authenticate(
    state: &Identity,
    identity: &Value,
    methods: &[String],
) -> Result<Authenticated, ApiError> {
    if methods.iter().any(|m| m == "application_credential") {
        return authenticate_application_credential(state, &identity["application_credential"])
            .await;
    }
    if methods.iter().any(|m| m == "password") {
        let user = identity.pointer("/password/user").ok_or_else(|| {
            ApiError::bad_request(
                "Invalid input for field 'identity.password.user': the field is required.",
            )
        })?;
        let user_id = check_password(state, user).await?;
        return Ok(Authenticated {
            user_id,
            methods: vec!["password".into()],
            parent_audit_id: None,
            expires_at: None,
            application_credential: None,
        });
    }
    if methods.iter().any(|m| m == "token") {
        let token_id = identity
            .pointer("/token/id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "Invalid input for field 'identity.token.id': the field is required.",
                )
            })?;
        return authenticate_token(state, token_id).await;
    }
    Err(ApiError::unauthenticated(format!(
        "Unsupported authentication methods {methods:?}; use password, token or application_credential."
    )))
}

/// Authenticates with an existing token, keeping its audit chain and its
/// expiry (a rescoped token never outlives the one it came from).
pub(crate) async fn authenticate_token(
    state: &Identity,
    token_id: &str,
) -> Result<Authenticated, ApiError> {
    let (payload, _) = state
        .tokens
        .decode(token_id)
        .map_err(Rejection::into_unauthenticated)?;
    let ctx = token::resolve(state, token_id)
        .await
        .map_err(Rejection::into_unauthenticated)?;
    if payload.application_credential_id.is_some() {
        return Err(ApiError::forbidden(
            "A token made from an application credential cannot be rescoped.",
        ));
    }
    let mut methods = payload.methods.clone();
    if !methods.iter().any(|m| m == "token") {
        methods.push("token".into());
    }
    Ok(Authenticated {
        user_id: ctx.user_id,
        methods,
        parent_audit_id: payload.audit_ids.last().cloned(),
        expires_at: Some(payload.expires_at),
        application_credential: None,
    })
}

async fn find_domain_ref(
    state: &Identity,
    domain: &Value,
) -> Result<Option<domains::Domain>, ApiError> {
    if let Some(id) = domain.get("id").and_then(Value::as_str) {
        return domains::get(state.pool(), id).await;
    }
    if let Some(name) = domain.get("name").and_then(Value::as_str) {
        return domains::get_by_name(state.pool(), name).await;
    }
    Err(ApiError::bad_request(
        "Invalid input for field 'domain': give its id or name.",
    ))
}

async fn find_user_ref(state: &Identity, user: &Value) -> Result<Option<users::User>, ApiError> {
    if let Some(id) = user.get("id").and_then(Value::as_str) {
        return users::get(state.pool(), id).await;
    }
    let name = user.get("name").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field 'user': give its id, or its name and domain.",
        )
    })?;
    let domain = user.get("domain").ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field 'user.domain': a user given by name needs its domain.",
        )
    })?;
    let Some(domain) = find_domain_ref(state, domain).await? else {
        return Ok(None);
    };
    users::get_by_name(state.pool(), &domain.id, name).await
}

async fn check_password(state: &Identity, user_ref: &Value) -> Result<String, ApiError> {
    let password = user_ref
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let user = find_user_ref(state, user_ref).await?;
    verify_password(state, user, password).await
}

/// Checks `password` for `user` (absent when the name was unknown) and that
/// the user and its domain are enabled. Every failure is the same 401, so
/// callers cannot probe which users exist.
pub(crate) async fn verify_password(
    state: &Identity,
    user: Option<users::User>,
    password: &str,
) -> Result<String, ApiError> {
    let user = user.ok_or_else(|| {
        tracing::info!("password auth for unknown user");
        unauthorized()
    })?;
    let Some(hash) = user.password_hash.as_deref() else {
        return Err(unauthorized());
    };
    if !state.passwords.verify(&user.id, password, hash).await? {
        tracing::info!(user_id = %user.id, "wrong password");
        return Err(unauthorized());
    }
    let domain_enabled = domains::get(state.pool(), &user.domain_id)
        .await?
        .is_some_and(|d| d.enabled);
    if !user.enabled || !domain_enabled {
        tracing::info!(user_id = %user.id, "password auth for disabled user or domain");
        return Err(unauthorized());
    }
    Ok(user.id)
}

async fn authenticate_application_credential(
    state: &Identity,
    body: &Value,
) -> Result<Authenticated, ApiError> {
    let secret = body
        .get("secret")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let credential = if let Some(id) = body.get("id").and_then(Value::as_str) {
        app_creds::get(state.pool(), id).await?
    } else {
        let name = body.get("name").and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad_request("Invalid input for field 'application_credential': give its id, or its name and user.")
        })?;
        let user = body.get("user").ok_or_else(|| {
            ApiError::bad_request(
                "Invalid input for field 'application_credential.user': required with a name.",
            )
        })?;
        match find_user_ref(state, user).await? {
            Some(user) => app_creds::get_by_name(state.pool(), &user.id, name).await?,
            None => None,
        }
    };
    let credential = credential.ok_or_else(unauthorized)?;
    if credential
        .expires_at_micros
        .is_some_and(|at| at <= Utc::now().timestamp_micros())
    {
        return Err(unauthorized());
    }
    if !state
        .passwords
        .verify(&credential.id, secret, &credential.secret_hash)
        .await?
    {
        return Err(unauthorized());
    }
    Ok(Authenticated {
        user_id: credential.user_id.clone(),
        methods: vec!["application_credential".into()],
        parent_audit_id: None,
        expires_at: None,
        application_credential: Some(credential),
    })
}

async fn resolve_scope(
    state: &Identity,
    scope: Option<&Value>,
    user_id: &str,
) -> Result<TokenScope, ApiError> {
    let Some(scope) = scope.filter(|s| !s.is_null()) else {
        return default_scope(state, user_id).await;
    };
    if scope.as_str() == Some("unscoped") {
        return Ok(TokenScope::Unscoped);
    }
    if let Some(project) = scope.get("project") {
        let found = if let Some(id) = project.get("id").and_then(Value::as_str) {
            projects::get(state.pool(), id).await?
        } else {
            let name = project.get("name").and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad_request(
                    "Invalid input for field 'scope.project': give its id, or its name and domain.",
                )
            })?;
            let domain = project.get("domain").ok_or_else(|| {
                ApiError::bad_request("Invalid input for field 'scope.project.domain': a project given by name needs its domain.")
            })?;
            match find_domain_ref(state, domain).await? {
                Some(domain) => projects::get_by_name(state.pool(), &domain.id, name).await?,
                None => None,
            }
        };
        // Unknown and disabled projects are both 401 on auth, as in Keystone.
        let project = found.filter(|p| p.enabled).ok_or_else(unauthorized)?;
        return Ok(TokenScope::Project(project.id));
    }
    if let Some(domain) = scope.get("domain") {
        let domain = find_domain_ref(state, domain)
            .await?
            .filter(|d| d.enabled)
            .ok_or_else(unauthorized)?;
        return Ok(TokenScope::Domain(domain.id));
    }
    if let Some(system) = scope.get("system") {
        if system.get("all") == Some(&Value::Bool(true)) {
            return Ok(TokenScope::System);
        }
        return Err(ApiError::bad_request(
            "Invalid input for field 'scope.system': only {\"all\": true} is supported.",
        ));
    }
    Err(ApiError::bad_request(
        "Invalid input for field 'scope': give a project, a domain or the system.",
    ))
}

/// With no scope requested, Keystone scopes to the user's default project
/// when the user has a role there, and issues an unscoped token otherwise.
pub(crate) async fn default_scope(state: &Identity, user_id: &str) -> Result<TokenScope, ApiError> {
    let Some(user) = users::get(state.pool(), user_id).await? else {
        return Ok(TokenScope::Unscoped);
    };
    let Some(project_id) = user.default_project_id else {
        return Ok(TokenScope::Unscoped);
    };
    let visible = projects_of_user(state, user_id).await?;
    Ok(if visible.contains(&project_id) {
        TokenScope::Project(project_id)
    } else {
        TokenScope::Unscoped
    })
}

/// Returns the ids of the enabled projects where `user_id` has a role,
/// directly, through a group, or inherited from a domain or parent project.
pub async fn projects_of_user(
    state: &Identity,
    user_id: &str,
) -> Result<BTreeSet<String>, ApiError> {
    let pool = state.pool();
    let mut actors = groups::group_ids_of_user(pool, user_id).await?;
    actors.push(user_id.to_owned());
    let all = assignments::list_all(pool).await?;
    let mine: Vec<_> = all
        .into_iter()
        .filter(|a| actors.contains(&a.actor_id))
        .collect();
    let projects = projects::list(pool, &Default::default()).await?;
    let mut ids = BTreeSet::new();
    for project in projects.iter().filter(|p| p.enabled) {
        let ancestors = projects::ancestors(pool, project).await?;
        let has_role = mine.iter().any(|a| {
            use assignments::AssignmentType::*;
            match a.kind {
                UserProject | GroupProject => {
                    (a.target_id == project.id && !a.inherited)
                        || (a.inherited && ancestors.contains(&a.target_id))
                }
                UserDomain | GroupDomain => a.inherited && a.target_id == project.domain_id,
                UserSystem | GroupSystem => false,
            }
        });
        if has_role {
            ids.insert(project.id.clone());
        }
    }
    Ok(ids)
}

fn subject_token(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get(SUBJECT_TOKEN)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::bad_request(
                "The X-Subject-Token header is required; set it to the token to check.",
            )
        })
}

async fn subject_context(
    state: &Identity,
    ctx: &RequestContext,
    headers: &HeaderMap,
    action: &str,
) -> Result<oxstack_core::AuthContext, ApiError> {
    let subject = subject_token(headers)?;
    let resolved = token::resolve(state, &subject)
        .await
        .map_err(Rejection::into_not_found)?;
    crate::policy::authorize(
        state,
        ctx,
        action,
        &json!({"token": {"user_id": resolved.user_id}}),
    )?;
    Ok(resolved)
}

async fn validate(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    headers: HeaderMap,
    query: QueryMap,
) -> Result<Response, ApiError> {
    let subject = subject_context(&state, &ctx, &headers, "identity:validate_token").await?;
    let body = token::render(&state, &subject, !query.contains_key("nocatalog")).await?;
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&subject.token) {
        response.headers_mut().insert(SUBJECT_TOKEN, value);
    }
    Ok(response)
}

async fn check(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    subject_context(&state, &ctx, &headers, "identity:validate_token").await?;
    Ok(StatusCode::OK)
}

async fn revoke(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let subject = subject_context(&state, &ctx, &headers, "identity:revoke_token").await?;
    if let Some(audit_id) = subject.audit_ids.first() {
        crate::db::revocations::revoke_audit_id(state.pool(), audit_id).await?;
    }
    tracing::info!(user_id = %subject.user_id, "revoked token");
    Ok(StatusCode::NO_CONTENT)
}

async fn auth_catalog(
    State(state): State<IdentityState>,
    ctx: RequestContext,
) -> Result<Json<Value>, ApiError> {
    if ctx.auth.project_id.is_none() && ctx.auth.domain_id.is_none() && !ctx.auth.system_scope {
        return Err(ApiError::forbidden(
            "The catalog needs a scoped token; request one for a project.",
        ));
    }
    let catalog = token::render_catalog(&state).await?;
    Ok(Json(json!({
        "catalog": catalog,
        "links": {"self": format!("{}/v3/auth/catalog", state.public_url), "previous": null, "next": null}
    })))
}

async fn auth_projects(
    State(state): State<IdentityState>,
    ctx: RequestContext,
) -> Result<Json<Value>, ApiError> {
    let ids: Vec<String> = projects_of_user(&state, &ctx.auth.user_id)
        .await?
        .into_iter()
        .collect();
    let filter = projects::ProjectFilter {
        ids: Some(ids),
        ..Default::default()
    };
    let items = projects::list(state.pool(), &filter)
        .await?
        .iter()
        .map(|p| super::projects::render(&state, p))
        .collect();
    Ok(Json(list_body(&state, "projects", "auth/projects", items)))
}

async fn auth_domains(
    State(state): State<IdentityState>,
    ctx: RequestContext,
) -> Result<Json<Value>, ApiError> {
    let pool = state.pool();
    let mut actors = groups::group_ids_of_user(pool, &ctx.auth.user_id).await?;
    actors.push(ctx.auth.user_id.clone());
    let mut items = Vec::new();
    for domain in domains::list(pool).await?.into_iter().filter(|d| d.enabled) {
        let scope = assignments::RoleScope::Domain(&domain.id);
        if !assignments::direct_role_ids(pool, &actors, &scope)
            .await?
            .is_empty()
        {
            items.push(super::domains::render(&state, &domain));
        }
    }
    Ok(Json(list_body(&state, "domains", "auth/domains", items)))
}
