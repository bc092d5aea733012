//! Errors of image inspection, and the reasons an image is unsafe to use.
//!
//! Messages are written for the user who uploaded the image. Each names the
//! problem and the fix.

use std::io;
use std::path::PathBuf;

use super::DiskFormat;

/// Advice appended to every message about an image that refers to other files.
const FLATTEN_ADVICE: &str = "flatten it into a single self-contained file with \
     `qemu-img convert -O qcow2 IN OUT` and upload the result";

/// Failure to inspect an image.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("failed to open image file {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("image path {} is not a regular file", path.display())]
    NotRegularFile { path: PathBuf },

    #[error("failed to read image data at byte {offset}")]
    Read {
        offset: u64,
        #[source]
        source: io::Error,
    },

    #[error(
        "image has a {format} signature but is not a valid {format} file: {reason}; \
         check that the upload is complete and the file is not corrupt"
    )]
    Malformed { format: DiskFormat, reason: String },

    #[error(
        "image is valid as more than one disk format ({}); such files are rejected \
         because they can be used to get past format checks; convert it with \
         `qemu-img convert -O qcow2 IN OUT` and upload the result",
        list_formats(formats)
    )]
    Ambiguous { formats: Vec<DiskFormat> },
}

impl InspectError {
    /// Returns whether the uploaded image is at fault (an HTTP 400), as
    /// opposed to a failure of the server's own storage.
    pub fn is_invalid_image(&self) -> bool {
        matches!(self, Self::Malformed { .. } | Self::Ambiguous { .. })
    }
}

fn list_formats(formats: &[DiskFormat]) -> String {
    let names: Vec<&str> = formats.iter().map(|format| format.as_str()).collect();
    names.join(", ")
}

/// Why an image that was recognised must not be used: it would make QEMU
/// open files other than the image itself, or it uses features that cannot
/// be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeReason {
    #[error(
        "qcow2 image has a backing file ({name}); images with backing files are not \
         accepted because they can read files on the host; {FLATTEN_ADVICE}"
    )]
    Qcow2BackingFile { name: String },

    #[error(
        "qcow2 image uses an external data file{}; images with external data files \
         are not accepted because they can read files on the host; {FLATTEN_ADVICE}",
        name.as_ref().map(|name| format!(" ({name})")).unwrap_or_default()
    )]
    Qcow2ExternalDataFile { name: Option<String> },

    #[error(
        "qcow2 image sets incompatible feature bits {bits:#x} that this service does \
         not know, so it cannot check the image; {FLATTEN_ADVICE}"
    )]
    Qcow2UnknownFeatures { bits: u64 },

    #[error(
        "qed image has a backing file ({name}); images with backing files are not \
         accepted because they can read files on the host; {FLATTEN_ADVICE}"
    )]
    QedBackingFile { name: String },

    #[error(
        "vmdk file is a text descriptor that refers to other files{}; descriptor files \
         are not accepted because they can read files on the host; {FLATTEN_ADVICE}",
        extent.as_ref().map(|name| format!(" (first extent: {name})")).unwrap_or_default()
    )]
    VmdkDescriptorFile { extent: Option<String> },

    #[error(
        "vmdk image has createType {create_type}; only monolithicSparse and \
         streamOptimized images are accepted because other types refer to other \
         files; {FLATTEN_ADVICE}"
    )]
    VmdkCreateType { create_type: String },

    #[error(
        "vmdk image {detail}; only a single SPARSE extent stored in the image file \
         itself is accepted, because other extents can read files on the host; \
         {FLATTEN_ADVICE}"
    )]
    VmdkExtent { detail: String },

    #[error(
        "vmdk image names a parent disk ({name}); images with parents are not \
         accepted because they can read files on the host; {FLATTEN_ADVICE}"
    )]
    VmdkParent { name: String },

    #[error("vmdk image {detail}, which is not accepted; {FLATTEN_ADVICE}")]
    VmdkUnsupported { detail: String },

    #[error(
        "vhd image is a differencing disk, which reads its data from a parent file; \
         {FLATTEN_ADVICE}"
    )]
    VhdDifferencing,

    #[error("vhd image has parent locator entries that name other files; {FLATTEN_ADVICE}")]
    VhdParentLocator,

    #[error(
        "vhdx image is a differencing disk ({detail}), which reads its data from a \
         parent file; {FLATTEN_ADVICE}"
    )]
    VhdxParent { detail: &'static str },

    #[error(
        "vdi image has type {image_type} ({name}), which reads its data from a parent \
         image; {FLATTEN_ADVICE}",
        name = vdi_type_name(*image_type)
    )]
    VdiDifferencing { image_type: u32 },
}

fn vdi_type_name(image_type: u32) -> &'static str {
    match image_type {
        3 => "undo",
        4 => "differencing",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backing_file_message_names_file_and_fix() {
        let reason = UnsafeReason::Qcow2BackingFile {
            name: "/etc/shadow".to_owned(),
        };
        let message = reason.to_string();
        assert!(message.contains("(/etc/shadow)"), "{message}");
        assert!(
            message.contains("qemu-img convert -O qcow2 IN OUT"),
            "{message}"
        );
    }

    #[test]
    fn data_file_message_without_name_has_no_parentheses() {
        let message = UnsafeReason::Qcow2ExternalDataFile { name: None }.to_string();
        assert!(
            message.starts_with("qcow2 image uses an external data file;"),
            "{message}"
        );
    }

    #[test]
    fn ambiguous_lists_formats() {
        let error = InspectError::Ambiguous {
            formats: vec![DiskFormat::Qcow2, DiskFormat::Iso],
        };
        assert!(error.to_string().contains("(qcow2, iso)"), "{error}");
        assert!(error.is_invalid_image());
    }
}
