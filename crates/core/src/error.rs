//! The one public error of every API, and its rendering in each service's own
//! OpenStack error body.
//!
//! Handlers return `ApiError`. Its `IntoResponse` leaves the body empty and
//! stores the error in the response extensions. The `render_errors` layer of
//! the service that served the request then writes the body in that
//! service's shape. This keeps one mapping from error kind to HTTP status and
//! one renderer per service, and lets handlers stay ignorant of the shape.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::service::ServiceKind;

/// The kind of failure, in the terms a client can act on. Each kind has one
/// HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or a field is invalid (400).
    BadRequest,
    /// No valid credentials were given (401).
    Unauthenticated,
    /// The caller is known but not allowed (403).
    Forbidden,
    /// A quota would be exceeded (403, the status Nova and Neutron return).
    QuotaExceeded,
    /// The resource does not exist or is not visible to the caller (404).
    NotFound,
    /// The method is not served on this path (405).
    MethodNotAllowed,
    /// The requested microversion is outside the supported range (406).
    NotAcceptable,
    /// The request conflicts with the current state (409).
    Conflict,
    /// The body is larger than allowed (413).
    PayloadTooLarge,
    /// The body's media type is not accepted (415).
    UnsupportedMediaType,
    /// The feature exists in OpenStack but not in OxStack (501).
    NotImplemented,
    /// A dependency is down or overloaded (503).
    Unavailable,
    /// A bug or an unexpected failure (500). The message shown to the client
    /// is generic; the detail goes to the log.
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden | ErrorKind::QuotaExceeded => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failed request: a kind, a message safe to show the client, and optional
/// internal detail that only reaches the log.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// Neutron's exception class name (`NetworkNotFound`), used by clients
    /// that map errors by type. Services that do not need it leave it unset.
    pub error_type: Option<&'static str>,
    internal: Option<String>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            error_type: None,
            internal: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// Builds an unexpected failure. The client sees a generic message, and
    /// `detail` is logged.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError {
            kind: ErrorKind::Internal,
            message: "An unexpected error prevented the server from fulfilling your request."
                .into(),
            error_type: None,
            internal: Some(detail.to_string()),
        }
    }

    pub fn with_type(mut self, error_type: &'static str) -> Self {
        self.error_type = Some(error_type);
        self
    }

    pub fn with_internal(mut self, detail: impl std::fmt::Display) -> Self {
        self.internal = Some(detail.to_string());
        self
    }

    pub fn internal_detail(&self) -> Option<&str> {
        self.internal.as_deref()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)?;
        if let Some(detail) = &self.internal {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self.kind.status();
        response.extensions_mut().insert(self);
        response
    }
}

/// Renders `error` as `service` writes its errors. `accept` matters only to
/// Glance, whose error format follows the `Accept` header.
pub fn render(service: ServiceKind, error: &ApiError, accept: Option<&str>) -> Response {
    let status = error.kind.status();
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = match service {
        ServiceKind::Identity => json!({
            "error": {"code": code, "title": reason, "message": error.message}
        }),
        ServiceKind::Compute | ServiceKind::Volume => {
            json!({ nova_fault_name(code): {"code": code, "message": error.message} })
        }
        ServiceKind::Network => json!({
            "NeutronError": {
                "type": error.error_type.unwrap_or_else(|| neutron_default_type(code)),
                "message": error.message,
                "detail": ""
            }
        }),
        ServiceKind::Placement => json!({
            "errors": [{"status": code, "title": reason, "detail": error.message,
                        "code": "placement.undefined_code"}]
        }),
        ServiceKind::Image => {
            // Glance returns HTML for `*/*` and plain text for no Accept,
            // which openstacksdk reduces to the bare reason phrase. JSON
            // carries the message to the operator, so only an explicit
            // request for text gets text.
            let wants_text = accept.is_some_and(|a| a.starts_with("text/"));
            if wants_text {
                return plain_glance_error(status, reason, &error.message);
            }
            json!({"message": error.message, "code": format!("{code} {reason}"), "title": reason})
        }
        ServiceKind::Object | ServiceKind::Root => {
            json!({"error": {"code": code, "title": reason, "message": error.message}})
        }
    };
    let mut response = (status, axum::Json(body)).into_response();
    if service == ServiceKind::Identity && status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Keystone uri=\"/v3\""),
        );
    }
    response
}

fn plain_glance_error(status: StatusCode, reason: &str, message: &str) -> Response {
    let text = format!("{} {}\n\n{}\n", status.as_u16(), reason, message);
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    response
}

fn nova_fault_name(code: u16) -> &'static str {
    match code {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 | 429 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

fn neutron_default_type(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "NotAuthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        503 => "ServiceUnavailable",
        _ => "NeutronException",
    }
}

/// Middleware that writes the body of every `ApiError` response in the shape
/// of `service`, and logs the error at the level its kind deserves.
pub async fn render_errors(service: ServiceKind, request: Request, next: Next) -> Response {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut response = next.run(request).await;
    let Some(error) = response.extensions_mut().remove::<ApiError>() else {
        return response;
    };
    // Messages often quote the request (an id from the path), so control
    // characters are escaped: a decoded newline must not start a forged
    // log line.
    let message = error.message.escape_debug();
    match error.kind {
        ErrorKind::Internal => tracing::error!(
            service = service.as_str(), error = %error.to_string().escape_debug(), "request failed"),
        _ => tracing::info!(
            service = service.as_str(), status = error.kind.status().as_u16(),
            message = %message, "request rejected"),
    }
    let mut rendered = render(service, &error, accept.as_deref());
    // Headers set by inner layers (microversion echo, request id) survive.
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn identity_error_has_keystone_shape() {
        let error = ApiError::not_found("Could not find project: demo.");
        let response = render(ServiceKind::Identity, &error, None);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], 404);
        assert_eq!(body["error"]["title"], "Not Found");
        assert_eq!(body["error"]["message"], "Could not find project: demo.");
    }

    #[tokio::test]
    async fn identity_unauthorized_carries_www_authenticate() {
        let response = render(
            ServiceKind::Identity,
            &ApiError::unauthenticated("no"),
            None,
        );
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[tokio::test]
    async fn compute_error_uses_fault_name() {
        let body = body_json(render(
            ServiceKind::Compute,
            &ApiError::conflict("locked"),
            None,
        ))
        .await;
        assert_eq!(body["conflictingRequest"]["code"], 409);
    }

    #[tokio::test]
    async fn network_error_keeps_exception_type() {
        let error =
            ApiError::not_found("Network x could not be found.").with_type("NetworkNotFound");
        let body = body_json(render(ServiceKind::Network, &error, None)).await;
        assert_eq!(body["NeutronError"]["type"], "NetworkNotFound");
    }

    #[tokio::test]
    async fn image_error_follows_accept() {
        let error = ApiError::not_found("No image found with ID x");
        let json = render(ServiceKind::Image, &error, Some("application/json"));
        assert_eq!(body_json(json).await["code"], "404 Not Found");
        for accept in [None, Some(""), Some("*/*")] {
            let response = render(ServiceKind::Image, &error, accept);
            assert_eq!(
                body_json(response).await["message"],
                "No image found with ID x"
            );
        }
        let plain = render(ServiceKind::Image, &error, Some("text/plain"));
        let ctype = plain.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ctype.starts_with("text/plain"), "{ctype}");
    }

    #[test]
    fn internal_error_hides_detail_from_message() {
        let error = ApiError::internal("database file is locked");
        assert!(!error.message.contains("locked"));
        assert_eq!(error.internal_detail(), Some("database file is locked"));
    }
}
