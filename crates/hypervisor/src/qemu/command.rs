//! The files of one instance and the QEMU command line that runs it.

use std::path::{Path, PathBuf};

use super::virt::Accel;
use crate::{DriverError, InstanceSpec};

/// The files of one instance under `instances_dir/<uuid>/`.
#[derive(Debug, Clone)]
pub struct InstancePaths {
    pub dir: PathBuf,
    /// The root disk, a qcow2 overlay on the cached image.
    pub disk: PathBuf,
    /// The ISO 9660 config drive.
    pub config_drive: PathBuf,
    /// The log of the first serial port. QEMU appends to it, so it keeps
    /// earlier boots.
    pub console_log: PathBuf,
    /// QEMU's own stdout and stderr, appended across launches.
    pub qemu_log: PathBuf,
    pub qmp_socket: PathBuf,
    pub pid_file: PathBuf,
    /// The [`InstanceSpec`] as JSON, so the instance can start again.
    pub spec: PathBuf,
    /// Guest memory saved by suspend.
    pub suspend_state: PathBuf,
}

impl InstancePaths {
    pub fn new(instances_dir: &Path, uuid: &str) -> Self {
        let dir = instances_dir.join(uuid);
        InstancePaths {
            disk: dir.join("disk"),
            config_drive: dir.join("disk.config"),
            console_log: dir.join("console.log"),
            qemu_log: dir.join("qemu.log"),
            qmp_socket: dir.join("qmp.sock"),
            pid_file: dir.join("qemu.pid"),
            spec: dir.join("spec.json"),
            suspend_state: dir.join("suspend.state"),
            dir,
        }
    }
}

/// Returns the value of `-name`. `/proc/<pid>/cmdline` must contain it for a
/// process to count as this instance's QEMU.
pub fn guest_name_arg(uuid: &str) -> String {
    format!("guest={uuid}")
}

/// Builds QEMU's arguments (without the binary) for `spec`. With
/// `incoming`, QEMU starts paused and loads guest memory from that file.
pub fn build_command_line(
    spec: &InstanceSpec,
    paths: &InstancePaths,
    accel: Accel,
    incoming: Option<&Path>,
) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|item| (*item).to_owned()));

    push(&["-name", &guest_name_arg(&spec.uuid)]);
    // The "pc" machine because the guest images we target find a config
    // drive on its IDE CD-ROM, and q35 offers only a SATA one.
    push(&["-machine", &format!("pc,accel={}", accel.qemu_name())]);
    if accel == Accel::Kvm {
        push(&["-cpu", "host"]);
    }
    push(&[
        "-smp",
        &spec.vcpus.max(1).to_string(),
        "-m",
        &spec.memory_mb.to_string(),
    ]);
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-vga",
        "none",
    ]);
    let rtc_base = if spec.image.properties.get("os_type").map(String::as_str) == Some("windows") {
        "localtime"
    } else {
        "utc"
    };
    push(&["-rtc", &format!("base={rtc_base}")]);

    push(&[
        "-chardev",
        &format!(
            "file,id=console0,path={},append=on",
            opt_path(&paths.console_log)
        ),
    ]);
    push(&["-serial", "chardev:console0"]);

    push(&[
        "-drive",
        &format!(
            "file={},format=qcow2,if=none,id=root-disk",
            opt_path(&paths.disk)
        ),
    ]);
    push(&["-device", "virtio-blk-pci,drive=root-disk,bootindex=0"]);
    if spec.config_drive.is_some() {
        push(&[
            "-drive",
            &format!(
                "file={},format=raw,if=none,id=config-drive,media=cdrom,readonly=on",
                opt_path(&paths.config_drive)
            ),
        ]);
        push(&["-device", "ide-cd,drive=config-drive,bus=ide.1"]);
    }

    for (index, vif) in spec.vifs.iter().enumerate() {
        // QEMU creates the tap, and the network agent plugs it into the bridge.
        push(&[
            "-netdev",
            &format!(
                "tap,id=net{index},ifname={},script=no,downscript=no",
                vif.tap
            ),
        ]);
        let mut device = format!("virtio-net-pci,netdev=net{index},mac={}", vif.mac);
        if vif.mtu > 0 {
            // The host_mtu property passes the network's MTU to the guest's
            // virtio-net driver, as Neutron's DHCP MTU option would.
            device.push_str(&format!(",host_mtu={}", vif.mtu));
        }
        push(&["-device", &device]);
    }

    push(&[
        "-qmp",
        &format!("unix:{},server=on,wait=off", opt_path(&paths.qmp_socket)),
    ]);
    push(&["-pidfile", &paths.pid_file.to_string_lossy()]);

    if let Some(state) = incoming {
        // -S keeps the guest paused after loading, so resume decides when
        // it runs, whatever its state was when suspended.
        push(&[
            "-S",
            "-incoming",
            &format!("exec:cat < {}", shell_quote(&state.to_string_lossy())),
        ]);
    }
    args
}

/// Checks the values that go into QEMU options unescaped, so none can
/// add options of its own (a comma in a tap name would).
pub fn validate_spec(spec: &InstanceSpec) -> Result<(), DriverError> {
    if spec.vcpus == 0 || spec.memory_mb == 0 {
        return Err(DriverError::Failed(format!(
            "instance {} needs at least 1 vCPU and 1 MiB of memory (got {} vCPUs, {} MiB)",
            spec.uuid, spec.vcpus, spec.memory_mb
        )));
    }
    for vif in &spec.vifs {
        // Linux interface names have at most 15 bytes (IFNAMSIZ - 1).
        let tap_valid = !vif.tap.is_empty()
            && vif.tap.len() <= 15
            && vif
                .tap
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !tap_valid {
            return Err(DriverError::Failed(format!(
                "tap name {:?} of port {} is invalid; it must be 1 to 15 letters, digits, '-' or '_'",
                vif.tap, vif.port_id
            )));
        }
        let octets: Vec<&str> = vif.mac.split(':').collect();
        let mac_valid = octets.len() == 6
            && octets
                .iter()
                .all(|octet| octet.len() == 2 && octet.chars().all(|c| c.is_ascii_hexdigit()));
        if !mac_valid {
            return Err(DriverError::Failed(format!(
                "MAC address {:?} of port {} is invalid; expected six hexadecimal octets separated by ':'",
                vif.mac, vif.port_id
            )));
        }
    }
    Ok(())
}

/// Escapes a path for a QEMU option value, where a comma separates options
/// and a doubled comma is a literal one.
fn opt_path(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

/// Quotes `value` for `/bin/sh`, which runs QEMU's `exec:` migration URIs.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{ImageSource, Vif};

    fn spec() -> InstanceSpec {
        InstanceSpec {
            uuid: "7b0d4a4e-2c52-4d2f-9b4e-1d1f0f3b2a11".to_owned(),
            name: "vm-1".to_owned(),
            vcpus: 2,
            memory_mb: 256,
            root_gb: 1,
            image: ImageSource {
                id: "image-1".to_owned(),
                path: PathBuf::from("/images/image-1"),
                disk_format: "qcow2".to_owned(),
                properties: BTreeMap::new(),
            },
            vifs: vec![
                Vif {
                    port_id: "11111111-2222-3333-4444-555555555555".to_owned(),
                    network_id: "net-a".to_owned(),
                    mac: "fa:16:3e:00:00:01".to_owned(),
                    mtu: 1450,
                    tap: "tap11111111-22".to_owned(),
                },
                Vif {
                    port_id: "66666666-7777-8888-9999-000000000000".to_owned(),
                    network_id: "net-b".to_owned(),
                    mac: "fa:16:3e:00:00:02".to_owned(),
                    mtu: 0,
                    tap: "tap66666666-77".to_owned(),
                },
            ],
            config_drive: None,
        }
    }

    fn paths() -> InstancePaths {
        InstancePaths::new(
            Path::new("/var/lib/oxstack/instances"),
            "7b0d4a4e-2c52-4d2f-9b4e-1d1f0f3b2a11",
        )
    }

    /// Returns the value that follows `flag`, for flags given once.
    fn value_of<'a>(args: &'a [String], flag: &str) -> &'a str {
        let index = args
            .iter()
            .position(|arg| arg == flag)
            .unwrap_or_else(|| panic!("{flag} missing in {args:?}"));
        &args[index + 1]
    }

    /// Returns every value that follows `flag`.
    fn values_of<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|pair| pair[0] == flag)
            .map(|pair| pair[1].as_str())
            .collect()
    }

    #[test]
    fn command_line_for_tcg() {
        let args = build_command_line(&spec(), &paths(), Accel::Tcg, None);
        assert_eq!(
            value_of(&args, "-name"),
            "guest=7b0d4a4e-2c52-4d2f-9b4e-1d1f0f3b2a11"
        );
        assert_eq!(value_of(&args, "-machine"), "pc,accel=tcg");
        assert!(
            !args.contains(&"-cpu".to_owned()),
            "TCG keeps QEMU's default CPU model: {args:?}"
        );
        assert_eq!(value_of(&args, "-smp"), "2");
        assert_eq!(value_of(&args, "-m"), "256");
        assert_eq!(value_of(&args, "-rtc"), "base=utc");
        assert!(args.contains(&"-nodefaults".to_owned()));
        assert_eq!(value_of(&args, "-vga"), "none");
        assert_eq!(value_of(&args, "-display"), "none");
        assert_eq!(
            value_of(&args, "-qmp"),
            "unix:/var/lib/oxstack/instances/7b0d4a4e-2c52-4d2f-9b4e-1d1f0f3b2a11/qmp.sock,server=on,wait=off"
        );
        assert_eq!(
            value_of(&args, "-pidfile"),
            "/var/lib/oxstack/instances/7b0d4a4e-2c52-4d2f-9b4e-1d1f0f3b2a11/qemu.pid"
        );
        assert!(value_of(&args, "-chardev").ends_with("/console.log,append=on"));
        assert!(!args.contains(&"-incoming".to_owned()));
        assert!(!args.contains(&"-daemonize".to_owned()));
    }

    #[test]
    fn kvm_command_uses_host_cpu() {
        let args = build_command_line(&spec(), &paths(), Accel::Kvm, None);
        assert_eq!(value_of(&args, "-machine"), "pc,accel=kvm");
        assert_eq!(value_of(&args, "-cpu"), "host");
    }

    #[test]
    fn command_line_windows_clock_is_localtime() {
        let mut spec = spec();
        spec.image
            .properties
            .insert("os_type".to_owned(), "windows".to_owned());
        let args = build_command_line(&spec, &paths(), Accel::Tcg, None);
        assert_eq!(value_of(&args, "-rtc"), "base=localtime");
    }

    #[test]
    fn each_vif_gets_tap_and_mac() {
        let args = build_command_line(&spec(), &paths(), Accel::Tcg, None);
        assert_eq!(
            values_of(&args, "-netdev"),
            vec![
                "tap,id=net0,ifname=tap11111111-22,script=no,downscript=no",
                "tap,id=net1,ifname=tap66666666-77,script=no,downscript=no",
            ]
        );
        let devices = values_of(&args, "-device");
        assert!(
            devices.contains(&"virtio-net-pci,netdev=net0,mac=fa:16:3e:00:00:01,host_mtu=1450"),
            "{devices:?}"
        );
        assert!(
            devices.contains(&"virtio-net-pci,netdev=net1,mac=fa:16:3e:00:00:02"),
            "{devices:?}"
        );
    }

    #[test]
    fn command_line_root_disk_is_virtio() {
        let args = build_command_line(&spec(), &paths(), Accel::Tcg, None);
        let drives = values_of(&args, "-drive");
        assert_eq!(drives.len(), 1, "no config drive requested: {drives:?}");
        assert!(
            drives[0].contains("/disk,format=qcow2,if=none,id=root-disk"),
            "{drives:?}"
        );
        assert!(values_of(&args, "-device").contains(&"virtio-blk-pci,drive=root-disk,bootindex=0"));
    }

    #[test]
    fn config_drive_is_ide_cdrom() {
        let mut spec = spec();
        spec.config_drive = Some(BTreeMap::new());
        let args = build_command_line(&spec, &paths(), Accel::Tcg, None);
        let drives = values_of(&args, "-drive");
        assert_eq!(drives.len(), 2, "{drives:?}");
        assert!(drives[1].contains("/disk.config,format=raw"), "{drives:?}");
        assert!(drives[1].contains("media=cdrom,readonly=on"), "{drives:?}");
        assert!(values_of(&args, "-device").contains(&"ide-cd,drive=config-drive,bus=ide.1"));
    }

    #[test]
    fn command_line_incoming_starts_paused() {
        let state = Path::new("/var/lib/oxstack/instances/x/suspend.state");
        let args = build_command_line(&spec(), &paths(), Accel::Tcg, Some(state));
        assert!(args.contains(&"-S".to_owned()));
        assert_eq!(
            value_of(&args, "-incoming"),
            "exec:cat < '/var/lib/oxstack/instances/x/suspend.state'"
        );
    }

    #[test]
    fn command_line_escapes_commas_in_paths() {
        let paths = InstancePaths::new(
            Path::new("/data/a,b"),
            "7b0d4a4e-2c52-4d2f-9b4e-1d1f0f3b2a11",
        );
        let args = build_command_line(&spec(), &paths, Accel::Tcg, None);
        assert!(
            values_of(&args, "-drive")[0].starts_with("file=/data/a,,b/"),
            "{args:?}"
        );
    }

    #[test]
    fn spec_with_valid_vifs_passes() {
        assert!(validate_spec(&spec()).is_ok());
    }

    #[test]
    fn tap_name_with_comma_is_rejected() {
        let mut spec = spec();
        spec.vifs[0].tap = "tap0,script=/x".to_owned();
        let error = validate_spec(&spec).unwrap_err().to_string();
        assert!(error.contains("tap name"), "{error}");
    }

    #[test]
    fn tap_name_too_long_is_rejected() {
        let mut spec = spec();
        spec.vifs[0].tap = "tap0123456789abc".to_owned();
        assert!(validate_spec(&spec).is_err());
    }

    #[test]
    fn malformed_mac_is_rejected() {
        for mac in [
            "fa:16:3e:00:00",
            "fa:16:3e:00:00:0g",
            "fa:16:3e:00:00:01,x=1",
        ] {
            let mut spec = spec();
            spec.vifs[0].mac = mac.to_owned();
            assert!(validate_spec(&spec).is_err(), "{mac:?} must be rejected");
        }
    }

    #[test]
    fn shell_quote_escapes_single_quotes() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
