//! The `Nftables` trait over whole nftables tables, its `nft` command
//! implementation and an in-memory fake.
//!
//! The agent owns its tables outright and always replaces a table whole, in
//! one transaction, so a packet never meets a half-written ruleset. Each table
//! carries a comment with a SHA-256 fingerprint of its rendered body. When
//! the comment read back matches the expected rules, the agent leaves the
//! table untouched, so a restart replaces no identical table.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

/// Prefix of the fingerprint comment in every table the agent writes.
const FINGERPRINT_PREFIX: &str = "oxstack sha256:";

/// One nftables table as the agent renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftTable {
    /// `bridge`, `inet` or `ip`.
    pub family: &'static str,
    pub name: String,
    /// Chains and sets, one statement per line, without the enclosing
    /// `table … { }`.
    pub body: String,
}

impl NftTable {
    /// Returns the fingerprint of the body, as stored in the table comment.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.body.as_bytes());
        hex::encode(digest)
    }

    /// Returns the table's full text, comment included.
    pub fn render(&self) -> String {
        format!(
            "table {} {} {{\n\tcomment \"{FINGERPRINT_PREFIX}{}\"\n{}}}\n",
            self.family,
            self.name,
            self.fingerprint(),
            self.body
        )
    }
}

/// Identifies a table: family and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRef<'a> {
    pub family: &'static str,
    pub name: &'a str,
}

/// Whole-table access to nftables in the host or in a named namespace
/// (`namespace` `None` is the agent's own).
#[async_trait]
pub trait Nftables: Send + Sync {
    /// Returns the fingerprint stored in the table, `Some("")` for a table
    /// without one (not written by this agent), `None` when it is absent.
    async fn fingerprint(
        &self,
        namespace: Option<&str>,
        table: TableRef<'_>,
    ) -> Result<Option<String>, NftError>;

    /// Replaces each table with its new content, all in one transaction.
    async fn replace(&self, namespace: Option<&str>, tables: &[NftTable]) -> Result<(), NftError>;

    /// Deletes a table. A missing table is not an error.
    async fn delete(&self, namespace: Option<&str>, table: TableRef<'_>) -> Result<(), NftError>;
}

/// Failure of one nftables operation.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("running nft failed; install Debian's nftables package")]
    Spawn(#[source] std::io::Error),
    #[error("nft {operation} exited with {status}: {stderr}")]
    Failed {
        operation: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("blocking nft task panicked or was cancelled")]
    Task(#[source] tokio::task::JoinError),
    #[error("injected failure in nft {operation}")]
    Injected { operation: &'static str },
}

/// Renders the transaction that replaces `tables`. Declaring a table before
/// deleting it makes the delete succeed whether or not it existed.
pub(crate) fn replace_script(tables: &[NftTable]) -> String {
    let mut script = String::new();
    for table in tables {
        script.push_str(&format!("table {} {}\n", table.family, table.name));
        script.push_str(&format!("delete table {} {}\n", table.family, table.name));
        script.push_str(&table.render());
    }
    script
}

/// Extracts the fingerprint from `nft list table` output. The table's own
/// comment is the only one indented by exactly one tab.
fn parse_fingerprint(listing: &str) -> String {
    listing
        .lines()
        .find_map(|line| line.strip_prefix("\tcomment \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .and_then(|comment| comment.strip_prefix(FINGERPRINT_PREFIX))
        .unwrap_or_default()
        .to_string()
}

/// nftables through Debian's `nft` binary. `ip netns exec` reaches the
/// tables of another namespace.
#[derive(Debug, Clone, Default)]
pub struct NftCommand;

impl NftCommand {
    pub fn new() -> Self {
        Self
    }

    fn command(namespace: Option<&str>) -> Command {
        match namespace {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace, "nft"]);
                command
            }
            None => Command::new("nft"),
        }
    }

    fn run(
        operation: &'static str,
        mut command: Command,
        input: Option<String>,
    ) -> Result<std::process::Output, NftError> {
        command
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(NftError::Spawn)?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(input.as_bytes()).map_err(NftError::Spawn)?;
        }
        let output = child.wait_with_output().map_err(NftError::Spawn)?;
        if !output.status.success() {
            return Err(NftError::Failed {
                operation,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(output)
    }

    async fn blocking<T: Send + 'static>(
        work: impl FnOnce() -> Result<T, NftError> + Send + 'static,
    ) -> Result<T, NftError> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(NftError::Task)?
    }
}

/// Returns whether nft's complaint means the table does not exist.
fn is_missing_table(error: &NftError) -> bool {
    matches!(error, NftError::Failed { stderr, .. } if stderr.contains("No such file or directory"))
}

#[async_trait]
impl Nftables for NftCommand {
    async fn fingerprint(
        &self,
        namespace: Option<&str>,
        table: TableRef<'_>,
    ) -> Result<Option<String>, NftError> {
        let mut command = Self::command(namespace);
        command.args(["list", "table", table.family, table.name]);
        Self::blocking(move || match Self::run("list table", command, None) {
            Ok(output) => Ok(Some(parse_fingerprint(&String::from_utf8_lossy(
                &output.stdout,
            )))),
            Err(error) if is_missing_table(&error) => Ok(None),
            Err(error) => Err(error),
        })
        .await
    }

    async fn replace(&self, namespace: Option<&str>, tables: &[NftTable]) -> Result<(), NftError> {
        let mut command = Self::command(namespace);
        command.args(["-f", "-"]);
        let script = replace_script(tables);
        Self::blocking(move || Self::run("replace tables", command, Some(script)).map(|_| ())).await
    }

    async fn delete(&self, namespace: Option<&str>, table: TableRef<'_>) -> Result<(), NftError> {
        let mut command = Self::command(namespace);
        command.args(["delete", "table", table.family, table.name]);
        Self::blocking(move || match Self::run("delete table", command, None) {
            Err(error) if is_missing_table(&error) => Ok(()),
            result => result.map(|_| ()),
        })
        .await
    }
}

/// A change made by [`RecordingNftables`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NftOp {
    Replace {
        namespace: Option<String>,
        family: &'static str,
        name: String,
    },
    Delete {
        namespace: Option<String>,
        family: &'static str,
        name: String,
    },
}

type TableKey = (Option<String>, &'static str, String);

#[derive(Debug, Default)]
struct FakeTables {
    tables: BTreeMap<TableKey, NftTable>,
    ops: Vec<NftOp>,
    fail_on: Option<&'static str>,
}

/// In-memory [`Nftables`] that keeps the tables it was given and records
/// every replace and delete.
#[derive(Debug, Default)]
pub struct RecordingNftables {
    state: Mutex<FakeTables>,
}

impl RecordingNftables {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later call of the named trait method (`"fingerprint"`,
    /// `"replace"` or `"delete"`) fail until [`Self::clear_failure`].
    pub fn fail_on(&self, operation: &'static str) {
        self.lock().fail_on = Some(operation);
    }

    pub fn clear_failure(&self) {
        self.lock().fail_on = None;
    }

    pub fn take_ops(&self) -> Vec<NftOp> {
        std::mem::take(&mut self.lock().ops)
    }

    /// Returns a table's rendered text, comment included.
    pub fn table(&self, namespace: Option<&str>, family: &str, name: &str) -> Option<String> {
        self.lock()
            .tables
            .iter()
            .find(|((ns, f, n), _)| ns.as_deref() == namespace && *f == family && n == name)
            .map(|(_, table)| table.render())
    }

    /// Returns every table as (namespace, family, name).
    pub fn tables(&self) -> Vec<(Option<String>, String, String)> {
        self.lock()
            .tables
            .keys()
            .map(|(ns, f, n)| (ns.clone(), f.to_string(), n.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeTables> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn begin(
        &self,
        operation: &'static str,
    ) -> Result<std::sync::MutexGuard<'_, FakeTables>, NftError> {
        let state = self.lock();
        if state.fail_on == Some(operation) {
            return Err(NftError::Injected { operation });
        }
        Ok(state)
    }
}

#[async_trait]
impl Nftables for RecordingNftables {
    async fn fingerprint(
        &self,
        namespace: Option<&str>,
        table: TableRef<'_>,
    ) -> Result<Option<String>, NftError> {
        let state = self.begin("fingerprint")?;
        let key = (
            namespace.map(str::to_string),
            table.family,
            table.name.to_string(),
        );
        Ok(state.tables.get(&key).map(NftTable::fingerprint))
    }

    async fn replace(&self, namespace: Option<&str>, tables: &[NftTable]) -> Result<(), NftError> {
        let mut state = self.begin("replace")?;
        for table in tables {
            let key = (
                namespace.map(str::to_string),
                table.family,
                table.name.clone(),
            );
            state.tables.insert(key, table.clone());
            state.ops.push(NftOp::Replace {
                namespace: namespace.map(str::to_string),
                family: table.family,
                name: table.name.clone(),
            });
        }
        Ok(())
    }

    async fn delete(&self, namespace: Option<&str>, table: TableRef<'_>) -> Result<(), NftError> {
        let mut state = self.begin("delete")?;
        let key = (
            namespace.map(str::to_string),
            table.family,
            table.name.to_string(),
        );
        if state.tables.remove(&key).is_some() {
            state.ops.push(NftOp::Delete {
                namespace: namespace.map(str::to_string),
                family: table.family,
                name: table.name.to_string(),
            });
        }
        Ok(())
    }
}

/// Forgets every table of a namespace, as the kernel does when the namespace
/// is deleted.
impl RecordingNftables {
    pub fn drop_namespace(&self, namespace: &str) {
        self.lock()
            .tables
            .retain(|(ns, _, _), _| ns.as_deref() != Some(namespace));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> NftTable {
        NftTable {
            family: "inet",
            name: "oxstack".into(),
            body:
                "\tchain forward {\n\t\ttype filter hook forward priority 0; policy accept;\n\t}\n"
                    .into(),
        }
    }

    #[test]
    fn replace_script_declares_deletes_recreates() {
        let script = replace_script(&[table()]);
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines[0], "table inet oxstack");
        assert_eq!(lines[1], "delete table inet oxstack");
        assert_eq!(lines[2], "table inet oxstack {");
        assert!(lines[3].starts_with("\tcomment \"oxstack sha256:"));
    }

    #[test]
    fn fingerprint_read_back_from_listing() {
        let table = table();
        // nft prints the table comment on its own line, then the chains.
        let listing = format!(
            "table inet oxstack {{\n\tcomment \"oxstack sha256:{}\"\n\tchain forward {{\n\t\tcomment \"x\"\n\t}}\n}}\n",
            table.fingerprint()
        );
        assert_eq!(parse_fingerprint(&listing), table.fingerprint());
        assert_eq!(parse_fingerprint("table inet oxstack {\n}\n"), "");
    }

    #[test]
    fn fingerprint_changes_with_the_body() {
        let mut other = table();
        other.body.push_str("\tchain x {\n\t}\n");
        assert_ne!(table().fingerprint(), other.fingerprint());
        assert_eq!(table().fingerprint().len(), 64);
    }
}
