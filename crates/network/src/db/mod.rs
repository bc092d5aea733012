//! Persistence of networks, subnets, ports, security groups, routers,
//! floating IPs and network agents in portable SQL (see `oxstack_store`).

pub mod agents;
pub mod floatingips;
pub mod networks;
pub mod ports;
pub mod routers;
pub mod schema;
pub mod security_groups;
pub mod subnets;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) fn flag(value: bool) -> i64 {
    i64::from(value)
}

/// Encodes a list column as JSON text.
pub(crate) fn to_json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}

/// Decodes a JSON text column written by `to_json_text`.
pub(crate) fn from_json_text<T: DeserializeOwned>(
    column: &str,
    text: &str,
) -> Result<T, sqlx::Error> {
    serde_json::from_str(text).map_err(|source| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(source),
    })
}
