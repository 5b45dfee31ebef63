//! Translation of a spec mount's `options` into mount(2) flags, propagation changes and
//! the filesystem-specific data string — the same table runc and crun use. Options this
//! runtime cannot honour yet (recursive `rro`-style attributes, `idmap`, `tmpcopyup`)
//! are rejected rather than passed through to the kernel as data.

use nix::mount::MsFlags;

/// A spec mount's options, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags to set.
    pub set: MsFlags,
    /// Flags explicitly cleared (`rw`, `suid`, `dev`, ...).
    pub clear: MsFlags,
    /// Propagation changes (`private`, `rslave`, ...), applied after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind` was given.
    pub recursive: bool,
    /// Filesystem-specific options (`mode=755`, `size=65536k`, ...), comma-joined.
    pub data: String,
}

/// An option that is recognised but not supported yet.
#[derive(Debug, thiserror::Error)]
#[error("mount option {option:?} is not supported yet")]
pub struct UnsupportedOption {
    /// The option.
    pub option: String,
}

const NOT_SUPPORTED: &[&str] = &[
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnodiratime",
    "rdiratime",
    "rrelatime",
    "rnorelatime",
    "rnoatime",
    "ratime",
    "rstrictatime",
    "rnostrictatime",
    "rnosymfollow",
    "rsymfollow",
    "idmap",
    "ridmap",
    "tmpcopyup",
];

/// Parses a spec mount's options.
pub fn parse(options: &[String]) -> Result<MountOptions, UnsupportedOption> {
    let mut out = MountOptions {
        set: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: Vec::new(),
        bind: false,
        recursive: false,
        data: String::new(),
    };
    let mut data = Vec::new();
    for opt in options {
        let o = opt.as_str();
        if NOT_SUPPORTED.contains(&o) || o.starts_with("idmap=") {
            return Err(UnsupportedOption {
                option: opt.clone(),
            });
        }
        let (set, flag) = match o {
            "defaults" => continue,
            "ro" => (true, MsFlags::MS_RDONLY),
            "rw" => (false, MsFlags::MS_RDONLY),
            "nosuid" => (true, MsFlags::MS_NOSUID),
            "suid" => (false, MsFlags::MS_NOSUID),
            "nodev" => (true, MsFlags::MS_NODEV),
            "dev" => (false, MsFlags::MS_NODEV),
            "noexec" => (true, MsFlags::MS_NOEXEC),
            "exec" => (false, MsFlags::MS_NOEXEC),
            "sync" => (true, MsFlags::MS_SYNCHRONOUS),
            "async" => (false, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (true, MsFlags::MS_DIRSYNC),
            "remount" => (true, MsFlags::MS_REMOUNT),
            "mand" => (true, MsFlags::MS_MANDLOCK),
            "nomand" => (false, MsFlags::MS_MANDLOCK),
            "noatime" => (true, MsFlags::MS_NOATIME),
            "atime" => (false, MsFlags::MS_NOATIME),
            "nodiratime" => (true, MsFlags::MS_NODIRATIME),
            "diratime" => (false, MsFlags::MS_NODIRATIME),
            "relatime" => (true, MsFlags::MS_RELATIME),
            "norelatime" => (false, MsFlags::MS_RELATIME),
            "strictatime" => (true, MsFlags::MS_STRICTATIME),
            "nostrictatime" => (false, MsFlags::MS_STRICTATIME),
            "silent" => (true, MsFlags::MS_SILENT),
            "loud" => (false, MsFlags::MS_SILENT),
            "lazytime" => (true, MsFlags::MS_LAZYTIME),
            "nolazytime" => (false, MsFlags::MS_LAZYTIME),
            "nosymfollow" => (true, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
            "symfollow" => (false, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
            "bind" => {
                out.bind = true;
                continue;
            }
            "rbind" => {
                out.bind = true;
                out.recursive = true;
                continue;
            }
            _ => {
                if let Some(p) = propagation(o) {
                    out.propagation.push(p);
                } else {
                    data.push(o);
                }
                continue;
            }
        };
        if set {
            out.set |= flag;
            out.clear -= flag;
        } else {
            out.set -= flag;
            out.clear |= flag;
        }
    }
    out.data = data.join(",");
    Ok(out)
}

/// Maps a propagation name (`private`, `rslave`, ...) to its flags.
pub fn propagation(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn splits_flags_data_and_propagation() {
        let o = parse(&opts(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "rslave",
        ]))
        .unwrap();
        assert_eq!(o.set, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert!(!o.bind);
    }

    #[test]
    fn later_options_win() {
        let o = parse(&opts(&["ro", "rw", "rbind"])).unwrap();
        assert!(!o.set.contains(MsFlags::MS_RDONLY));
        assert!(o.clear.contains(MsFlags::MS_RDONLY));
        assert!(o.bind && o.recursive);
    }

    #[test]
    fn rejects_unsupported() {
        assert!(parse(&opts(&["rro"])).is_err());
        assert!(parse(&opts(&["idmap"])).is_err());
    }
}
