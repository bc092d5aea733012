//! Instance metadata: the config drive's files and the metadata API over a
//! compute service with fake networks.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use oxstack_compute::external::{FixedIp, PortInfo};
use oxstack_compute::metadata::{
    config_drive_files, metadata_router_with_secret, proxy_signature, InstanceMetadata,
    OPENSTACK_VERSIONS,
};
use oxstack_compute::server::{store, FlavorSnapshot, Server, VmState};
use oxstack_compute::testing::{backends, TestBackends};
use oxstack_compute::{ComputeConfig, ComputeService};
use serde_json::{json, Value};
use tower::ServiceExt;

const SERVER_ID: &str = "6f1f7e0a-3c5b-4d2e-9a8b-1c2d3e4f5a6b";
const PORT_ID: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
const NETWORK_ID: &str = "9e8d7c6b-5a49-4838-a726-150f4e3d2c1b";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHZfYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo0 demo@example";
const USER_DATA: &[u8] = b"#!/bin/sh\necho hello from user data\n";

fn server() -> Server {
    Server {
        id: SERVER_ID.to_owned(),
        name: "Web Server 1".to_owned(),
        project_id: "project-1".to_owned(),
        user_id: "user-1".to_owned(),
        image_id: "c0ffee00-1234-5678-9abc-def012345678".to_owned(),
        flavor: FlavorSnapshot {
            id: "1".to_owned(),
            name: "m1.nano".to_owned(),
            vcpus: 1,
            ram: 128,
            disk: 1,
            ephemeral: 0,
            swap: 0,
            extra_specs: BTreeMap::new(),
        },
        vm_state: VmState::Active,
        task_state: None,
        power_state: 1,
        host: Some("node1".to_owned()),
        node: Some("node1".to_owned()),
        availability_zone: Some("zone-a".to_owned()),
        requested_availability_zone: None,
        key_name: Some("mykey".to_owned()),
        key_data: Some(KEY.to_owned()),
        user_data: Some(base64::engine::general_purpose::STANDARD.encode(USER_DATA)),
        metadata: BTreeMap::from([("role".to_owned(), "web".to_owned())]),
        config_drive: true,
        access_ipv4: String::new(),
        access_ipv6: String::new(),
        security_group_ids: vec!["sg-1".to_owned()],
        security_group_names: vec!["web".to_owned()],
        requested_networks: Vec::new(),
        server_group: None,
        created_ports: vec![PORT_ID.to_owned()],
        ports: vec![PORT_ID.to_owned()],
        locked: false,
        locked_reason: None,
        locked_by: None,
        description: None,
        hostname: "web-server-1".to_owned(),
        tags: Vec::new(),
        fault: None,
        progress: 0,
        reservation_id: "r-abcdef12".to_owned(),
        launch_index: 0,
        launched_at: Some(1_700_000_000),
        terminated_at: None,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
        deleted: false,
        password: String::new(),
        revision: 0,
    }
}

/// Returns a bound port with the address 10.0.0.5 on a subnet with a
/// gateway, two DNS servers and a host route, and DHCP if `enable_dhcp`.
fn port(enable_dhcp: bool) -> PortInfo {
    PortInfo {
        id: PORT_ID.to_owned(),
        network_id: NETWORK_ID.to_owned(),
        network_name: "private".to_owned(),
        project_id: "project-1".to_owned(),
        mac_address: "fa:16:3e:12:34:56".to_owned(),
        fixed_ips: vec![FixedIp {
            subnet_id: "subnet-1".to_owned(),
            ip_address: "10.0.0.5".to_owned(),
            ip_version: 4,
            cidr: "10.0.0.0/24".to_owned(),
            gateway_ip: Some("10.0.0.1".to_owned()),
            dns_nameservers: vec!["192.0.2.53".to_owned(), "192.0.2.54".to_owned()],
            host_routes: vec![("172.16.0.0/12".to_owned(), "10.0.0.254".to_owned())],
            enable_dhcp,
        }],
        floating_ips: vec!["203.0.113.10".to_owned()],
        mtu: 1450,
        device_id: SERVER_ID.to_owned(),
        device_owner: "compute:zone-a".to_owned(),
        status: "ACTIVE".to_owned(),
        security_group_ids: vec!["sg-1".to_owned()],
        binding_host: "node1".to_owned(),
        vif_type: "bridge".to_owned(),
    }
}

fn json_file(files: &BTreeMap<String, Vec<u8>>, path: &str) -> Value {
    let bytes = files
        .get(path)
        .unwrap_or_else(|| panic!("config drive has no {path}"));
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

#[test]
fn meta_data_json_fields() {
    let files = config_drive_files(&server(), &[port(true)], "http://127.0.0.1:5000");
    let meta = json_file(&files, "openstack/latest/meta_data.json");

    assert_eq!(meta["uuid"], SERVER_ID);
    assert_eq!(meta["name"], "Web Server 1");
    assert_eq!(meta["hostname"], "web-server-1.novalocal");
    assert_eq!(meta["launch_index"], 0);
    assert_eq!(meta["availability_zone"], "zone-a");
    assert_eq!(meta["project_id"], "project-1");
    assert_eq!(meta["meta"], json!({"role": "web"}));
    assert_eq!(meta["devices"], json!([]));
    assert!(meta.get("files").is_none());
    let seed = base64::engine::general_purpose::STANDARD
        .decode(
            meta["random_seed"]
                .as_str()
                .expect("random_seed is a string"),
        )
        .expect("random_seed is base64");
    assert_eq!(seed.len(), 512);
}

#[test]
fn meta_data_keys() {
    let files = config_drive_files(&server(), &[port(true)], "http://127.0.0.1:5000");
    let meta = json_file(&files, "openstack/latest/meta_data.json");

    assert_eq!(meta["public_keys"], json!({"mykey": KEY}));
    assert_eq!(
        meta["keys"],
        json!([{"name": "mykey", "type": "ssh", "data": KEY}])
    );

    let mut keyless = server();
    keyless.key_name = None;
    keyless.key_data = None;
    let files = config_drive_files(&keyless, &[], "http://127.0.0.1:5000");
    let meta = json_file(&files, "openstack/latest/meta_data.json");
    assert!(meta.get("public_keys").is_none());
    assert!(meta.get("keys").is_none());
}

#[test]
fn meta_data_older_versions() {
    let files = config_drive_files(&server(), &[port(true)], "http://127.0.0.1:5000");

    let folsom = json_file(&files, "openstack/2012-08-10/meta_data.json");
    assert!(folsom.get("random_seed").is_none());
    assert!(folsom.get("project_id").is_none());
    assert_eq!(folsom["uuid"], SERVER_ID);

    let havana = json_file(&files, "openstack/2013-10-17/meta_data.json");
    assert!(havana.get("random_seed").is_some());
    assert!(havana.get("project_id").is_none());
    assert!(havana.get("devices").is_none());
}

#[test]
fn config_drive_layout() {
    let files = config_drive_files(&server(), &[port(true)], "http://127.0.0.1:5000");

    for version in OPENSTACK_VERSIONS.iter().chain(&["latest"]) {
        assert!(
            files.contains_key(&format!("openstack/{version}/meta_data.json")),
            "{version}"
        );
        assert_eq!(
            files[&format!("openstack/{version}/user_data")],
            USER_DATA,
            "{version}"
        );
    }
    assert!(!files.contains_key("openstack/2012-08-10/vendor_data.json"));
    assert!(!files.contains_key("openstack/2013-10-17/network_data.json"));
    assert!(!files.contains_key("openstack/2015-10-15/vendor_data2.json"));
    assert_eq!(
        json_file(&files, "openstack/2013-10-17/vendor_data.json"),
        json!({})
    );
    assert_eq!(
        json_file(&files, "openstack/2018-08-27/vendor_data2.json"),
        json!({})
    );
    assert!(files.contains_key("openstack/2015-10-15/network_data.json"));
    assert!(files.keys().all(|path| !path.ends_with("/password")));
    assert!(files.keys().all(|path| !path.starts_with('/')));

    assert_eq!(files["ec2/latest/user-data"], USER_DATA);
    assert_eq!(files["ec2/2009-04-04/user-data"], USER_DATA);
    assert!(!files.contains_key("ec2/2008-09-01/meta-data.json"));
}

#[test]
fn config_drive_without_user_data() {
    let mut plain = server();
    plain.user_data = None;
    let files = config_drive_files(&plain, &[port(true)], "http://127.0.0.1:5000");

    assert!(files.contains_key("openstack/latest/meta_data.json"));
    assert!(files.keys().all(|path| !path.ends_with("user_data")));
    assert!(files.keys().all(|path| !path.ends_with("user-data")));
}

#[test]
fn config_drive_deterministic_but_seed() {
    let strip_seed = |files: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        files
            .into_iter()
            .map(|(path, bytes)| {
                if !path.ends_with("meta_data.json") {
                    return (path, bytes);
                }
                let mut meta: Value = serde_json::from_slice(&bytes).unwrap();
                meta.as_object_mut().unwrap().remove("random_seed");
                (path, serde_json::to_vec(&meta).unwrap())
            })
            .collect()
    };
    let first = config_drive_files(&server(), &[port(true)], "http://127.0.0.1:5000");
    let second = config_drive_files(&server(), &[port(true)], "http://127.0.0.1:5000");

    assert_ne!(
        first["openstack/latest/meta_data.json"],
        second["openstack/latest/meta_data.json"]
    );
    assert_eq!(strip_seed(first), strip_seed(second));
}

#[test]
fn network_data_static_subnet() {
    let files = config_drive_files(&server(), &[port(false)], "http://127.0.0.1:5000");
    let network = json_file(&files, "openstack/latest/network_data.json");

    assert_eq!(
        network["links"],
        json!([{
            "id": "tap0a1b2c3d-4e",
            "vif_id": PORT_ID,
            "type": "bridge",
            "mtu": 1450,
            "ethernet_mac_address": "fa:16:3e:12:34:56",
        }])
    );
    let dns = json!([
        {"type": "dns", "address": "192.0.2.53"},
        {"type": "dns", "address": "192.0.2.54"},
    ]);
    assert_eq!(
        network["networks"],
        json!([{
            "id": "network0",
            "type": "ipv4",
            "link": "tap0a1b2c3d-4e",
            "ip_address": "10.0.0.5",
            "netmask": "255.255.255.0",
            "routes": [
                {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
                {"network": "172.16.0.0", "netmask": "255.240.0.0", "gateway": "10.0.0.254"},
            ],
            "network_id": NETWORK_ID,
            "services": dns,
        }])
    );
    assert_eq!(network["services"], dns);
}

#[test]
fn network_data_dhcp_subnet() {
    let files = config_drive_files(&server(), &[port(true)], "http://127.0.0.1:5000");
    let network = json_file(&files, "openstack/latest/network_data.json");

    assert_eq!(
        network["networks"],
        json!([{"id": "network0", "type": "ipv4_dhcp", "link": "tap0a1b2c3d-4e", "network_id": NETWORK_ID}])
    );
    assert_eq!(network["services"].as_array().map(Vec::len), Some(2));
}

#[test]
fn network_data_dual_stack_and_unbound() {
    let mut first = port(false);
    first.fixed_ips.push(FixedIp {
        subnet_id: "subnet-6".to_owned(),
        ip_address: "2001:db8::5".to_owned(),
        ip_version: 6,
        cidr: "2001:db8::/64".to_owned(),
        gateway_ip: Some("2001:db8::1".to_owned()),
        dns_nameservers: vec!["192.0.2.53".to_owned()],
        host_routes: Vec::new(),
        enable_dhcp: false,
    });
    let mut second = port(true);
    second.id = "ffffeeee-dddd-cccc-bbbb-aaaa99998888".to_owned();
    second.vif_type = "unbound".to_owned();
    second.mtu = 0;
    let files = config_drive_files(&server(), &[first, second], "http://127.0.0.1:5000");
    let network = json_file(&files, "openstack/latest/network_data.json");

    let v6 = &network["networks"][1];
    assert_eq!(v6["id"], "network1");
    assert_eq!(v6["type"], "ipv6");
    assert_eq!(v6["netmask"], "ffff:ffff:ffff:ffff::");
    assert_eq!(
        v6["routes"][0],
        json!({"network": "::", "netmask": "::", "gateway": "2001:db8::1"})
    );
    assert_eq!(network["networks"][2]["id"], "network2");
    assert_eq!(network["networks"][2]["link"], "tapffffeeee-dd");
    assert_eq!(network["links"][1]["type"], "phy");
    assert_eq!(network["links"][1]["mtu"], Value::Null);
    // 192.0.2.53 is on both subnets and listed once.
    assert_eq!(network["services"].as_array().map(Vec::len), Some(2));
}

#[test]
fn network_data_without_ports() {
    let files = config_drive_files(&server(), &[], "http://127.0.0.1:5000");
    assert_eq!(
        json_file(&files, "openstack/latest/network_data.json"),
        json!({})
    );
}

#[test]
fn ec2_meta_data_json() {
    let files = config_drive_files(&server(), &[port(true)], "http://127.0.0.1:5000");
    let ec2 = json_file(&files, "ec2/latest/meta-data.json");

    assert_eq!(ec2["instance-id"], "i-6f1f7e0a");
    assert_eq!(ec2["ami-id"], "ami-c0ffee00");
    assert_eq!(ec2["hostname"], "web-server-1.novalocal");
    assert_eq!(ec2["local-hostname"], "web-server-1.novalocal");
    assert_eq!(ec2["local-ipv4"], "10.0.0.5");
    assert_eq!(ec2["public-ipv4"], "203.0.113.10");
    assert_eq!(ec2["instance-type"], "m1.nano");
    assert_eq!(ec2["reservation-id"], "r-abcdef12");
    assert_eq!(ec2["security-groups"], json!(["web"]));
    assert_eq!(ec2["placement"], json!({"availability-zone": "zone-a"}));
    assert_eq!(ec2["public-keys"], json!({"0": {"openssh-key": KEY}}));
    assert_eq!(json_file(&files, "ec2/2009-04-04/meta-data.json"), ec2);
}

#[test]
fn invalid_user_data_left_out() {
    let mut broken = server();
    broken.user_data = Some("not base64 !!".to_owned());
    let ports = [port(true)];
    let metadata = InstanceMetadata::new(&broken, &ports);

    assert_eq!(metadata.user_data(), None);
    assert!(metadata.lookup("/openstack/latest/user_data").is_none());
}

// The metadata API, over a compute service whose fake network service has
// the server's port.

struct MetadataApi {
    _data_dir: tempfile::TempDir,
    fakes: TestBackends,
    router: axum::Router,
}

impl MetadataApi {
    async fn start(server: &Server) -> Self {
        Self::start_with_secret(server, None).await
    }

    async fn start_with_secret(server: &Server, shared_secret: Option<&str>) -> Self {
        let data_dir = tempfile::tempdir().expect("data dir");
        let url = format!("sqlite://{}/compute.db", data_dir.path().display());
        let store = oxstack_store::Store::connect(&url).await.expect("database");
        let fakes = backends(store.clone(), "node1").await;
        let service = ComputeService::open(
            store,
            ComputeConfig::default(),
            "http://127.0.0.1:5000".into(),
            fakes.backends.clone(),
        )
        .await
        .expect("compute service");
        store::insert(service.pool(), server)
            .await
            .expect("insert server");
        fakes.networks.ports.lock().unwrap().push(port(true));
        let router =
            metadata_router_with_secret(Arc::new(service), shared_secret.map(str::to_owned));
        MetadataApi {
            _data_dir: data_dir,
            fakes,
            router,
        }
    }

    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String, String) {
        let mut request = Request::builder().uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .expect("response");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            content_type,
            String::from_utf8(bytes.to_vec()).expect("UTF-8 body"),
        )
    }

    /// GET `path` as the guest at 10.0.0.5, through a DHCP namespace proxy.
    async fn get(&self, path: &str) -> (StatusCode, String, String) {
        self.get_with(
            path,
            &[
                ("x-forwarded-for", "10.0.0.5"),
                ("x-neutron-network-id", NETWORK_ID),
            ],
        )
        .await
    }
}

#[tokio::test]
async fn api_openstack_meta_data() {
    let api = MetadataApi::start(&server()).await;

    let (status, content_type, body) = api.get("/openstack/latest/meta_data.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "application/json");
    let meta: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(meta["uuid"], SERVER_ID);
    assert_eq!(meta["hostname"], "web-server-1.novalocal");
    assert_eq!(meta["public_keys"]["mykey"], KEY);

    let (status, _, body) = api.get("/openstack/2013-10-17/meta_data.json").await;
    assert_eq!(status, StatusCode::OK);
    let meta: Value = serde_json::from_str(&body).expect("JSON");
    assert!(meta.get("project_id").is_none());
}

#[tokio::test]
async fn api_openstack_listings() {
    let api = MetadataApi::start(&server()).await;

    let (status, content_type, body) = api.get("/openstack").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let versions: Vec<&str> = body.lines().collect();
    assert_eq!(versions.first(), Some(&"2012-08-10"));
    assert_eq!(versions.last(), Some(&"latest"));
    assert!(versions.contains(&"2018-08-27"));

    let (status, _, body) = api.get("/openstack/latest/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json"
    );

    let (status, _, body) = api.get("/openstack/2012-08-10").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "meta_data.json\nuser_data");
}

#[tokio::test]
async fn api_openstack_files() {
    let api = MetadataApi::start(&server()).await;

    let (status, _, body) = api.get("/openstack/latest/user_data").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_bytes(), USER_DATA);

    let (status, content_type, body) = api.get("/openstack/latest/network_data.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    let network: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        network["links"][0]["ethernet_mac_address"],
        "fa:16:3e:12:34:56"
    );

    for path in [
        "/openstack/latest/vendor_data.json",
        "/openstack/2018-08-27/vendor_data2.json",
    ] {
        let (status, _, body) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, "{}", "{path}");
    }

    let (status, _, body) = api.get("/openstack/latest/password").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "");
}

#[tokio::test]
async fn api_unknown_paths() {
    let api = MetadataApi::start(&server()).await;

    for path in [
        "/openstack/2099-01-01/meta_data.json",
        "/openstack/latest/nothing.json",
        "/openstack/2013-10-17/network_data.json",
        "/latest/meta-data/nothing",
        "/latest/meta-data/hostname/extra",
        "/2000-01-01/meta-data/",
    ] {
        let (status, _, _) = api.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn api_no_user_data() {
    let mut plain = server();
    plain.user_data = None;
    let api = MetadataApi::start(&plain).await;

    let (status, _, _) = api.get("/openstack/latest/user_data").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = api.get("/latest/user-data").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, body) = api.get("/latest").await;
    assert_eq!(body, "meta-data/");
}

#[tokio::test]
async fn api_ec2_paths() {
    let api = MetadataApi::start(&server()).await;

    let cases = [
        ("/latest/meta-data/instance-id", "i-6f1f7e0a"),
        ("/latest/meta-data/hostname", "web-server-1.novalocal"),
        ("/latest/meta-data/local-hostname", "web-server-1.novalocal"),
        ("/latest/meta-data/local-ipv4", "10.0.0.5"),
        ("/latest/meta-data/public-ipv4", "203.0.113.10"),
        ("/latest/meta-data/public-keys/", "0=mykey"),
        ("/latest/meta-data/public-keys/0", "openssh-key"),
        ("/latest/meta-data/public-keys/0/openssh-key", KEY),
        ("/latest/meta-data/placement/availability-zone", "zone-a"),
        ("/latest/meta-data/ami-launch-index", "0"),
        ("/latest/meta-data/security-groups", "web"),
        ("/2009-04-04/meta-data/instance-id", "i-6f1f7e0a"),
        ("/2009-04-04/meta-data/public-keys/0/openssh-key", KEY),
        ("/latest", "meta-data/\nuser-data"),
    ];
    for (path, expected) in cases {
        let (status, content_type, body) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(
            content_type.starts_with("text/plain"),
            "{path}: {content_type}"
        );
        assert_eq!(body, expected, "{path}");
    }

    let (_, _, body) = api.get("/latest/user-data").await;
    assert_eq!(body.as_bytes(), USER_DATA);
    let (_, _, body) = api.get("/2009-04-04/user-data").await;
    assert_eq!(body.as_bytes(), USER_DATA);
}

#[tokio::test]
async fn api_ec2_listing() {
    let api = MetadataApi::start(&server()).await;

    let (status, _, body) = api.get("/latest/meta-data/").await;
    assert_eq!(status, StatusCode::OK);
    let entries: Vec<&str> = body.lines().collect();
    for expected in [
        "ami-id",
        "hostname",
        "instance-id",
        "local-hostname",
        "local-ipv4",
        "placement/",
        "public-ipv4",
        "public-keys/",
        "security-groups",
    ] {
        assert!(
            entries.contains(&expected),
            "{expected} missing from {entries:?}"
        );
    }
    let mut sorted = entries.clone();
    sorted.sort();
    assert_eq!(entries, sorted);

    let (_, _, without_slash) = api.get("/latest/meta-data").await;
    assert_eq!(without_slash, body);
}

#[tokio::test]
async fn api_ec2_old_version() {
    let api = MetadataApi::start(&server()).await;

    let (status, _, body) = api.get("/1.0/meta-data/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.lines().any(|line| line == "local-hostname"), "{body}");
    assert!(!body.lines().any(|line| line == "placement/"), "{body}");
}

#[tokio::test]
async fn api_root_versions() {
    let api = MetadataApi::start(&server()).await;

    // The version list needs no identification.
    let (status, _, body) = api.get_with("/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let versions: Vec<&str> = body.lines().collect();
    assert_eq!(versions.first(), Some(&"1.0"));
    assert!(versions.contains(&"2009-04-04"));
    assert_eq!(versions.last(), Some(&"latest"));
}

#[tokio::test]
async fn api_unknown_address() {
    let api = MetadataApi::start(&server()).await;

    let headers = [
        ("x-forwarded-for", "10.0.0.99"),
        ("x-neutron-network-id", NETWORK_ID),
    ];
    let (status, content_type, body) = api
        .get_with("/openstack/latest/meta_data.json", &headers)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(body.contains("10.0.0.99"), "{body}");

    // The right address on another network is another instance.
    let headers = [
        ("x-forwarded-for", "10.0.0.5"),
        ("x-neutron-network-id", "other-network"),
    ];
    let (status, _, _) = api
        .get_with("/openstack/latest/meta_data.json", &headers)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_deleted_server() {
    let mut deleted = server();
    deleted.deleted = true;
    let api = MetadataApi::start(&deleted).await;

    let (status, _, _) = api.get("/openstack/latest/meta_data.json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_missing_headers() {
    let api = MetadataApi::start(&server()).await;
    let path = "/openstack/latest/meta_data.json";

    let (status, _, body) = api
        .get_with(path, &[("x-neutron-network-id", NETWORK_ID)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("X-Forwarded-For"), "{body}");

    let (status, _, body) = api.get_with(path, &[("x-forwarded-for", "10.0.0.5")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("X-Neutron-Network-ID"), "{body}");

    let headers = [
        ("x-forwarded-for", "not-an-address"),
        ("x-neutron-network-id", NETWORK_ID),
    ];
    let (status, _, body) = api.get_with(path, &headers).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("not-an-address"), "{body}");
}

#[tokio::test]
async fn api_forwarded_for_list() {
    let api = MetadataApi::start(&server()).await;

    let headers = [
        ("x-forwarded-for", "10.0.0.5, 192.0.2.1"),
        ("x-neutron-network-id", NETWORK_ID),
    ];
    let (status, _, body) = api
        .get_with("/latest/meta-data/instance-id", &headers)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "i-6f1f7e0a");
}

#[tokio::test]
async fn api_router_proxy() {
    let api = MetadataApi::start(&server()).await;
    api.fakes.networks.routers.lock().unwrap().insert(
        "router-1".to_owned(),
        vec!["other-network".to_owned(), NETWORK_ID.to_owned()],
    );

    let headers = [
        ("x-forwarded-for", "10.0.0.5"),
        ("x-neutron-router-id", "router-1"),
    ];
    let (status, _, body) = api
        .get_with("/latest/meta-data/instance-id", &headers)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "i-6f1f7e0a");

    let headers = [
        ("x-forwarded-for", "10.0.0.5"),
        ("x-neutron-router-id", "router-2"),
    ];
    let (status, _, _) = api
        .get_with("/latest/meta-data/instance-id", &headers)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_rejects_post() {
    let api = MetadataApi::start(&server()).await;

    let request = Request::builder()
        .method("POST")
        .uri("/openstack/latest/password")
        .header("x-forwarded-for", "10.0.0.5")
        .header("x-neutron-network-id", NETWORK_ID)
        .body(Body::from("secret"))
        .unwrap();
    let response = api.router.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
}

#[test]
fn proxy_signature_known_values() {
    // RFC 4231, test case 2.
    assert_eq!(
        proxy_signature("Jefe", "what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // A key longer than SHA-256's 64-byte block is hashed first; the
    // expected value is from Python's `hmac.new(b"k" * 131, id, sha256)`.
    assert_eq!(
        proxy_signature(&"k".repeat(131), SERVER_ID),
        "59f1f780f6d6b02ee275ecb2902f30a95d499a87f0b1218a30f6c059246402c1"
    );
}

#[tokio::test]
async fn api_signed_request() {
    let api = MetadataApi::start_with_secret(&server(), Some("proxy-secret")).await;
    let signature = proxy_signature("proxy-secret", SERVER_ID);

    let headers = [
        ("x-instance-id", SERVER_ID),
        ("x-tenant-id", "project-1"),
        ("x-instance-id-signature", signature.as_str()),
    ];
    let (status, _, body) = api
        .get_with("/latest/meta-data/instance-id", &headers)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "i-6f1f7e0a");
    // The ports come from the network service, as for proxied requests.
    let (_, _, body) = api.get_with("/latest/meta-data/local-ipv4", &headers).await;
    assert_eq!(body, "10.0.0.5");
}

#[tokio::test]
async fn api_signed_request_rejected() {
    let api = MetadataApi::start_with_secret(&server(), Some("proxy-secret")).await;
    let path = "/openstack/latest/meta_data.json";
    let good = proxy_signature("proxy-secret", SERVER_ID);
    let wrong = proxy_signature("other-secret", SERVER_ID);

    let headers = [
        ("x-instance-id", SERVER_ID),
        ("x-tenant-id", "project-1"),
        ("x-instance-id-signature", wrong.as_str()),
    ];
    let (status, _, _) = api.get_with(path, &headers).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let headers = [
        ("x-instance-id", SERVER_ID),
        ("x-tenant-id", "project-2"),
        ("x-instance-id-signature", good.as_str()),
    ];
    let (status, _, _) = api.get_with(path, &headers).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let headers = [
        ("x-instance-id", SERVER_ID),
        ("x-instance-id-signature", good.as_str()),
    ];
    let (status, _, body) = api.get_with(path, &headers).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("X-Tenant-ID"), "{body}");

    let headers = [("x-instance-id", SERVER_ID), ("x-tenant-id", "project-1")];
    let (status, _, body) = api.get_with(path, &headers).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("X-Instance-ID-Signature"), "{body}");

    let unknown = "00000000-0000-0000-0000-000000000000";
    let signature = proxy_signature("proxy-secret", unknown);
    let headers = [
        ("x-instance-id", unknown),
        ("x-tenant-id", "project-1"),
        ("x-instance-id-signature", signature.as_str()),
    ];
    let (status, _, _) = api.get_with(path, &headers).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_signed_request_without_secret() {
    let api = MetadataApi::start(&server()).await;
    let signature = proxy_signature("", SERVER_ID);

    let headers = [
        ("x-instance-id", SERVER_ID),
        ("x-tenant-id", "project-1"),
        ("x-instance-id-signature", signature.as_str()),
    ];
    let (status, _, body) = api
        .get_with("/openstack/latest/meta_data.json", &headers)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("X-Forwarded-For"), "{body}");
}

/// Runs the test guest's JSON parser over `meta_data` and returns its
/// `PATH<TAB>VALUE` lines.
fn guest_flatten(meta_data: &[u8]) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tools/guest-image/rootfs/usr/lib/oxstack/json-flatten.awk"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("meta_data.json");
    std::fs::write(&input, meta_data).expect("write meta_data.json");
    // The guest runs busybox awk; a host without busybox uses its own awk.
    let output = std::process::Command::new("busybox")
        .args(["awk", "-f", script])
        .arg(&input)
        .output()
        .or_else(|_| {
            std::process::Command::new("awk")
                .arg("-f")
                .arg(script)
                .arg(&input)
                .output()
        })
        .expect("awk runs");
    assert!(
        output.status.success(),
        "json-flatten.awk failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[test]
fn guest_parser_reads_meta_data() {
    let files = config_drive_files(&server(), &[port(true)], "http://127.0.0.1:5000");
    let flat = guest_flatten(&files["openstack/latest/meta_data.json"]);
    let lines: Vec<&str> = flat.lines().collect();

    assert!(lines.contains(&"name\tWeb Server 1"), "{flat}");
    assert!(
        lines.contains(&"hostname\tweb-server-1.novalocal"),
        "{flat}"
    );
    assert!(
        lines.contains(&format!("public_keys/mykey\t{KEY}").as_str()),
        "{flat}"
    );
    assert!(lines.contains(&"keys/0/type\tssh"), "{flat}");
    assert!(
        lines.contains(&format!("keys/0/data\t{KEY}").as_str()),
        "{flat}"
    );
}
