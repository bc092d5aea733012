//! `GET /servers/{id}/diagnostics` (admin): what the host's driver reports
//! about the instance. Before 2.48 the body is a free-form map in the style
//! of Nova's libvirt driver (`cpu0_time`, `memory`, `vda_read`, …); from
//! 2.48 it is Nova's standard format.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::microversion::Microversion;
use oxstack_core::{ApiError, ErrorKind};
use oxstack_hypervisor::{Diagnostics, DriverError, PowerState};
use serde_json::{json, Map, Value};

use super::servers::{load_authorized, target};
use super::{ComputeState, Version};
use crate::policy::Caller;

pub fn routes() -> Router<ComputeState> {
    Router::new().route("/servers/{id}/diagnostics", get(show))
}

/// Nova's diagnostics `state` for a power state.
fn state_name(power: PowerState) -> &'static str {
    match power {
        PowerState::NoState => "pending",
        PowerState::Running => "running",
        PowerState::Paused => "paused",
        PowerState::Shutdown => "shutdown",
        PowerState::Crashed => "crashed",
        PowerState::Suspended => "suspended",
    }
}

/// Renders the 2.48 format. `driver` is an enum in Nova's API
/// (`libvirt`, `xenapi`, `vmwareapi`, `ironic`, `hyperv`).
/// NOTE: OxStack runs QEMU without libvirt but reports `libvirt`, the
/// member that describes a QEMU/KVM guest; Nova's fake driver does the same.
pub fn standard(diagnostics: &Diagnostics, config_drive: bool) -> Value {
    let cpus: Vec<Value> = diagnostics
        .cpus
        .iter()
        .map(|cpu| json!({"id": cpu.id, "time": cpu.time_ns, "utilisation": cpu.utilisation}))
        .collect();
    let nics: Vec<Value> = diagnostics
        .nics
        .iter()
        .map(|nic| {
            json!({
                "mac_address": nic.mac_address,
                "rx_octets": nic.rx_octets,
                "rx_errors": nic.rx_errors,
                "rx_drop": nic.rx_drop,
                "rx_packets": nic.rx_packets,
                "rx_rate": nic.rx_rate,
                "tx_octets": nic.tx_octets,
                "tx_errors": nic.tx_errors,
                "tx_drop": nic.tx_drop,
                "tx_packets": nic.tx_packets,
                "tx_rate": nic.tx_rate,
            })
        })
        .collect();
    let disks: Vec<Value> = diagnostics
        .disks
        .iter()
        .map(|disk| {
            json!({
                "read_bytes": disk.read_bytes,
                "read_requests": disk.read_requests,
                "write_bytes": disk.write_bytes,
                "write_requests": disk.write_requests,
                "errors_count": disk.errors_count,
            })
        })
        .collect();
    json!({
        "state": state_name(diagnostics.power_state),
        "driver": "libvirt",
        "hypervisor": diagnostics.hypervisor,
        "hypervisor_os": diagnostics.hypervisor_os,
        "uptime": diagnostics.uptime_secs,
        "config_drive": diagnostics.config_drive || config_drive,
        "num_cpus": cpus.len(),
        "num_nics": nics.len(),
        "num_disks": disks.len(),
        "memory_details": {
            "maximum": diagnostics.memory_max_mb,
            "used": diagnostics.memory_used_mb,
        },
        "cpu_details": cpus,
        "nic_details": nics,
        "disk_details": disks,
    })
}

/// Renders the pre-2.48 map: only the counters the driver reported, named
/// as libvirt names them (memory in KiB, disks `vda`, `vdb`, …, interfaces
/// `vnet0`, …).
pub fn legacy(diagnostics: &Diagnostics) -> Value {
    let mut body = Map::new();
    let mut put = |key: String, value: Option<u64>| {
        if let Some(value) = value {
            body.insert(key, json!(value));
        }
    };
    for cpu in &diagnostics.cpus {
        put(format!("cpu{}_time", cpu.id), cpu.time_ns);
    }
    put(
        "memory".to_owned(),
        diagnostics.memory_max_mb.map(|mb| mb * 1024),
    );
    put(
        "memory-actual".to_owned(),
        diagnostics.memory_max_mb.map(|mb| mb * 1024),
    );
    put(
        "memory-rss".to_owned(),
        diagnostics.memory_used_mb.map(|mb| mb * 1024),
    );
    for (index, disk) in diagnostics.disks.iter().enumerate() {
        let name = format!("vd{}", char::from(b'a' + (index % 26) as u8));
        put(format!("{name}_read"), disk.read_bytes);
        put(format!("{name}_read_req"), disk.read_requests);
        put(format!("{name}_write"), disk.write_bytes);
        put(format!("{name}_write_req"), disk.write_requests);
        put(format!("{name}_errors"), disk.errors_count);
    }
    for (index, nic) in diagnostics.nics.iter().enumerate() {
        let name = format!("vnet{index}");
        put(format!("{name}_rx"), nic.rx_octets);
        put(format!("{name}_rx_drop"), nic.rx_drop);
        put(format!("{name}_rx_errors"), nic.rx_errors);
        put(format!("{name}_rx_packets"), nic.rx_packets);
        put(format!("{name}_tx"), nic.tx_octets);
        put(format!("{name}_tx_drop"), nic.tx_drop);
        put(format!("{name}_tx_errors"), nic.tx_errors);
        put(format!("{name}_tx_packets"), nic.tx_packets);
    }
    Value::Object(body)
}

async fn show(
    State(state): State<ComputeState>,
    caller: Caller,
    Version(version): Version,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let server = load_authorized(
        &state,
        &caller,
        &id,
        "os_compute_api:os-server-diagnostics",
        target,
    )
    .await?;
    let not_ready =
        || ApiError::conflict(format!("Instance {id} is not ready yet: it has no host."));
    let host = server.host.as_deref().ok_or_else(not_ready)?;
    let Some(driver) = state.driver_for(host) else {
        return Err(ApiError::new(
            ErrorKind::NotImplemented,
            format!(
                "Diagnostics of instances on host {host} are not available from this API process."
            ),
        ));
    };
    let diagnostics = match driver.diagnostics(&id).await {
        Ok(diagnostics) => diagnostics,
        Err(DriverError::NotFound(_)) => return Err(not_ready()),
        Err(DriverError::Failed(message)) => {
            tracing::warn!(server_id = %id, host, error = %message, "reading diagnostics failed");
            return Err(ApiError::conflict(format!(
                "Diagnostics of instance {id} are not available: {message}"
            )));
        }
    };
    Ok(Json(render(&diagnostics, server.config_drive, version)))
}

fn render(diagnostics: &Diagnostics, config_drive: bool, version: Microversion) -> Value {
    if version.at_least(2, 48) {
        standard(diagnostics, config_drive)
    } else {
        legacy(diagnostics)
    }
}

#[cfg(test)]
mod tests {
    use oxstack_hypervisor::{CpuDiagnostics, DiskDiagnostics};

    use super::*;

    fn sample() -> Diagnostics {
        Diagnostics {
            power_state: PowerState::Running,
            memory_max_mb: Some(512),
            cpus: vec![CpuDiagnostics {
                id: 0,
                time_ns: Some(5),
                utilisation: None,
            }],
            disks: vec![DiskDiagnostics {
                read_bytes: Some(7),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn standard_format_counts() {
        let body = standard(&sample(), true);
        assert_eq!(body["state"], "running");
        assert_eq!(body["num_cpus"], 1);
        assert_eq!(body["num_disks"], 1);
        assert_eq!(body["num_nics"], 0);
        assert_eq!(body["memory_details"]["maximum"], 512);
        assert_eq!(body["memory_details"]["used"], Value::Null);
        assert_eq!(body["config_drive"], true);
    }

    #[test]
    fn legacy_format_keys() {
        let body = legacy(&sample());
        assert_eq!(body["cpu0_time"], 5);
        assert_eq!(body["memory"], 512 * 1024);
        assert_eq!(body["vda_read"], 7);
        assert!(
            body.get("vda_write").is_none(),
            "unreported counters are left out"
        );
    }
}
