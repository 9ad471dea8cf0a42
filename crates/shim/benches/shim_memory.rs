//! Shim memory per running container, side by side in one run: PSS and RSS of every shim
//! process serving a private containerd (the native shim's worker included) with 1, 10 and 50
//! `sleep` containers started by `ctr run --detach`, for
//!
//! - containerd's Go runc v2 shim with runc,
//! - the same shim with sealrun as its runc binary,
//! - `containerd-shim-sealrun-v2`.
//!
//! `ctr` starts one shim per container (no pod grouping), as the figures assume.
//! Counts: `SHIM_BENCH_COUNTS=1,10,50` (the default); `SHIM_BENCH_HANDLERS=native` (or `runc`,
//! `sealrun`, comma-separated) measures only those. Needs root, containerd, runc and release
//! binaries (`cargo build --release --workspace --bins`).

#[path = "../../cri-tests/tests/cri/daemon.rs"]
#[allow(dead_code)]
mod daemon;
#[path = "../../../tests/containerd/host.rs"]
#[allow(dead_code)]
mod host;
#[path = "../../../tests/containerd/image.rs"]
#[allow(dead_code)]
mod image;
#[path = "../../../tests/common/run.rs"]
mod run;

use std::fs;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use daemon::{workspace_bin, Daemon, BUSYBOX, NAMESPACE};
use run::run;

#[derive(Clone, Copy)]
enum Handler {
    GoShimRunc,
    GoShimSealrun,
    Native,
}

impl Handler {
    fn name(self) -> &'static str {
        match self {
            Handler::GoShimRunc => "containerd-shim-runc-v2 + runc",
            Handler::GoShimSealrun => "containerd-shim-runc-v2 + sealrun",
            Handler::Native => "containerd-shim-sealrun-v2",
        }
    }
}

/// Sum of (PSS, RSS) in KiB over `pids`, from smaps_rollup.
fn memory(pids: &[i32]) -> (u64, u64) {
    let mut pss = 0;
    let mut rss = 0;
    for pid in pids {
        let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (Some(key), Some(v)) = (f.next(), f.next()) else {
                continue;
            };
            let v: u64 = v.parse().unwrap_or(0);
            match key {
                "Pss:" => pss += v,
                "Rss:" => rss += v,
                _ => {}
            }
        }
    }
    (pss, rss)
}

/// The `n` mappings of `pid` with the most resident memory: (RSS kB, mapping line).
fn largest_mappings(pid: i32, n: usize) -> Vec<(u64, String)> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut maps: Vec<(u64, String)> = Vec::new();
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            maps.push((
                0,
                line.split_whitespace()
                    .skip(5)
                    .collect::<Vec<_>>()
                    .join(" "),
            ));
        } else if let (Some(v), Some(m)) = (line.strip_prefix("Rss:"), maps.last_mut()) {
            m.0 = v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0);
            if m.1.is_empty() {
                m.1 = "[anon]".into();
            }
        }
    }
    maps.sort_by_key(|m| std::cmp::Reverse(m.0));
    maps.truncate(n);
    maps
}

fn ctr(d: &Daemon, args: &[String]) -> run::Run {
    let mut cmd = Command::new("ctr");
    cmd.arg("-a")
        .arg(&d.address)
        .args(["-n", NAMESPACE])
        .args(args);
    run(cmd)
}

/// Starts `n` containers with `h` on a fresh containerd; returns (PSS, RSS) KiB of its shims.
fn measure(h: Handler, n: usize) -> (u64, u64) {
    let mut d = Daemon::start();
    for _ in 0..3000 {
        if d.ctr(&["version"]).ok() {
            break;
        }
        d.check_alive();
        sleep(Duration::from_millis(20));
    }
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("m{i}");
        let mut args: Vec<String> = vec!["run".into(), "--detach".into()];
        match h {
            Handler::Native => args.extend(["--runtime".into(), "io.containerd.sealrun.v2".into()]),
            Handler::GoShimRunc | Handler::GoShimSealrun => {
                let bin = match h {
                    Handler::GoShimRunc => "runc".into(),
                    _ => workspace_bin("sealrun").to_string_lossy().into_owned(),
                };
                args.extend([
                    "--runtime".into(),
                    "io.containerd.runc.v2".into(),
                    "--runc-binary".into(),
                    bin,
                    "--runc-root".into(),
                    d.dir.join("runc-root").to_string_lossy().into_owned(),
                ]);
            }
        }
        args.extend([
            "--cgroup".into(),
            format!("{}/{id}", d.cgroup_parent),
            BUSYBOX.into(),
            id.clone(),
            "sleep".into(),
            "3600".into(),
        ]);
        let r = ctr(&d, &args);
        ids.push(id);
        assert!(r.ok(), "{r}\n{}", d.log_tail());
    }
    // Let the shims settle (lazy page faults of their first requests are done by now).
    sleep(Duration::from_millis(500));
    let shims = d.shims();
    let m = memory(&shims);
    if n == 1 {
        // Where one shim's memory goes (anonymous, file-backed, shared memory: the sealed
        // copy of the native shim is a memfd, which counts as shmem).
        for pid in &shims {
            let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
            let keep: Vec<String> = text
                .lines()
                .filter(|l| {
                    ["Rss:", "Pss:", "Pss_Anon:", "Pss_File:", "Pss_Shmem:"]
                        .iter()
                        .any(|k| l.starts_with(k))
                })
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let threads = status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .unwrap_or_default()
                .trim();
            eprintln!(
                "{} pid {pid}: {}, threads {threads}",
                h.name(),
                keep.join(", ")
            );
            for (rss, line) in largest_mappings(*pid, 6) {
                eprintln!("    {rss:>6} kB  {line}");
            }
        }
    }
    for id in &ids {
        ctr(
            &d,
            &[
                "task".into(),
                "kill".into(),
                "--signal".into(),
                "SIGKILL".into(),
                id.clone(),
            ],
        );
    }
    for id in &ids {
        for _ in 0..500 {
            if ctr(&d, &["task".into(), "delete".into(), id.clone()]).ok() {
                break;
            }
            sleep(Duration::from_millis(20));
        }
        ctr(&d, &["containers".into(), "delete".into(), id.clone()]);
    }
    d.cleanup(&ids);
    m
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let counts: Vec<usize> = std::env::var("SHIM_BENCH_COUNTS")
        .unwrap_or_else(|_| "1,10,50".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let only = std::env::var("SHIM_BENCH_HANDLERS").unwrap_or_default();
    let handlers: Vec<Handler> = [
        (Handler::GoShimRunc, "runc"),
        (Handler::GoShimSealrun, "sealrun"),
        (Handler::Native, "native"),
    ]
    .into_iter()
    .filter(|(_, key)| only.is_empty() || only.split(',').any(|k| k.trim() == *key))
    .map(|(h, _)| h)
    .collect();
    println!("| shim | containers | PSS total MiB | PSS per container MiB | RSS total MiB | RSS per container MiB |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut per: Vec<(usize, Handler, f64, f64)> = Vec::new();
    for &n in &counts {
        for &h in &handlers {
            let (pss, rss) = measure(h, n);
            let (pp, rp) = (pss as f64 / n as f64, rss as f64 / n as f64);
            println!(
                "| {} | {n} | {} | {:.2} | {} | {:.2} |",
                h.name(),
                mib(pss),
                pp / 1024.0,
                mib(rss),
                rp / 1024.0
            );
            per.push((n, h, pp, rp));
        }
    }
    println!();
    println!("| containers | native / Go shim + runc, PSS | native / Go shim + runc, RSS |");
    println!("|---:|---:|---:|");
    for &n in &counts {
        let get = |want: Handler| {
            per.iter()
                .find(|(c, h, _, _)| *c == n && h.name() == want.name())
                .map(|(_, _, p, r)| (*p, *r))
                .unwrap_or((0.0, 0.0))
        };
        let (gp, gr) = get(Handler::GoShimRunc);
        let (np, nr) = get(Handler::Native);
        println!("| {n} | {:.2}x | {:.2}x |", np / gp, nr / gr);
    }
}
