//! The ttrpc Task service: each call maps onto a `berth-runtime` invocation (see
//! [`crate::runtime`]) plus the shim's own bookkeeping of processes and exits.
//!
//! Locking: `ops` serialises the state-changing calls (they run the runtime, which can
//! take a while); `inner` guards the tables and is only held briefly, never across a
//! runtime invocation (the reaper thread needs it to record exits, and the runtime's own
//! exit status reaches the caller through the reaper).

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
    DeleteRequest, DeleteResponse, ExecProcessRequest, KillRequest, PauseRequest, PidsRequest,
    PidsResponse, ProcessInfo, ResizePtyRequest, ResumeRequest, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse, Status,
    UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::{EnumOrUnknown, Message, MessageField};
use containerd_shim_protos::shim::oci::{Options, ProcessDetails};
use containerd_shim_protos::ttrpc::{self, Code, TtrpcContext};
use serde_json::{Value, json};

use crate::events::{Event, Publisher, timestamp};
use crate::mount;
use crate::oom::OomWatcher;
use crate::reaper::Reaper;
use crate::runtime::Runtime;
use crate::stats;
use crate::stdio::{self, ConsoleSocket, StdinPump};

/// The shim's version (Connect, `-v`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where exit records go, inside the bundle.
pub const EXITS_DIR: &str = "berth-shim-exits";

fn err(code: Code, msg: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PState {
    Created,
    Running,
    Stopped,
}

struct Proc {
    pid: u32,
    state: PState,
    exit: Option<(u32, SystemTime)>,
    stdin: String,
    stdout: String,
    stderr: String,
    terminal: bool,
    stdin_pump: Option<StdinPump>,
    console: Option<Arc<File>>,
    /// Exec processes: the process spec file.
    spec: Option<PathBuf>,
}

impl Proc {
    fn new(stdin: &str, stdout: &str, stderr: &str, terminal: bool) -> Proc {
        Proc {
            pid: 0,
            state: PState::Created,
            exit: None,
            stdin: stdin.into(),
            stdout: stdout.into(),
            stderr: stderr.into(),
            terminal,
            stdin_pump: None,
            console: None,
            spec: None,
        }
    }
}

struct Container {
    bundle: PathBuf,
    runtime: Runtime,
    init: Proc,
    execs: HashMap<String, Proc>,
    mounted_rootfs: bool,
    paused: bool,
}

impl Container {
    fn proc(&self, exec_id: &str) -> ttrpc::Result<&Proc> {
        if exec_id.is_empty() {
            Ok(&self.init)
        } else {
            self.execs
                .get(exec_id)
                .ok_or_else(|| err(Code::NOT_FOUND, format!("exec {exec_id:?} not found")))
        }
    }

    fn proc_mut(&mut self, exec_id: &str) -> ttrpc::Result<&mut Proc> {
        if exec_id.is_empty() {
            Ok(&mut self.init)
        } else {
            self.execs
                .get_mut(exec_id)
                .ok_or_else(|| err(Code::NOT_FOUND, format!("exec {exec_id:?} not found")))
        }
    }
}

#[derive(Default)]
struct Inner {
    containers: HashMap<String, Container>,
    /// Exits of pids not (yet) known: a process can exit before its pid file is read.
    orphans: HashMap<u32, (u32, SystemTime)>,
}

/// The Task service.
pub struct Shim {
    namespace: String,
    reaper: Arc<Reaper>,
    publisher: Publisher,
    oom: OomWatcher,
    ops: Mutex<()>,
    inner: Mutex<Inner>,
    exited: Condvar,
    shutdown: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

fn read_pid(path: &Path) -> Result<u32, String> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    s.trim()
        .parse()
        .map_err(|_| format!("{}: bad pid {s:?}", path.display()))
}

fn parse_options(any: &MessageField<Any>) -> ttrpc::Result<Options> {
    match any.as_ref() {
        None => Ok(Options::default()),
        Some(a) if a.value.is_empty() => Ok(Options::default()),
        Some(a) if a.type_url.ends_with("containerd.runc.v1.Options") => {
            Options::parse_from_bytes(&a.value)
                .map_err(|e| err(Code::INVALID_ARGUMENT, format!("runc options: {e}")))
        }
        Some(a) => Err(err(
            Code::INVALID_ARGUMENT,
            format!("unsupported options type {:?}", a.type_url),
        )),
    }
}

fn status_of(c: &Container, p: &Proc) -> Status {
    match (p.exit, p.state) {
        (Some(_), _) | (None, PState::Stopped) => Status::STOPPED,
        (None, PState::Created) => Status::CREATED,
        (None, PState::Running) if c.paused => Status::PAUSED,
        (None, PState::Running) => Status::RUNNING,
    }
}

fn record_exit(bundle: &Path, name: &str, pid: u32, status: u32, at: SystemTime) {
    let dir = bundle.join(EXITS_DIR);
    let _ = std::fs::create_dir_all(&dir);
    let ns = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let tmp = dir.join(format!(".{name}.tmp"));
    let v = json!({"pid": pid, "exit_status": status, "exited_at_unix_nano": ns});
    if std::fs::write(&tmp, v.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, dir.join(name));
    }
}

/// The recorded exit of a bundle's init, if any (`delete` reports it).
pub fn recorded_init_exit(bundle: &Path) -> Option<(u32, u32, SystemTime)> {
    let v: Value =
        serde_json::from_slice(&std::fs::read(bundle.join(EXITS_DIR).join("init")).ok()?).ok()?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_nanos(v["exited_at_unix_nano"].as_u64()?);
    Some((
        v["pid"].as_u64()? as u32,
        v["exit_status"].as_u64()? as u32,
        at,
    ))
}

fn pipe() -> ttrpc::Result<(File, File)> {
    let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| err(Code::INTERNAL, format!("pipe: {e}")))?;
    Ok((File::from(r), File::from(w)))
}

/// Stdio for a runtime invocation whose process inherits it, plus what the shim keeps.
struct PreparedIo {
    stdio: [Stdio; 3],
    stdin_dest: Option<File>,
    console: Option<ConsoleSocket>,
    stdout_for_console: Option<File>,
}

fn prepare_io(p: &Proc) -> ttrpc::Result<PreparedIo> {
    let io_err = |what: &str, path: &str, e: std::io::Error| {
        err(Code::INVALID_ARGUMENT, format!("{what} {path:?}: {e}"))
    };
    if p.terminal {
        let console = ConsoleSocket::new().map_err(|e| err(Code::INTERNAL, e.to_string()))?;
        let out = stdio::open_output(&p.stdout).map_err(|e| io_err("stdout", &p.stdout, e))?;
        return Ok(PreparedIo {
            stdio: [Stdio::null(), Stdio::null(), Stdio::null()],
            stdin_dest: None,
            console: Some(console),
            stdout_for_console: Some(out),
        });
    }
    let (stdin, stdin_dest) = if p.stdin.is_empty() {
        (Stdio::null(), None)
    } else {
        let (r, w) = pipe()?;
        (Stdio::from(r), Some(w))
    };
    let out = stdio::open_output(&p.stdout).map_err(|e| io_err("stdout", &p.stdout, e))?;
    let errf = if p.stderr.is_empty() {
        stdio::open_output("")
    } else {
        stdio::open_output(&p.stderr)
    }
    .map_err(|e| io_err("stderr", &p.stderr, e))?;
    Ok(PreparedIo {
        stdio: [stdin, Stdio::from(out), Stdio::from(errf)],
        stdin_dest,
        console: None,
        stdout_for_console: None,
    })
}

/// After the runtime returned: connect the pumps.
fn finish_io(p: &Proc, io: PreparedIo) -> ttrpc::Result<(Option<StdinPump>, Option<Arc<File>>)> {
    let internal = |e: std::io::Error| err(Code::INTERNAL, e.to_string());
    if let Some(console) = io.console {
        let master = Arc::new(console.receive().map_err(internal)?);
        if let Some(out) = io.stdout_for_console {
            stdio::pump_console_output(master.clone(), out).map_err(internal)?;
        }
        let pump = if p.stdin.is_empty() {
            None
        } else {
            let dest = master.try_clone().map_err(internal)?;
            Some(stdio::pump_stdin(&p.stdin, dest).map_err(internal)?)
        };
        return Ok((pump, Some(master)));
    }
    let pump = match io.stdin_dest {
        Some(dest) => Some(stdio::pump_stdin(&p.stdin, dest).map_err(internal)?),
        None => None,
    };
    Ok((pump, None))
}

impl Shim {
    /// A new service.
    pub fn new(
        namespace: String,
        reaper: Arc<Reaper>,
        publisher: Publisher,
        shutdown: std::sync::mpsc::Sender<()>,
    ) -> Arc<Shim> {
        let shim = Arc::new(Shim {
            namespace,
            reaper: reaper.clone(),
            oom: OomWatcher::new(publisher.clone()),
            publisher,
            ops: Mutex::new(()),
            inner: Mutex::new(Inner::default()),
            exited: Condvar::new(),
            shutdown: Mutex::new(Some(shutdown)),
        });
        let s = shim.clone();
        reaper.set_exit_handler(Box::new(move |pid, code, at| {
            s.on_exit(pid as u32, code as u32, at)
        }));
        shim
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ops(&self) -> MutexGuard<'_, ()> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A process exited (called by the reaper thread).
    fn on_exit(&self, pid: u32, code: u32, at: SystemTime) {
        let mut inner = self.lock();
        let mut found = None;
        for (cid, c) in inner.containers.iter_mut() {
            let bundle = c.bundle.clone();
            let procs = std::iter::once(("".to_string(), &mut c.init))
                .chain(c.execs.iter_mut().map(|(k, v)| (k.clone(), v)));
            for (eid, p) in procs {
                if p.pid == pid && p.exit.is_none() {
                    p.exit = Some((code, at));
                    p.state = PState::Stopped;
                    if let Some(pump) = p.stdin_pump.take() {
                        pump.close();
                    }
                    let name = if eid.is_empty() {
                        "init".to_string()
                    } else {
                        format!("exec-{eid}")
                    };
                    record_exit(&bundle, &name, pid, code, at);
                    found = Some((cid.clone(), eid));
                    break;
                }
            }
            if found.is_some() {
                break;
            }
        }
        match found {
            Some((cid, eid)) => {
                let id = if eid.is_empty() { cid.clone() } else { eid };
                self.publisher.publish(Event::Exit(TaskExit {
                    container_id: cid,
                    id,
                    pid,
                    exit_status: code,
                    exited_at: MessageField::some(timestamp(at)),
                    ..Default::default()
                }));
                self.exited.notify_all();
            }
            None => {
                // Exits nobody claimed soon are of processes the shim never tracks
                // (orphans re-parented to it): forget them.
                if inner.orphans.len() >= 64 {
                    let horizon = at - Duration::from_secs(60);
                    inner.orphans.retain(|_, (_, t)| *t >= horizon);
                    if inner.orphans.len() >= 1024 {
                        inner.orphans.clear();
                    }
                }
                inner.orphans.insert(pid, (code, at));
            }
        }
    }

    /// Sets a freshly learned pid, applying an exit that arrived first: only one reaped
    /// after `since` (when the runtime was invoked), so a stale exit of an earlier
    /// process with a recycled pid is never taken for this one.
    fn set_pid(
        &self,
        id: &str,
        exec_id: &str,
        pid: u32,
        state: PState,
        since: SystemTime,
    ) -> ttrpc::Result<()> {
        let mut inner = self.lock();
        let early = inner.orphans.remove(&pid).filter(|(_, at)| *at >= since);
        let c = inner
            .containers
            .get_mut(id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("container {id:?} not found")))?;
        let p = c.proc_mut(exec_id)?;
        p.pid = pid;
        p.state = state;
        if let Some((code, at)) = early {
            drop(inner);
            // Re-run the normal path so the record, event and waiters see it.
            self.on_exit(pid, code, at);
        }
        Ok(())
    }

    fn runtime_of(&self, id: &str) -> ttrpc::Result<(Runtime, PathBuf)> {
        let inner = self.lock();
        let c = inner
            .containers
            .get(id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("container {id:?} not found")))?;
        Ok((c.runtime.clone(), c.bundle.clone()))
    }

    fn request_shutdown(&self) {
        if let Some(tx) = self.shutdown.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }
}

fn runtime_err(e: crate::runtime::RuntimeError) -> ttrpc::Error {
    err(Code::UNKNOWN, e.0)
}

impl containerd_shim_protos::Task for Shim {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: CreateTaskRequest,
    ) -> ttrpc::Result<CreateTaskResponse> {
        let _ops = self.ops();
        if req.id.is_empty() || req.id.contains('/') {
            return Err(err(
                Code::INVALID_ARGUMENT,
                format!("invalid id {:?}", req.id),
            ));
        }
        if req.bundle.is_empty() {
            return Err(err(Code::INVALID_ARGUMENT, "bundle is required"));
        }
        if !req.checkpoint.is_empty() {
            return Err(err(Code::UNIMPLEMENTED, "restore from checkpoint"));
        }
        if self.lock().containers.contains_key(&req.id) {
            return Err(err(
                Code::ALREADY_EXISTS,
                format!("container {:?} already exists", req.id),
            ));
        }
        let opts = parse_options(&req.options)?;
        let bundle = PathBuf::from(&req.bundle);
        let runtime = Runtime::new(
            &opts.binary_name,
            &opts.root,
            opts.systemd_cgroup,
            &self.namespace,
            &bundle,
        );
        runtime
            .save(&bundle)
            .map_err(|e| err(Code::INVALID_ARGUMENT, format!("bundle {bundle:?}: {e}")))?;
        let rootfs = bundle.join("rootfs");
        let mounted = !req.rootfs.is_empty();
        if mounted {
            mount::mount_all(&req.rootfs, &rootfs).map_err(|e| err(Code::INVALID_ARGUMENT, e))?;
        }
        let mut init = Proc::new(&req.stdin, &req.stdout, &req.stderr, req.terminal);
        let cleanup = |rootfs: &Path| {
            if mounted {
                mount::unmount_all(rootfs);
            }
        };
        let io = match prepare_io(&init) {
            Ok(io) => io,
            Err(e) => {
                cleanup(&rootfs);
                return Err(e);
            }
        };
        let pid_file = bundle.join("init.pid");
        let _ = std::fs::remove_file(&pid_file);
        let bundle_s = bundle.to_string_lossy().into_owned();
        let pid_s = pid_file.to_string_lossy().into_owned();
        let console_s = io
            .console
            .as_ref()
            .map(|c| c.path.to_string_lossy().into_owned());
        let mut args = vec!["create", "--bundle", &bundle_s, "--pid-file", &pid_s];
        if let Some(c) = &console_s {
            args.extend(["--console-socket", c]);
        }
        if opts.no_pivot_root {
            args.push("--no-pivot");
        }
        if opts.no_new_keyring {
            args.push("--no-new-keyring");
        }
        args.push(&req.id);
        let PreparedIo {
            stdio,
            stdin_dest,
            console,
            stdout_for_console,
        } = io;
        let invoked = SystemTime::now();
        if let Err(e) = runtime.run_with_stdio(Some(&self.reaper), &args, stdio) {
            cleanup(&rootfs);
            return Err(runtime_err(e));
        }
        let rest = PreparedIo {
            stdio: [Stdio::null(), Stdio::null(), Stdio::null()],
            stdin_dest,
            console,
            stdout_for_console,
        };
        let pid = match read_pid(&pid_file) {
            Ok(p) => p,
            Err(e) => {
                let _ = runtime.output(Some(&self.reaper), &["delete", "--force", &req.id], None);
                cleanup(&rootfs);
                return Err(err(Code::INTERNAL, e));
            }
        };
        let (pump, console) = match finish_io(&init, rest) {
            Ok(x) => x,
            Err(e) => {
                let _ = runtime.output(Some(&self.reaper), &["delete", "--force", &req.id], None);
                cleanup(&rootfs);
                return Err(e);
            }
        };
        init.stdin_pump = pump;
        init.console = console;
        self.lock().containers.insert(
            req.id.clone(),
            Container {
                bundle: bundle.clone(),
                runtime,
                init,
                execs: HashMap::new(),
                mounted_rootfs: mounted,
                paused: false,
            },
        );
        self.publisher.publish(Event::Create(TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                ..Default::default()
            }),
            checkpoint: req.checkpoint.clone(),
            pid,
            ..Default::default()
        }));
        // After TaskCreate: an init that already died gets its TaskExit next.
        self.set_pid(&req.id, "", pid, PState::Created, invoked)?;
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        let _ops = self.ops();
        let (runtime, bundle) = self.runtime_of(&req.id)?;
        {
            let inner = self.lock();
            let p = inner.containers[&req.id].proc(&req.exec_id)?;
            if p.exit.is_some() || p.state != PState::Created {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("process {:?} is not in the created state", req.exec_id),
                ));
            }
            if !req.exec_id.is_empty() && inner.containers[&req.id].init.exit.is_some() {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    "the container's init has exited",
                ));
            }
        }
        if req.exec_id.is_empty() {
            runtime
                .output(Some(&self.reaper), &["start", &req.id], None)
                .map_err(runtime_err)?;
            let pid = {
                let mut inner = self.lock();
                let c = inner.containers.get_mut(&req.id).unwrap();
                if c.init.exit.is_none() {
                    c.init.state = PState::Running;
                }
                c.init.pid
            };
            self.oom.watch(&req.id, pid);
            self.publisher.publish(Event::Start(TaskStart {
                container_id: req.id.clone(),
                pid,
                ..Default::default()
            }));
            return Ok(StartResponse {
                pid,
                ..Default::default()
            });
        }
        // An exec.
        let (spec, io) = {
            let inner = self.lock();
            let p = inner.containers[&req.id].proc(&req.exec_id)?;
            (p.spec.clone().unwrap_or_default(), prepare_io(p)?)
        };
        let pid_file = bundle.join(format!("exec-{}.pid", req.exec_id));
        let _ = std::fs::remove_file(&pid_file);
        let spec_s = spec.to_string_lossy().into_owned();
        let pid_s = pid_file.to_string_lossy().into_owned();
        let console_s = io
            .console
            .as_ref()
            .map(|c| c.path.to_string_lossy().into_owned());
        let mut args = vec![
            "exec",
            "--process",
            &spec_s,
            "--detach",
            "--pid-file",
            &pid_s,
        ];
        if let Some(c) = &console_s {
            args.extend(["--console-socket", c]);
        }
        args.push(&req.id);
        let PreparedIo {
            stdio,
            stdin_dest,
            console,
            stdout_for_console,
        } = io;
        let invoked = SystemTime::now();
        runtime
            .run_with_stdio(Some(&self.reaper), &args, stdio)
            .map_err(runtime_err)?;
        let pid = read_pid(&pid_file).map_err(|e| err(Code::INTERNAL, e))?;
        let rest = PreparedIo {
            stdio: [Stdio::null(), Stdio::null(), Stdio::null()],
            stdin_dest,
            console,
            stdout_for_console,
        };
        let proc_copy = {
            let inner = self.lock();
            let p = inner.containers[&req.id].proc(&req.exec_id)?;
            Proc::new(&p.stdin, &p.stdout, &p.stderr, p.terminal)
        };
        let (pump, console) = finish_io(&proc_copy, rest)?;
        {
            let mut inner = self.lock();
            let p = inner
                .containers
                .get_mut(&req.id)
                .unwrap()
                .proc_mut(&req.exec_id)?;
            p.stdin_pump = pump;
            p.console = console;
        }
        self.publisher.publish(Event::ExecStarted(TaskExecStarted {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            pid,
            ..Default::default()
        }));
        self.set_pid(&req.id, &req.exec_id, pid, PState::Running, invoked)?;
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        let _ops = self.ops();
        let (runtime, bundle) = self.runtime_of(&req.id)?;
        if !req.exec_id.is_empty() {
            let mut inner = self.lock();
            let c = inner.containers.get_mut(&req.id).unwrap();
            let p = c.proc(&req.exec_id)?;
            if p.exit.is_none() && p.state == PState::Running {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("exec {:?} is still running", req.exec_id),
                ));
            }
            let p = c.execs.remove(&req.exec_id).unwrap();
            if let Some(spec) = &p.spec {
                let _ = std::fs::remove_file(spec);
            }
            let (code, at) = p.exit.unwrap_or((0, SystemTime::now()));
            return Ok(DeleteResponse {
                pid: p.pid,
                exit_status: code,
                exited_at: MessageField::some(timestamp(at)),
                ..Default::default()
            });
        }
        let created = {
            let inner = self.lock();
            let c = &inner.containers[&req.id];
            if c.init.exit.is_none() && c.init.state == PState::Running {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("task {:?} is still running: kill it first", req.id),
                ));
            }
            c.init.exit.is_none()
        };
        if let Err(e) = runtime.output(Some(&self.reaper), &["delete", "--force", &req.id], None) {
            let gone = e.0.contains("not exist") || e.0.contains("not found");
            if !gone {
                return Err(runtime_err(e));
            }
        }
        if created {
            // Killed by `delete --force`: wait (briefly) for the reaper to see it.
            let inner = self.lock();
            let _ = self
                .exited
                .wait_timeout_while(inner, Duration::from_secs(5), |i| {
                    i.containers
                        .get(&req.id)
                        .is_some_and(|c| c.init.exit.is_none())
                });
        }
        let c = self
            .lock()
            .containers
            .remove(&req.id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("container {:?} not found", req.id)))?;
        self.oom.unwatch(&req.id);
        if c.mounted_rootfs {
            mount::unmount_all(&bundle.join("rootfs"));
        }
        if let Some(p) = &c.init.stdin_pump {
            p.close();
        }
        let (code, at) = c.init.exit.unwrap_or((137, SystemTime::now()));
        self.exited.notify_all();
        self.publisher.publish(Event::Delete(TaskDelete {
            container_id: req.id.clone(),
            pid: c.init.pid,
            exit_status: code,
            exited_at: MessageField::some(timestamp(at)),
            id: req.id.clone(),
            ..Default::default()
        }));
        Ok(DeleteResponse {
            pid: c.init.pid,
            exit_status: code,
            exited_at: MessageField::some(timestamp(at)),
            ..Default::default()
        })
    }

    fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        let (runtime, _) = self.runtime_of(&req.id)?;
        let listed: Option<Vec<u32>> = runtime
            .output(
                Some(&self.reaper),
                &["ps", "--format", "json", &req.id],
                None,
            )
            .ok()
            .and_then(|out| serde_json::from_slice(&out).ok());
        let inner = self.lock();
        let c = inner
            .containers
            .get(&req.id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("container {:?} not found", req.id)))?;
        // Without cgroups the runtime cannot list a container's processes: fall back to
        // the ones the shim knows.
        let pids = listed.unwrap_or_else(|| {
            std::iter::once(&c.init)
                .chain(c.execs.values())
                .filter(|p| p.exit.is_none() && p.pid != 0)
                .map(|p| p.pid)
                .collect()
        });
        let processes = pids
            .into_iter()
            .map(|pid| {
                let exec = c.execs.iter().find(|(_, p)| p.pid == pid && pid != 0);
                ProcessInfo {
                    pid,
                    info: match exec {
                        Some((eid, _)) => MessageField::some(Any {
                            type_url: "containerd.runc.v1.ProcessDetails".into(),
                            value: ProcessDetails {
                                exec_id: eid.clone(),
                                ..Default::default()
                            }
                            .write_to_bytes()
                            .unwrap_or_default(),
                            ..Default::default()
                        }),
                        None => MessageField::none(),
                    },
                    ..Default::default()
                }
            })
            .collect();
        Ok(PidsResponse {
            processes,
            ..Default::default()
        })
    }

    fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> ttrpc::Result<Empty> {
        self.pause_resume(&req.id, true)
    }

    fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> ttrpc::Result<Empty> {
        self.pause_resume(&req.id, false)
    }

    fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        let (runtime, _) = self.runtime_of(&req.id)?;
        let finished = || err(Code::NOT_FOUND, "process already finished");
        let pid = {
            let inner = self.lock();
            let p = inner.containers[&req.id].proc(&req.exec_id)?;
            if p.exit.is_some() && !(req.all && req.exec_id.is_empty()) {
                return Err(finished());
            }
            p.pid
        };
        if !req.exec_id.is_empty() {
            if pid == 0 {
                return Err(err(Code::FAILED_PRECONDITION, "exec not started"));
            }
            let sig = nix::sys::signal::Signal::try_from(req.signal as i32)
                .map_err(|_| err(Code::INVALID_ARGUMENT, format!("signal {}", req.signal)))?;
            return nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
                .map(|_| Empty::new())
                .map_err(|e| err(Code::NOT_FOUND, format!("process already finished: {e}")));
        }
        let sig = req.signal.to_string();
        let mut args = vec!["kill"];
        if req.all {
            args.push("--all");
        }
        args.extend([req.id.as_str(), sig.as_str()]);
        match runtime.output(Some(&self.reaper), &args, None) {
            Ok(_) => Ok(Empty::new()),
            Err(e) => {
                let exited = self
                    .lock()
                    .containers
                    .get(&req.id)
                    .is_some_and(|c| c.init.exit.is_some());
                if exited {
                    Err(finished())
                } else {
                    Err(runtime_err(e))
                }
            }
        }
    }

    fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        let _ops = self.ops();
        let (_, bundle) = self.runtime_of(&req.id)?;
        if req.exec_id.is_empty() || req.exec_id.contains('/') {
            return Err(err(
                Code::INVALID_ARGUMENT,
                format!("invalid exec id {:?}", req.exec_id),
            ));
        }
        let spec = req
            .spec
            .as_ref()
            .ok_or_else(|| err(Code::INVALID_ARGUMENT, "exec: no process spec"))?;
        let v: Value = serde_json::from_slice(&spec.value)
            .map_err(|e| err(Code::INVALID_ARGUMENT, format!("exec process spec: {e}")))?;
        let args_ok = v["args"]
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string));
        if !args_ok {
            return Err(err(
                Code::INVALID_ARGUMENT,
                "exec process spec: `args` must be a non-empty array of strings",
            ));
        }
        {
            let inner = self.lock();
            let c = &inner.containers[&req.id];
            if c.execs.contains_key(&req.exec_id) {
                return Err(err(
                    Code::ALREADY_EXISTS,
                    format!("exec {:?} already exists", req.exec_id),
                ));
            }
            if c.init.exit.is_some() {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    "the container's init has exited",
                ));
            }
        }
        let path = bundle.join(format!("exec-{}.json", req.exec_id));
        std::fs::write(&path, &spec.value).map_err(|e| err(Code::INTERNAL, e.to_string()))?;
        let mut p = Proc::new(&req.stdin, &req.stdout, &req.stderr, req.terminal);
        p.spec = Some(path);
        self.lock()
            .containers
            .get_mut(&req.id)
            .unwrap()
            .execs
            .insert(req.exec_id.clone(), p);
        self.publisher.publish(Event::ExecAdded(TaskExecAdded {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        }));
        Ok(Empty::new())
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        let inner = self.lock();
        let c = inner
            .containers
            .get(&req.id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("container {:?} not found", req.id)))?;
        let p = c.proc(&req.exec_id)?;
        let master = p
            .console
            .as_ref()
            .ok_or_else(|| err(Code::FAILED_PRECONDITION, "the process has no terminal"))?;
        stdio::resize(master, req.width, req.height)
            .map_err(|e| err(Code::INTERNAL, format!("resize: {e}")))?;
        Ok(Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        let mut inner = self.lock();
        let c = inner
            .containers
            .get_mut(&req.id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("container {:?} not found", req.id)))?;
        let p = c.proc_mut(&req.exec_id)?;
        if req.stdin {
            if let Some(pump) = p.stdin_pump.take() {
                pump.close();
            }
        }
        Ok(Empty::new())
    }

    fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        let _ops = self.ops();
        let (runtime, _) = self.runtime_of(&req.id)?;
        let res = req
            .resources
            .as_ref()
            .ok_or_else(|| err(Code::INVALID_ARGUMENT, "update: no resources"))?;
        serde_json::from_slice::<Value>(&res.value)
            .map_err(|e| err(Code::INVALID_ARGUMENT, format!("update: resources: {e}")))?;
        runtime
            .output(
                Some(&self.reaper),
                &["update", "--resources", "-", &req.id],
                Some(&res.value),
            )
            .map_err(runtime_err)?;
        Ok(Empty::new())
    }

    fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let mut inner = self.lock();
        loop {
            let c = inner
                .containers
                .get(&req.id)
                .ok_or_else(|| err(Code::NOT_FOUND, format!("container {:?} not found", req.id)))?;
            if let Some((code, at)) = c.proc(&req.exec_id)?.exit {
                return Ok(WaitResponse {
                    exit_status: code,
                    exited_at: MessageField::some(timestamp(at)),
                    ..Default::default()
                });
            }
            inner = self.exited.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        let inner = self.lock();
        let c = inner
            .containers
            .get(&req.id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("container {:?} not found", req.id)))?;
        let p = c.proc(&req.exec_id)?;
        let (code, at) = match p.exit {
            Some((c, t)) => (c, MessageField::some(timestamp(t))),
            None => (0, MessageField::none()),
        };
        Ok(StateResponse {
            id: if req.exec_id.is_empty() {
                req.id.clone()
            } else {
                req.exec_id.clone()
            },
            bundle: c.bundle.to_string_lossy().into_owned(),
            pid: p.pid,
            status: EnumOrUnknown::new(status_of(c, p)),
            stdin: p.stdin.clone(),
            stdout: p.stdout.clone(),
            stderr: p.stderr.clone(),
            terminal: p.terminal,
            exit_status: code,
            exited_at: at,
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        let (runtime, _) = self.runtime_of(&req.id)?;
        let out = runtime
            .output(Some(&self.reaper), &["events", "--stats", &req.id], None)
            .map_err(runtime_err)?;
        let metrics = stats::from_runtime_events(&out)
            .map_err(|e| err(Code::INTERNAL, format!("stats: {e}")))?;
        Ok(StatsResponse {
            stats: MessageField::some(Any {
                type_url: "io.containerd.cgroups.v2.Metrics".into(),
                value: metrics.write_to_bytes().unwrap_or_default(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        let inner = self.lock();
        let task_pid = inner.containers.get(&req.id).map_or(0, |c| c.init.pid);
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: VERSION.into(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _ctx: &TtrpcContext, req: ShutdownRequest) -> ttrpc::Result<Empty> {
        if !req.now && !self.lock().containers.is_empty() {
            // Other tasks of the group still live here.
            return Ok(Empty::new());
        }
        self.request_shutdown();
        Ok(Empty::new())
    }
}

impl Shim {
    fn pause_resume(&self, id: &str, pause: bool) -> ttrpc::Result<Empty> {
        let _ops = self.ops();
        let (runtime, _) = self.runtime_of(id)?;
        {
            let inner = self.lock();
            let c = &inner.containers[id];
            if c.init.exit.is_some() || c.init.state != PState::Running {
                return Err(err(Code::FAILED_PRECONDITION, "the task is not running"));
            }
        }
        let verb = if pause { "pause" } else { "resume" };
        runtime
            .output(Some(&self.reaper), &[verb, id], None)
            .map_err(runtime_err)?;
        if let Some(c) = self.lock().containers.get_mut(id) {
            c.paused = pause;
        }
        self.publisher.publish(if pause {
            Event::Paused(TaskPaused {
                container_id: id.into(),
                ..Default::default()
            })
        } else {
            Event::Resumed(TaskResumed {
                container_id: id.into(),
                ..Default::default()
            })
        });
        Ok(Empty::new())
    }
}
