//! The conductor on fake backends: builds, their failures and cleanup,
//! power actions, deletes (also in the middle of a build), and the
//! reconciliation of servers when the compute host starts.

mod conductor_support;

use std::sync::Arc;

use conductor_support::*;
use oxstack_compute::server::{store, NicRequest, ServerAction, TaskState, VmState};
use oxstack_compute::ComputeConfig;
use oxstack_hypervisor::{Driver, FakeDriver, PowerState};

async fn event_results(rig: &Rig, server_id: &str) -> Vec<(String, Option<String>)> {
    sqlx::query_as("SELECT event, result FROM compute_instance_action_events WHERE server_id = $1 ORDER BY start_time, event")
        .bind(server_id)
        .fetch_all(rig.service.pool())
        .await
        .expect("events read")
}

#[tokio::test]
async fn build_becomes_active() {
    let rig = rig().await;
    let server = new_server("vm1");
    build(&rig, &server).await;
    let built = settled(&rig, &server.id).await;

    assert_eq!(built.vm_state, VmState::Active, "fault: {:?}", built.fault);
    assert_eq!(built.power_state, 1);
    assert_eq!(built.host.as_deref(), Some("node1"));
    assert_eq!(built.node.as_deref(), Some("node1"));
    assert_eq!(built.availability_zone.as_deref(), Some("nova"));
    assert!(built.launched_at.is_some());
    assert_eq!(built.ports.len(), 1);
    assert_eq!(built.created_ports, built.ports);

    let ports = rig.fakes.networks.ports.lock().unwrap().clone();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].device_id, server.id);
    assert_eq!(ports[0].device_owner, "compute:nova");
    assert_eq!(ports[0].binding_host, "node1");
    assert_eq!(ports[0].security_group_ids, vec!["default".to_owned()]);

    let info = rig
        .fakes
        .driver
        .info(&server.id)
        .await
        .expect("instance runs");
    assert_eq!(info.power_state, PowerState::Running);
    assert!(has_claim(&rig, &server.id).await);

    let events = event_results(&rig, &server.id).await;
    assert!(
        events.contains(&("schedule_instances".to_owned(), Some("Success".to_owned()))),
        "{events:?}"
    );
    assert!(
        events.contains(&(
            "compute__do_build_and_run_instance".to_owned(),
            Some("Success".to_owned())
        )),
        "{events:?}"
    );
}

#[tokio::test]
async fn build_without_networks() {
    let rig = rig().await;
    let mut server = new_server("lonely");
    server.requested_networks.clear();
    build(&rig, &server).await;
    let built = settled(&rig, &server.id).await;
    assert_eq!(built.vm_state, VmState::Active, "fault: {:?}", built.fault);
    assert!(built.ports.is_empty());
}

#[tokio::test]
async fn binding_failure_sets_error_and_cleans_up() {
    let rig = rig().await;
    let message = "Binding failed for port: physical network physnet1 has no bridge mapping on host node1; add \
                   physnet1 to bridge_mappings in [netagent].";
    rig.fakes
        .networks
        .unbindable
        .lock()
        .unwrap()
        .insert("node1".to_owned(), message.to_owned());
    let server = new_server("unbindable");
    build(&rig, &server).await;
    let failed = settled(&rig, &server.id).await;

    assert_eq!(failed.vm_state, VmState::Error);
    let fault = failed.fault.expect("fault set");
    assert_eq!(fault.code, 500);
    assert_eq!(fault.message, message);
    assert!(
        rig.fakes.networks.ports.lock().unwrap().is_empty(),
        "the created port is deleted"
    );
    assert!(!has_claim(&rig, &server.id).await, "the claim is released");
    assert!(
        rig.fakes.driver.list().await.unwrap().is_empty(),
        "nothing was spawned"
    );
    let events = event_results(&rig, &server.id).await;
    assert!(
        events.contains(&(
            "compute__do_build_and_run_instance".to_owned(),
            Some("Error".to_owned())
        )),
        "{events:?}"
    );
}

#[tokio::test]
async fn spawn_failure_destroys_and_releases() {
    let driver = Arc::new(FailingDriver {
        inner: FakeDriver::new(),
    });
    let rig = rig_with(ComputeConfig::default(), Some(driver.clone())).await;
    let server = new_server("broken");
    build(&rig, &server).await;
    let failed = settled(&rig, &server.id).await;

    assert_eq!(failed.vm_state, VmState::Error);
    let fault = failed.fault.expect("fault set");
    assert!(
        fault.message.contains("failed to start the server"),
        "{}",
        fault.message
    );
    assert!(
        fault.message.contains("could not open disk image"),
        "{}",
        fault.message
    );
    assert!(
        driver.inner.list().await.unwrap().is_empty(),
        "the half-started instance is destroyed"
    );
    assert!(rig.fakes.networks.ports.lock().unwrap().is_empty());
    assert!(!has_claim(&rig, &server.id).await);
}

#[tokio::test]
async fn user_port_released_not_deleted() {
    let driver = Arc::new(FailingDriver {
        inner: FakeDriver::new(),
    });
    let rig = rig_with(ComputeConfig::default(), Some(driver)).await;
    let port = user_port(&rig).await;
    let mut server = new_server("byo-port");
    server.requested_networks = vec![NicRequest {
        network_id: None,
        port_id: Some(port.clone()),
        fixed_ip: None,
    }];
    build(&rig, &server).await;
    let failed = settled(&rig, &server.id).await;
    assert_eq!(failed.vm_state, VmState::Error);

    let ports = rig.fakes.networks.ports.lock().unwrap().clone();
    assert_eq!(ports.len(), 1, "the user's port survives");
    assert_eq!(ports[0].id, port);
    assert!(ports[0].device_id.is_empty(), "the user's port is released");
    assert!(ports[0].binding_host.is_empty());
}

#[tokio::test]
async fn missing_image_sets_error() {
    let rig = rig().await;
    let mut server = new_server("no-image");
    server.image_id = "99999999-0000-0000-0000-000000000000".to_owned();
    build(&rig, &server).await;
    let failed = settled(&rig, &server.id).await;
    assert_eq!(failed.vm_state, VmState::Error);
    let message = failed.fault.expect("fault").message;
    assert!(message.contains("could not be found"), "{message}");
    assert!(!has_claim(&rig, &server.id).await);
}

#[tokio::test]
async fn image_larger_than_flavor_disk() {
    let rig = rig().await;
    let mut image = rig
        .fakes
        .images
        .add("33333333-0000-0000-0000-000000000000", "big");
    image.virtual_size = Some(5 << 30);
    rig.fakes
        .images
        .images
        .lock()
        .unwrap()
        .insert(image.id.clone(), image.clone());
    let mut server = new_server("too-small");
    server.image_id = image.id.clone();
    build(&rig, &server).await;
    let failed = settled(&rig, &server.id).await;
    assert_eq!(failed.vm_state, VmState::Error);
    let fault = failed.fault.expect("fault");
    assert_eq!(fault.code, 400);
    assert!(
        fault.message.contains("Flavor's disk is too small"),
        "{}",
        fault.message
    );
    assert!(fault.message.contains("at least 5 GB"), "{}", fault.message);
    assert!(rig.fakes.networks.ports.lock().unwrap().is_empty());
    assert!(!has_claim(&rig, &server.id).await);
}

async fn act(
    rig: &Rig,
    id: &str,
    task: TaskState,
    action: ServerAction,
) -> oxstack_compute::server::Server {
    set_task(rig, id, task).await;
    rig.service
        .start_action(id.to_owned(), action, format!("req-{task:?}"));
    wait_for(rig, id, "done with the action", |s| s.task_state.is_none()).await
}

#[tokio::test]
async fn actions_move_states() {
    let rig = rig().await;
    let server = new_server("actor");
    build(&rig, &server).await;
    assert_eq!(settled(&rig, &server.id).await.vm_state, VmState::Active);
    let id = server.id.as_str();

    let cases = [
        (
            TaskState::PoweringOff,
            ServerAction::Stop,
            VmState::Stopped,
            4,
            PowerState::Shutdown,
        ),
        (
            TaskState::PoweringOn,
            ServerAction::Start,
            VmState::Active,
            1,
            PowerState::Running,
        ),
        (
            TaskState::Rebooting,
            ServerAction::Reboot { hard: false },
            VmState::Active,
            1,
            PowerState::Running,
        ),
        (
            TaskState::RebootingHard,
            ServerAction::Reboot { hard: true },
            VmState::Active,
            1,
            PowerState::Running,
        ),
        (
            TaskState::Pausing,
            ServerAction::Pause,
            VmState::Paused,
            3,
            PowerState::Paused,
        ),
        (
            TaskState::Unpausing,
            ServerAction::Unpause,
            VmState::Active,
            1,
            PowerState::Running,
        ),
        (
            TaskState::Suspending,
            ServerAction::Suspend,
            VmState::Suspended,
            7,
            PowerState::Suspended,
        ),
        (
            TaskState::Resuming,
            ServerAction::Resume,
            VmState::Active,
            1,
            PowerState::Running,
        ),
    ];
    for (task, action, vm_state, power, driver_power) in cases {
        let after = act(&rig, id, task, action).await;
        assert_eq!(after.vm_state, vm_state, "{action:?}");
        assert_eq!(after.power_state, power, "{action:?}");
        let info = rig.fakes.driver.info(id).await.expect("instance exists");
        assert_eq!(info.power_state, driver_power, "{action:?}");
    }

    let events: Vec<String> = event_results(&rig, id)
        .await
        .into_iter()
        .map(|(event, _)| event)
        .collect();
    for name in [
        "compute_stop_instance",
        "compute_start_instance",
        "compute_reboot_instance",
        "compute_pause_instance",
        "compute_unpause_instance",
        "compute_suspend_instance",
        "compute_resume_instance",
    ] {
        assert!(
            events.iter().any(|event| event == name),
            "{name} missing from {events:?}"
        );
    }
}

#[tokio::test]
async fn failed_action_keeps_vm_state() {
    let rig = rig().await;
    let server = new_server("paused-twice");
    build(&rig, &server).await;
    settled(&rig, &server.id).await;
    // The instance was suspended behind the service's back, and a
    // suspended instance cannot be paused.
    rig.fakes.driver.suspend(&server.id).await.unwrap();
    let after = act(&rig, &server.id, TaskState::Pausing, ServerAction::Pause).await;
    assert_eq!(after.vm_state, VmState::Active);
    assert_eq!(after.task_state, None);
    let events = event_results(&rig, &server.id).await;
    assert!(
        events.contains(&(
            "compute_pause_instance".to_owned(),
            Some("Error".to_owned())
        )),
        "{events:?}"
    );
}

#[tokio::test]
async fn action_on_vanished_instance_errors() {
    let rig = rig().await;
    let server = new_server("vanishing");
    build(&rig, &server).await;
    settled(&rig, &server.id).await;
    rig.fakes.driver.destroy(&server.id).await.unwrap();

    let after = act(&rig, &server.id, TaskState::PoweringOff, ServerAction::Stop).await;
    assert_eq!(after.vm_state, VmState::Error);
    assert!(after
        .fault
        .expect("fault")
        .message
        .contains("is gone from host node1"));
}

#[tokio::test]
async fn delete_frees_everything() {
    let rig = rig().await;
    let server = new_server("doomed");
    build(&rig, &server).await;
    settled(&rig, &server.id).await;

    set_task(&rig, &server.id, TaskState::Deleting).await;
    rig.service
        .start_delete(server.id.clone(), "req-delete".to_owned());
    let gone = wait_for(&rig, &server.id, "deleted", |s| s.deleted).await;

    assert_eq!(gone.vm_state, VmState::Deleted);
    assert_eq!(gone.task_state, None);
    assert!(gone.terminated_at.is_some());
    assert!(rig.fakes.driver.list().await.unwrap().is_empty());
    assert!(rig.fakes.networks.ports.lock().unwrap().is_empty());
    assert!(!has_claim(&rig, &server.id).await);
    assert!(store::get(rig.service.pool(), &server.id)
        .await
        .unwrap()
        .is_none());

    // A second delete of the same server changes nothing.
    rig.service
        .start_delete(server.id.clone(), "req-delete-again".to_owned());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let again = store::get_any(rig.service.pool(), &server.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.terminated_at, gone.terminated_at);
}

#[tokio::test]
async fn delete_error_server_without_host() {
    let rig = rig().await;
    let mut server = new_server("never-scheduled");
    server.vm_state = VmState::Error;
    server.task_state = Some(TaskState::Deleting);
    store::insert(rig.service.pool(), &server).await.unwrap();
    rig.service
        .start_delete(server.id.clone(), "req-delete".to_owned());
    let gone = wait_for(&rig, &server.id, "deleted", |s| s.deleted).await;
    assert_eq!(gone.vm_state, VmState::Deleted);
}

#[tokio::test]
async fn delete_wins_over_build() {
    let driver = Arc::new(SlowDriver::new());
    let rig = rig_with(ComputeConfig::default(), Some(driver.clone())).await;
    let server = new_server("race");
    build(&rig, &server).await;
    driver.wait_spawning().await;

    set_task(&rig, &server.id, TaskState::Deleting).await;
    rig.service
        .start_delete(server.id.clone(), "req-delete".to_owned());
    wait_for(&rig, &server.id, "deleted", |s| s.deleted).await;
    // Now the spawn finishes; the build must notice and undo it.
    driver.release.notify_one();

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !driver.inner.list().await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the late instance was never destroyed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let gone = store::get_any(rig.service.pool(), &server.id)
        .await
        .unwrap()
        .unwrap();
    assert!(gone.deleted);
    assert_eq!(gone.vm_state, VmState::Deleted);
    assert!(rig.fakes.networks.ports.lock().unwrap().is_empty());
    assert!(!has_claim(&rig, &server.id).await);
}

#[tokio::test]
async fn sync_stops_vanished_instance() {
    let rig = rig().await;
    let server = new_server("ghost");
    build(&rig, &server).await;
    settled(&rig, &server.id).await;
    rig.fakes.driver.destroy(&server.id).await.unwrap();

    rig.service.sync_host("node1").await;
    let synced = store::get(rig.service.pool(), &server.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(synced.vm_state, VmState::Stopped);
    assert_eq!(synced.power_state, 4);
}

#[tokio::test]
async fn sync_stops_shut_down_instance() {
    let rig = rig().await;
    let server = new_server("shut");
    build(&rig, &server).await;
    settled(&rig, &server.id).await;
    rig.fakes
        .driver
        .power_off(&server.id, std::time::Duration::ZERO)
        .await
        .unwrap();

    rig.service.sync_host("node1").await;
    let synced = store::get(rig.service.pool(), &server.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(synced.vm_state, VmState::Stopped);
    assert_eq!(synced.power_state, 4);
}

#[tokio::test]
async fn sync_keeps_running_instance() {
    let rig = rig().await;
    let server = new_server("steady");
    build(&rig, &server).await;
    let before = settled(&rig, &server.id).await;
    rig.service.sync_host("node1").await;
    let after = store::get(rig.service.pool(), &server.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.vm_state, VmState::Active);
    assert_eq!(
        after.revision, before.revision,
        "nothing is written for a server in sync"
    );
}

#[tokio::test]
async fn sync_fails_interrupted_build() {
    let rig = rig().await;
    let port = user_port(&rig).await;
    let mut server = new_server("interrupted");
    server.host = Some("node1".to_owned());
    server.task_state = Some(TaskState::Spawning);
    server.created_ports = vec![port.clone()];
    server.ports = vec![port];
    store::insert(rig.service.pool(), &server).await.unwrap();

    rig.service.sync_host("node1").await;
    let failed = store::get(rig.service.pool(), &server.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.vm_state, VmState::Error);
    assert_eq!(failed.task_state, None);
    let message = failed.fault.expect("fault").message;
    assert!(
        message.contains("restarted while the server was being built"),
        "{message}"
    );
    assert!(
        rig.fakes.networks.ports.lock().unwrap().is_empty(),
        "the build's port is deleted"
    );
}

#[tokio::test]
async fn sync_finishes_delete() {
    let rig = rig().await;
    let server = new_server("half-deleted");
    build(&rig, &server).await;
    settled(&rig, &server.id).await;
    set_task(&rig, &server.id, TaskState::Deleting).await;

    rig.service.sync_host("node1").await;
    let gone = store::get_any(rig.service.pool(), &server.id)
        .await
        .unwrap()
        .unwrap();
    assert!(gone.deleted);
    assert!(rig.fakes.driver.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn heartbeats_bring_host_up() {
    let config = ComputeConfig {
        report_interval: 1,
        ..ComputeConfig::default()
    };
    let rig = rig_with(config, None).await;
    let long_ago = chrono::Utc::now().timestamp() - 600;
    oxstack_compute::host::records::set_last_seen(rig.service.pool(), "node1", long_ago)
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let service = oxstack_compute::host::records::find_service(
            rig.service.pool(),
            "node1",
            "nova-compute",
        )
        .await
        .unwrap()
        .unwrap();
        if service.is_up(chrono::Utc::now().timestamp(), 60) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no heartbeat within 5 s: {service:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
