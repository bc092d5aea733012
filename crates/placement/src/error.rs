//! The errors of placement operations, and their mapping to API errors with
//! placement's error codes (`placement.concurrent_update`, …).

use oxstack_core::{ApiError, ErrorKind};

use crate::model::ProviderId;

/// Placement's error code for failures without a specific one.
pub const CODE_DEFAULT: &str = "placement.undefined_code";
/// A provider or consumer generation did not match the stored one.
pub const CODE_CONCURRENT_UPDATE: &str = "placement.concurrent_update";
pub const CODE_DUPLICATE_NAME: &str = "placement.duplicate_name";
pub const CODE_INVENTORY_IN_USE: &str = "placement.inventory.inuse";
pub const CODE_PROVIDER_IN_USE: &str = "placement.resource_provider.inuse";
pub const CODE_CANNOT_DELETE_PARENT: &str = "placement.resource_provider.cannot_delete_parent";
pub const CODE_PROVIDER_NOT_FOUND: &str = "placement.resource_provider.not_found";
pub const CODE_QUERY_BAD_VALUE: &str = "placement.query.bad_value";

/// A failed placement operation, from the HTTP API or the Rust API.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("{message}")]
    NotFound { message: String, code: &'static str },
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Conflict { message: String, code: &'static str },
    /// A claim would allocate more of a class than the provider has left.
    #[error(
        "Unable to allocate inventory: the request for {requested} {class} on resource \
         provider {provider} exceeds its capacity of {capacity}, of which {used} is used."
    )]
    CapacityExceeded {
        provider: ProviderId,
        class: String,
        requested: i64,
        capacity: i64,
        used: i64,
    },
    #[error("database operation failed")]
    Database(#[from] sqlx::Error),
}

/// The error of [`crate::PlacementService::claim`].
pub type ClaimError = PlacementError;

impl PlacementError {
    pub fn not_found(message: impl Into<String>) -> Self {
        PlacementError::NotFound {
            message: message.into(),
            code: CODE_DEFAULT,
        }
    }

    pub fn provider_not_found(uuid: &ProviderId) -> Self {
        PlacementError::NotFound {
            message: format!("No resource provider with uuid {uuid} found."),
            code: CODE_PROVIDER_NOT_FOUND,
        }
    }

    pub fn conflict(message: impl Into<String>, code: &'static str) -> Self {
        PlacementError::Conflict {
            message: message.into(),
            code,
        }
    }

    /// Returns the 409 for a stale provider generation.
    pub fn provider_generation(uuid: &ProviderId) -> Self {
        Self::conflict(
            format!(
                "resource provider generation conflict on {uuid}: another request changed \
                 the provider; read it again and retry with its current generation."
            ),
            CODE_CONCURRENT_UPDATE,
        )
    }

    /// True for a 409 a caller may retry after reading the state again.
    pub fn is_concurrent_update(&self) -> bool {
        matches!(self, PlacementError::Conflict { code, .. } if *code == CODE_CONCURRENT_UPDATE)
    }
}

impl From<PlacementError> for ApiError {
    fn from(error: PlacementError) -> Self {
        let message = error.to_string();
        match error {
            PlacementError::NotFound { code, .. } => {
                ApiError::new(ErrorKind::NotFound, message).with_type(code)
            }
            PlacementError::BadRequest(_) => ApiError::bad_request(message),
            PlacementError::Conflict { code, .. } => {
                ApiError::new(ErrorKind::Conflict, message).with_type(code)
            }
            PlacementError::CapacityExceeded { .. } => ApiError::conflict(message),
            PlacementError::Database(source) => oxstack_store::api_error(source),
        }
    }
}
