//! qcow2 header inspection: version, cluster size, virtual size, backing
//! file, external data file and unknown incompatible features.
//!
//! Layout from qemu's `docs/interop/qcow2.txt`. All fields are big-endian.
//! Header extensions follow the header and end at the end of the first
//! cluster (or at the backing file name, if that comes first).

use super::source::{field, invalid, printable_name, ParseResult, Reader};
use super::{DiskFormat, Inspection, UnsafeReason};

const MAGIC: &[u8; 4] = b"QFI\xfb";
const V2_HEADER_LEN: usize = 72;
const V3_MIN_HEADER_LEN: usize = 104;

/// qemu accepts cluster_bits 9 (512 B) to 21 (2 MiB).
const MIN_CLUSTER_BITS: u32 = 9;
const MAX_CLUSTER_BITS: u32 = 21;

/// The spec limits a backing file name to 1023 bytes.
const MAX_BACKING_NAME_LEN: u32 = 1023;

const INCOMPAT_EXTERNAL_DATA_FILE: u64 = 1 << 2;
/// Dirty, corrupt, external data file, compression type, extended L2 entries.
const KNOWN_INCOMPAT_BITS: u64 = 0b1_1111;

const EXTENSION_END: u32 = 0;
const EXTENSION_DATA_FILE_NAME: u32 = 0x4441_5441;

pub(super) fn probe(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// The header fields this inspector uses.
struct Header {
    backing_file_offset: u64,
    backing_file_size: u32,
    cluster_size: u64,
    virtual_size: u64,
    incompatible_features: u64,
    header_len: u64,
}

pub(super) fn inspect(reader: &Reader<'_>) -> ParseResult<Inspection> {
    let header = read_header(reader)?;
    let data_file_name = read_data_file_extension(reader, &header)?;

    let safety = if header.backing_file_offset != 0 {
        Err(UnsafeReason::Qcow2BackingFile {
            name: read_backing_name(reader, &header)?,
        })
    } else if header.incompatible_features & INCOMPAT_EXTERNAL_DATA_FILE != 0
        || data_file_name.is_some()
    {
        // qemu ignores the name extension when the feature bit is clear, but
        // a legitimate image never has one without the other.
        Err(UnsafeReason::Qcow2ExternalDataFile {
            name: data_file_name,
        })
    } else if header.incompatible_features & !KNOWN_INCOMPAT_BITS != 0 {
        Err(UnsafeReason::Qcow2UnknownFeatures {
            bits: header.incompatible_features & !KNOWN_INCOMPAT_BITS,
        })
    } else {
        Ok(())
    };

    Ok(Inspection::safe(DiskFormat::Qcow2, header.virtual_size).with_safety(safety))
}

fn read_header(reader: &Reader<'_>) -> ParseResult<Header> {
    let v2 = reader.read_exact(0, V2_HEADER_LEN, "qcow2 header")?;
    let version = field::be_u32(&v2, 4);
    if version != 2 && version != 3 {
        return Err(invalid!("version is {version}, expected 2 or 3"));
    }
    let cluster_bits = field::be_u32(&v2, 20);
    if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
        return Err(invalid!(
            "cluster_bits is {cluster_bits}, expected {MIN_CLUSTER_BITS} to {MAX_CLUSTER_BITS}"
        ));
    }
    let cluster_size = 1u64 << cluster_bits;

    let mut header = Header {
        backing_file_offset: field::be_u64(&v2, 8),
        backing_file_size: field::be_u32(&v2, 16),
        cluster_size,
        virtual_size: field::be_u64(&v2, 24),
        incompatible_features: 0,
        header_len: V2_HEADER_LEN as u64,
    };
    if version == 2 {
        return Ok(header);
    }

    let v3 = reader.read_exact(0, V3_MIN_HEADER_LEN, "qcow2 version 3 header")?;
    let header_len = u64::from(field::be_u32(&v3, 100));
    if header_len < V3_MIN_HEADER_LEN as u64 || header_len % 8 != 0 {
        return Err(invalid!(
            "header_length is {header_len}, expected a multiple of 8 of at least \
             {V3_MIN_HEADER_LEN}"
        ));
    }
    if header_len > cluster_size {
        return Err(invalid!(
            "header_length {header_len} exceeds the cluster size {cluster_size}"
        ));
    }
    header.incompatible_features = field::be_u64(&v3, 72);
    header.header_len = header_len;
    Ok(header)
}

/// Walks the header extensions and returns the external data file name, if
/// that extension is present.
fn read_data_file_extension(reader: &Reader<'_>, header: &Header) -> ParseResult<Option<String>> {
    let mut area_end = header.cluster_size;
    if header.backing_file_offset != 0 {
        area_end = area_end.min(header.backing_file_offset);
    }
    if area_end <= header.header_len {
        return Ok(None);
    }
    // The area is at most one cluster, which is at most 2 MiB.
    let area_len = (area_end - header.header_len) as usize;
    let area = reader.read_up_to(header.header_len, area_len)?;

    let mut data_file_name = None;
    let mut offset = 0usize;
    while offset + 8 <= area.len() {
        let extension_type = field::be_u32(&area, offset);
        if extension_type == EXTENSION_END {
            break;
        }
        let data_len = field::be_u32(&area, offset + 4) as usize;
        let data_start = offset + 8;
        let Some(data) = area.get(data_start..data_start.saturating_add(data_len)) else {
            return Err(invalid!(
                "header extension {extension_type:#010x} at byte {} has length {data_len}, \
                 which runs past the end of the first cluster or the file",
                header.header_len + offset as u64
            ));
        };
        if extension_type == EXTENSION_DATA_FILE_NAME {
            data_file_name = Some(printable_name(data));
        }
        // Extension data is padded to a multiple of 8 bytes.
        offset = data_start + data_len.div_ceil(8) * 8;
    }
    Ok(data_file_name)
}

/// Reads the backing file name for the error message. A name that cannot
/// be read is reported as such; the image is unsafe either way.
fn read_backing_name(reader: &Reader<'_>, header: &Header) -> ParseResult<String> {
    let offset = header.backing_file_offset;
    let size = header.backing_file_size;
    let fits = size <= MAX_BACKING_NAME_LEN
        && offset
            .checked_add(u64::from(size))
            .is_some_and(|end| end <= reader.size());
    if !fits {
        return Ok(format!(
            "name of {size} bytes at byte {offset}, not readable"
        ));
    }
    let name = reader.read_exact(offset, size as usize, "qcow2 backing file name")?;
    Ok(printable_name(&name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::test_images::{self, put_be_u32, put_be_u64};
    use crate::format::{inspect_bytes, InspectError};

    #[test]
    fn v3_image_is_safe_with_virtual_size() {
        let bytes = test_images::qcow2_v3(10 << 30);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.format, DiskFormat::Qcow2);
        assert_eq!(inspection.virtual_size, 10 << 30);
        assert_eq!(inspection.safety, Ok(()));
    }

    #[test]
    fn v2_image_is_safe() {
        let bytes = test_images::qcow2_v2(1 << 20);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.virtual_size, 1 << 20);
        assert_eq!(inspection.safety, Ok(()));
    }

    #[test]
    fn backing_file_is_unsafe_and_named() {
        let bytes = test_images::qcow2_with_backing(b"/etc/shadow");
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(
            inspection.safety,
            Err(UnsafeReason::Qcow2BackingFile {
                name: "/etc/shadow".to_owned()
            })
        );
    }

    #[test]
    fn backing_file_name_past_eof_is_still_unsafe() {
        let mut bytes = test_images::qcow2_v3(1 << 20);
        put_be_u64(&mut bytes, 8, u64::MAX - 4);
        put_be_u32(&mut bytes, 16, u32::MAX);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert!(matches!(
            inspection.safety,
            Err(UnsafeReason::Qcow2BackingFile { .. })
        ));
    }

    #[test]
    fn external_data_file_bit_is_unsafe() {
        let mut bytes = test_images::qcow2_v3(1 << 20);
        put_be_u64(&mut bytes, 72, INCOMPAT_EXTERNAL_DATA_FILE);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(
            inspection.safety,
            Err(UnsafeReason::Qcow2ExternalDataFile { name: None })
        );
    }

    #[test]
    fn data_file_extension_without_bit_is_unsafe_and_named() {
        let mut bytes = test_images::qcow2_v3(1 << 20);
        test_images::qcow2_add_extension(&mut bytes, EXTENSION_DATA_FILE_NAME, b"/dev/sda");
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(
            inspection.safety,
            Err(UnsafeReason::Qcow2ExternalDataFile {
                name: Some("/dev/sda".to_owned())
            })
        );
    }

    #[test]
    fn unknown_incompatible_bit_is_unsafe() {
        let mut bytes = test_images::qcow2_v3(1 << 20);
        put_be_u64(&mut bytes, 72, 1 << 40);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(
            inspection.safety,
            Err(UnsafeReason::Qcow2UnknownFeatures { bits: 1 << 40 })
        );
    }

    #[test]
    fn known_incompatible_bits_are_safe() {
        let mut bytes = test_images::qcow2_v3(1 << 20);
        put_be_u64(&mut bytes, 72, 0b1_1011);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.safety, Ok(()));
    }

    #[test]
    fn huge_extension_length_is_malformed() {
        let mut bytes = test_images::qcow2_v3(1 << 20);
        test_images::qcow2_add_extension(&mut bytes, 0x1234_5678, b"abc");
        put_be_u32(&mut bytes, V3_MIN_HEADER_LEN + 4, u32::MAX);
        let error = inspect_bytes(&bytes[..]).unwrap_err();
        assert!(matches!(error, InspectError::Malformed { .. }), "{error:?}");
    }

    #[test]
    fn bad_version_and_cluster_bits_are_malformed() {
        let mut bytes = test_images::qcow2_v3(1 << 20);
        put_be_u32(&mut bytes, 4, 4);
        assert!(inspect_bytes(&bytes[..]).is_err());

        let mut bytes = test_images::qcow2_v3(1 << 20);
        put_be_u32(&mut bytes, 20, 40);
        let error = inspect_bytes(&bytes[..]).unwrap_err();
        assert!(error.to_string().contains("cluster_bits is 40"), "{error}");
    }

    #[test]
    fn header_length_past_cluster_is_malformed() {
        let mut bytes = test_images::qcow2_v3(1 << 20);
        put_be_u32(&mut bytes, 20, 9);
        put_be_u32(&mut bytes, 100, 1024);
        assert!(inspect_bytes(&bytes[..]).is_err());
    }

    #[test]
    fn truncated_header_is_malformed() {
        let bytes = test_images::qcow2_v3(1 << 20);
        for len in [4, 40, 71, 80, 103] {
            let error = inspect_bytes(&bytes[..len]).unwrap_err();
            assert!(
                matches!(error, InspectError::Malformed { .. }),
                "len {len}: {error:?}"
            );
        }
    }
}
