//! Persistence of the image service: one module per table, each with the
//! queries on it. Portable SQL: see `oxstack_store` for the rules.

pub mod images;
pub mod members;
pub mod schema;

use oxstack_core::ApiError;

/// Returns the current time in unix seconds, the form times are stored in.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Maps a database failure to a 500 whose detail is logged.
pub fn db_error(error: sqlx::Error) -> ApiError {
    oxstack_store::api_error(error)
}
