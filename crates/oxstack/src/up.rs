//! `oxstack up`: the all-in-one cloud in the foreground. It prepares the
//! data directory, opens (or creates) the database, bootstraps what is
//! missing, writes the client files and serves until SIGINT or SIGTERM.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use oxstack_compute::{Backends, ComputeService};
use oxstack_core::metrics::Metrics;
use oxstack_identity::bootstrap::{self, CatalogEntry};
use oxstack_identity::Identity;
use oxstack_image::{ImageService, Visibility};
use oxstack_network::NetworkService;
use oxstack_placement::PlacementService;
use oxstack_store::Store;

use crate::backends::image::GlanceBackend;
use crate::backends::network::NeutronBackend;
use crate::config::Config;
use crate::files;
use crate::progress::Progress;
use crate::UpArgs;

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let config = Config::for_up(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(config, args.admin_password))
}

async fn serve(config: Config, given_password: Option<String>) -> anyhow::Result<()> {
    let data_dir = config.data_dir();
    let listen = config.listen()?;
    let public_url = config.public_url()?;
    let mut progress = Progress::new(if config.guest_image().is_some() {
        11
    } else {
        10
    });

    progress
        .step("Preparing data directory", async {
            prepare_data_dir(&data_dir, &config)
        })
        .await?;

    let database_url = config.database_url();
    let store = progress
        .step("Opening database", async {
            Store::connect(&database_url)
                .await
                .context("cannot open the database")
        })
        .await?;

    let identity = progress
        .step("Starting identity service", async {
            Identity::open(
                store.clone(),
                config.identity.clone(),
                &data_dir,
                public_url.clone(),
            )
            .await
            .context("cannot start the identity service")
        })
        .await?;

    let images = progress
        .step("Starting image service", async {
            ImageService::open(
                store.clone(),
                config.image.clone(),
                &data_dir,
                public_url.clone(),
            )
            .await
            .context("cannot start the image service")
        })
        .await?;

    let networks = progress
        .step("Starting network service", async {
            NetworkService::open(store.clone(), config.network.clone(), public_url.clone())
                .await
                .context("cannot start the network service")
        })
        .await?;

    let placement = progress
        .step("Starting placement service", async {
            PlacementService::open(store.clone(), public_url.clone())
                .await
                .context("cannot start the placement service")
        })
        .await?;

    let password = files::admin_password(&data_dir, given_password.as_deref())?;
    let bootstrapped = progress
        .step("Bootstrapping admin, roles and catalog", async {
            let services = catalog_entries(&public_url);
            bootstrap::run(&identity, &password, given_password.is_some(), &services)
                .await
                .map_err(|e| anyhow::anyhow!("bootstrap failed: {e}"))
        })
        .await?;
    files::write_client_files(&data_dir, &public_url, &password, &config.identity.region)?;

    if let Some(path) = config.guest_image() {
        let project_id = bootstrapped.admin_project_id.clone();
        progress
            .step(
                &format!("Registering test guest image {}", path.display()),
                async {
                    images
                        .register_image(
                            &path,
                            GUEST_IMAGE_NAME,
                            "qcow2",
                            &project_id,
                            Visibility::Public,
                        )
                        .await
                        .with_context(|| {
                            format!("cannot register the guest image {}", path.display())
                        })
                },
            )
            .await?;
    }

    let networks = Arc::new(networks);
    let images = Arc::new(images);
    let placement = Arc::new(placement);
    let host = crate::agent::host_name(&config);
    let report = crate::agent::agent_config(&config)?;
    crate::agent::start_reporting(networks.clone(), host.clone(), report).await?;
    let mut external_gateway = None;
    if bootstrapped.created && config.network.bootstrap {
        match crate::bootstrap_network::run(&networks, &bootstrapped.admin_project_id).await {
            Ok(created) => external_gateway = created.public_gateway,
            Err(error) => tracing::warn!(error = format!("{error:#}"), "cannot create the networks public, private and router1; create them with the openstack CLI"),
        }
    }

    // The metadata API listens on a loopback port of its own: it trusts the
    // instance identity the network agent's proxies send, so it is never
    // part of the public listener.
    let metadata_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot open a loopback port for the metadata API")?;
    let metadata_address = metadata_listener.local_addr()?;
    let network_agent = progress
        .step(
            "Starting network agent",
            crate::dataplane::start(
                networks.clone(),
                &config,
                &data_dir,
                Some(metadata_address),
                external_gateway,
            ),
        )
        .await?;

    let compute = progress
        .step(
            &format!(
                "Starting compute host {host} ({} driver)",
                config.hypervisor.driver.name()
            ),
            async {
                let backends = Backends {
                    images: Arc::new(GlanceBackend::new(images.clone())),
                    networks: Arc::new(NeutronBackend::new(networks.clone())),
                    placement: placement.clone(),
                    driver: crate::compute_host::driver(&config, &data_dir, network_agent.clone())?,
                    host: host.clone(),
                };
                let compute = ComputeService::open(
                    store.clone(),
                    config.compute.clone(),
                    public_url.clone(),
                    backends,
                )
                .await
                .context("cannot start the compute service")?;
                let compute = Arc::new(compute);
                compute
                    .start_host()
                    .await
                    .context("cannot register the compute host")?;
                anyhow::Ok(compute)
            },
        )
        .await?;
    tokio::spawn(oxstack_compute::metadata::serve_metadata(
        compute.clone(),
        metadata_listener,
    ));

    let identity = Arc::new(identity);
    let listener = progress
        .step(&format!("Listening on {listen}"), async {
            tokio::net::TcpListener::bind(listen).await.with_context(|| {
                format!("cannot listen on {listen}; is another oxstack or Keystone running? Choose another port with --listen")
            })
        })
        .await?;

    print_ready(&data_dir, &public_url, bootstrapped.created);
    tracing::info!(%listen, %public_url, "serving");
    let services = crate::http::Services {
        identity,
        images,
        networks,
        placement,
        compute,
    };
    let app = crate::http::app(services, Metrics::new());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    store.close().await;
    println!("oxstack stopped.");
    tracing::info!("stopped");
    Ok(())
}

/// The services this process serves, as the catalog lists them. Only
/// services that answer are listed: a catalog entry without a service
/// behind it breaks client commands that fan out, such as `quota show`.
fn catalog_entries(public_url: &str) -> Vec<CatalogEntry> {
    vec![
        CatalogEntry {
            service_type: "identity",
            name: "keystone",
            url: format!("{public_url}/v3"),
        },
        CatalogEntry {
            service_type: "image",
            name: "glance",
            url: format!("{public_url}/image"),
        },
        // Clients append /v2.0 themselves.
        CatalogEntry {
            service_type: "network",
            name: "neutron",
            url: format!("{public_url}/networking"),
        },
        CatalogEntry {
            service_type: "placement",
            name: "placement",
            url: format!("{public_url}/placement"),
        },
        CatalogEntry {
            service_type: "compute",
            name: "nova",
            url: format!("{public_url}/compute/v2.1"),
        },
    ]
}

/// The name the test guest image is registered under.
pub const GUEST_IMAGE_NAME: &str = "oxstack-guest";

fn prepare_data_dir(data_dir: &Path, config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let logs = data_dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    init_logging(
        &logs.join("oxstack.log"),
        config.server.log.as_deref().unwrap_or("info"),
    )
}

/// Logs go to DATA_DIR/logs/oxstack.log at the configured level, and
/// warnings and errors also to the terminal.
fn init_logging(path: &Path, filter: &str) -> anyhow::Result<()> {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log file {}", path.display()))?;
    let writer =
        std::sync::Mutex::new(file).and(std::io::stderr.with_max_level(tracing::Level::WARN));
    // netlink-packet-route warns on every link dump from a kernel newer than
    // the crate (unknown IFLA_INET6_CONF fields), but it reads the links
    // correctly.
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("netlink_packet_route=error,{filter}"))
            .with_context(|| format!("invalid log filter '{filter}'"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .ok();
    Ok(())
}

fn print_ready(data_dir: &Path, public_url: &str, first_start: bool) {
    let dir = data_dir.display();
    let state = if first_start {
        "is ready (first start)"
    } else {
        "is ready (resumed)"
    };
    println!();
    println!("OxStack {state} at {public_url}");
    println!("  Use it:    source {dir}/openrc && openstack token issue");
    println!("  or:        export OS_CLIENT_CONFIG_FILE={dir}/clouds.yaml OS_CLOUD=oxstack");
    println!("  Password:  {dir}/admin-password   Logs: {dir}/logs/oxstack.log");
    println!("  Stop with Ctrl-C.");
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on Linux");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    println!("\nStopping oxstack …");
}
