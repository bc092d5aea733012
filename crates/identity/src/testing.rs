//! An identity service on a temporary SQLite database, bootstrapped, for
//! API tests of this crate and of the services built on it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::bootstrap::{self, Bootstrapped, CatalogEntry};
use crate::{Identity, IdentityConfig, IdentityState};

pub const ADMIN_PASSWORD: &str = "test-admin-password";
pub const PUBLIC_URL: &str = "http://127.0.0.1:5000";

/// A bootstrapped identity service and its router.
pub struct TestIdentity {
    pub state: IdentityState,
    pub router: Router,
    pub bootstrapped: Bootstrapped,
    // Dropped last: removes the database and keys.
    pub dir: tempfile::TempDir,
}

/// A response: status, headers and JSON body (null when empty).
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl TestIdentity {
    /// Starts on a new SQLite database in a temporary directory.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/oxstack.db", dir.path().display());
        Self::start_on(dir, &url).await
    }

    /// Starts on a new, empty PostgreSQL database created through the
    /// server at `admin_url` (a URL whose user may create databases). The
    /// database is left behind for inspection; its name starts with
    /// `oxstack_test_`.
    pub async fn start_postgres(admin_url: &str) -> Self {
        let name = format!("oxstack_test_{}", uuid::Uuid::new_v4().simple());
        let admin = oxstack_store::Store::connect(admin_url)
            .await
            .expect("PostgreSQL server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(admin.pool())
            .await
            .expect("create database");
        admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_on(dir, &format!("{base}/{name}")).await
    }

    async fn start_on(dir: tempfile::TempDir, url: &str) -> Self {
        // Logs go to the test's captured output, shown when it fails.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("info")
            .try_init();
        let store = oxstack_store::Store::connect(url).await.expect("database");
        // bcrypt's lowest cost keeps tests fast; the cost is not under test.
        let config = IdentityConfig {
            password_hash_rounds: 4,
            ..IdentityConfig::default()
        };
        let identity = Identity::open(store, config, dir.path(), PUBLIC_URL.into())
            .await
            .expect("identity");
        let services = [CatalogEntry {
            service_type: "identity",
            name: "keystone",
            url: format!("{PUBLIC_URL}/v3"),
        }];
        let bootstrapped = bootstrap::run(&identity, ADMIN_PASSWORD, false, &services)
            .await
            .expect("bootstrap");
        let state = Arc::new(identity);
        let router = crate::api::router(state.clone());
        TestIdentity {
            state,
            router,
            bootstrapped,
            dir,
        }
    }

    /// Sends a request; `token` goes in `X-Auth-Token`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("x-auth-token", token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Issues a project-scoped password token.
    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        let reply = self
            .call(
                "POST",
                "/v3/auth/tokens",
                None,
                Some(password_auth(user, password, Some(project))),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "token for {user}: {}",
            reply.body
        );
        reply.headers["x-subject-token"]
            .to_str()
            .expect("token header")
            .to_owned()
    }

    pub async fn admin_token(&self) -> String {
        self.token("admin", ADMIN_PASSWORD, "admin").await
    }
}

/// Builds a password auth body for a user and project in the Default domain.
pub fn password_auth(user: &str, password: &str, project: Option<&str>) -> Value {
    let mut body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": password}}}}});
    if let Some(project) = project {
        body["auth"]["scope"] = json!({"project": {"name": project, "domain": {"id": "default"}}});
    }
    body
}
