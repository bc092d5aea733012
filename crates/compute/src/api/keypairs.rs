//! `/os-keypairs`: import or generate (SSH keys, and from 2.2 X.509
//! certificates), list, show and delete the caller's keypairs. Keypairs belong to a user, not a project; admins reach other
//! users' keypairs with `user_id` (2.10+).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::pagination::{next_link, paginate, PageRequest};
use oxstack_core::{ApiError, ErrorKind};
use oxstack_store::Row;
use serde_json::{json, Map, Value};

use super::{db_error, parse_body, ComputeState, QueryPairs, Version};
use crate::policy::Caller;
use crate::{quota, sshkey};

const MAX_LIMIT: usize = 1000;

pub fn routes() -> Router<ComputeState> {
    Router::new()
        .route("/os-keypairs", get(list).post(create))
        .route("/os-keypairs/{name}", get(show).delete(delete))
}

/// One stored keypair.
struct Keypair {
    id: i64,
    user_id: String,
    name: String,
    key_type: String,
    public_key: String,
    fingerprint: String,
    created_at: i64,
}

const COLUMNS: &str = "id, user_id, name, key_type, public_key, fingerprint, created_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<Keypair, sqlx::Error> {
    Ok(Keypair {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        key_type: row.try_get("key_type")?,
        public_key: row.try_get("public_key")?,
        fingerprint: row.try_get("fingerprint")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Renders the list view: name, key, fingerprint, and `type` from 2.2.
fn summary(keypair: &Keypair, version: Microversion) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("name".into(), json!(keypair.name));
    body.insert("public_key".into(), json!(keypair.public_key));
    body.insert("fingerprint".into(), json!(keypair.fingerprint));
    if version.at_least(2, 2) {
        body.insert("type".into(), json!(keypair.key_type));
    }
    body
}

/// Formats unix seconds as Nova writes keypair times (no zone suffix).
fn nova_time(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S.000000")
        .to_string()
}

/// Resolves whose keypairs a request addresses: the `user_id` query
/// parameter from 2.10 (checked by policy), otherwise the caller.
fn target_user(caller: &Caller, version: Microversion, requested: Option<&str>) -> String {
    match requested {
        Some(user) if version.at_least(2, 10) => user.to_owned(),
        _ => caller.user_id().to_owned(),
    }
}

fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

async fn load(state: &ComputeState, user_id: &str, name: &str) -> Result<Keypair, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM compute_keypairs WHERE user_id = $1 AND name = $2"
    ))
    .bind(user_id)
    .bind(name)
    .fetch_optional(state.pool())
    .await
    .map_err(db_error)?;
    let row = row.ok_or_else(|| {
        ApiError::not_found(format!("Keypair {name} not found for user {user_id}"))
    })?;
    from_row(&row).map_err(db_error)
}

async fn list(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let user_id = target_user(&caller, version, query_value(&query.0, "user_id"));
    caller.authorize(
        &state.policy,
        "os_compute_api:os-keypairs:index",
        json!({"user_id": user_id}),
    )?;
    // Paging exists from 2.35; before it Nova ignores limit and marker.
    let page = if version.at_least(2, 35) {
        PageRequest::from_query(&query.0, MAX_LIMIT)?
    } else {
        PageRequest::default()
    };

    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM compute_keypairs WHERE user_id = $1 ORDER BY name"
    ))
    .bind(&user_id)
    .fetch_all(state.pool())
    .await
    .map_err(db_error)?;
    let mut keypairs = Vec::with_capacity(rows.len());
    for row in &rows {
        keypairs.push(from_row(row).map_err(db_error)?);
    }

    let page = paginate(keypairs, &page, |k| k.name.as_str())?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|k| json!({ "keypair": summary(k, version) }))
        .collect();
    let mut body = json!({ "keypairs": items });
    if let Some(marker) = page.next_marker {
        let href = next_link(&state.v21_url("os-keypairs"), &query.0, &marker);
        body["keypairs_links"] = json!([{"rel": "next", "href": href}]);
    }
    Ok(Json(body))
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(name): Path<String>,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let user_id = target_user(&caller, version, query_value(&query.0, "user_id"));
    caller.authorize(
        &state.policy,
        "os_compute_api:os-keypairs:show",
        json!({"user_id": user_id}),
    )?;
    let keypair = load(&state, &user_id, &name).await?;
    let mut body = summary(&keypair, version);
    body.insert("id".into(), json!(keypair.id));
    body.insert("user_id".into(), json!(keypair.user_id));
    body.insert("created_at".into(), json!(nova_time(keypair.created_at)));
    body.insert("updated_at".into(), Value::Null);
    body.insert("deleted".into(), json!(false));
    body.insert("deleted_at".into(), Value::Null);
    Ok(Json(json!({ "keypair": body })))
}

async fn delete(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(name): Path<String>,
    query: QueryPairs,
) -> Result<StatusCode, ApiError> {
    let user_id = target_user(&caller, version, query_value(&query.0, "user_id"));
    caller.authorize(
        &state.policy,
        "os_compute_api:os-keypairs:delete",
        json!({"user_id": user_id}),
    )?;
    let result = sqlx::query("DELETE FROM compute_keypairs WHERE user_id = $1 AND name = $2")
        .bind(&user_id)
        .bind(&name)
        .execute(state.pool())
        .await
        .map_err(db_error)?;
    if result.rows_affected() == 0 {
        return Err(ApiError::not_found(format!(
            "Keypair {name} not found for user {user_id}"
        )));
    }
    tracing::info!(user_id = %user_id, keypair = %name, "keypair deleted");
    Ok(if version.at_least(2, 2) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    })
}

async fn create(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_body(&body)?;
    let request = super::keypair_input::parse(&body, version)?;
    let user_id = match &request.user_id {
        Some(user) => user.clone(),
        None => caller.user_id().to_owned(),
    };
    caller.authorize(
        &state.policy,
        "os_compute_api:os-keypairs:create",
        json!({"user_id": user_id}),
    )?;

    let limits = quota::limits(&state, caller.project_id(), Some(&user_id)).await?;
    let limit = limits["key_pairs"];
    let used = quota::count_keypairs(&state, &user_id).await?;
    if limit >= 0 && used + 1 > limit {
        return Err(ApiError::new(
            ErrorKind::QuotaExceeded,
            format!("Quota exceeded, too many key pairs: {used} of {limit} key_pairs used."),
        ));
    }

    let key_type = request.key_type.as_str();
    let (public_key, fingerprint, private_key) = match request.public_key {
        Some(text) => {
            let fingerprint = if key_type == "x509" {
                crate::x509::parse_pem(&text).map(|der| crate::x509::fingerprint(&der))
            } else {
                sshkey::parse(&text).map(|key| key.md5_fingerprint())
            };
            let fingerprint = fingerprint.map_err(|reason| {
                ApiError::bad_request(format!("Keypair data is invalid: {reason}."))
            })?;
            (text, fingerprint, None)
        }
        None => {
            let common_name = user_id.clone();
            let x509 = key_type == "x509";
            let generated = tokio::task::spawn_blocking(move || {
                if x509 {
                    crate::x509::generate(&common_name)
                } else {
                    sshkey::generate_rsa()
                }
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
            (
                generated.public_key,
                generated.fingerprint,
                Some(generated.private_key),
            )
        }
    };

    let now = chrono::Utc::now().timestamp();
    let new = NewKeypair {
        user_id: &user_id,
        name: &request.name,
        key_type,
        public_key: &public_key,
        fingerprint: &fingerprint,
        created_at: now,
    };
    let keypair = insert(&state, &new).await?;
    tracing::info!(user_id = %user_id, keypair = %request.name, "keypair created");

    let mut view = Map::new();
    view.insert("name".into(), json!(keypair.name));
    view.insert("public_key".into(), json!(keypair.public_key));
    view.insert("fingerprint".into(), json!(keypair.fingerprint));
    view.insert("user_id".into(), json!(keypair.user_id));
    if version.at_least(2, 2) {
        view.insert("type".into(), json!(keypair.key_type));
    }
    if let Some(private_key) = private_key {
        view.insert("private_key".into(), json!(private_key));
    }
    let status = if version.at_least(2, 2) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "keypair": view }))).into_response())
}

/// A keypair to insert.
struct NewKeypair<'a> {
    user_id: &'a str,
    name: &'a str,
    key_type: &'a str,
    public_key: &'a str,
    fingerprint: &'a str,
    created_at: i64,
}

/// Inserts a keypair with the next integer id (Nova's ids are integers).
/// Two concurrent creates may pick the same id, and the loser retries.
async fn insert(state: &ComputeState, new: &NewKeypair<'_>) -> Result<Keypair, ApiError> {
    for _ in 0..5 {
        let (next,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(id), 0) + 1 FROM compute_keypairs")
                .fetch_one(state.pool())
                .await
                .map_err(db_error)?;
        let result = sqlx::query(
            "INSERT INTO compute_keypairs (id, user_id, name, key_type, public_key, fingerprint, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(next)
        .bind(new.user_id)
        .bind(new.name)
        .bind(new.key_type)
        .bind(new.public_key)
        .bind(new.fingerprint)
        .bind(new.created_at)
        .execute(state.pool())
        .await;
        match result {
            Ok(_) => {
                return Ok(Keypair {
                    id: next,
                    user_id: new.user_id.to_owned(),
                    name: new.name.to_owned(),
                    key_type: new.key_type.to_owned(),
                    public_key: new.public_key.to_owned(),
                    fingerprint: new.fingerprint.to_owned(),
                    created_at: new.created_at,
                })
            }
            Err(error) if oxstack_store::is_unique_violation(&error) => {
                if load(state, new.user_id, new.name).await.is_ok() {
                    return Err(ApiError::conflict(format!(
                        "Key pair '{}' already exists.",
                        new.name
                    )));
                }
            }
            Err(error) => return Err(db_error(error)),
        }
    }
    Err(ApiError::conflict(
        "Keypair creation kept colliding with concurrent creates; retry.",
    ))
}
