//! Settings of the compute service.

use std::path::PathBuf;

use serde::Deserialize;

/// The `[compute]` settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeConfig {
    /// An oslo.policy file whose rules override the defaults.
    pub policy_file: Option<PathBuf>,
}
