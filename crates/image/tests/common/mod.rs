//! An in-process image service behind a real identity service, on temporary
//! databases and a temporary data directory, nested under `/image` as the
//! binary serves it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use oxstack_identity::testing::TestIdentity;
use oxstack_identity::token::LocalValidator;
use oxstack_image::{ImageConfig, ImageService};
use serde_json::{json, Value};
use tower::ServiceExt;

pub const PATCH_TYPE: &str = "application/openstack-images-v2.1-json-patch";

/// The services under test and tokens for three callers.
pub struct Cloud {
    pub identity: TestIdentity,
    pub service: Arc<ImageService>,
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
}

/// A response with its body as bytes and, when it parses, as JSON.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Cloud {
    pub async fn start() -> Self {
        Self::start_with(ImageConfig::default()).await
    }

    pub async fn start_with(config: ImageConfig) -> Self {
        let identity = TestIdentity::start().await;
        let data_dir = tempfile::tempdir().expect("data dir");
        let service = open_service(data_dir.path(), config).await;
        let router = router_for(&identity, service.clone());
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
        }
    }

    /// Reopens the image service on the same database and data directory,
    /// as a restart of the process would.
    pub async fn restart(&mut self) {
        self.service = open_service(self.data_dir.path(), self.service.config.clone()).await;
        self.router = router_for(&self.identity, self.service.clone());
    }

    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Reply {
        let content_type = if method == "PATCH" {
            PATCH_TYPE
        } else {
            "application/json"
        };
        let (bytes, headers) = match body {
            Some(body) => (
                body.to_string().into_bytes(),
                vec![("content-type", content_type)],
            ),
            None => (Vec::new(), vec![]),
        };
        self.send(method, path, Some(token), bytes, &headers).await
    }

    /// Sends a request with a raw body and extra headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.send_body(method, path, token, Body::from(body), headers)
            .await
    }

    /// Sends a request with any body, such as a stream that fails.
    pub async fn send_body(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("accept", "application/json");
        if let Some(token) = token {
            request = request.header("x-auth-token", token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body).expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            bytes,
            body,
        }
    }

    /// Creates an image and returns its JSON, asserting 201.
    pub async fn create(&self, token: &str, body: Value) -> Value {
        let reply = self
            .call("POST", "/image/v2/images", token, Some(body))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "create failed: {}",
            reply.body
        );
        reply.body
    }

    /// Uploads `data` as the image's file.
    pub async fn upload(&self, token: &str, id: &str, data: Vec<u8>) -> Reply {
        let path = format!("/image/v2/images/{id}/file");
        self.send(
            "PUT",
            &path,
            Some(token),
            data,
            &[("content-type", "application/octet-stream")],
        )
        .await
    }

    pub async fn show(&self, token: &str, id: &str) -> Reply {
        self.call("GET", &format!("/image/v2/images/{id}"), token, None)
            .await
    }

    /// Returns the files in the image store directory and its incoming and
    /// staging directories.
    pub fn stored_files(&self) -> Vec<PathBuf> {
        let root = self.data_dir.path().join("images");
        let mut files = Vec::new();
        for dir in [root.clone(), root.join("incoming"), root.join("staging")] {
            for entry in std::fs::read_dir(&dir).expect("image dir") {
                let path = entry.expect("entry").path();
                if path.is_file() {
                    files.push(path);
                }
            }
        }
        files
    }
}

async fn open_service(data_dir: &std::path::Path, config: ImageConfig) -> Arc<ImageService> {
    let url = format!("sqlite://{}/image.db", data_dir.display());
    let store = oxstack_store::Store::connect(&url).await.expect("database");
    let service = ImageService::open(store, config, data_dir, "http://127.0.0.1:5000".into())
        .await
        .expect("image service");
    Arc::new(service)
}

fn router_for(identity: &TestIdentity, service: Arc<ImageService>) -> Router {
    let validator = Arc::new(LocalValidator(identity.state.clone()));
    oxstack_image::mount(service, validator)
        .layer(axum::middleware::from_fn(oxstack_core::request_id::assign))
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

/// Creates a 1 MiB qcow2 image with `qemu-img` and returns its bytes.
/// `options` are extra `qemu-img create` arguments.
pub fn qemu_img_create(dir: &std::path::Path, name: &str, options: &[&str]) -> Vec<u8> {
    let path = dir.join(name);
    let mut args = vec!["create", "-f", "qcow2"];
    args.extend_from_slice(options);
    let path_text = path.to_str().unwrap().to_owned();
    args.push(&path_text);
    args.push("1M");
    let output = std::process::Command::new("qemu-img")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("qemu-img must be installed (apt-get install qemu-utils)");
    assert!(
        output.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(&path).unwrap()
}
