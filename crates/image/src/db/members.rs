//! The `image_members` table: which projects a shared image is offered to,
//! and whether they accepted.

use oxstack_core::ApiError;
use oxstack_store::{Pool, Row};
use sqlx::any::AnyRow;

use super::db_error;
use crate::model::{ImageId, Member, MemberStatus};

const COLUMNS: &str = "image_id, member_id, status, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Member, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(Member {
        image_id: ImageId::new(row.try_get::<String, _>("image_id")?),
        member_id: row.try_get("member_id")?,
        status: status
            .parse()
            .map_err(|error: String| sqlx::Error::ColumnDecode {
                index: "status".into(),
                source: error.into(),
            })?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Inserts a membership. An existing one is a 409, as in Glance.
pub async fn insert(pool: &Pool, member: &Member) -> Result<(), ApiError> {
    let sql = format!("INSERT INTO image_members ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)");
    let result = sqlx::query(&sql)
        .bind(member.image_id.as_str())
        .bind(member.member_id.as_str())
        .bind(member.status.as_str())
        .bind(member.created_at)
        .bind(member.updated_at)
        .execute(pool)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(error) if oxstack_store::is_unique_violation(&error) => {
            Err(ApiError::conflict(format!(
                "Member {} is duplicated for image {}",
                member.member_id, member.image_id
            )))
        }
        Err(error) => Err(db_error(error)),
    }
}

pub async fn get(
    pool: &Pool,
    image_id: &ImageId,
    member_id: &str,
) -> Result<Option<Member>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM image_members WHERE image_id = $1 AND member_id = $2");
    let row = sqlx::query(&sql)
        .bind(image_id.as_str())
        .bind(member_id)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref().map(from_row).transpose().map_err(db_error)
}

/// Returns the image's members, oldest first.
pub async fn list(pool: &Pool, image_id: &ImageId) -> Result<Vec<Member>, ApiError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM image_members WHERE image_id = $1 ORDER BY created_at, member_id"
    );
    let rows = sqlx::query(&sql)
        .bind(image_id.as_str())
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(from_row)
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

pub async fn count(pool: &Pool, image_id: &ImageId) -> Result<usize, ApiError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM image_members WHERE image_id = $1")
        .bind(image_id.as_str())
        .fetch_one(pool)
        .await
        .map_err(db_error)?;
    let count: i64 = row.try_get("n").map_err(db_error)?;
    Ok(count as usize)
}

/// Sets a membership's status. Returns false when the membership is gone.
pub async fn set_status(
    pool: &Pool,
    image_id: &ImageId,
    member_id: &str,
    status: MemberStatus,
    now: i64,
) -> Result<bool, ApiError> {
    let result = sqlx::query(
        "UPDATE image_members SET status = $1, updated_at = $2 WHERE image_id = $3 AND member_id = $4",
    )
    .bind(status.as_str())
    .bind(now)
    .bind(image_id.as_str())
    .bind(member_id)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(result.rows_affected() == 1)
}

/// Deletes a membership. Returns false when it was gone.
pub async fn delete(pool: &Pool, image_id: &ImageId, member_id: &str) -> Result<bool, ApiError> {
    let result = sqlx::query("DELETE FROM image_members WHERE image_id = $1 AND member_id = $2")
        .bind(image_id.as_str())
        .bind(member_id)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected() == 1)
}
