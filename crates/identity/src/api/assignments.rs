//! Role assignments: the grant APIs that give a user or group a role on a
//! project, a domain or the system (`grants`), and `GET /v3/role_assignments`
//! (`listing`), whose effective mode expands group membership, inheritance
//! and implied roles (`effective`).

mod effective;
mod grants;
mod listing;

use axum::Router;

use crate::IdentityState;

pub fn routes() -> Router<IdentityState> {
    grants::routes().merge(listing::routes())
}
