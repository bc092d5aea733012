//! The serial console log: rotation when QEMU starts, and the tail that
//! console output returns.

use std::path::Path;

use crate::DriverError;

/// Above this size the serial log moves to `console.log.0` when QEMU
/// starts, so a chatty guest cannot fill the disk across boots.
// NOTE: a running guest can still grow console.log without bound until its
// next start, whereas libvirt's virtlogd rotates while the guest runs.
const CONSOLE_LOG_ROTATE_BYTES: u64 = 10 << 20;

/// Maximum number of bytes of the serial log read for console output.
const CONSOLE_OUTPUT_MAX_BYTES: u64 = 100 << 10;

/// Moves a serial log larger than [`CONSOLE_LOG_ROTATE_BYTES`] aside.
pub fn rotate_console_log(console_log: &Path) {
    let size = std::fs::metadata(console_log)
        .map(|meta| meta.len())
        .unwrap_or(0);
    if size > CONSOLE_LOG_ROTATE_BYTES {
        let mut rotated = console_log.as_os_str().to_owned();
        rotated.push(".0");
        if let Err(error) = std::fs::rename(console_log, &rotated) {
            tracing::warn!(path = %console_log.display(), %error, "rotating the console log failed");
        }
    }
}

/// Reads at most the last [`CONSOLE_OUTPUT_MAX_BYTES`] of the serial log,
/// dropping a first line cut in the middle. A missing log is empty.
pub fn read_console_tail(console_log: &Path) -> Result<String, DriverError> {
    use std::io::{Read, Seek, SeekFrom};

    let mut file = match std::fs::File::open(console_log) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(error) => {
            return Err(DriverError::Failed(format!(
                "reading {} failed: {error}",
                console_log.display()
            )))
        }
    };
    let read_failed = |error: std::io::Error| {
        DriverError::Failed(format!("reading {} failed: {error}", console_log.display()))
    };
    let size = file.metadata().map_err(read_failed)?.len();
    let start = size.saturating_sub(CONSOLE_OUTPUT_MAX_BYTES);
    file.seek(SeekFrom::Start(start)).map_err(read_failed)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read_failed)?;

    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if start > 0 {
        if let Some(newline) = text.find('\n') {
            text.drain(..=newline);
        }
    }
    Ok(text)
}

/// Returns the last `length` lines of `text` (all of it for `None`), with their
/// line ends.
pub fn last_lines(text: &str, length: Option<usize>) -> String {
    let Some(length) = length else {
        return text.to_owned();
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    lines[lines.len().saturating_sub(length)..].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_line_ends() {
        let text = "one\r\ntwo\nthree\n";
        assert_eq!(last_lines(text, Some(2)), "two\nthree\n");
        assert_eq!(last_lines(text, Some(0)), "");
        assert_eq!(last_lines(text, Some(10)), text);
        assert_eq!(last_lines(text, None), text);
    }

    #[test]
    fn console_tail_drops_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let mut text = "x".repeat(CONSOLE_OUTPUT_MAX_BYTES as usize);
        text.push_str("\nlast line\n");
        std::fs::write(&log, &text).unwrap();
        assert_eq!(read_console_tail(&log).unwrap(), "last line\n");
        assert_eq!(read_console_tail(&dir.path().join("absent")).unwrap(), "");
    }

    #[test]
    fn large_console_log_is_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        std::fs::write(&log, vec![b'x'; CONSOLE_LOG_ROTATE_BYTES as usize + 1]).unwrap();

        rotate_console_log(&log);

        assert!(!log.exists(), "console.log must move aside");
        assert!(dir.path().join("console.log.0").exists());
    }

    #[test]
    fn small_console_log_stays() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        std::fs::write(&log, b"boot\n").unwrap();

        rotate_console_log(&log);

        assert_eq!(std::fs::read(&log).unwrap(), b"boot\n");
    }
}
