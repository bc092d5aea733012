//! The [`InstanceSpec`] a driver is asked to spawn, built from the server,
//! its image and its bound ports.

use std::collections::BTreeMap;

use oxstack_hypervisor::{ImageSource, InstanceSpec, Vif};

use super::fault;
use crate::external::{ImageInfo, PortInfo};
use crate::server::{Fault, Server};

const GIB: u64 = 1 << 30;

/// Checks that the image fits the flavor's root disk, as Nova checks it
/// again on the host: a root disk of 0 GB takes the image's size.
pub(crate) fn check_image_fits(server: &Server, image: &ImageInfo) -> Result<(), Fault> {
    let root_gb = u64::try_from(server.flavor.disk).unwrap_or(0);
    if root_gb == 0 {
        return Ok(());
    }
    let flavor_bytes = root_gb * GIB;
    let image_bytes = image.virtual_size.or(image.size).unwrap_or(0);
    if image_bytes > flavor_bytes {
        return Err(fault(
            400,
            format!(
                "Flavor's disk is too small for requested image. Flavor disk is {flavor_bytes} bytes, image is \
                 {image_bytes} bytes. Choose a flavor with a root disk of at least {} GB.",
                image_bytes.div_ceil(GIB)
            ),
            None,
        ));
    }
    if image.min_disk > root_gb {
        return Err(fault(
            400,
            format!(
                "Flavor's disk is too small for requested image. The image requires a root disk of at least {} \
                 GB (min_disk) and the flavor has {root_gb} GB.",
                image.min_disk
            ),
            None,
        ));
    }
    Ok(())
}

/// Builds the spec of `server` booting `image` with `ports` attached, and
/// the config drive's files when one is attached.
pub(crate) fn instance_spec(
    server: &Server,
    image: &ImageInfo,
    ports: &[PortInfo],
    config_drive: Option<BTreeMap<String, Vec<u8>>>,
) -> Result<InstanceSpec, Fault> {
    let Some(path) = image.path.clone() else {
        return Err(fault(
            500,
            format!(
                "Image {} has no file this compute host can read: it is not kept in the local image store. \
                 Upload the image again to this cloud's image service.",
                image.id
            ),
            None,
        ));
    };
    let vifs = ports
        .iter()
        .map(|port| Vif {
            port_id: port.id.clone(),
            network_id: port.network_id.clone(),
            mac: port.mac_address.clone(),
            mtu: port.mtu,
            tap: Vif::tap_name(&port.id),
        })
        .collect();
    Ok(InstanceSpec {
        uuid: server.id.clone(),
        name: server.name.clone(),
        vcpus: u32::try_from(server.flavor.vcpus).unwrap_or(1).max(1),
        memory_mb: u64::try_from(server.flavor.ram).unwrap_or(0),
        root_gb: u64::try_from(server.flavor.disk).unwrap_or(0),
        image: ImageSource {
            id: image.id.clone(),
            path,
            disk_format: image
                .disk_format
                .clone()
                .unwrap_or_else(|| "raw".to_owned()),
            properties: image.properties.clone(),
        },
        vifs,
        config_drive,
    })
}
