//! Keystone-compatible Fernet tokens and the key repository they are
//! encrypted with.
//!
//! Tokens are structurally what Keystone issues: a Fernet token (`cipher`)
//! around a msgpack payload in Keystone's layouts (`payload`), without `=`
//! padding. Keys live in a directory managed as `keystone-manage
//! fernet_setup` and `fernet_rotate` manage theirs (`repository`).
//!
//! Typical use: `KeyRepository::open(dir)`, then `create_if_missing()` once
//! at start-up and `rotate(DEFAULT_MAX_ACTIVE_KEYS)` on a schedule; build a
//! `TokenCodec::from_repository` after each of them, and call
//! `encode`/`decode` on it.

mod cipher;
mod codec;
mod errors;
mod ids;
mod key;
mod methods;
mod msgpack;
mod payload;
mod repository;

pub use codec::{NoKeys, TokenCodec};
pub use errors::{EncodeError, InvalidToken, PayloadError, TokenError};
pub use ids::new_audit_id;
pub use key::{FernetKey, KeyError, KEY_LEN};
pub use methods::KEYSTONE_AUTH_METHODS;
pub use payload::{TokenPayload, TokenScope};
pub use repository::{
    KeyRepository, KeyRepositoryError, NumberedKey, RotateReport, DEFAULT_MAX_ACTIVE_KEYS,
};
