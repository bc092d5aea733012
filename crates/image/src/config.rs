//! Settings of the image service (`[image]` in the config file), with
//! Glance's defaults.

use std::path::PathBuf;

use serde::Deserialize;

/// One tebibyte, Glance's default `image_size_cap`.
const TIB: u64 = 1 << 40;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageConfig {
    /// Largest image data accepted by upload or stage, in bytes; larger
    /// uploads get 413 (Glance's `image_size_cap`, default 1 TiB).
    pub image_size_cap: u64,
    /// Page size of `GET /v2/images` when the request has no `limit`
    /// (Glance's `limit_param_default`).
    pub limit_param_default: usize,
    /// Largest `limit` honoured; larger values are capped (Glance's
    /// `api_limit_max`).
    pub api_limit_max: usize,
    /// Most members one image may have (Glance's `image_member_quota`).
    pub image_member_quota: usize,
    /// Most extra properties one image may have (`image_property_quota`).
    pub image_property_quota: usize,
    /// Most tags one image may have (`image_tag_quota`).
    pub image_tag_quota: usize,
    /// Path of an oslo.policy file (YAML or JSON) overriding default rules.
    pub policy_file: Option<PathBuf>,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            image_size_cap: TIB,
            limit_param_default: 25,
            api_limit_max: 1000,
            image_member_quota: 128,
            image_property_quota: 128,
            image_tag_quota: 128,
            policy_file: None,
        }
    }
}
