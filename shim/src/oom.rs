//! OOM kills from cgroup v2 `memory.events`: one inotify instance (and one thread,
//! started on the first watch) for all of the shim's containers. A container is watched
//! from Start when its init is in a cgroup of its own (not when the runtime runs with
//! cgroups disabled and the container shares the shim's cgroup); each increase of
//! `oom_kill` publishes `TaskOOM`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use containerd_shim_protos::events::task::TaskOOM;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::events::{Event, Publisher};

struct Watch {
    id: String,
    file: PathBuf,
    oom_kills: u64,
}

/// The watcher (see the module doc).
pub struct OomWatcher {
    inotify: Mutex<Option<Arc<Inotify>>>,
    watches: Arc<Mutex<HashMap<WatchDescriptor, Watch>>>,
    publisher: Publisher,
}

fn cgroup_of(pid: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

fn oom_kills(file: &Path) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

impl OomWatcher {
    /// A watcher publishing through `publisher`.
    pub fn new(publisher: Publisher) -> OomWatcher {
        OomWatcher {
            inotify: Mutex::new(None),
            watches: Arc::new(Mutex::new(HashMap::new())),
            publisher,
        }
    }

    fn inotify(&self) -> Option<Arc<Inotify>> {
        let mut slot = self.inotify.lock().unwrap();
        if let Some(i) = &*slot {
            return Some(i.clone());
        }
        let ino = Arc::new(Inotify::init(InitFlags::IN_CLOEXEC).ok()?);
        let (i, watches, publisher) = (ino.clone(), self.watches.clone(), self.publisher.clone());
        std::thread::Builder::new()
            .name("oom".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                loop {
                    let Ok(events) = i.read_events() else {
                        continue;
                    };
                    for ev in events {
                        let mut w = watches.lock().unwrap();
                        let Some(watch) = w.get_mut(&ev.wd) else {
                            continue;
                        };
                        let now = oom_kills(&watch.file);
                        if now > watch.oom_kills {
                            watch.oom_kills = now;
                            publisher.publish(Event::Oom(TaskOOM {
                                container_id: watch.id.clone(),
                                ..Default::default()
                            }));
                        }
                    }
                }
            })
            .ok()?;
        *slot = Some(ino.clone());
        Some(ino)
    }

    /// Watches the cgroup of container `id`'s init `pid`, if it has its own.
    pub fn watch(&self, id: &str, pid: u32) {
        let (Some(cg), Some(own)) = (cgroup_of(&pid.to_string()), cgroup_of("self")) else {
            return;
        };
        if cg == own {
            return;
        }
        let file = Path::new("/sys/fs/cgroup")
            .join(cg.trim_start_matches('/'))
            .join("memory.events");
        if !file.exists() {
            return;
        }
        let Some(ino) = self.inotify() else {
            return;
        };
        let mut watches = self.watches.lock().unwrap();
        if let Ok(wd) = ino.add_watch(&file, AddWatchFlags::IN_MODIFY) {
            let oom_kills = oom_kills(&file);
            watches.insert(
                wd,
                Watch {
                    id: id.to_string(),
                    file,
                    oom_kills,
                },
            );
        }
    }

    /// Stops watching container `id`.
    pub fn unwatch(&self, id: &str) {
        let ino = self.inotify.lock().unwrap().clone();
        let mut watches = self.watches.lock().unwrap();
        let wds: Vec<WatchDescriptor> = watches
            .iter()
            .filter(|(_, w)| w.id == id)
            .map(|(wd, _)| *wd)
            .collect();
        for wd in wds {
            watches.remove(&wd);
            if let Some(i) = &ino {
                let _ = i.rm_watch(wd);
            }
        }
    }
}
