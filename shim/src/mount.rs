//! The task's rootfs mounts from the Create request (containerd's snapshotter output:
//! usually one overlay or bind mount), mounted at `<bundle>/rootfs` as the runc shim does.

use std::path::Path;

use containerd_shim_protos::api::Mount;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// Splits mount options into flags and the data string.
pub fn parse_options(opts: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in opts {
        let (set, f) = match o.as_str() {
            "ro" => (true, MsFlags::MS_RDONLY),
            "rw" => (false, MsFlags::MS_RDONLY),
            "bind" => (true, MsFlags::MS_BIND),
            "rbind" => (true, MsFlags::MS_BIND | MsFlags::MS_REC),
            "nosuid" => (true, MsFlags::MS_NOSUID),
            "suid" => (false, MsFlags::MS_NOSUID),
            "nodev" => (true, MsFlags::MS_NODEV),
            "dev" => (false, MsFlags::MS_NODEV),
            "noexec" => (true, MsFlags::MS_NOEXEC),
            "exec" => (false, MsFlags::MS_NOEXEC),
            "sync" => (true, MsFlags::MS_SYNCHRONOUS),
            "noatime" => (true, MsFlags::MS_NOATIME),
            "relatime" => (true, MsFlags::MS_RELATIME),
            "nodiratime" => (true, MsFlags::MS_NODIRATIME),
            "defaults" => continue,
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        if set {
            flags |= f;
        } else {
            flags &= !f;
        }
    }
    (flags, data.join(","))
}

/// Mounts `mounts` in order at `target` (created if missing); undoes them on failure.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), String> {
    std::fs::create_dir_all(target).map_err(|e| format!("{}: {e}", target.display()))?;
    for (i, m) in mounts.iter().enumerate() {
        let (flags, data) = parse_options(&m.options);
        let fstype = if m.type_.is_empty() || flags.contains(MsFlags::MS_BIND) {
            None
        } else {
            Some(m.type_.as_str())
        };
        let data = (!data.is_empty()).then_some(data.as_str());
        let res = mount(Some(m.source.as_str()), target, fstype, flags, data).and_then(|_| {
            // A read-only bind needs a remount.
            if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
                mount(
                    None::<&str>,
                    target,
                    None::<&str>,
                    flags | MsFlags::MS_REMOUNT,
                    None::<&str>,
                )
            } else {
                Ok(())
            }
        });
        if let Err(e) = res {
            for _ in 0..i {
                let _ = umount2(target, MntFlags::MNT_DETACH);
            }
            return Err(format!(
                "mounting rootfs {:?} ({}) at {}: {e}",
                m.source,
                m.type_,
                target.display()
            ));
        }
    }
    Ok(())
}

/// Unmounts everything stacked at `target`.
pub fn unmount_all(target: &Path) {
    for _ in 0..16 {
        if umount2(target, MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_and_bind_options() {
        let (f, d) = parse_options(&[
            "index=off".into(),
            "workdir=/w".into(),
            "upperdir=/u".into(),
            "lowerdir=/l1:/l2".into(),
        ]);
        assert!(f.is_empty());
        assert_eq!(d, "index=off,workdir=/w,upperdir=/u,lowerdir=/l1:/l2");
        let (f, d) = parse_options(&["rbind".into(), "ro".into()]);
        assert!(f.contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert!(d.is_empty());
    }
}
