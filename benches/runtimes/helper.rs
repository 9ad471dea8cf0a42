//! The helper mode: runs inside the wrapper's private mount namespace, drives one runtime
//! through the measured tasks, and prints one JSON object (`samples` or `error`) on stdout.
//!
//! It is a child subreaper, so a container init orphaned by `create` becomes its child: it can
//! wait for the container to exit and collect the init's rusage. Each runtime command is
//! timed from just before spawn to the return of `wait4` (CLOCK_MONOTONIC), and its
//! `ru_maxrss` is the peak RSS of the command and the children it waited for.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::Res;

/// argv[1] selecting the helper mode.
pub const FLAG: &str = "--bench-helper";

#[derive(Debug, Deserialize)]
pub struct Job {
    pub argv: Vec<String>,
    work: PathBuf,
    pub run_dir: PathBuf,
    pub rootfs: PathBuf,
    pub config: PathBuf,
    config_sleep: PathBuf,
    pub cgroup_parent: String,
    pub prefix: String,
    tasks: Vec<String>,
    #[serde(default)]
    execs: usize,
    #[serde(default)]
    tp_n: usize,
    #[serde(default)]
    tp_par: usize,
    /// The cost-curve tasks' settings (`curve_helper.rs`).
    #[serde(default)]
    pub curve: crate::curve_helper::CurveJob,
    #[serde(default)]
    env: Vec<(String, String)>,
}

/// Entry point; the exit status is 0 whenever a JSON object was printed.
pub fn main(job: Option<&Path>) -> i32 {
    let out = match job.ok_or_else(|| "no job file".to_string()).and_then(run) {
        Ok(samples) => json!({ "samples": samples }),
        Err(e) => json!({ "error": e }),
    };
    reap_all();
    println!("{out}");
    0
}

fn run(path: &Path) -> Res<Map<String, Value>> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let job: Job = serde_json::from_slice(&raw).map_err(|e| format!("job: {e}"))?;
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| format!("subreaper: {e}"))?;
    // State roots and pid files on a tmpfs private to this namespace, as /run is on most hosts
    // (runc, crun and sealrun all keep their state under /run by default).
    std::fs::create_dir_all(&job.run_dir).map_err(|e| format!("{}: {e}", job.run_dir.display()))?;
    nix::mount::mount(
        Some("tmpfs"),
        &job.run_dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some("mode=0700"),
    )
    .map_err(|e| format!("mount tmpfs on {}: {e}", job.run_dir.display()))?;
    let mut out = Map::new();
    let mut cleanup = Cleanup {
        job: &job,
        ids: Vec::new(),
    };
    for task in &job.tasks {
        match task.as_str() {
            "run" => run_task(&job, &mut out)?,
            "lifecycle" => lifecycle_task(&job, &mut cleanup, &mut out)?,
            "exec" => exec_task(&job, &mut cleanup, &mut out)?,
            "throughput" => throughput_task(&job, &mut out)?,
            other => crate::curve_helper::task(&job, other, &mut out)?,
        }
    }
    Ok(out)
}

/// Force-deletes containers a failed task left behind.
struct Cleanup<'a> {
    job: &'a Job,
    ids: Vec<String>,
}

impl Cleanup<'_> {
    fn done(&mut self, id: &str) {
        self.ids.retain(|i| i != id);
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = Command::new(&self.job.argv[0])
                .args(&self.job.argv[1..])
                .args(["delete", "--force", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A bundle of its own for container `id`: the shared rootfs (absolute `root.path`) and an
/// absolute cgroupsPath under the bench's parent.
pub fn bundle(job: &Job, id: &str, config: &Path) -> Res<PathBuf> {
    let raw = std::fs::read(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let mut cfg: Value = serde_json::from_slice(&raw).map_err(|e| format!("config: {e}"))?;
    cfg["root"]["path"] = json!(job.rootfs);
    cfg["linux"]["cgroupsPath"] = json!(format!("{}/{id}", job.cgroup_parent));
    let dir = job.work.join("bundles").join(id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("config.json"), cfg.to_string())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// What a finished command cost: wall time, CPU time (user + system, of the command and the
/// children it waited for) and peak RSS.
pub struct Done {
    pub ms: f64,
    pub cpu_ms: f64,
    pub rss_kb: f64,
}

/// Run `argv cmd...` with stdio closed (stderr to a file, shown if it fails), timed.
pub fn timed(job: &Job, cmd: &[&str]) -> Res<Done> {
    timed_tag(job, cmd, "")
}

/// [`timed`] with a stderr file of its own per `tag` (for commands run in parallel).
pub fn timed_tag(job: &Job, cmd: &[&str], tag: &str) -> Res<Done> {
    let err_path = job.run_dir.join(format!("stderr-{}{tag}", job.prefix));
    let err = File::create(&err_path).map_err(|e| format!("{}: {e}", err_path.display()))?;
    let mut c = Command::new(&job.argv[0]);
    c.args(&job.argv[1..])
        .args(cmd)
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err);
    let t0 = Instant::now();
    let child = c.spawn().map_err(|e| format!("{}: {e}", job.argv[0]))?;
    let (status, usage) = wait4(child.id() as i32)?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    if status != 0 {
        let text = std::fs::read_to_string(&err_path).unwrap_or_default();
        return Err(format!(
            "`{} {}` failed ({status}): {}",
            job.argv.join(" "),
            cmd.join(" "),
            text.trim()
        ));
    }
    Ok(Done {
        ms,
        cpu_ms: usage.cpu_ms,
        rss_kb: usage.rss_kb,
    })
}

/// The rusage figures the bench reports.
pub struct Usage {
    pub cpu_ms: f64,
    pub rss_kb: f64,
}

/// `wait4` for one child: its exit status (128+N for signal N) and its usage.
pub fn wait4(pid: i32) -> Res<(i32, Usage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `ru` are live, writable locals for the duration of the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4 {pid}: {err}"));
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    let usage = Usage {
        cpu_ms: ms(ru.ru_utime) + ms(ru.ru_stime),
        rss_kb: ru.ru_maxrss as f64,
    };
    Ok((code, usage))
}

/// Reap whatever is left (orphans reparented to us).
fn reap_all() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

pub fn put(out: &mut Map<String, Value>, key: &str, v: f64) {
    match out.get_mut(key) {
        Some(Value::Array(list)) => list.push(json!(v)),
        _ => {
            out.insert(key.to_string(), json!([v]));
        }
    }
}

/// `run` of /bin/true: create + start + wait + delete in one runtime command.
fn run_task(job: &Job, out: &mut Map<String, Value>) -> Res<()> {
    let id = format!("{}-run", job.prefix);
    let b = bundle(job, &id, &job.config)?;
    let d = timed(job, &["run", "--bundle", &b.display().to_string(), &id])?;
    put(out, "run_ms", d.ms);
    put(out, "run_cpu_ms", d.cpu_ms);
    put(out, "run_rss_kb", d.rss_kb);
    Ok(())
}

pub fn read_pid(path: &Path) -> Res<i32> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("{}: not a pid: {text:?}", path.display()))
}

/// Create a container and return its init's pid.
fn create(
    job: &Job,
    cleanup: &mut Cleanup,
    id: &str,
    config: &Path,
    out: &mut Map<String, Value>,
) -> Res<i32> {
    let b = bundle(job, id, config)?;
    let pid_file = job.run_dir.join(format!("{id}.pid"));
    cleanup.ids.push(id.to_string());
    let bundle_arg = b.display().to_string();
    let pid_arg = pid_file.display().to_string();
    let d = timed(
        job,
        &[
            "create",
            "--bundle",
            &bundle_arg,
            "--pid-file",
            &pid_arg,
            id,
        ],
    )?;
    put(out, "create_ms", d.ms);
    put(out, "create_rss_kb", d.rss_kb);
    read_pid(&pid_file)
}

/// `create`, `start`, wait for the exit, read the cgroup's peak memory, `delete`.
fn lifecycle_task(job: &Job, cleanup: &mut Cleanup, out: &mut Map<String, Value>) -> Res<()> {
    let id = format!("{}-cs", job.prefix);
    let pid = create(job, cleanup, &id, &job.config, out)?;
    let d = timed(job, &["start", &id])?;
    put(out, "start_ms", d.ms);
    put(out, "start_rss_kb", d.rss_kb);
    let (code, init) = wait4(pid)?;
    if code != 0 {
        return Err(format!("container {id} exited with {code}"));
    }
    put(out, "init_rss_kb", init.rss_kb);
    if let Some(bytes) = cgroup_peak(&job.cgroup_parent, &id) {
        put(out, "cgroup_peak_kb", bytes / 1024.0);
    }
    let d = timed(job, &["delete", &id])?;
    put(out, "delete_ms", d.ms);
    put(out, "delete_rss_kb", d.rss_kb);
    cleanup.done(&id);
    Ok(())
}

/// A number from a file of the container's cgroup v1 memory controller.
pub fn cgroup_file(parent: &str, id: &str, file: &str) -> Option<f64> {
    let rel = format!("{}/{id}", parent.trim_start_matches('/'));
    let p = Path::new("/sys/fs/cgroup/memory").join(rel).join(file);
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Peak memory charged to the container's cgroup: v1 `memory.max_usage_in_bytes`, else v2
/// `memory.peak`.
fn cgroup_peak(parent: &str, id: &str) -> Option<f64> {
    let rel = format!("{}/{id}", parent.trim_start_matches('/'));
    let candidates = [
        Path::new("/sys/fs/cgroup/memory")
            .join(&rel)
            .join("memory.max_usage_in_bytes"),
        Path::new("/sys/fs/cgroup").join(&rel).join("memory.peak"),
    ];
    candidates.iter().find_map(|p| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok())
    })
}

/// `exec` of /bin/true into a running container (busybox sleep), `execs` times.
fn exec_task(job: &Job, cleanup: &mut Cleanup, out: &mut Map<String, Value>) -> Res<()> {
    let id = format!("{}-ex", job.prefix);
    let mut scratch = Map::new();
    let pid = create(job, cleanup, &id, &job.config_sleep, &mut scratch)?;
    timed(job, &["start", &id])?;
    for _ in 0..job.execs {
        let d = timed(job, &["exec", &id, "/bin/true"])?;
        put(out, "exec_ms", d.ms);
        put(out, "exec_cpu_ms", d.cpu_ms);
        put(out, "exec_rss_kb", d.rss_kb);
    }
    timed(job, &["kill", &id, "KILL"])?;
    wait4(pid)?;
    timed(job, &["delete", &id])?;
    cleanup.done(&id);
    Ok(())
}

/// `tp_n` containers (`run` of /bin/true), `tp_par` at a time: the wall time.
fn throughput_task(job: &Job, out: &mut Map<String, Value>) -> Res<()> {
    let ids: Vec<String> = (0..job.tp_n)
        .map(|n| format!("{}-tp{n}", job.prefix))
        .collect();
    let bundles = ids
        .iter()
        .map(|id| bundle(job, id, &job.config).map(|b| b.display().to_string()))
        .collect::<Res<Vec<_>>>()?;
    let next = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..job.tp_par.min(job.tp_n) {
            s.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= ids.len() {
                    break;
                }
                let status = Command::new(&job.argv[0])
                    .args(&job.argv[1..])
                    .args(["run", "--bundle", &bundles[n], &ids[n]])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                match status {
                    Ok(s) if s.success() => {}
                    other => {
                        let _ = Command::new(&job.argv[0])
                            .args(&job.argv[1..])
                            .args(["delete", "--force", &ids[n]])
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status();
                        if let Ok(mut e) = errors.lock() {
                            e.push(format!("{}: {other:?}", ids[n]));
                        }
                    }
                }
            });
        }
    });
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let errors = errors.into_inner().unwrap_or_default();
    if !errors.is_empty() {
        return Err(format!(
            "throughput: {} of {} runs failed: {}",
            errors.len(),
            ids.len(),
            errors.join("; ")
        ));
    }
    put(out, "tp_wall_ms", ms);
    put(out, "tp_per_s", ids.len() as f64 / (ms / 1e3));
    Ok(())
}
