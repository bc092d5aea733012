//! Persistence of the identity service: one module per resource, each with
//! its row type and the queries on it.

pub mod app_creds;
pub mod assignments;
pub mod catalog;
pub mod domains;
pub mod groups;
pub mod projects;
pub mod quotas;
pub mod revocations;
pub mod roles;
pub mod schema;
pub mod users;

use oxstack_core::ApiError;
use serde_json::Value;

/// Returns the current time in unix seconds, the form times are stored in.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Returns a new resource id as Keystone makes them: a UUID in 32 hex digits.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Maps a database failure to a 500 whose detail is logged.
pub fn db_error(error: sqlx::Error) -> ApiError {
    oxstack_store::api_error(error)
}

/// Reads a JSON column, tolerating an empty or corrupt value as `default`.
pub fn json_column(text: &str, default: Value) -> Value {
    serde_json::from_str(text).unwrap_or(default)
}

/// Builds ` AND col IN ($n, $n+1, …)` placeholders for `count` values,
/// numbering from `first`.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
