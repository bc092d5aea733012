//! Settings of the identity service (`[identity]` in the config file).

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// How long an issued token is valid, in seconds (Keystone's default:
    /// one hour).
    pub token_expiration: i64,
    /// Directory of the Fernet keys; defaults to DATA_DIR/fernet-keys.
    pub fernet_key_repository: Option<PathBuf>,
    /// How many Fernet keys `rotate-keys` keeps (staged and primary included).
    pub max_active_keys: usize,
    /// bcrypt cost for new password hashes (Keystone's default: 12).
    pub password_hash_rounds: u32,
    /// Remember passwords already checked against their bcrypt hash, as a
    /// keyed SHA-256 in memory, so that repeated logins do not pay bcrypt's
    /// cost each time. Hashes at rest stay bcrypt.
    pub password_cache: bool,
    /// The region endpoints are registered in.
    pub region: String,
    /// Path of an oslo.policy file (YAML or JSON) overriding default rules.
    pub policy_file: Option<PathBuf>,
    /// Longest list an identity list call returns (Keystone's `list_limit`);
    /// longer lists are truncated and marked `truncated`.
    pub list_limit: Option<usize>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            token_expiration: 3600,
            fernet_key_repository: None,
            max_active_keys: 3,
            password_hash_rounds: 12,
            password_cache: true,
            region: "RegionOne".to_owned(),
            policy_file: None,
            list_limit: None,
        }
    }
}
