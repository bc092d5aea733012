//! The database behind every service: one connection pool over SQLite (the
//! embedded default) or PostgreSQL (multi-node), migrations, and the mapping
//! of database failures to API errors.
//!
//! Services write portable SQL: `$1`-style placeholders, `TEXT`, `BIGINT`
//! and `DOUBLE PRECISION` columns, times as unix seconds, flags as `BIGINT`
//! 0 or 1 (sqlx's `Any` driver cannot decode SQLite's `BOOLEAN`), and no
//! backend-specific functions. Both backends then run the same queries
//! through sqlx's `Any` driver, so no service knows which one it runs on.

mod migrate;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};

pub use migrate::Migration;
pub use sqlx::{Any, AnyPool as Pool, Row, Transaction};

/// The database backend behind a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL {url} is not supported; use sqlite://PATH or postgres://…")]
    UnsupportedUrl { url: String },
    #[error("could not connect to the database at {url}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migration {service}/{version} failed")]
    Migrate {
        service: String,
        version: i64,
        #[source]
        source: sqlx::Error,
    },
}

/// A connection pool and what it is connected to.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects to `url` (`sqlite:///path/to/db` or `postgres://…`),
    /// creating a SQLite file when it does not exist.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl {
                url: url.to_owned(),
            });
        };
        let connect_error = |source| StoreError::Connect {
            url: redact(url),
            source,
        };
        let pool = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                let options = AnyConnectOptions::from_str(&url).map_err(connect_error)?;
                pool_options(8)
                    .after_connect(|connection, _meta| {
                        Box::pin(async move {
                            for pragma in SQLITE_PRAGMAS {
                                sqlx::Executor::execute(&mut *connection, *pragma).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect_with(quiet(options))
                    .await
            }
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(url).map_err(connect_error)?;
                pool_options(16).connect_with(quiet(options)).await
            }
        }
        .map_err(connect_error)?;
        Ok(Store { pool, backend })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the `migrations` of `service` that have not run yet, each in
    /// its own transaction.
    pub async fn migrate(&self, service: &str, migrations: &[Migration]) -> Result<(), StoreError> {
        migrate::run(&self.pool, service, migrations).await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Set on every SQLite connection: WAL lets readers run beside the one
/// writer, and the busy timeout makes writers queue instead of failing.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 30000",
];

fn pool_options(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
}

// Statements are logged at trace level only: at info they would flood the log.
fn quiet(options: AnyConnectOptions) -> AnyConnectOptions {
    options.log_statements(log::LevelFilter::Trace)
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://…@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// True when `error` is a unique-constraint violation, which services turn
/// into a 409 naming the duplicate.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// Maps a database failure to an internal API error whose detail is logged.
/// Callers that expect a unique violation check `is_unique_violation` first
/// and answer 409 with their own message.
pub fn api_error(error: sqlx::Error) -> oxstack_core::ApiError {
    oxstack_core::ApiError::internal(format!("database error: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_password() {
        assert_eq!(redact("postgres://u:secret@db/ox"), "postgres://…@db/ox");
        assert_eq!(redact("sqlite:///x.db"), "sqlite:///x.db");
    }
}
