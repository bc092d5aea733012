//! Networking (Neutron v2.0): networks and subnets with their provider
//! attributes, ports with IP address management and host binding, security
//! groups and their rules, routers, floating IPs, quotas, network agents,
//! and the extensions list.
//!
//! The binary opens a [`NetworkService`] on the shared database and merges
//! [`mount`] (the [`router`] nested under `/networking`, plus
//! `/networking/`) into its application:
//!
//! ```ignore
//! let network = Arc::new(NetworkService::open(store, config, public_url).await?);
//! app.merge(oxstack_network::mount(network, validator));
//! ```

pub mod agents;
pub mod api;
pub mod binding;
pub mod config;
pub mod db;
pub mod dhcp;
pub mod inproc;
pub mod ipam;
pub mod model;
pub mod policy;
pub mod quota;
pub mod segments;

use oxstack_core::policy::Enforcer;
use oxstack_store::Store;

pub use api::{mount, router, NetworkState};
pub use config::NetworkConfig;

/// The network service: what its handlers share.
pub struct NetworkService {
    pub store: Store,
    pub config: NetworkConfig,
    pub policy: Enforcer,
    /// The URL clients reach this cloud at, without a trailing slash
    /// (`http://127.0.0.1:5000`); the network API is under
    /// `{public_url}/networking`.
    pub public_url: String,
    /// Counts the writes to networks, subnets, ports, routers and floating
    /// IPs, so network agents wake up on a change instead of polling.
    changes: tokio::sync::watch::Sender<u64>,
}

/// A failure to start the network service.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Database(#[from] oxstack_store::StoreError),
    #[error("policy: {0}")]
    Policy(#[from] oxstack_core::policy::PolicyLoadError),
    #[error("invalid [network] setting: {0}")]
    Config(String),
}

impl NetworkService {
    /// Opens the network service on `store`: checks the settings, migrates
    /// its tables and loads the policy.
    pub async fn open(
        store: Store,
        config: NetworkConfig,
        public_url: String,
    ) -> Result<Self, OpenError> {
        if config.vni_min < 1
            || config.vni_max > segments::MAX_VNI
            || config.vni_min > config.vni_max
        {
            return Err(OpenError::Config(format!(
                "VXLAN id range {}..{} must lie within 1..{}",
                config.vni_min,
                config.vni_max,
                segments::MAX_VNI
            )));
        }
        store.migrate("network", db::schema::MIGRATIONS).await?;
        let policy = policy::load(config.policy_file.as_deref())?;
        for (rule, missing) in policy.undefined_references() {
            tracing::warn!(
                rule,
                missing,
                "policy rule refers to an undefined rule; it never passes"
            );
        }
        let public_url = public_url.trim_end_matches('/').to_owned();
        Ok(NetworkService {
            store,
            config,
            policy,
            public_url,
            changes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Returns a receiver that sees a new value after every write to
    /// networks, subnets, ports, routers or floating IPs. Receivers compare
    /// the whole state again instead of reading what changed.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Tells the receivers of [`changes`](Self::changes) that something
    /// was written.
    pub fn notify_change(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    pub fn pool(&self) -> &oxstack_store::Pool {
        self.store.pool()
    }

    /// Returns the absolute URL of `path` under the v2.0 API
    /// (`networks` gives `{public_url}/networking/v2.0/networks`).
    pub fn v2_url(&self, path: &str) -> String {
        format!("{}/networking/v2.0/{path}", self.public_url)
    }
}
