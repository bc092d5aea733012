//! Shared API machinery for every OxStack service: the public error type and its
//! OpenStack renderings, request ids, request context, body validation,
//! pagination, microversions, metrics and the policy engine.

pub mod context;
pub mod error;
pub mod metrics;
pub mod microversion;
pub mod pagination;
pub mod policy;
pub mod request_id;
pub mod service;
pub mod time;
pub mod validate;

pub use context::{AuthContext, RequestContext, TokenValidator};
pub use error::{ApiError, ErrorKind};
pub use service::ServiceKind;
