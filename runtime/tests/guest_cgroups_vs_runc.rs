//! The same cgroup scenarios under berth-runtime, runc and crun, inside the VM, to show
//! they behave alike: where the cgroup goes for each cgroupsPath form, the converted
//! limits as seen from inside the container, the device filter, OOM kill, pause, ps and
//! update. runc and crun are the host's packages (scripts/install-deps), which the runner
//! always brings into the guest:
//!
//! ```sh
//! cargo run -p berth-tests --bin berth-vm-tests -- --test guest_cgroups_vs_runc
//! ```

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{TestBundle, stderr, stdout};
use serde_json::{Value, json};

const RUNC: &str = "/usr/sbin/runc";
const CRUN: &str = "/usr/bin/crun";

/// One runtime under test.
struct Rt {
    name: &'static str,
    bin: PathBuf,
    root: tempfile::TempDir,
}

impl Rt {
    fn all() -> Vec<Rt> {
        common::require_guest();
        for b in [RUNC, CRUN] {
            assert!(
                Path::new(b).exists(),
                "{b} is not in the guest: install it on the host (scripts/install-deps); \
                 berth-vm-tests brings it in"
            );
        }
        [("berth", common::BIN), ("runc", RUNC), ("crun", CRUN)]
            .into_iter()
            .map(|(name, bin)| Rt {
                name,
                bin: bin.into(),
                root: tempfile::Builder::new()
                    .prefix(&format!("{name}-root-"))
                    .tempdir()
                    .unwrap(),
            })
            .collect()
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path()).stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Foreground `run` (pivot_root is impossible on the VM's initramfs root).
    fn run_bundle(&self, b: &TestBundle, id: &str) -> Output {
        self.cmd()
            .args(["run", "--bundle"])
            .arg(b.path())
            .arg(id)
            .output()
            .unwrap()
    }

    fn run_detached(&self, b: &TestBundle, id: &str) -> Output {
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        let status = self
            .cmd()
            .args(["run", "-d", "--bundle"])
            .arg(b.path())
            .arg(id)
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap())
            .status()
            .unwrap();
        let read = |mut f: std::fs::File| {
            use std::io::{Read, Seek};
            let mut v = Vec::new();
            f.seek(std::io::SeekFrom::Start(0)).unwrap();
            f.read_to_end(&mut v).unwrap();
            v
        };
        Output {
            status,
            stdout: read(out),
            stderr: read(err),
        }
    }

    fn state(&self, id: &str) -> Value {
        let out = self.run(&["state", id]);
        assert!(
            out.status.success(),
            "{} state: {}",
            self.name,
            stderr(&out)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn ok(&self, out: &Output) -> String {
        assert!(
            out.status.success(),
            "{} failed ({:?}): stdout={} stderr={}",
            self.name,
            out.status,
            stdout(out),
            stderr(out)
        );
        stdout(out)
    }
}

fn bundle(args: &[&str], f: impl FnOnce(&mut Value)) -> TestBundle {
    let b = TestBundle::new(args);
    b.edit(f);
    b
}

/// Runs `args` in a fresh bundle per runtime and returns each one's stdout.
fn same_output(args: &[&str], edit: impl Fn(&mut Value)) -> Vec<(String, String)> {
    let mut outs = Vec::new();
    for rt in Rt::all() {
        let b = bundle(args, &edit);
        let id = format!("cmp-{}", rt.name);
        let out = rt.run_bundle(&b, &id);
        outs.push((rt.name.to_owned(), rt.ok(&out)));
    }
    let first = &outs[0].1;
    for (name, o) in &outs {
        assert_eq!(o, first, "{name} differs from berth: {outs:#?}");
    }
    outs
}

fn cgroup_of(pid: i64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn limits_seen_from_inside_are_the_same() {
    let outs = same_output(
        &[
            "/bin/sh",
            "-c",
            "cd /sys/fs/cgroup; cat memory.max memory.low memory.swap.max cpu.weight cpu.max \
             pids.max cpuset.cpus; cat /proc/self/cgroup",
        ],
        |c| {
            c["linux"]["resources"]["memory"] =
                json!({"limit": 67108864, "reservation": 16777216, "swap": 100663296});
            c["linux"]["resources"]["cpu"] =
                json!({"shares": 512, "quota": 30000, "period": 60000, "cpus": "1"});
            c["linux"]["resources"]["pids"] = json!({"limit": 42});
        },
    );
    assert_eq!(
        outs[0].1,
        "67108864\n16777216\n33554432\n20\n30000 60000\n42\n1\n0::/\n"
    );
}

#[test]
fn device_filter_is_the_same() {
    let outs = same_output(
        &[
            "/bin/sh",
            "-c",
            "head -c1 /dev/zero | wc -c; mknod /dev/sda b 8 0 && echo mknod-ok; \
             head -c1 /dev/sda 2>&1 | sed 's/^[a-z]*: //'; true",
        ],
        |c| {
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_MKNOD"));
            }
        },
    );
    assert_eq!(
        outs[0].1,
        "1\nmknod-ok\n/dev/sda: Operation not permitted\n"
    );
}

#[test]
fn oom_kill_exit_status_is_the_same() {
    for rt in Rt::all() {
        let b = bundle(
            &[
                "/bin/dd",
                "if=/dev/zero",
                "of=/dev/null",
                "bs=128M",
                "count=1",
            ],
            |c| c["linux"]["resources"]["memory"] = json!({"limit": 33554432}),
        );
        let out = rt.run_bundle(&b, &format!("oom-{}", rt.name));
        assert_eq!(
            out.status.code(),
            Some(137),
            "{}: {}",
            rt.name,
            stderr(&out)
        );
    }
}

/// Where the cgroup goes: an absolute path is under the root; a relative one and the
/// default (the id) are placed the same way by all three.
#[test]
fn cgroup_placement_is_the_same() {
    for (path, expect) in [
        (Some("/cmp-abs/{rt}"), "0::/cmp-abs/{rt}".to_owned()),
        (Some("cmp-rel/{rt}"), "0::/cmp-rel/{rt}".to_owned()),
        (None, "0::/{id}".to_owned()),
    ] {
        let mut got = Vec::new();
        for rt in Rt::all() {
            let id = format!("place-{}", rt.name);
            let b = bundle(&["/bin/sleep", "100"], |c| {
                if let Some(p) = path {
                    c["linux"]["cgroupsPath"] = json!(p.replace("{rt}", rt.name));
                }
            });
            rt.ok(&rt.run_detached(&b, &id));
            let pid = rt.state(&id)["pid"].as_i64().unwrap();
            let cg = cgroup_of(pid);
            rt.ok(&rt.run(&["delete", "-f", &id]));
            let want = expect.replace("{rt}", rt.name).replace("{id}", &id);
            got.push((rt.name, cg.clone(), want.clone()));
            assert!(
                !Path::new("/sys/fs/cgroup")
                    .join(cg.trim_start_matches("0::/"))
                    .exists(),
                "{}: cgroup {cg} left after delete",
                rt.name
            );
        }
        for (name, cg, want) in &got {
            assert_eq!(cg, want, "{name} for cgroupsPath {path:?}: {got:?}");
        }
    }
    for d in ["/sys/fs/cgroup/cmp-abs", "/sys/fs/cgroup/cmp-rel"] {
        let _ = std::fs::remove_dir(d);
    }
}

#[test]
fn pause_ps_update_are_the_same() {
    for rt in Rt::all() {
        let id = format!("ppu-{}", rt.name);
        let b = bundle(&["/bin/sh", "-c", "sleep 100 & sleep 100"], |c| {
            c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        });
        rt.ok(&rt.run_detached(&b, &id));
        let cg = cgroup_of(rt.state(&id)["pid"].as_i64().unwrap());
        let dir = Path::new("/sys/fs/cgroup").join(cg.trim_start_matches("0::/"));
        let mut pids: Vec<i64> = Vec::new();
        for _ in 0..200 {
            pids = serde_json::from_str(rt.ok(&rt.run(&["ps", "--format", "json", &id])).trim())
                .unwrap();
            if pids.len() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(pids.len(), 2, "{}: {pids:?}", rt.name);
        rt.ok(&rt.run(&["pause", &id]));
        assert_eq!(rt.state(&id)["status"], "paused", "{}", rt.name);
        assert_eq!(
            std::fs::read_to_string(dir.join("cgroup.freeze"))
                .unwrap()
                .trim(),
            "1"
        );
        rt.ok(&rt.run(&["resume", &id]));
        assert_eq!(rt.state(&id)["status"], "running", "{}", rt.name);
        rt.ok(&rt.run(&["update", "--memory", "33554432", &id]));
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max"))
                .unwrap()
                .trim(),
            "33554432",
            "{}",
            rt.name
        );
        rt.ok(&rt.run(&["delete", "-f", &id]));
        assert!(!dir.exists(), "{}: {} left", rt.name, dir.display());
    }
}
