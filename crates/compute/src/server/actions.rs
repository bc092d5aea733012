//! Instance actions (`os-instance-actions`). The API records each request
//! that changes a server, and the conductor records the events of carrying
//! it out with their result. The API reads both back for
//! `os-instance-actions`.

use oxstack_store::Pool;

/// Returns the current time in unix microseconds, the unit of every time in
/// the instance action tables. Nova shows these times with microseconds and
/// lists actions of the same second in the order they started.
fn now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Records that `request_id` started `action` (`create`, `stop`, …).
pub async fn start(
    db: &Pool,
    server_id: &str,
    request_id: &str,
    action: &str,
    user_id: &str,
    project_id: &str,
) -> Result<(), sqlx::Error> {
    let at = now();
    sqlx::query(
        "INSERT INTO compute_instance_actions (request_id, server_id, action, user_id, project_id, \
         start_time, updated_at, message) VALUES ($1, $2, $3, $4, $5, $6, $6, NULL)",
    )
    .bind(request_id)
    .bind(server_id)
    .bind(action)
    .bind(user_id)
    .bind(project_id)
    .bind(at)
    .execute(db)
    .await?;
    Ok(())
}

/// Records the start of one step (`compute__do_build_and_run_instance`,
/// `compute_stop_instance`, …) on `host`.
pub async fn event_start(
    db: &Pool,
    server_id: &str,
    request_id: &str,
    event: &str,
    host: Option<&str>,
) -> Result<(), sqlx::Error> {
    let at = now();
    sqlx::query(
        "INSERT INTO compute_instance_action_events (request_id, server_id, event, host, start_time) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(request_id)
    .bind(server_id)
    .bind(event)
    .bind(host)
    .bind(at)
    .execute(db)
    .await?;
    touch(db, server_id, request_id, None).await
}

/// Records how a step ended: `Ok` is Nova's `Success`, and `Err` is `Error`
/// with the failure stored as the traceback that admins can read. A failed
/// step also sets the action's message to `Error`, as Nova does.
pub async fn event_finish(
    db: &Pool,
    server_id: &str,
    request_id: &str,
    event: &str,
    outcome: Result<(), &str>,
) -> Result<(), sqlx::Error> {
    let (result, traceback) = match outcome {
        Ok(()) => ("Success", None),
        Err(why) => ("Error", Some(why)),
    };
    sqlx::query(
        "UPDATE compute_instance_action_events SET finish_time = $1, result = $2, traceback = $3 \
         WHERE request_id = $4 AND server_id = $5 AND event = $6",
    )
    .bind(now())
    .bind(result)
    .bind(traceback)
    .bind(request_id)
    .bind(server_id)
    .bind(event)
    .execute(db)
    .await?;
    touch(db, server_id, request_id, outcome.err().map(|_| "Error")).await
}

async fn touch(
    db: &Pool,
    server_id: &str,
    request_id: &str,
    message: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE compute_instance_actions SET updated_at = $1, message = COALESCE($2, message) \
         WHERE request_id = $3 AND server_id = $4",
    )
    .bind(now())
    .bind(message)
    .bind(request_id)
    .bind(server_id)
    .execute(db)
    .await?;
    Ok(())
}

/// One recorded request on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub request_id: String,
    pub server_id: String,
    pub action: String,
    pub user_id: String,
    pub project_id: String,
    /// Unix microseconds, like every time in these tables.
    pub start_time: i64,
    pub updated_at: i64,
    /// `Error` when a step failed, otherwise `None`.
    pub message: Option<String>,
}

/// One step of carrying out an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub event: String,
    pub host: Option<String>,
    pub start_time: i64,
    pub finish_time: Option<i64>,
    /// `Success` or `Error` once finished, otherwise `None`.
    pub result: Option<String>,
    pub traceback: Option<String>,
}

const ACTION_COLUMNS: &str =
    "request_id, server_id, action, user_id, project_id, start_time, updated_at, message";

fn action_from_row(row: &sqlx::any::AnyRow) -> Result<ActionRecord, sqlx::Error> {
    use sqlx::Row;
    Ok(ActionRecord {
        request_id: row.try_get("request_id")?,
        server_id: row.try_get("server_id")?,
        action: row.try_get("action")?,
        user_id: row.try_get("user_id")?,
        project_id: row.try_get("project_id")?,
        start_time: row.try_get("start_time")?,
        updated_at: row.try_get("updated_at")?,
        message: row.try_get("message")?,
    })
}

/// Returns the actions of `server_id`, newest first, as Nova lists them.
pub async fn list(db: &Pool, server_id: &str) -> Result<Vec<ActionRecord>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {ACTION_COLUMNS} FROM compute_instance_actions WHERE server_id = $1 \
         ORDER BY start_time DESC, request_id DESC"
    ))
    .bind(server_id)
    .fetch_all(db)
    .await?;
    rows.iter().map(action_from_row).collect()
}

/// Returns the action `request_id` of `server_id`, if recorded.
pub async fn get(
    db: &Pool,
    server_id: &str,
    request_id: &str,
) -> Result<Option<ActionRecord>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {ACTION_COLUMNS} FROM compute_instance_actions WHERE server_id = $1 AND request_id = $2"
    ))
    .bind(server_id)
    .bind(request_id)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(action_from_row).transpose()
}

/// Returns the events of one action in the order they started.
pub async fn events(
    db: &Pool,
    server_id: &str,
    request_id: &str,
) -> Result<Vec<EventRecord>, sqlx::Error> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT event, host, start_time, finish_time, result, traceback \
         FROM compute_instance_action_events WHERE server_id = $1 AND request_id = $2 \
         ORDER BY start_time, event",
    )
    .bind(server_id)
    .bind(request_id)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(EventRecord {
                event: row.try_get("event")?,
                host: row.try_get("host")?,
                start_time: row.try_get("start_time")?,
                finish_time: row.try_get("finish_time")?,
                result: row.try_get("result")?,
                traceback: row.try_get("traceback")?,
            })
        })
        .collect()
}
