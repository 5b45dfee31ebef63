//! `berth-vm-tests`: builds berth's guest test binaries on the host and runs them inside
//! the cgroup-v2 VM (`tests/vm/run`), streaming libtest's output so the usual
//! `test x ... ok` lines and `test result:` summaries appear on the host, then prints one
//! closing line with the totals. A failing guest test, a test binary that crashes, or a
//! guest that never reports its exit status makes the run fail.
//!
//! Usage: `berth-vm-tests [--features F[,F..]] [--test PATTERN].. [--include FILE]..
//!        [--timeout SECS] [-- TEST-ARGS..]`
//! Defaults: `--features vm --test 'guest_*'`. Every workspace package that declares one of
//! the features is built with it, and its test targets matching the patterns run in the VM.
//! `--include FILE` puts a host binary (and its libraries) into the guest; the real peers
//! the guest tests compare berth with or drive it from (runc, crun, containerd, ctr) are
//! always included when installed.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use berth_tests::libtest_summary::TestCounts;
use berth_tests::{IN_VM_ENV, vm_run_script, workspace_root};

/// Host binaries every guest gets (when installed): the real peers guest tests use.
const REFERENCE_PEERS: [&str; 4] = [
    "/usr/sbin/runc",
    "/usr/bin/crun",
    "/usr/bin/containerd",
    "/usr/bin/ctr",
];

struct Options {
    features: String,
    tests: Vec<String>,
    includes: Vec<String>,
    timeout_secs: u64,
    test_args: Vec<String>,
}

fn parse_args() -> Result<Options> {
    let mut opts = Options {
        features: "vm".into(),
        tests: Vec::new(),
        includes: Vec::new(),
        timeout_secs: 1800,
        test_args: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--features" => opts.features = value("--features")?,
            "--test" => opts.tests.push(value("--test")?),
            "--include" => opts.includes.push(value("--include")?),
            "--timeout" => {
                let v = value("--timeout")?;
                opts.timeout_secs = v
                    .parse()
                    .with_context(|| format!("--timeout: {v:?} is not a number of seconds"))?;
            }
            "--" => {
                opts.test_args.extend(args.by_ref());
            }
            "-h" | "--help" => {
                println!(
                    "usage: berth-vm-tests [--features F[,F..]] [--test PATTERN].. \
                     [--include FILE].. [--timeout SECS] [-- TEST-ARGS..]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if opts.tests.is_empty() {
        opts.tests.push("guest_*".into());
    }
    Ok(opts)
}

/// A guest test binary built by cargo.
struct GuestTest {
    name: String,
    executable: PathBuf,
}

/// The workspace packages that declare at least one of `features`, each with the
/// `package/feature` spellings to enable.
fn packages_with_features(cargo: &str, features: &str) -> Result<Vec<(String, Vec<String>)>> {
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {cargo} metadata"))?;
    if !out.status.success() {
        bail!("cargo metadata failed ({})", out.status);
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing cargo metadata's output")?;
    let wanted: Vec<&str> = features
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    let mut found = Vec::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let Some(name) = pkg["name"].as_str() else {
            continue;
        };
        let declared: Vec<String> = wanted
            .iter()
            .filter(|f| pkg["features"].get(**f).is_some())
            .map(|f| format!("{name}/{f}"))
            .collect();
        if !declared.is_empty() {
            found.push((name.to_string(), declared));
        }
    }
    if found.is_empty() {
        bail!("no workspace package declares any of the features {features:?}");
    }
    Ok(found)
}

/// Builds the selected test targets of every package that declares the features and
/// returns their executables.
fn build_guest_tests(opts: &Options) -> Result<Vec<GuestTest>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let packages = packages_with_features(&cargo, &opts.features)?;
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace_root()).args([
        "test",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    let mut enabled = Vec::new();
    for (name, features) in &packages {
        cmd.args(["-p", name]);
        enabled.extend(features.iter().cloned());
    }
    cmd.args(["--features", &enabled.join(",")]);
    for t in &opts.tests {
        cmd.args(["--test", t]);
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {cargo} test --no-run"))?;
    if !out.status.success() {
        bail!("building the guest tests failed ({})", out.status);
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != true {
            continue;
        }
        let is_test_target = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        if let (true, Some(exe), Some(name)) = (
            is_test_target,
            msg["executable"].as_str(),
            msg["target"]["name"].as_str(),
        ) {
            found.push(GuestTest {
                name: name.to_string(),
                executable: exe.into(),
            });
        }
    }
    if found.is_empty() {
        bail!(
            "no guest test binaries matched {:?} with features {:?}",
            opts.tests,
            opts.features
        );
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Quotes a string for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Writes the script the guest runs: each test binary is copied onto the guest's own
/// tmpfs (exec over 9p is slow) and run with the given arguments; the script's exit
/// status is non-zero when any binary failed.
fn write_guest_script(
    run_dir: &Path,
    tests: &[GuestTest],
    test_args: &[String],
) -> Result<PathBuf> {
    let mut script = String::from("#!/bin/sh\n# generated by berth-vm-tests\n");
    script.push_str(&format!("export {IN_VM_ENV}=1 RUST_BACKTRACE=1\n"));
    if let Ok(cache) = std::env::var("BERTH_CACHE_DIR") {
        script.push_str(&format!("export BERTH_CACHE_DIR={}\n", sh_quote(&cache)));
    }
    script.push_str("failed=0\nmkdir -p /tmp/berth-guest-tests\n");
    let args: Vec<String> = test_args.iter().map(|a| sh_quote(a)).collect();
    for t in tests {
        let local = format!("/tmp/berth-guest-tests/{}", t.name);
        script.push_str(&format!(
            "echo '     Running {name} ({exe})'\n\
             cp {exe_q} {local_q} || {{ echo 'cannot copy {name} into the guest' >&2; failed=1; }}\n\
             if ! {local_q} {args}; then echo 'guest test binary {name} failed' >&2; failed=1; fi\n",
            name = t.name,
            exe = t.executable.display(),
            exe_q = sh_quote(&t.executable.to_string_lossy()),
            local_q = sh_quote(&local),
            args = args.join(" "),
        ));
    }
    script.push_str("exit $failed\n");
    let path = run_dir.join("guest.sh");
    std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The directories the guest must see at their host paths: the workspace (sources,
/// fixtures cache) plus the cargo target dir and the cache dir when they live elsewhere.
fn shares(tests: &[GuestTest]) -> Vec<PathBuf> {
    let root = workspace_root();
    let mut shares = vec![root.clone()];
    let mut extra: Vec<PathBuf> = tests
        .iter()
        .filter_map(|t| t.executable.ancestors().nth(3).map(Path::to_path_buf))
        .collect();
    if let Ok(cache) = std::env::var("BERTH_CACHE_DIR") {
        extra.push(cache.into());
    }
    for dir in extra {
        if !shares.iter().any(|s| dir.starts_with(s)) {
            shares.push(dir);
        }
    }
    shares
}

fn run() -> Result<ExitCode> {
    let opts = parse_args()?;
    let tests = build_guest_tests(&opts)?;
    let target_dir = tests[0]
        .executable
        .ancestors()
        .nth(3)
        .context("test executable is not inside a cargo target dir")?
        .to_path_buf();
    let run_dir = target_dir
        .join("berth-vm-runs")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let script = write_guest_script(&run_dir, &tests, &opts.test_args)?;

    let mut cmd = Command::new(vm_run_script());
    for share in shares(&tests) {
        cmd.arg("--share").arg(share);
    }
    let peers = REFERENCE_PEERS.iter().filter(|p| Path::new(p).exists());
    for file in opts
        .includes
        .iter()
        .map(String::as_str)
        .chain(peers.copied())
    {
        cmd.args(["--include", file]);
    }
    cmd.args(["--timeout", &opts.timeout_secs.to_string()])
        .args(["--console-log"])
        .arg(run_dir.join("console.log"))
        .arg("--")
        .arg("sh")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!(
        "berth-vm-tests: running {} guest test binaries in the VM ({})",
        tests.len(),
        tests
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", vm_run_script().display()))?;

    let mut totals = TestCounts::default();
    let mut summaries = 0usize;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the VM's output")?;
        if let Some(counts) = TestCounts::parse_line(&line) {
            totals.add(counts);
            summaries += 1;
        }
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    let status = child.wait().context("waiting for tests/vm/run")?;

    let mut closing = format!("vm: {} passed, {} failed", totals.passed, totals.failed);
    if totals.ignored > 0 {
        closing.push_str(&format!(", {} skipped", totals.ignored));
    }
    if !status.success() {
        eprintln!(
            "berth-vm-tests: the VM run failed ({status}); console log: {}",
            run_dir.join("console.log").display()
        );
    } else if summaries < tests.len() {
        eprintln!(
            "berth-vm-tests: only {summaries} of {} test binaries printed a summary",
            tests.len()
        );
    }
    println!("{closing}");
    let ok = status.success() && summaries >= tests.len() && totals.failed == 0;
    if ok {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth-vm-tests: {e:#}");
            ExitCode::FAILURE
        }
    }
}
