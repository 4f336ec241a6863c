//! The guest's configuration: a 2 MiB FAT disk labelled `cidata` (cloud-init's NoCloud source),
//! built in Rust without network access, with ZOS's files: `meta-data` (instance id and hostname),
//! `network-config` (version 2, static addresses matched by MAC), `user-data` (root's SSH keys,
//! mounts) and `zosrc` (the entrypoint and its environment, as ZOS's container init reads it).

use crate::error::{Result, VmError};
use std::fmt::Write as _;
use std::io::{Cursor, Write};
use std::path::Path;

/// The seed's size (ZOS: 2 MiB).
pub const SEED_SIZE: usize = 2 << 20;
/// ZOS's nameservers when a VM names none.
pub const DEFAULT_NAMESERVERS: [&str; 3] = ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"];

/// One interface of the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedInterface {
    /// The name in the guest's network configuration (`eth0`, ...).
    pub name: String,
    /// The MAC address it is matched by.
    pub mac: String,
    /// Static addresses with prefix.
    pub addresses: Vec<String>,
    /// IPv4 default gateway, empty when none.
    pub gateway4: String,
    /// IPv6 default gateway, empty when none.
    pub gateway6: String,
    /// Extra routes: (destination, gateway; empty gateway: on the device).
    pub routes: Vec<(String, String)>,
}

/// A disk or shared directory the guest mounts: (source as the guest sees it, target).
pub type SeedMount = (String, String);

/// What goes into the seed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seed {
    /// The instance id (the VM's name).
    pub instance_id: String,
    /// The guest's hostname.
    pub hostname: String,
    /// Interfaces.
    pub interfaces: Vec<SeedInterface>,
    /// DNS servers.
    pub nameservers: Vec<String>,
    /// Root's authorized SSH keys.
    pub ssh_keys: Vec<String>,
    /// Mounts.
    pub mounts: Vec<SeedMount>,
    /// The entrypoint (container mode), empty when none.
    pub entrypoint: String,
    /// The entrypoint's environment.
    pub environment: Vec<(String, String)>,
}

/// A YAML double-quoted scalar.
fn quoted(value: &str) -> String {
    serde_json::Value::String(value.to_string()).to_string()
}

/// A shell single-quoted word (Python's `shlex.quote`, as ZOS writes `zosrc`).
fn shell_quote(value: &str) -> String {
    if value.is_empty() {
        return "''".into();
    }
    format!("'{}'", value.replace('\'', "'\"'\"'"))
}

/// Root's keys from ZOS's `SSH_KEY` environment variable: split on newlines and commas, trimmed.
pub fn ssh_keys(value: &str) -> Vec<String> {
    value.split(['\n', ',']).map(str::trim).filter(|k| !k.is_empty()).map(str::to_string).collect()
}

impl Seed {
    /// `meta-data`.
    pub fn meta_data(&self) -> String {
        format!(
            "#cloud-config\ninstance-id: {}\nlocal-hostname: {}\n",
            quoted(&self.instance_id),
            quoted(&self.hostname)
        )
    }

    /// `network-config` (version 2).
    pub fn network_config(&self) -> String {
        let mut out = String::from("#cloud-config\nversion: 2\nethernets:\n");
        if self.interfaces.is_empty() {
            out = String::from("#cloud-config\nversion: 2\nethernets: {}\n");
        }
        let nameservers = if self.nameservers.is_empty() {
            DEFAULT_NAMESERVERS.iter().map(|s| s.to_string()).collect()
        } else {
            self.nameservers.clone()
        };
        for iface in &self.interfaces {
            let _ = writeln!(out, "  {}:", iface.name);
            let _ = writeln!(out, "    match:\n      macaddress: {}", quoted(&iface.mac.to_lowercase()));
            let _ = writeln!(out, "    addresses:");
            for address in &iface.addresses {
                let _ = writeln!(out, "      - {address}");
            }
            if !iface.gateway4.is_empty() {
                let _ = writeln!(out, "    gateway4: {}", iface.gateway4);
            }
            if !iface.gateway6.is_empty() {
                let _ = writeln!(out, "    gateway6: {}", iface.gateway6);
            }
            if !iface.routes.is_empty() {
                let _ = writeln!(out, "    routes:");
                for (to, via) in &iface.routes {
                    let _ = writeln!(out, "      - to: {to}");
                    if !via.is_empty() {
                        let _ = writeln!(out, "        via: {via}");
                    }
                }
            }
            let _ = writeln!(out, "    nameservers:\n      addresses:");
            for ns in &nameservers {
                let _ = writeln!(out, "        - {}", quoted(ns));
            }
        }
        out
    }

    /// `user-data`: root with its SSH keys, and the mounts.
    pub fn user_data(&self) -> String {
        let mut out = String::from("#cloud-config\nusers:\n  - name: root\n    ssh_authorized_keys:");
        if self.ssh_keys.is_empty() {
            out.push_str(" []\n");
        } else {
            out.push('\n');
            for key in &self.ssh_keys {
                let _ = writeln!(out, "      - {}", quoted(key));
            }
        }
        if self.mounts.is_empty() {
            out.push_str("mounts: []\n");
        } else {
            out.push_str("mounts:\n");
            for (source, target) in &self.mounts {
                let _ = writeln!(out, "  - [{}, {}]", quoted(source), quoted(target));
            }
        }
        out
    }

    /// `zosrc`: `export K='V'` per variable, then `init='...'` and `set -- ...` from the entrypoint
    /// (split on whitespace).
    pub fn zosrc(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.environment {
            let _ = writeln!(out, "export {key}={}", shell_quote(value));
        }
        let mut parts = self.entrypoint.split_whitespace();
        if let Some(init) = parts.next() {
            let _ = writeln!(out, "init={}", shell_quote(init));
            let rest: Vec<String> = parts.map(shell_quote).collect();
            if !rest.is_empty() {
                let _ = writeln!(out, "set -- {}", rest.join(" "));
            }
        }
        out
    }

    /// The FAT image's bytes.
    pub fn image(&self) -> Result<Vec<u8>> {
        let fat = |err: std::io::Error| VmError::Io { what: "build the cidata seed".into(), source: err };
        let mut disk = Cursor::new(vec![0u8; SEED_SIZE]);
        fatfs::format_volume(&mut disk, fatfs::FormatVolumeOptions::new().volume_label(*b"cidata     "))
            .map_err(fat)?;
        {
            let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new()).map_err(fat)?;
            let root = fs.root_dir();
            for (name, text) in [
                ("meta-data", self.meta_data()),
                ("network-config", self.network_config()),
                ("user-data", self.user_data()),
                ("zosrc", self.zosrc()),
            ] {
                let mut file = root.create_file(name).map_err(fat)?;
                file.truncate().map_err(fat)?;
                file.write_all(text.as_bytes()).map_err(fat)?;
                file.flush().map_err(fat)?;
            }
            drop(root);
            fs.unmount().map_err(fat)?;
        }
        Ok(disk.into_inner())
    }

    /// Writes the image to `path` (0600).
    pub fn write(&self, path: &Path) -> Result<()> {
        let image = self.image()?;
        zos_interfaces::daemon::write_private(path, &image).map_err(VmError::io(format!("write {}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn seed() -> Seed {
        Seed {
            instance_id: "1-2-vm".into(),
            hostname: "guest-one".into(),
            interfaces: vec![SeedInterface {
                name: "eth0".into(),
                mac: "52:54:00:AB:CD:EF".into(),
                addresses: vec!["10.20.2.5/24".into()],
                gateway4: "10.20.2.1".into(),
                routes: vec![("10.20.0.0/16".into(), "10.20.2.1".into())],
                ..SeedInterface::default()
            }],
            ssh_keys: ssh_keys("ssh-ed25519 AAA a@b,ssh-rsa BBB c@d\n"),
            mounts: vec![("vdb".into(), "/data".into())],
            entrypoint: "/sbin/zinit init".into(),
            environment: vec![("A".into(), "it's".into())],
            ..Seed::default()
        }
    }

    #[test]
    fn files_say_what_zos_writes() {
        let seed = seed();
        assert_eq!(seed.meta_data(), "#cloud-config\ninstance-id: \"1-2-vm\"\nlocal-hostname: \"guest-one\"\n");
        let net = seed.network_config();
        assert!(net.contains("  eth0:\n    match:\n      macaddress: \"52:54:00:ab:cd:ef\"\n"), "{net}");
        assert!(net.contains("    addresses:\n      - 10.20.2.5/24\n    gateway4: 10.20.2.1\n"), "{net}");
        assert!(net.contains("      - to: 10.20.0.0/16\n        via: 10.20.2.1\n"), "{net}");
        assert!(net.contains("        - \"1.1.1.1\"\n"), "default nameservers: {net}");
        let user = seed.user_data();
        assert!(user.contains("      - \"ssh-ed25519 AAA a@b\"\n      - \"ssh-rsa BBB c@d\"\n"), "{user}");
        assert!(user.contains("mounts:\n  - [\"vdb\", \"/data\"]\n"), "{user}");
        assert_eq!(seed.zosrc(), "export A='it'\"'\"'s'\ninit='/sbin/zinit'\nset -- 'init'\n");
    }

    #[test]
    fn image_is_a_cidata_fat_disk_with_the_files() {
        let seed = seed();
        let image = seed.image().expect("image");
        assert_eq!(image.len(), SEED_SIZE);
        let fs = fatfs::FileSystem::new(Cursor::new(image), fatfs::FsOptions::new()).expect("fat");
        assert_eq!(fs.volume_label(), "cidata");
        let mut text = String::new();
        fs.root_dir().open_file("meta-data").expect("meta-data").read_to_string(&mut text).expect("read");
        assert_eq!(text, seed.meta_data());
        for name in ["network-config", "user-data", "zosrc"] {
            assert!(fs.root_dir().open_file(name).is_ok(), "{name}");
        }
    }
}
