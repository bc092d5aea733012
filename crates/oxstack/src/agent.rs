//! This host's network agent report: what the local dataplane can bind
//! (bridge mappings, tunnel address), sent to the network service at start
//! and then as a heartbeat, so port binding and `openstack network agent
//! list` see the host alive with its real configuration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use oxstack_network::agents::AgentConfig;
use oxstack_network::NetworkService;

use crate::config::Config;

/// Interval between the agent's reports. The network service declares an
/// agent down after `agent_down_time` (75 s by default) without a report.
const REPORT_INTERVAL: Duration = Duration::from_secs(30);

/// Returns this host's physical network → bridge mappings: `[netagent]
/// bridge_mappings`, or public → br-ex when the config file leaves it out.
/// The agent report, the dataplane and `oxstack doctor` all read them here.
pub fn bridge_mappings(config: &Config) -> anyhow::Result<BTreeMap<String, String>> {
    let mut bridge_mappings = BTreeMap::new();
    for mapping in &config.netagent.bridge_mappings {
        let (physnet, bridge) = mapping
            .split_once(':')
            .filter(|(p, b)| !p.is_empty() && !b.is_empty())
            .with_context(|| {
                format!(
                    "invalid bridge mapping '{mapping}' in [netagent]; write it as physnet1:br-ex"
                )
            })?;
        bridge_mappings.insert(physnet.to_owned(), bridge.to_owned());
    }
    Ok(bridge_mappings)
}

/// Builds the report from `[netagent]`.
pub fn agent_config(config: &Config) -> anyhow::Result<AgentConfig> {
    let bridge_mappings = bridge_mappings(config)?;
    let tunneling_ip = match &config.netagent.tunneling_ip {
        Some(ip) => ip.clone(),
        // A single host needs no tunnel between hosts, so its own address serves.
        None => {
            let listen = config.listen()?.ip();
            if listen.is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                listen.to_string()
            }
        }
    };
    Ok(AgentConfig {
        bridge_mappings,
        interface_mappings: BTreeMap::new(),
        tunneling_ip: Some(tunneling_ip),
        tunnel_types: vec!["vxlan".to_owned()],
    })
}

/// The host name agents and bindings use: `[netagent] host`, else the
/// kernel's host name.
pub fn host_name(config: &Config) -> String {
    config.netagent.host.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
    })
}

/// Reports once, then keeps reporting in the background.
pub async fn start_reporting(
    networks: Arc<NetworkService>,
    host: String,
    report: AgentConfig,
) -> anyhow::Result<()> {
    networks
        .report_agent(&host, report.clone())
        .await
        .context("cannot register the network agent")?;
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(REPORT_INTERVAL);
        interval.tick().await;
        loop {
            interval.tick().await;
            if let Err(error) = networks.report_agent(&host, report.clone()).await {
                tracing::warn!(%host, %error, "network agent heartbeat failed; retrying");
            }
        }
    });
    Ok(())
}
