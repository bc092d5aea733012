//! The host facts the driver reports: QEMU's version and the host's
//! CPUs, memory and instance disk space.

use std::path::Path;

use crate::DriverError;

/// Parses `qemu-system-x86_64 --version` output into Nova's integer form,
/// major * 1_000_000 + minor * 1_000 + micro (7.2.22 is 7002022).
pub fn parse_qemu_version(output: &str) -> Option<u64> {
    let first_line = output.lines().next()?;
    let (_, after) = first_line.split_once("version ")?;
    let version = after.split_whitespace().next()?;
    let mut parts = version.split('.').map(|part| part.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let micro = parts.next().flatten().unwrap_or(0);
    Some(major * 1_000_000 + minor * 1_000 + micro)
}

/// Runs `qemu_binary --version` and parses it. A missing binary is the
/// usual cause of failure, so the message names the package to install.
pub fn query_qemu_version(qemu_binary: &Path) -> Result<u64, DriverError> {
    let output = std::process::Command::new(qemu_binary)
        .arg("--version")
        .output()
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                DriverError::Failed(format!(
                    "{} not found; install qemu-system-x86 or set the QEMU binary path",
                    qemu_binary.display()
                ))
            } else {
                DriverError::Failed(format!(
                    "running {} --version failed: {error}",
                    qemu_binary.display()
                ))
            }
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(DriverError::Failed(format!(
            "{} --version failed ({}): {}",
            qemu_binary.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_qemu_version(&stdout).ok_or_else(|| {
        DriverError::Failed(format!(
            "cannot read a version from the output of {} --version: {:?}",
            qemu_binary.display(),
            stdout.lines().next().unwrap_or_default()
        ))
    })
}

/// Reads `MemTotal` from /proc/meminfo text, in MiB.
pub fn parse_mem_total_mb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Returns the host's memory in MiB.
pub fn host_memory_mb() -> Result<u64, DriverError> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")
        .map_err(|error| DriverError::Failed(format!("reading /proc/meminfo failed: {error}")))?;
    parse_mem_total_mb(&meminfo)
        .ok_or_else(|| DriverError::Failed("/proc/meminfo has no MemTotal line".to_owned()))
}

/// Returns the size in GiB of the file system that contains `dir`, as Nova reports
/// `local_gb`: the total, not what is free.
pub fn filesystem_size_gb(dir: &Path) -> Result<u64, DriverError> {
    let stats = nix::sys::statvfs::statvfs(dir).map_err(|error| {
        DriverError::Failed(format!("statvfs of {} failed: {error}", dir.display()))
    })?;
    let bytes = stats.blocks().saturating_mul(stats.fragment_size());
    Ok(bytes >> 30)
}

/// Returns the number of CPUs this process may run on.
pub fn host_vcpus() -> u32 {
    std::thread::available_parallelism()
        .map(|count| count.get() as u32)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_of_debian_qemu_7_2() {
        let output = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n\
                      Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n";
        assert_eq!(parse_qemu_version(output), Some(7_002_022));
    }

    #[test]
    fn version_without_micro() {
        assert_eq!(
            parse_qemu_version("QEMU emulator version 8.1\n"),
            Some(8_001_000)
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 9.0.0\n"),
            Some(9_000_000)
        );
    }

    #[test]
    fn version_missing_is_none() {
        assert_eq!(parse_qemu_version(""), None);
        assert_eq!(
            parse_qemu_version("qemu-system-x86_64: unknown option"),
            None
        );
        assert_eq!(parse_qemu_version("QEMU emulator version x.y"), None);
    }

    #[test]
    fn mem_total_in_mib() {
        let meminfo = "MemTotal:       24684088 kB\nMemFree:        21896016 kB\n";
        assert_eq!(parse_mem_total_mb(meminfo), Some(24_105));
        assert_eq!(parse_mem_total_mb("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn missing_qemu_binary_names_package() {
        let error = query_qemu_version(Path::new("/nonexistent/qemu-system-x86_64"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("install qemu-system-x86"), "{error}");
    }
}
