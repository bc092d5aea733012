//! Placement: resource providers and their inventories, resource classes,
//! traits and aggregates, allocations of consumers against providers, and
//! allocation candidates for the scheduler.
//!
//! The binary opens a [`PlacementService`] on the shared database and
//! merges [`mount`] (the API under `/placement`) into its application. The
//! compute service calls the same service in-process through
//! [`PlacementService::allocation_candidates`], [`PlacementService::claim`],
//! [`PlacementService::release`], [`PlacementService::set_inventory`] and
//! [`PlacementService::ensure_provider`]:
//!
//! ```ignore
//! let placement = Arc::new(PlacementService::open(store, public_url).await?);
//! app.merge(oxstack_placement::mount(placement.clone(), validator));
//! ```
//!
//! Every write runs in one transaction that first locks what it changes
//! (`BEGIN IMMEDIATE` on SQLite, the provider rows on PostgreSQL), so two
//! concurrent claims never both see the same free capacity.

pub mod allocations;
pub mod api;
pub mod candidates;
pub mod catalog;
pub mod db;
pub mod error;
pub mod inventories;
pub mod model;
pub mod policy;
pub mod providers;
pub mod snapshot;

use oxstack_core::policy::Enforcer;
use oxstack_store::{Any, Backend, Store, Transaction};

pub use allocations::ConsumerAllocations;
pub use api::{mount, router, PlacementState};
pub use candidates::{Candidate, CandidateRequest};
pub use error::{ClaimError, PlacementError};
pub use model::{ConsumerId, Inventories, Inventory, Provider, ProviderId, Resources};

/// The placement service: what its handlers and in-process callers share.
pub struct PlacementService {
    pub store: Store,
    pub policy: Enforcer,
    /// The URL clients reach this cloud at, without a trailing slash; the
    /// placement API is under `{public_url}/placement`.
    pub public_url: String,
}

/// A failure to start the placement service.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Database(#[from] oxstack_store::StoreError),
    #[error("policy: {0}")]
    Policy(#[from] oxstack_core::policy::PolicyLoadError),
}

impl PlacementService {
    /// Opens the placement service on `store`: migrates its tables and
    /// loads the default policy.
    pub async fn open(store: Store, public_url: String) -> Result<Self, OpenError> {
        Self::open_with_policy(store, public_url, None).await
    }

    /// Opens the service like [`PlacementService::open`], with the
    /// operator's policy file (JSON or YAML) overriding the default rules.
    pub async fn open_with_policy(
        store: Store,
        public_url: String,
        policy_file: Option<&std::path::Path>,
    ) -> Result<Self, OpenError> {
        store.migrate("placement", db::schema::MIGRATIONS).await?;
        let policy = policy::load(policy_file)?;
        for (rule, missing) in policy.undefined_references() {
            tracing::warn!(
                rule,
                missing,
                "policy rule refers to an undefined rule; it never passes"
            );
        }
        Ok(PlacementService {
            store,
            policy,
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    pub fn pool(&self) -> &oxstack_store::Pool {
        self.store.pool()
    }

    /// Begins a transaction that will write. On SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`), waiting up to the busy timeout,
    /// because a transaction that reads first and writes later fails when
    /// another writer commits in between.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.store.backend() {
            Backend::Sqlite => self.pool().begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool().begin().await,
        }
    }
}
