//! Tokens: encoding with the Fernet key repository, and turning a token
//! back into the identity it carries, checked against the current state of
//! the user, the scope, the roles and the revocation events.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use oxstack_core::{ApiError, AuthContext, TokenValidator};
use serde_json::{json, Value};

use crate::db::{
    app_creds, assignments, catalog, domains, groups, projects, revocations, roles, users,
};
use crate::fernet::{KeyRepository, TokenCodec, TokenError, TokenPayload, TokenScope};
use crate::Identity;

/// Encodes and decodes tokens with the keys on disk, reloading them when
/// `oxstack identity rotate-keys` changes the repository.
pub struct TokenProvider {
    repository: KeyRepository,
    loaded: RwLock<(Option<SystemTime>, Arc<TokenCodec>)>,
}

impl TokenProvider {
    pub fn new(repository: KeyRepository) -> Result<Self, crate::fernet::KeyRepositoryError> {
        let codec = TokenCodec::from_repository(&repository)?;
        let stamp = modified(&repository);
        Ok(TokenProvider {
            repository,
            loaded: RwLock::new((stamp, Arc::new(codec))),
        })
    }

    fn codec(&self) -> Result<Arc<TokenCodec>, ApiError> {
        let stamp = modified(&self.repository);
        {
            let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            if loaded.0 == stamp {
                return Ok(loaded.1.clone());
            }
        }
        let codec = Arc::new(
            TokenCodec::from_repository(&self.repository)
                .map_err(|e| ApiError::internal(format!("cannot reload Fernet keys: {e}")))?,
        );
        tracing::info!(dir = %self.repository.dir().display(), "reloaded Fernet keys");
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = (stamp, codec.clone());
        Ok(codec)
    }

    pub fn encode(&self, payload: &TokenPayload) -> Result<String, ApiError> {
        self.codec()?.encode(payload).map_err(ApiError::internal)
    }

    pub fn decode(&self, token: &str) -> Result<(TokenPayload, DateTime<Utc>), Rejection> {
        let codec = self.codec().map_err(Rejection::Internal)?;
        codec
            .decode(token, Utc::now())
            .map_err(|error| match error {
                TokenError::Expired { .. } => Rejection::Invalid("token has expired".into()),
                TokenError::Invalid(reason) => {
                    Rejection::Invalid(format!("token is invalid: {reason}"))
                }
            })
    }
}

// Rotation writes new files, which changes the directory's modification time.
fn modified(repository: &KeyRepository) -> Option<SystemTime> {
    std::fs::metadata(repository.dir())
        .and_then(|m| m.modified())
        .ok()
}

/// The reason a token was not accepted.
#[derive(Debug)]
pub enum Rejection {
    /// Expired, malformed, revoked, or its user or scope is gone or
    /// disabled. The reason goes to the log, not to the client.
    Invalid(String),
    Internal(ApiError),
}

impl From<ApiError> for Rejection {
    fn from(error: ApiError) -> Self {
        Rejection::Internal(error)
    }
}

impl Rejection {
    /// Converts to the error for a caller whose own token this is (401).
    pub fn into_unauthenticated(self) -> ApiError {
        match self {
            Rejection::Invalid(reason) => {
                tracing::info!(%reason, "rejected token");
                ApiError::unauthenticated("The request you have made requires authentication.")
            }
            Rejection::Internal(error) => error,
        }
    }

    /// Converts to the error for a subject token in a validation request (404).
    pub fn into_not_found(self) -> ApiError {
        match self {
            Rejection::Invalid(reason) => {
                tracing::info!(%reason, "subject token not valid");
                ApiError::not_found(
                    "Failed to validate token: it is expired, revoked or malformed.",
                )
            }
            Rejection::Internal(error) => error,
        }
    }
}

/// Validates `token` and builds the identity it carries.
pub async fn resolve(identity: &Identity, token: &str) -> Result<AuthContext, Rejection> {
    let (payload, issued_at) = identity.tokens.decode(token)?;
    build_context(identity, token.to_owned(), payload, issued_at).await
}

/// Builds the identity of a decoded token from the current database state.
pub async fn build_context(
    identity: &Identity,
    token: String,
    payload: TokenPayload,
    issued_at: DateTime<Utc>,
) -> Result<AuthContext, Rejection> {
    let pool = identity.pool();
    if revocations::is_revoked(
        pool,
        &payload.audit_ids,
        &payload.user_id,
        issued_at.timestamp(),
    )
    .await?
    {
        return Err(Rejection::Invalid("token has been revoked".into()));
    }
    let user = users::get(pool, &payload.user_id)
        .await?
        .filter(|u| u.enabled)
        .ok_or_else(|| {
            Rejection::Invalid(format!("user {} is missing or disabled", payload.user_id))
        })?;
    let user_domain = enabled_domain(identity, &user.domain_id).await?;

    let mut ctx = AuthContext {
        token,
        user_id: user.id.clone(),
        user_name: user.name.clone(),
        user_domain_id: user_domain.id.clone(),
        user_domain_name: user_domain.name.clone(),
        methods: payload.methods.clone(),
        audit_ids: payload.audit_ids.clone(),
        issued_at,
        expires_at: payload.expires_at,
        application_credential_id: payload.application_credential_id.clone(),
        ..Default::default()
    };

    let mut actors = groups::group_ids_of_user(pool, &user.id).await?;
    actors.push(user.id.clone());
    let direct = match &payload.scope {
        TokenScope::Unscoped => BTreeSet::new(),
        TokenScope::Project(project_id) => {
            let project = projects::get(pool, project_id)
                .await?
                .filter(|p| p.enabled)
                .ok_or_else(|| {
                    Rejection::Invalid(format!("project {project_id} is missing or disabled"))
                })?;
            let domain = enabled_domain(identity, &project.domain_id).await?;
            let ancestors = projects::ancestors(pool, &project).await?;
            let scope = assignments::RoleScope::Project {
                project_id: &project.id,
                domain_id: &project.domain_id,
                ancestors: &ancestors,
            };
            let direct = assignments::direct_role_ids(pool, &actors, &scope).await?;
            ctx.project_id = Some(project.id);
            ctx.project_name = Some(project.name);
            ctx.project_domain_id = Some(domain.id);
            ctx.project_domain_name = Some(domain.name);
            direct
        }
        TokenScope::Domain(domain_id) => {
            let domain = enabled_domain(identity, domain_id).await?;
            let direct = assignments::direct_role_ids(
                pool,
                &actors,
                &assignments::RoleScope::Domain(&domain.id),
            )
            .await?;
            ctx.domain_id = Some(domain.id);
            ctx.domain_name = Some(domain.name);
            direct
        }
        TokenScope::System => {
            ctx.system_scope = true;
            assignments::direct_role_ids(pool, &actors, &assignments::RoleScope::System).await?
        }
    };

    let edges = roles::implications(pool).await?;
    let mut role_ids = roles::expand_implied(&direct, &edges);
    if let Some(credential_id) = &payload.application_credential_id {
        let credential = app_creds::get(pool, credential_id)
            .await?
            .filter(|c| {
                c.expires_at_micros
                    .is_none_or(|at| at > Utc::now().timestamp_micros())
            })
            .ok_or_else(|| {
                Rejection::Invalid(format!(
                    "application credential {credential_id} is gone or expired"
                ))
            })?;
        let allowed: BTreeSet<String> = credential.role_ids.iter().cloned().collect();
        role_ids = role_ids
            .intersection(&roles::expand_implied(&allowed, &edges))
            .cloned()
            .collect();
    }
    if !matches!(payload.scope, TokenScope::Unscoped) && role_ids.is_empty() {
        return Err(Rejection::Invalid(format!(
            "user {} has no role on the token's scope",
            user.id
        )));
    }
    let all_roles = roles::all_by_id(pool).await?;
    for id in role_ids {
        // Domain-specific roles only imply global ones; Keystone leaves
        // them out of tokens.
        if let Some(role) = all_roles.get(&id).filter(|r| r.domain_id.is_none()) {
            ctx.roles.push(role.name.to_lowercase());
            ctx.role_ids.push(id);
        }
    }
    Ok(ctx)
}

async fn enabled_domain(identity: &Identity, id: &str) -> Result<domains::Domain, Rejection> {
    domains::get(identity.pool(), id)
        .await?
        .filter(|d| d.enabled)
        .ok_or_else(|| Rejection::Invalid(format!("domain {id} is missing or disabled")))
}

/// Renders the `{"token": …}` body of token responses.
pub async fn render(
    identity: &Identity,
    ctx: &AuthContext,
    with_catalog: bool,
) -> Result<Value, ApiError> {
    let mut token = json!({
        "methods": ctx.methods,
        "audit_ids": ctx.audit_ids,
        "expires_at": oxstack_core::time::iso8601_micros(ctx.expires_at),
        "issued_at": oxstack_core::time::iso8601_micros(ctx.issued_at),
        "user": {
            "id": ctx.user_id,
            "name": ctx.user_name,
            "domain": {"id": ctx.user_domain_id, "name": ctx.user_domain_name},
            "password_expires_at": null
        },
    });
    let scoped = ctx.project_id.is_some() || ctx.domain_id.is_some() || ctx.system_scope;
    if let Some(project_id) = &ctx.project_id {
        token["project"] = json!({
            "id": project_id,
            "name": ctx.project_name,
            "domain": {"id": ctx.project_domain_id, "name": ctx.project_domain_name}
        });
        token["is_domain"] = json!(false);
    } else if let Some(domain_id) = &ctx.domain_id {
        token["domain"] = json!({"id": domain_id, "name": ctx.domain_name});
    } else if ctx.system_scope {
        token["system"] = json!({"all": true});
    }
    if scoped {
        let all_roles = roles::all_by_id(identity.pool()).await?;
        let roles: Vec<Value> = ctx
            .role_ids
            .iter()
            .filter_map(|id| all_roles.get(id))
            .map(|r| json!({"id": r.id, "name": r.name}))
            .collect();
        token["roles"] = Value::Array(roles);
        if with_catalog {
            token["catalog"] = render_catalog(identity).await?;
        }
    }
    if let Some(credential_id) = &ctx.application_credential_id {
        if let Some(credential) = app_creds::get(identity.pool(), credential_id).await? {
            token["application_credential"] = json!({
                "id": credential.id,
                "name": credential.name,
                "restricted": !credential.unrestricted
            });
        }
    }
    Ok(json!({ "token": token }))
}

/// Renders the service catalog as tokens and `/v3/auth/catalog` carry it.
pub async fn render_catalog(identity: &Identity) -> Result<Value, ApiError> {
    let pool = identity.pool();
    let endpoints = catalog::list_endpoints(pool).await?;
    let entries: Vec<Value> = catalog::list_services(pool)
        .await?
        .into_iter()
        .filter(|s| s.enabled)
        .map(|service| {
            let endpoints: Vec<Value> = endpoints
                .iter()
                .filter(|e| e.enabled && e.service_id == service.id)
                .map(|e| json!({
                    "id": e.id,
                    "interface": e.interface,
                    "region_id": e.region_id,
                    "region": e.region_id,
                    "url": e.url
                }))
                .collect();
            json!({"id": service.id, "type": service.service_type, "name": service.name, "endpoints": endpoints})
        })
        .collect();
    Ok(Value::Array(entries))
}

/// The in-process token validator the other services' auth middleware uses.
pub struct LocalValidator(pub Arc<Identity>);

#[async_trait]
impl TokenValidator for LocalValidator {
    async fn validate(&self, token: &str) -> Result<AuthContext, ApiError> {
        resolve(&self.0, token)
            .await
            .map_err(Rejection::into_unauthenticated)
    }
}
