//! An in-process placement service behind a real identity service, on
//! temporary databases, nested under `/placement` as the binary serves it.

#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use oxstack_identity::testing::TestIdentity;
use oxstack_identity::token::LocalValidator;
use oxstack_placement::PlacementService;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const PUBLIC_URL: &str = "http://127.0.0.1:5000";
/// The highest microversion the tests send unless they test an older one.
pub const LATEST: &str = "placement 1.28";

/// The services under test and tokens for an admin and a project member.
pub struct Cloud {
    pub identity: TestIdentity,
    pub service: Arc<PlacementService>,
    pub router: Router,
    pub data_dir: tempfile::TempDir,
    pub admin: String,
    pub member: String,
}

/// A response: status, headers and JSON body (null when empty).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Returns the `detail` of the first error of an error body.
    pub fn detail(&self) -> &str {
        self.body["errors"][0]["detail"]
            .as_str()
            .unwrap_or("<none>")
    }

    pub fn code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or("<none>")
    }
}

impl Cloud {
    pub async fn start() -> Self {
        let identity = TestIdentity::start().await;
        let data_dir = tempfile::tempdir().expect("data dir");
        let url = format!("sqlite://{}/placement.db", data_dir.path().display());
        let store = oxstack_store::Store::connect(&url).await.expect("database");
        Self::start_on(identity, store, data_dir).await
    }

    /// Starts on a new PostgreSQL database created through the server at
    /// `admin_url`, shared by the identity and placement services.
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
        let service = Arc::new(
            PlacementService::open(store, PUBLIC_URL.into())
                .await
                .expect("placement"),
        );
        let validator = Arc::new(LocalValidator(identity.state.clone()));
        let router = oxstack_placement::mount(service.clone(), validator);
        let admin = identity.admin_token().await;
        let member = project_member(&identity, &admin).await;
        Cloud {
            identity,
            service,
            router,
            data_dir,
            admin,
            member,
        }
    }

    /// Sends a request with `version` in `OpenStack-API-Version`; `path`
    /// starts after `/placement`.
    pub async fn call_at(
        &self,
        version: Option<&str>,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("/placement{path}"));
        if let Some(token) = token {
            request = request.header("x-auth-token", token);
        }
        if let Some(version) = version {
            request = request.header("openstack-api-version", version);
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

    /// Sends a request as the admin at the latest tested microversion.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_at(Some(LATEST), method, path, Some(&self.admin), body)
            .await
    }

    /// Creates a provider and returns its UUID.
    pub async fn create_provider(&self, name: &str) -> String {
        let reply = self
            .call("POST", "/resource_providers", Some(json!({"name": name})))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "create provider {name}: {}",
            reply.body
        );
        reply.body["uuid"].as_str().expect("uuid").to_owned()
    }

    /// Sets the inventories of a provider at its current generation.
    pub async fn set_inventories(&self, provider: &str, inventories: Value) -> Reply {
        let current = self
            .call("GET", &format!("/resource_providers/{provider}"), None)
            .await;
        let generation = current.body["generation"].as_i64().expect("generation");
        let body = json!({"resource_provider_generation": generation, "inventories": inventories});
        self.call(
            "PUT",
            &format!("/resource_providers/{provider}/inventories"),
            Some(body),
        )
        .await
    }

    /// Creates a provider with `vcpu` VCPU and `memory_mb` MEMORY_MB.
    pub async fn compute_node(&self, name: &str, vcpu: i64, memory_mb: i64) -> String {
        let provider = self.create_provider(name).await;
        let reply = self
            .set_inventories(
                &provider,
                json!({"VCPU": {"total": vcpu}, "MEMORY_MB": {"total": memory_mb}}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "inventories of {name}: {}",
            reply.body
        );
        provider
    }
}

/// Returns the body of `PUT /allocations/{consumer}` at 1.28 for a consumer
/// without allocations.
pub fn allocation_body(provider: &str, resources: Value) -> Value {
    json!({
        "allocations": {provider: {"resources": resources}},
        "project_id": "11111111-1111-1111-1111-111111111111",
        "user_id": "22222222-2222-2222-2222-222222222222",
        "consumer_generation": null,
    })
}

pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Creates a project, a user with the `member` role on it, and returns a
/// token of the user.
async fn project_member(identity: &TestIdentity, admin: &str) -> String {
    let reply = identity
        .call(
            "POST",
            "/v3/projects",
            Some(admin),
            Some(json!({"project": {"name": "demo", "domain_id": "default"}})),
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
            Some(json!({"user": {"name": "dan", "password": password, "domain_id": "default"}})),
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
    identity.token("dan", password, "demo").await
}
