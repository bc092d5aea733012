//! Parallels (ploop) disk image header inspection.
//!
//! Layout from qemu's `docs/interop/parallels.txt`, little-endian: a 16-byte
//! magic, version 2 at byte 16 and the disk size in 512-byte sectors at byte
//! 36. The format has no backing files, so every valid image is safe.

use super::source::{field, invalid, ParseResult, Reader};
use super::{DiskFormat, Inspection};

const MAGIC_OLD: &[u8; 16] = b"WithoutFreeSpace";
const MAGIC_EXT: &[u8; 16] = b"WithouFreSpacExt";
const HEADER_LEN: usize = 64;
const SECTOR_SIZE: u64 = 512;

pub(super) fn probe(head: &[u8]) -> bool {
    head.starts_with(MAGIC_OLD) || head.starts_with(MAGIC_EXT)
}

pub(super) fn inspect(reader: &Reader<'_>) -> ParseResult<Inspection> {
    let header = reader.read_exact(0, HEADER_LEN, "parallels header")?;
    let version = field::le_u32(&header, 16);
    if version != 2 {
        return Err(invalid!("version is {version}, expected 2"));
    }
    let mut sectors = field::le_u64(&header, 36);
    if header.starts_with(MAGIC_OLD) {
        // Old-style images use only the low 32 bits of the sector count.
        sectors &= u64::from(u32::MAX);
    }
    let virtual_size = sectors
        .checked_mul(SECTOR_SIZE)
        .ok_or_else(|| invalid!("disk size of {sectors} sectors overflows 64 bits"))?;
    Ok(Inspection::safe(DiskFormat::Ploop, virtual_size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::inspect_bytes;
    use crate::format::test_images::{self, put_le_u32, put_le_u64};

    #[test]
    fn image_reports_size() {
        let bytes = test_images::ploop(2048);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.format, DiskFormat::Ploop);
        assert_eq!(inspection.virtual_size, 1 << 20);
        assert_eq!(inspection.safety, Ok(()));
    }

    #[test]
    fn wrong_version_is_malformed() {
        let mut bytes = test_images::ploop(2048);
        put_le_u32(&mut bytes, 16, 3);
        assert!(inspect_bytes(&bytes[..]).is_err());
    }

    #[test]
    fn overflowing_size_is_malformed() {
        let mut bytes = test_images::ploop(2048);
        put_le_u64(&mut bytes, 36, u64::MAX);
        assert!(inspect_bytes(&bytes[..]).is_err());
    }
}
