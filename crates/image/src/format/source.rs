//! Positioned, bounded reads from an image: the only way format parsers touch
//! image bytes.
//!
//! Every read goes through [`Reader`], which refuses requests larger than
//! [`MAX_READ_LEN`]. Parsers bound each length they take from a header before
//! reading, and this limit catches any they miss, so a hostile header cannot
//! make the inspector allocate more than a few MiB.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Largest single read, in bytes. The largest legitimate region is a qcow2
/// first cluster, which qemu caps at 2 MiB.
pub(crate) const MAX_READ_LEN: usize = 2 * 1024 * 1024;

/// Random-access image bytes: a file on disk, or bytes already in memory.
pub trait ImageSource {
    /// Returns the image length in bytes.
    fn size(&self) -> u64;

    /// Reads into `buf` from `offset`, returning how many bytes were read.
    /// Returns fewer bytes than requested only at the end of the image.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// Image bytes held in memory.
pub(crate) struct SliceSource<'a>(pub(crate) &'a [u8]);

impl ImageSource for SliceSource<'_> {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        let Some(available) = self.0.get(start..) else {
            return Ok(0);
        };
        let count = available.len().min(buf.len());
        buf[..count].copy_from_slice(&available[..count]);
        Ok(count)
    }
}

/// A regular file whose length was taken once, when inspection started.
pub(crate) struct FileSource {
    pub(crate) file: File,
    pub(crate) size: u64,
}

impl ImageSource for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        // `FileExt::read_at` may return short counts before the end of the
        // file, so keep reading until the buffer is full or it returns 0.
        let mut filled = 0;
        while filled < buf.len() {
            let position = offset + filled as u64;
            match self.file.read_at(&mut buf[filled..], position) {
                Ok(0) => break,
                Ok(count) => filled += count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(filled)
    }
}

/// Why a format parser gave up: an I/O failure, or an invalid header.
#[derive(Debug)]
pub(crate) enum ParseError {
    Io { offset: u64, source: io::Error },
    Invalid(String),
}

pub(crate) type ParseResult<T> = Result<T, ParseError>;

/// Builds a [`ParseError::Invalid`] from a format string.
macro_rules! invalid {
    ($($arg:tt)*) => {
        $crate::format::source::ParseError::Invalid(format!($($arg)*))
    };
}
pub(crate) use invalid;

/// Bounded reader over an [`ImageSource`].
pub(crate) struct Reader<'a> {
    source: &'a dyn ImageSource,
    size: u64,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(source: &'a dyn ImageSource) -> Self {
        Self {
            size: source.size(),
            source,
        }
    }

    /// Returns the image length in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Reads up to `len` bytes at `offset`. The result is shorter when the
    /// image ends first, and empty when `offset` is at or past the end.
    pub(crate) fn read_up_to(&self, offset: u64, len: usize) -> ParseResult<Vec<u8>> {
        if len > MAX_READ_LEN {
            return Err(invalid!(
                "a {len}-byte region at byte {offset} exceeds the {MAX_READ_LEN}-byte \
                 inspection read limit"
            ));
        }
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let available = usize::try_from(self.size - offset).unwrap_or(usize::MAX);
        let mut buf = vec![0; len.min(available)];
        let count = self
            .source
            .read_at(offset, &mut buf)
            .map_err(|source| ParseError::Io { offset, source })?;
        buf.truncate(count);
        Ok(buf)
    }

    /// Reads exactly `len` bytes at `offset`; `what` names the region in the
    /// error returned when the image ends before the region does.
    pub(crate) fn read_exact(&self, offset: u64, len: usize, what: &str) -> ParseResult<Vec<u8>> {
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|end| end > self.size) {
            return Err(invalid!(
                "the {what} at bytes {offset}..{} lies past the end of the {}-byte file",
                offset.saturating_add(len as u64),
                self.size
            ));
        }
        let buf = self.read_up_to(offset, len)?;
        if buf.len() < len {
            return Err(invalid!(
                "the file ended after {} of the {len} bytes of the {what} at byte {offset}",
                buf.len()
            ));
        }
        Ok(buf)
    }
}

/// Big-endian and little-endian integer fields at fixed offsets of a buffer
/// that the caller has already read with the required length.
pub(crate) mod field {
    fn array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
        let mut bytes = [0; N];
        bytes.copy_from_slice(&buf[at..at + N]);
        bytes
    }

    pub(crate) fn be_u32(buf: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(array(buf, at))
    }

    pub(crate) fn be_u64(buf: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(array(buf, at))
    }

    pub(crate) fn le_u16(buf: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(array(buf, at))
    }

    pub(crate) fn le_u32(buf: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(array(buf, at))
    }

    pub(crate) fn le_u64(buf: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(array(buf, at))
    }

    pub(crate) fn be_u16(buf: &[u8], at: usize) -> u16 {
        u16::from_be_bytes(array(buf, at))
    }
}

/// Converts a name read from an image into text that is safe to put in an
/// error message or log line: invalid UTF-8 is replaced, control characters
/// are escaped and the result is cut to 256 characters.
pub(crate) fn printable_name(bytes: &[u8]) -> String {
    const MAX_CHARS: usize = 256;
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (index, ch) in text.chars().enumerate() {
        if index == MAX_CHARS {
            out.push('…');
            break;
        }
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_exact_past_end_is_invalid() {
        let bytes = [1u8; 10];
        let source = SliceSource(&bytes);
        let reader = Reader::new(&source);
        let error = reader.read_exact(8, 4, "test header").unwrap_err();
        let ParseError::Invalid(message) = error else {
            panic!("expected Invalid, got {error:?}");
        };
        assert!(message.contains("test header"), "{message}");
    }

    #[test]
    fn read_exact_with_overflowing_offset_is_invalid() {
        let bytes = [1u8; 10];
        let source = SliceSource(&bytes);
        let reader = Reader::new(&source);
        assert!(reader.read_exact(u64::MAX - 1, 4, "field").is_err());
    }

    #[test]
    fn read_up_to_over_limit_is_rejected() {
        let bytes = [0u8; 4];
        let source = SliceSource(&bytes);
        let reader = Reader::new(&source);
        assert!(reader.read_up_to(0, MAX_READ_LEN + 1).is_err());
    }

    #[test]
    fn read_up_to_stops_at_end() {
        let bytes = [7u8; 10];
        let source = SliceSource(&bytes);
        let reader = Reader::new(&source);
        assert_eq!(reader.read_up_to(6, 100).unwrap(), vec![7; 4]);
        assert!(reader.read_up_to(10, 5).unwrap().is_empty());
        assert!(reader.read_up_to(u64::MAX, 5).unwrap().is_empty());
    }

    #[test]
    fn printable_name_escapes_controls_and_truncates() {
        assert_eq!(printable_name(b"/etc/shadow"), "/etc/shadow");
        assert_eq!(printable_name(b"a\nb"), "a\\nb");
        let long = vec![b'x'; 1000];
        assert_eq!(printable_name(&long).chars().count(), 257);
    }
}
