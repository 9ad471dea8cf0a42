//! The cost curve: how each runtime's cost grows with the work, sealrun, crun and runc side by
//! side, wrapped exactly as the lifecycle figures are (see main.rs). Selected by the argument
//! `curve`: `cargo bench --bench runtimes --features unsafe-test-switches -- curve`.
//!
//! Parts (`BENCH_CURVE_PARTS`, comma-separated, default all):
//! * `runs`: `run` /bin/true with the default seccomp profile and with 50, 300 and 1000 more
//!   argument-conditioned rules, with 5, 50 and 200 more bind mounts, and the floor
//!   (`unshare` of the same namespaces + `chroot` of the same rootfs), interleaved round-robin;
//!   plus sealrun's compile time of each profile, in process.
//! * `probe`: the seccomp filter each runtime actually loaded for each profile (instructions,
//!   read from the container's init with `PTRACE_SECCOMP_GET_FILTER`).
//! * `running`: with N containers already running (`BENCH_CURVE_NS`, default 0,100,500).
//! * `churn`: `BENCH_CHURN_PAR` (8) clients `run` containers back to back for
//!   `BENCH_CHURN_SECS` (60) seconds.
//!
//! Other knobs: `BENCH_CURVE_ITERS` (iterations of `runs`, 20), `BENCH_CURVE_SAMPLES` (sample
//! containers per level of `running`, 20), `BENCH_CURVE_POP_PAR` (clients starting the N, 4),
//! `BENCH_COMPILE_REPS` (compilations per profile, 200).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Value};

use crate::{env_num, generated_rules, setup, Res, Samples, Settings, Subject};

/// The curve's knobs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CurveSettings {
    pub parts: Vec<String>,
    pub ns: Vec<usize>,
    pub iters: usize,
    pub samples: usize,
    pub populate_par: usize,
    pub churn_secs: usize,
    pub churn_par: usize,
    pub compile_reps: usize,
}

impl CurveSettings {
    fn from_env() -> Res<CurveSettings> {
        let list = |name: &str, default: &str| -> Vec<String> {
            std::env::var(name)
                .unwrap_or_else(|_| default.into())
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let ns = list("BENCH_CURVE_NS", "0,100,500")
            .iter()
            .map(|n| n.parse().map_err(|_| format!("BENCH_CURVE_NS: {n:?}")))
            .collect::<Res<Vec<usize>>>()?;
        Ok(CurveSettings {
            parts: list("BENCH_CURVE_PARTS", "runs,probe,running,churn"),
            ns,
            iters: env_num("BENCH_CURVE_ITERS", 20)?.max(1),
            samples: env_num("BENCH_CURVE_SAMPLES", 20)?.max(1),
            populate_par: env_num("BENCH_CURVE_POP_PAR", 4)?.max(1),
            churn_secs: env_num("BENCH_CHURN_SECS", 60)?.max(1),
            churn_par: env_num("BENCH_CHURN_PAR", 8)?.max(1),
            compile_reps: env_num("BENCH_COMPILE_REPS", 200)?.max(1),
        })
    }

    fn has(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

/// Extra seccomp rules per generated profile, and extra bind mounts per variant.
pub const EXTRA_RULES: [usize; 3] = [50, 300, 1000];
pub const EXTRA_MOUNTS: [usize; 3] = [5, 50, 200];

/// `n` rules of one syscall and one argument each: `SCMP_ACT_ERRNO` with `EACCES` (the
/// default action's errno is `EPERM`, so every runtime keeps the rule) when argument
/// `i / k % 6` equals `1000 + i`, on syscalls the default profile refuses anyway. The programs
/// the containers run behave the same; the filter grows by `n` argument comparisons.
fn extra_rules(default: &Value, n: usize) -> Vec<Value> {
    generated_rules::extra_rules(default, n, sealrun::seccomp::known_syscall)
}

/// Writes the variant configs; returns (run variants, probe configs, idle config).
type Configs = (Vec<(String, PathBuf)>, Vec<(String, PathBuf)>, PathBuf);

fn write_configs(work: &setup::Work) -> Res<Configs> {
    let read = |name: &str| -> Res<Value> {
        let p = work.config(name);
        let raw = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_slice(&raw).map_err(|e| format!("{}: {e}", p.display()))
    };
    let save = |name: &str, v: &Value| -> Res<PathBuf> {
        let p = work.config(name);
        std::fs::write(&p, v.to_string()).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(p)
    };
    let base = read("true")?;
    let mut idle = read("sleep")?;
    idle["process"]["args"] = json!(["/bin/sleep", "1000000"]);
    let idle_path = save("idle", &idle)?;
    let mut variants = vec![("seccomp-default".to_string(), work.config("true"))];
    let mut probes = vec![("default".to_string(), idle_path.clone())];
    for n in EXTRA_RULES {
        let rules = extra_rules(&base["linux"]["seccomp"], n);
        for (cfg, into_probes) in [(&base, false), (&idle, true)] {
            let mut c = cfg.clone();
            if let Some(list) = c["linux"]["seccomp"]["syscalls"].as_array_mut() {
                list.extend(rules.iter().cloned());
            }
            if into_probes {
                probes.push((format!("+{n}"), save(&format!("idle-seccomp-{n}"), &c)?));
            } else {
                variants.push((format!("seccomp-{n}"), save(&format!("seccomp-{n}"), &c)?));
            }
        }
    }
    let source = work.path().join("bindsrc");
    std::fs::create_dir_all(&source).map_err(|e| format!("{}: {e}", source.display()))?;
    let most = EXTRA_MOUNTS.iter().copied().max().unwrap_or(0);
    for i in 0..most {
        let p = work.rootfs().join(format!("mnt/b{i}"));
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    for n in EXTRA_MOUNTS {
        let mut c = base.clone();
        if let Some(list) = c["mounts"].as_array_mut() {
            list.extend((0..n).map(|i| {
                json!({"destination": format!("/mnt/b{i}"), "type": "bind",
                       "source": source, "options": ["bind", "ro"]})
            }));
        }
        variants.push((format!("mounts-{n}"), save(&format!("mounts-{n}"), &c)?));
    }
    Ok((variants, probes, idle_path))
}

/// The floor: `unshare` of the namespaces the config asks for, then `chroot` of the rootfs.
fn floor_subject(work: &setup::Work) -> Res<Subject> {
    let cfg: Value = std::fs::read(work.config("true"))
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or("config-true.json unreadable")?;
    let mut flags = Vec::new();
    for ns in cfg["linux"]["namespaces"].as_array().into_iter().flatten() {
        let flag: &[&str] = match ns["type"].as_str() {
            Some("pid") => &["--pid", "--fork"],
            Some("network") => &["--net"],
            Some("ipc") => &["--ipc"],
            Some("uts") => &["--uts"],
            Some("mount") => &["--mount"],
            Some("cgroup") => &["--cgroup"],
            Some("user") => &["--user"],
            Some("time") => &["--time"],
            other => return Err(format!("floor: namespace {other:?} has no unshare flag")),
        };
        flags.extend(flag.iter().map(|s| s.to_string()));
    }
    flags.push("chroot".into());
    Ok(Subject {
        name: "floor".into(),
        bin: setup::which("unshare").ok_or("no unshare on PATH")?,
        flags,
        seccomp_in_config: true,
        peer: false,
        env: vec![],
    })
}

/// What went wrong, per subject and part, with the last message.
pub type Failures = BTreeMap<String, BTreeMap<String, String>>;

fn fail(failures: &mut Failures, who: &str, what: &str, msg: String) {
    eprintln!("\nbench: {who} {what}: {msg}");
    // "`<the whole command line>` failed (1): <stderr>": the stderr is what matters.
    let msg = match msg.find("` failed") {
        Some(i) if msg.starts_with('`') => msg[i + 2..].to_string(),
        _ => msg,
    };
    failures
        .entry(who.to_string())
        .or_default()
        .insert(what.to_string(), msg);
}

/// Numbers into the samples; a helper's `errors` object into the failures.
fn record(samples: &mut Samples, failures: &mut Failures, who: &str, out: &Value) {
    if let Some(errs) = out["samples"]["errors"].as_object() {
        for (what, msg) in errs {
            fail(failures, who, what, msg.as_str().unwrap_or_default().into());
        }
    }
    let Some(map) = out["samples"].as_object() else {
        return;
    };
    let entry = samples.entry(who.to_string()).or_default();
    for (metric, v) in map.iter().filter(|(k, _)| *k != "errors") {
        let values = entry.entry(metric.clone()).or_default();
        match v {
            Value::Array(list) => values.extend(list.iter().filter_map(Value::as_f64)),
            other => values.extend(other.as_f64()),
        }
    }
}

struct Ctx<'a> {
    settings: &'a Settings,
    cs: &'a CurveSettings,
    work: &'a setup::Work,
    configs: Configs,
}

impl Ctx<'_> {
    /// One helper job for `subj` under a cgroup parent of its own, which is checked and removed
    /// afterwards (whatever the helper left there is killed and reported as a failure); its
    /// samples go into `samples`, its errors into `failures`.
    #[allow(clippy::too_many_arguments)]
    fn job(
        &self,
        subj: &Subject,
        tag: &str,
        tasks: &[&str],
        curve: Value,
        keep: bool,
        samples: &mut Samples,
        failures: &mut Failures,
    ) {
        let mut job = crate::job(self.settings, subj, self.work, tag, tasks);
        let parent = format!("{}/{}-{tag}", self.work.cgroup_parent(), subj.slug());
        job["cgroup_parent"] = json!(parent);
        job["curve"] = curve;
        if subj.name == "floor" {
            let mut argv = vec![json!(subj.bin)];
            argv.extend(subj.flags.iter().map(|f| json!(f)));
            job["argv"] = json!(argv);
        }
        match crate::run_job(self.work, subj, &job) {
            Ok(out) if keep => record(samples, failures, &subj.name, &out),
            Ok(_) => {}
            Err(e) => fail(failures, &subj.name, tag, e),
        }
        let left = setup::remove_cgroups(&parent);
        if left > 0 {
            let msg = format!("left {left} cgroups behind (removed by the bench)");
            fail(failures, &subj.name, &format!("{tag} cleanup"), msg);
        }
    }
}

/// The curve; returns false when a peer was missing or something failed.
pub fn run() -> Res<bool> {
    setup::require_root()?;
    let settings = Settings::from_env()?;
    let cs = CurveSettings::from_env()?;
    let busybox = setup::busybox()?;
    let sealrun = setup::sealrun_bin()?;
    let (subjects, missing) = crate::peer_subjects(&sealrun);
    let work = setup::Work::new()?;
    setup::write_rootfs(&work.rootfs(), &busybox)?;
    setup::write_configs(&work)?;
    let ctx = Ctx {
        settings: &settings,
        cs: &cs,
        work: &work,
        configs: write_configs(&work)?,
    };
    let machine = crate::machine::describe(&subjects);
    println!("{}", crate::machine::summary(&machine));
    let started = Instant::now();
    let load_before = crate::machine::loadavg();
    let mut samples = Samples::new();
    let mut failures = Failures::new();
    let mut compiled = BTreeMap::new();
    if cs.has("runs") {
        compiled = compile_times(&ctx, &mut samples)?;
        runs(&ctx, &subjects, &mut samples, &mut failures)?;
    }
    if cs.has("probe") {
        for subj in &subjects {
            let curve = json!({ "probes": ctx.configs.1 });
            ctx.job(
                subj,
                "probe",
                &["probe"],
                curve,
                true,
                &mut samples,
                &mut failures,
            );
        }
    }
    if cs.has("running") {
        running(&ctx, &subjects, &mut samples, &mut failures);
    }
    if cs.has("churn") {
        for subj in &subjects {
            std::thread::sleep(std::time::Duration::from_secs(1));
            eprintln!("churn: {} for {} s", subj.name, cs.churn_secs);
            let curve = json!({ "churn_secs": cs.churn_secs, "churn_par": cs.churn_par });
            ctx.job(
                subj,
                "churn",
                &["churn"],
                curve,
                true,
                &mut samples,
                &mut failures,
            );
        }
    }
    let load_after = crate::machine::loadavg();
    drop(ctx);
    drop(work);
    let meta = json!({
        "settings": settings,
        "curve": cs,
        "machine": machine,
        "missing": missing,
        "failures": failures,
        "compiled": compiled,
        "loadavg": {"before": load_before, "after": load_after},
        "seconds": started.elapsed().as_secs(),
    });
    let dir = crate::curve_report::write(&subjects, &samples, &meta)?;
    println!("results: {}", dir.display());
    Ok(missing.is_empty() && failures.is_empty())
}

/// sealrun's compile time of each profile, in process (the library's `seccomp::compile`, what
/// `create` runs), and the program's length, or why it was refused.
fn compile_times(ctx: &Ctx, samples: &mut Samples) -> Res<BTreeMap<String, Value>> {
    let mut info = BTreeMap::new();
    for (name, path) in &ctx.configs.1 {
        let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let cfg: Value = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
        let profile: oci_spec::runtime::LinuxSeccomp =
            serde_json::from_value(cfg["linux"]["seccomp"].clone()).map_err(|e| e.to_string())?;
        let rules = cfg["linux"]["seccomp"]["syscalls"]
            .as_array()
            .map_or(0, Vec::len);
        match sealrun::seccomp::compile(&profile) {
            Ok(c) => {
                let entry = samples.entry("sealrun".into()).or_default();
                for _ in 0..ctx.cs.compile_reps {
                    let t0 = Instant::now();
                    let _ = std::hint::black_box(sealrun::seccomp::compile(&profile));
                    let ms = t0.elapsed().as_secs_f64() * 1e3;
                    entry.entry(format!("compile/{name}")).or_default().push(ms);
                }
                let by_action: usize = c.summary.rules.values().sum();
                info.insert(
                    name.clone(),
                    json!({"entries": rules, "rules": by_action,
                           "instructions": c.summary.instructions}),
                );
            }
            Err(e) => {
                info.insert(
                    name.clone(),
                    json!({"entries": rules, "error": e.to_string()}),
                );
            }
        }
    }
    Ok(info)
}

/// The `run` variants and the floor, interleaved: every iteration runs each subject once (the
/// order rotates), and each subject's variants in an order that rotates too.
fn runs(
    ctx: &Ctx,
    subjects: &[Subject],
    samples: &mut Samples,
    failures: &mut Failures,
) -> Res<()> {
    let mut all: Vec<Subject> = subjects.to_vec();
    all.push(floor_subject(ctx.work)?);
    let variants = &ctx.configs.0;
    let total = ctx.cs.iters + 1;
    for it in 0..total {
        for k in 0..all.len() {
            let subj = &all[(it + k) % all.len()];
            let mut order = variants.clone();
            let len = order.len().max(1);
            order.rotate_left(it % len);
            let (tasks, curve) = if subj.name == "floor" {
                (["floor"], json!({}))
            } else {
                (["runs"], json!({ "variants": order }))
            };
            ctx.job(
                subj,
                &format!("r{it}"),
                &tasks,
                curve,
                it > 0,
                samples,
                failures,
            );
        }
        eprint!(
            "\rruns: iteration {}/{total} (the first is warm-up)",
            it + 1
        );
    }
    eprintln!();
    Ok(())
}

/// N containers running: each level, each runtime alone (its N are torn down and its cgroups
/// checked before the next runtime starts), runtime order rotating per level.
fn running(ctx: &Ctx, subjects: &[Subject], samples: &mut Samples, failures: &mut Failures) {
    for (level, &n) in ctx.cs.ns.iter().enumerate() {
        for k in 0..subjects.len() {
            let subj = &subjects[(level + k) % subjects.len()];
            eprintln!("running: {} with {n} containers", subj.name);
            let curve = json!({
                "n": n,
                "samples": ctx.cs.samples,
                "populate_par": ctx.cs.populate_par,
                "config_idle": ctx.configs.2,
            });
            ctx.job(
                subj,
                &format!("n{n}"),
                &["running"],
                curve,
                true,
                samples,
                failures,
            );
            // The kernel tears network namespaces down asynchronously: let it finish with this
            // runtime's before the next one starts its own.
            std::thread::sleep(std::time::Duration::from_millis(500 + 10 * n as u64));
        }
    }
}
