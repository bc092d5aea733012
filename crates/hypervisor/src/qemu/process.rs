//! Starting, finding and stopping QEMU processes.
//!
//! QEMU runs in its own process group, with stdin closed and its output
//! appended to `qemu.log`, so it outlives the agent and ignores the
//! terminal's signals. A process counts as an instance's QEMU only when
//! its pid comes from the instance's pid file and its command line carries
//! `-name guest=<uuid>`, so a reused pid is never signalled.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::command::{guest_name_arg, InstancePaths};
use super::qmp::QmpClient;
use crate::DriverError;

/// Maximum time from QEMU's exec until QMP replies. Start-up does not run
/// guest code, so it is quick even under TCG. This bounds a QEMU that hangs,
/// for example on a locked disk.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Time to wait after each of QMP `quit`, SIGTERM and SIGKILL.
const STOP_STEP_TIMEOUT: Duration = Duration::from_secs(5);

const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Lines of `qemu.log` quoted in a start failure's message.
const LOG_TAIL_LINES: usize = 8;

/// Starts QEMU with `args` and waits until QMP replies to `query-status`.
/// Returns that status. On failure the process is killed and the error
/// quotes what QEMU printed.
pub async fn launch(
    qemu_binary: &Path,
    args: &[String],
    paths: &InstancePaths,
    uuid: &str,
) -> Result<String, DriverError> {
    // A socket left by a QEMU that died would accept no connection, but it
    // must not be mistaken for the new one's.
    remove_if_exists(&paths.qmp_socket)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.qemu_log)
        .map_err(|error| {
            DriverError::Failed(format!(
                "opening {} failed: {error}",
                paths.qemu_log.display()
            ))
        })?;
    let log_start = log.metadata().map(|meta| meta.len()).unwrap_or(0);
    let log_for_stderr = log.try_clone().map_err(|error| {
        DriverError::Failed(format!(
            "duplicating the handle of {} failed: {error}",
            paths.qemu_log.display()
        ))
    })?;

    let mut child = tokio::process::Command::new(qemu_binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_for_stderr))
        .process_group(0)
        .spawn()
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                DriverError::Failed(format!(
                    "{} not found; install qemu-system-x86",
                    qemu_binary.display()
                ))
            } else {
                DriverError::Failed(format!(
                    "starting {} failed: {error}",
                    qemu_binary.display()
                ))
            }
        })?;
    let pid = child.id();
    tracing::debug!(server_id = uuid, pid, "QEMU started");

    let deadline = Instant::now() + START_TIMEOUT;
    let failure = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break format!("QEMU exited during start-up ({status})");
        }
        match QmpClient::connect(&paths.qmp_socket).await {
            Ok(mut qmp) => match qmp.query_status().await {
                Ok(status) => {
                    // The task reaps QEMU when it exits while the agent runs.
                    // After the agent exits, init reaps it.
                    let server_id = uuid.to_owned();
                    tokio::spawn(async move {
                        match child.wait().await {
                            Ok(status) => tracing::info!(server_id, pid, %status, "QEMU exited"),
                            Err(error) => {
                                tracing::warn!(server_id, pid, %error, "waiting for QEMU failed")
                            }
                        }
                    });
                    return Ok(status);
                }
                Err(error) => break format!("QMP query-status failed: {error}"),
            },
            Err(_) if Instant::now() < deadline => tokio::time::sleep(POLL_INTERVAL).await,
            Err(error) => break format!("QMP did not answer within {START_TIMEOUT:?}: {error}"),
        }
    };

    let _ = child.start_kill();
    let _ = child.wait().await;
    let output = read_log_tail(&paths.qemu_log, log_start);
    Err(DriverError::Failed(format!(
        "{failure}. QEMU output: {output}"
    )))
}

/// Returns the last lines QEMU wrote to `qemu.log` since byte `start`.
fn read_log_tail(log: &Path, start: u64) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let since_start = text.get(start as usize..).unwrap_or_default();
    let text = String::from_utf8_lossy(since_start);
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    if lines.is_empty() {
        return "(none)".to_owned();
    }
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join(" | ")
}

/// Returns the pid of the instance's running QEMU, or `None` when it is not
/// running.
pub fn running_pid(paths: &InstancePaths, uuid: &str) -> Option<u32> {
    let text = std::fs::read_to_string(&paths.pid_file).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    is_instance_process(pid, uuid).then_some(pid)
}

/// Checks that `pid` is a live process whose command line names `uuid`.
/// A zombie's command line is empty, so an exited QEMU does not count.
pub fn is_instance_process(pid: u32, uuid: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let expected = guest_name_arg(uuid);
    cmdline
        .split(|byte| *byte == 0)
        .any(|arg| arg == expected.as_bytes())
}

/// Waits until the process is gone. Returns whether it exited within
/// `timeout`.
pub async fn wait_for_exit(pid: u32, uuid: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !is_instance_process(pid, uuid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Stops QEMU without a shutdown request to the guest: QMP `quit`, then
/// SIGTERM, then SIGKILL, waiting [`STOP_STEP_TIMEOUT`] after each.
pub async fn stop(paths: &InstancePaths, uuid: &str, pid: u32) -> Result<(), DriverError> {
    if let Ok(mut qmp) = QmpClient::connect_with_timeout(&paths.qmp_socket, STOP_STEP_TIMEOUT).await
    {
        // QEMU may close the socket before it replies to quit.
        let _ = qmp.execute("quit", None).await;
    }
    if wait_for_exit(pid, uuid, STOP_STEP_TIMEOUT).await {
        return Ok(());
    }

    for signal in [Signal::SIGTERM, Signal::SIGKILL] {
        tracing::warn!(server_id = uuid, pid, %signal, "QEMU still running, sending a signal");
        if !is_instance_process(pid, uuid) {
            return Ok(());
        }
        let _ = kill(Pid::from_raw(pid as i32), signal);
        if wait_for_exit(pid, uuid, STOP_STEP_TIMEOUT).await {
            return Ok(());
        }
    }
    Err(DriverError::Failed(format!(
        "QEMU process {pid} of instance {uuid} did not exit after SIGKILL; it may be stuck in the kernel (check its state in /proc/{pid}/status)"
    )))
}

/// Removes the QMP socket and pid file of a stopped QEMU.
pub fn remove_runtime_files(paths: &InstancePaths) -> Result<(), DriverError> {
    remove_if_exists(&paths.qmp_socket)?;
    remove_if_exists(&paths.pid_file)
}

pub fn remove_if_exists(path: &Path) -> Result<(), DriverError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(DriverError::Failed(format!(
            "removing {} failed: {error}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_not_an_instance() {
        assert!(!is_instance_process(
            std::process::id(),
            "7b0d4a4e-2c52-4d2f-9b4e-1d1f0f3b2a11"
        ));
    }

    #[test]
    fn missing_pid_file_means_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let paths = InstancePaths::new(dir.path(), "7b0d4a4e-2c52-4d2f-9b4e-1d1f0f3b2a11");
        assert_eq!(
            running_pid(&paths, "7b0d4a4e-2c52-4d2f-9b4e-1d1f0f3b2a11"),
            None
        );
    }

    #[test]
    fn foreign_pid_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let uuid = "7b0d4a4e-2c52-4d2f-9b4e-1d1f0f3b2a11";
        let paths = InstancePaths::new(dir.path(), uuid);
        std::fs::create_dir_all(&paths.dir).unwrap();
        std::fs::write(&paths.pid_file, format!("{}\n", std::process::id())).unwrap();
        assert_eq!(running_pid(&paths, uuid), None);
    }

    #[tokio::test]
    async fn launch_failure_quotes_qemu_output() {
        let dir = tempfile::tempdir().unwrap();
        let uuid = "7b0d4a4e-2c52-4d2f-9b4e-1d1f0f3b2a11";
        let paths = InstancePaths::new(dir.path(), uuid);
        std::fs::create_dir_all(&paths.dir).unwrap();
        // sh plays the part of a QEMU that rejects its command line.
        let args = vec![
            "-c".to_owned(),
            "echo 'qemu: -drive: invalid option' >&2; exit 1".to_owned(),
        ];

        let error = launch(Path::new("/bin/sh"), &args, &paths, uuid)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("exited during start-up"), "{error}");
        assert!(error.contains("qemu: -drive: invalid option"), "{error}");
    }

    #[tokio::test]
    async fn launch_of_missing_binary_names_package() {
        let dir = tempfile::tempdir().unwrap();
        let uuid = "7b0d4a4e-2c52-4d2f-9b4e-1d1f0f3b2a11";
        let paths = InstancePaths::new(dir.path(), uuid);
        std::fs::create_dir_all(&paths.dir).unwrap();

        let error = launch(
            Path::new("/nonexistent/qemu-system-x86_64"),
            &[],
            &paths,
            uuid,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(error.contains("install qemu-system-x86"), "{error}");
    }
}
