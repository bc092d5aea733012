//! VMDK text descriptor parsing and detection.
//!
//! A descriptor is line-oriented text: `#` comments, `key=value` header
//! fields (such as `createType="monolithicSparse"`), `ddb.*` disk database
//! entries, and extent lines of the form
//! `ACCESS SECTORS TYPE ["FILE NAME" [OFFSET]]`, for example
//! `RW 20480 SPARSE "disk.vmdk"`. The parser is strict. Any other line is an
//! error, so that no line the inspector skipped can be read by another tool
//! as an extent.

use super::source::printable_name;

/// Extent access modes that start an extent line.
const ACCESS_MODES: [&str; 3] = ["RW", "RDONLY", "NOACCESS"];

/// The parts of a descriptor that matter for safety and size.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Descriptor {
    pub(super) create_type: Option<String>,
    pub(super) parent_file_name_hint: Option<String>,
    pub(super) extents: Vec<Extent>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Extent {
    pub(super) sectors: u64,
    /// Extent type such as SPARSE, FLAT or ZERO, as written.
    pub(super) kind: String,
    /// File name as written; ZERO extents have none.
    pub(super) file_name: Option<String>,
}

/// Parses descriptor text, returning a description of the first line that
/// cannot be parsed.
pub(super) fn parse(text: &str) -> Result<Descriptor, String> {
    let mut descriptor = Descriptor::default();
    for (index, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        let line_number = index + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(first) = line.split_whitespace().next() {
            if ACCESS_MODES
                .iter()
                .any(|mode| mode.eq_ignore_ascii_case(first))
            {
                let extent = parse_extent(line)
                    .map_err(|reason| format!("extent on line {line_number} {reason}"))?;
                descriptor.extents.push(extent);
                continue;
            }
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "line {line_number} is not a comment, field or extent: {}",
                printable_name(line.as_bytes())
            ));
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '_')
        {
            return Err(format!(
                "line {line_number} has an invalid field name: {}",
                printable_name(key.as_bytes())
            ));
        }
        let value = unquote(value.trim());
        if key.eq_ignore_ascii_case("createType") {
            descriptor.create_type = Some(value.to_owned());
        } else if key.eq_ignore_ascii_case("parentFileNameHint") {
            descriptor.parent_file_name_hint = Some(printable_name(value.as_bytes()));
        }
    }
    Ok(descriptor)
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(value)
}

/// Splits off the first whitespace-separated token.
fn next_token(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    if text.is_empty() {
        return None;
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    Some((&text[..end], text[end..].trim_start()))
}

fn parse_extent(line: &str) -> Result<Extent, String> {
    let (_access, rest) = next_token(line).ok_or("is empty")?;
    let (sectors, rest) = next_token(rest).ok_or("has no size")?;
    let sectors: u64 = sectors
        .parse()
        .map_err(|_| format!("has an invalid size {}", printable_name(sectors.as_bytes())))?;
    let (kind, rest) = next_token(rest).ok_or("has no type")?;
    if rest.is_empty() {
        return Ok(Extent {
            sectors,
            kind: kind.to_owned(),
            file_name: None,
        });
    }

    let quoted = rest
        .strip_prefix('"')
        .ok_or("has a file name that does not start with a quote")?;
    let (file_name, after) = quoted
        .split_once('"')
        .ok_or("has a file name without a closing quote")?;
    let after = after.trim();
    if !after.is_empty() && after.parse::<u64>().is_err() {
        return Err(format!(
            "has trailing text after the file name: {}",
            printable_name(after.as_bytes())
        ));
    }
    Ok(Extent {
        sectors,
        kind: kind.to_owned(),
        file_name: Some(file_name.to_owned()),
    })
}

/// Returns whether `head` starts like a VMDK descriptor file, as qemu's VMDK
/// probe decides: after comment and blank lines, a `version=1`, `version=2`
/// or `version=3` line. qemu only skips blank lines made of spaces; empty
/// lines are skipped here too, so that this matches at least what qemu does.
pub(super) fn looks_like_descriptor(head: &[u8]) -> bool {
    let mut rest = head;
    loop {
        match rest.first() {
            None => return false,
            Some(b'#') => {
                let Some(newline) = rest.iter().position(|&byte| byte == b'\n') else {
                    return false;
                };
                rest = &rest[newline + 1..];
            }
            Some(b' ' | b'\r' | b'\n') => {
                let blank = rest.iter().take_while(|&&byte| byte == b' ').count();
                rest = &rest[blank..];
                rest = rest.strip_prefix(b"\r").unwrap_or(rest);
                match rest.strip_prefix(b"\n") {
                    Some(after) => rest = after,
                    None => return false,
                }
            }
            Some(_) => return starts_with_version_line(rest),
        }
    }
}

fn starts_with_version_line(text: &[u8]) -> bool {
    let Some(after) = text.strip_prefix(b"version=") else {
        return false;
    };
    matches!(
        after,
        [b'1'..=b'3', b'\n', ..] | [b'1'..=b'3', b'\r', b'\n', ..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONOLITHIC_SPARSE: &str = "# Disk DescriptorFile\nversion=1\nCID=4b56fca\n\
        parentCID=ffffffff\ncreateType=\"monolithicSparse\"\n# Extent description\n\
        RW 20480 SPARSE \"s.vmdk\"\n#DDB\nddb.adapterType = \"ide\"\n";

    #[test]
    fn parses_monolithic_sparse_descriptor() {
        let descriptor = parse(MONOLITHIC_SPARSE).unwrap();
        assert_eq!(descriptor.create_type.as_deref(), Some("monolithicSparse"));
        assert_eq!(descriptor.parent_file_name_hint, None);
        assert_eq!(
            descriptor.extents,
            vec![Extent {
                sectors: 20480,
                kind: "SPARSE".to_owned(),
                file_name: Some("s.vmdk".to_owned()),
            }]
        );
    }

    #[test]
    fn parses_flat_extent_with_offset_and_spaces_in_name() {
        let descriptor = parse("RW 2048 FLAT \"my disk-flat.vmdk\" 0\nRDONLY 10 ZERO\n").unwrap();
        assert_eq!(
            descriptor.extents[0].file_name.as_deref(),
            Some("my disk-flat.vmdk")
        );
        assert_eq!(descriptor.extents[1].kind, "ZERO");
        assert_eq!(descriptor.extents[1].file_name, None);
    }

    #[test]
    fn records_parent_file_name_hint() {
        let descriptor = parse("parentFileNameHint=\"/etc/passwd\"\n").unwrap();
        assert_eq!(
            descriptor.parent_file_name_hint.as_deref(),
            Some("/etc/passwd")
        );
    }

    #[test]
    fn rejects_unknown_lines_and_bad_extents() {
        assert!(parse("createType=\"monolithicSparse\"\nsomething odd\n").is_err());
        assert!(parse("RW many SPARSE \"a.vmdk\"\n").is_err());
        assert!(parse("RW 10 SPARSE a.vmdk\n").is_err());
        assert!(parse("RW 10 SPARSE \"a.vmdk\n").is_err());
        assert!(parse("RW 10 FLAT \"a.vmdk\" x\n").is_err());
        assert!(parse("bad key=1\n").is_err());
    }

    #[test]
    fn lower_case_access_mode_is_still_an_extent() {
        let descriptor = parse("rw 10 flat \"/etc/shadow\" 0\n").unwrap();
        assert_eq!(descriptor.extents.len(), 1);
    }

    #[test]
    fn detects_descriptor_like_qemu() {
        assert!(looks_like_descriptor(b"# Disk DescriptorFile\nversion=1\n"));
        assert!(looks_like_descriptor(b"  \r\nversion=3\r\n"));
        assert!(looks_like_descriptor(b"\n\nversion=2\n"));
        assert!(!looks_like_descriptor(b"version=4\n"));
        assert!(!looks_like_descriptor(b"# comment without newline"));
        assert!(!looks_like_descriptor(b"  x\nversion=1\n"));
        assert!(!looks_like_descriptor(b""));
    }
}
