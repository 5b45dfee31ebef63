//! The shim's command line, as containerd's shim v2 contract defines it (Go `flag`
//! syntax: `-name value`, `-name=value`, `--name value`; booleans take no value).
//!
//! `containerd-shim-berth-v2 [-namespace NS] [-address SOCK] [-publish-binary P] [-id ID]
//! [-bundle DIR] [-socket ADDR] [-debug] [start|delete]`, plus `-v` / `-version` and `-info`.
//! Without an action the process is the long-lived shim serving ttrpc (see `start`).

use std::ffi::OsString;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Launch (or reuse) the long-lived shim and print its address.
    Start,
    /// Clean up a bundle whose shim is gone.
    Delete,
    /// Be the long-lived shim (what `start` re-executes).
    Serve,
    /// Print the version.
    Version,
    /// Print a `RuntimeInfo` protobuf (containerd 2's introspection).
    Info,
}

/// Parsed flags.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// containerd namespace.
    pub namespace: String,
    /// containerd's gRPC socket.
    pub address: String,
    /// The `containerd` binary (for `containerd publish`; unused: events go over ttrpc).
    pub publish_binary: String,
    /// Task id.
    pub id: String,
    /// Bundle directory (`delete`; `start` runs in it).
    pub bundle: String,
    /// The ttrpc socket to serve (`unix://...`), given by `start` to the long-lived shim.
    pub socket: String,
    /// Debug logging.
    pub debug: bool,
}

/// Parses the arguments (without argv\[0\]).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<(Flags, Action), String> {
    let mut flags = Flags::default();
    let mut action = None;
    let mut it = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = it.next() {
        if let Some(name) = arg.strip_prefix('-') {
            let name = name.strip_prefix('-').unwrap_or(name);
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (name, None),
            };
            let mut value = |n: &str| -> Result<String, String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it.next().ok_or(format!("flag needs an argument: -{n}")),
                }
            };
            match name {
                "namespace" => flags.namespace = value(name)?,
                "address" => flags.address = value(name)?,
                "publish-binary" => flags.publish_binary = value(name)?,
                "id" => flags.id = value(name)?,
                "bundle" => flags.bundle = value(name)?,
                "socket" => flags.socket = value(name)?,
                "debug" => flags.debug = inline.as_deref() != Some("false"),
                "v" | "version" => action = Some(Action::Version),
                "info" => action = Some(Action::Info),
                _ => return Err(format!("flag provided but not defined: -{name}")),
            }
        } else {
            match arg.as_str() {
                "start" => action = action.or(Some(Action::Start)),
                "delete" => action = action.or(Some(Action::Delete)),
                other => return Err(format!("unknown action {other:?}")),
            }
        }
    }
    Ok((flags, action.unwrap_or(Action::Serve)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<(Flags, Action), String> {
        parse(a.iter().map(OsString::from))
    }

    #[test]
    fn containerd_start_and_delete_command_lines() {
        let (f, a) = p(&[
            "-namespace",
            "k8s.io",
            "-address",
            "/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "abc",
            "-debug",
            "start",
        ])
        .unwrap();
        assert_eq!(a, Action::Start);
        assert_eq!(f.namespace, "k8s.io");
        assert_eq!(f.id, "abc");
        assert!(f.debug);
        let (f, a) = p(&["--id=x", "-bundle", "/b", "delete"]).unwrap();
        assert_eq!(
            (a, f.id.as_str(), f.bundle.as_str()),
            (Action::Delete, "x", "/b")
        );
        assert_eq!(p(&["-v"]).unwrap().1, Action::Version);
        assert_eq!(p(&["-info"]).unwrap().1, Action::Info);
        assert_eq!(p(&["-id", "x"]).unwrap().1, Action::Serve);
        assert!(p(&["-bogus"]).is_err());
        assert!(p(&["-id"]).is_err());
    }
}
