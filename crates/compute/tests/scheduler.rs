//! The scheduler over several fake hosts: filters, their "No valid host"
//! messages, weighing, and claims that never over-commit a host.

mod conductor_support;

use std::sync::Arc;

use conductor_support::*;
use oxstack_compute::host::records;
use oxstack_compute::server::{store, VmState};
use oxstack_compute::ComputeConfig;
use oxstack_hypervisor::{Driver, FakeDriver};
use oxstack_placement::ProviderId;

/// Returns a config without RAM over-commit, so capacities in the tests
/// are plain to read.
fn exact_config() -> ComputeConfig {
    ComputeConfig {
        ram_allocation_ratio: 1.0,
        ..ComputeConfig::default()
    }
}

#[tokio::test]
async fn concurrent_builds_never_overcommit() {
    // 1024 MiB with 512 reserved leaves room for one 512 MiB server.
    let driver: Arc<dyn Driver> = Arc::new(FakeDriver::with_resources(small_host(1024)));
    let rig = rig_with(exact_config(), Some(driver)).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        let mut server = new_server(&format!("racer{n}"));
        server.flavor = flavor(1, 512, 1);
        ids.push(server.id.clone());
        build(&rig, &server).await;
    }
    let mut active = 0;
    for id in &ids {
        let server = settled(&rig, id).await;
        match server.vm_state {
            VmState::Active => active += 1,
            _ => {
                let message = server.fault.expect("fault").message;
                assert!(message.starts_with("No valid host was found."), "{message}");
            }
        }
    }
    assert_eq!(active, 1, "exactly one server fits");

    let node = records::node_by_host(rig.service.pool(), "node1")
        .await
        .unwrap()
        .unwrap();
    let (_, usage) = rig
        .fakes
        .backends
        .placement
        .provider_usages(&ProviderId(node.uuid))
        .await
        .unwrap();
    assert_eq!(usage.get("MEMORY_MB"), Some(&512));
}

#[tokio::test]
async fn no_valid_host_names_ram() {
    let driver: Arc<dyn Driver> = Arc::new(FakeDriver::with_resources(small_host(1024)));
    let rig = rig_with(exact_config(), Some(driver)).await;
    let mut server = new_server("huge");
    server.flavor = flavor(1, 4096, 1);
    build(&rig, &server).await;
    let failed = settled(&rig, &server.id).await;

    assert_eq!(failed.vm_state, VmState::Error);
    let fault = failed.fault.expect("fault");
    assert_eq!(fault.code, 500);
    assert_eq!(
        fault.message,
        "No valid host was found. There are not enough hosts available: RAMFilter/placement returned no host with \
         4096 MiB RAM, 1 VCPU and 1 GB disk free (node1 has 512 MiB RAM free). Choose a smaller flavor, or free or \
         add capacity."
    );
    assert!(
        rig.fakes.networks.ports.lock().unwrap().is_empty(),
        "no port is created without a host"
    );
}

#[tokio::test]
async fn disabled_host_filtered() {
    let rig = rig().await;
    add_host(&rig, "node2", "nova", Arc::new(FakeDriver::new())).await;
    let node1 = records::find_service(rig.service.pool(), "node1", "nova-compute")
        .await
        .unwrap()
        .unwrap();
    records::update_service(
        rig.service.pool(),
        node1.id,
        true,
        Some("maintenance"),
        false,
    )
    .await
    .unwrap();

    let server = new_server("elsewhere");
    build(&rig, &server).await;
    let built = settled(&rig, &server.id).await;
    assert_eq!(built.vm_state, VmState::Active, "fault: {:?}", built.fault);
    assert_eq!(built.host.as_deref(), Some("node2"));

    let node2 = records::find_service(rig.service.pool(), "node2", "nova-compute")
        .await
        .unwrap()
        .unwrap();
    records::update_service(rig.service.pool(), node2.id, true, None, false)
        .await
        .unwrap();
    let server = new_server("nowhere");
    build(&rig, &server).await;
    let failed = settled(&rig, &server.id).await;
    assert_eq!(failed.vm_state, VmState::Error);
    assert_eq!(
        failed.fault.expect("fault").message,
        "No valid host was found. ComputeFilter removed all hosts: host node1 is disabled (maintenance); host node2 \
         is disabled."
    );
}

#[tokio::test]
async fn down_host_filtered() {
    let rig = rig().await;
    add_host(&rig, "node2", "nova", Arc::new(FakeDriver::new())).await;
    let long_ago = chrono::Utc::now().timestamp() - 600;
    records::set_last_seen(rig.service.pool(), "node1", long_ago)
        .await
        .unwrap();

    let server = new_server("survivor");
    build(&rig, &server).await;
    let built = settled(&rig, &server.id).await;
    assert_eq!(built.host.as_deref(), Some("node2"));

    records::set_last_seen(rig.service.pool(), "node2", long_ago)
        .await
        .unwrap();
    let server = new_server("stranded");
    build(&rig, &server).await;
    let message = settled(&rig, &server.id)
        .await
        .fault
        .expect("fault")
        .message;
    assert!(
        message.starts_with("No valid host was found. ComputeFilter removed all hosts:"),
        "{message}"
    );
    assert!(
        message.contains("host node1 is down: its last heartbeat was 6"),
        "{message}"
    );
}

#[tokio::test]
async fn forced_down_host_filtered() {
    let rig = rig().await;
    let node1 = records::find_service(rig.service.pool(), "node1", "nova-compute")
        .await
        .unwrap()
        .unwrap();
    records::update_service(rig.service.pool(), node1.id, false, None, true)
        .await
        .unwrap();
    let server = new_server("fenced");
    build(&rig, &server).await;
    let message = settled(&rig, &server.id)
        .await
        .fault
        .expect("fault")
        .message;
    assert_eq!(
        message,
        "No valid host was found. ComputeFilter removed all hosts: host node1 is forced down."
    );
}

#[tokio::test]
async fn availability_zone_chooses_host() {
    let rig = rig().await;
    add_host(&rig, "node2", "zone2", Arc::new(FakeDriver::new())).await;

    let mut server = new_server("zoned");
    server.requested_availability_zone = Some("zone2".to_owned());
    build(&rig, &server).await;
    let built = settled(&rig, &server.id).await;
    assert_eq!(built.host.as_deref(), Some("node2"));
    assert_eq!(built.availability_zone.as_deref(), Some("zone2"));
    let port = rig.fakes.networks.ports.lock().unwrap()[0].clone();
    assert_eq!(port.device_owner, "compute:zone2");

    let mut server = new_server("forced");
    server.requested_availability_zone = Some("nova:node1".to_owned());
    build(&rig, &server).await;
    assert_eq!(
        settled(&rig, &server.id).await.host.as_deref(),
        Some("node1")
    );

    let mut server = new_server("lost");
    server.requested_availability_zone = Some("atlantis".to_owned());
    build(&rig, &server).await;
    let message = settled(&rig, &server.id)
        .await
        .fault
        .expect("fault")
        .message;
    assert_eq!(
        message,
        "No valid host was found. AvailabilityZoneFilter removed all hosts: host node1 is in availability zone \
         nova, not atlantis; host node2 is in availability zone zone2, not atlantis."
    );
}

#[tokio::test]
async fn image_architecture_filtered() {
    let rig = rig().await;
    let mut image = rig
        .fakes
        .images
        .add("44444444-0000-0000-0000-000000000000", "arm-image");
    image
        .properties
        .insert("hw_architecture".to_owned(), "arm64".to_owned());
    rig.fakes
        .images
        .images
        .lock()
        .unwrap()
        .insert(image.id.clone(), image.clone());
    let mut server = new_server("arm");
    server.image_id = image.id.clone();
    build(&rig, &server).await;
    let message = settled(&rig, &server.id)
        .await
        .fault
        .expect("fault")
        .message;
    assert_eq!(
        message,
        "No valid host was found. ImagePropertiesFilter removed all hosts: host node1 runs x86_64 guests but the \
         image's hw_architecture is aarch64."
    );

    let mut image = rig
        .fakes
        .images
        .add("55555555-0000-0000-0000-000000000000", "x86-image");
    image
        .properties
        .insert("hw_architecture".to_owned(), "amd64".to_owned());
    rig.fakes
        .images
        .images
        .lock()
        .unwrap()
        .insert(image.id.clone(), image.clone());
    let mut server = new_server("x86");
    server.image_id = image.id.clone();
    build(&rig, &server).await;
    assert_eq!(settled(&rig, &server.id).await.vm_state, VmState::Active);
}

#[tokio::test]
async fn servers_spread_over_hosts() {
    let rig = rig().await;
    add_host(&rig, "node2", "nova", Arc::new(FakeDriver::new())).await;
    let mut hosts = Vec::new();
    for n in 0..4 {
        let mut server = new_server(&format!("spread{n}"));
        server.flavor = flavor(1, 4096, 1);
        build(&rig, &server).await;
        hosts.push(settled(&rig, &server.id).await.host.expect("scheduled"));
    }
    hosts.sort();
    assert_eq!(hosts, ["node1", "node1", "node2", "node2"]);
}

#[tokio::test]
async fn claim_released_after_delete() {
    let driver: Arc<dyn Driver> = Arc::new(FakeDriver::with_resources(small_host(1024)));
    let rig = rig_with(exact_config(), Some(driver)).await;
    let mut first = new_server("first");
    first.flavor = flavor(1, 512, 1);
    build(&rig, &first).await;
    assert_eq!(settled(&rig, &first.id).await.vm_state, VmState::Active);

    set_task(
        &rig,
        &first.id,
        oxstack_compute::server::TaskState::Deleting,
    )
    .await;
    rig.service
        .start_delete(first.id.clone(), "req-delete".to_owned());
    wait_for(&rig, &first.id, "deleted", |s| s.deleted).await;

    let mut second = new_server("second");
    second.flavor = flavor(1, 512, 1);
    build(&rig, &second).await;
    let built = settled(&rig, &second.id).await;
    assert_eq!(
        built.vm_state,
        VmState::Active,
        "the first server's room is free again: {:?}",
        built.fault
    );
    assert!(store::get(rig.service.pool(), &first.id)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn concurrent_builds_on_postgres() {
    let driver: Arc<dyn Driver> = Arc::new(FakeDriver::with_resources(small_host(2048)));
    let Some(rig) = rig_postgres(exact_config(), Some(driver)).await else {
        return;
    };
    add_host(
        &rig,
        "node2",
        "nova",
        Arc::new(FakeDriver::with_resources(small_host(1024))),
    )
    .await;
    // Room for four 512 MiB servers: three on node1 (2048 MiB less 512
    // reserved) and one on node2 (1024 MiB less 512 reserved).
    let mut ids = Vec::new();
    for n in 0..5 {
        let mut server = new_server(&format!("pg{n}"));
        server.flavor = flavor(1, 512, 1);
        ids.push(server.id.clone());
        build(&rig, &server).await;
    }
    let mut hosts = Vec::new();
    let mut refused = 0;
    for id in &ids {
        let server = settled(&rig, id).await;
        if server.vm_state == VmState::Active {
            hosts.push(server.host.expect("scheduled"));
        } else {
            let message = server.fault.expect("fault").message;
            assert!(message.starts_with("No valid host was found."), "{message}");
            refused += 1;
        }
    }
    hosts.sort();
    assert_eq!(hosts, ["node1", "node1", "node1", "node2"]);
    assert_eq!(refused, 1);

    let services = records::list_services(rig.service.pool()).await.unwrap();
    assert_eq!(
        services.len(),
        4,
        "three services of node1 and one of node2"
    );
    set_task(&rig, &ids[0], oxstack_compute::server::TaskState::Deleting).await;
    rig.service
        .start_delete(ids[0].clone(), "req-delete".to_owned());
    wait_for(&rig, &ids[0], "deleted", |s| s.deleted).await;
}

#[tokio::test]
async fn resource_refresh_updates_inventory() {
    let rig = rig().await;
    let driver = Arc::new(ResizableDriver {
        inner: FakeDriver::new(),
        resources: std::sync::Mutex::new(small_host(1024)),
    });
    add_host(&rig, "node2", "nova", driver.clone()).await;
    let node = records::node_by_host(rig.service.pool(), "node2")
        .await
        .unwrap()
        .unwrap();
    let provider = ProviderId(node.uuid.clone());
    let placement = &rig.fakes.backends.placement;

    let (generation, _) = placement.inventories_get(&provider).await.unwrap();
    rig.service.refresh_resources("node2").await.unwrap();
    let (unchanged, _) = placement.inventories_get(&provider).await.unwrap();
    assert_eq!(
        unchanged, generation,
        "nothing is written when nothing changed"
    );

    *driver.resources.lock().unwrap() = small_host(4096);
    rig.service.refresh_resources("node2").await.unwrap();
    let (_, inventories) = placement.inventories_get(&provider).await.unwrap();
    assert_eq!(inventories["MEMORY_MB"].total, 4096);
    let node = records::node_by_host(rig.service.pool(), "node2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(node.memory_mb, 4096);
    assert_eq!(node.uuid, provider.0, "the node keeps its uuid");
}
