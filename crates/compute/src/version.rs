//! The compute API's microversion range.
//!
//! The maximum is the highest version whose changes to the resources this
//! crate serves (flavors, keypairs, limits, quota sets and classes,
//! availability zones, servers and their actions, metadata, tags and
//! instance actions) are rendered. These changes are:
//! - 2.2 keypair `type` (`ssh` and `x509`) and the 201/204 codes;
//! - 2.7 flavor access on a public flavor is 409;
//! - 2.10 keypair `user_id`, and 2.35 keypair paging;
//! - 2.36 and 2.57 keys removed from quota sets and limits, 2.39
//!   `maxImageMeta` removed, and 2.50 quota class keys changed;
//! - 2.55 flavor `description`, 2.61 flavor `extra_specs`, 2.75 flavor
//!   `swap` as 0;
//! - servers: 2.3 extended attributes, 2.9 `locked`, 2.16 `host_status`,
//!   2.19 `description`, 2.21 actions of deleted servers, 2.26 tags, 2.37
//!   `networks` required (`auto`/`none`), 2.38 invalid status 400, 2.47
//!   embedded flavor, 2.51 events for members, 2.52 tags at create, 2.57
//!   `personality` removed, 2.58 action paging, 2.62 event `hostId`, 2.63
//!   `trusted_image_certificates` (shown as null, rejected at create because
//!   image signatures are not verified), 2.66 `changes-before`, 2.71
//!   `server_groups` (always empty: no server groups exist), 2.73 lock
//!   reasons, 2.74 `host` at create (this host only), 2.75 strict list
//!   queries and full update responses, 2.83 member filters, 2.84 event
//!   `details`. Actions that are not built (resize, rebuild, createImage,
//!   shelve, rescue, migrations …) return 501 at every version;
//! - 2.92 keypair generation removed and wider keypair names (written, but
//!   unreachable until the maximum passes 2.86).
//!
//! 2.86 makes Nova validate extra-spec values in its known namespaces, which
//! is not built (see `api::extra_specs`), so the maximum stops at 2.85.

use oxstack_core::microversion::{Microversion, VersionRange};

pub const MIN: Microversion = Microversion::new(2, 1);
pub const MAX: Microversion = Microversion::new(2, 85);

pub const RANGE: VersionRange = VersionRange {
    service: "compute",
    legacy_header: Some("x-openstack-nova-api-version"),
    min: MIN,
    max: MAX,
};
