//! Routes of this resource (being written).

use axum::Router;

use crate::IdentityState;

pub fn routes() -> Router<IdentityState> {
    Router::new()
}
