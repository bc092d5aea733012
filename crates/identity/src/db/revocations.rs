//! Revocation events: tokens revoked one by one (by audit id) and all
//! tokens of a user issued before a moment (password change, disable).

use oxstack_core::ApiError;
use oxstack_store::Pool;

use super::{db_error, new_id, now, placeholders};

/// Revokes the token chain identified by `audit_id`.
pub async fn revoke_audit_id(pool: &Pool, audit_id: &str) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO revocation_events (id, audit_id, issued_before, revoked_at) VALUES ($1, $2, $3, $3)",
    )
    .bind(new_id())
    .bind(audit_id)
    .bind(now())
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Revokes every token of `user_id` issued up to now.
pub async fn revoke_user(pool: &Pool, user_id: &str) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO revocation_events (id, user_id, issued_before, revoked_at) VALUES ($1, $2, $3, $3)",
    )
    .bind(new_id())
    .bind(user_id)
    .bind(now())
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// True when a token with these audit ids, issued by this user at
/// `issued_at` (unix seconds), has been revoked.
///
/// Token times have whole seconds, so a user revocation covers the tokens
/// issued before the second it happened in. Tokens issued within that same
/// second stay valid; otherwise a login straight after a password change
/// would be refused. Keystone draws the line the same way.
pub async fn is_revoked(
    pool: &Pool,
    audit_ids: &[String],
    user_id: &str,
    issued_at: i64,
) -> Result<bool, ApiError> {
    let sql = format!(
        "SELECT id FROM revocation_events
         WHERE (user_id = $1 AND issued_before > $2) OR audit_id IN ({}) LIMIT 1",
        if audit_ids.is_empty() {
            "NULL".to_owned()
        } else {
            placeholders(3, audit_ids.len())
        }
    );
    let mut query = sqlx::query(&sql).bind(user_id).bind(issued_at);
    for id in audit_ids {
        query = query.bind(id);
    }
    let row = query.fetch_optional(pool).await.map_err(db_error)?;
    Ok(row.is_some())
}

/// Deletes events older than every token they could match.
pub async fn prune(pool: &Pool, older_than: i64) -> Result<u64, ApiError> {
    let result = sqlx::query("DELETE FROM revocation_events WHERE revoked_at < $1")
        .bind(older_than)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected())
}
