//! The compute service's view of the other services in this process: the
//! `NetworkApi` and `ImageApi` traits of `oxstack_compute::external`,
//! implemented over the in-process network and image services.

pub mod image;
pub mod network;

use oxstack_compute::external::{ExternalError, ExternalErrorKind};
use oxstack_core::ApiError;

/// Converts an error of another service's API into compute's form, keeping
/// its message, which states what the user must change.
fn external(error: ApiError) -> ExternalError {
    let kind = match error.kind.status().as_u16() {
        404 => ExternalErrorKind::NotFound,
        409 => ExternalErrorKind::Conflict,
        400 | 403 | 413 => ExternalErrorKind::BadRequest,
        _ => ExternalErrorKind::Unavailable,
    };
    ExternalError::new(kind, error.message)
}
