//! Identity (Keystone v3): authentication with Fernet tokens, the service
//! catalog, and the domains, projects, users, groups, roles and assignments
//! that every other service's authorisation rests on.

pub mod api;
pub mod bootstrap;
pub mod config;
pub mod db;
pub mod fernet;
pub mod password;
pub mod policy;
pub mod testing;
pub mod token;

use std::sync::Arc;

use oxstack_core::policy::Enforcer;
use oxstack_store::Store;

pub use config::IdentityConfig;
pub use token::TokenProvider;

/// The identity service: what its handlers share.
pub struct Identity {
    pub store: Store,
    pub config: IdentityConfig,
    pub tokens: TokenProvider,
    pub policy: Enforcer,
    pub passwords: password::PasswordHasher,
    /// The URL clients reach this cloud at, without a trailing slash
    /// (`http://127.0.0.1:5000`).
    pub public_url: String,
}

impl Identity {
    /// Opens the identity service on `store`: migrates its tables, loads
    /// (creating on first start) the Fernet keys and the policy.
    pub async fn open(
        store: Store,
        config: IdentityConfig,
        data_dir: &std::path::Path,
        public_url: String,
    ) -> Result<Self, OpenError> {
        store.migrate("identity", db::schema::MIGRATIONS).await?;
        let key_dir = config
            .fernet_key_repository
            .clone()
            .unwrap_or_else(|| data_dir.join("fernet-keys"));
        let repository = fernet::KeyRepository::open(key_dir);
        if repository.create_if_missing()? {
            tracing::info!(dir = %repository.dir().display(), "created Fernet keys");
        }
        let tokens = TokenProvider::new(repository)?;
        let policy = policy::load(config.policy_file.as_deref())?;
        for (rule, missing) in policy.undefined_references() {
            tracing::warn!(
                rule,
                missing,
                "policy rule refers to an undefined rule; it never passes"
            );
        }
        let passwords =
            password::PasswordHasher::new(config.password_hash_rounds, config.password_cache);
        Ok(Identity {
            store,
            config,
            tokens,
            policy,
            passwords,
            public_url,
        })
    }

    pub fn pool(&self) -> &oxstack_store::Pool {
        self.store.pool()
    }
}

/// A failure to start the identity service.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] oxstack_store::StoreError),
    #[error("Fernet key repository: {0}")]
    KeyRepository(#[from] fernet::KeyRepositoryError),
    #[error("policy: {0}")]
    Policy(#[from] oxstack_core::policy::PolicyLoadError),
}

/// Shared handle passed to every handler.
pub type IdentityState = Arc<Identity>;
