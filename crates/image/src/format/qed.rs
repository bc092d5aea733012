//! QED (QEMU Enhanced Disk) header inspection.
//!
//! Glance has no `disk_format` for QED, so [`super::check_declared`] rejects
//! every QED image. This module keeps a QED file from passing as raw content
//! and names its backing file. Fields are little-endian:
//! magic `QED\0`, features at byte 16, image size at 48, backing file name
//! offset and length at 56 and 60 (qemu `block/qed.h`).

use super::source::{field, printable_name, ParseResult, Reader};
use super::{DiskFormat, Inspection, UnsafeReason};

const MAGIC: &[u8; 4] = b"QED\0";
const HEADER_LEN: usize = 64;
const FEATURE_BACKING_FILE: u64 = 1;
const MAX_BACKING_NAME_LEN: u32 = 1023;

pub(super) fn probe(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

pub(super) fn inspect(reader: &Reader<'_>) -> ParseResult<Inspection> {
    let header = reader.read_exact(0, HEADER_LEN, "qed header")?;
    let features = field::le_u64(&header, 16);
    let virtual_size = field::le_u64(&header, 48);
    let backing_offset = field::le_u32(&header, 56);
    let backing_len = field::le_u32(&header, 60);

    // qemu only follows the name when the feature bit is set. A name without
    // the bit counts as a backing file too, because no valid image has one.
    let safety = if features & FEATURE_BACKING_FILE != 0 || backing_offset != 0 {
        let name = if backing_len <= MAX_BACKING_NAME_LEN {
            reader
                .read_exact(
                    u64::from(backing_offset),
                    backing_len as usize,
                    "qed backing file name",
                )
                .map(|name| printable_name(&name))
                .unwrap_or_else(|_| "name not readable".to_owned())
        } else {
            format!("name of {backing_len} bytes, not readable")
        };
        Err(UnsafeReason::QedBackingFile { name })
    } else {
        Ok(())
    };

    Ok(Inspection::safe(DiskFormat::Qed, virtual_size).with_safety(safety))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::inspect_bytes;
    use crate::format::test_images;

    #[test]
    fn plain_image_reports_size() {
        let bytes = test_images::qed(1 << 20, None);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.format, DiskFormat::Qed);
        assert_eq!(inspection.virtual_size, 1 << 20);
        assert_eq!(inspection.safety, Ok(()));
    }

    #[test]
    fn backing_file_is_unsafe_and_named() {
        let bytes = test_images::qed(1 << 20, Some(b"/etc/hostname"));
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(
            inspection.safety,
            Err(UnsafeReason::QedBackingFile {
                name: "/etc/hostname".to_owned()
            })
        );
    }

    #[test]
    fn truncated_header_is_malformed() {
        let bytes = test_images::qed(1 << 20, None);
        assert!(inspect_bytes(&bytes[..20]).is_err());
    }
}
