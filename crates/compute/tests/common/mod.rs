//! An in-process compute service behind a real identity service, on a
//! temporary database, mounted under `/compute` as the binary serves it.

#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use oxstack_compute::{ComputeConfig, ComputeService};
use oxstack_identity::testing::TestIdentity;
use oxstack_identity::token::LocalValidator;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const PUBLIC_URL: &str = "http://127.0.0.1:5000";

/// The services under test and tokens for three callers.
pub struct Cloud {
    pub identity: TestIdentity,
    pub service: Arc<ComputeService>,
    pub router: Router,
    pub data_dir: tempfile::TempDir,
    /// Admin of the `admin` project.
    pub admin: String,
    /// A member of project `demo`.
    pub demo: String,
    pub demo_project: String,
    /// A member of project `alt`.
    pub alt: String,
    pub alt_project: String,
    /// The fake image and network services and driver behind the service.
    pub fakes: oxstack_compute::testing::TestBackends,
}

/// A response: status, headers and JSON body (null when empty).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Cloud {
    pub async fn start() -> Self {
        let identity = TestIdentity::start().await;
        let data_dir = tempfile::tempdir().expect("data dir");
        let url = format!("sqlite://{}/compute.db", data_dir.path().display());
        let store = oxstack_store::Store::connect(&url).await.expect("database");
        Self::start_on(identity, store, data_dir).await
    }

    /// Starts on a new PostgreSQL database created through the server at
    /// `admin_url`, shared by the identity and compute services.
    pub async fn start_postgres(admin_url: &str) -> Self {
        let identity = TestIdentity::start_postgres(admin_url).await;
        let store = identity.state.store.clone();
        let data_dir = tempfile::tempdir().expect("data dir");
        Self::start_on(identity, store, data_dir).await
    }

    async fn start_on(
        identity: TestIdentity,
        store: oxstack_store::Store,
        data_dir: tempfile::TempDir,
    ) -> Self {
        let fakes = oxstack_compute::testing::backends(store.clone(), "node1").await;
        let service = ComputeService::open(
            store,
            ComputeConfig::default(),
            PUBLIC_URL.into(),
            fakes.backends.clone(),
        )
        .await
        .expect("compute service");
        let service = Arc::new(service);
        let validator = Arc::new(LocalValidator(identity.state.clone()));
        let router = oxstack_compute::mount(service.clone(), validator);
        let admin = identity.admin_token().await;
        let (demo_project, demo) = project_member(&identity, &admin, "demo", "dan").await;
        let (alt_project, alt) = project_member(&identity, &admin, "alt", "alice").await;
        Cloud {
            identity,
            service,
            router,
            data_dir,
            admin,
            demo,
            demo_project,
            alt,
            alt_project,
            fakes,
        }
    }

    /// Sends a request; `path` starts after `/compute`, and `version` is
    /// sent in both microversion headers when given.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        version: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("/compute{path}"));
        if let Some(token) = token {
            request = request.header("x-auth-token", token);
        }
        if let Some(version) = version {
            request = request
                .header("openstack-api-version", format!("compute {version}"))
                .header("x-openstack-nova-api-version", version);
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

    pub async fn get(&self, path: &str, token: &str, version: &str) -> Reply {
        self.call("GET", path, Some(token), Some(version), None)
            .await
    }

    pub async fn post(&self, path: &str, token: &str, version: &str, body: Value) -> Reply {
        self.call("POST", path, Some(token), Some(version), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, version: &str, body: Value) -> Reply {
        self.call("PUT", path, Some(token), Some(version), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str, version: &str) -> Reply {
        self.call("DELETE", path, Some(token), Some(version), None)
            .await
    }
}

/// Creates a project and a user with the `member` role on it, and returns
/// the project id and a token of the user.
async fn project_member(
    identity: &TestIdentity,
    admin: &str,
    project: &str,
    user: &str,
) -> (String, String) {
    let reply = identity
        .call(
            "POST",
            "/v3/projects",
            Some(admin),
            Some(json!({"project": {"name": project, "domain_id": "default"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let project_id = reply.body["project"]["id"].as_str().unwrap().to_owned();
    let password = "secret-password";
    let reply = identity
        .call(
            "POST",
            "/v3/users",
            Some(admin),
            Some(json!({"user": {"name": user, "password": password, "domain_id": "default"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let user_id = reply.body["user"]["id"].as_str().unwrap().to_owned();
    let roles = identity
        .call("GET", "/v3/roles?name=member", Some(admin), None)
        .await;
    let role_id = roles.body["roles"][0]["id"]
        .as_str()
        .expect("member role")
        .to_owned();
    let path = format!("/v3/projects/{project_id}/users/{user_id}/roles/{role_id}");
    let reply = identity.call("PUT", &path, Some(admin), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let token = identity.token(user, password, project).await;
    (project_id, token)
}
