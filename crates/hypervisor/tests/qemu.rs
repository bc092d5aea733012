//! Boots the OxStack test guest under real QEMU (TCG) and drives it
//! through every power operation of the QEMU driver.
//!
//! Each test prints why it skips itself when the guest image or QEMU
//! (qemu-system-x86_64, qemu-img) is missing. `qemu_lifecycle` also needs
//! genisoimage and root, because QEMU creates a tap device. Build the image
//! with tools/guest-image/build.sh.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oxstack_hypervisor::qemu::command::InstancePaths;
use oxstack_hypervisor::qemu::process::{is_instance_process, running_pid};
use oxstack_hypervisor::{
    Driver, DriverError, ImageSource, InstanceSpec, PowerState, QemuConfig, QemuDriver, Vif,
    VirtType,
};

/// How long one boot may take to print the expected console lines. The
/// guest waits about 10 s for DHCP, and no DHCP server runs here.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

const TEST_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOxStackDriverTestKey test@oxstack";

fn guest_image() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/guest-image/out/oxstack-guest.qcow2")
}

/// Why the test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    if std::fs::metadata("/proc/self")
        .map(|meta| meta.uid())
        .unwrap_or(1)
        != 0
    {
        return Some("needs root, because QEMU creates a tap device".to_owned());
    }
    if !guest_image().exists() {
        return Some(format!(
            "{} is missing; run tools/guest-image/build.sh",
            guest_image().display()
        ));
    }
    for tool in ["qemu-system-x86_64", "qemu-img", "genisoimage"] {
        if std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_err()
        {
            return Some(format!("{tool} is not installed"));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".to_owned());
    }
    None
}

/// Kills the instance's QEMU and removes its folder when the test ends,
/// whether it passed or not.
struct InstanceGuard {
    paths: InstancePaths,
    uuid: String,
}

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        if let Some(pid) = running_pid(&self.paths, &self.uuid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while is_instance_process(pid, &self.uuid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = std::fs::remove_dir_all(&self.paths.dir);
    }
}

fn tap_exists(tap: &str) -> bool {
    Path::new("/sys/class/net").join(tap).exists()
}

fn spec(uuid: &str, tap: &str, mac: &str) -> InstanceSpec {
    let meta_data = serde_json::json!({
        "uuid": uuid,
        "name": "OxStack E2E",
        "hostname": "oxstack-e2e.novalocal",
        "launch_index": 0,
        "public_keys": { "test": format!("{TEST_KEY}\n") },
    });
    let mut files = BTreeMap::new();
    files.insert(
        "openstack/latest/meta_data.json".to_owned(),
        meta_data.to_string().into_bytes(),
    );
    InstanceSpec {
        uuid: uuid.to_owned(),
        name: "OxStack E2E".to_owned(),
        vcpus: 1,
        // 128 MiB, Nova's m1.nano: with 64 MiB syslinux cannot load this
        // guest's initramfs and resets the machine in a loop.
        memory_mb: 128,
        root_gb: 1,
        image: ImageSource {
            id: format!("guest-{}", uuid::Uuid::new_v4().simple()),
            path: guest_image(),
            disk_format: "qcow2".to_owned(),
            properties: BTreeMap::new(),
        },
        vifs: vec![Vif {
            port_id: uuid::Uuid::new_v4().to_string(),
            network_id: uuid::Uuid::new_v4().to_string(),
            mac: mac.to_owned(),
            mtu: 1450,
            tap: tap.to_owned(),
        }],
        config_drive: Some(files),
    }
}

/// Waits until the console shows each needle at least `count` times.
async fn wait_for_console(driver: &QemuDriver, uuid: &str, needles: &[&str], count: usize) {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    loop {
        let console = driver.console_output(uuid, None).await.unwrap();
        let missing: Vec<&&str> = needles
            .iter()
            .filter(|needle| console.matches(**needle).count() < count)
            .collect();
        if missing.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let tail: Vec<&str> = console
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!(
                "console lacks {missing:?} ({count} times) after {BOOT_TIMEOUT:?}; last lines:\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn power_state(driver: &QemuDriver, uuid: &str) -> PowerState {
    driver.info(uuid).await.unwrap().power_state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_lifecycle() {
    if let Some(reason) = skip_reason() {
        eprintln!("qemu_lifecycle skipped: {reason}");
        return;
    }

    // A short folder: QMP socket paths must fit in 107 bytes.
    let instances_dir = tempfile::Builder::new()
        .prefix("oxhv-")
        .tempdir_in("/tmp")
        .unwrap();
    let config = QemuConfig {
        instances_dir: instances_dir.path().to_owned(),
        virt_type: VirtType::Qemu,
        qemu_binary: PathBuf::from("qemu-system-x86_64"),
    };
    let driver = QemuDriver::new(config.clone()).unwrap();
    let resources = driver.host_resources().await.unwrap();
    assert_eq!(resources.hypervisor_type, "QEMU");
    assert_eq!(resources.virt_type, "qemu");
    assert!(resources.hypervisor_version >= 1_000_000, "{resources:?}");
    assert!(
        resources.vcpus >= 1 && resources.memory_mb > 0 && resources.disk_gb > 0,
        "{resources:?}"
    );

    let uuid = uuid::Uuid::new_v4().to_string();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let tap = format!("tapoxt{}", &suffix[..8]);
    let mac = format!(
        "fa:16:3e:{}:{}:{}",
        &suffix[8..10],
        &suffix[10..12],
        &suffix[12..14]
    );
    let paths = InstancePaths::new(instances_dir.path(), &uuid);
    let _guard = InstanceGuard {
        paths: paths.clone(),
        uuid: uuid.clone(),
    };
    let spec = spec(&uuid, &tap, &mac);

    // Spawn: disks, config drive and tap exist, and the guest boots from them.
    driver.spawn(&spec).await.unwrap();
    assert_eq!(power_state(&driver, &uuid).await, PowerState::Running);
    for file in [
        &paths.disk,
        &paths.config_drive,
        &paths.spec,
        &paths.pid_file,
    ] {
        assert!(file.exists(), "{} missing after spawn", file.display());
    }
    assert!(
        instances_dir
            .path()
            .join("_base")
            .join(&spec.image.id)
            .exists(),
        "image not cached"
    );
    assert!(tap_exists(&tap), "QEMU did not create tap {tap}");
    let first_pid = running_pid(&paths, &uuid).expect("pid of the spawned QEMU");
    // Its own process group: terminal signals to the agent's group miss it.
    let stat = std::fs::read_to_string(format!("/proc/{first_pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    let process_group: u32 = after_name
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        process_group, first_pid,
        "QEMU shares the agent's process group"
    );

    let first_boot = [
        format!("oxstack-guest: eth0 {mac} "),
        "oxstack-guest: metadata source config-drive /dev/sr0".to_owned(),
        "oxstack-guest: name OxStack E2E".to_owned(),
        "oxstack-guest: hostname oxstack-e2e".to_owned(),
        format!("oxstack-guest: ssh-key {}", &TEST_KEY[..40]),
        "oxstack-e2e login:".to_owned(),
    ];
    let first_boot: Vec<&str> = first_boot.iter().map(String::as_str).collect();
    wait_for_console(&driver, &uuid, &first_boot, 1).await;
    let tail = driver.console_output(&uuid, Some(3)).await.unwrap();
    assert!(
        tail.lines().count() <= 3,
        "console_output(3) returned:\n{tail}"
    );

    // Power off through ACPI: the QEMU process and its tap go away.
    driver
        .power_off(&uuid, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(power_state(&driver, &uuid).await, PowerState::Shutdown);
    assert!(
        !is_instance_process(first_pid, &uuid),
        "QEMU still runs after power_off"
    );
    assert!(!tap_exists(&tap), "tap {tap} remains after power_off");
    let console = driver.console_output(&uuid, None).await.unwrap();
    assert!(
        console.contains("oxstack-guest: power button pressed"),
        "guest did not see the power button"
    );

    // Power on keeps the console of the first boot.
    driver.power_on(&uuid).await.unwrap();
    assert_eq!(power_state(&driver, &uuid).await, PowerState::Running);
    assert!(tap_exists(&tap), "tap {tap} missing after power_on");
    let console = driver.console_output(&uuid, None).await.unwrap();
    assert!(
        console.contains("oxstack-e2e login:"),
        "console.log lost the first boot"
    );

    driver.pause(&uuid).await.unwrap();
    assert_eq!(power_state(&driver, &uuid).await, PowerState::Paused);
    driver.unpause(&uuid).await.unwrap();
    assert_eq!(power_state(&driver, &uuid).await, PowerState::Running);

    // Suspend saves memory to a file and stops QEMU; resume loads it.
    let running_pid_before_suspend = running_pid(&paths, &uuid).unwrap();
    driver.suspend(&uuid).await.unwrap();
    assert_eq!(power_state(&driver, &uuid).await, PowerState::Suspended);
    assert!(
        paths.suspend_state.exists(),
        "no saved memory at {}",
        paths.suspend_state.display()
    );
    assert!(
        !is_instance_process(running_pid_before_suspend, &uuid),
        "QEMU still runs after suspend"
    );
    assert!(driver
        .list()
        .await
        .unwrap()
        .contains(&(uuid.clone(), PowerState::Suspended)));
    driver.resume(&uuid).await.unwrap();
    assert_eq!(power_state(&driver, &uuid).await, PowerState::Running);
    assert!(
        !paths.suspend_state.exists(),
        "saved memory kept after resume"
    );

    // A second driver, as after an agent restart, finds the instance.
    let restarted = QemuDriver::new(config.clone()).unwrap();
    assert_eq!(
        restarted.list().await.unwrap(),
        vec![(uuid.clone(), PowerState::Running)]
    );
    assert_eq!(power_state(&restarted, &uuid).await, PowerState::Running);

    // The resumed guest finishes its second boot; then a soft reboot
    // powers it off through ACPI and boots it a third time.
    wait_for_console(
        &restarted,
        &uuid,
        &["oxstack-e2e login:", "oxstack-guest: name OxStack E2E"],
        2,
    )
    .await;
    restarted.reboot(&uuid, false).await.unwrap();
    assert_eq!(power_state(&restarted, &uuid).await, PowerState::Running);
    wait_for_console(&restarted, &uuid, &["oxstack-guest: name OxStack E2E"], 3).await;

    restarted.reboot(&uuid, true).await.unwrap();
    assert_eq!(power_state(&restarted, &uuid).await, PowerState::Running);

    // Destroy removes the process, the folder and the tap, and is idempotent.
    let last_pid = running_pid(&paths, &uuid).unwrap();
    restarted.destroy(&uuid).await.unwrap();
    assert!(
        !is_instance_process(last_pid, &uuid),
        "QEMU still runs after destroy"
    );
    assert!(!paths.dir.exists(), "instance folder remains after destroy");
    assert!(!tap_exists(&tap), "tap {tap} remains after destroy");
    restarted.destroy(&uuid).await.unwrap();
    assert!(matches!(
        restarted.info(&uuid).await,
        Err(DriverError::NotFound(_))
    ));
    assert!(restarted.list().await.unwrap().is_empty());
}

/// Skips unless QEMU and the guest image exist; no root needed because the
/// instance has no network interface.
#[tokio::test]
async fn spawn_failure_cleans_up() {
    if !guest_image().exists()
        || std::process::Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!(
            "spawn_failure_cleans_up skipped: needs qemu-system-x86_64 and {}",
            guest_image().display()
        );
        return;
    }
    let instances_dir = tempfile::Builder::new()
        .prefix("oxhv-")
        .tempdir_in("/tmp")
        .unwrap();
    let config = QemuConfig {
        virt_type: VirtType::Qemu,
        ..QemuConfig::new(instances_dir.path())
    };
    let driver = QemuDriver::new(config).unwrap();
    let uuid = uuid::Uuid::new_v4().to_string();
    let paths = InstancePaths::new(instances_dir.path(), &uuid);
    let _guard = InstanceGuard {
        paths: paths.clone(),
        uuid: uuid.clone(),
    };
    let mut spec = spec(&uuid, "unused", "fa:16:3e:00:00:01");
    spec.vifs.clear();
    // More vCPUs than QEMU's "pc" machine supports, so QEMU exits at once.
    spec.vcpus = 1000;

    let error = driver.spawn(&spec).await.unwrap_err().to_string();

    assert!(error.contains("exited during start-up"), "{error}");
    assert!(
        error.contains("CPUs"),
        "QEMU's own message is missing: {error}"
    );
    assert!(
        !paths.dir.exists(),
        "instance folder remains after a failed spawn"
    );
    assert!(matches!(
        driver.info(&uuid).await,
        Err(DriverError::NotFound(_))
    ));
    assert!(driver.list().await.unwrap().is_empty());
}

/// Set in the child process of `instance_outlives_driver_process`: the
/// instances folder to spawn into, then the instance's UUID.
const CHILD_DIR_VAR: &str = "OXSTACK_QEMU_TEST_CHILD_DIR";
const CHILD_UUID_VAR: &str = "OXSTACK_QEMU_TEST_CHILD_UUID";

/// Spawns an instance from a child process that then exits, as an agent
/// would on restart, and finds it still running from this process.
#[tokio::test]
async fn instance_outlives_driver_process() {
    if !guest_image().exists()
        || std::process::Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!(
            "instance_outlives_driver_process skipped: needs qemu-system-x86_64 and {}",
            guest_image().display()
        );
        return;
    }
    if let (Ok(dir), Ok(uuid)) = (std::env::var(CHILD_DIR_VAR), std::env::var(CHILD_UUID_VAR)) {
        let driver = QemuDriver::new(QemuConfig {
            virt_type: VirtType::Qemu,
            ..QemuConfig::new(dir)
        })
        .unwrap();
        let mut spec = spec(&uuid, "unused", "fa:16:3e:00:00:01");
        spec.vifs.clear();
        driver.spawn(&spec).await.unwrap();
        return;
    }

    let instances_dir = tempfile::Builder::new()
        .prefix("oxhv-")
        .tempdir_in("/tmp")
        .unwrap();
    let uuid = uuid::Uuid::new_v4().to_string();
    let paths = InstancePaths::new(instances_dir.path(), &uuid);
    let _guard = InstanceGuard {
        paths: paths.clone(),
        uuid: uuid.clone(),
    };

    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["instance_outlives_driver_process", "--exact", "--nocapture"])
        .env(CHILD_DIR_VAR, instances_dir.path())
        .env(CHILD_UUID_VAR, &uuid)
        .output()
        .await
        .unwrap();
    assert!(
        child.status.success(),
        "child process failed: {}\n{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );

    let pid = running_pid(&paths, &uuid).expect("QEMU exited with the process that spawned it");
    let driver = QemuDriver::new(QemuConfig {
        virt_type: VirtType::Qemu,
        ..QemuConfig::new(instances_dir.path())
    })
    .unwrap();
    assert_eq!(
        driver.list().await.unwrap(),
        vec![(uuid.clone(), PowerState::Running)]
    );

    // The guest is still in its firmware or early boot and ignores the ACPI
    // power button, so power_off stops QEMU once the timeout passes.
    let started = Instant::now();
    driver
        .power_off(&uuid, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(power_state(&driver, &uuid).await, PowerState::Shutdown);
    assert!(
        !is_instance_process(pid, &uuid),
        "QEMU still runs after power_off"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "power_off did not wait for the guest"
    );

    // A hard reboot of a stopped instance starts it.
    driver.reboot(&uuid, true).await.unwrap();
    assert_eq!(power_state(&driver, &uuid).await, PowerState::Running);
    let pid = running_pid(&paths, &uuid).expect("QEMU pid after the hard reboot");

    driver.destroy(&uuid).await.unwrap();
    assert!(
        !is_instance_process(pid, &uuid),
        "QEMU still runs after destroy"
    );
    assert!(!paths.dir.exists());
}
