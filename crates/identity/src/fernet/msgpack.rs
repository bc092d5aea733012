//! The few msgpack types that Keystone token payloads contain.
//!
//! Values are written as Python's `msgpack.packb` writes them: integers in
//! their smallest form, floats as float64, `bytes` as bin and `str` as str.
//! Reading takes untrusted bytes and allocates nothing beyond the input.

use rmp::Marker;

use super::errors::PayloadError;

/// Builds a payload in memory.
#[derive(Debug, Default)]
pub(super) struct Writer {
    buffer: Vec<u8>,
}

// Every rmp write below goes to a Vec<u8>, whose io::Write implementation
// always returns Ok.
const VEC_WRITE: &str = "writing to a Vec<u8> cannot fail";

impl Writer {
    pub(super) fn array(&mut self, length: u32) {
        rmp::encode::write_array_len(&mut self.buffer, length).expect(VEC_WRITE);
    }

    pub(super) fn bool(&mut self, value: bool) {
        rmp::encode::write_bool(&mut self.buffer, value).expect(VEC_WRITE);
    }

    pub(super) fn uint(&mut self, value: u64) {
        rmp::encode::write_uint(&mut self.buffer, value).expect(VEC_WRITE);
    }

    pub(super) fn f64(&mut self, value: f64) {
        rmp::encode::write_f64(&mut self.buffer, value).expect(VEC_WRITE);
    }

    pub(super) fn str(&mut self, value: &str) {
        rmp::encode::write_str(&mut self.buffer, value).expect(VEC_WRITE);
    }

    pub(super) fn bin(&mut self, value: &[u8]) {
        rmp::encode::write_bin(&mut self.buffer, value).expect(VEC_WRITE);
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.buffer
    }
}

/// A string or binary value. Keystone's packing depends on which one an
/// id was stored as, and msgpack before 1.0 wrote `bytes` as str.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Raw<'a> {
    Str(&'a [u8]),
    Bin(&'a [u8]),
}

impl<'a> Raw<'a> {
    pub(super) fn bytes(self) -> &'a [u8] {
        match self {
            Raw::Str(bytes) | Raw::Bin(bytes) => bytes,
        }
    }
}

/// Reads values from the front of a payload.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub(super) fn array(&mut self) -> Result<u32, PayloadError> {
        self.expect("array", |marker| {
            matches!(
                marker,
                Marker::FixArray(_) | Marker::Array16 | Marker::Array32
            )
        })?;
        rmp::decode::read_array_len(&mut self.rest).map_err(|_| PayloadError::Truncated)
    }

    pub(super) fn bool(&mut self) -> Result<bool, PayloadError> {
        self.expect("bool", |marker| {
            matches!(marker, Marker::True | Marker::False)
        })?;
        rmp::decode::read_bool(&mut self.rest).map_err(|_| PayloadError::Truncated)
    }

    pub(super) fn uint(&mut self) -> Result<u64, PayloadError> {
        self.expect("unsigned integer", |marker| {
            matches!(
                marker,
                Marker::FixPos(_) | Marker::U8 | Marker::U16 | Marker::U32 | Marker::U64
            )
        })?;
        rmp::decode::read_int(&mut self.rest).map_err(|_| PayloadError::Truncated)
    }

    /// Reads a float64 or float32. Python writes float64 for every `float`.
    pub(super) fn float(&mut self) -> Result<f64, PayloadError> {
        let marker = self.expect("float", |marker| {
            matches!(marker, Marker::F32 | Marker::F64)
        })?;
        let value = match marker {
            Marker::F32 => rmp::decode::read_f32(&mut self.rest).map(f64::from),
            _ => rmp::decode::read_f64(&mut self.rest),
        };
        value.map_err(|_| PayloadError::Truncated)
    }

    pub(super) fn raw(&mut self) -> Result<Raw<'a>, PayloadError> {
        let marker = self.expect("str or bin", |marker| {
            matches!(
                marker,
                Marker::FixStr(_)
                    | Marker::Str8
                    | Marker::Str16
                    | Marker::Str32
                    | Marker::Bin8
                    | Marker::Bin16
                    | Marker::Bin32
            )
        })?;
        let is_str = !matches!(marker, Marker::Bin8 | Marker::Bin16 | Marker::Bin32);
        let length = if is_str {
            rmp::decode::read_str_len(&mut self.rest)
        } else {
            rmp::decode::read_bin_len(&mut self.rest)
        };
        let length = length.map_err(|_| PayloadError::Truncated)?;
        let bytes = self.take(length as usize)?;
        Ok(if is_str {
            Raw::Str(bytes)
        } else {
            Raw::Bin(bytes)
        })
    }

    /// Fails unless every byte was read, as Python's `msgpack.unpackb` does.
    pub(super) fn finish(&self) -> Result<(), PayloadError> {
        match self.rest.len() {
            0 => Ok(()),
            extra => Err(PayloadError::TrailingBytes(extra)),
        }
    }

    /// Checks the next marker without consuming it, so that after this check
    /// the only way an rmp read can fail is by running out of bytes.
    fn expect(
        &self,
        expected: &'static str,
        accepts: impl Fn(Marker) -> bool,
    ) -> Result<Marker, PayloadError> {
        let byte = *self.rest.first().ok_or(PayloadError::Truncated)?;
        let marker = Marker::from_u8(byte);
        if accepts(marker) {
            Ok(marker)
        } else {
            Err(PayloadError::UnexpectedType {
                expected,
                marker: byte,
            })
        }
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], PayloadError> {
        if length > self.rest.len() {
            return Err(PayloadError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(length);
        self.rest = rest;
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_uses_python_msgpack_forms() {
        let mut writer = Writer::default();
        writer.array(3);
        writer.uint(2);
        writer.uint(300);
        writer.f64(1.5);
        let expected = [
            [0x93, 0x02, 0xcd, 0x01, 0x2c].as_slice(),
            &[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(writer.into_bytes(), expected);
    }

    #[test]
    fn reader_round_trips_each_type() {
        let mut writer = Writer::default();
        writer.array(6);
        writer.bool(true);
        writer.uint(u64::MAX);
        writer.f64(-2.25);
        writer.str("default");
        writer.bin(&[1, 2, 3]);
        writer.uint(0);
        let bytes = writer.into_bytes();

        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.array(), Ok(6));
        assert_eq!(reader.bool(), Ok(true));
        assert_eq!(reader.uint(), Ok(u64::MAX));
        assert_eq!(reader.float(), Ok(-2.25));
        assert_eq!(reader.raw(), Ok(Raw::Str(b"default")));
        assert_eq!(reader.raw(), Ok(Raw::Bin(&[1, 2, 3])));
        assert_eq!(reader.uint(), Ok(0));
        assert_eq!(reader.finish(), Ok(()));
    }

    #[test]
    fn reader_reports_wrong_type() {
        let bytes = [0xc3];
        let mut reader = Reader::new(&bytes);
        assert_eq!(
            reader.uint(),
            Err(PayloadError::UnexpectedType {
                expected: "unsigned integer",
                marker: 0xc3
            })
        );
    }

    #[test]
    fn reader_reports_truncation() {
        // bin8 announcing 16 bytes with only 2 present.
        let mut reader = Reader::new(&[0xc4, 0x10, 0xaa, 0xbb]);
        assert_eq!(reader.raw(), Err(PayloadError::Truncated));
        let mut empty = Reader::new(&[]);
        assert_eq!(empty.bool(), Err(PayloadError::Truncated));
        // float64 marker without its 8 bytes.
        let mut float = Reader::new(&[0xcb, 0x3f]);
        assert_eq!(float.float(), Err(PayloadError::Truncated));
    }

    #[test]
    fn reader_rejects_negative_integer_as_unsigned() {
        let mut reader = Reader::new(&[0xff]);
        assert_eq!(
            reader.uint(),
            Err(PayloadError::UnexpectedType {
                expected: "unsigned integer",
                marker: 0xff
            })
        );
    }

    #[test]
    fn finish_reports_trailing_bytes() {
        let reader = Reader::new(&[0x01, 0x02]);
        assert_eq!(reader.finish(), Err(PayloadError::TrailingBytes(2)));
    }
}
