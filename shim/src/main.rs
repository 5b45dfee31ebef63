//! `containerd-shim-berth-v2`: the process that owns berth's containers after their
//! caller goes away, speaking containerd's shim v2 contract (runtime type
//! `io.containerd.berth.v2`).
//!
//! # Protocol stack (decision)
//!
//! containerd's own generated bindings, `containerd-shim-protos` (rust-protobuf 3 +
//! `ttrpc`), used in their **synchronous** flavour; no tokio, no `containerd-shim`
//! framework crate. Reasons:
//! - wire compatibility comes for free: the messages, the ttrpc framing and the event
//!   envelope are containerd's own definitions, generated from its .proto files (no
//!   protoc needed at build time);
//! - the memory goal (≤ 2 MB RSS idle) rules out what makes the Rust runc shim ~3.5 MB:
//!   the tokio runtime and its worker threads, and `containerd-shim`'s extra machinery.
//!   The sync ttrpc server is a listener thread plus, per connection, a reader and a
//!   small worker pool (min 1, default 2, max 4 idle workers here; blocking calls such as
//!   Wait grow it on demand). Small thread stacks are set where the shim owns the thread.
//! - protobuf reflection (descriptors) is never touched at run time: event type URLs
//!   are written out (`containerd.events.<Name>`) rather than taken from descriptors,
//!   so the descriptor tables stay unbuilt pages of the binary.
//!
//! The crate generates task API **v3** (containerd 2); containerd 1.6/1.7 call
//! `containerd.task.v2.Task` with identical messages, so the shim registers every method
//! under both service names.
//!
//! # Command line (containerd's shim v2 contract)
//!
//! `containerd-shim-berth-v2 [-namespace NS] [-address SOCK] [-publish-binary P] [-id ID]
//! [-bundle DIR] [-debug] start|delete`, `-v`, `-info`:
//! - `start` (cwd = bundle): computes the socket address like containerd's
//!   `shim.SocketAddress` (`unix:///run/containerd/s/<sha256(address/ns/group)>`, the
//!   directory overridable with `BERTH_SHIM_SOCKET_DIR`), where the group is the
//!   `io.kubernetes.cri.sandbox-id` / `io.containerd.runc.v2.group` /
//!   `io.containerd.berth.v2.group` annotation of config.json, else the task id. If a
//!   live shim already listens there it is reused; otherwise the socket is bound and the
//!   shim re-executes itself in a new session with the listener as fd 3. Writes
//!   `address` and `shim.pid` into the bundle and prints the address.
//! - `delete` (shim gone): `runtime delete --force`, unmount `<bundle>/rootfs`, print a
//!   `DeleteResponse` (the recorded exit if the shim recorded one, else 137 and now).
//! - no action: the long-lived shim (see [`start::serve`]).
//!
//! # Runtime
//!
//! Containers are created by invoking the `berth-runtime` binary (see [`runtime`]): the
//! shim stays a small, single-purpose process, the runtime's fork/exec dance happens in a
//! fresh single-threaded process (forking from the multi-threaded shim would only be
//! safe up to exec anyway), and any runc-compatible runtime works via `BinaryName`.
//! `BERTH_SHIM_CGROUP_MANAGER` selects the runtime's `--cgroup-manager`.
//!
//! Environment: `TTRPC_ADDRESS` (containerd's, for events), `BERTH_SHIM_SOCKET_DIR`,
//! `BERTH_SHIM_CGROUP_MANAGER`, `BERTH_SHIM_LOG` (stderr file of the long-lived shim when
//! containerd gives no `log` fifo).

mod args;
mod events;
mod mount;
mod oom;
mod reaper;
mod runtime;
mod service;
mod start;
mod stats;
mod stdio;
mod trim;

use std::io::Write;

use containerd_shim_protos::protobuf::Message;

fn info() -> std::io::Result<()> {
    use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};
    let info = RuntimeInfo {
        name: "io.containerd.berth.v2".into(),
        version: containerd_shim_protos::protobuf::MessageField::some(RuntimeVersion {
            version: service::VERSION.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut out = std::io::stdout();
    out.write_all(&info.write_to_bytes().map_err(std::io::Error::other)?)?;
    out.flush()
}

fn main() {
    let (flags, action) = match args::parse(std::env::args_os().skip(1)) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("containerd-shim-berth-v2: {e}");
            std::process::exit(2);
        }
    };
    let res = match action {
        args::Action::Version => {
            println!(
                "containerd-shim-berth-v2:\n  Version:  {}\n  Revision: \n",
                service::VERSION
            );
            Ok(())
        }
        args::Action::Info => info(),
        args::Action::Start => start::start(&flags),
        args::Action::Delete => start::delete(&flags),
        args::Action::Serve => start::serve(&flags),
    };
    if let Err(e) = res {
        eprintln!("containerd-shim-berth-v2: {e}");
        std::process::exit(1);
    }
}
