//! Instance metadata: what a guest learns about itself at boot (its name,
//! keys, user data and network configuration), in OpenStack's layout.
//!
//! [`content`] builds it from the server record and its ports. A config
//! drive gets it as files ([`config_drive_files`]). The metadata API
//! ([`api`]) serves the same tree over HTTP to the proxy at
//! `169.254.169.254`.

pub mod api;
pub mod content;
pub mod network_data;

pub use api::{metadata_router, metadata_router_with_secret, proxy_signature, serve_metadata};
pub use content::{
    config_drive_files, InstanceMetadata, MetadataItem, EC2_VERSIONS, OPENSTACK_VERSIONS,
};
pub use network_data::network_data;
