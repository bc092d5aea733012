//! The compute API's microversion range.
//!
//! The maximum is the highest version whose changes to the resources this
//! crate serves (flavors, keypairs, limits, quota sets and classes,
//! availability zones) are rendered. These changes are:
//! - 2.2 keypair `type` (`ssh` and `x509`) and the 201/204 codes;
//! - 2.7 flavor access on a public flavor is 409;
//! - 2.10 keypair `user_id`, and 2.35 keypair paging;
//! - 2.36 and 2.57 keys removed from quota sets and limits, 2.39
//!   `maxImageMeta` removed, and 2.50 quota class keys changed;
//! - 2.55 flavor `description`, 2.61 flavor `extra_specs`, 2.75 flavor
//!   `swap` as 0;
//! - 2.92 keypair generation removed and wider keypair names (written, but
//!   unreachable until the maximum passes 2.86).
//!
//! 2.86 makes Nova validate extra-spec values in its known namespaces, which
//! is not built (see `api::extra_specs`), so the maximum stops at 2.85.
//! Servers, once served, must render every server change up to this maximum.

use oxstack_core::microversion::{Microversion, VersionRange};

pub const MIN: Microversion = Microversion::new(2, 1);
pub const MAX: Microversion = Microversion::new(2, 85);

pub const RANGE: VersionRange = VersionRange {
    service: "compute",
    legacy_header: Some("x-openstack-nova-api-version"),
    min: MIN,
    max: MAX,
};
