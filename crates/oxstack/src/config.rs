//! The configuration: defaults, then the TOML file, then command-line
//! options.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use oxstack_compute::ComputeConfig;
use oxstack_identity::IdentityConfig;
use oxstack_image::ImageConfig;
use oxstack_network::NetworkConfig;
use serde::Deserialize;

use crate::{CommonArgs, UpArgs};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5000";

/// The whole config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub identity: IdentityConfig,
    pub image: ImageConfig,
    pub network: NetworkConfig,
    pub netagent: NetAgentConfig,
    pub compute: ComputeConfig,
    pub hypervisor: HypervisorConfig,
}

/// The hypervisor driver that runs this host's servers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// One QEMU process per server, controlled over QMP.
    #[default]
    Qemu,
    /// Servers kept in memory, for API tests and scale tests.
    Fake,
}

impl DriverKind {
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Qemu => "qemu",
            DriverKind::Fake => "fake",
        }
    }
}

/// `[hypervisor]`: the compute agent's driver.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HypervisorConfig {
    pub driver: DriverKind,
    /// `kvm`, `qemu` (software emulation) or `auto` (KVM when /dev/kvm is
    /// usable) [default: auto].
    pub virt_type: String,
    /// The QEMU system emulator [default: qemu-system-x86_64 on PATH].
    pub qemu_binary: Option<PathBuf>,
}

impl Default for HypervisorConfig {
    fn default() -> Self {
        HypervisorConfig {
            driver: DriverKind::Qemu,
            virt_type: "auto".to_owned(),
            qemu_binary: None,
        }
    }
}

/// The physical network `bridge_mappings` maps when the config file does
/// not set it: the one devstack and the first `oxstack up` give the
/// external network `public`.
pub const DEFAULT_PHYSICAL_NETWORK: &str = "public";
/// The host bridge of [`DEFAULT_PHYSICAL_NETWORK`] by default, devstack's
/// name for it. `oxstack up` creates it when the mapping is the default.
pub const DEFAULT_EXTERNAL_BRIDGE: &str = "br-ex";

/// `[netagent]`: how this host's network agent reaches physical networks.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "NetAgentSection")]
pub struct NetAgentConfig {
    /// `PHYSNET:BRIDGE` pairs: the host bridge each physical network is
    /// plugged into (Neutron's `bridge_mappings`) [default: public:br-ex,
    /// a bridge `oxstack up` creates; an empty list maps nothing].
    pub bridge_mappings: Vec<String>,
    /// The address VXLAN tunnels of this host use [default: the listen
    /// address, or 127.0.0.1 when that is 0.0.0.0; one host needs no
    /// tunnel between hosts].
    pub tunneling_ip: Option<String>,
    /// The host name of this agent in bindings and `network agent list`
    /// [default: the kernel's host name].
    pub host: Option<String>,
    /// The dataplane that plugs networks into this host: `linux` (bridges, VXLAN,
    /// namespaces and dnsmasq; needs root) or `none` (the API only)
    /// [default: linux when the process may change the network (root),
    /// else none].
    pub dataplane: Option<DataplaneKind>,
    /// Whether the config file leaves `bridge_mappings` out, so that
    /// `bridge_mappings` contains the default rather than the operator's
    /// choice.
    pub(crate) bridge_mappings_defaulted: bool,
}

impl Default for NetAgentConfig {
    fn default() -> Self {
        NetAgentSection::default().into()
    }
}

impl NetAgentConfig {
    /// Returns the bridge that `oxstack up` creates and owns: br-ex while
    /// `bridge_mappings` is the default. A bridge the operator maps is
    /// never created, changed or deleted, even when it is called br-ex.
    pub fn default_bridge(&self) -> Option<&'static str> {
        let default = [format!(
            "{DEFAULT_PHYSICAL_NETWORK}:{DEFAULT_EXTERNAL_BRIDGE}"
        )];
        (self.bridge_mappings_defaulted && self.bridge_mappings == default)
            .then_some(DEFAULT_EXTERNAL_BRIDGE)
    }
}

/// `[netagent]` as the config file writes it, before defaults apply. Only
/// here can a missing `bridge_mappings` be distinguished from an empty one.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct NetAgentSection {
    bridge_mappings: Option<Vec<String>>,
    tunneling_ip: Option<String>,
    host: Option<String>,
    dataplane: Option<DataplaneKind>,
}

impl From<NetAgentSection> for NetAgentConfig {
    fn from(section: NetAgentSection) -> Self {
        let bridge_mappings_defaulted = section.bridge_mappings.is_none();
        let bridge_mappings = section.bridge_mappings.unwrap_or_else(|| {
            vec![format!(
                "{DEFAULT_PHYSICAL_NETWORK}:{DEFAULT_EXTERNAL_BRIDGE}"
            )]
        });
        NetAgentConfig {
            bridge_mappings,
            tunneling_ip: section.tunneling_ip,
            host: section.host,
            dataplane: section.dataplane,
            bridge_mappings_defaulted,
        }
    }
}

/// The dataplane of this host's network agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataplaneKind {
    /// Linux bridges, VXLAN devices, namespaces and dnsmasq.
    Linux,
    /// No dataplane: ports are bound and addressed, and nothing carries
    /// their traffic.
    None,
}

/// `[server]`: the listener, the data directory and the database.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    /// Log filter for the log file, in `tracing` env-filter syntax
    /// [default: info].
    pub log: Option<String>,
    /// Disk image registered as the public image `oxstack-guest` at start
    /// [default: tools/guest-image/out/oxstack-guest.qcow2 under the
    /// current directory, when it has been built].
    pub guest_image: Option<PathBuf>,
}

impl Config {
    /// Reads the config file named in `args`, if any, and applies the
    /// data-directory option.
    pub fn load(args: &CommonArgs) -> anyhow::Result<Self> {
        let mut config = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => Config::default(),
        };
        if let Some(dir) = &args.data_dir {
            config.server.data_dir = Some(dir.clone());
        }
        Ok(config)
    }

    /// Loads the config for `up`, applying its command-line options.
    pub fn for_up(args: &UpArgs) -> anyhow::Result<Self> {
        let mut config = Self::load(&args.common)?;
        if let Some(listen) = &args.listen {
            config.server.listen = Some(listen.clone());
        }
        if let Some(url) = &args.public_url {
            config.server.public_url = Some(url.clone());
        }
        if let Some(url) = &args.database_url {
            config.server.database_url = Some(url.clone());
        }
        if let Some(driver) = args.driver {
            config.hypervisor.driver = driver;
        }
        if let Some(virt_type) = &args.virt_type {
            config.hypervisor.virt_type = virt_type.clone();
        }
        Ok(config)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.server
            .data_dir
            .clone()
            .unwrap_or_else(default_data_dir)
    }

    pub fn fernet_key_dir(&self) -> PathBuf {
        self.identity
            .fernet_key_repository
            .clone()
            .unwrap_or_else(|| self.data_dir().join("fernet-keys"))
    }

    pub fn listen(&self) -> anyhow::Result<SocketAddr> {
        let text = self.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        text.parse().with_context(|| {
            format!("invalid listen address '{text}'; use ADDR:PORT such as {DEFAULT_LISTEN}")
        })
    }

    /// The URL clients use. An unspecified listen address (0.0.0.0) cannot
    /// be a client URL, so it becomes 127.0.0.1 unless `public_url` is set.
    pub fn public_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.server.public_url {
            return Ok(url.trim_end_matches('/').to_owned());
        }
        let listen = self.listen()?;
        let host = if listen.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else if listen.is_ipv6() {
            format!("[{}]", listen.ip())
        } else {
            listen.ip().to_string()
        };
        Ok(format!("http://{host}:{}", listen.port()))
    }

    /// The test guest image to register, if there is one.
    pub fn guest_image(&self) -> Option<PathBuf> {
        match &self.server.guest_image {
            Some(path) => Some(path.clone()),
            None => {
                let built = PathBuf::from("tools/guest-image/out/oxstack-guest.qcow2");
                built.is_file().then_some(built)
            }
        }
    }

    pub fn database_url(&self) -> String {
        self.server
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir().join("oxstack.db").display()))
    }
}

fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/oxstack");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("oxstack")
}

fn is_root() -> bool {
    // The owner of /proc/self is the effective user, so no libc call is needed.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_are_overridden_by_options() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("oxstack.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"127.0.0.1:6000\"\n[identity]\ntoken_expiration = 60\n",
        )
        .unwrap();
        let mut args = UpArgs::default();
        args.common.config = Some(file);
        let config = Config::for_up(&args).unwrap();
        assert_eq!(config.listen().unwrap().port(), 6000);
        assert_eq!(config.identity.token_expiration, 60);
        args.listen = Some("127.0.0.1:7000".into());
        assert_eq!(
            Config::for_up(&args).unwrap().listen().unwrap().port(),
            7000
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[server]\nlisen = \"x\"\n").unwrap();
        let args = CommonArgs {
            config: Some(file),
            data_dir: None,
        };
        let error = Config::load(&args).unwrap_err();
        assert!(format!("{error:#}").contains("lisen"), "{error:#}");
    }

    fn netagent_from(text: &str) -> NetAgentConfig {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("oxstack.toml");
        std::fs::write(&file, text).unwrap();
        Config::load(&CommonArgs {
            config: Some(file),
            data_dir: None,
        })
        .unwrap()
        .netagent
    }

    #[test]
    fn bridge_mappings_default_to_public_br_ex() {
        for text in ["", "[netagent]\nhost = \"node1\"\n"] {
            let netagent = netagent_from(text);
            assert_eq!(
                netagent.bridge_mappings,
                vec!["public:br-ex".to_owned()],
                "config {text:?}"
            );
            assert_eq!(netagent.default_bridge(), Some("br-ex"), "config {text:?}");
        }
        assert_eq!(NetAgentConfig::default().default_bridge(), Some("br-ex"));
    }

    #[test]
    fn empty_bridge_mappings_map_nothing() {
        let netagent = netagent_from("[netagent]\nbridge_mappings = []\n");
        assert!(netagent.bridge_mappings.is_empty());
        assert_eq!(netagent.default_bridge(), None);
    }

    #[test]
    fn configured_br_ex_is_not_created() {
        let netagent = netagent_from("[netagent]\nbridge_mappings = [\"public:br-ex\"]\n");
        assert_eq!(netagent.bridge_mappings, vec!["public:br-ex".to_owned()]);
        assert_eq!(
            netagent.default_bridge(),
            None,
            "an operator's br-ex is theirs"
        );
        let literal = NetAgentConfig {
            bridge_mappings: vec!["physnet1:br-ex".into()],
            ..Default::default()
        };
        assert_eq!(literal.default_bridge(), None);
    }

    #[test]
    fn unknown_netagent_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[netagent]\nbridge_mapping = []\n").unwrap();
        let error = Config::load(&CommonArgs {
            config: Some(file),
            data_dir: None,
        })
        .unwrap_err();
        assert!(format!("{error:#}").contains("bridge_mapping"), "{error:#}");
    }

    #[test]
    fn unspecified_listen_gives_loopback_url() {
        let config = Config {
            server: ServerConfig {
                listen: Some("0.0.0.0:5000".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(config.public_url().unwrap(), "http://127.0.0.1:5000");
    }
}
