//! Image service: Glance API, image stores and disk image format inspection.

pub mod format;
