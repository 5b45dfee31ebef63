//! The `start` and `delete` actions and the long-lived shim's set-up.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::SystemTime;

use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::oci::Options;
use sha2::{Digest, Sha256};

use crate::args::Flags;
use crate::events::{Publisher, timestamp};
use crate::reaper::Reaper;
use crate::runtime::Runtime;
use crate::service::{Shim, recorded_init_exit};

/// Overrides the socket directory (default `/run/containerd/s`, containerd's).
pub const SOCKET_DIR_ENV: &str = "BERTH_SHIM_SOCKET_DIR";
/// A file the long-lived shim's stderr goes to when containerd gives no `log` fifo.
pub const LOG_ENV: &str = "BERTH_SHIM_LOG";
/// Annotations that put a task in an existing shim (first match wins), as the runc shim.
pub const GROUP_ANNOTATIONS: &[&str] = &[
    "io.containerd.berth.v2.group",
    "io.containerd.runc.v2.group",
    "io.kubernetes.cri.sandbox-id",
];

fn bundle_dir(flags: &Flags) -> PathBuf {
    if flags.bundle.is_empty() {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
    } else {
        PathBuf::from(&flags.bundle)
    }
}

/// The grouping id: a group annotation of the bundle's config.json, else the task id.
pub fn grouping(bundle: &Path, id: &str) -> String {
    let Ok(data) = std::fs::read(bundle.join("config.json")) else {
        return id.to_string();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) else {
        return id.to_string();
    };
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|k| v["annotations"][*k].as_str().filter(|s| !s.is_empty()))
        .unwrap_or(id)
        .to_string()
}

/// containerd's `shim.SocketAddress`: `unix://<state>/s/<sha256(address/ns/group)>`.
pub fn socket_address(containerd_address: &str, namespace: &str, group: &str) -> String {
    let dir = std::env::var(SOCKET_DIR_ENV).unwrap_or_else(|_| "/run/containerd/s".into());
    let key = Path::new(containerd_address).join(namespace).join(group);
    let digest = Sha256::digest(key.as_os_str().as_encoded_bytes());
    format!("unix://{dir}/{}", hex::encode(digest))
}

fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

fn bind(address: &str) -> io::Result<UnixListener> {
    let path = Path::new(socket_path(address));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    UnixListener::bind(path)
}

/// `start`: prints the ttrpc address of the shim serving this task.
pub fn start(flags: &Flags) -> io::Result<()> {
    let bundle = bundle_dir(flags);
    // containerd writes the runtime options (an `Any` of runc's `Options`) on stdin:
    // `ShimCgroup` is used below; the rest comes again with Create.
    let mut opts = Vec::new();
    let _ = io::stdin().read_to_end(&mut opts);
    let shim_cgroup = start_options(&opts).shim_cgroup;
    let group = grouping(&bundle, &flags.id);
    let address = socket_address(&flags.address, &flags.namespace, &group);
    let listener = match bind(&address) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            if UnixStream::connect(socket_path(&address)).is_ok() {
                // The group's shim is alive: reuse it.
                std::fs::write(bundle.join("address"), &address)?;
                print!("{address}");
                return io::stdout().flush();
            }
            std::fs::remove_file(socket_path(&address))?;
            bind(&address)?
        }
        Err(e) => return Err(e),
    };
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["-namespace", &flags.namespace, "-id", &flags.id]);
    cmd.args(["-address", &flags.address, "-socket", &address]);
    if !flags.publish_binary.is_empty() {
        cmd.args(["-publish-binary", &flags.publish_binary]);
    }
    if flags.debug {
        cmd.arg("-debug");
    }
    cmd.current_dir(&bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    match std::env::var_os(LOG_ENV) {
        Some(p) => cmd.stderr(OpenOptions::new().create(true).append(true).open(p)?),
        None => cmd.stderr(Stdio::null()),
    };
    let fd = listener.as_raw_fd();
    // SAFETY: between fork and exec the closure only calls async-signal-safe functions
    // (setsid, dup2, fcntl) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if fd == 3 {
                // dup2 onto itself keeps FD_CLOEXEC: clear it.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(socket_path(&address));
            return Err(e);
        }
    };
    adjust_oom_score(child.id());
    if !shim_cgroup.is_empty() {
        // Only when containerd asks for it (runc option ShimCgroup), as the runc shim.
        let procs = Path::new("/sys/fs/cgroup")
            .join(shim_cgroup.trim_start_matches('/'))
            .join("cgroup.procs");
        if let Err(e) = std::fs::write(&procs, child.id().to_string()) {
            eprintln!("shim start: moving the shim to {}: {e}", procs.display());
        }
    }
    std::fs::write(bundle.join("address"), &address)?;
    std::fs::write(bundle.join("shim.pid"), child.id().to_string())?;
    print!("{address}");
    io::stdout().flush()
}

fn start_options(stdin: &[u8]) -> Options {
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    Any::parse_from_bytes(stdin)
        .ok()
        .filter(|a| a.type_url.ends_with("containerd.runc.v1.Options"))
        .and_then(|a| Options::parse_from_bytes(&a.value).ok())
        .unwrap_or_default()
}

/// The shim gets containerd's OOM score + 1 (as containerd's shims): under memory
/// pressure the kernel picks a shim before containerd itself.
fn adjust_oom_score(pid: u32) {
    let parent = std::os::unix::process::parent_id();
    let Some(score) = std::fs::read_to_string(format!("/proc/{parent}/oom_score_adj"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let _ = std::fs::write(
        format!("/proc/{pid}/oom_score_adj"),
        (score + 1).min(1000).to_string(),
    );
}

/// `delete`: cleans up after a shim that is gone; prints a `DeleteResponse`.
pub fn delete(flags: &Flags) -> io::Result<()> {
    let bundle = bundle_dir(flags);
    if let Some(rt) = Runtime::load(&bundle) {
        if let Err(e) = rt.output(None, &["delete", "--force", &flags.id], None) {
            eprintln!("shim delete: {e}");
        }
    }
    crate::mount::unmount_all(&bundle.join("rootfs"));
    let (pid, status, at) =
        recorded_init_exit(&bundle).unwrap_or((0, 128 + libc::SIGKILL as u32, SystemTime::now()));
    let resp = DeleteResponse {
        pid,
        exit_status: status,
        exited_at: MessageField::some(timestamp(at)),
        ..Default::default()
    };
    let bytes = resp.write_to_bytes().map_err(io::Error::other)?;
    io::stdout().write_all(&bytes)?;
    io::stdout().flush()
}

/// containerd (1.6) opens a `log` fifo in the bundle for the shim's logs.
fn open_log_fifo() {
    let Ok(f) = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("log")
    else {
        return;
    };
    let fd = f.into_raw_fd();
    // SAFETY: plain fcntl/dup2/close on fds this function owns (`fd`) or on fd 2.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
        libc::dup2(fd, 2);
        libc::close(fd);
    }
}

/// The long-lived shim: serves the Task service on fd 3 until Shutdown.
pub fn serve(flags: &Flags) -> io::Result<()> {
    use containerd_shim_protos::ttrpc::Server;
    // SAFETY: fcntl(F_SETFD) on fd 3, the listener `start` handed over; no memory is
    // involved. Keeps the listener out of runtime invocations and containers.
    if unsafe { libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::other(
            "no listener on fd 3: the shim is started by `start`, not directly",
        ));
    }
    open_log_fifo();
    let reaper = Reaper::start()?;
    let ttrpc_address = std::env::var("TTRPC_ADDRESS")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| (!flags.address.is_empty()).then(|| format!("{}.ttrpc", flags.address)));
    let publisher = Publisher::new(ttrpc_address, flags.namespace.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let shim = Shim::new(flags.namespace.clone(), reaper.clone(), publisher, tx);
    let svc: Arc<dyn containerd_shim_protos::Task + Send + Sync> = shim;
    // The generated service is task v3 (containerd 2); containerd 1.6/1.7 call the same
    // methods as `containerd.task.v2.Task` (identical messages): serve both names.
    let v3 = containerd_shim_protos::create_task(svc.clone());
    let v2 = containerd_shim_protos::create_task(svc)
        .into_iter()
        .map(|(k, v)| {
            (
                k.replace("containerd.task.v3.Task", "containerd.task.v2.Task"),
                v,
            )
        })
        .collect();
    let mut server = Server::new()
        .add_listener(3)
        .map_err(|e| io::Error::other(format!("{e:?}")))?
        .register_service(v3)
        .register_service(v2)
        .set_thread_count_min(1)
        .set_thread_count_default(2)
        .set_thread_count_max(4);
    server
        .start()
        .map_err(|e| io::Error::other(format!("{e:?}")))?;
    let _ = rx.recv();
    // Give the Shutdown reply a moment to leave, then go.
    std::thread::sleep(std::time::Duration::from_millis(50));
    if !flags.socket.is_empty() {
        let _ = std::fs::remove_file(socket_path(&flags.socket));
    }
    std::process::exit(0);
}
