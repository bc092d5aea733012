//! `POST /servers/{id}/action`: power actions (stop, start, reboot, pause,
//! unpause, suspend, resume), lock and unlock, and console output. Each
//! power action is checked against Nova's state rules, sets its task state
//! in the same write, is recorded as an instance action and then carried
//! out by the conductor.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use oxstack_core::microversion::Microversion;
use oxstack_core::{ApiError, ErrorKind};
use oxstack_hypervisor::DriverError;
use serde_json::{json, Value};

use super::servers::{authorize_server, load, target};
use super::{db_error, parse_body, ComputeState, Version};
use crate::policy::Caller;
use crate::server::state::{self as server_state, Request};
use crate::server::store::{self, Modified};
use crate::server::{actions, Server, ServerAction, VmState};

/// Actions that Nova implements and OxStack does not yet carry out. They are
/// rejected with 501, as Nova rejects a feature its driver lacks.
const UNSUPPORTED: &[&str] = &[
    "resize",
    "confirmResize",
    "revertResize",
    "rebuild",
    "createImage",
    "createBackup",
    "migrate",
    "os-migrateLive",
    "evacuate",
    "shelve",
    "shelveOffload",
    "unshelve",
    "rescue",
    "unrescue",
    "changePassword",
    "os-resetNetwork",
    "injectNetworkInfo",
    "trigger_crash_dump",
    "addFixedIp",
    "removeFixedIp",
    "addFloatingIp",
    "removeFloatingIp",
];

pub async fn action(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_body(&body)?;
    let object = body
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| ApiError::bad_request("Malformed request body: name exactly one action."))?;
    let (name, argument) = object.iter().next().expect("one entry");
    let server = load(&state, &caller, &id).await?;

    let power = |request| power_action(&state, &caller, &server, request);
    match name.as_str() {
        "os-stop" => power(Request::Stop).await,
        "os-start" => power(Request::Start).await,
        "reboot" => power(reboot_request(argument)?).await,
        "pause" => power(Request::Pause).await,
        "unpause" => power(Request::Unpause).await,
        "suspend" => power(Request::Suspend).await,
        "resume" => power(Request::Resume).await,
        "lock" => lock(&state, &caller, &server, argument, version).await,
        "unlock" => unlock(&state, &caller, &server).await,
        "os-getConsoleOutput" => console_output(&state, &caller, &server, argument).await,
        "os-resetState" => reset_state(&state, &caller, &server, argument).await,
        "forceDelete" => force_delete(&state, &caller, &server).await,
        "restore" => restore(&state, &caller, &server).await,
        "addSecurityGroup" => {
            super::server_security_groups::add(&state, &caller, &server, argument).await
        }
        "removeSecurityGroup" => {
            super::server_security_groups::remove(&state, &caller, &server, argument).await
        }
        other if UNSUPPORTED.contains(&other) => Err(ApiError::new(
            ErrorKind::NotImplemented,
            format!("Action '{other}' is not supported by this cloud."),
        )),
        other => Err(ApiError::bad_request(format!(
            "There is no such action: {other}"
        ))),
    }
}

fn reboot_request(argument: &Value) -> Result<Request, ApiError> {
    let kind = argument
        .as_object()
        .filter(|o| o.keys().all(|k| k == "type"))
        .and_then(|o| o.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad_request(
                "Invalid input for field/attribute reboot. 'type' is a required property.",
            )
        })?;
    match kind {
        "SOFT" | "Soft" | "soft" => Ok(Request::SoftReboot),
        "HARD" | "Hard" | "hard" => Ok(Request::HardReboot),
        other => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute type. Value: {other}. '{other}' is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']"
        ))),
    }
}

/// Returns the policy rule, instance action name and conductor action of
/// a power request.
fn power_details(request: Request) -> (&'static str, &'static str, ServerAction) {
    match request {
        Request::Stop => ("os_compute_api:servers:stop", "stop", ServerAction::Stop),
        Request::Start => ("os_compute_api:servers:start", "start", ServerAction::Start),
        Request::SoftReboot => (
            "os_compute_api:servers:reboot",
            "reboot",
            ServerAction::Reboot { hard: false },
        ),
        Request::HardReboot => (
            "os_compute_api:servers:reboot",
            "reboot",
            ServerAction::Reboot { hard: true },
        ),
        Request::Pause => (
            "os_compute_api:os-pause-server:pause",
            "pause",
            ServerAction::Pause,
        ),
        Request::Unpause => (
            "os_compute_api:os-pause-server:unpause",
            "unpause",
            ServerAction::Unpause,
        ),
        Request::Suspend => (
            "os_compute_api:os-suspend-server:suspend",
            "suspend",
            ServerAction::Suspend,
        ),
        Request::Resume => (
            "os_compute_api:os-suspend-server:resume",
            "resume",
            ServerAction::Resume,
        ),
        Request::Delete | Request::ForceDelete | Request::Restore => {
            unreachable!("deletes and restore are not power actions")
        }
    }
}

/// Handles `os-resetState` (admins only). As in Nova, it sets the vm state to
/// `active` or `error` and clears the task, whatever the server is doing.
async fn reset_state(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
    argument: &Value,
) -> Result<Response, ApiError> {
    authorize_server(
        state,
        caller,
        server,
        "os_compute_api:os-admin-actions:reset_state",
        target,
    )?;
    let wanted = argument
        .as_object()
        .filter(|o| o.keys().all(|k| k == "state"))
        .and_then(|o| o.get("state"))
        .and_then(Value::as_str);
    let vm_state = match wanted {
        Some("active") => VmState::Active,
        Some("error") => VmState::Error,
        _ => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute os-resetState. Value: {argument}. 'state' must be 'active' or 'error'."
            )))
        }
    };
    let outcome = store::modify(state.pool(), &server.id, |current| {
        current.vm_state = vm_state;
        current.task_state = None;
        Ok::<(), ()>(())
    })
    .await
    .map_err(db_error)?;
    if !matches!(outcome, Modified::Saved(_)) {
        return Err(ApiError::not_found(format!(
            "Instance {} could not be found.",
            server.id
        )));
    }
    let request_id = super::servers::request_id(caller);
    actions::start(
        state.pool(),
        &server.id,
        &request_id,
        "resetState",
        caller.user_id(),
        &server.project_id,
    )
    .await
    .map_err(db_error)?;
    tracing::info!(server_id = %server.id, vm_state = vm_state.as_str(), "server state reset");
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Handles `forceDelete` by deleting the server now. Without soft delete this
/// is the plain delete, except that it requires no task in progress.
async fn force_delete(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
) -> Result<Response, ApiError> {
    authorize_server(
        state,
        caller,
        server,
        "os_compute_api:os-deferred-delete:force",
        target,
    )?;
    super::servers::delete_server(state, caller, server, Request::ForceDelete).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Handles `restore`. Soft delete is not implemented, so servers are deleted at
/// once, none is ever in `soft-delete`, and every restore is a 409.
async fn restore(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
) -> Result<Response, ApiError> {
    authorize_server(
        state,
        caller,
        server,
        "os_compute_api:os-deferred-delete:restore",
        target,
    )?;
    server_state::check(server, Request::Restore, caller.is_admin())
        .map_err(|refusal| ApiError::conflict(refusal.message()))?;
    Err(ApiError::conflict(format!(
        "Instance {} is not soft-deleted.",
        server.id
    )))
}

async fn power_action(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
    request: Request,
) -> Result<Response, ApiError> {
    let (rule, action_name, action) = power_details(request);
    authorize_server(state, caller, server, rule, target)?;
    let is_admin = caller.is_admin();
    let outcome = store::modify(state.pool(), &server.id, |current| {
        server_state::check(current, request, is_admin)?;
        current.task_state = Some(request.task_state());
        if request == Request::Stop {
            current.progress = 0;
        }
        Ok::<(), server_state::Refusal>(())
    })
    .await
    .map_err(db_error)?;
    match outcome {
        Modified::Saved(_) => {}
        Modified::NotFound => {
            return Err(ApiError::not_found(format!(
                "Instance {} could not be found.",
                server.id
            )))
        }
        Modified::Refused(refusal) => return Err(ApiError::conflict(refusal.message())),
    }
    let request_id = super::servers::request_id(caller);
    actions::start(
        state.pool(),
        &server.id,
        &request_id,
        action_name,
        caller.user_id(),
        &server.project_id,
    )
    .await
    .map_err(db_error)?;
    tracing::info!(server_id = %server.id, action = action_name, "server action accepted");
    state.start_action(server.id.clone(), action, request_id);
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Records an action that completes in the API itself (lock, unlock) with
/// its one `api_<action>` event, as Nova records them.
async fn record_api_action(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
    action: &str,
) -> Result<(), ApiError> {
    let request_id = &super::servers::request_id(caller);
    let event = format!("api_{action}");
    actions::start(
        state.pool(),
        &server.id,
        request_id,
        action,
        caller.user_id(),
        &server.project_id,
    )
    .await
    .map_err(db_error)?;
    // Nova records API events under the API service's host, which is
    // this process's compute host in all-in-one.
    let host = Some(state.backends.host.as_str());
    actions::event_start(state.pool(), &server.id, request_id, &event, host)
        .await
        .map_err(db_error)?;
    actions::event_finish(state.pool(), &server.id, request_id, &event, Ok(()))
        .await
        .map_err(db_error)
}

fn locked_reason(argument: &Value, version: Microversion) -> Result<Option<String>, ApiError> {
    // Before 2.73 Nova accepts any `lock` value and ignores it.
    if !version.at_least(2, 73) {
        return Ok(None);
    }
    match argument {
        Value::Null => Ok(None),
        Value::Object(object) => {
            if let Some(key) = object.keys().find(|k| *k != "locked_reason") {
                return Err(ApiError::bad_request(format!(
                    "Invalid input for field/attribute lock. Additional properties are not allowed ('{key}' was unexpected)"
                )));
            }
            match object.get("locked_reason") {
                None => Ok(None),
                Some(Value::String(reason)) if !reason.is_empty() && reason.chars().count() <= 255 => {
                    Ok(Some(reason.clone()))
                }
                Some(other) => Err(ApiError::bad_request(format!(
                    "Invalid input for field/attribute locked_reason. Value: {other}. It must be a string of 1 to 255 characters."
                ))),
            }
        }
        other => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute lock. Value: {other}. It must be an object or null."
        ))),
    }
}

async fn lock(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
    argument: &Value,
    version: Microversion,
) -> Result<Response, ApiError> {
    authorize_server(
        state,
        caller,
        server,
        "os_compute_api:os-lock-server:lock",
        target,
    )?;
    let reason = locked_reason(argument, version)?;
    let is_owner = server.project_id == caller.project_id();
    // As in Nova, the owner locking an already locked server changes and
    // records nothing. An admin's lock replaces the owner's.
    if server.locked && is_owner {
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let locked_by = if is_owner { "owner" } else { "admin" };
    let outcome = store::modify(state.pool(), &server.id, |current| {
        current.locked = true;
        current.locked_by = Some(locked_by.to_owned());
        if reason.is_some() {
            current.locked_reason = reason.clone();
        }
        Ok::<(), ()>(())
    })
    .await
    .map_err(db_error)?;
    if !matches!(outcome, Modified::Saved(_)) {
        return Err(ApiError::not_found(format!(
            "Instance {} could not be found.",
            server.id
        )));
    }
    record_api_action(state, caller, server, "lock").await?;
    tracing::info!(server_id = %server.id, locked_by, "server locked");
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn unlock(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
) -> Result<Response, ApiError> {
    authorize_server(
        state,
        caller,
        server,
        "os_compute_api:os-lock-server:unlock",
        target,
    )?;
    // Unlocking a lock someone else's role set (an admin's lock, for the
    // owner) needs the override rule.
    let is_owner = server.project_id == caller.project_id();
    let expected = if is_owner { "owner" } else { "admin" };
    if server.locked_by.as_deref().is_some_and(|by| by != expected) {
        authorize_server(
            state,
            caller,
            server,
            "os_compute_api:os-lock-server:unlock:unlock_override",
            target,
        )?;
    }
    let outcome = store::modify(state.pool(), &server.id, |current| {
        current.locked = false;
        current.locked_by = None;
        current.locked_reason = None;
        Ok::<(), ()>(())
    })
    .await
    .map_err(db_error)?;
    if !matches!(outcome, Modified::Saved(_)) {
        return Err(ApiError::not_found(format!(
            "Instance {} could not be found.",
            server.id
        )));
    }
    record_api_action(state, caller, server, "unlock").await?;
    tracing::info!(server_id = %server.id, "server unlocked");
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Parses `length` of `os-getConsoleOutput`: an integer or numeric string of
/// at least -1, or null. Both -1 and null request the whole output.
fn console_length(argument: &Value) -> Result<Option<usize>, ApiError> {
    let invalid = |value: &Value| {
        ApiError::bad_request(format!(
            "Invalid input for field/attribute length. Value: {value}. It must be an integer of at least -1."
        ))
    };
    let object = match argument {
        Value::Object(object) => object,
        Value::Null => return Ok(None),
        other => return Err(invalid(other)),
    };
    if let Some(key) = object.keys().find(|k| *k != "length") {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute os-getConsoleOutput. Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    let length = match object.get("length") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(_) => None,
    };
    match length {
        Some(-1) => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as usize)),
        _ => Err(invalid(object.get("length").unwrap_or(&Value::Null))),
    }
}

async fn console_output(
    state: &ComputeState,
    caller: &Caller,
    server: &Server,
    argument: &Value,
) -> Result<Response, ApiError> {
    authorize_server(
        state,
        caller,
        server,
        "os_compute_api:os-console-output",
        target,
    )?;
    let length = console_length(argument)?;
    if server.host.is_none() {
        return Err(ApiError::conflict(format!(
            "Instance {} is not ready",
            server.id
        )));
    }
    // The driver returns the whole (bounded) log and the API cuts it, so
    // every driver counts lines as Nova does.
    let output = match state.backends.driver.console_output(&server.id, None).await {
        Ok(output) => output,
        Err(DriverError::NotFound(_)) => {
            return Err(ApiError::not_found(
                "Guest does not have a console available.",
            ))
        }
        Err(DriverError::Failed(message)) => {
            tracing::warn!(server_id = %server.id, error = %message, "console output failed");
            return Err(ApiError::conflict(format!(
                "Console output of instance {} is not available: {message}",
                server.id
            )));
        }
    };
    // Nova strips control characters other than tab, newline and
    // carriage return (0x09, 0x0A, 0x0D) from the output.
    let output: String = output
        .chars()
        .filter(|c| !matches!(*c as u32, 0x00..=0x08 | 0x0B | 0x0C | 0x0E..=0x1F))
        .collect();
    let output = match length {
        Some(length) => tail_log(&output, length),
        None => output,
    };
    Ok((StatusCode::OK, Json(json!({ "output": output }))).into_response())
}

/// Keeps the last `length` pieces of `log` split at `\n`, as Nova's
/// `_tail_log` does. A log ending in a newline has an empty last piece, so
/// `length` 3 of `"a\nb\nc\n"` is `"b\nc\n"`, which splits into exactly
/// 3 pieces again. `length` 0 returns "".
fn tail_log(log: &str, length: usize) -> String {
    if length == 0 {
        return String::new();
    }
    let pieces: Vec<&str> = log.split('\n').collect();
    pieces[pieces.len().saturating_sub(length)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_log_counts_pieces_like_nova() {
        let log = "a\nb\nc\n";
        assert_eq!(tail_log(log, 3), "b\nc\n");
        assert_eq!(tail_log(log, 3).split('\n').count(), 3);
        assert_eq!(tail_log(log, 1), "");
        assert_eq!(tail_log(log, 0), "");
        assert_eq!(tail_log(log, 10), log);
        assert_eq!(tail_log("x\ny", 1), "y");
    }

    #[test]
    fn console_length_accepts_nova_forms() {
        assert_eq!(console_length(&json!({})).unwrap(), None);
        assert_eq!(console_length(&Value::Null).unwrap(), None);
        assert_eq!(console_length(&json!({"length": 10})).unwrap(), Some(10));
        assert_eq!(console_length(&json!({"length": "5"})).unwrap(), Some(5));
        assert_eq!(console_length(&json!({"length": -1})).unwrap(), None);
        assert!(console_length(&json!({"length": -2})).is_err());
        assert!(console_length(&json!({"length": "x"})).is_err());
    }

    #[test]
    fn reboot_type_is_required() {
        assert!(reboot_request(&json!({})).is_err());
        assert_eq!(
            reboot_request(&json!({"type": "hard"})).unwrap(),
            Request::HardReboot
        );
        assert!(reboot_request(&json!({"type": "gentle"})).is_err());
    }

    #[test]
    fn lock_reason_needs_2_73() {
        let body = json!({"locked_reason": "maintenance"});
        assert_eq!(
            locked_reason(&body, Microversion::new(2, 72)).unwrap(),
            None
        );
        assert_eq!(
            locked_reason(&body, Microversion::new(2, 73))
                .unwrap()
                .as_deref(),
            Some("maintenance")
        );
        assert!(locked_reason(&json!({"locked_reason": ""}), Microversion::new(2, 73)).is_err());
    }
}
