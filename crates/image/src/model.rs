//! The image service's resources: images, their status machine, and image
//! memberships, with the value sets Glance accepts.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// An image identifier. Glance generates UUIDs, but clients may name any id
/// (`GET /v2/images/cirros` must be a 404, not a 400), so the type holds text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(String);

impl ImageId {
    /// Returns a new random id in Glance's form (a hyphenated UUID).
    pub fn generate() -> Self {
        ImageId(uuid::Uuid::new_v4().to_string())
    }

    pub fn new(id: impl Into<String>) -> Self {
        ImageId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `disk_format` values Glance accepts by default.
pub const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];

/// `container_format` values Glance accepts by default.
pub const CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];

/// The status of an image, with Glance's allowed transitions.
///
/// ```text
/// queued ──upload──▶ saving ──verified──▶ active ◀──reactivate── deactivated
///   │  ▲               │ failure ▲        │ └──────deactivate──────▶ ▲
///   │  └───────────────┘         │        └──────────delete──────────┘
///   └──stage──▶ uploading ──import──▶ importing ──verified──▶ active
///                  │ failure           │ failure
///                  └─────▶ queued ◀────┘
/// ```
///
/// `killed`, `deleted` and `pending_delete` exist in Glance's enum and are
/// accepted as filter values, but this service never stores them: a failed
/// upload returns to `queued`, and delete removes the row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Queued,
    Saving,
    Uploading,
    Importing,
    Active,
    Killed,
    Deleted,
    PendingDelete,
    Deactivated,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Queued,
        Status::Saving,
        Status::Uploading,
        Status::Importing,
        Status::Active,
        Status::Killed,
        Status::Deleted,
        Status::PendingDelete,
        Status::Deactivated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Saving => "saving",
            Status::Uploading => "uploading",
            Status::Importing => "importing",
            Status::Active => "active",
            Status::Killed => "killed",
            Status::Deleted => "deleted",
            Status::PendingDelete => "pending_delete",
            Status::Deactivated => "deactivated",
        }
    }

    /// Returns whether the image's data is in the image store.
    pub fn has_data(self) -> bool {
        matches!(self, Status::Active | Status::Deactivated)
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| format!("unknown image status '{text}'"))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may see an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Every project; only admins may publish.
    Public,
    /// The owner only.
    Private,
    /// The owner and the projects it adds as members (Glance's default).
    Shared,
    /// Every project, but listed only when asked for by `visibility=community`.
    Community,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Shared => "shared",
            Visibility::Community => "community",
        }
    }
}

impl FromStr for Visibility {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "public" => Ok(Visibility::Public),
            "private" => Ok(Visibility::Private),
            "shared" => Ok(Visibility::Shared),
            "community" => Ok(Visibility::Community),
            _ => Err(format!(
                "Invalid visibility value: {text}; use public, private, shared or community."
            )),
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the image service knows about an image's data once it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataInfo {
    pub size: u64,
    pub virtual_size: Option<u64>,
    /// MD5 of the data, in lower-case hex (Glance's `checksum`).
    pub checksum: String,
    /// SHA-512 of the data, in lower-case hex (`os_hash_value`).
    pub os_hash_value: String,
}

/// The hash algorithm behind `os_hash_value` (Glance's default
/// `hashing_algorithm`).
pub const OS_HASH_ALGO: &str = "sha512";

/// One image: its core attributes, extra properties and tags.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub id: ImageId,
    pub name: Option<String>,
    pub status: Status,
    pub visibility: Visibility,
    pub protected: bool,
    pub os_hidden: bool,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub size: Option<u64>,
    pub virtual_size: Option<u64>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    /// Minimum disk to boot the image, in GiB.
    pub min_disk: i64,
    /// Minimum RAM to boot the image, in MiB.
    pub min_ram: i64,
    /// The owning project's id.
    pub owner: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Extra properties, shown at the top level of the image.
    pub properties: BTreeMap<String, String>,
    /// Tags in the order they were added, without duplicates.
    pub tags: Vec<String>,
    /// Incremented on every write; updates are conditional on it so that
    /// concurrent writers cannot lose each other's changes.
    pub generation: i64,
}

impl Image {
    /// Returns a new `queued` image with Glance's defaults.
    pub fn new(id: ImageId, owner: Option<String>, now: i64) -> Self {
        Image {
            id,
            name: None,
            status: Status::Queued,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            disk_format: None,
            container_format: None,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            min_disk: 0,
            min_ram: 0,
            owner,
            created_at: now,
            updated_at: now,
            properties: BTreeMap::new(),
            tags: Vec::new(),
            generation: 0,
        }
    }

    /// Adds `tag` unless present.
    pub fn add_tag(&mut self, tag: &str) {
        if !self.tags.iter().any(|t| t == tag) {
            self.tags.push(tag.to_owned());
        }
    }
}

/// The status of an image membership, set by the member project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    Pending,
    Accepted,
    Rejected,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Pending => "pending",
            MemberStatus::Accepted => "accepted",
            MemberStatus::Rejected => "rejected",
        }
    }
}

impl FromStr for MemberStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "pending" => Ok(MemberStatus::Pending),
            "accepted" => Ok(MemberStatus::Accepted),
            "rejected" => Ok(MemberStatus::Rejected),
            _ => Err(format!(
                "Invalid status: {text}; use pending, accepted or rejected."
            )),
        }
    }
}

/// A project an image is shared with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub image_id: ImageId,
    /// The member project's id.
    pub member_id: String,
    pub status: MemberStatus,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
        assert!("gone".parse::<Status>().is_err());
    }

    #[test]
    fn new_image_has_glance_defaults() {
        let image = Image::new(ImageId::generate(), Some("p1".into()), 10);
        assert_eq!(image.status, Status::Queued);
        assert_eq!(image.visibility, Visibility::Shared);
        assert!(!image.protected);
        assert_eq!(image.id.as_str().len(), 36);
    }

    #[test]
    fn add_tag_ignores_duplicates() {
        let mut image = Image::new(ImageId::generate(), None, 0);
        image.add_tag("a");
        image.add_tag("b");
        image.add_tag("a");
        assert_eq!(image.tags, vec!["a", "b"]);
    }
}
