//! The cost-curve tasks of the helper (see `curve.rs`), run inside the same wrapper and helper
//! as the lifecycle figures:
//!
//! * `running`: start `n` sleeping containers, then time `create`+`start`, `state`, `list` and
//!   `delete` of sample containers next to them, and read an idle container's memory; tear the
//!   `n` down (SIGKILL, reap, `delete`) before returning, and on any error too.
//! * `churn`: `churn_par` clients `run` /bin/true back to back for `churn_secs`.
//! * `runs`: one `run` of /bin/true per config variant (seccomp profile size, mount count).
//! * `probe`: the seccomp filter each runtime loaded, read from a running container's init
//!   with `PTRACE_SECCOMP_GET_FILTER` (instruction count).
//! * `floor`: the job's argv is `unshare ... chroot ROOTFS /bin/true`, timed as one command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::helper::{bundle, cgroup_file, put, read_pid, timed, timed_tag, wait4, Done, Job};
use crate::Res;

/// The curve settings a job carries.
#[derive(Debug, Default, Deserialize)]
pub struct CurveJob {
    /// Containers kept running while the samples are taken.
    #[serde(default)]
    pub n: usize,
    /// Sample containers per level.
    #[serde(default)]
    pub samples: usize,
    /// Clients starting the `n` containers.
    #[serde(default)]
    pub populate_par: usize,
    #[serde(default)]
    pub churn_secs: f64,
    #[serde(default)]
    pub churn_par: usize,
    /// Config of an idle container (busybox `sleep`).
    #[serde(default)]
    pub config_idle: PathBuf,
    /// `run` variants: (name, config).
    #[serde(default)]
    pub variants: Vec<(String, PathBuf)>,
    /// Seccomp probes: (profile name, config of an idle container with that profile).
    #[serde(default)]
    pub probes: Vec<(String, PathBuf)>,
}

/// Dispatch a curve task.
pub fn task(job: &Job, name: &str, out: &mut Map<String, Value>) -> Res<()> {
    match name {
        "running" => running(job, out),
        "churn" => churn(job, out),
        "runs" => runs(job, out),
        "probe" => probe(job, out),
        "floor" => {
            let root = job.rootfs.display().to_string();
            let d = timed(job, &[&root, "/bin/true"])?;
            put(out, "run/floor_ms", d.ms);
            put(out, "run_cpu/floor_ms", d.cpu_ms);
            Ok(())
        }
        other => Err(format!("unknown task {other}")),
    }
}

fn runtime(job: &Job, cmd: &[&str]) -> Command {
    let mut c = Command::new(&job.argv[0]);
    c.args(&job.argv[1..])
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Containers this helper started and has not deleted yet. Dropping it (after an error, or a
/// panic that unwinds) kills their inits, reaps them and force-deletes the containers, so one
/// runtime's containers are gone before the next runtime's job starts.
struct Fleet<'a> {
    job: &'a Job,
    members: Mutex<BTreeMap<String, Option<i32>>>,
}

impl<'a> Fleet<'a> {
    fn new(job: &'a Job) -> Fleet<'a> {
        Fleet {
            job,
            members: Mutex::new(BTreeMap::new()),
        }
    }

    fn set(&self, id: &str, pid: Option<i32>) {
        if let Ok(mut m) = self.members.lock() {
            m.insert(id.to_string(), pid);
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut m) = self.members.lock() {
            m.remove(id);
        }
    }

    /// SIGKILL every init, reap it (it is our child: we are the subreaper), then `delete`
    /// (`--force` for one whose pid we never learnt). Returns the wall time of the deletes.
    fn teardown(&self) -> Res<f64> {
        let members = std::mem::take(&mut *self.members.lock().map_err(|e| e.to_string())?);
        for pid in members.values().flatten() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for pid in members.values().flatten() {
            let _ = wait4(*pid);
        }
        let t0 = Instant::now();
        let mut failed = Vec::new();
        for (id, pid) in &members {
            let cmd: &[&str] = match pid {
                Some(_) => &["delete", id],
                None => &["delete", "--force", id],
            };
            let ok = runtime(self.job, cmd).status().is_ok_and(|s| s.success());
            if !ok && pid.is_some() {
                let _ = runtime(self.job, &["delete", "--force", id]).status();
                failed.push(id.clone());
            }
        }
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if failed.is_empty() {
            Ok(ms)
        } else {
            Err(format!("delete failed for {}", failed.join(", ")))
        }
    }
}

impl Drop for Fleet<'_> {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// `create` + `start` of an idle container; returns their summed wall and CPU time, and the
/// init's pid.
fn start_idle(job: &Job, fleet: &Fleet, id: &str, config: &Path, tag: &str) -> Res<(Done, i32)> {
    let b = bundle(job, id, config)?.display().to_string();
    let pid_file = job.run_dir.join(format!("{id}.pid"));
    let pid_arg = pid_file.display().to_string();
    fleet.set(id, None);
    let c = timed_tag(
        job,
        &["create", "--bundle", &b, "--pid-file", &pid_arg, id],
        tag,
    )?;
    let pid = read_pid(&pid_file)?;
    fleet.set(id, Some(pid));
    let s = timed_tag(job, &["start", id], tag)?;
    let sum = Done {
        ms: c.ms + s.ms,
        cpu_ms: c.cpu_ms + s.cpu_ms,
        rss_kb: c.rss_kb.max(s.rss_kb),
    };
    Ok((sum, pid))
}

/// Wait until the init has become busybox `sleep` (the runtime's own code is gone).
fn wait_idle(pid: i32) -> Res<()> {
    let comm = format!("/proc/{pid}/comm");
    let t0 = Instant::now();
    loop {
        if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep") {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(5) {
            return Err(format!("container init {pid} never became `sleep`"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn vm_rss_kb(pid: i32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn running(job: &Job, out: &mut Map<String, Value>) -> Res<()> {
    let c = &job.curve;
    let level = format!("n{}", c.n);
    let fleet = Fleet::new(job);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..c.populate_par.max(1).min(c.n.max(1)) {
            let (fleet, next, first_error) = (&fleet, &next, &first_error);
            s.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= c.n || first_error.lock().is_ok_and(|e| e.is_some()) {
                    break;
                }
                let id = format!("{}-bg{i}", job.prefix);
                if let Err(e) = start_idle(job, fleet, &id, &c.config_idle, &format!("-p{t}")) {
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().map_err(|e| e.to_string())? {
        return Err(format!("starting {} containers: {e}", c.n));
    }
    if c.n > 0 {
        put(
            out,
            &format!("{level}/populate_s"),
            t0.elapsed().as_secs_f64(),
        );
    }
    let samples = Fleet::new(job);
    for k in 0..c.samples {
        let id = format!("{}-s{k}", job.prefix);
        let (cs, pid) = start_idle(job, &samples, &id, &c.config_idle, "")?;
        put(out, &format!("{level}/cs_ms"), cs.ms);
        put(out, &format!("{level}/cs_cpu_ms"), cs.cpu_ms);
        for (name, cmd) in [
            ("state", vec!["state", id.as_str()]),
            ("list", vec!["list"]),
        ] {
            let d = timed(job, &cmd)?;
            put(out, &format!("{level}/{name}_ms"), d.ms);
            put(out, &format!("{level}/{name}_cpu_ms"), d.cpu_ms);
        }
        wait_idle(pid)?;
        if let Some(kb) = vm_rss_kb(pid) {
            put(out, &format!("{level}/idle_rss_kb"), kb);
        }
        if let Some(b) = cgroup_file(&job.cgroup_parent, &id, "memory.usage_in_bytes") {
            put(out, &format!("{level}/idle_cgroup_kb"), b / 1024.0);
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(|e| format!("kill {pid}: {e}"))?;
        wait4(pid)?;
        let d = timed(job, &["delete", &id])?;
        put(out, &format!("{level}/delete_ms"), d.ms);
        put(out, &format!("{level}/delete_cpu_ms"), d.cpu_ms);
        samples.forget(&id);
    }
    if c.n > 0 {
        let ms = fleet.teardown()?;
        put(out, &format!("{level}/teardown_ms_each"), ms / c.n as f64);
    }
    Ok(())
}

fn churn(job: &Job, out: &mut Map<String, Value>) -> Res<()> {
    let c = &job.curve;
    let bundles = (0..c.churn_par)
        .map(|t| {
            let id = format!("{}-c{t}", job.prefix);
            bundle(job, &id, &job.config).map(|b| b.display().to_string())
        })
        .collect::<Res<Vec<_>>>()?;
    let deadline = Duration::from_secs_f64(c.churn_secs);
    let lat = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    let cpu0 = children_cpu_ms()?;
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for (t, b) in bundles.iter().enumerate() {
            let (lat, errors) = (&lat, &errors);
            s.spawn(move || {
                let mut k = 0;
                while t0.elapsed() < deadline {
                    let id = format!("{}-c{t}-{k}", job.prefix);
                    k += 1;
                    let t1 = Instant::now();
                    let ok = runtime(job, &["run", "--bundle", b, &id])
                        .status()
                        .is_ok_and(|s| s.success());
                    let ms = t1.elapsed().as_secs_f64() * 1e3;
                    if ok {
                        if let Ok(mut l) = lat.lock() {
                            l.push(ms);
                        }
                    } else {
                        let _ = runtime(job, &["delete", "--force", &id]).status();
                        if let Ok(mut e) = errors.lock() {
                            e.push(id);
                        }
                    }
                }
            });
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    let lat = lat.into_inner().map_err(|e| e.to_string())?;
    let errors = errors.into_inner().map_err(|e| e.to_string())?;
    put(out, "churn/per_s", lat.len() as f64 / secs);
    let runs = (lat.len() + errors.len()).max(1) as f64;
    put(out, "churn/cpu_ms_each", (children_cpu_ms()? - cpu0) / runs);
    put(out, "churn/failed", errors.len() as f64);
    out.insert("churn/lat_ms".into(), json!(lat));
    Ok(())
}

/// CPU time of every child this helper has reaped, and of what they reaped in turn.
fn children_cpu_ms() -> Res<f64> {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).map_err(|e| format!("getrusage: {e}"))?;
    let ms = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1e3 + t.tv_usec() as f64 / 1e3;
    Ok(ms(u.user_time()) + ms(u.system_time()))
}

/// A variant that fails (a runtime refusing a profile) is reported, not fatal.
fn runs(job: &Job, out: &mut Map<String, Value>) -> Res<()> {
    let mut errors = Map::new();
    for (name, config) in &job.curve.variants {
        let id = format!("{}-{name}", job.prefix);
        let b = bundle(job, &id, config)?.display().to_string();
        match timed(job, &["run", "--bundle", &b, &id]) {
            Ok(d) => {
                put(out, &format!("run/{name}_ms"), d.ms);
                put(out, &format!("run_cpu/{name}_ms"), d.cpu_ms);
            }
            Err(e) => {
                let _ = runtime(job, &["delete", "--force", &id]).status();
                errors.insert(name.clone(), json!(e));
            }
        }
    }
    if !errors.is_empty() {
        out.insert("errors".into(), Value::Object(errors));
    }
    Ok(())
}

fn probe(job: &Job, out: &mut Map<String, Value>) -> Res<()> {
    let mut errors = Map::new();
    for (name, config) in &job.curve.probes {
        let fleet = Fleet::new(job);
        let id = format!("{}-probe-{name}", job.prefix);
        let got = start_idle(job, &fleet, &id, config, "").and_then(|(_, pid)| {
            wait_idle(pid)?;
            filter_insns(pid)
        });
        match got {
            Ok((filters, insns)) => {
                put(out, &format!("insns/{name}"), insns as f64);
                put(out, &format!("filters/{name}"), filters as f64);
            }
            Err(e) => {
                errors.insert(name.clone(), json!(e));
            }
        }
        fleet.teardown()?;
    }
    if !errors.is_empty() {
        out.insert("errors".into(), Value::Object(errors));
    }
    Ok(())
}

/// `PTRACE_SECCOMP_GET_FILTER` (linux/ptrace.h); libc does not define it.
const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;

/// The seccomp filters attached to `pid`: (how many, total instructions). Attaches with ptrace
/// (the request needs a stopped tracee), counts, and detaches, which resumes the process.
fn filter_insns(pid: i32) -> Res<(usize, usize)> {
    // SAFETY: PTRACE_ATTACH takes no pointers.
    if unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0usize, 0usize) } != 0 {
        return Err(format!(
            "ptrace attach {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut status = 0;
    // SAFETY: `status` is a live, writable local.
    let waited = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    let mut result = Err(format!(
        "waitpid {pid}: {}",
        std::io::Error::last_os_error()
    ));
    if waited == pid {
        let (mut filters, mut insns) = (0, 0);
        result = loop {
            // SAFETY: with a null data pointer the kernel only returns the filter's length.
            let n = unsafe { libc::ptrace(PTRACE_SECCOMP_GET_FILTER, pid, filters, 0usize) };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                break match err.raw_os_error() {
                    Some(libc::ENOENT) if filters > 0 => Ok((filters, insns)),
                    _ => Err(format!("PTRACE_SECCOMP_GET_FILTER {pid} #{filters}: {err}")),
                };
            }
            filters += 1;
            insns += n as usize;
        };
    }
    // SAFETY: PTRACE_DETACH takes no pointers (signal 0: resume without one).
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize) };
    result
}
