//! sealrun against runc and crun, side by side: `cargo bench --bench runtimes` (as root).
//!
//! Every runtime runs the same busybox bundle (one config.json, sealrun's hardened default with
//! its default seccomp profile), wrapped identically: each measured lifecycle runs in its own
//! private mount namespace (`unshare -m`, with a tmpfs over `/sys/fs/cgroup/unified` where that
//! hybrid mount exists, which this host's crun needs), inside a helper mode of this binary that
//! times each runtime command with the monotonic clock and collects its `wait4` rusage. Runs are
//! interleaved round-robin (the runtime order rotates every iteration), so every figure compares
//! runtimes measured under the same machine load. See docs/benchmarks.md.
//!
//! Environment: `BENCH_ITERS` (default 60), `BENCH_WARMUP` (2), `BENCH_EXECS` (execs per
//! iteration, 3), `BENCH_TP_ROUNDS` (throughput rounds, 5), `BENCH_TP_N` (containers per
//! round, 50), `BENCH_TP_PAR` (at a time, 8), `BENCH_LAYERS` (0 skips the hardening-layer
//! variants), `BENCH_OUT` (results folder, default benches/results), `SEALRUN_BIN` (benchmark
//! that binary instead of this checkout's release build).

mod curve;
mod curve_helper;
mod curve_report;
/// The generated seccomp rules, shared with sealrun's own generator tests.
#[path = "../../src/seccomp/generated_rules.rs"]
mod generated_rules;
mod helper;
mod machine;
mod report;
mod setup;
mod stats;
mod svg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

/// Errors are plain messages: the harness prints them and exits.
pub type Res<T> = Result<T, String>;

/// Knobs from the environment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    pub iters: usize,
    pub warmup: usize,
    pub execs: usize,
    pub tp_rounds: usize,
    pub tp_n: usize,
    pub tp_par: usize,
    pub layers: bool,
}

pub fn env_num(name: &str, default: usize) -> Res<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?}: not a number")),
        Err(_) => Ok(default),
    }
}

impl Settings {
    pub fn from_env() -> Res<Settings> {
        Ok(Settings {
            iters: env_num("BENCH_ITERS", 60)?.max(1),
            warmup: env_num("BENCH_WARMUP", 2)?,
            execs: env_num("BENCH_EXECS", 3)?.max(1),
            tp_rounds: env_num("BENCH_TP_ROUNDS", 5)?,
            tp_n: env_num("BENCH_TP_N", 50)?.max(1),
            tp_par: env_num("BENCH_TP_PAR", 8)?.max(1),
            layers: env_num("BENCH_LAYERS", 1)? != 0,
        })
    }
}

/// One thing measured: a runtime binary with its global flags, or a sealrun variant with one
/// hardening layer off.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Display name (`sealrun`, `crun`, `runc`, `sealrun -landlock` ...).
    pub name: String,
    /// The binary.
    pub bin: PathBuf,
    /// Global flags before the command (`--unsafe-disable landlock`).
    pub flags: Vec<String>,
    /// Whether the config carries `linux.seccomp` (false for the "no seccomp in config" variant).
    pub seccomp_in_config: bool,
    /// A peer runtime (full measurement) rather than a layer variant (`run` only).
    pub peer: bool,
    /// Environment for its commands (`SEALRUN_UNSAFE_SELFEXE=memfd`).
    pub env: Vec<(String, String)>,
}

impl Subject {
    pub fn slug(&self) -> String {
        self.name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    }
}

/// Samples per subject and metric.
pub type Samples = BTreeMap<String, BTreeMap<String, Vec<f64>>>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(helper::FLAG) {
        std::process::exit(helper::main(args.get(2).map(Path::new)));
    }
    // `cargo test --all-targets` runs bench binaries without `--bench`: do nothing then.
    if !args.iter().any(|a| a == "--bench") {
        println!("runtimes: benchmark only; run `cargo bench --bench runtimes` as root");
        return;
    }
    // `-- curve`: the cost curve (curve.rs) instead of the lifecycle run; `-- all`: both, one
    // after the other, each into its own results folder.
    let all = args.iter().any(|a| a == "all");
    let curve = all || args.iter().any(|a| a == "curve");
    let result = (|| -> Res<bool> {
        let lifecycle = if all || !curve { run()? } else { true };
        let curve = if curve { curve::run()? } else { true };
        Ok(lifecycle && curve)
    })();
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    }
}

/// sealrun, crun and runc as measured peers (with every layer on); a peer that cannot be
/// found or installed is left out loudly and returned with the reason.
pub fn peer_subjects(sealrun: &Path) -> (Vec<Subject>, BTreeMap<String, String>) {
    let peer = |name: &str, bin: PathBuf| Subject {
        name: name.into(),
        bin,
        flags: vec![],
        seccomp_in_config: true,
        peer: true,
        env: vec![],
    };
    let mut subjects = vec![peer("sealrun", sealrun.to_path_buf())];
    let mut missing = BTreeMap::new();
    for name in ["crun", "runc"] {
        match setup::peer(name, name) {
            Ok(bin) => subjects.push(peer(name, bin)),
            Err(why) => {
                eprintln!("\n!!! bench: {name} is MISSING and is not measured: {why}\n");
                missing.insert(name.to_string(), why);
            }
        }
    }
    (subjects, missing)
}

/// Returns false when a peer runtime was missing (the results say so, and the exit code too).
fn run() -> Res<bool> {
    setup::require_root()?;
    let settings = Settings::from_env()?;
    let busybox = setup::busybox()?;
    let sealrun = setup::sealrun_bin()?;
    let (mut subjects, missing) = peer_subjects(&sealrun);
    if settings.layers {
        for layer in ["selfexe", "seccomp", "landlock"] {
            subjects.push(Subject {
                name: format!("sealrun -{layer}"),
                bin: sealrun.clone(),
                flags: vec!["--unsafe-disable".into(), layer.into()],
                seccomp_in_config: true,
                peer: false,
                env: vec![],
            });
        }
        // The self-copy's fallback (a sealed memfd) where the read-only overlay works too.
        subjects.push(Subject {
            name: "sealrun memfd".into(),
            bin: sealrun.clone(),
            flags: vec![],
            seccomp_in_config: true,
            peer: false,
            env: vec![("SEALRUN_UNSAFE_SELFEXE".into(), "memfd".into())],
        });
        subjects.push(Subject {
            name: "sealrun -seccomp(config)".into(),
            bin: sealrun.clone(),
            flags: vec![],
            seccomp_in_config: false,
            peer: false,
            env: vec![],
        });
    }
    let work = setup::Work::new()?;
    setup::write_rootfs(&work.rootfs(), &busybox)?;
    setup::write_configs(&work)?;
    let machine = machine::describe(&subjects);
    println!("{}", machine::summary(&machine));
    let started = Instant::now();
    let load_before = machine::loadavg();
    let (samples, failures) = measure(&settings, &subjects, &work)?;
    let load_after = machine::loadavg();
    drop(work);
    let meta = json!({
        "settings": settings,
        "machine": machine,
        "missing": missing,
        "failures": failures,
        "loadavg": {"before": load_before, "after": load_after},
        "seconds": started.elapsed().as_secs(),
    });
    let dir = report::write(&subjects, &samples, &meta)?;
    println!("results: {}", dir.display());
    Ok(missing.is_empty())
}

/// The interleaved measurement: lifecycle iterations, then throughput rounds.
fn measure(
    s: &Settings,
    subjects: &[Subject],
    work: &setup::Work,
) -> Res<(Samples, BTreeMap<String, usize>)> {
    let mut samples = Samples::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let total = s.warmup + s.iters;
    for it in 0..total {
        let warm = it < s.warmup;
        for k in 0..subjects.len() {
            let subj = &subjects[(it + k) % subjects.len()];
            let tasks = if subj.peer {
                vec!["run", "lifecycle", "exec"]
            } else {
                vec!["run"]
            };
            let job = job(s, subj, work, &format!("i{it}"), &tasks);
            match run_job(work, subj, &job) {
                Ok(out) if !warm => record(&mut samples, &subj.name, &out),
                Ok(_) => {}
                Err(e) if warm => return Err(format!("{} failed during warm-up: {e}", subj.name)),
                Err(e) => {
                    eprintln!("bench: {} iteration {it}: {e}", subj.name);
                    *failures.entry(subj.name.clone()).or_default() += 1;
                }
            }
        }
        eprint!(
            "\riteration {}/{total}{}",
            it + 1,
            if warm { " (warm-up)" } else { "" }
        );
    }
    eprintln!();
    let peers: Vec<&Subject> = subjects.iter().filter(|s| s.peer).collect();
    for round in 0..s.tp_rounds {
        for k in 0..peers.len() {
            let subj = peers[(round + k) % peers.len()];
            // Let the kernel finish tearing down the previous batch (network namespaces,
            // cgroups are destroyed asynchronously) so it does not slow the next runtime.
            std::thread::sleep(std::time::Duration::from_millis(300));
            let job = job(s, subj, work, &format!("t{round}"), &["throughput"]);
            match run_job(work, subj, &job) {
                Ok(out) => record(&mut samples, &subj.name, &out),
                Err(e) => {
                    eprintln!("bench: {} throughput round {round}: {e}", subj.name);
                    *failures.entry(subj.name.clone()).or_default() += 1;
                }
            }
        }
        eprint!("\rthroughput round {}/{}", round + 1, s.tp_rounds);
    }
    eprintln!();
    Ok((samples, failures))
}

pub fn job(s: &Settings, subj: &Subject, work: &setup::Work, tag: &str, tasks: &[&str]) -> Value {
    let mut argv = vec![subj.bin.display().to_string()];
    argv.extend(subj.flags.iter().cloned());
    argv.push("--root".into());
    argv.push(work.state_root(&subj.slug()).display().to_string());
    let config = if subj.seccomp_in_config {
        work.config("true")
    } else {
        work.config("true-noseccomp")
    };
    json!({
        "argv": argv,
        "work": work.path(),
        "run_dir": work.run_dir(),
        "rootfs": work.rootfs(),
        "config": config,
        "config_sleep": work.config("sleep"),
        "cgroup_parent": work.cgroup_parent(),
        "prefix": format!("{}-{tag}", subj.slug()),
        "tasks": tasks,
        "env": subj.env,
        "execs": s.execs,
        "tp_n": s.tp_n,
        "tp_par": s.tp_par,
    })
}

/// The shell wrapper every runtime runs under: a private mount namespace (unshare(1) makes its
/// mounts private), and a tmpfs over the hybrid layout's cgroup2 mount if there is one.
const WRAPPER: &str = "set -e; \
    if grep -qs ' /sys/fs/cgroup/unified ' /proc/self/mountinfo; then \
    mount -t tmpfs none /sys/fs/cgroup/unified; fi; exec \"$@\"";

pub fn run_job(work: &setup::Work, subj: &Subject, job: &Value) -> Res<Value> {
    let path = work.path().join(format!("job-{}.json", subj.slug()));
    std::fs::write(&path, job.to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", WRAPPER, "sh"])
        .arg(exe)
        .arg(helper::FLAG)
        .arg(&path)
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "helper exited with {} and no result ({e}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    match v.get("error").and_then(Value::as_str) {
        Some(err) => Err(err.to_string()),
        None => Ok(v),
    }
}

fn record(samples: &mut Samples, name: &str, out: &Value) {
    let Some(map) = out.get("samples").and_then(Value::as_object) else {
        return;
    };
    let entry = samples.entry(name.to_string()).or_default();
    for (metric, v) in map {
        let values = entry.entry(metric.clone()).or_default();
        match v {
            Value::Array(list) => values.extend(list.iter().filter_map(Value::as_f64)),
            other => values.extend(other.as_f64()),
        }
    }
}
