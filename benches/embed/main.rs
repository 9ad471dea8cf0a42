//! The embedding API against the CLIs: `cargo bench --bench embed` (as root).
//!
//! `BENCH_N` containers (default 80) running `/bin/true`, driven from `BENCH_THREADS` threads
//! (default 8), the drivers taking turns `BENCH_ROUND` (16) containers at a time: through the
//! library (`Sandbox`: create → start → wait → delete), through
//! `sealrun run` (one CLI process per container: create, start, wait, delete), and through
//! `runc run` / `crun run` when they are installed, driven the same way. Reported: containers
//! per second, p50/p99 latency of one whole lifecycle (create to deleted), and the resident
//! memory of the library's helper processes (sampled from a held-open container). The bundle
//! is sealrun's hardened default (`sealrun spec`, its default seccomp profile) on a busybox
//! root. `SEALRUN_BIN` picks the runtime binary (default: the release build of this checkout).
//! Also reported: the CPU time (user + system, of this process and every process it waited
//! for) per container, steadier than latency on a shared machine. Everything runs in one
//! private mount namespace with a tmpfs over a hybrid layout's cgroup2 mount (crun 1.8 refuses
//! the hybrid layout otherwise), as in `benches/runtimes`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

type Res<T> = Result<T, String>;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench embed: {e}");
        std::process::exit(1);
    }
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct Work {
    dir: PathBuf,
    cgroup_parent: String,
}

impl Drop for Work {
    fn drop(&mut self) {
        for h in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .map(PathBuf::from)
            .chain(
                std::fs::read_dir("/sys/fs/cgroup")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            )
        {
            let _ = std::fs::remove_dir(h.join(self.cgroup_parent.trim_start_matches('/')));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run() -> Res<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err("must run as root".into());
    }
    private_mounts()?;
    let n = env_num("BENCH_N", 80);
    let threads = env_num("BENCH_THREADS", 8);
    let sealrun = match std::env::var_os("SEALRUN_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_sealrun")),
    };
    let pid = std::process::id();
    let work = Work {
        dir: std::env::temp_dir().join(format!("sealrun-bench-embed-{pid}")),
        cgroup_parent: format!("/sealrun-bench-embed-{pid}"),
    };
    let rootfs = work.dir.join("rootfs");
    write_rootfs(&rootfs)?;
    let mut config = sealrun::spec::default_config(false).map_err(|e| e.to_string())?;
    config["ociVersion"] = json!("1.0.2");
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["/bin/true"]);
    config["root"]["path"] = json!(rootfs);

    println!("{n} containers of /bin/true from {threads} threads; lifecycle = create to deleted");
    println!(
        "{:<22} {:>12} {:>10} {:>10} {:>14}",
        "driver", "containers/s", "p50 ms", "p99 ms", "CPU ms/cont."
    );
    let cfg = |id: &str| {
        let mut c = config.clone();
        c["linux"]["cgroupsPath"] = json!(format!("{}/{id}", work.cgroup_parent));
        c
    };
    let sandbox = sealrun::Sandbox::builder()
        .state_root(work.dir.join("lib-root"))
        .runtime_binary(&sealrun)
        .build()
        .map_err(|e| e.to_string())?;
    let lib = |i: usize| {
        let id = format!("lib-{i}");
        let c = sandbox
            .container(&id)
            .spec_json(serde_json::to_vec(&cfg(&id)).map_err(|e| e.to_string())?)
            .create()
            .map_err(|e| e.to_string())?;
        c.start().map_err(|e| e.to_string())?;
        let status = c.wait().map_err(|e| e.to_string())?;
        c.delete().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{id}: {status}"))
        }
    };
    let mut peers = vec![("sealrun run", sealrun.clone())];
    for name in ["runc", "crun"] {
        if let Some(p) = which(name) {
            peers.push((name, p));
        }
    }
    let cli = |name: &str, bin: &Path, i: usize| -> Res<()> {
        let slug = name.split(' ').next().unwrap_or(name);
        let root = work.dir.join(format!("{slug}-root"));
        let id = format!("{slug}-{i}");
        let bundle = work.dir.join(format!("bundle-{id}"));
        std::fs::create_dir_all(&bundle).map_err(|e| e.to_string())?;
        std::fs::write(bundle.join("config.json"), cfg(&id).to_string())
            .map_err(|e| e.to_string())?;
        let out = Command::new(bin)
            .arg("--root")
            .arg(&root)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let _ = std::fs::remove_dir_all(&bundle);
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{id}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    // The drivers take turns, `BENCH_ROUND` containers each, so a machine whose load changes
    // during the run treats them alike.
    let round = env_num("BENCH_ROUND", 16).min(n);
    let mut results: Vec<Res<Sample>> = vec![Ok(Sample::default()); peers.len() + 1];
    let mut done = 0;
    while done < n {
        let k = round.min(n - done);
        for (d, result) in results.iter_mut().enumerate() {
            let Ok(acc) = result else { continue };
            let got = match d {
                0 => measure(k, threads, |i| lib(done + i)),
                _ => {
                    let (name, bin) = &peers[d - 1];
                    measure(k, threads, |i| cli(name, bin, done + i))
                }
            };
            match got {
                Ok(s) => acc.add(s),
                Err(e) => *result = Err(e),
            }
        }
        done += k;
    }
    let names = std::iter::once("library (Sandbox)".to_string())
        .chain(peers.iter().map(|(name, _)| format!("{name} (CLI)")));
    for (name, r) in names.zip(&mut results) {
        if let Ok(s) = r {
            s.times.sort();
        }
        report(&name, r);
    }
    helper_memory(&sandbox, &cfg("held"))?;
    Ok(())
}

/// A private mount namespace for this process and every runtime it starts, with a tmpfs over
/// the hybrid layout's cgroup2 mount when there is one. Called while single-threaded.
fn private_mounts() -> Res<()> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("make / private: {e}"))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    if info.contains(" /sys/fs/cgroup/unified ") {
        mount(
            Some("none"),
            "/sys/fs/cgroup/unified",
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| format!("tmpfs over /sys/fs/cgroup/unified: {e}"))?;
    }
    Ok(())
}

/// CPU time (user + system) of this process and of the children it has waited for.
fn cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    [UsageWho::RUSAGE_SELF, UsageWho::RUSAGE_CHILDREN]
        .into_iter()
        .filter_map(|who| getrusage(who).ok())
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1000)
            };
            t(u.user_time()) + t(u.system_time())
        })
        .sum()
}

/// What one driver measured: wall time, CPU time, each lifecycle's time.
#[derive(Debug, Clone, Default)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    times: Vec<Duration>,
}

impl Sample {
    fn add(&mut self, other: Sample) {
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.times.extend(other.times);
    }
}

/// Run `one(i)` for i in 0..n from `threads` threads.
fn measure(n: usize, threads: usize, one: impl Fn(usize) -> Res<()> + Sync) -> Res<Sample> {
    let cpu = cpu_time();
    let next = AtomicUsize::new(0);
    let times = Mutex::new(Vec::with_capacity(n));
    let failure = Mutex::new(None);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let t = Instant::now();
                match one(i) {
                    Ok(()) => times
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(t.elapsed()),
                    Err(e) => {
                        *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                        next.store(n, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let total = start.elapsed();
    let cpu = cpu_time().saturating_sub(cpu);
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let times = times.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(Sample {
        wall: total,
        cpu,
        times,
    })
}

fn report(name: &str, r: &Res<Sample>) {
    match r {
        Ok(Sample {
            wall: total,
            cpu,
            times,
        }) => {
            let pct = |p: f64| {
                let i = ((times.len() as f64 - 1.0) * p).round() as usize;
                times.get(i).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
            };
            println!(
                "{name:<22} {:>12.1} {:>10.1} {:>10.1} {:>14.2}",
                times.len() as f64 / total.as_secs_f64(),
                pct(0.5),
                pct(0.99),
                cpu.as_secs_f64() * 1e3 / times.len().max(1) as f64
            );
        }
        Err(e) => println!("{name:<22} failed: {e}"),
    }
}

/// The resident memory of one helper, serving a created (held) container.
fn helper_memory(sandbox: &sealrun::Sandbox, cfg: &Value) -> Res<()> {
    let c = sandbox
        .container("held")
        .spec_json(serde_json::to_vec(cfg).map_err(|e| e.to_string())?)
        .create()
        .map_err(|e| e.to_string())?;
    let children: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map_err(|e| e.to_string())?
        .flatten()
        .flat_map(|t| {
            std::fs::read_to_string(t.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    for pid in children {
        let status = std::fs::read_to_string(Path::new("/proc").join(&pid).join("status"))
            .unwrap_or_default();
        if let Some(rss) = status.lines().find(|l| l.starts_with("VmRSS:")) {
            println!(
                "helper {pid}: {}",
                rss.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
            );
        }
    }
    c.delete().map_err(|e| e.to_string())
}

fn write_rootfs(root: &Path) -> Res<()> {
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        let p = root.join(d);
        std::fs::create_dir_all(&p).map_err(|e| err(&p, e))?;
    }
    let busybox = Path::new("/bin/busybox");
    let bin = root.join("bin/busybox");
    std::fs::copy(busybox, &bin).map_err(|e| err(&bin, e))?;
    for applet in ["true", "sh", "sleep"] {
        let link = root.join("bin").join(applet);
        std::os::unix::fs::symlink("busybox", &link).map_err(|e| err(&link, e))?;
    }
    Ok(())
}
