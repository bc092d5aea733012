//! No routes: quotas are served by the compute and network quota APIs, which read `crate::db::quotas`.

use axum::Router;

use crate::IdentityState;

pub fn routes() -> Router<IdentityState> {
    Router::new()
}
