//! Services on a temporary SQLite database for the unit tests of the
//! in-process adapters and the network agent.

use std::sync::Arc;

use oxstack_core::AuthContext;
use oxstack_network::{NetworkConfig, NetworkService};
use serde_json::json;

use crate::bootstrap_network::Api;

/// A network service on its own database, with an admin API client.
pub struct TestNetworks {
    pub dir: tempfile::TempDir,
    pub service: Arc<NetworkService>,
    pub admin: Api,
}

impl TestNetworks {
    pub async fn start(config: NetworkConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/test.db", dir.path().display());
        let store = oxstack_store::Store::connect(&url).await.unwrap();
        let service = Arc::new(
            NetworkService::open(store, config, "http://127.0.0.1:5000".into())
                .await
                .unwrap(),
        );
        let admin = Api::as_admin(&service, "admin-project");
        TestNetworks {
            dir,
            service,
            admin,
        }
    }

    /// Creates a network with one IPv4 subnet in `project` and returns
    /// the ids of both. `extra` adds attributes to the network.
    pub async fn network(
        &self,
        project: &str,
        name: &str,
        cidr: &str,
        extra: serde_json::Value,
    ) -> (String, String) {
        let mut body = json!({"name": name, "project_id": project});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        let network = self
            .admin
            .create("networks", "network", body)
            .await
            .unwrap();
        let subnet = json!({"network_id": network, "ip_version": 4, "cidr": cidr, "project_id": project,
                            "dns_nameservers": ["192.0.2.53"]});
        let subnet = self
            .admin
            .create("subnets", "subnet", subnet)
            .await
            .unwrap();
        (network, subnet)
    }
}

/// The token context of a member of `project`.
pub fn member_of(project: &str) -> AuthContext {
    AuthContext {
        user_id: format!("user-of-{project}"),
        project_id: Some(project.to_owned()),
        roles: vec!["member".to_owned(), "reader".to_owned()],
        ..AuthContext::default()
    }
}
