//! The QEMU driver: one QEMU process per instance, controlled over QMP,
//! with its files in `instances_dir/<uuid>/` (see [`command::InstancePaths`]).
//!
//! Power states as this driver reports them:
//!
//! ```text
//!   spawn / power_on / resume / reboot        pause
//!   ───────────────────────────► Running ◄────────────► Paused
//!                                 │   ▲       unpause
//!          power_off (ACPI, then  │   │ resume (-incoming, cont)
//!          quit/SIGTERM/SIGKILL)  │   │
//!                                 ▼   │
//!   Shutdown (no process) ◄──── Suspended (no process, suspend.state)
//!                power_off discards the saved memory
//! ```
//!
//! Shutdown means no QEMU process, as libvirt's "shut off": power_on starts
//! a new QEMU from `spec.json` with the same disks. QEMU runs in its own
//! process group and survives the agent, and a new driver finds it through
//! `qemu.pid` and `/proc/<pid>/cmdline`. One async lock per instance
//! serialises the operations that change it. `info` and `list` take no
//! lock and query QEMU directly.

pub mod command;
pub mod config_drive;
pub mod console;
pub mod disk;
pub mod host;
pub mod process;
pub mod qmp;
pub mod virt;

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use self::command::{build_command_line, shell_quote, InstancePaths};
use self::console::{last_lines, read_console_tail, rotate_console_log};
use self::disk::ImageCache;
use self::process::remove_if_exists;
use self::qmp::QmpClient;
pub use self::virt::{Accel, ParseVirtTypeError, VirtType};
use crate::{Driver, DriverError, HostResources, InstanceInfo, InstanceSpec, PowerState};

/// Time a soft reboot waits for the guest to power off after the ACPI power
/// button, before it resets the guest instead.
const SOFT_REBOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Time that `info` and `list` wait for QMP. Another operation may hold the
/// monitor for a moment, and a QEMU that stays silent longer is reported as
/// NoState.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// Maximum time that saving or loading guest memory may take. It runs at
/// disk speed, so this bounds a stuck migration, not a slow one.
const MEMORY_TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// Maximum path length of a Unix socket address, because `sun_path` is 108
/// bytes with the terminating NUL on Linux.
const UNIX_SOCKET_PATH_MAX: usize = 107;

/// Settings of the QEMU driver.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// `DATA_DIR/instances`: one folder per instance and `_base/`, the
    /// image cache.
    pub instances_dir: PathBuf,
    pub virt_type: VirtType,
    /// The QEMU system emulator. `qemu-img` is taken from the same folder
    /// when this is a path, else from `PATH`.
    pub qemu_binary: PathBuf,
}

impl QemuConfig {
    /// Creates settings with `virt_type = auto` and `qemu-system-x86_64`
    /// from `PATH`.
    pub fn new(instances_dir: impl Into<PathBuf>) -> Self {
        QemuConfig {
            instances_dir: instances_dir.into(),
            virt_type: VirtType::Auto,
            qemu_binary: PathBuf::from("qemu-system-x86_64"),
        }
    }
}

/// The QEMU driver of one compute host.
pub struct QemuDriver {
    config: QemuConfig,
    accel: Accel,
    qemu_version: u64,
    images: ImageCache,
    genisoimage: PathBuf,
    instance_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl QemuDriver {
    /// Checks the host (QEMU present, KVM usable when `virt_type = kvm`)
    /// and creates `instances_dir`. Running instances are left alone, so a
    /// restarted agent finds them with [`Driver::list`].
    pub fn new(mut config: QemuConfig) -> Result<Self, DriverError> {
        // Overlays name their backing file by this path, and qemu-img would
        // resolve a relative one against the overlay's folder.
        config.instances_dir = std::path::absolute(&config.instances_dir).map_err(|error| {
            DriverError::Failed(format!(
                "instances_dir {} cannot be made absolute: {error}",
                config.instances_dir.display()
            ))
        })?;

        // The QMP socket path is instances_dir/<36-character uuid>/qmp.sock.
        let socket_path_len =
            config.instances_dir.as_os_str().len() + "/".len() + 36 + "/qmp.sock".len();
        if socket_path_len > UNIX_SOCKET_PATH_MAX {
            return Err(DriverError::Failed(format!(
                "instances_dir {} is too long: QMP socket paths under it would have {socket_path_len} bytes, and Unix sockets allow {UNIX_SOCKET_PATH_MAX}; choose a shorter data directory",
                config.instances_dir.display()
            )));
        }
        // The version query runs first because a missing QEMU gets the
        // clearest message there.
        let qemu_version = host::query_qemu_version(&config.qemu_binary)?;
        let accel = config.virt_type.resolve(&config.qemu_binary)?;

        let base_dir = config.instances_dir.join("_base");
        std::fs::create_dir_all(&base_dir).map_err(|error| {
            DriverError::Failed(format!("creating {} failed: {error}", base_dir.display()))
        })?;
        let images = ImageCache::new(base_dir, sibling_tool(&config.qemu_binary, "qemu-img"));

        tracing::info!(
            instances_dir = %config.instances_dir.display(),
            virt_type = accel.virt_type_name(),
            qemu_version,
            "QEMU driver ready"
        );
        Ok(QemuDriver {
            config,
            accel,
            qemu_version,
            images,
            genisoimage: PathBuf::from("genisoimage"),
            instance_locks: Mutex::new(HashMap::new()),
        })
    }

    /// Returns the accelerator instances run on, after resolving `virt_type`.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// Returns the files of instance `uuid`. Ids name folders, so anything but a
    /// hyphenated UUID is rejected before it touches the file system.
    fn paths(&self, uuid: &str) -> Result<InstancePaths, DriverError> {
        if uuid.len() != 36 || uuid::Uuid::parse_str(uuid).is_err() {
            return Err(DriverError::NotFound(uuid.to_owned()));
        }
        Ok(InstancePaths::new(&self.config.instances_dir, uuid))
    }

    /// Returns the paths of an instance that exists on this host, else `NotFound`.
    fn existing_paths(&self, uuid: &str) -> Result<InstancePaths, DriverError> {
        let paths = self.paths(uuid)?;
        if !paths.dir.is_dir() {
            return Err(DriverError::NotFound(uuid.to_owned()));
        }
        Ok(paths)
    }

    async fn lock_instance(&self, uuid: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.instance_locks.lock().expect("instance lock map");
            locks.entry(uuid.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Takes the instance's lock, then checks that it exists, so an
    /// operation queued behind `destroy` reports `NotFound`.
    async fn lock_existing(
        &self,
        uuid: &str,
    ) -> Result<(InstancePaths, tokio::sync::OwnedMutexGuard<()>), DriverError> {
        self.paths(uuid)?;
        let guard = self.lock_instance(uuid).await;
        Ok((self.existing_paths(uuid)?, guard))
    }

    /// Drops the lock of a destroyed instance unless another operation
    /// waits on it. That operation keeps the same lock, so two never run at
    /// once.
    fn forget_lock(&self, uuid: &str, guard: &tokio::sync::OwnedMutexGuard<()>) {
        let mut locks = self.instance_locks.lock().expect("instance lock map");
        // One reference in the map and one in the guard means no other waiter.
        if Arc::strong_count(tokio::sync::OwnedMutexGuard::mutex(guard)) == 2 {
            locks.remove(uuid);
        }
    }

    /// Starts QEMU for `spec`. With `incoming`, QEMU starts paused and loads
    /// guest memory from that file. Returns QEMU's run state.
    async fn launch(
        &self,
        spec: &InstanceSpec,
        paths: &InstancePaths,
        incoming: Option<&Path>,
    ) -> Result<String, DriverError> {
        rotate_console_log(&paths.console_log);
        let args = build_command_line(spec, paths, self.accel, incoming);
        tracing::debug!(server_id = %spec.uuid, args = ?args, "starting QEMU");
        let status = process::launch(&self.config.qemu_binary, &args, paths, &spec.uuid).await?;
        tracing::info!(server_id = %spec.uuid, status, "QEMU started");
        Ok(status)
    }

    /// Creates the instance's files and starts it. The steps are idempotent,
    /// so a retried spawn reuses the disk it made before.
    async fn spawn_steps(
        &self,
        spec: &InstanceSpec,
        paths: &InstancePaths,
    ) -> Result<(), DriverError> {
        write_spec(spec, paths)?;
        let base = self.images.fetch(&spec.image).await?;
        disk::create_overlay(self.images.qemu_img(), &base, &paths.disk, spec.root_gb).await?;
        match &spec.config_drive {
            Some(files) => {
                config_drive::write_config_drive(&self.genisoimage, files, &paths.config_drive)
                    .await?
            }
            None => remove_if_exists(&paths.config_drive)?,
        }
        self.launch(spec, paths, None).await?;
        Ok(())
    }

    /// Loads the memory saved by suspend into a new QEMU and runs the
    /// guest. The saved state is deleted once the guest runs.
    async fn restore(&self, uuid: &str, paths: &InstancePaths) -> Result<(), DriverError> {
        let spec = read_spec(paths)?;
        self.launch(&spec, paths, Some(&paths.suspend_state))
            .await?;
        let pid = process::running_pid(paths, uuid).ok_or_else(|| {
            DriverError::Failed(format!(
                "QEMU of instance {uuid} exited while loading its saved memory"
            ))
        })?;

        let deadline = Instant::now() + MEMORY_TRANSFER_TIMEOUT;
        loop {
            let status = match qmp_connect(paths).await {
                Ok(mut qmp) => qmp.query_status().await.map_err(|error| qmp_failed(uuid, error))?,
                Err(error) if !process::is_instance_process(pid, uuid) => {
                    return Err(DriverError::Failed(format!(
                        "QEMU of instance {uuid} exited while loading the saved memory ({error}); see {} for its output. Power the instance off to discard the saved memory and boot it afresh",
                        paths.qemu_log.display()
                    )))
                }
                Err(error) => return Err(error),
            };
            if status != "inmigrate" {
                break;
            }
            if Instant::now() >= deadline {
                let _ = process::stop(paths, uuid, pid).await;
                return Err(DriverError::Failed(format!(
                    "loading the saved memory of instance {uuid} did not finish within {MEMORY_TRANSFER_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        qmp_execute(paths, uuid, "cont", None).await?;
        remove_if_exists(&paths.suspend_state)?;
        tracing::info!(server_id = uuid, "instance resumed from saved memory");
        Ok(())
    }

    /// Saves guest memory to `suspend.state` (stopped guest, QEMU
    /// migration into `cat`) and stops QEMU.
    async fn save_memory(
        &self,
        uuid: &str,
        paths: &InstancePaths,
        pid: u32,
    ) -> Result<(), DriverError> {
        let was_running = qmp_status(paths, uuid).await? == "running";
        // Stopping first makes the saved state consistent in one pass
        // instead of chasing pages the guest keeps dirtying.
        qmp_execute(paths, uuid, "stop", None).await?;

        let partial = paths.dir.join("suspend.state.part");
        remove_if_exists(&partial)?;
        // QEMU 7.2 rejects file: migration URIs ("expects a valid migration
        // protocol"), so exec: runs cat through /bin/sh.
        let uri = format!("exec:cat > {}", shell_quote(&partial.to_string_lossy()));
        let result = async {
            // The default bandwidth limit is meant for networks, but a local
            // file can take it as fast as the disk writes.
            qmp_execute(
                paths,
                uuid,
                "migrate-set-parameters",
                Some(json!({ "max-bandwidth": 8u64 << 30 })),
            )
            .await?;
            qmp_execute(paths, uuid, "migrate", Some(json!({ "uri": uri }))).await?;
            wait_for_migration(paths, uuid).await
        }
        .await;
        if let Err(error) = result {
            let _ = remove_if_exists(&partial);
            if was_running {
                let _ = qmp_execute(paths, uuid, "cont", None).await;
            }
            return Err(error);
        }

        process::stop(paths, uuid, pid).await?;
        process::remove_runtime_files(paths)?;
        std::fs::rename(&partial, &paths.suspend_state).map_err(|error| {
            DriverError::Failed(format!("renaming {} failed: {error}", partial.display()))
        })?;
        tracing::info!(server_id = uuid, "instance suspended");
        Ok(())
    }

    /// Presses the ACPI power button and waits up to `timeout` for QEMU to
    /// exit. Returns whether it did.
    async fn acpi_shutdown(
        &self,
        uuid: &str,
        paths: &InstancePaths,
        pid: u32,
        timeout: Duration,
    ) -> bool {
        if timeout.is_zero() {
            return false;
        }
        match qmp_status(paths, uuid).await {
            Ok(status) if status == "running" => {}
            // A paused or stopped guest cannot react to the button.
            _ => return false,
        }
        if let Err(error) = qmp_execute(paths, uuid, "system_powerdown", None).await {
            tracing::warn!(server_id = uuid, %error, "system_powerdown failed");
            return false;
        }
        process::wait_for_exit(pid, uuid, timeout).await
    }

    /// Stops QEMU, gracefully first when `timeout` allows, and removes its
    /// runtime files.
    async fn shut_down(
        &self,
        uuid: &str,
        paths: &InstancePaths,
        timeout: Duration,
    ) -> Result<(), DriverError> {
        if let Some(pid) = process::running_pid(paths, uuid) {
            if !self.acpi_shutdown(uuid, paths, pid, timeout).await {
                if !timeout.is_zero() {
                    tracing::warn!(
                        server_id = uuid,
                        ?timeout,
                        "guest did not power off in time, stopping QEMU"
                    );
                }
                process::stop(paths, uuid, pid).await?;
            }
        }
        process::remove_runtime_files(paths)
    }

    /// Reports the power state without taking the instance's lock.
    async fn power_state(&self, uuid: &str, paths: &InstancePaths) -> PowerState {
        if process::running_pid(paths, uuid).is_none() {
            return if paths.suspend_state.exists() {
                PowerState::Suspended
            } else {
                PowerState::Shutdown
            };
        }
        let status = async {
            let mut qmp =
                QmpClient::connect_with_timeout(&paths.qmp_socket, STATUS_TIMEOUT).await?;
            qmp.query_status().await
        }
        .await;
        match status {
            Ok(status) => power_state_from_run_state(&status),
            Err(error) => {
                tracing::warn!(server_id = uuid, %error, "QEMU runs but QMP did not report its status");
                PowerState::NoState
            }
        }
    }
}

#[async_trait::async_trait]
impl Driver for QemuDriver {
    fn name(&self) -> &'static str {
        "qemu"
    }

    async fn host_resources(&self) -> Result<HostResources, DriverError> {
        Ok(HostResources {
            vcpus: host::host_vcpus(),
            memory_mb: host::host_memory_mb()?,
            disk_gb: host::filesystem_size_gb(&self.config.instances_dir)?,
            hypervisor_type: "QEMU".to_owned(),
            hypervisor_version: self.qemu_version,
            virt_type: self.accel.virt_type_name().to_owned(),
        })
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<(), DriverError> {
        let paths = self.paths(&spec.uuid).map_err(|_| {
            DriverError::Failed(format!(
                "instance id {:?} is not a UUID; the QEMU driver names folders after it",
                spec.uuid
            ))
        })?;
        command::validate_spec(spec)?;
        let _guard = self.lock_instance(&spec.uuid).await;
        if process::running_pid(&paths, &spec.uuid).is_some() {
            tracing::info!(server_id = %spec.uuid, "spawn found the instance running already");
            return Ok(());
        }

        let created_dir = !paths.dir.exists();
        // Owner-only: spec.json and the config drive carry user data and
        // SSH keys, and the console log shows what the guest printed.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&paths.dir)
            .map_err(|error| {
                DriverError::Failed(format!("creating {} failed: {error}", paths.dir.display()))
            })?;
        let result = self.spawn_steps(spec, &paths).await;
        if let Err(error) = &result {
            tracing::error!(server_id = %spec.uuid, %error, "spawn failed");
            // launch kills the QEMU it started when it fails, so only files
            // remain. A folder from an earlier spawn keeps its disk.
            if created_dir {
                let _ = std::fs::remove_dir_all(&paths.dir);
            }
        }
        result
    }

    async fn destroy(&self, uuid: &str) -> Result<(), DriverError> {
        let Ok(paths) = self.paths(uuid) else {
            return Ok(());
        };
        let guard = self.lock_instance(uuid).await;
        if let Some(pid) = process::running_pid(&paths, uuid) {
            process::stop(&paths, uuid, pid).await?;
        }
        match std::fs::remove_dir_all(&paths.dir) {
            Ok(()) => tracing::info!(server_id = uuid, "instance destroyed"),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(DriverError::Failed(format!(
                    "removing {} failed: {error}",
                    paths.dir.display()
                )));
            }
        }
        self.forget_lock(uuid, &guard);
        Ok(())
    }

    async fn power_off(&self, uuid: &str, timeout: Duration) -> Result<(), DriverError> {
        let (paths, _guard) = self.lock_existing(uuid).await?;
        self.shut_down(uuid, &paths, timeout).await?;
        // A suspended instance that is powered off boots afresh next time.
        remove_if_exists(&paths.suspend_state)?;
        tracing::info!(server_id = uuid, "instance powered off");
        Ok(())
    }

    async fn power_on(&self, uuid: &str) -> Result<(), DriverError> {
        let (paths, _guard) = self.lock_existing(uuid).await?;
        if process::running_pid(&paths, uuid).is_some() {
            return Ok(());
        }
        // Like libvirt starting a domain with a managed save image, a
        // suspended instance comes back with its memory.
        if paths.suspend_state.exists() {
            return self.restore(uuid, &paths).await;
        }
        let spec = read_spec(&paths)?;
        self.launch(&spec, &paths, None).await?;
        Ok(())
    }

    async fn reboot(&self, uuid: &str, hard: bool) -> Result<(), DriverError> {
        let (paths, _guard) = self.lock_existing(uuid).await?;
        let Some(pid) = process::running_pid(&paths, uuid) else {
            // Rebooting a stopped or suspended instance boots it afresh.
            remove_if_exists(&paths.suspend_state)?;
            process::remove_runtime_files(&paths)?;
            let spec = read_spec(&paths)?;
            self.launch(&spec, &paths, None).await?;
            return Ok(());
        };

        // QEMU has no ACPI reboot request, so a soft reboot powers the guest
        // off through ACPI and starts a new QEMU on the same disks.
        if !hard
            && self
                .acpi_shutdown(uuid, &paths, pid, SOFT_REBOOT_TIMEOUT)
                .await
        {
            process::remove_runtime_files(&paths)?;
            let spec = read_spec(&paths)?;
            self.launch(&spec, &paths, None).await?;
            tracing::info!(server_id = uuid, "instance rebooted through ACPI power-off");
            return Ok(());
        }
        if process::running_pid(&paths, uuid).is_none() {
            // The guest powered off after the soft reboot gave up waiting.
            let spec = read_spec(&paths)?;
            self.launch(&spec, &paths, None).await?;
            return Ok(());
        }

        qmp_execute(&paths, uuid, "system_reset", None).await?;
        if qmp_status(&paths, uuid).await? != "running" {
            qmp_execute(&paths, uuid, "cont", None).await?;
        }
        tracing::info!(server_id = uuid, hard, "instance reset");
        Ok(())
    }

    async fn pause(&self, uuid: &str) -> Result<(), DriverError> {
        let (paths, _guard) = self.lock_existing(uuid).await?;
        require_running(&paths, uuid, "pause")?;
        qmp_execute(&paths, uuid, "stop", None).await?;
        Ok(())
    }

    async fn unpause(&self, uuid: &str) -> Result<(), DriverError> {
        let (paths, _guard) = self.lock_existing(uuid).await?;
        require_running(&paths, uuid, "unpause")?;
        qmp_execute(&paths, uuid, "cont", None).await?;
        Ok(())
    }

    async fn suspend(&self, uuid: &str) -> Result<(), DriverError> {
        let (paths, _guard) = self.lock_existing(uuid).await?;
        let Some(pid) = process::running_pid(&paths, uuid) else {
            if paths.suspend_state.exists() {
                return Ok(());
            }
            return Err(not_running(uuid, "suspend"));
        };
        self.save_memory(uuid, &paths, pid).await
    }

    async fn resume(&self, uuid: &str) -> Result<(), DriverError> {
        let (paths, _guard) = self.lock_existing(uuid).await?;
        if process::running_pid(&paths, uuid).is_some() {
            return Ok(());
        }
        if !paths.suspend_state.exists() {
            return Err(DriverError::Failed(format!(
                "instance {uuid} has no saved memory to resume from; start it with power on instead"
            )));
        }
        self.restore(uuid, &paths).await
    }

    async fn info(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        let paths = self.existing_paths(uuid)?;
        Ok(InstanceInfo {
            power_state: self.power_state(uuid, &paths).await,
        })
    }

    async fn list(&self) -> Result<Vec<(String, PowerState)>, DriverError> {
        let entries = std::fs::read_dir(&self.config.instances_dir).map_err(|error| {
            DriverError::Failed(format!(
                "reading {} failed: {error}",
                self.config.instances_dir.display()
            ))
        })?;
        let mut uuids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().map(|kind| kind.is_dir()).unwrap_or(false))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| self.paths(name).is_ok())
            .collect();
        uuids.sort();

        let mut instances = Vec::with_capacity(uuids.len());
        for uuid in uuids {
            let paths = InstancePaths::new(&self.config.instances_dir, &uuid);
            let state = self.power_state(&uuid, &paths).await;
            instances.push((uuid, state));
        }
        Ok(instances)
    }

    async fn console_output(
        &self,
        uuid: &str,
        length: Option<usize>,
    ) -> Result<String, DriverError> {
        let paths = self.existing_paths(uuid)?;
        let text = read_console_tail(&paths.console_log)?;
        Ok(last_lines(&text, length))
    }

    /// Reports the sizes and MACs of the kept spec. Counters stay `None`.
    // TODO: read CPU, block and network counters over QMP.
    async fn diagnostics(&self, uuid: &str) -> Result<crate::Diagnostics, DriverError> {
        let paths = self.existing_paths(uuid)?;
        let spec = read_spec(&paths)?;
        let power_state = self.power_state(uuid, &paths).await;
        let cpus = (0..spec.vcpus)
            .map(|id| crate::CpuDiagnostics {
                id,
                ..Default::default()
            })
            .collect();
        let nics = spec
            .vifs
            .iter()
            .map(|vif| crate::NicDiagnostics {
                mac_address: Some(vif.mac.clone()),
                ..Default::default()
            })
            .collect();
        let mut disks = vec![crate::DiskDiagnostics::default()];
        if spec.config_drive.is_some() {
            disks.push(crate::DiskDiagnostics::default());
        }
        Ok(crate::Diagnostics {
            power_state,
            hypervisor: Some(self.accel.virt_type_name().to_owned()),
            hypervisor_os: Some(std::env::consts::OS.to_owned()),
            uptime_secs: None,
            config_drive: spec.config_drive.is_some(),
            memory_max_mb: Some(spec.memory_mb),
            memory_used_mb: None,
            cpus,
            nics,
            disks,
        })
    }
}

/// Maps QEMU's run state (QMP `query-status`) to Nova's power state.
pub fn power_state_from_run_state(status: &str) -> PowerState {
    match status {
        "running" | "colo" => PowerState::Running,
        "paused" | "prelaunch" | "inmigrate" | "io-error" | "watchdog" | "debug" | "restore-vm" => {
            PowerState::Paused
        }
        "finish-migrate" | "postmigrate" | "save-vm" | "suspended" => PowerState::Suspended,
        "shutdown" => PowerState::Shutdown,
        "internal-error" | "guest-panicked" => PowerState::Crashed,
        _ => PowerState::NoState,
    }
}

/// Returns the tool `name` from the folder of `qemu_binary`, or from `PATH` when
/// `qemu_binary` is a bare name.
fn sibling_tool(qemu_binary: &Path, name: &str) -> PathBuf {
    match qemu_binary.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join(name),
        _ => PathBuf::from(name),
    }
}

fn write_spec(spec: &InstanceSpec, paths: &InstancePaths) -> Result<(), DriverError> {
    let json = serde_json::to_vec_pretty(spec).map_err(|error| {
        DriverError::Failed(format!("serialising the instance spec failed: {error}"))
    })?;
    let partial = paths.dir.join("spec.json.part");
    std::fs::write(&partial, json)
        .and_then(|()| std::fs::rename(&partial, &paths.spec))
        .map_err(|error| {
            DriverError::Failed(format!("writing {} failed: {error}", paths.spec.display()))
        })
}

fn read_spec(paths: &InstancePaths) -> Result<InstanceSpec, DriverError> {
    let json = std::fs::read(&paths.spec).map_err(|error| {
        DriverError::Failed(format!(
            "reading {} failed ({error}); the instance cannot start without it, so rebuild or delete the server",
            paths.spec.display()
        ))
    })?;
    serde_json::from_slice(&json).map_err(|error| {
        DriverError::Failed(format!(
            "{} is not a valid instance spec: {error}",
            paths.spec.display()
        ))
    })
}

fn not_running(uuid: &str, action: &str) -> DriverError {
    DriverError::Failed(format!(
        "cannot {action} instance {uuid}: it is not running; power it on first"
    ))
}

fn require_running(paths: &InstancePaths, uuid: &str, action: &str) -> Result<u32, DriverError> {
    process::running_pid(paths, uuid).ok_or_else(|| not_running(uuid, action))
}

fn qmp_failed(uuid: &str, error: qmp::QmpError) -> DriverError {
    DriverError::Failed(format!(
        "controlling QEMU of instance {uuid} failed: {error}"
    ))
}

async fn qmp_connect(paths: &InstancePaths) -> Result<QmpClient, DriverError> {
    QmpClient::connect(&paths.qmp_socket)
        .await
        .map_err(|error| {
            DriverError::Failed(format!(
                "connecting to QMP at {} failed: {error}",
                paths.qmp_socket.display()
            ))
        })
}

/// Runs one QMP command in its own session, so no session outlives the
/// step that needs it.
async fn qmp_execute(
    paths: &InstancePaths,
    uuid: &str,
    command: &str,
    arguments: Option<Value>,
) -> Result<Value, DriverError> {
    let mut qmp = qmp_connect(paths).await?;
    qmp.execute(command, arguments)
        .await
        .map_err(|error| qmp_failed(uuid, error))
}

async fn qmp_status(paths: &InstancePaths, uuid: &str) -> Result<String, DriverError> {
    let mut qmp = qmp_connect(paths).await?;
    qmp.query_status()
        .await
        .map_err(|error| qmp_failed(uuid, error))
}

/// Polls `query-migrate` until the outgoing migration completes.
async fn wait_for_migration(paths: &InstancePaths, uuid: &str) -> Result<(), DriverError> {
    let deadline = Instant::now() + MEMORY_TRANSFER_TIMEOUT;
    loop {
        let reply = qmp_execute(paths, uuid, "query-migrate", None).await?;
        match reply
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("none")
        {
            "completed" => return Ok(()),
            "failed" | "cancelled" => {
                let reason = reply
                    .get("error-desc")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given");
                return Err(DriverError::Failed(format!(
                    "saving the memory of instance {uuid} failed: {reason}"
                )));
            }
            _ if Instant::now() >= deadline => {
                let _ = qmp_execute(paths, uuid, "migrate_cancel", None).await;
                return Err(DriverError::Failed(format!(
                    "saving the memory of instance {uuid} did not finish within {MEMORY_TRANSFER_TIMEOUT:?}"
                )));
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_states_map_to_power_states() {
        assert_eq!(power_state_from_run_state("running"), PowerState::Running);
        assert_eq!(power_state_from_run_state("paused"), PowerState::Paused);
        assert_eq!(
            power_state_from_run_state("postmigrate"),
            PowerState::Suspended
        );
        assert_eq!(power_state_from_run_state("shutdown"), PowerState::Shutdown);
        assert_eq!(
            power_state_from_run_state("guest-panicked"),
            PowerState::Crashed
        );
        assert_eq!(
            power_state_from_run_state("something-new"),
            PowerState::NoState
        );
    }

    #[test]
    fn qemu_img_comes_from_qemu_folder() {
        assert_eq!(
            sibling_tool(Path::new("/opt/qemu/bin/qemu-system-x86_64"), "qemu-img"),
            PathBuf::from("/opt/qemu/bin/qemu-img")
        );
        assert_eq!(
            sibling_tool(Path::new("qemu-system-x86_64"), "qemu-img"),
            PathBuf::from("qemu-img")
        );
    }

    #[test]
    fn long_instances_dir_is_rejected() {
        let config = QemuConfig {
            virt_type: VirtType::Qemu,
            ..QemuConfig::new(format!("/{}", "d".repeat(80)))
        };
        let error = QemuDriver::new(config)
            .err()
            .expect("a long path must be rejected")
            .to_string();
        assert!(error.contains("too long"), "{error}");
    }
}
