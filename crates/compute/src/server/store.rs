//! Server persistence. Every write compares the revision the caller read
//! and bumps it, so two requests racing on one server cannot both start an
//! action, and a metadata update cannot undo a state change made meanwhile.
//! The losing writer reads the server again and repeats its checks, which
//! [`modify`] does.

use oxstack_store::Pool;
use sqlx::Row;

use super::model::{Server, TaskState};

fn task_column(task: Option<TaskState>) -> Option<&'static str> {
    task.map(TaskState::as_str)
}

fn encode(server: &Server) -> String {
    serde_json::to_string(server).expect("a server always serialises")
}

fn decode(row: &sqlx::any::AnyRow) -> Result<Server, sqlx::Error> {
    let doc: String = row.try_get("doc")?;
    let mut server: Server =
        serde_json::from_str(&doc).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    server.revision = row.try_get("revision")?;
    Ok(server)
}

/// Stores a new server at revision 0.
pub async fn insert<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    server: &Server,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO compute_servers (id, project_id, user_id, name, host, vm_state, task_state, \
         created_at, updated_at, deleted, revision, doc) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11)",
    )
    .bind(&server.id)
    .bind(&server.project_id)
    .bind(&server.user_id)
    .bind(&server.name)
    .bind(server.host.as_deref())
    .bind(server.vm_state.as_str())
    .bind(task_column(server.task_state))
    .bind(server.created_at)
    .bind(server.updated_at)
    .bind(i64::from(server.deleted))
    .bind(encode(server))
    .execute(db)
    .await?;
    Ok(())
}

const SELECT: &str = "SELECT doc, revision FROM compute_servers";

/// Returns server `id`, or `None` when it is missing or deleted.
pub async fn get(db: &Pool, id: &str) -> Result<Option<Server>, sqlx::Error> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1 AND deleted = 0"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(decode).transpose()
}

/// Returns server `id`, including a deleted one.
pub async fn get_any(db: &Pool, id: &str) -> Result<Option<Server>, sqlx::Error> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(decode).transpose()
}

/// The selection of servers that [`list`] returns. Filters that the API
/// applies in memory (name regex, status, …) are not part of it.
#[derive(Debug, Clone, Default)]
pub struct ListScope {
    /// Only this project's servers, or `None` for all projects.
    pub project_id: Option<String>,
    /// Only servers on this host.
    pub host: Option<String>,
    /// Include deleted servers.
    pub deleted: bool,
}

/// Lists the servers in `scope`, newest first, as Nova sorts by default.
pub async fn list(db: &Pool, scope: &ListScope) -> Result<Vec<Server>, sqlx::Error> {
    let mut sql = format!("{SELECT} WHERE 1 = 1");
    let mut binds = Vec::new();
    if let Some(project) = &scope.project_id {
        binds.push(project.clone());
        sql.push_str(&format!(" AND project_id = ${}", binds.len()));
    }
    if let Some(host) = &scope.host {
        binds.push(host.clone());
        sql.push_str(&format!(" AND host = ${}", binds.len()));
    }
    if !scope.deleted {
        sql.push_str(" AND deleted = 0");
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC");
    let mut query = sqlx::query(&sql);
    for bind in &binds {
        query = query.bind(bind);
    }
    query.fetch_all(db).await?.iter().map(decode).collect()
}

/// Writes `server` if the stored revision is still `server.revision`, then
/// advances `server.revision`. Returns whether the row was written.
pub async fn save<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    server: &mut Server,
) -> Result<bool, sqlx::Error> {
    let written = sqlx::query(
        "UPDATE compute_servers SET name = $2, host = $3, vm_state = $4, task_state = $5, \
         updated_at = $6, deleted = $7, doc = $8, user_id = $9, revision = revision + 1 \
         WHERE id = $1 AND revision = $10",
    )
    .bind(&server.id)
    .bind(&server.name)
    .bind(server.host.as_deref())
    .bind(server.vm_state.as_str())
    .bind(task_column(server.task_state))
    .bind(server.updated_at)
    .bind(i64::from(server.deleted))
    .bind(encode(server))
    .bind(&server.user_id)
    .bind(server.revision)
    .execute(db)
    .await?
    .rows_affected()
        == 1;
    if written {
        server.revision += 1;
    }
    Ok(written)
}

/// The outcome of a [`modify`].
// A `Modified` lives for one write and is matched at once, so the size of
// the `Saved` variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Modified<E> {
    /// The change was written. Contains the server as now stored.
    Saved(Server),
    /// Server `id` does not exist or was deleted.
    NotFound,
    /// `change` rejected the server, so nothing was written.
    Refused(E),
}

/// Reads server `id`, applies `change` and saves it, and retries from the read
/// when another writer saved first. `change` receives the current server on
/// each attempt, so its checks (a running task, a lock) still hold at the write.
pub async fn modify<E>(
    db: &Pool,
    id: &str,
    mut change: impl FnMut(&mut Server) -> Result<(), E>,
) -> Result<Modified<E>, sqlx::Error> {
    loop {
        let Some(mut server) = get(db, id).await? else {
            return Ok(Modified::NotFound);
        };
        if let Err(refusal) = change(&mut server) {
            return Ok(Modified::Refused(refusal));
        }
        server.updated_at = chrono::Utc::now().timestamp();
        if save(db, &mut server).await? {
            return Ok(Modified::Saved(server));
        }
    }
}
