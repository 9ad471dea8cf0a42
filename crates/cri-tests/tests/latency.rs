//! Latency figures through the CRI, per handler (`runc`: the runc v2 shim with runc itself) (not a pass/fail test: run on demand):
//! ExecSync of `true` (p50, p99) and pod start (RunPodSandbox + CreateContainer +
//! StartContainer). Release binaries give the figures that matter:
//!
//! ```sh
//! cargo build --release --workspace --bins
//! SEALRUN_BIN_DIR=$PWD/target/$(rustc --print host-tuple)/release cargo test -p cri-tests --test latency -- --ignored --nocapture
//! ```

#[path = "cri/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "cri/daemon.rs"]
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

use std::time::{Duration, Instant};

use client::Cri;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn figures(handler: &str, execs: usize, pods: usize) -> (f64, f64, f64, f64) {
    let mut cri = Cri::start(handler);
    let pod = cri.run_pod("lat", false);
    let cfg = cri.container_config("c", &["sleep", "3600"]);
    let id = cri.run_container(&pod, cfg);
    let mut ex = Vec::new();
    for _ in 0..execs {
        let t = Instant::now();
        let r = cri.exec_sync(&id, &["true"]);
        ex.push(t.elapsed());
        assert_eq!(r.exit_code, 0, "{r:?}");
    }
    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    let mut starts = Vec::new();
    for i in 0..pods {
        let t = Instant::now();
        let pod = cri.run_pod(&format!("start{i}"), false);
        let cfg = cri.container_config("c", &["sleep", "3600"]);
        cri.run_container(&pod, cfg);
        starts.push(t.elapsed());
        cri.stop_pod(&pod);
        cri.remove_pod(&pod);
    }
    ex.sort();
    starts.sort();
    (
        percentile(&ex, 0.5),
        percentile(&ex, 0.99),
        percentile(&starts, 0.5),
        percentile(&starts, 0.99),
    )
}

#[test]
#[ignore = "a benchmark, not a check: run with --ignored --nocapture"]
fn exec_sync_and_pod_start_latency() {
    let execs: usize = std::env::var("LATENCY_EXECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let pods: usize = std::env::var("LATENCY_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    println!("| handler | ExecSync p50 (ms) | ExecSync p99 (ms) | pod start p50 (ms) | pod start p99 (ms) |");
    println!("|---|---:|---:|---:|---:|");
    for handler in ["runc", "sealrun", "sealrun-native"] {
        let (e50, e99, s50, s99) = figures(handler, execs, pods);
        println!("| {handler} | {e50:.1} | {e99:.1} | {s50:.1} | {s99:.1} |");
    }
}
