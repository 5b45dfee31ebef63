//! The shim on the host as containerd drives it: `start` the shim, talk ttrpc to it with
//! containerd's own client bindings, run busybox containers through `berth-runtime
//! --cgroup-manager disabled` (never cgroups on the host: `BERTH_SHIM_CGROUP_MANAGER`).
//!
//! The runtime binary: another package's binary is not visible through
//! `CARGO_BIN_EXE_*`, so the helper runs `$CARGO build -p berth-runtime --bin
//! berth-runtime --message-format json` once (a no-op when up to date; same profile
//! and target dir as this test) and takes the executable's path from cargo's
//! `compiler-artifact` message.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use containerd_shim_protos::api::*;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::oci::Options;
use containerd_shim_protos::ttrpc::{self, Code};
use containerd_shim_protos::{Client, TaskClient};

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-berth-v2");

/// The shim binary: `BERTH_SHIM_BIN` (e.g. the release build, for
/// `idle_shim_memory`) or this build's.
fn shim_bin() -> PathBuf {
    std::env::var_os("BERTH_SHIM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SHIM))
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (namespaces, mounts): run them as root"
    );
}

fn runtime_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "berth-runtime", "--bin", "berth-runtime"]);
        cmd.args(["--message-format", "json-render-diagnostics"]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("running cargo build -p berth-runtime");
        assert!(
            out.status.success(),
            "cargo build -p berth-runtime failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                v["reason"] == "compiler-artifact" && v["target"]["name"] == "berth-runtime"
            })
            .find_map(|v| v["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no berth-runtime executable")
    })
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        require_root();
        runtime_bin();
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn bundle(&self, name: &str, args: &[&str]) -> PathBuf {
        let dest = self.dir.path().join(name);
        berth_rootfs_fixtures::Fixtures::get()
            .unwrap()
            .make_bundle(&dest, args)
            .unwrap()
    }

    fn shim_cmd(&self, bundle: &Path, id: &str, action: &str) -> Command {
        let mut c = Command::new(shim_bin());
        c.args([
            "-namespace",
            "berth-test",
            "-address",
            "",
            "-id",
            id,
            action,
        ]);
        c.current_dir(bundle)
            .env("BERTH_SHIM_SOCKET_DIR", self.dir.path().join("s"))
            .env("BERTH_SHIM_CGROUP_MANAGER", "disabled")
            .env("BERTH_SHIM_LOG", self.dir.path().join("shim.log"))
            .env_remove("TTRPC_ADDRESS");
        c
    }

    /// `start`, as containerd runs it: returns the printed address.
    fn start(&self, bundle: &Path, id: &str) -> String {
        let out = self.shim_cmd(bundle, id, "start").output().unwrap();
        assert!(
            out.status.success(),
            "start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addr = String::from_utf8(out.stdout).unwrap();
        assert!(addr.starts_with("unix://"), "{addr:?}");
        assert_eq!(
            std::fs::read_to_string(bundle.join("address")).unwrap(),
            addr
        );
        addr
    }

    fn options(&self) -> MessageField<Any> {
        let o = Options {
            binary_name: runtime_bin().to_string_lossy().into_owned(),
            root: self.dir.path().join("root").to_string_lossy().into_owned(),
            ..Default::default()
        };
        MessageField::some(Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        })
    }

    fn fifo(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("shim.log")).unwrap_or_default()
    }
}

fn connect(addr: &str) -> TaskClient {
    TaskClient::new(Client::connect(addr).unwrap())
}

/// A request that names only the task id: `by_id!(StartRequest, "c1")`.
macro_rules! by_id {
    ($request:ident, $id:expr) => {
        &$request {
            id: $id.into(),
            ..Default::default()
        }
    };
}

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(Duration::from_secs(30).as_nanos() as i64)
}

fn code(e: ttrpc::Error) -> Code {
    match e {
        ttrpc::Error::RpcStatus(s) => s.code(),
        other => panic!("not an rpc status: {other:?}"),
    }
}

/// Reads a fifo to EOF in a thread (opened like containerd: before Create).
fn read_fifo(path: &Path) -> std::thread::JoinHandle<String> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut f = File::open(&path).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    })
}

fn create_req(env: &Env, id: &str, bundle: &Path, stdout: &Path) -> CreateTaskRequest {
    CreateTaskRequest {
        id: id.into(),
        bundle: bundle.to_string_lossy().into_owned(),
        stdout: stdout.to_string_lossy().into_owned(),
        options: env.options(),
        ..Default::default()
    }
}

fn shim_pid(bundle: &Path) -> i32 {
    std::fs::read_to_string(bundle.join("shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0): look at /proc state too.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

fn shutdown(client: &TaskClient, bundle: &Path) {
    let pid = shim_pid(bundle);
    client
        .shutdown(
            ctx(),
            &ShutdownRequest {
                now: true,
                ..Default::default()
            },
        )
        .unwrap();
    let t = Instant::now();
    while alive(pid) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "the shim did not exit after Shutdown");
}

#[test]
fn output_arrives_in_the_stdout_fifo_and_wait_reports_the_exit() {
    let env = Env::new();
    let bundle = env.bundle("b", &["/bin/sh", "-c", "echo hello from berth; exit 3"]);
    let addr = env.start(&bundle, "echo");
    let client = connect(&addr);
    let stdout = env.fifo("stdout");
    let reader = read_fifo(&stdout);
    let created = client
        .create(ctx(), &create_req(&env, "echo", &bundle, &stdout))
        .unwrap_or_else(|e| panic!("create: {e:?}\n{}", env.log()));
    assert!(created.pid > 0);
    let st = client.state(ctx(), by_id!(StateRequest, "echo")).unwrap();
    assert_eq!(st.status.enum_value(), Ok(Status::CREATED));
    let started = client.start(ctx(), by_id!(StartRequest, "echo")).unwrap();
    assert_eq!(started.pid, created.pid);
    let w = client.wait(ctx(), by_id!(WaitRequest, "echo")).unwrap();
    assert_eq!(w.exit_status, 3);
    assert!(w.exited_at.seconds > 0);
    assert_eq!(reader.join().unwrap(), "hello from berth\n");
    // Wait answers again after the exit; State says stopped.
    let w2 = client.wait(ctx(), by_id!(WaitRequest, "echo")).unwrap();
    assert_eq!(w2.exit_status, 3);
    let st = client.state(ctx(), by_id!(StateRequest, "echo")).unwrap();
    assert_eq!(st.status.enum_value(), Ok(Status::STOPPED));
    assert_eq!(st.exit_status, 3);
    // The exit is on disk too.
    let rec = std::fs::read_to_string(bundle.join("berth-shim-exits/init")).unwrap();
    assert!(rec.contains("\"exit_status\":3"), "{rec}");
    let d = client.delete(ctx(), by_id!(DeleteRequest, "echo")).unwrap();
    assert_eq!((d.exit_status, d.pid), (3, created.pid));
    let e = client
        .state(ctx(), by_id!(StateRequest, "echo"))
        .unwrap_err();
    assert_eq!(code(e), Code::NOT_FOUND);
    shutdown(&client, &bundle);
}

#[test]
fn kill_pids_stdin_and_closeio() {
    let env = Env::new();
    let bundle = env.bundle(
        "b",
        &["/bin/sh", "-c", "read line; echo got $line; sleep 1000"],
    );
    let addr = env.start(&bundle, "sleeper");
    let client = connect(&addr);
    let stdout = env.fifo("stdout");
    let stdin = env.fifo("stdin");
    let reader = read_fifo(&stdout);
    let mut req = create_req(&env, "sleeper", &bundle, &stdout);
    req.stdin = stdin.to_string_lossy().into_owned();
    let created = client
        .create(ctx(), &req)
        .unwrap_or_else(|e| panic!("create: {e:?}\n{}", env.log()));
    client
        .start(ctx(), by_id!(StartRequest, "sleeper"))
        .unwrap();
    {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&stdin)
            .unwrap();
        w.write_all(b"ping\n").unwrap();
    }
    client
        .close_io(
            ctx(),
            &CloseIORequest {
                id: "sleeper".into(),
                stdin: true,
                ..Default::default()
            },
        )
        .unwrap();
    let pids = client.pids(ctx(), by_id!(PidsRequest, "sleeper")).unwrap();
    assert!(
        pids.processes.iter().any(|p| p.pid == created.pid),
        "{:?}",
        pids.processes
    );
    // Deleting a running task is refused; the shim stays up.
    let e = client
        .delete(ctx(), by_id!(DeleteRequest, "sleeper"))
        .unwrap_err();
    assert_eq!(code(e), Code::FAILED_PRECONDITION);
    client
        .kill(
            ctx(),
            &KillRequest {
                id: "sleeper".into(),
                signal: 9,
                all: true,
                ..Default::default()
            },
        )
        .unwrap();
    let w = client.wait(ctx(), by_id!(WaitRequest, "sleeper")).unwrap();
    assert_eq!(w.exit_status, 137);
    assert_eq!(reader.join().unwrap(), "got ping\n");
    let st = client
        .state(ctx(), by_id!(StateRequest, "sleeper"))
        .unwrap();
    assert_eq!(
        (st.status.enum_value(), st.exit_status),
        (Ok(Status::STOPPED), 137)
    );
    let e = client
        .kill(
            ctx(),
            &KillRequest {
                id: "sleeper".into(),
                signal: 9,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(code(e), Code::NOT_FOUND);
    client
        .delete(ctx(), by_id!(DeleteRequest, "sleeper"))
        .unwrap();
    shutdown(&client, &bundle);
}

#[test]
fn bad_input_gets_clear_codes_and_the_shim_survives_clients() {
    let env = Env::new();
    let bundle = env.bundle("b", &["/bin/sleep", "1000"]);
    let addr = env.start(&bundle, "c1");
    // A second `start` for the same task reuses the live shim.
    assert_eq!(env.start(&bundle, "c1"), addr);
    let client = connect(&addr);
    let e = client
        .state(ctx(), by_id!(StateRequest, "nope"))
        .unwrap_err();
    assert_eq!(code(e), Code::NOT_FOUND);
    let e = client.wait(ctx(), by_id!(WaitRequest, "nope")).unwrap_err();
    assert_eq!(code(e), Code::NOT_FOUND);
    let null = PathBuf::new();
    client
        .create(ctx(), &create_req(&env, "c1", &bundle, &null))
        .unwrap_or_else(|e| panic!("create: {e:?}\n{}", env.log()));
    let e = client
        .create(ctx(), &create_req(&env, "c1", &bundle, &null))
        .unwrap_err();
    assert_eq!(code(e), Code::ALREADY_EXISTS);
    let e = client
        .exec(
            ctx(),
            &ExecProcessRequest {
                id: "c1".into(),
                exec_id: "x".into(),
                spec: MessageField::some(Any {
                    type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                    value: br#"{"args":[]}"#.to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(code(e), Code::INVALID_ARGUMENT);
    let e = client
        .start(
            ctx(),
            &StartRequest {
                id: "c1".into(),
                exec_id: "nope".into(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(code(e), Code::NOT_FOUND);
    let e = client
        .resize_pty(
            ctx(),
            &ResizePtyRequest {
                id: "c1".into(),
                width: 80,
                height: 24,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(code(e), Code::FAILED_PRECONDITION);
    // The client goes away; a new one is served.
    drop(client);
    let client = connect(&addr);
    let c = client.connect(ctx(), by_id!(ConnectRequest, "c1")).unwrap();
    assert_eq!(c.shim_pid as i32, shim_pid(&bundle));
    assert!(c.task_pid > 0);
    // Shutdown without `now` keeps a shim that still has tasks.
    client.shutdown(ctx(), &ShutdownRequest::default()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(shim_pid(&bundle)));
    // Delete of a created (never started) task kills it.
    let d = client.delete(ctx(), by_id!(DeleteRequest, "c1")).unwrap();
    assert_eq!(d.exit_status, 137);
    shutdown(&client, &bundle);
}

#[test]
fn delete_action_cleans_up_after_a_dead_shim() {
    let env = Env::new();
    let bundle = env.bundle("b", &["/bin/sleep", "1000"]);
    let addr = env.start(&bundle, "orphan");
    let client = connect(&addr);
    let null = PathBuf::new();
    let created = client
        .create(ctx(), &create_req(&env, "orphan", &bundle, &null))
        .unwrap_or_else(|e| panic!("create: {e:?}\n{}", env.log()));
    client.start(ctx(), by_id!(StartRequest, "orphan")).unwrap();
    // The shim dies (SIGKILL); `delete` must kill the container and answer 137.
    let spid = shim_pid(&bundle);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(spid), nix::sys::signal::SIGKILL).unwrap();
    let out = env
        .shim_cmd(&bundle, "orphan", "delete")
        .arg("-bundle")
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resp = DeleteResponse::parse_from_bytes(&out.stdout).unwrap();
    assert_eq!(resp.exit_status, 137);
    assert!(resp.exited_at.seconds > 0);
    let t = Instant::now();
    while alive(created.pid as i32) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(created.pid as i32),
        "the container survived `delete`"
    );
}

fn exec_spec(args: &[&str], terminal: bool) -> MessageField<Any> {
    let v = serde_json::json!({
        "terminal": terminal,
        "args": args,
        "cwd": "/",
        "env": ["PATH=/bin:/sbin:/usr/bin", "TERM=xterm"],
        "user": {"uid": 0, "gid": 0},
    });
    MessageField::some(Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
        value: v.to_string().into_bytes(),
        ..Default::default()
    })
}

#[test]
fn exec_runs_a_process_in_the_container() {
    let env = Env::new();
    let bundle = env.bundle("b", &["/bin/sleep", "1000"]);
    let addr = env.start(&bundle, "ex");
    let client = connect(&addr);
    let null = PathBuf::new();
    client
        .create(ctx(), &create_req(&env, "ex", &bundle, &null))
        .unwrap_or_else(|e| panic!("create: {e:?}\n{}", env.log()));
    client.start(ctx(), by_id!(StartRequest, "ex")).unwrap();
    let stdout = env.fifo("exec-stdout");
    let reader = read_fifo(&stdout);
    client
        .exec(
            ctx(),
            &ExecProcessRequest {
                id: "ex".into(),
                exec_id: "e1".into(),
                stdout: stdout.to_string_lossy().into_owned(),
                spec: exec_spec(&["/bin/sh", "-c", "echo exec says hi; exit 5"], false),
                ..Default::default()
            },
        )
        .unwrap();
    let e = client
        .exec(
            ctx(),
            &ExecProcessRequest {
                id: "ex".into(),
                exec_id: "e1".into(),
                spec: exec_spec(&["/bin/true"], false),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(code(e), Code::ALREADY_EXISTS);
    let st = client
        .start(
            ctx(),
            &StartRequest {
                id: "ex".into(),
                exec_id: "e1".into(),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("exec start: {e:?}\n{}", env.log()));
    assert!(st.pid > 0);
    let w = client
        .wait(
            ctx(),
            &WaitRequest {
                id: "ex".into(),
                exec_id: "e1".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(w.exit_status, 5);
    assert_eq!(reader.join().unwrap(), "exec says hi\n");
    let s = client
        .state(
            ctx(),
            &StateRequest {
                id: "ex".into(),
                exec_id: "e1".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (s.status.enum_value(), s.pid),
        (Ok(Status::STOPPED), st.pid)
    );
    let d = client
        .delete(
            ctx(),
            &DeleteRequest {
                id: "ex".into(),
                exec_id: "e1".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(d.exit_status, 5);
    client
        .kill(
            ctx(),
            &KillRequest {
                id: "ex".into(),
                signal: 9,
                ..Default::default()
            },
        )
        .unwrap();
    client.wait(ctx(), by_id!(WaitRequest, "ex")).unwrap();
    client.delete(ctx(), by_id!(DeleteRequest, "ex")).unwrap();
    shutdown(&client, &bundle);
}

#[test]
fn terminal_through_the_console_socket_and_resize() {
    let env = Env::new();
    let bundle = env.bundle("b", &["/bin/sh", "-c", "read x; stty size; echo tty=$x"]);
    let cfg = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    spec["process"]["terminal"] = true.into();
    std::fs::write(&cfg, spec.to_string()).unwrap();
    let addr = env.start(&bundle, "tty");
    let client = connect(&addr);
    let stdout = env.fifo("stdout");
    let stdin = env.fifo("stdin");
    let reader = read_fifo(&stdout);
    let mut req = create_req(&env, "tty", &bundle, &stdout);
    req.terminal = true;
    req.stdin = stdin.to_string_lossy().into_owned();
    client
        .create(ctx(), &req)
        .unwrap_or_else(|e| panic!("create: {e:?}\n{}", env.log()));
    client
        .resize_pty(
            ctx(),
            &ResizePtyRequest {
                id: "tty".into(),
                width: 100,
                height: 40,
                ..Default::default()
            },
        )
        .unwrap();
    client.start(ctx(), by_id!(StartRequest, "tty")).unwrap();
    {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&stdin)
            .unwrap();
        w.write_all(b"yes\n").unwrap();
    }
    let w = client.wait(ctx(), by_id!(WaitRequest, "tty")).unwrap();
    assert_eq!(w.exit_status, 0);
    client.delete(ctx(), by_id!(DeleteRequest, "tty")).unwrap();
    shutdown(&client, &bundle);
    let out = reader.join().unwrap();
    assert!(out.contains("40 100"), "{out:?}");
    assert!(out.contains("tty=yes"), "{out:?}");
}

fn kb(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap()
}

/// Not a check: prints the RSS/PSS of an idle shim with one running container. For the
/// release build: `cargo build --release -p containerd-shim-berth && BERTH_SHIM_BIN=
/// target/release/containerd-shim-berth-v2 cargo test -p containerd-shim-berth --test
/// task_service -- --ignored --nocapture idle_shim_memory`.
#[test]
#[ignore]
fn idle_shim_memory() {
    let env = Env::new();
    let bundle = env.bundle("b", &["/bin/sleep", "1000"]);
    let addr = env.start(&bundle, "mem");
    let pid = shim_pid(&bundle);
    std::thread::sleep(Duration::from_secs(3));
    let report = |what: &str| {
        println!(
            "{what}: VmRSS {} kB, Pss {} kB ({})",
            kb(&format!("/proc/{pid}/status"), "VmRSS:"),
            kb(&format!("/proc/{pid}/smaps_rollup"), "Pss:"),
            shim_bin().display()
        );
    };
    report("idle shim, no task");
    let client = connect(&addr);
    let null = PathBuf::new();
    client
        .create(ctx(), &create_req(&env, "mem", &bundle, &null))
        .unwrap();
    client.start(ctx(), by_id!(StartRequest, "mem")).unwrap();
    // As containerd: the connection stays, a Wait is pending.
    let waiter = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            connect(&addr)
                .wait(
                    ctx(),
                    &WaitRequest {
                        id: "mem".into(),
                        ..Default::default()
                    },
                )
                .map(|w| w.exit_status)
        })
    };
    std::thread::sleep(Duration::from_secs(4));
    report("idle shim, one running task, client connected, Wait pending");
    drop(client);
    std::thread::sleep(Duration::from_secs(1));
    let client = connect(&addr);
    client
        .kill(
            ctx(),
            &KillRequest {
                id: "mem".into(),
                signal: 9,
                ..Default::default()
            },
        )
        .unwrap();
    client.wait(ctx(), by_id!(WaitRequest, "mem")).unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 137);
    client.delete(ctx(), by_id!(DeleteRequest, "mem")).unwrap();
    shutdown(&client, &bundle);
}
