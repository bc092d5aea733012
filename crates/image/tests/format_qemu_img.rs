//! Format inspection of images written by the real `qemu-img`, checked
//! against what `qemu-img info` reports for the same files.
//!
//! These tests need `qemu-img` (Debian package qemu-utils) and, for the ISO
//! case, `genisoimage` or `xorriso`. They fail, not skip, when a tool is
//! missing, so that a machine without them cannot pass by testing nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use oxstack_image::format::{
    check_declared, inspect, verify, DiskFormat, FormatMismatch, InspectError, Inspection,
    Rejection, UnsafeReason,
};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

/// Runs a tool and returns its standard output, panicking with its standard
/// error when it fails or with an install hint when it is missing.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "failed to run {program} ({error}); these tests need qemu-img (apt-get install \
             qemu-utils) and genisoimage"
            )
        });
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("tool output is UTF-8")
}

fn qemu_img(args: &[&str]) {
    run("qemu-img", args);
}

/// Returns qemu-img's format name and virtual size for `path`, read as
/// `format` when given, probed otherwise.
fn qemu_info(path: &Path, format: Option<&str>) -> (String, u64) {
    let path = path.to_str().expect("temp paths are UTF-8");
    let mut args = vec!["info", "--output=json"];
    if let Some(format) = format {
        args.extend(["-f", format]);
    }
    args.push(path);
    let info: serde_json::Value = serde_json::from_str(&run("qemu-img", &args)).unwrap();
    let name = info["format"].as_str().unwrap().to_owned();
    (name, info["virtual-size"].as_u64().unwrap())
}

struct Workspace {
    dir: TempDir,
}

impl Workspace {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Creates an image with `qemu-img create -f FORMAT [ARGS] NAME SIZE`.
    fn create(&self, name: &str, format: &str, extra: &[&str], size: &str) -> PathBuf {
        let path = self.path(name);
        let mut args = vec!["create", "-q", "-f", format];
        args.extend(extra);
        args.extend([path.to_str().unwrap(), size]);
        qemu_img(&args);
        path
    }
}

/// Inspects `path` and checks format, safety and that the virtual size
/// matches `qemu-img info -f qemu_format`.
fn assert_safe(path: &Path, expected: DiskFormat, qemu_format: &str) -> Inspection {
    let inspection = inspect(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    assert_eq!(inspection.format, expected, "{}", path.display());
    assert_eq!(inspection.safety, Ok(()), "{}", path.display());
    let (_, qemu_size) = qemu_info(path, Some(qemu_format));
    assert_eq!(inspection.virtual_size, qemu_size, "{}", path.display());
    assert_eq!(check_declared(expected.as_str(), &inspection), Ok(()));
    inspection
}

#[test]
fn qcow2_images_are_safe_and_sized() {
    let work = Workspace::new();
    let cases: [(&str, &[&str], &str); 5] = [
        ("v3.qcow2", &[], "10G"),
        ("v2.qcow2", &["-o", "compat=0.10"], "3M"),
        ("small-clusters.qcow2", &["-o", "cluster_size=512"], "1M"),
        ("large-clusters.qcow2", &["-o", "cluster_size=2M"], "5M"),
        (
            "zstd.qcow2",
            &["-o", "compression_type=zstd,extended_l2=on"],
            "7M",
        ),
    ];
    for (name, extra, size) in cases {
        let path = work.create(name, "qcow2", extra, size);
        assert_safe(&path, DiskFormat::Qcow2, "qcow2");
        let (qemu_format, _) = qemu_info(&path, None);
        assert_eq!(qemu_format, "qcow2");
    }
}

#[test]
fn qcow2_with_backing_file_is_unsafe() {
    let work = Workspace::new();
    let base = work.create("base.raw", "raw", &[], "1M");
    let base_name = base.to_str().unwrap();
    let path = work.create(
        "overlay.qcow2",
        "qcow2",
        &["-b", base_name, "-F", "raw"],
        "1M",
    );

    let inspection = inspect(&path).unwrap();
    assert_eq!(inspection.format, DiskFormat::Qcow2);
    assert_eq!(
        inspection.safety,
        Err(UnsafeReason::Qcow2BackingFile {
            name: base_name.to_owned()
        })
    );
    let error = verify(&path, "qcow2").unwrap_err();
    assert!(
        error.to_string().contains("qemu-img convert -O qcow2"),
        "{error}"
    );
}

#[test]
fn qcow2_with_external_data_file_is_unsafe() {
    let work = Workspace::new();
    for (name, raw) in [("data.qcow2", "off"), ("data-raw.qcow2", "on")] {
        let data = work.path(&format!("{name}.data"));
        let option = format!("data_file={},data_file_raw={raw}", data.display());
        let path = work.create(name, "qcow2", &["-o", &option], "1M");

        let inspection = inspect(&path).unwrap();
        assert_eq!(
            inspection.safety,
            Err(UnsafeReason::Qcow2ExternalDataFile {
                name: Some(data.display().to_string())
            }),
            "{name}"
        );
    }
}

#[test]
fn qcow2_declared_raw_is_rejected() {
    let work = Workspace::new();
    let path = work.create("disk.qcow2", "qcow2", &[], "1M");
    let error = verify(&path, "raw").unwrap_err();
    assert!(matches!(
        error,
        Rejection::Mismatch(FormatMismatch::Mismatch { .. })
    ));
    assert_eq!(
        error.to_string(),
        "image is a qcow2 file but disk_format is raw; upload it with --disk-format qcow2"
    );
}

#[test]
fn raw_image_has_file_size() {
    let work = Workspace::new();
    let path = work.create("disk.raw", "raw", &[], "3M");
    let inspection = assert_safe(&path, DiskFormat::Raw, "raw");
    assert_eq!(inspection.virtual_size, 3 * MIB);
    for declared in ["raw", "ami", "ari", "aki"] {
        assert_eq!(check_declared(declared, &inspection), Ok(()));
    }
}

#[test]
fn vmdk_single_file_images_are_safe() {
    let work = Workspace::new();
    let sparse = work.create("sparse.vmdk", "vmdk", &[], "10M");
    assert_safe(&sparse, DiskFormat::Vmdk, "vmdk");

    // Converting real data makes qemu write a streamOptimized footer.
    let raw = work.create("data.raw", "raw", &[], "4M");
    fs::write(&raw, vec![0x5A; 4 * MIB as usize]).unwrap();
    let stream = work.path("stream.vmdk");
    qemu_img(&[
        "convert",
        "-O",
        "vmdk",
        "-o",
        "subformat=streamOptimized",
        raw.to_str().unwrap(),
        stream.to_str().unwrap(),
    ]);
    assert_safe(&stream, DiskFormat::Vmdk, "vmdk");
}

#[test]
fn vmdk_descriptor_files_are_unsafe() {
    let work = Workspace::new();
    for subformat in [
        "monolithicFlat",
        "twoGbMaxExtentSparse",
        "twoGbMaxExtentFlat",
    ] {
        let name = format!("{subformat}.vmdk");
        let option = format!("subformat={subformat}");
        let path = work.create(&name, "vmdk", &["-o", &option], "1M");

        let inspection = inspect(&path).unwrap();
        assert_eq!(inspection.format, DiskFormat::Vmdk, "{subformat}");
        assert_eq!(inspection.virtual_size, MIB, "{subformat}");
        let Err(UnsafeReason::VmdkDescriptorFile {
            extent: Some(extent),
        }) = &inspection.safety
        else {
            panic!(
                "{subformat}: expected an unsafe descriptor, got {:?}",
                inspection.safety
            );
        };
        assert!(
            extent.starts_with(subformat),
            "{subformat}: extent {extent}"
        );
    }
}

#[test]
fn vmdk_with_parent_is_unsafe() {
    let work = Workspace::new();
    let base = work.create("base.vmdk", "vmdk", &[], "1M");
    let base_name = base.to_str().unwrap();
    let path = work.create("child.vmdk", "vmdk", &["-b", base_name, "-F", "vmdk"], "1M");
    let inspection = inspect(&path).unwrap();
    assert_eq!(
        inspection.safety,
        Err(UnsafeReason::VmdkParent {
            name: base_name.to_owned()
        })
    );
}

#[test]
fn vhd_images_are_safe_and_sized() {
    let work = Workspace::new();
    let dynamic = work.create("dynamic.vhd", "vpc", &[], "10M");
    assert_safe(&dynamic, DiskFormat::Vhd, "vpc");

    // qemu does not probe fixed VHDs (it reads them as raw), so the size is
    // compared with an explicit `-f vpc`.
    let fixed = work.create("fixed.vhd", "vpc", &["-o", "subformat=fixed"], "10M");
    assert_safe(&fixed, DiskFormat::Vhd, "vpc");
    assert!(matches!(
        check_declared("raw", &inspect(&fixed).unwrap()),
        Err(FormatMismatch::Mismatch { .. })
    ));
}

#[test]
fn vhdx_images_are_safe_and_sized() {
    let work = Workspace::new();
    let dynamic = work.create("dynamic.vhdx", "vhdx", &[], "10M");
    assert_safe(&dynamic, DiskFormat::Vhdx, "vhdx");
    let fixed = work.create("fixed.vhdx", "vhdx", &["-o", "subformat=fixed"], "3M");
    assert_safe(&fixed, DiskFormat::Vhdx, "vhdx");
}

#[test]
fn vdi_images_are_safe_and_sized() {
    let work = Workspace::new();
    let dynamic = work.create("dynamic.vdi", "vdi", &[], "10M");
    assert_safe(&dynamic, DiskFormat::Vdi, "vdi");
    let fixed = work.create("fixed.vdi", "vdi", &["-o", "static=on"], "2M");
    assert_safe(&fixed, DiskFormat::Vdi, "vdi");
}

#[test]
fn parallels_image_is_ploop() {
    let work = Workspace::new();
    let path = work.create("root.hds", "parallels", &[], "8M");
    assert_safe(&path, DiskFormat::Ploop, "parallels");
}

#[test]
fn qed_images_are_never_accepted() {
    let work = Workspace::new();
    let plain = work.create("plain.qed", "qed", &[], "1M");
    let inspection = inspect(&plain).unwrap();
    assert_eq!(inspection.format, DiskFormat::Qed);
    assert_eq!(inspection.virtual_size, MIB);
    assert!(matches!(
        check_declared("raw", &inspection),
        Err(FormatMismatch::UnsupportedFormat { .. })
    ));

    let base = work.create("base.raw", "raw", &[], "1M");
    let base_name = base.to_str().unwrap();
    let overlay = work.create("overlay.qed", "qed", &["-b", base_name, "-F", "raw"], "1M");
    assert_eq!(
        inspect(&overlay).unwrap().safety,
        Err(UnsafeReason::QedBackingFile {
            name: base_name.to_owned()
        })
    );
}

/// Writes a small ISO 9660 image with genisoimage, or xorriso if that is
/// what is installed.
fn make_iso(work: &Workspace) -> PathBuf {
    let content = work.path("content");
    fs::create_dir(&content).unwrap();
    fs::write(content.join("README.TXT"), b"hello").unwrap();
    let iso = work.path("disc.iso");
    let (iso_name, content_name) = (iso.to_str().unwrap(), content.to_str().unwrap());
    let genisoimage = Command::new("genisoimage").arg("-version").output().is_ok();
    if genisoimage {
        run("genisoimage", &["-quiet", "-o", iso_name, content_name]);
    } else {
        run(
            "xorriso",
            &["-as", "mkisofs", "-quiet", "-o", iso_name, content_name],
        );
    }
    iso
}

#[test]
fn iso_image_is_sized_from_volume_descriptor() {
    let work = Workspace::new();
    let iso = make_iso(&work);
    let inspection = inspect(&iso).unwrap();
    assert_eq!(inspection.format, DiskFormat::Iso);
    assert_eq!(inspection.safety, Ok(()));
    assert_eq!(inspection.virtual_size, fs::metadata(&iso).unwrap().len());
    assert_eq!(check_declared("iso", &inspection), Ok(()));
    assert!(check_declared("raw", &inspection).is_err());
}

#[test]
fn qcow2_with_iso_descriptor_is_ambiguous() {
    let work = Workspace::new();
    let iso = fs::read(make_iso(&work)).unwrap();
    let path = work.create("polyglot.qcow2", "qcow2", &[], "1M");

    // The first 64 KiB cluster of a fresh qcow2 is mostly zeros, so an ISO
    // volume descriptor fits at byte 0x8000 without breaking the qcow2.
    let mut bytes = fs::read(&path).unwrap();
    bytes[0x8000..0x9000].copy_from_slice(&iso[0x8000..0x9000]);
    fs::write(&path, &bytes).unwrap();
    assert_eq!(qemu_info(&path, None).0, "qcow2");

    let error = inspect(&path).unwrap_err();
    let InspectError::Ambiguous { formats } = &error else {
        panic!("expected Ambiguous, got {error:?}");
    };
    assert_eq!(formats, &[DiskFormat::Qcow2, DiskFormat::Iso]);
    assert!(matches!(verify(&path, "iso"), Err(Rejection::Inspect(_))));
}
