//! Bulk create: `POST /v2.0/networks`, `/subnets` or `/ports` with a list
//! under the plural key (`{"networks": [{…}, {…}]}`), as Neutron accepts.
//! Each item goes through the single-resource create with the same checks;
//! the reply lists the created resources under the plural key.

use std::future::Future;

use axum::http::StatusCode;
use axum::Json;
use oxstack_core::ApiError;
use serde_json::{json, Value};

use super::body::bad_request;

/// Creates one resource from `request`, or each one of a list under
/// `plural`. When an item fails, the resources already created are
/// deleted again and the item's error is returned, so a failed bulk
/// request leaves nothing behind, as in Neutron.
///
/// NOTE: the items are created one by one, not in one transaction, so
/// another request can see the first items before a later one fails.
pub async fn create<C, CreateFuture, D, DeleteFuture>(
    request: Value,
    singular: &str,
    plural: &str,
    create_one: C,
    delete_one: D,
) -> Result<(StatusCode, Json<Value>), ApiError>
where
    C: Fn(Value) -> CreateFuture,
    CreateFuture: Future<Output = Result<(StatusCode, Json<Value>), ApiError>>,
    D: Fn(String) -> DeleteFuture,
    DeleteFuture: Future<Output = Result<StatusCode, ApiError>>,
{
    let items = match request {
        Value::Object(mut outer) if outer.contains_key(plural) && !outer.contains_key(singular) => {
            match outer.remove(plural) {
                Some(Value::Array(items)) => items,
                _ => {
                    return Err(bad_request(format!(
                        "Invalid input: '{plural}' must be a list of {singular} objects"
                    )))
                }
            }
        }
        single => return create_one(single).await,
    };
    if items.is_empty() {
        return Err(bad_request(format!(
            "Resources required: '{plural}' must contain at least one {singular}"
        )));
    }

    let mut created: Vec<Value> = Vec::with_capacity(items.len());
    for item in items {
        match create_one(json!({ singular: item })).await {
            Ok((_, Json(mut body))) => created.push(body[singular].take()),
            Err(error) => {
                for resource in created.iter().rev() {
                    let Some(id) = resource["id"].as_str() else {
                        continue;
                    };
                    if let Err(cleanup) = delete_one(id.to_owned()).await {
                        tracing::warn!(resource = singular, id, error = %cleanup.message,
                                       "cannot delete a resource of a failed bulk create");
                    }
                }
                return Err(error);
            }
        }
    }
    tracing::info!(resource = plural, count = created.len(), "bulk created");
    Ok((StatusCode::CREATED, Json(json!({ plural: created }))))
}
