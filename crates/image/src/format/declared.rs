//! Glance's rule that an image's content must match its declared
//! `disk_format`.
//!
//! A qcow2 file uploaded as `raw` is the format-spoofing attack. A hypervisor
//! that opens it as raw does not follow its backing file, but any tool that
//! probes the format does. Rejecting the mismatch keeps every consumer's view of the
//! image the same.

use super::{DiskFormat, Inspection};

/// Values Glance accepts for `disk_format` by default.
const KNOWN_DISK_FORMATS: &str = "ami, ari, aki, raw, qcow2, vhd, vhdx, vmdk, vdi, iso, ploop";

/// The declared `disk_format` does not describe the image's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatMismatch {
    #[error(
        "image is a {detected} file but disk_format is {declared}; upload it with \
         --disk-format {detected}"
    )]
    Mismatch {
        declared: String,
        detected: DiskFormat,
    },

    #[error(
        "image is a {detected} file, which this service does not accept; convert it \
         with `qemu-img convert -O qcow2 IN OUT` and upload it with --disk-format qcow2"
    )]
    UnsupportedFormat { detected: DiskFormat },

    #[error("disk_format {declared} is not known; use vhd, which is Glance's name for qemu's vpc")]
    VpcNotVhd { declared: String },

    #[error("disk_format {declared} is not known; use one of {KNOWN_DISK_FORMATS}")]
    UnknownDeclared { declared: String },
}

/// Checks that the inspected content matches `declared`, a Glance
/// `disk_format` value.
///
/// `ami`, `ari` and `aki` (Amazon machine, ramdisk and kernel images) must be
/// raw content. `iso` accepts ISO 9660 content and also unrecognised (raw)
/// content, because UDF-only discs have no ISO 9660 descriptor and are
/// served to hypervisors as raw either way. Every other value must match the
/// detected format exactly.
pub fn check_declared(declared: &str, inspection: &Inspection) -> Result<(), FormatMismatch> {
    let detected = inspection.format;
    if detected == DiskFormat::Qed {
        return Err(FormatMismatch::UnsupportedFormat { detected });
    }

    let expected = match declared {
        "raw" | "ami" | "ari" | "aki" => DiskFormat::Raw,
        "qcow2" => DiskFormat::Qcow2,
        "vmdk" => DiskFormat::Vmdk,
        "vhd" => DiskFormat::Vhd,
        "vhdx" => DiskFormat::Vhdx,
        "vdi" => DiskFormat::Vdi,
        "ploop" => DiskFormat::Ploop,
        "iso" if detected == DiskFormat::Raw => return Ok(()),
        "iso" => DiskFormat::Iso,
        "vpc" => {
            return Err(FormatMismatch::VpcNotVhd {
                declared: declared.to_owned(),
            })
        }
        _ => {
            return Err(FormatMismatch::UnknownDeclared {
                declared: declared.to_owned(),
            })
        }
    };

    if expected == detected {
        Ok(())
    } else {
        Err(FormatMismatch::Mismatch {
            declared: declared.to_owned(),
            detected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detected(format: DiskFormat) -> Inspection {
        Inspection::safe(format, 1024)
    }

    #[test]
    fn raw_declared_qcow2_detected_is_rejected() {
        let error = check_declared("raw", &detected(DiskFormat::Qcow2)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "image is a qcow2 file but disk_format is raw; upload it with --disk-format qcow2"
        );
    }

    #[test]
    fn matching_formats_are_accepted() {
        let cases = [
            ("raw", DiskFormat::Raw),
            ("qcow2", DiskFormat::Qcow2),
            ("vmdk", DiskFormat::Vmdk),
            ("vhd", DiskFormat::Vhd),
            ("vhdx", DiskFormat::Vhdx),
            ("vdi", DiskFormat::Vdi),
            ("iso", DiskFormat::Iso),
            ("ploop", DiskFormat::Ploop),
        ];
        for (declared, format) in cases {
            assert_eq!(
                check_declared(declared, &detected(format)),
                Ok(()),
                "{declared}"
            );
        }
    }

    #[test]
    fn amazon_formats_require_raw_content() {
        for declared in ["ami", "ari", "aki"] {
            assert_eq!(check_declared(declared, &detected(DiskFormat::Raw)), Ok(()));
            assert!(check_declared(declared, &detected(DiskFormat::Qcow2)).is_err());
        }
    }

    #[test]
    fn iso_declared_accepts_raw_but_not_qcow2() {
        assert_eq!(check_declared("iso", &detected(DiskFormat::Raw)), Ok(()));
        assert!(check_declared("iso", &detected(DiskFormat::Qcow2)).is_err());
    }

    #[test]
    fn raw_declared_iso_detected_is_rejected() {
        assert!(check_declared("raw", &detected(DiskFormat::Iso)).is_err());
    }

    #[test]
    fn qed_is_rejected_whatever_is_declared() {
        for declared in ["raw", "qcow2", "qed"] {
            let error = check_declared(declared, &detected(DiskFormat::Qed)).unwrap_err();
            assert!(
                matches!(error, FormatMismatch::UnsupportedFormat { .. }),
                "{declared}"
            );
        }
    }

    #[test]
    fn vpc_declared_points_to_vhd() {
        let error = check_declared("vpc", &detected(DiskFormat::Vhd)).unwrap_err();
        assert!(error.to_string().contains("use vhd"), "{error}");
    }

    #[test]
    fn unknown_declared_lists_known_formats() {
        let error = check_declared("QCOW2", &detected(DiskFormat::Qcow2)).unwrap_err();
        assert!(matches!(error, FormatMismatch::UnknownDeclared { .. }));
        assert!(error.to_string().contains("ploop"), "{error}");
    }
}
