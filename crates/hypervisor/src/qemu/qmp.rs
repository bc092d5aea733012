//! A minimal QMP client: connects to a QEMU monitor socket, negotiates
//! capabilities and runs commands one at a time.
//!
//! QMP is line-delimited JSON: a greeting, then one reply per command
//! (matched by `id`), with asynchronous events interleaved. The `qapi`
//! crate generates types for the whole QEMU schema at build time, which
//! costs far more to compile than the few commands this driver sends, so
//! this client is written by hand over `serde_json::Value`.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// Maximum time of one exchange (connect with greeting, or one command).
/// QEMU replies from its main loop, so a healthy QEMU replies in
/// milliseconds. A stuck QEMU must not hang the agent.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP socket I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP protocol error: {0}")]
    Protocol(String),
    #[error("QMP command {command} failed: {class}: {description}")]
    Command {
        command: String,
        class: String,
        description: String,
    },
    #[error("QMP did not answer within {0:?}")]
    Timeout(Duration),
}

/// One QMP session. QEMU serves one client per monitor socket at a time,
/// so callers hold a session only for the commands they send now.
pub struct QmpClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    timeout: Duration,
}

impl QmpClient {
    /// Connects, reads the greeting and leaves capabilities negotiation
    /// mode, so commands can run.
    pub async fn connect(socket: &Path) -> Result<Self, QmpError> {
        Self::connect_with_timeout(socket, DEFAULT_TIMEOUT).await
    }

    pub async fn connect_with_timeout(socket: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let stream = tokio::time::timeout(timeout, UnixStream::connect(socket))
            .await
            .map_err(|_| QmpError::Timeout(timeout))??;
        let (read_half, writer) = stream.into_split();
        let mut client = QmpClient {
            reader: BufReader::new(read_half),
            writer,
            next_id: 0,
            timeout,
        };

        let greeting = tokio::time::timeout(timeout, client.read_message())
            .await
            .map_err(|_| QmpError::Timeout(timeout))??;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!(
                "expected the QMP greeting, got {greeting}"
            )));
        }
        client.execute("qmp_capabilities", None).await?;
        Ok(client)
    }

    /// Runs `command` and returns its `return` value. Events that arrive
    /// before the reply are skipped.
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.execute_inner(command, arguments))
            .await
            .map_err(|_| QmpError::Timeout(timeout))?
    }

    async fn execute_inner(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).await?;

        loop {
            let message = self.read_message().await?;
            if let Some(event) = message.get("event") {
                tracing::trace!(qmp_event = %event, "skipping QMP event");
                continue;
            }
            if message.get("id").and_then(Value::as_u64) != Some(id) {
                tracing::trace!(%message, "skipping QMP reply to another request");
                continue;
            }
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                let text = |key: &str| {
                    error
                        .get(key)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                return Err(QmpError::Command {
                    command: command.to_owned(),
                    class: text("class"),
                    description: text("desc"),
                });
            }
            return Err(QmpError::Protocol(format!(
                "reply without return or error: {message}"
            )));
        }
    }

    /// Runs `query-status` and returns QEMU's run state (`running`,
    /// `paused`, `inmigrate`, `postmigrate`, …).
    pub async fn query_status(&mut self) -> Result<String, QmpError> {
        let reply = self.execute("query-status", None).await?;
        reply
            .get("status")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| QmpError::Protocol(format!("query-status returned no status: {reply}")))
    }

    async fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).await? == 0 {
                return Err(QmpError::Protocol(
                    "QEMU closed the QMP connection".to_owned(),
                ));
            }
            if !line.trim().is_empty() {
                break;
            }
        }
        serde_json::from_str(&line).map_err(|error| {
            QmpError::Protocol(format!("invalid JSON from QEMU ({error}): {line}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    /// Serves one QMP session on `listener`: sends the greeting, then for
    /// each request writes the lines `reply` returns, with `{id}` replaced
    /// by the request's id.
    async fn serve_one(listener: UnixListener, reply: fn(&str) -> Vec<String>) -> Vec<Value> {
        let (stream, _) = listener.accept().await.unwrap();
        let (read_half, mut write_half) = stream.into_split();
        let mut reader = BufReader::new(read_half);
        write_half
            .write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7}}, \"capabilities\": [\"oob\"]}}\r\n")
            .await
            .unwrap();

        let mut requests = Vec::new();
        let mut line = String::new();
        while reader.read_line(&mut line).await.unwrap() > 0 {
            let request: Value = serde_json::from_str(&line).unwrap();
            let id = request["id"].to_string();
            let command = request["execute"].as_str().unwrap().to_owned();
            for out in reply(&command) {
                write_half
                    .write_all(out.replace("{id}", &id).as_bytes())
                    .await
                    .unwrap();
                write_half.write_all(b"\r\n").await.unwrap();
            }
            requests.push(request);
            line.clear();
        }
        requests
    }

    fn fake_qemu(command: &str) -> Vec<String> {
        match command {
            "qmp_capabilities" => vec![r#"{"return": {}, "id": {id}}"#.to_owned()],
            "query-status" => vec![
                r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}"#.to_owned(),
                r#"{"return": {"status": "running", "singlestep": false, "running": true}, "id": {id}}"#.to_owned(),
            ],
            "migrate" => vec![r#"{"error": {"class": "GenericError", "desc": "There's a migration process in progress"}, "id": {id}}"#.to_owned()],
            _ => vec![r#"{"error": {"class": "CommandNotFound", "desc": "The command does not exist"}, "id": {id}}"#.to_owned()],
        }
    }

    #[tokio::test]
    async fn client_negotiates_and_skips_events() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("qmp.sock");
        let server = tokio::spawn(serve_one(UnixListener::bind(&socket).unwrap(), fake_qemu));

        let mut client = QmpClient::connect(&socket).await.unwrap();
        assert_eq!(client.query_status().await.unwrap(), "running");

        let error = client
            .execute("migrate", Some(json!({"uri": "exec:cat"})))
            .await
            .unwrap_err();
        match error {
            QmpError::Command {
                command,
                class,
                description,
            } => {
                assert_eq!(command, "migrate");
                assert_eq!(class, "GenericError");
                assert!(description.contains("migration process"), "{description}");
            }
            other => panic!("expected a command error, got {other}"),
        }
        drop(client);

        let requests = server.await.unwrap();
        assert_eq!(requests[0]["execute"], "qmp_capabilities");
        assert_eq!(requests[1]["execute"], "query-status");
        assert_eq!(requests[2]["arguments"]["uri"], "exec:cat");
        assert_ne!(requests[1]["id"], requests[2]["id"]);
    }

    #[tokio::test]
    async fn client_rejects_missing_greeting() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.write_all(b"{\"hello\": 1}\n").await.unwrap();
        });

        let error = QmpClient::connect(&socket)
            .await
            .err()
            .expect("connect must fail");
        assert!(matches!(error, QmpError::Protocol(_)), "{error}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn client_times_out_on_silent_server() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("qmp.sock");
        let _listener = UnixListener::bind(&socket).unwrap();

        let error = QmpClient::connect_with_timeout(&socket, Duration::from_millis(200))
            .await
            .err()
            .unwrap();
        assert!(matches!(error, QmpError::Timeout(_)), "{error}");
    }
}
