//! Compute (Nova v2.1): version discovery, flavors with their access lists
//! and extra specs, keypairs, quota sets (per project and per user), quota
//! classes, limits and availability zones.
//! Servers: the API records requests, the conductor ([`conductor`]) drives
//! each server through scheduling, port binding and the host's driver.
//!
//! The binary opens a [`ComputeService`] on the shared database and merges
//! [`mount`] (the API under `/compute`, plus `/compute/`) into its
//! application. The catalog URL is `{public_url}/compute/v2.1`:
//!
//! ```ignore
//! let compute = Arc::new(ComputeService::open(store, config, public_url, backends).await?);
//! app.merge(oxstack_compute::mount(compute, validator));
//! ```

pub mod aggregate;
pub mod api;
pub mod conductor;
pub mod config;
pub mod db;
pub mod external;
pub mod host;
pub mod metadata;
pub mod policy;
pub mod quota;
pub mod quota_class;
pub mod scheduler;
pub mod server;
pub mod server_group;
pub mod sshkey;
pub mod testing;
pub mod version;
pub mod x509;

use std::sync::Arc;

use oxstack_core::policy::Enforcer;
use oxstack_hypervisor::Driver;
use oxstack_placement::PlacementService;
use oxstack_store::Store;

use crate::external::{ImageApi, NetworkApi};

pub use api::{mount, ComputeState};
pub use config::ComputeConfig;

/// The compute service: what its handlers share.
pub struct ComputeService {
    pub store: Store,
    pub config: ComputeConfig,
    pub policy: Enforcer,
    /// The URL clients reach this cloud at, without a trailing slash
    /// (`http://127.0.0.1:5000`). The compute API is under
    /// `{public_url}/compute`.
    pub public_url: String,
    pub backends: Backends,
    /// Compute hosts this process runs besides `backends.host`, and the
    /// heartbeat task's state ([`host`]).
    pub hosts: host::HostRegistry,
}

/// The services and the host compute works with. All-in-one runs one
/// compute host, this process, whose driver is `driver`.
#[derive(Clone)]
pub struct Backends {
    pub images: Arc<dyn ImageApi>,
    pub networks: Arc<dyn NetworkApi>,
    pub placement: Arc<PlacementService>,
    pub driver: Arc<dyn Driver>,
    /// This compute host's name, as port bindings and `os-services` use it.
    pub host: String,
}

/// A failure to start the compute service.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Database(#[from] oxstack_store::StoreError),
    #[error("policy: {0}")]
    Policy(#[from] oxstack_core::policy::PolicyLoadError),
}

impl ComputeService {
    /// Opens the compute service on `store`: migrates its tables (which
    /// adds the default flavors once) and loads the policy.
    pub async fn open(
        store: Store,
        config: ComputeConfig,
        public_url: String,
        backends: Backends,
    ) -> Result<Self, OpenError> {
        store.migrate("compute", db::MIGRATIONS).await?;
        let policy = policy::load(config.policy_file.as_deref())?;
        for (rule, missing) in policy.undefined_references() {
            tracing::warn!(
                rule,
                missing,
                "policy rule refers to an undefined rule; it never passes"
            );
        }
        let public_url = public_url.trim_end_matches('/').to_owned();
        Ok(ComputeService {
            store,
            config,
            policy,
            public_url,
            backends,
            hosts: host::HostRegistry::default(),
        })
    }

    pub fn pool(&self) -> &oxstack_store::Pool {
        self.store.pool()
    }

    /// Returns the absolute URL of `path` under v2.1
    /// (`flavors/42` gives `{public_url}/compute/v2.1/flavors/42`).
    pub fn v21_url(&self, path: &str) -> String {
        format!("{}/compute/v2.1/{path}", self.public_url)
    }

    /// Returns the bookmark URL of `path`, without the version, as Nova
    /// writes `bookmark` links.
    pub fn bookmark_url(&self, path: &str) -> String {
        format!("{}/compute/{path}", self.public_url)
    }
}
