//! Persistence of the placement service.

pub mod schema;
