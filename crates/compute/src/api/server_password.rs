//! `os-server-password`: the encrypted admin password a guest posted to the
//! metadata service (cloudbase-init does this on Windows guests), and its
//! removal.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::servers::{load_authorized, target};
use super::{db_error, ComputeState};
use crate::policy::Caller;
use crate::server::store::{self, Modified};

pub fn routes() -> Router<ComputeState> {
    Router::new().route("/servers/{id}/os-server-password", get(show).delete(clear))
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let server = load_authorized(
        &state,
        &caller,
        &id,
        "os_compute_api:os-server-password:show",
        target,
    )
    .await?;
    Ok(Json(json!({"password": server.password})))
}

/// Removes the stored password; Nova returns 204 whether one was stored
/// or not.
async fn clear(
    State(state): State<ComputeState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    load_authorized(
        &state,
        &caller,
        &id,
        "os_compute_api:os-server-password:clear",
        target,
    )
    .await?;
    let outcome = store::modify(state.pool(), &id, |server| {
        server.password.clear();
        Ok::<(), ()>(())
    })
    .await
    .map_err(db_error)?;
    match outcome {
        Modified::Saved(_) => {
            tracing::info!(server_id = %id, "server password cleared");
            Ok(StatusCode::NO_CONTENT)
        }
        Modified::NotFound | Modified::Refused(()) => Err(ApiError::not_found(format!(
            "Instance {id} could not be found."
        ))),
    }
}
