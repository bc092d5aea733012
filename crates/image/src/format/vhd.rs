//! VHD (Microsoft Virtual Hard Disk, qemu's `vpc`) inspection.
//!
//! Every VHD ends with a 512-byte big-endian footer that starts with the
//! cookie `conectix`; dynamic and differencing disks also keep a copy at byte
//! 0. Footer fields used here: data offset at byte 16 (the dynamic disk
//! header), current size at 48, disk type at 60 (2 fixed, 3 dynamic,
//! 4 differencing) and checksum at 64. The checksum is the ones' complement
//! of the byte sum of the footer without the checksum field. A dynamic disk
//! header starts with `cxsparse` and contains eight 24-byte parent locator
//! entries from byte 576, which only differencing disks may use.

use super::source::{field, invalid, ParseResult, Reader};
use super::{DiskFormat, Inspection, UnsafeReason};

const COOKIE: &[u8; 8] = b"conectix";
const FOOTER_LEN: usize = 512;
const DYNAMIC_COOKIE: &[u8; 8] = b"cxsparse";
const DYNAMIC_HEADER_LEN: usize = 1024;
const PARENT_LOCATORS_OFFSET: usize = 576;
const PARENT_LOCATOR_LEN: usize = 24;
const PARENT_LOCATOR_COUNT: usize = 8;

const TYPE_FIXED: u32 = 2;
const TYPE_DYNAMIC: u32 = 3;
const TYPE_DIFFERENCING: u32 = 4;

/// Matches a footer copy at byte 0, or a footer with a valid checksum in the
/// last 512 bytes (fixed disks have only that one). The checksum keeps raw
/// disks whose last sector happens to start with `conectix` from matching.
pub(super) fn probe(reader: &Reader<'_>, head: &[u8]) -> ParseResult<bool> {
    if head.starts_with(COOKIE) {
        return Ok(true);
    }
    Ok(read_tail_footer(reader)?.is_some_and(|footer| checksum_matches(&footer)))
}

fn read_tail_footer(reader: &Reader<'_>) -> ParseResult<Option<Vec<u8>>> {
    let Some(offset) = reader.size().checked_sub(FOOTER_LEN as u64) else {
        return Ok(None);
    };
    let footer = reader.read_exact(offset, FOOTER_LEN, "vhd footer")?;
    Ok(footer.starts_with(COOKIE).then_some(footer))
}

fn checksum_matches(footer: &[u8]) -> bool {
    let sum = footer
        .iter()
        .enumerate()
        .filter(|(index, _)| !(64..68).contains(index))
        .fold(0u32, |sum, (_, byte)| sum.wrapping_add(u32::from(*byte)));
    !sum == field::be_u32(footer, 64)
}

pub(super) fn inspect(reader: &Reader<'_>, head: &[u8]) -> ParseResult<Inspection> {
    let footer = if head.starts_with(COOKIE) {
        reader.read_exact(0, FOOTER_LEN, "vhd footer copy")?
    } else {
        read_tail_footer(reader)?.ok_or_else(|| invalid!("no footer at the end of the file"))?
    };
    if !checksum_matches(&footer) {
        return Err(invalid!("the footer checksum does not match its contents"));
    }

    let virtual_size = field::be_u64(&footer, 48);
    let disk_type = field::be_u32(&footer, 60);
    let safety = match disk_type {
        TYPE_FIXED => Ok(()),
        TYPE_DYNAMIC => check_dynamic_header(reader, field::be_u64(&footer, 16))?,
        TYPE_DIFFERENCING => Err(UnsafeReason::VhdDifferencing),
        other => return Err(invalid!("disk type is {other}, expected 2, 3 or 4")),
    };
    Ok(Inspection::safe(DiskFormat::Vhd, virtual_size).with_safety(safety))
}

/// Checks that a dynamic disk's header exists and that its parent locator
/// entries are empty.
fn check_dynamic_header(reader: &Reader<'_>, offset: u64) -> ParseResult<Result<(), UnsafeReason>> {
    let header = reader.read_exact(offset, DYNAMIC_HEADER_LEN, "vhd dynamic disk header")?;
    if !header.starts_with(DYNAMIC_COOKIE) {
        return Err(invalid!(
            "the dynamic disk header at byte {offset} lacks the cxsparse cookie"
        ));
    }
    for index in 0..PARENT_LOCATOR_COUNT {
        let entry = PARENT_LOCATORS_OFFSET + index * PARENT_LOCATOR_LEN;
        let platform_code = field::be_u32(&header, entry);
        if platform_code != 0 {
            return Ok(Err(UnsafeReason::VhdParentLocator));
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::test_images::{self, put_be_u32};
    use crate::format::{inspect_bytes, InspectError};

    #[test]
    fn dynamic_disk_reports_size() {
        let bytes = test_images::vhd_dynamic(10 << 20);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.format, DiskFormat::Vhd);
        assert_eq!(inspection.virtual_size, 10 << 20);
        assert_eq!(inspection.safety, Ok(()));
    }

    #[test]
    fn fixed_disk_is_found_by_its_footer() {
        let bytes = test_images::vhd_fixed(64 * 1024);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.format, DiskFormat::Vhd);
        assert_eq!(inspection.virtual_size, 64 * 1024);
    }

    #[test]
    fn tail_cookie_with_bad_checksum_is_raw() {
        let mut bytes = test_images::vhd_fixed(64 * 1024);
        let checksum_at = bytes.len() - FOOTER_LEN + 64;
        bytes[checksum_at] ^= 0xFF;
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.format, DiskFormat::Raw);
    }

    #[test]
    fn differencing_disk_is_unsafe() {
        let mut bytes = test_images::vhd_dynamic(10 << 20);
        test_images::vhd_set_footer_field(&mut bytes, 60, TYPE_DIFFERENCING);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.safety, Err(UnsafeReason::VhdDifferencing));
    }

    #[test]
    fn parent_locator_in_dynamic_disk_is_unsafe() {
        let mut bytes = test_images::vhd_dynamic(10 << 20);
        put_be_u32(&mut bytes, 512 + PARENT_LOCATORS_OFFSET + 24, 0x5732_6b75);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.safety, Err(UnsafeReason::VhdParentLocator));
    }

    #[test]
    fn dynamic_header_past_eof_is_malformed() {
        let mut bytes = test_images::vhd_dynamic(10 << 20);
        test_images::vhd_set_footer_field(&mut bytes, 20, 0x7fff_0000);
        let error = inspect_bytes(&bytes[..]).unwrap_err();
        assert!(matches!(error, InspectError::Malformed { .. }), "{error:?}");
    }

    #[test]
    fn bad_checksum_at_start_is_malformed() {
        let mut bytes = test_images::vhd_dynamic(10 << 20);
        bytes[48] ^= 1;
        assert!(inspect_bytes(&bytes[..]).is_err());
    }

    #[test]
    fn cookie_only_file_is_malformed() {
        assert!(inspect_bytes(&COOKIE[..]).is_err());
    }
}
