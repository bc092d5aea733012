//! The caller: the request context handlers receive, and the trait
//! through which any service turns an `X-Auth-Token` into an identity.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::error::ApiError;
use crate::policy::Credentials;
use crate::request_id::RequestId;

pub const AUTH_TOKEN_HEADER: &str = "x-auth-token";

/// The identity behind a validated token.
#[derive(Clone, Debug, Default)]
pub struct AuthContext {
    pub token: String,
    pub user_id: String,
    pub user_name: String,
    pub user_domain_id: String,
    pub user_domain_name: String,
    /// Set for project-scoped tokens.
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub project_domain_id: Option<String>,
    pub project_domain_name: Option<String>,
    /// Set for domain-scoped tokens.
    pub domain_id: Option<String>,
    pub domain_name: Option<String>,
    /// True for system-scoped tokens (`system: {"all": true}`).
    pub system_scope: bool,
    /// Role names, implied roles included, lower case.
    pub roles: Vec<String>,
    pub role_ids: Vec<String>,
    pub methods: Vec<String>,
    pub audit_ids: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub application_credential_id: Option<String>,
}

impl AuthContext {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    /// Returns the attributes policy rules are checked against.
    pub fn credentials(&self) -> Credentials {
        let mut credentials = Credentials {
            user_id: Some(self.user_id.clone()),
            project_id: self.project_id.clone(),
            domain_id: self.domain_id.clone(),
            roles: self.roles.clone(),
            system_scope: self.system_scope.then(|| "all".to_owned()),
            ..Default::default()
        };
        if let Some(domain) = &self.project_domain_id {
            credentials
                .extra
                .insert("project_domain_id".into(), domain.clone().into());
        }
        credentials
            .extra
            .insert("user_domain_id".into(), self.user_domain_id.clone().into());
        credentials
    }
}

/// Validates tokens for the auth middleware. The identity service implements
/// it in-process; a remote implementation would call `GET /v3/auth/tokens`.
#[async_trait]
pub trait TokenValidator: Send + Sync {
    async fn validate(&self, token: &str) -> Result<AuthContext, ApiError>;
}

/// Middleware that validates `X-Auth-Token` when present. A request without
/// a token passes through unauthenticated; handlers that need an identity
/// extract `RequestContext` and get 401 when there is none.
pub async fn authenticate(
    validator: Arc<dyn TokenValidator>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(AUTH_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    if let Some(token) = token {
        match validator.validate(&token).await {
            Ok(auth) => {
                tracing::Span::current().record("user_id", auth.user_id.as_str());
                request.extensions_mut().insert(Arc::new(auth));
            }
            Err(error) => return error.into_response(),
        }
    }
    next.run(request).await
}

/// The request context of a handler: the request id and the caller.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    pub auth: Arc<AuthContext>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        let auth = parts
            .extensions
            .get::<Arc<AuthContext>>()
            .cloned()
            .ok_or_else(|| {
                ApiError::unauthenticated("The request you have made requires authentication.")
            })?;
        Ok(RequestContext { request_id, auth })
    }
}
