//! The `virt_type` setting (`auto`, `kvm`, `qemu`) and its resolution to a
//! QEMU accelerator on this host.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::DriverError;

/// The device KVM is reached through.
const KVM_DEVICE: &str = "/dev/kvm";

/// The operator's choice of virtualisation, as Nova's `[libvirt] virt_type`
/// names it: `kvm` for hardware virtualisation, `qemu` for software
/// emulation (TCG), `auto` for KVM when the host can use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum VirtType {
    #[default]
    Auto,
    Kvm,
    Qemu,
}

/// An invalid `virt_type` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid virt_type {0:?}; expected auto, kvm or qemu")]
pub struct ParseVirtTypeError(String);

impl FromStr for VirtType {
    type Err = ParseVirtTypeError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(VirtType::Auto),
            "kvm" => Ok(VirtType::Kvm),
            "qemu" => Ok(VirtType::Qemu),
            _ => Err(ParseVirtTypeError(value.to_owned())),
        }
    }
}

impl TryFrom<String> for VirtType {
    type Error = ParseVirtTypeError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<VirtType> for String {
    fn from(value: VirtType) -> Self {
        value.to_string()
    }
}

impl fmt::Display for VirtType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VirtType::Auto => "auto",
            VirtType::Kvm => "kvm",
            VirtType::Qemu => "qemu",
        })
    }
}

/// The QEMU accelerator an instance runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// Returns the value of QEMU's `-machine accel=`.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// Returns the `virt_type` Nova reports for instances on this accelerator.
    pub fn virt_type_name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "qemu",
        }
    }
}

impl VirtType {
    /// Resolves the setting against the host. KVM counts as usable when
    /// `/dev/kvm` opens read-write and `qemu_binary` runs a KVM guest with
    /// `-cpu host`. Otherwise `auto` falls back to TCG and `kvm` fails with
    /// the reason.
    pub fn resolve(self, qemu_binary: &Path) -> Result<Accel, DriverError> {
        self.resolve_with(Path::new(KVM_DEVICE), qemu_binary)
    }

    fn resolve_with(self, kvm_device: &Path, qemu_binary: &Path) -> Result<Accel, DriverError> {
        if self == VirtType::Qemu {
            return Ok(Accel::Tcg);
        }
        let check = kvm_usable(kvm_device)
            .map_err(|error| {
                format!(
                    "{} cannot be opened read-write ({error})",
                    kvm_device.display()
                )
            })
            .and_then(|()| probe_kvm(qemu_binary));
        match check {
            Ok(()) => Ok(Accel::Kvm),
            Err(reason) if self == VirtType::Auto => {
                tracing::info!(reason, "KVM is not usable; instances run under TCG emulation");
                Ok(Accel::Tcg)
            }
            Err(reason) => Err(DriverError::Failed(format!(
                "virt_type is kvm but {reason}; enable hardware virtualisation and load the kvm module, \
                 give this user access to {}, or set virt_type to qemu or auto",
                kvm_device.display()
            ))),
        }
    }
}

/// Checks that the KVM device opens read-write, which fails when the
/// module is missing or the user lacks access.
fn kvm_usable(kvm_device: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(kvm_device)
        .map(drop)
}

/// Maximum time the KVM probe may run before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a guest without disks on KVM with `-cpu host`, as instances run,
/// and checks that its vCPU runs. Nested KVM can open /dev/kvm and still
/// fail here: QEMU 7.2 aborts with "failed to set MSR 0x10a" on some hosts.
fn probe_kvm(qemu_binary: &Path) -> Result<(), String> {
    let args = [
        "-machine",
        "pc,accel=kvm",
        "-cpu",
        "host",
        "-m",
        "16",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-S",
        "-qmp",
        "stdio",
    ];
    let mut child = Command::new(qemu_binary)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("{} could not be started ({error})", qemu_binary.display()))?;
    let commands = concat!(
        r#"{"execute": "qmp_capabilities"}"#,
        "\n",
        r#"{"execute": "cont"}"#,
        "\n",
        r#"{"execute": "query-status"}"#,
        "\n",
        r#"{"execute": "quit"}"#,
        "\n",
    );
    if let Some(mut stdin) = child.stdin.take() {
        // QEMU may already have exited, and then its output gives the reason.
        let _ = stdin.write_all(commands.as_bytes());
    }

    let deadline = Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "a KVM test guest did not stop within {PROBE_TIMEOUT:?}"
                ));
            }
        }
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut stdout);
    }
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    if status.success() && stdout.contains(r#""status": "running""#) {
        return Ok(());
    }
    let output: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    Err(format!(
        "QEMU cannot run a KVM guest with -cpu host ({status}): {}",
        if output.is_empty() {
            "no error output".to_owned()
        } else {
            output.join(" | ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virt_type_parses_each_setting() {
        assert_eq!("auto".parse::<VirtType>(), Ok(VirtType::Auto));
        assert_eq!("kvm".parse::<VirtType>(), Ok(VirtType::Kvm));
        assert_eq!("qemu".parse::<VirtType>(), Ok(VirtType::Qemu));
        assert_eq!(" KVM ".parse::<VirtType>(), Ok(VirtType::Kvm));
    }

    #[test]
    fn virt_type_rejects_unknown_value() {
        let error = "xen".parse::<VirtType>().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"xen\""), "{message}");
        assert!(message.contains("auto, kvm or qemu"), "{message}");
    }

    #[test]
    fn virt_type_round_trips_through_serde() {
        let parsed: VirtType = serde_json::from_str("\"qemu\"").unwrap();
        assert_eq!(parsed, VirtType::Qemu);
        assert_eq!(serde_json::to_string(&VirtType::Kvm).unwrap(), "\"kvm\"");
        assert!(serde_json::from_str::<VirtType>("\"hyperv\"").is_err());
    }

    #[test]
    fn kvm_without_device_fails_with_advice() {
        let missing = Path::new("/nonexistent/oxstack-kvm");
        let error = VirtType::Kvm
            .resolve_with(missing, Path::new("/bin/true"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/oxstack-kvm"), "{error}");
        assert!(error.contains("set virt_type to qemu or auto"), "{error}");
    }

    #[test]
    fn auto_without_device_uses_tcg() {
        let missing = Path::new("/nonexistent/oxstack-kvm");
        assert_eq!(
            VirtType::Auto
                .resolve_with(missing, Path::new("/bin/true"))
                .unwrap(),
            Accel::Tcg
        );
        assert_eq!(
            VirtType::Qemu
                .resolve_with(missing, Path::new("/bin/true"))
                .unwrap(),
            Accel::Tcg
        );
    }

    /// Creates a writable file in place of a /dev/kvm that opens, and a
    /// script in place of a QEMU that aborts as QEMU 7.2 does on some
    /// nested KVM hosts.
    fn failing_qemu(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;

        let device = dir.join("kvm");
        std::fs::write(&device, b"").unwrap();
        let qemu = dir.join("qemu");
        std::fs::write(
            &qemu,
            "#!/bin/sh\necho 'error: failed to set MSR 0x10a to 0x69' >&2\nexit 134\n",
        )
        .unwrap();
        std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
        (device, qemu)
    }

    #[test]
    fn auto_with_failing_probe_uses_tcg() {
        let dir = tempfile::tempdir().unwrap();
        let (device, qemu) = failing_qemu(dir.path());
        assert_eq!(
            VirtType::Auto.resolve_with(&device, &qemu).unwrap(),
            Accel::Tcg
        );
    }

    #[test]
    fn kvm_with_failing_probe_quotes_qemu() {
        let dir = tempfile::tempdir().unwrap();
        let (device, qemu) = failing_qemu(dir.path());
        let error = VirtType::Kvm
            .resolve_with(&device, &qemu)
            .unwrap_err()
            .to_string();
        assert!(error.contains("failed to set MSR 0x10a"), "{error}");
        assert!(error.contains("-cpu host"), "{error}");
    }
}
