//! The `images` table: core attributes as columns, extra properties and tags
//! as JSON text.
//!
//! Every write bumps `generation`. Status changes are conditional on the
//! status the caller expects (`UPDATE … WHERE status = $from`), so two
//! uploads racing for one `queued` image cannot both win, and an upload
//! finishing after a delete finds no row to activate.

use std::collections::BTreeMap;

use oxstack_core::ApiError;
use oxstack_store::{Pool, Row};
use sqlx::any::AnyRow;

use super::db_error;
use crate::model::{DataInfo, Image, ImageId, MemberStatus, Status, OS_HASH_ALGO};

const COLUMNS: &str = "id, name, status, visibility, protected, os_hidden, disk_format, \
    container_format, size, virtual_size, checksum, os_hash_algo, os_hash_value, min_disk, \
    min_ram, owner, created_at, updated_at, properties, tags, generation";

/// The set of images a list query may return before the request's filters apply.
#[derive(Clone, Debug)]
pub enum ListScope {
    /// Every image (admins).
    All,
    /// The images one project may list: its own images, public and community
    /// images, and shared images it is a member of with `member_status`
    /// (any status when `None`).
    Project {
        project_id: Option<String>,
        member_status: Option<MemberStatus>,
    },
}

fn from_row(row: &AnyRow) -> Result<Image, sqlx::Error> {
    let decode = |column: &str, error: String| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: error.into(),
    };
    let status: String = row.try_get("status")?;
    let visibility: String = row.try_get("visibility")?;
    let properties: String = row.try_get("properties")?;
    let tags: String = row.try_get("tags")?;
    Ok(Image {
        id: ImageId::new(row.try_get::<String, _>("id")?),
        name: row.try_get("name")?,
        status: status.parse().map_err(|e| decode("status", e))?,
        visibility: visibility.parse().map_err(|e| decode("visibility", e))?,
        protected: row.try_get::<i64, _>("protected")? != 0,
        os_hidden: row.try_get::<i64, _>("os_hidden")? != 0,
        disk_format: row.try_get("disk_format")?,
        container_format: row.try_get("container_format")?,
        size: row.try_get::<Option<i64>, _>("size")?.map(|v| v as u64),
        virtual_size: row
            .try_get::<Option<i64>, _>("virtual_size")?
            .map(|v| v as u64),
        checksum: row.try_get("checksum")?,
        os_hash_algo: row.try_get("os_hash_algo")?,
        os_hash_value: row.try_get("os_hash_value")?,
        min_disk: row.try_get("min_disk")?,
        min_ram: row.try_get("min_ram")?,
        owner: row.try_get("owner")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        properties: serde_json::from_str::<BTreeMap<String, String>>(&properties)
            .map_err(|e| decode("properties", e.to_string()))?,
        tags: serde_json::from_str(&tags).map_err(|e| decode("tags", e.to_string()))?,
        generation: row.try_get("generation")?,
    })
}

fn rows_to_images(rows: &[AnyRow]) -> Result<Vec<Image>, ApiError> {
    rows.iter()
        .map(from_row)
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("maps and lists of strings serialise")
}

/// Inserts a new image. A duplicate id is a 409, as in Glance.
pub async fn insert(pool: &Pool, image: &Image) -> Result<(), ApiError> {
    let sql = format!(
        "INSERT INTO images ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
    );
    let result = sqlx::query(&sql)
        .bind(image.id.as_str())
        .bind(image.name.as_deref())
        .bind(image.status.as_str())
        .bind(image.visibility.as_str())
        .bind(image.protected as i64)
        .bind(image.os_hidden as i64)
        .bind(image.disk_format.as_deref())
        .bind(image.container_format.as_deref())
        .bind(image.size.map(|v| v as i64))
        .bind(image.virtual_size.map(|v| v as i64))
        .bind(image.checksum.as_deref())
        .bind(image.os_hash_algo.as_deref())
        .bind(image.os_hash_value.as_deref())
        .bind(image.min_disk)
        .bind(image.min_ram)
        .bind(image.owner.as_deref())
        .bind(image.created_at)
        .bind(image.updated_at)
        .bind(json_text(&image.properties))
        .bind(json_text(&image.tags))
        .bind(image.generation)
        .execute(pool)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(error) if oxstack_store::is_unique_violation(&error) => Err(ApiError::conflict(
            format!("An image with identifier {} already exists.", image.id),
        )),
        Err(error) => Err(db_error(error)),
    }
}

pub async fn get(pool: &Pool, id: &ImageId) -> Result<Option<Image>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM images WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref().map(from_row).transpose().map_err(db_error)
}

/// Returns the images `scope` may list, unsorted.
pub async fn list(pool: &Pool, scope: &ListScope) -> Result<Vec<Image>, ApiError> {
    let rows = match scope {
        ListScope::All => {
            let sql = format!("SELECT {COLUMNS} FROM images");
            sqlx::query(&sql).fetch_all(pool).await
        }
        ListScope::Project {
            project_id,
            member_status,
        } => {
            // An unscoped caller has no project: only public and community
            // images match, because NULL never equals a column.
            let sql = format!(
                "SELECT {COLUMNS} FROM images WHERE visibility IN ('public', 'community') \
                 OR owner = $1 OR (visibility = 'shared' AND id IN (SELECT image_id FROM \
                 image_members WHERE member_id = $1 AND ($2 IS NULL OR status = $2)))"
            );
            sqlx::query(&sql)
                .bind(project_id.as_deref())
                .bind(member_status.map(MemberStatus::as_str))
                .fetch_all(pool)
                .await
        }
    }
    .map_err(db_error)?;
    rows_to_images(&rows)
}

/// Returns the images of `owner` named `name`.
pub async fn find_by_name(pool: &Pool, owner: &str, name: &str) -> Result<Vec<Image>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM images WHERE owner = $1 AND name = $2");
    let rows = sqlx::query(&sql)
        .bind(owner)
        .bind(name)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    rows_to_images(&rows)
}

/// Returns the images in `status`.
pub async fn list_by_status(pool: &Pool, status: Status) -> Result<Vec<Image>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM images WHERE status = $1");
    let rows = sqlx::query(&sql)
        .bind(status.as_str())
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    rows_to_images(&rows)
}

/// Returns the ids of every image.
pub async fn all_ids(pool: &Pool) -> Result<Vec<ImageId>, ApiError> {
    let rows = sqlx::query("SELECT id FROM images")
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|row| row.try_get::<String, _>("id").map(ImageId::new))
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

/// Writes the user-changeable attributes of `image` if no other write
/// reached the row since it was read (same `generation`). Returns false otherwise, or
/// when the image is gone.
pub async fn save(pool: &Pool, image: &Image, now: i64) -> Result<bool, ApiError> {
    let result = sqlx::query(
        "UPDATE images SET name = $1, visibility = $2, protected = $3, os_hidden = $4, \
         disk_format = $5, container_format = $6, min_disk = $7, min_ram = $8, owner = $9, \
         properties = $10, tags = $11, updated_at = $12, generation = generation + 1 \
         WHERE id = $13 AND generation = $14",
    )
    .bind(image.name.as_deref())
    .bind(image.visibility.as_str())
    .bind(image.protected as i64)
    .bind(image.os_hidden as i64)
    .bind(image.disk_format.as_deref())
    .bind(image.container_format.as_deref())
    .bind(image.min_disk)
    .bind(image.min_ram)
    .bind(image.owner.as_deref())
    .bind(json_text(&image.properties))
    .bind(json_text(&image.tags))
    .bind(now)
    .bind(image.id.as_str())
    .bind(image.generation)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(result.rows_affected() == 1)
}

/// Moves the image from `from` to `to`. Returns false when the image is not
/// in `from` (or is gone). Entering `queued` clears the data attributes,
/// as Glance does, because the data they describe is gone.
pub async fn set_status(
    pool: &Pool,
    id: &ImageId,
    from: Status,
    to: Status,
    now: i64,
) -> Result<bool, ApiError> {
    let sql = if to == Status::Queued {
        "UPDATE images SET status = $1, updated_at = $2, generation = generation + 1, \
         size = NULL, virtual_size = NULL, checksum = NULL, os_hash_algo = NULL, \
         os_hash_value = NULL WHERE id = $3 AND status = $4"
    } else {
        "UPDATE images SET status = $1, updated_at = $2, generation = generation + 1 \
         WHERE id = $3 AND status = $4"
    };
    let result = sqlx::query(sql)
        .bind(to.as_str())
        .bind(now)
        .bind(id.as_str())
        .bind(from.as_str())
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected() == 1)
}

/// Records the size of data staged for an `uploading` image.
pub async fn set_staged_size(
    pool: &Pool,
    id: &ImageId,
    size: u64,
    now: i64,
) -> Result<bool, ApiError> {
    let result = sqlx::query(
        "UPDATE images SET size = $1, updated_at = $2, generation = generation + 1 \
         WHERE id = $3 AND status = 'uploading'",
    )
    .bind(size as i64)
    .bind(now)
    .bind(id.as_str())
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(result.rows_affected() == 1)
}

/// Makes the image `active` with the attributes of its stored data, if it is
/// still in `from`. Returns false otherwise.
pub async fn activate(
    pool: &Pool,
    id: &ImageId,
    from: Status,
    data: &DataInfo,
    now: i64,
) -> Result<bool, ApiError> {
    let result = sqlx::query(
        "UPDATE images SET status = 'active', size = $1, virtual_size = $2, checksum = $3, \
         os_hash_algo = $4, os_hash_value = $5, updated_at = $6, generation = generation + 1 \
         WHERE id = $7 AND status = $8",
    )
    .bind(data.size as i64)
    .bind(data.virtual_size.map(|v| v as i64))
    .bind(data.checksum.as_str())
    .bind(OS_HASH_ALGO)
    .bind(data.os_hash_value.as_str())
    .bind(now)
    .bind(id.as_str())
    .bind(from.as_str())
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(result.rows_affected() == 1)
}

/// Deletes the image and its memberships. Returns false when it was gone.
pub async fn delete(pool: &Pool, id: &ImageId) -> Result<bool, ApiError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    sqlx::query("DELETE FROM image_members WHERE image_id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let result = sqlx::query("DELETE FROM images WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(result.rows_affected() == 1)
}
