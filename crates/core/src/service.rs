//! The OpenStack services OxStack serves, as far as shared machinery (error
//! bodies, metrics labels, logs) needs to tell them apart.

use std::fmt;

/// One OpenStack API service behind the shared listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    Identity,
    Compute,
    Network,
    Image,
    Placement,
    Volume,
    Object,
    /// Requests outside every service prefix (the root, `/metrics`).
    Root,
}

impl ServiceKind {
    /// Returns the label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Identity => "identity",
            ServiceKind::Compute => "compute",
            ServiceKind::Network => "network",
            ServiceKind::Image => "image",
            ServiceKind::Placement => "placement",
            ServiceKind::Volume => "volume",
            ServiceKind::Object => "object",
            ServiceKind::Root => "root",
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
