//! Partition table detection for raw and ISO images. Informational only: a
//! partition table does not change how QEMU reads a raw image.

/// A partition table found at the start of a raw disk image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionTable {
    /// Master boot record: the 0x55 0xAA boot signature at bytes 510..512.
    Mbr,
    /// GUID partition table: the `EFI PART` header signature in the second
    /// 512-byte sector. GPT disks also carry a protective MBR.
    Gpt,
}

const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";

/// Detects a partition table from the first 1024 bytes of `head`.
// NOTE: only signatures are checked; the GPT header CRC and the MBR entries
// are not validated.
pub(super) fn detect(head: &[u8]) -> Option<PartitionTable> {
    if head.get(512..520) == Some(&GPT_SIGNATURE[..]) {
        return Some(PartitionTable::Gpt);
    }
    if head.get(510..512) == Some(&[0x55, 0xAA][..]) {
        return Some(PartitionTable::Mbr);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt_wins_over_protective_mbr() {
        let mut head = vec![0u8; 1024];
        head[510] = 0x55;
        head[511] = 0xAA;
        head[512..520].copy_from_slice(GPT_SIGNATURE);
        assert_eq!(detect(&head), Some(PartitionTable::Gpt));
    }

    #[test]
    fn short_or_blank_head_has_no_table() {
        assert_eq!(detect(&[0u8; 100]), None);
        assert_eq!(detect(&[0u8; 1024]), None);
    }
}
