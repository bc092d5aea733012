//! Property tests: inspection never panics and reads a bounded number of
//! bytes, whatever the input. The inputs are random bytes, random bytes
//! behind a real format signature, and valid images of every format with
//! random bytes corrupted or the file cut short.

use std::cell::Cell;
use std::io;

use super::source::{SliceSource, MAX_READ_LEN};
use super::{inspect_bytes, inspect_source, test_images, ImageSource};

/// Most bytes a single inspection may read: the largest bounded region
/// (a 2 MiB qcow2 cluster) plus every smaller header, footer and table.
const MAX_BYTES_READ: u64 = 2 * MAX_READ_LEN as u64;

/// xorshift64*, so failures reproduce from the printed seed without a
/// random number crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// An in-memory image that counts the bytes the inspector requests.
struct CountingSource<'a> {
    bytes: SliceSource<'a>,
    requested: Cell<u64>,
}

impl ImageSource for CountingSource<'_> {
    fn size(&self) -> u64 {
        self.bytes.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.requested.set(self.requested.get() + buf.len() as u64);
        self.bytes.read_at(offset, buf)
    }
}

/// Inspects `bytes`, panicking with `case` if more than the limit is read.
fn inspect_bounded(bytes: &[u8], case: &str) {
    let source = CountingSource {
        bytes: SliceSource(bytes),
        requested: Cell::new(0),
    };
    let _ = inspect_source(&source);
    assert!(
        source.requested.get() <= MAX_BYTES_READ,
        "{case}: read {} bytes",
        source.requested.get()
    );
}

const SIGNATURES: [&[u8]; 9] = [
    b"QFI\xfb",
    b"QED\0",
    b"KDMV",
    b"COWD",
    b"conectix",
    b"vhdxfile",
    b"WithouFreSpacExt",
    b"WithoutFreeSpace",
    b"# Disk DescriptorFile\nversion=1\n",
];

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for iteration in 0..3000 {
        let len = match iteration % 3 {
            0 => rng.below(64),
            1 => rng.below(2048),
            _ => rng.below(40_000),
        };
        let mut bytes = rng.bytes(len);
        if iteration % 2 == 0 {
            let signature = SIGNATURES[rng.below(SIGNATURES.len())];
            let count = signature.len().min(bytes.len());
            bytes[..count].copy_from_slice(&signature[..count]);
        }
        if iteration % 5 == 0 && bytes.len() > 0x44 {
            bytes[0x40..0x44].copy_from_slice(&0xbeda_107fu32.to_le_bytes());
        }
        inspect_bounded(&bytes, &format!("random iteration {iteration}"));
    }
}

/// Picks a byte offset to corrupt: near a nonzero byte of the original image
/// (where headers and tables are) half of the time, anywhere otherwise.
fn pick_offset(rng: &mut Rng, structure: &[usize], len: usize) -> usize {
    if structure.is_empty() || rng.below(2) == 0 {
        return rng.below(len);
    }
    let near = structure[rng.below(structure.len())] + rng.below(16);
    near.saturating_sub(8).min(len - 1)
}

/// Overwrites a 1, 2, 4 or 8-byte field at `at` with a random value, an
/// all-ones value or a value with only the top bit set, the values most
/// likely to overflow a length or offset.
fn corrupt_field(rng: &mut Rng, bytes: &mut [u8], at: usize) {
    let width = [1, 2, 4, 8][rng.below(4)];
    let end = (at + width).min(bytes.len());
    let field = &mut bytes[at..end];
    match rng.below(3) {
        0 => field.fill(0xFF),
        1 => {
            field.fill(0);
            if let Some(last) = field.last_mut() {
                *last = 0x80;
            }
        }
        _ => field.iter_mut().for_each(|byte| *byte = rng.next() as u8),
    }
}

#[test]
fn corrupted_valid_images_never_panic() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for (name, image) in test_images::all() {
        let structure: Vec<usize> = (0..image.len()).filter(|&at| image[at] != 0).collect();
        for iteration in 0..2000 {
            let mut bytes = image.clone();
            for _ in 0..1 + rng.below(4) {
                let at = pick_offset(&mut rng, &structure, bytes.len());
                corrupt_field(&mut rng, &mut bytes, at);
            }
            if iteration % 4 == 0 {
                bytes.truncate(rng.below(bytes.len() + 1));
            }
            inspect_bounded(&bytes, &format!("{name} iteration {iteration}"));
        }
    }
}

#[test]
fn every_valid_test_image_is_recognised() {
    for (name, image) in test_images::all() {
        let inspection = inspect_bytes(&image);
        assert!(inspection.is_ok(), "{name}: {inspection:?}");
    }
}
