//! Disk image format inspection: what format an uploaded image really is, its
//! virtual size, and whether QEMU could be made to read other host files
//! through it.
//!
//! An image service must run this before an image becomes active. A qcow2
//! file with a backing file named `/etc/shadow`, a qcow2 with an external
//! data file, or a VMDK descriptor whose extents name other files would let
//! a tenant read host files once a hypervisor or `qemu-img` opens the image.
//! Callers run [`inspect`], then [`check_declared`] against the user's
//! `disk_format`, then check [`Inspection::safety`]; [`verify`] does all
//! three.
//!
//! Detection runs every format's probe. A file that matches two formats (for
//! example a qcow2 header plus an ISO 9660 volume descriptor) is rejected as
//! ambiguous, because each reader would see a different disk. Content that
//! matches no probe is raw.
//!
//! The inspector reads only headers, footers and the tables they point to,
//! each bounded in length, never the whole image.

mod declared;
mod error;
mod iso;
mod partition;
mod ploop;
mod qcow2;
mod qed;
mod source;
mod vdi;
mod vhd;
mod vhdx;
mod vmdk;
mod vmdk_descriptor;

#[cfg(test)]
mod robustness_tests;
#[cfg(test)]
mod test_images;

use std::fmt;
use std::fs::File;
use std::path::Path;

pub use declared::{check_declared, FormatMismatch};
pub use error::{InspectError, UnsafeReason};
pub use partition::PartitionTable;
pub use source::ImageSource;

use source::{FileSource, ParseError, ParseResult, Reader, SliceSource};

/// Bytes read from the start of every image for the probes that look there.
const HEAD_LEN: usize = 4096;

/// A disk image format, named as Glance's `disk_format` and `qemu-img` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskFormat {
    Raw,
    Qcow2,
    /// QEMU Enhanced Disk. Recognised only so that it can be rejected, because
    /// Glance has no `disk_format` for it.
    Qed,
    Vmdk,
    /// Microsoft Virtual Hard Disk, which QEMU calls `vpc`.
    Vhd,
    Vhdx,
    Vdi,
    Iso,
    /// Parallels disk image (`root.hds` of a ploop bundle).
    Ploop,
}

impl DiskFormat {
    /// Returns the Glance `disk_format` name (`qed` has none in Glance).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Qcow2 => "qcow2",
            Self::Qed => "qed",
            Self::Vmdk => "vmdk",
            Self::Vhd => "vhd",
            Self::Vhdx => "vhdx",
            Self::Vdi => "vdi",
            Self::Iso => "iso",
            Self::Ploop => "ploop",
        }
    }
}

impl fmt::Display for DiskFormat {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Result of inspecting one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub format: DiskFormat,
    /// Size of the guest-visible disk, in bytes. For raw images this is the
    /// file size.
    pub virtual_size: u64,
    /// Partition table found in the first sectors of a raw or ISO image.
    pub partition_table: Option<PartitionTable>,
    /// `Ok` when QEMU would read nothing but this file; otherwise the first
    /// reason found why it would not.
    pub safety: Result<(), UnsafeReason>,
}

impl Inspection {
    fn safe(format: DiskFormat, virtual_size: u64) -> Self {
        Self {
            format,
            virtual_size,
            partition_table: None,
            safety: Ok(()),
        }
    }

    fn with_safety(mut self, safety: Result<(), UnsafeReason>) -> Self {
        self.safety = safety;
        self
    }
}

/// Reason [`verify`] rejected an upload.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error(transparent)]
    Mismatch(#[from] FormatMismatch),
    #[error(transparent)]
    Unsafe(#[from] UnsafeReason),
}

/// Inspects the image at `path`, checks it against the declared `disk_format`
/// and checks that it is safe, returning the inspection when all pass.
pub fn verify(path: &Path, declared: &str) -> Result<Inspection, Rejection> {
    let inspection = inspect(path)?;
    check_declared(declared, &inspection)?;
    inspection.safety.clone()?;
    Ok(inspection)
}

/// Inspects the regular file at `path`.
pub fn inspect(path: &Path) -> Result<Inspection, InspectError> {
    let open_error = |source| InspectError::Open {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(open_error)?;
    let metadata = file.metadata().map_err(open_error)?;
    if !metadata.is_file() {
        return Err(InspectError::NotRegularFile {
            path: path.to_owned(),
        });
    }
    let source = FileSource {
        file,
        size: metadata.len(),
    };
    inspect_source(&source)
}

/// Inspects an image held in memory.
pub fn inspect_bytes(bytes: &[u8]) -> Result<Inspection, InspectError> {
    inspect_source(&SliceSource(bytes))
}

/// Inspects an image from any [`ImageSource`], such as an object store.
pub fn inspect_source(source: &dyn ImageSource) -> Result<Inspection, InspectError> {
    let reader = Reader::new(source);
    let head = reader
        .read_up_to(0, HEAD_LEN)
        .map_err(|error| to_inspect_error(DiskFormat::Raw, error))?;

    let candidates =
        detect(&reader, &head).map_err(|error| to_inspect_error(DiskFormat::Raw, error))?;
    if candidates.len() > 1 {
        let formats = candidates
            .iter()
            .map(|candidate| candidate.format())
            .collect();
        return Err(InspectError::Ambiguous { formats });
    }

    let partition_table = partition::detect(&head);
    let Some(candidate) = candidates.first() else {
        let mut inspection = Inspection::safe(DiskFormat::Raw, reader.size());
        inspection.partition_table = partition_table;
        return Ok(inspection);
    };

    let format = candidate.format();
    let mut inspection = candidate
        .inspect(&reader, &head)
        .map_err(|error| to_inspect_error(format, error))?;
    if format == DiskFormat::Iso {
        // Hybrid ISOs carry an MBR or GPT in the system area so that they
        // also boot from USB sticks.
        inspection.partition_table = partition_table;
    }
    Ok(inspection)
}

fn to_inspect_error(format: DiskFormat, error: ParseError) -> InspectError {
    match error {
        ParseError::Io { offset, source } => InspectError::Read { offset, source },
        ParseError::Invalid(reason) => InspectError::Malformed { format, reason },
    }
}

/// A format signature found in the image, naming the parser to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Candidate {
    Qcow2,
    Qed,
    Vmdk,
    Vhd,
    Vhdx,
    Vdi,
    Iso,
    Ploop,
}

impl Candidate {
    fn format(self) -> DiskFormat {
        match self {
            Self::Qcow2 => DiskFormat::Qcow2,
            Self::Qed => DiskFormat::Qed,
            Self::Vmdk => DiskFormat::Vmdk,
            Self::Vhd => DiskFormat::Vhd,
            Self::Vhdx => DiskFormat::Vhdx,
            Self::Vdi => DiskFormat::Vdi,
            Self::Iso => DiskFormat::Iso,
            Self::Ploop => DiskFormat::Ploop,
        }
    }

    fn inspect(self, reader: &Reader<'_>, head: &[u8]) -> ParseResult<Inspection> {
        match self {
            Self::Qcow2 => qcow2::inspect(reader),
            Self::Qed => qed::inspect(reader),
            Self::Vmdk => vmdk::inspect(reader, head),
            Self::Vhd => vhd::inspect(reader, head),
            Self::Vhdx => vhdx::inspect(reader),
            Self::Vdi => vdi::inspect(reader),
            Self::Iso => iso::inspect(reader),
            Self::Ploop => ploop::inspect(reader),
        }
    }
}

/// Runs every probe and returns the candidates whose signature matched.
fn detect(reader: &Reader<'_>, head: &[u8]) -> ParseResult<Vec<Candidate>> {
    let mut candidates = Vec::new();
    let probes: [(bool, Candidate); 8] = [
        (qcow2::probe(head), Candidate::Qcow2),
        (qed::probe(head), Candidate::Qed),
        (vmdk::probe(head), Candidate::Vmdk),
        (vhd::probe(reader, head)?, Candidate::Vhd),
        (vhdx::probe(head), Candidate::Vhdx),
        (vdi::probe(head), Candidate::Vdi),
        (iso::probe(reader)?, Candidate::Iso),
        (ploop::probe(head), Candidate::Ploop),
    ];
    for (matched, candidate) in probes {
        if matched {
            candidates.push(candidate);
        }
    }
    Ok(candidates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::test_images;

    #[test]
    fn empty_image_is_raw_of_size_zero() {
        let inspection = inspect_bytes(&[][..]).unwrap();
        assert_eq!(inspection.format, DiskFormat::Raw);
        assert_eq!(inspection.virtual_size, 0);
        assert_eq!(inspection.safety, Ok(()));
    }

    #[test]
    fn unrecognised_bytes_are_raw_with_file_size() {
        let bytes = vec![0xA5u8; 10_000];
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.format, DiskFormat::Raw);
        assert_eq!(inspection.virtual_size, 10_000);
        assert_eq!(inspection.partition_table, None);
    }

    #[test]
    fn qcow2_header_with_iso_descriptor_is_ambiguous() {
        let mut bytes = test_images::iso(2048 * 20);
        let qcow2 = test_images::qcow2_v3(1 << 20);
        bytes[..qcow2.len().min(0x8000)].copy_from_slice(&qcow2[..qcow2.len().min(0x8000)]);
        let error = inspect_bytes(&bytes[..]).unwrap_err();
        let InspectError::Ambiguous { formats } = error else {
            panic!("expected Ambiguous, got {error:?}");
        };
        assert_eq!(formats, vec![DiskFormat::Qcow2, DiskFormat::Iso]);
    }

    #[test]
    fn raw_disk_with_mbr_reports_partition_table() {
        let mut bytes = vec![0u8; 4096];
        bytes[510] = 0x55;
        bytes[511] = 0xAA;
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.format, DiskFormat::Raw);
        assert_eq!(inspection.partition_table, Some(PartitionTable::Mbr));
    }

    #[test]
    fn inspect_missing_file_is_open_error() {
        let error = inspect(Path::new("/nonexistent/oxstack-image")).unwrap_err();
        assert!(matches!(error, InspectError::Open { .. }), "{error:?}");
        assert!(!error.is_invalid_image());
    }

    #[test]
    fn inspect_directory_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let error = inspect(dir.path()).unwrap_err();
        assert!(
            matches!(error, InspectError::NotRegularFile { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn verify_rejects_spoofed_raw() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, test_images::qcow2_v3(1 << 20)).unwrap();
        let error = verify(&path, "raw").unwrap_err();
        assert!(matches!(error, Rejection::Mismatch(_)), "{error:?}");
        let inspection = verify(&path, "qcow2").unwrap();
        assert_eq!(inspection.virtual_size, 1 << 20);
    }

    #[test]
    fn verify_rejects_unsafe_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, test_images::qcow2_with_backing(b"/etc/shadow")).unwrap();
        let error = verify(&path, "qcow2").unwrap_err();
        assert!(matches!(
            error,
            Rejection::Unsafe(UnsafeReason::Qcow2BackingFile { .. })
        ));
    }
}
