//! The busybox rootfs: probes the host's static busybox (Debian's
//! busybox-static) and describes a minimal root filesystem around it — the
//! binary, a relative symlink for every applet, the usual top-level
//! directories and a two-user passwd/group.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::digest::sha256_hex;
use crate::error::{FixtureError, Result};
use crate::layer::Layer;

/// Where Debian's busybox-static installs busybox.
pub const DEFAULT_BUSYBOX: &str = "/bin/busybox";

/// Where busybox lives inside the rootfs.
pub const BUSYBOX_IN_ROOTFS: &str = "bin/busybox";

/// `PATH` used by the images and bundles.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n";

/// Directories every rootfs has, with their modes.
const DIRS: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("dev", 0o755),
    ("etc", 0o755),
    ("home", 0o755),
    ("proc", 0o555),
    ("root", 0o700),
    ("run", 0o755),
    ("sbin", 0o755),
    ("sys", 0o555),
    ("tmp", 0o1777),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("var", 0o755),
    ("var/tmp", 0o1777),
];

/// A probed busybox binary.
#[derive(Debug, Clone)]
pub struct Busybox {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its contents.
    pub binary: Vec<u8>,
    /// Hex SHA-256 of `binary`.
    pub sha256: String,
    /// Applet install paths from `busybox --list-full`, e.g. `usr/bin/awk`,
    /// sorted and deduplicated.
    pub applets: Vec<String>,
}

impl Busybox {
    /// Reads and checks the busybox at `path`: it must exist, be a static ELF
    /// executable, and list its applets.
    pub fn probe(path: &Path) -> Result<Busybox> {
        let binary = match fs::read(path) {
            Ok(binary) => binary,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(FixtureError::BusyboxMissing {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => return Err(FixtureError::io("read", path, e)),
        };
        if has_elf_interpreter(&binary).map_err(|reason| FixtureError::BusyboxNotElf {
            path: path.to_path_buf(),
            reason,
        })? {
            return Err(FixtureError::BusyboxNotStatic {
                path: path.to_path_buf(),
            });
        }
        let applets = list_applets(path)?;
        Ok(Busybox {
            path: path.to_path_buf(),
            sha256: sha256_hex(&binary),
            binary,
            applets,
        })
    }

    /// The rootfs tree: busybox, its applet links, directories, passwd/group.
    pub fn rootfs(&self) -> Result<Layer> {
        let mut layer = Layer::new();
        for &(dir, mode) in DIRS {
            layer.dir(dir, mode)?;
        }
        layer.file(BUSYBOX_IN_ROOTFS, 0o755, self.binary.clone())?;
        for applet in &self.applets {
            if applet != BUSYBOX_IN_ROOTFS {
                layer.symlink(applet, &link_target(applet))?;
            }
        }
        layer.file("etc/passwd", 0o644, PASSWD)?;
        layer.file("etc/group", 0o644, GROUP)?;
        Ok(layer)
    }
}

/// Relative symlink target from `applet` (e.g. `usr/bin/awk`) to
/// `bin/busybox` (`../../bin/busybox`), so links resolve inside any root.
fn link_target(applet: &str) -> String {
    let depth = applet.matches('/').count();
    if applet.starts_with("bin/") && depth == 1 {
        return "busybox".to_owned();
    }
    format!("{}{BUSYBOX_IN_ROOTFS}", "../".repeat(depth))
}

/// Runs `busybox --list-full` and returns the applet paths.
fn list_applets(path: &Path) -> Result<Vec<String>> {
    let list_err = |reason: String| FixtureError::BusyboxList {
        path: path.to_path_buf(),
        reason,
    };
    let output = Command::new(path)
        .arg("--list-full")
        .output()
        .map_err(|e| list_err(e.to_string()))?;
    if !output.status.success() {
        return Err(list_err(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let stdout = String::from_utf8(output.stdout).map_err(|e| list_err(e.to_string()))?;
    let mut applets: Vec<String> = stdout
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| line.trim_start_matches('/').to_owned())
        .collect();
    applets.sort();
    applets.dedup();
    for required in ["bin/sh", "bin/true", "bin/sleep"] {
        if !applets.iter().any(|a| a == required) {
            return Err(list_err(format!("applet {required} is missing")));
        }
    }
    Ok(applets)
}

/// Whether an ELF image has a `PT_INTERP` program header, i.e. needs a
/// dynamic loader. Errors describe why `elf` is not a usable ELF file.
fn has_elf_interpreter(elf: &[u8]) -> Result<bool, &'static str> {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        return Err("missing ELF magic");
    }
    let is_64 = match elf[4] {
        1 => false,
        2 => true,
        _ => return Err("unknown ELF class"),
    };
    let little = match elf[5] {
        1 => true,
        2 => false,
        _ => return Err("unknown ELF byte order"),
    };
    let read = |offset: usize, size: usize| -> Result<u64, &'static str> {
        let bytes = elf
            .get(offset..offset + size)
            .ok_or("truncated ELF header")?;
        let mut buf = [0u8; 8];
        if little {
            buf[..size].copy_from_slice(bytes);
            Ok(u64::from_le_bytes(buf))
        } else {
            buf[8 - size..].copy_from_slice(bytes);
            Ok(u64::from_be_bytes(buf))
        }
    };
    let (phoff, phentsize, phnum) = if is_64 {
        (read(0x20, 8)?, read(0x36, 2)?, read(0x38, 2)?)
    } else {
        (read(0x1c, 4)?, read(0x2a, 2)?, read(0x2c, 2)?)
    };
    for index in 0..phnum {
        let offset = index
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|o| usize::try_from(o).ok())
            .ok_or("program header offset overflows")?;
        if read(offset, 4)? == u64::from(PT_INTERP) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applet_links_are_relative_to_the_rootfs() {
        assert_eq!(link_target("bin/sh"), "busybox");
        assert_eq!(link_target("sbin/ifconfig"), "../bin/busybox");
        assert_eq!(link_target("usr/bin/awk"), "../../bin/busybox");
        assert_eq!(link_target("linuxrc"), "bin/busybox");
    }

    #[test]
    fn host_busybox_is_static_and_lists_applets() {
        let busybox = Busybox::probe(Path::new(DEFAULT_BUSYBOX)).expect(
            "probing /bin/busybox failed: install busybox-static (run scripts/install-deps)",
        );
        assert!(busybox.applets.len() > 100, "{:?}", busybox.applets);
        let rootfs = busybox.rootfs().expect("rootfs");
        assert!(rootfs.get("bin/busybox").is_some());
        assert!(rootfs.get("usr/bin/awk").is_some());
        assert_eq!(rootfs.get("tmp").map(|e| e.mode), Some(0o1777));
    }

    #[test]
    fn dynamic_binaries_are_refused_with_a_hint() {
        // /bin/ls from coreutils is dynamically linked on Debian.
        let ls = Path::new("/bin/ls");
        let bytes = fs::read(ls).expect("read /bin/ls");
        assert_eq!(has_elf_interpreter(&bytes), Ok(true));
        let err = Busybox::probe(ls).expect_err("ls is dynamic");
        assert!(err.to_string().contains("scripts/install-deps"), "{err}");
    }

    #[test]
    fn missing_busybox_says_to_run_install_deps() {
        let err = Busybox::probe(Path::new("/nonexistent/busybox")).expect_err("missing");
        assert!(matches!(err, FixtureError::BusyboxMissing { .. }));
        assert!(err.to_string().contains("scripts/install-deps"), "{err}");
    }

    #[test]
    fn non_elf_files_are_rejected() {
        assert!(has_elf_interpreter(b"#!/bin/sh\n").is_err());
    }
}
