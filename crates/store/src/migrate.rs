//! Schema migrations: numbered SQL scripts per service, applied once each and
//! recorded in `schema_migrations`.

use sqlx::AnyPool;

use crate::StoreError;

/// One schema change. `sql` may hold several statements separated by `;`
/// (no `;` inside string literals).
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sql: &'static str,
}

pub(crate) async fn run(
    pool: &AnyPool,
    service: &str,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let fail = |version: i64| {
        let service = service.to_owned();
        move |source| StoreError::Migrate {
            service,
            version,
            source,
        }
    };
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             service TEXT NOT NULL,
             version BIGINT NOT NULL,
             description TEXT NOT NULL,
             PRIMARY KEY (service, version))",
    )
    .execute(pool)
    .await
    .map_err(fail(0))?;

    for migration in migrations {
        let mut tx = pool.begin().await.map_err(fail(migration.version))?;
        let applied: Option<(i64,)> = sqlx::query_as(
            "SELECT version FROM schema_migrations WHERE service = $1 AND version = $2",
        )
        .bind(service)
        .bind(migration.version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(fail(migration.version))?;
        if applied.is_some() {
            continue;
        }
        for statement in migration
            .sql
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(fail(migration.version))?;
        }
        sqlx::query(
            "INSERT INTO schema_migrations (service, version, description) VALUES ($1, $2, $3)",
        )
        .bind(service)
        .bind(migration.version)
        .bind(migration.description)
        .execute(&mut *tx)
        .await
        .map_err(fail(migration.version))?;
        tx.commit().await.map_err(fail(migration.version))?;
        tracing::info!(
            service,
            version = migration.version,
            "applied migration {}",
            migration.description
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{Migration, Store};

    const MIGRATIONS: &[Migration] = &[
        Migration {
            version: 1,
            description: "things",
            sql: "CREATE TABLE things (id TEXT PRIMARY KEY, n BIGINT NOT NULL)",
        },
        Migration {
            version: 2,
            description: "thing flag",
            sql: "ALTER TABLE things ADD COLUMN flag BIGINT NOT NULL DEFAULT 0",
        },
    ];

    #[tokio::test]
    async fn migrations_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate("test", MIGRATIONS).await.unwrap();
        store.migrate("test", MIGRATIONS).await.unwrap();
        sqlx::query("INSERT INTO things (id, n, flag) VALUES ($1, $2, $3)")
            .bind("a")
            .bind(1_i64)
            .bind(1_i64)
            .execute(store.pool())
            .await
            .unwrap();
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM schema_migrations")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(count, 2);
    }

    #[tokio::test]
    async fn duplicate_key_is_unique_violation() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        store.migrate("test", MIGRATIONS).await.unwrap();
        let insert = || {
            sqlx::query("INSERT INTO things (id, n) VALUES ($1, $2)")
                .bind("a")
                .bind(1_i64)
        };
        insert().execute(store.pool()).await.unwrap();
        let error = insert().execute(store.pool()).await.unwrap_err();
        assert!(crate::is_unique_violation(&error), "{error}");
    }
}
