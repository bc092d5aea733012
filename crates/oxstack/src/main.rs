//! The `oxstack` command: `up` runs the whole cloud in the foreground, and
//! `identity rotate-keys` rotates the Fernet token keys.

mod agent;
mod backends;
mod bootstrap_network;
mod compute_host;
mod config;
mod dataplane;
mod doctor;
mod files;
mod http;
mod progress;
#[cfg(test)]
mod testing;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "oxstack",
    version,
    about = "An OpenStack-compatible cloud in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set up (first time) and run the all-in-one cloud in the foreground.
    Up(UpArgs),
    /// Check this host against the configuration: bridges named in
    /// bridge_mappings, dnsmasq, nftables, QEMU, kernel modules, KVM, and
    /// the networks in the database whose physical network has no bridge
    /// mapping here.
    Doctor(CommonArgs),
    /// Identity service administration.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// This host's network agent.
    Netagent {
        #[command(subcommand)]
        command: NetagentCommand,
    },
}

#[derive(Subcommand)]
enum NetagentCommand {
    /// Remove every bridge, namespace, dnsmasq and nftables table this
    /// host's network agent created, as recorded in DATA_DIR/netagent. Stop
    /// `oxstack up` first; servers' QEMU processes are not touched.
    Teardown(CommonArgs),
}

/// Options shared by every command that reads the data directory.
#[derive(Args, Clone, Debug, Default)]
pub struct CommonArgs {
    /// TOML config file; command-line options override its values.
    #[arg(long, value_name = "FILE", env = "OXSTACK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for state: database, keys, openrc [default: /var/lib/oxstack
    /// as root, else $XDG_DATA_HOME/oxstack].
    #[arg(long, value_name = "DIR", env = "OXSTACK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args, Clone, Debug, Default)]
pub struct UpArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address and port of the API listener [default: 127.0.0.1:5000].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// URL clients reach the listener at, used in the catalog and version
    /// documents [default: http://LISTEN].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Database URL [default: sqlite://DATA_DIR/oxstack.db].
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Set the admin user's password (also on an existing cloud) instead of
    /// generating one.
    #[arg(long, value_name = "PASSWORD", env = "OXSTACK_ADMIN_PASSWORD")]
    pub admin_password: Option<String>,
    /// Hypervisor driver for this host's servers [default: qemu].
    #[arg(long, value_enum)]
    pub driver: Option<config::DriverKind>,
    /// QEMU acceleration: kvm, qemu (software emulation) or auto
    /// [default: auto, which uses KVM when /dev/kvm is usable].
    #[arg(long, value_name = "auto|kvm|qemu")]
    pub virt_type: Option<String>,
}

#[derive(Subcommand)]
enum IdentityCommand {
    /// Rotate the Fernet keys: the staged key becomes primary and a new
    /// staged key is written. A running `oxstack up` picks them up.
    RotateKeys(CommonArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Doctor(args) => {
            config::Config::load(&args).and_then(|config| doctor::run(&config))
        }
        Command::Identity {
            command: IdentityCommand::RotateKeys(args),
        } => rotate_keys(args),
        Command::Netagent {
            command: NetagentCommand::Teardown(args),
        } => netagent_teardown(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oxstack: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn netagent_teardown(args: CommonArgs) -> anyhow::Result<()> {
    let config = config::Config::load(&args)?;
    let data_dir = config.data_dir();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let removed = runtime.block_on(dataplane::teardown(&data_dir))?;
    println!(
        "Removed the devices of {} networks and {} routers recorded in {}",
        removed.networks,
        removed.routers,
        data_dir.join("netagent").display()
    );
    if let Some(bridge) = removed.bridge {
        println!("Removed the bridge {bridge}, which this data directory created for the external network");
    }
    Ok(())
}

fn rotate_keys(args: CommonArgs) -> anyhow::Result<()> {
    let config = config::Config::load(&args)?;
    let dir = config.fernet_key_dir();
    let repository = oxstack_identity::fernet::KeyRepository::open(&dir);
    if !dir.exists() {
        anyhow::bail!(
            "no Fernet keys in {}; run `oxstack up` once first",
            dir.display()
        );
    }
    let report = repository.rotate(config.identity.max_active_keys)?;
    println!("Rotated Fernet keys in {}: {report:?}", dir.display());
    Ok(())
}
