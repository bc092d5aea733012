//! Network agents: the dataplane agent of each host reports its
//! configuration at start and then as a heartbeat. Port binding reads the
//! report to decide whether a host can plug a port into its network.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::now;
use crate::NetworkService;

/// The `agent_type` Neutron gives its Linux bridge agent, whose dataplane
/// (one bridge per network, VXLAN or physical uplinks) ours follows.
pub const LINUX_BRIDGE_AGENT: &str = "Linux bridge agent";
/// The `binary` of the agent's reports.
pub const AGENT_BINARY: &str = "oxstack-netagent";

/// The configuration of a host as its agent reports it (Neutron's
/// `configurations`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentConfig {
    /// Physical network name to the host bridge that reaches it
    /// (`physnet1` → `br-ex`), for flat and VLAN networks.
    pub bridge_mappings: BTreeMap<String, String>,
    /// Physical network name to a host interface, for flat and VLAN
    /// networks that the agent bridges itself.
    pub interface_mappings: BTreeMap<String, String>,
    /// The host's address for VXLAN traffic; VXLAN networks need one.
    pub tunneling_ip: Option<String>,
    /// Tunnel types the agent carries (`vxlan`).
    pub tunnel_types: Vec<String>,
}

impl AgentConfig {
    /// Returns whether the host reaches `physical_network` through a bridge
    /// or an interface.
    pub fn maps(&self, physical_network: &str) -> bool {
        self.bridge_mappings.contains_key(physical_network)
            || self.interface_mappings.contains_key(physical_network)
    }
}

/// A host's network agent as stored.
#[derive(Clone, Debug)]
pub struct Agent {
    pub id: String,
    pub host: String,
    pub agent_type: String,
    pub binary: String,
    pub topic: String,
    pub admin_state_up: bool,
    pub configurations: AgentConfig,
    /// Unix seconds of the agent's start, its last report and its first report.
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub created_at: i64,
}

impl Agent {
    /// Returns whether the agent reported within `down_time` seconds of `now`.
    pub fn is_alive(&self, now: i64, down_time: i64) -> bool {
        now - self.heartbeat_at <= down_time
    }
}

impl NetworkService {
    /// Records a report of the network agent on `host`. The agent calls it
    /// at start and then as its heartbeat, well within `agent_down_time`
    /// (Neutron's agents report every 30 s against a 75 s down time).
    pub async fn report_agent(&self, host: &str, config: AgentConfig) -> Result<(), sqlx::Error> {
        self.record_agent_report(host, config, now()).await
    }

    /// Records a report of the agent on `host` made at `reported_at` (unix
    /// seconds). [`report_agent`](Self::report_agent) passes the current
    /// time; replaying a stored report, or a test of an agent gone quiet,
    /// passes an earlier one.
    pub async fn record_agent_report(
        &self,
        host: &str,
        config: AgentConfig,
        reported_at: i64,
    ) -> Result<(), sqlx::Error> {
        let known = crate::db::agents::get_by_host(self.pool(), host).await?;
        let is_new = known.is_none();
        let agent = Agent {
            id: known.as_ref().map_or_else(
                || uuid::Uuid::new_v4().to_string(),
                |agent| agent.id.clone(),
            ),
            host: host.to_owned(),
            agent_type: LINUX_BRIDGE_AGENT.to_owned(),
            binary: AGENT_BINARY.to_owned(),
            topic: "N/A".to_owned(),
            admin_state_up: true,
            // A changed configuration means the agent restarted.
            started_at: match &known {
                Some(agent) if agent.configurations == config => agent.started_at,
                _ => reported_at,
            },
            configurations: config,
            heartbeat_at: reported_at,
            created_at: known.as_ref().map_or(reported_at, |agent| agent.created_at),
        };
        crate::db::agents::upsert(self.pool(), &agent).await?;
        if is_new {
            tracing::info!(host, agent_id = %agent.id, "network agent registered");
        }
        Ok(())
    }
}
