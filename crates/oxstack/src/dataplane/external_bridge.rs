//! The host bridge of the default external network, as devstack sets it
//! up: br-ex, mapped to the physical network `public`, holding the gateway
//! address of `public-subnet` (172.24.4.1/24). The host then has a route to
//! 172.24.4.0/24 through br-ex, where the routers' `qg-` ports reply to ARP
//! for their floating IPs. br-ex has no uplink, so SNAT reaches nothing beyond
//! this host.
//!
//! A marker file in the agent's state directory records whether this data
//! directory created the bridge on the host and which addresses it gives
//! it. A restart after a reboot or a teardown restores both, and `oxstack
//! netagent teardown` deletes the bridge. A br-ex that this data directory
//! did not create belongs to someone else and is used as it is.

use std::path::{Path, PathBuf};

use anyhow::Context;
use oxstack_netagent::ipnet::Ipv4Net;
use oxstack_netagent::Dataplane;
use serde::{Deserialize, Serialize};

/// The marker file inside the agent's state directory (`DATA_DIR/netagent`).
const MARKER_FILE: &str = "external-bridge.json";

/// MTU of the bridge: Neutron's default for a flat network.
const BRIDGE_MTU: u32 = 1500;

/// The bridge this data directory manages and the addresses it gives it.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Marker {
    bridge: String,
    /// Addresses with prefix length, such as `172.24.4.1/24`.
    addresses: Vec<String>,
    /// True while the bridge on the host is the one this data directory
    /// created. Teardown deletes it and sets this to false.
    created: bool,
}

impl Marker {
    fn addresses(&self) -> anyhow::Result<Vec<Ipv4Net>> {
        self.addresses
            .iter()
            .map(|text| {
                text.parse()
                    .with_context(|| format!("invalid address '{text}' in {MARKER_FILE}"))
            })
            .collect()
    }
}

fn marker_path(state_dir: &Path) -> PathBuf {
    state_dir.join(MARKER_FILE)
}

fn read_marker(state_dir: &Path) -> anyhow::Result<Option<Marker>> {
    let path = marker_path(state_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "{} is corrupt; delete it, and delete the bridge it names if this cloud created it",
                path.display()
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_marker(state_dir: &Path, marker: &Marker) -> anyhow::Result<()> {
    let path = marker_path(state_dir);
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    let text = serde_json::to_vec_pretty(marker)?;
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, &path).with_context(|| format!("cannot write {}", path.display()))
}

/// Makes sure `bridge` exists and is up, and has `gateway` (when given) and
/// every address given to it earlier, unless the bridge exists and this
/// data directory did not create it: then it is left untouched. Returns
/// whether this data directory owns the bridge.
pub async fn ensure(
    dataplane: &dyn Dataplane,
    state_dir: &Path,
    bridge: &str,
    gateway: Option<Ipv4Net>,
) -> anyhow::Result<bool> {
    let marker = read_marker(state_dir)?.filter(|marker| marker.bridge == bridge);
    let exists = dataplane
        .link_exists(bridge)
        .await
        .with_context(|| format!("cannot look up bridge {bridge}"))?;
    let created_here = marker.as_ref().is_some_and(|marker| marker.created);
    if exists && !created_here {
        tracing::info!(
            bridge,
            gateway = ?gateway.map(|g| g.to_string()),
            "bridge exists and was not created by this cloud, so it is used as it is; give it an address on the \
             external subnet for the host to reach floating IPs"
        );
        return Ok(false);
    }

    let mut marker = marker.unwrap_or_else(|| Marker {
        bridge: bridge.to_owned(),
        ..Marker::default()
    });
    marker.created = true;
    let mut addresses = marker.addresses()?;
    if let Some(gateway) = gateway.filter(|gateway| !addresses.contains(gateway)) {
        addresses.push(gateway);
        marker.addresses.push(gateway.to_string());
    }
    // The marker is written before the bridge is created, so a failure in
    // between still leaves teardown a record of what to delete.
    write_marker(state_dir, &marker)?;
    dataplane
        .ensure_bridge(bridge, BRIDGE_MTU)
        .await
        .with_context(|| format!("cannot create bridge {bridge} for the external network"))?;
    for address in &addresses {
        dataplane
            .ensure_address(bridge, *address)
            .await
            .with_context(|| format!("cannot give bridge {bridge} the address {address}"))?;
    }
    if !exists {
        tracing::info!(bridge, addresses = ?marker.addresses, "created the bridge of the default external network");
    }
    Ok(true)
}

/// Deletes the bridge this data directory created, if any. The marker
/// keeps its addresses, so the next `oxstack up` gives them to the bridge
/// it creates again. Returns the name of the deleted bridge.
pub async fn remove(dataplane: &dyn Dataplane, state_dir: &Path) -> anyhow::Result<Option<String>> {
    let Some(mut marker) = read_marker(state_dir)?.filter(|marker| marker.created) else {
        return Ok(None);
    };
    dataplane
        .delete_link(&marker.bridge)
        .await
        .with_context(|| format!("cannot delete bridge {}", marker.bridge))?;
    marker.created = false;
    write_marker(state_dir, &marker)?;
    tracing::info!(bridge = %marker.bridge, "deleted the bridge of the default external network");
    Ok(Some(marker.bridge))
}

#[cfg(test)]
mod tests {
    use oxstack_netagent::{DataplaneOp, RecordingDataplane};

    use super::*;

    fn gateway() -> Ipv4Net {
        "172.24.4.1/24".parse().unwrap()
    }

    #[tokio::test]
    async fn missing_bridge_is_created_with_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let dataplane = RecordingDataplane::new();

        assert!(ensure(&dataplane, dir.path(), "br-ex", Some(gateway()))
            .await
            .unwrap());
        assert_eq!(
            dataplane.take_ops(),
            vec![
                DataplaneOp::CreateBridge("br-ex".into()),
                DataplaneOp::SetAddress {
                    link: "br-ex".into(),
                    address: gateway()
                },
            ]
        );
        assert_eq!(dataplane.addresses_of("br-ex"), vec![gateway()]);
        assert!(marker_path(dir.path()).is_file());
    }

    #[tokio::test]
    async fn restart_restores_recorded_address() {
        let dir = tempfile::tempdir().unwrap();
        let first_boot = RecordingDataplane::new();
        ensure(&first_boot, dir.path(), "br-ex", Some(gateway()))
            .await
            .unwrap();

        // A reboot removed the bridge, and a restart creates nothing new in
        // the network service, so no gateway is passed in.
        let after_reboot = RecordingDataplane::new();
        assert!(ensure(&after_reboot, dir.path(), "br-ex", None)
            .await
            .unwrap());
        assert_eq!(after_reboot.addresses_of("br-ex"), vec![gateway()]);

        // Running again changes nothing.
        after_reboot.take_ops();
        ensure(&after_reboot, dir.path(), "br-ex", None)
            .await
            .unwrap();
        assert_eq!(after_reboot.take_ops(), vec![]);
    }

    #[tokio::test]
    async fn foreign_bridge_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let dataplane = RecordingDataplane::new();
        dataplane.ensure_bridge("br-ex", 1500).await.unwrap();
        dataplane.take_ops();

        assert!(!ensure(&dataplane, dir.path(), "br-ex", Some(gateway()))
            .await
            .unwrap());
        assert_eq!(dataplane.take_ops(), vec![]);
        assert!(dataplane.addresses_of("br-ex").is_empty());
        assert!(!marker_path(dir.path()).exists());

        assert_eq!(remove(&dataplane, dir.path()).await.unwrap(), None);
        assert_eq!(
            dataplane.host_links(),
            vec!["br-ex".to_owned()],
            "teardown must keep a bridge it did not create"
        );
    }

    #[tokio::test]
    async fn remove_deletes_own_bridge_once() {
        let dir = tempfile::tempdir().unwrap();
        let dataplane = RecordingDataplane::new();
        ensure(&dataplane, dir.path(), "br-ex", Some(gateway()))
            .await
            .unwrap();
        dataplane.take_ops();

        assert_eq!(
            remove(&dataplane, dir.path()).await.unwrap(),
            Some("br-ex".to_owned())
        );
        assert_eq!(
            dataplane.take_ops(),
            vec![DataplaneOp::DeleteLink("br-ex".into())]
        );
        assert_eq!(remove(&dataplane, dir.path()).await.unwrap(), None);
        assert_eq!(dataplane.take_ops(), vec![]);
    }

    #[tokio::test]
    async fn start_after_teardown_restores_address() {
        let dir = tempfile::tempdir().unwrap();
        let dataplane = RecordingDataplane::new();
        ensure(&dataplane, dir.path(), "br-ex", Some(gateway()))
            .await
            .unwrap();
        remove(&dataplane, dir.path()).await.unwrap();

        assert!(ensure(&dataplane, dir.path(), "br-ex", None).await.unwrap());
        assert_eq!(dataplane.addresses_of("br-ex"), vec![gateway()]);
    }

    #[tokio::test]
    async fn bridge_made_elsewhere_after_teardown_is_foreign() {
        let dir = tempfile::tempdir().unwrap();
        let dataplane = RecordingDataplane::new();
        ensure(&dataplane, dir.path(), "br-ex", Some(gateway()))
            .await
            .unwrap();
        remove(&dataplane, dir.path()).await.unwrap();
        // Another cloud or the operator creates br-ex in the meantime.
        dataplane.ensure_bridge("br-ex", 1500).await.unwrap();
        dataplane.take_ops();

        assert!(!ensure(&dataplane, dir.path(), "br-ex", Some(gateway()))
            .await
            .unwrap());
        assert_eq!(dataplane.take_ops(), vec![]);
        assert_eq!(remove(&dataplane, dir.path()).await.unwrap(), None);
        assert_eq!(dataplane.host_links(), vec!["br-ex".to_owned()]);
    }

    #[tokio::test]
    async fn failed_creation_still_leaves_marker() {
        let dir = tempfile::tempdir().unwrap();
        let dataplane = RecordingDataplane::new();
        dataplane.fail_on("ensure_bridge");

        let error = ensure(&dataplane, dir.path(), "br-ex", Some(gateway()))
            .await
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("cannot create bridge br-ex"),
            "{error:#}"
        );
        assert!(
            marker_path(dir.path()).is_file(),
            "teardown needs the marker to clean up"
        );
    }
}
