//! The files `oxstack up` writes for operators: the admin password,
//! `openrc` and `clouds.yaml`.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use rand::Rng;

pub const ADMIN_PASSWORD_FILE: &str = "admin-password";
pub const CLOUD_NAME: &str = "oxstack";

/// Returns the admin password: the one given, else the one stored, else a
/// new random one. Whatever is returned is stored, mode 0600.
pub fn admin_password(data_dir: &Path, given: Option<&str>) -> anyhow::Result<String> {
    let path = data_dir.join(ADMIN_PASSWORD_FILE);
    let password = match given {
        Some(password) => password.to_owned(),
        None => match std::fs::read_to_string(&path) {
            Ok(stored) if !stored.trim().is_empty() => return Ok(stored.trim().to_owned()),
            _ => generate_password(),
        },
    };
    write_private(&path, &format!("{password}\n"))?;
    Ok(password)
}

fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..24)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Writes `openrc` and `clouds.yaml` for the admin user.
pub fn write_client_files(
    data_dir: &Path,
    public_url: &str,
    password: &str,
    region: &str,
) -> anyhow::Result<()> {
    let openrc = format!(
        "# OxStack admin credentials: `source` this file, then run `openstack …`.\n\
         export OS_AUTH_URL={public_url}/v3\n\
         export OS_IDENTITY_API_VERSION=3\n\
         export OS_USERNAME=admin\n\
         export OS_PASSWORD='{password}'\n\
         export OS_PROJECT_NAME=admin\n\
         export OS_USER_DOMAIN_NAME=Default\n\
         export OS_PROJECT_DOMAIN_NAME=Default\n\
         export OS_REGION_NAME={region}\n\
         export OS_INTERFACE=public\n"
    );
    write_private(&data_dir.join("openrc"), &openrc)?;
    let clouds = format!(
        "# OxStack admin credentials: OS_CLIENT_CONFIG_FILE=this file OS_CLOUD={CLOUD_NAME} openstack …\n\
         clouds:\n  {CLOUD_NAME}:\n    auth:\n      auth_url: {public_url}/v3\n      username: admin\n      \
         password: '{password}'\n      project_name: admin\n      user_domain_name: Default\n      \
         project_domain_name: Default\n    region_name: {region}\n    interface: public\n    \
         identity_api_version: 3\n"
    );
    write_private(&data_dir.join("clouds.yaml"), &clouds)
}

/// Writes a file readable only by its owner, replacing it atomically.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let temp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("cannot write {}", temp.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = admin_password(dir.path(), None).unwrap();
        assert_eq!(first.len(), 24);
        assert_eq!(admin_password(dir.path(), None).unwrap(), first);
        let mode = std::fs::metadata(dir.path().join(ADMIN_PASSWORD_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(admin_password(dir.path(), Some("given")).unwrap(), "given");
        assert_eq!(admin_password(dir.path(), None).unwrap(), "given");
    }

    #[test]
    fn openrc_names_url_and_project() {
        let dir = tempfile::tempdir().unwrap();
        write_client_files(dir.path(), "http://127.0.0.1:5000", "pw", "RegionOne").unwrap();
        let openrc = std::fs::read_to_string(dir.path().join("openrc")).unwrap();
        assert!(openrc.contains("OS_AUTH_URL=http://127.0.0.1:5000/v3"));
        assert!(openrc.contains("OS_PROJECT_NAME=admin"));
        let clouds = std::fs::read_to_string(dir.path().join("clouds.yaml")).unwrap();
        assert!(clouds.contains("  oxstack:"));
    }
}
