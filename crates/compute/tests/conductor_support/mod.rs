//! A compute service on fake backends, with compute hosts registered, for
//! the conductor and scheduler tests: servers are stored directly and
//! driven by the conductor's entry points, without the HTTP API.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oxstack_compute::external::{NetworkApi, PortRequest};
use oxstack_compute::host::HostOptions;
use oxstack_compute::server::{store, FlavorSnapshot, NicRequest, Server, TaskState, VmState};
use oxstack_compute::testing::{backends, TestBackends};
use oxstack_compute::{ComputeConfig, ComputeService};
use oxstack_hypervisor::{
    Driver, DriverError, FakeDriver, HostResources, InstanceInfo, InstanceSpec, PowerState,
};
use oxstack_placement::ConsumerId;

pub const PROJECT: &str = "project-1";
pub const USER: &str = "user-1";
pub const IMAGE: &str = "11111111-2222-3333-4444-555555555555";
pub const NETWORK: &str = "22222222-3333-4444-5555-666666666666";

/// The service, its fakes and the database folder.
pub struct Rig {
    pub service: Arc<ComputeService>,
    pub fakes: TestBackends,
    _dir: tempfile::TempDir,
}

/// Returns a host of `memory_mb` MiB, 4 vCPUs and 20 GB of disk.
pub fn small_host(memory_mb: u64) -> HostResources {
    HostResources {
        vcpus: 4,
        memory_mb,
        disk_gb: 20,
        hypervisor_type: "fake".to_owned(),
        hypervisor_version: 1000,
        virt_type: "fake".to_owned(),
    }
}

/// Starts a service whose local host `node1` runs `driver` (a default fake
/// when `None`), with an image and a network, and registers the host.
pub async fn rig_with(config: ComputeConfig, driver: Option<Arc<dyn Driver>>) -> Rig {
    let dir = tempfile::tempdir().expect("data dir");
    let url = format!("sqlite://{}/compute.db", dir.path().display());
    rig_on(dir, &url, config, driver).await
}

/// Starts like [`rig_with`] on a new PostgreSQL database, created through
/// the server named by `OXSTACK_TEST_POSTGRES_URL`; `None` when the
/// variable is not set.
pub async fn rig_postgres(config: ComputeConfig, driver: Option<Arc<dyn Driver>>) -> Option<Rig> {
    let admin_url = std::env::var("OXSTACK_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let Some(admin_url) = admin_url else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must set OXSTACK_TEST_POSTGRES_URL so the PostgreSQL tests run"
        );
        eprintln!(
            "OXSTACK_TEST_POSTGRES_URL is not set; PostgreSQL test not run (tests/run sets it)"
        );
        return None;
    };
    let name = format!("oxstack_test_{}", uuid::Uuid::new_v4().simple());
    let admin = oxstack_store::Store::connect(&admin_url)
        .await
        .expect("PostgreSQL server");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin.pool())
        .await
        .expect("create database");
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(base, _)| base);
    let dir = tempfile::tempdir().expect("data dir");
    Some(rig_on(dir, &format!("{base}/{name}"), config, driver).await)
}

async fn rig_on(
    dir: tempfile::TempDir,
    url: &str,
    config: ComputeConfig,
    driver: Option<Arc<dyn Driver>>,
) -> Rig {
    let store = oxstack_store::Store::connect(url).await.expect("database");
    let fakes = backends(store.clone(), "node1").await;
    let mut chosen = fakes.backends.clone();
    if let Some(driver) = driver {
        chosen.driver = driver;
    }
    let service = ComputeService::open(store, config, "http://127.0.0.1:5000".into(), chosen)
        .await
        .expect("compute service");
    let service = Arc::new(service);
    service.start_host().await.expect("host registers");
    fakes.images.add(IMAGE, "cirros");
    fakes.networks.add(NETWORK, "private", PROJECT, false);
    Rig {
        service,
        fakes,
        _dir: dir,
    }
}

pub async fn rig() -> Rig {
    rig_with(ComputeConfig::default(), None).await
}

/// Registers another fake host in zone `zone`.
pub async fn add_host(rig: &Rig, name: &str, zone: &str, driver: Arc<dyn Driver>) {
    let options = HostOptions {
        availability_zone: zone.to_owned(),
        cpu_arch: "x86_64".to_owned(),
        host_ip: "127.0.0.2".to_owned(),
    };
    rig.service
        .add_host(name, driver, options)
        .await
        .expect("host registers");
}

pub fn flavor(vcpus: i64, ram: i64, disk: i64) -> FlavorSnapshot {
    FlavorSnapshot {
        id: "42".to_owned(),
        name: "m1.nano".to_owned(),
        vcpus,
        ram,
        disk,
        ephemeral: 0,
        swap: 0,
        extra_specs: BTreeMap::new(),
    }
}

/// Returns a server as the API stores it: `building`/`scheduling`, one NIC on the
/// test network, booting the test image with `m1.nano`.
pub fn new_server(name: &str) -> Server {
    let now = chrono::Utc::now().timestamp();
    Server {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        project_id: PROJECT.to_owned(),
        user_id: USER.to_owned(),
        image_id: IMAGE.to_owned(),
        flavor: flavor(1, 128, 1),
        vm_state: VmState::Building,
        task_state: Some(TaskState::Scheduling),
        power_state: 0,
        host: None,
        node: None,
        availability_zone: None,
        requested_availability_zone: None,
        key_name: None,
        key_data: None,
        user_data: None,
        metadata: BTreeMap::new(),
        config_drive: false,
        access_ipv4: String::new(),
        access_ipv6: String::new(),
        security_group_ids: vec!["default".to_owned()],
        security_group_names: vec!["default".to_owned()],
        requested_networks: vec![NicRequest {
            network_id: Some(NETWORK.to_owned()),
            port_id: None,
            fixed_ip: None,
        }],
        server_group: None,
        created_ports: Vec::new(),
        ports: Vec::new(),
        locked: false,
        locked_reason: None,
        locked_by: None,
        description: None,
        hostname: name.to_owned(),
        tags: Vec::new(),
        fault: None,
        progress: 0,
        reservation_id: "r-test".to_owned(),
        launch_index: 0,
        launched_at: None,
        terminated_at: None,
        created_at: now,
        updated_at: now,
        deleted: false,
        password: String::new(),
        revision: 0,
    }
}

/// Stores `server` and starts its build.
pub async fn build(rig: &Rig, server: &Server) {
    store::insert(rig.service.pool(), server)
        .await
        .expect("server stored");
    rig.service
        .start_build(server.id.clone(), format!("req-{}", server.id));
}

/// Polls server `id` (deleted or not) until `done` holds, for at most 10 s.
pub async fn wait_for(rig: &Rig, id: &str, what: &str, done: impl Fn(&Server) -> bool) -> Server {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let server = store::get_any(rig.service.pool(), id)
            .await
            .expect("read")
            .expect("server exists");
        if done(&server) {
            return server;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server {id} never became {what}: vm_state {:?}, task_state {:?}, fault {:?}",
            server.vm_state,
            server.task_state,
            server.fault
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the server's build ended, in `ACTIVE` or `ERROR`.
pub async fn settled(rig: &Rig, id: &str) -> Server {
    wait_for(rig, id, "settled", |s| {
        matches!(s.vm_state, VmState::Active | VmState::Error) && s.task_state.is_none()
    })
    .await
}

/// Returns whether placement has allocations for `server_id`.
pub async fn has_claim(rig: &Rig, server_id: &str) -> bool {
    rig.fakes
        .backends
        .placement
        .consumer_allocations(&ConsumerId(server_id.to_owned()))
        .await
        .expect("placement reads")
        .is_some_and(|view| !view.allocations.is_empty())
}

/// Creates a port on the test network as a user does, with no device.
pub async fn user_port(rig: &Rig) -> String {
    let request = PortRequest {
        project_id: PROJECT.to_owned(),
        network_id: NETWORK.to_owned(),
        fixed_ip: None,
        security_group_ids: Vec::new(),
        device_id: String::new(),
        device_owner: String::new(),
    };
    rig.fakes
        .networks
        .create_port(&request)
        .await
        .expect("port created")
        .id
}

/// Sets the server's task state as the API does before an action or a
/// delete.
pub async fn set_task(rig: &Rig, id: &str, task: TaskState) {
    let written = store::modify(rig.service.pool(), id, |server| {
        server.task_state = Some(task);
        Ok::<(), ()>(())
    })
    .await
    .expect("server written");
    assert!(
        matches!(written, store::Modified::Saved(_)),
        "server {id} not found"
    );
}

/// A driver whose spawns fail with a QEMU-like message.
pub struct FailingDriver {
    pub inner: FakeDriver,
}

/// A driver whose spawn waits until `release` is notified, and counts
/// spawns, so a test can act while a build is in the driver.
pub struct SlowDriver {
    pub inner: FakeDriver,
    pub release: tokio::sync::Notify,
    pub spawning: AtomicUsize,
}

impl SlowDriver {
    pub fn new() -> Self {
        SlowDriver {
            inner: FakeDriver::new(),
            release: tokio::sync::Notify::new(),
            spawning: AtomicUsize::new(0),
        }
    }

    pub async fn wait_spawning(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.spawning.load(Ordering::SeqCst) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the build never reached the driver"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A fake host whose reported resources a test can change.
pub struct ResizableDriver {
    pub inner: FakeDriver,
    pub resources: std::sync::Mutex<HostResources>,
}

macro_rules! delegate_driver {
    ($type:ty, $spawn:item) => {
        delegate_driver!($type, $spawn, async fn host_resources(&self) -> Result<HostResources, DriverError> {
            self.inner.host_resources().await
        });
    };
    ($type:ty, $spawn:item, $host_resources:item) => {
        #[async_trait::async_trait]
        impl Driver for $type {
            fn name(&self) -> &'static str {
                "fake"
            }
            $host_resources
            $spawn
            async fn destroy(&self, uuid: &str) -> Result<(), DriverError> {
                self.inner.destroy(uuid).await
            }
            async fn power_off(&self, uuid: &str, timeout: Duration) -> Result<(), DriverError> {
                self.inner.power_off(uuid, timeout).await
            }
            async fn power_on(&self, uuid: &str) -> Result<(), DriverError> {
                self.inner.power_on(uuid).await
            }
            async fn reboot(&self, uuid: &str, hard: bool) -> Result<(), DriverError> {
                self.inner.reboot(uuid, hard).await
            }
            async fn pause(&self, uuid: &str) -> Result<(), DriverError> {
                self.inner.pause(uuid).await
            }
            async fn unpause(&self, uuid: &str) -> Result<(), DriverError> {
                self.inner.unpause(uuid).await
            }
            async fn suspend(&self, uuid: &str) -> Result<(), DriverError> {
                self.inner.suspend(uuid).await
            }
            async fn resume(&self, uuid: &str) -> Result<(), DriverError> {
                self.inner.resume(uuid).await
            }
            async fn info(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
                self.inner.info(uuid).await
            }
            async fn list(&self) -> Result<Vec<(String, PowerState)>, DriverError> {
                self.inner.list().await
            }
            async fn console_output(&self, uuid: &str, length: Option<usize>) -> Result<String, DriverError> {
                self.inner.console_output(uuid, length).await
            }
        }
    };
}

delegate_driver!(
    FailingDriver,
    async fn spawn(&self, spec: &InstanceSpec) -> Result<(), DriverError> {
        // Start it, then fail as QEMU does after creating its disk, so the
        // test checks that the conductor destroys what the driver left.
        self.inner.spawn(spec).await?;
        Err(DriverError::Failed(
            "qemu-system-x86_64 exited with status 1: could not open disk image".to_owned(),
        ))
    }
);

delegate_driver!(
    SlowDriver,
    async fn spawn(&self, spec: &InstanceSpec) -> Result<(), DriverError> {
        self.spawning.fetch_add(1, Ordering::SeqCst);
        self.release.notified().await;
        self.inner.spawn(spec).await
    }
);

delegate_driver!(
    ResizableDriver,
    async fn spawn(&self, spec: &InstanceSpec) -> Result<(), DriverError> {
        self.inner.spawn(spec).await
    },
    async fn host_resources(&self) -> Result<HostResources, DriverError> {
        Ok(self.resources.lock().unwrap().clone())
    }
);
