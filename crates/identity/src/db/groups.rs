//! Groups of users and their membership.

use oxstack_core::ApiError;
use oxstack_store::{Pool, Row};

use super::db_error;

/// Returns the ids of the groups `user_id` belongs to.
pub async fn group_ids_of_user(pool: &Pool, user_id: &str) -> Result<Vec<String>, ApiError> {
    let rows = sqlx::query("SELECT group_id FROM group_members WHERE user_id = $1 ORDER BY group_id")
        .bind(user_id)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    rows.iter().map(|r| r.try_get("group_id")).collect::<Result<_, _>>().map_err(db_error)
}
