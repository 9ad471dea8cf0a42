//! The results folder: `results.md` (tables), `chart.svg`, `raw.json` (every sample), under
//! `benches/results/<date>/`, and `benches/results/latest` pointing at it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::stats::{median, percentile};
use crate::{Res, Samples, Subject};

/// How a row is computed from the samples.
#[derive(Clone, Copy)]
enum Agg {
    Median,
    P95,
}

/// One table row: label, metric, aggregate, unit scale (divide by), decimals.
struct Row {
    label: &'static str,
    metric: &'static str,
    agg: Agg,
    scale: f64,
    decimals: usize,
}

const fn row(
    label: &'static str,
    metric: &'static str,
    agg: Agg,
    scale: f64,
    decimals: usize,
) -> Row {
    Row {
        label,
        metric,
        agg,
        scale,
        decimals,
    }
}

const TIME_ROWS: &[Row] = &[
    row(
        "`run` /bin/true, median (ms)",
        "run_ms",
        Agg::Median,
        1.0,
        1,
    ),
    row("`run` /bin/true, p95 (ms)", "run_ms", Agg::P95, 1.0, 1),
    row("`create`, median (ms)", "create_ms", Agg::Median, 1.0, 1),
    row("`start`, median (ms)", "start_ms", Agg::Median, 1.0, 1),
    row("`delete`, median (ms)", "delete_ms", Agg::Median, 1.0, 1),
    row(
        "`exec` /bin/true, median (ms)",
        "exec_ms",
        Agg::Median,
        1.0,
        1,
    ),
    row("`exec` /bin/true, p95 (ms)", "exec_ms", Agg::P95, 1.0, 1),
    row(
        "throughput, parallel `run` (containers/s)",
        "tp_per_s",
        Agg::Median,
        1.0,
        1,
    ),
];

/// CPU time (user + system) of the command and the processes it waited for: insensitive to
/// how busy the machine is, unlike wall time.
const CPU_ROWS: &[Row] = &[
    row(
        "`run` /bin/true, CPU time, median (ms)",
        "run_cpu_ms",
        Agg::Median,
        1.0,
        2,
    ),
    row(
        "`exec` /bin/true, CPU time, median (ms)",
        "exec_cpu_ms",
        Agg::Median,
        1.0,
        2,
    ),
];

const MEMORY_ROWS: &[Row] = &[
    row(
        "peak RSS of `create` (MiB)",
        "create_rss_kb",
        Agg::Median,
        1024.0,
        1,
    ),
    row(
        "peak RSS of `run` (MiB)",
        "run_rss_kb",
        Agg::Median,
        1024.0,
        1,
    ),
    row(
        "peak RSS of `exec` (MiB)",
        "exec_rss_kb",
        Agg::Median,
        1024.0,
        1,
    ),
    row(
        "peak RSS of the container init (MiB)",
        "init_rss_kb",
        Agg::Median,
        1024.0,
        1,
    ),
    row(
        "container cgroup peak memory (MiB)",
        "cgroup_peak_kb",
        Agg::Median,
        1024.0,
        2,
    ),
];

fn value(samples: &Samples, subject: &str, r: &Row) -> Option<f64> {
    let v = samples.get(subject)?.get(r.metric)?;
    let x = match r.agg {
        Agg::Median => median(v),
        Agg::P95 => percentile(v, 95.0),
    }?;
    Some(x / r.scale)
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) => format!("{x:.decimals$}"),
        None => "n/a".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    }
}

/// (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM UTC`), from `date -u`.
pub fn now() -> (String, String) {
    let now = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .filter(|s| s.len() >= 16)
        .unwrap_or_else(|| "1970-01-01T00:00".into());
    let date = now[..10].to_string();
    let stamp = format!("{date} {} UTC", &now[11..16]);
    (date, stamp)
}

fn table(out: &mut String, rows: &[Row], peers: &[&Subject], samples: &Samples) {
    let base = "sealrun";
    let others: Vec<&&Subject> = peers.iter().filter(|s| s.name != base).collect();
    let _ = write!(out, "| figure |");
    for p in peers {
        let _ = write!(out, " {} |", p.name);
    }
    for o in &others {
        let _ = write!(out, " sealrun ÷ {} |", o.name);
    }
    let _ = write!(out, "\n|---|");
    for _ in 0..peers.len() + others.len() {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    for r in rows {
        let _ = write!(out, "| {} |", r.label);
        for p in peers {
            let _ = write!(out, " {} |", fmt(value(samples, &p.name, r), r.decimals));
        }
        for o in &others {
            let _ = write!(
                out,
                " {} |",
                ratio(value(samples, base, r), value(samples, &o.name, r))
            );
        }
        out.push('\n');
    }
}

fn size_table(out: &mut String, peers: &[&Subject], machine: &Value) {
    let _ = writeln!(
        out,
        "| binary | size (MiB) | with shared libraries (MiB) | linkage |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|");
    for p in peers {
        let v = &machine["runtimes"][&p.name];
        let mib = |k: &str| v[k].as_f64().map(|b| b / 1048576.0);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            p.name,
            fmt(mib("bytes"), 2),
            fmt(mib("with_libs_bytes"), 2),
            if v["static"].as_bool() == Some(true) {
                "static"
            } else {
                "dynamic"
            }
        );
    }
}

/// Cost of the layer `who` switches off: the median over iterations of (full − without) /
/// full, paired by iteration (both ran in the same round), as a percentage of the full `run`.
fn layer_cost(samples: &Samples, who: &str, metric: &str) -> Option<f64> {
    let series = |who: &str| samples.get(who).and_then(|m| m.get(metric));
    let (full, off) = (series("sealrun")?, series(who)?);
    if full.len() != off.len() {
        return None;
    }
    let d: Vec<f64> = full
        .iter()
        .zip(off)
        .map(|(a, b)| (a - b) / a * 100.0)
        .collect();
    median(&d)
}

/// Cost of each layer ([`layer_cost`]), in wall time and in CPU time (the steadier of the two
/// on a busy machine).
fn layer_table(out: &mut String, subjects: &[Subject], samples: &Samples) {
    let series = |who: &str, metric: &str| samples.get(who).and_then(|m| m.get(metric));
    let cost = |who: &str, metric: &str| layer_cost(samples, who, metric);
    let med = |who: &str, metric: &str| series(who, metric).and_then(|v| median(v));
    let _ = writeln!(
        out,
        "| sealrun `run` with … | wall, median (ms) | CPU, median (ms) | \
         cost of the layer, wall (% of `run`) | cost of the layer, CPU (% of `run`) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| every layer on | {} | {} | — | — |",
        fmt(med("sealrun", "run_ms"), 1),
        fmt(med("sealrun", "run_cpu_ms"), 2)
    );
    for s in subjects.iter().filter(|s| !s.peer) {
        if series(&s.name, "run_ms").is_none() {
            continue;
        }
        let what = match s.name.strip_prefix("sealrun ") {
            Some("-seccomp(config)") => "no `linux.seccomp` in the config".to_string(),
            Some("memfd") => "the sealed memfd instead of the read-only overlay".to_string(),
            Some(flag) => format!("`--unsafe-disable {}`", flag.trim_start_matches('-')),
            None => s.name.clone(),
        };
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {} | {} |",
            fmt(med(&s.name, "run_ms"), 1),
            fmt(med(&s.name, "run_cpu_ms"), 2),
            fmt(cost(&s.name, "run_ms"), 1),
            fmt(cost(&s.name, "run_cpu_ms"), 1)
        );
    }
}

/// sealrun's median of `metric` divided by `peer`'s (`None` when either is missing or the
/// peer's is zero).
fn ratio_to(samples: &Samples, peer: &str, metric: &str) -> Option<f64> {
    let m = |who: &str| samples.get(who)?.get(metric).and_then(|v| median(v));
    Some(m("sealrun")? / m(peer).filter(|b| *b > 0.0)?)
}

/// One goal line: `value` against its upper `limit`, met or NOT met (n/a without a value).
fn goal_line(label: &str, value: Option<f64>, limit: f64, unit: &str) -> String {
    match value {
        Some(v) => format!(
            "- {label} (goal ≤ {limit:.2}{unit}): {v:.2}{unit} — {}\n",
            if v <= limit { "met" } else { "NOT met" }
        ),
        None => format!("- {label} (goal ≤ {limit:.2}{unit}): n/a\n"),
    }
}

/// The goals of issue 5, checked against the medians.
fn goals(out: &mut String, samples: &Samples) {
    for (label, peer, metric, limit) in [
        ("`run`: sealrun ÷ crun", "crun", "run_ms", 1.0),
        ("`exec`: sealrun ÷ crun", "crun", "exec_ms", 1.0),
        ("`run`: sealrun ÷ runc", "runc", "run_ms", 0.5),
        ("`exec`: sealrun ÷ runc", "runc", "exec_ms", 0.5),
        ("`run` CPU time: sealrun ÷ crun", "crun", "run_cpu_ms", 1.0),
        (
            "`exec` CPU time: sealrun ÷ crun",
            "crun",
            "exec_cpu_ms",
            1.0,
        ),
        (
            "peak RSS of `run`: sealrun ÷ crun",
            "crun",
            "run_rss_kb",
            1.0,
        ),
        (
            "container cgroup peak: sealrun ÷ crun",
            "crun",
            "cgroup_peak_kb",
            1.0,
        ),
    ] {
        out.push_str(&goal_line(
            label,
            ratio_to(samples, peer, metric),
            limit,
            "",
        ));
    }
}

/// The goals of issue 14: CPU and wall time against crun, and the self-protection's share of
/// `run` (the `--unsafe-disable selfexe` variant, paired by round).
fn goals_14(out: &mut String, samples: &Samples) {
    for (label, metric, limit) in [
        ("`run` CPU time: sealrun ÷ crun", "run_cpu_ms", 0.8),
        ("`run` wall time: sealrun ÷ crun", "run_ms", 0.7),
        ("`exec` CPU time: sealrun ÷ crun", "exec_cpu_ms", 0.8),
    ] {
        out.push_str(&goal_line(
            label,
            ratio_to(samples, "crun", metric),
            limit,
            "",
        ));
    }
    out.push_str(&goal_line(
        "the self-protection's share of `run` CPU",
        layer_cost(samples, "sealrun -selfexe", "run_cpu_ms"),
        10.0,
        " %",
    ));
}

fn markdown(subjects: &[Subject], samples: &Samples, meta: &Value, stamp: &str) -> String {
    let peers: Vec<&Subject> = subjects.iter().filter(|s| s.peer).collect();
    let s = &meta["settings"];
    let mut out = format!("# sealrun, crun and runc — {stamp}\n\n");
    let _ = writeln!(
        out,
        "{}\n",
        crate::machine::summary(&meta["machine"]).replace('\n', "  \n")
    );
    let _ = writeln!(
        out,
        "{} iterations after {} warm-up, runtimes interleaved round-robin; {} execs per \
         iteration; throughput: {} rounds of {} containers, {} at a time. Load average before \
         / after: {} / {}. Took {} s.\n",
        s["iters"],
        s["warmup"],
        s["execs"],
        s["tp_rounds"],
        s["tp_n"],
        s["tp_par"],
        meta["loadavg"]["before"].as_str().unwrap_or_default(),
        meta["loadavg"]["after"].as_str().unwrap_or_default(),
        meta["seconds"],
    );
    write_missing(&mut out, meta);
    if let Some(fails) = meta["failures"].as_object().filter(|m| !m.is_empty()) {
        let list: Vec<String> = fails.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(
            out,
            "**Failed iterations (not in the figures): {}**\n",
            list.join(", ")
        );
    }
    out.push_str(
        "Ratios are sealrun's figure divided by the peer's: below 1.00 sealrun is faster or \
         smaller (for throughput, above 1.00 is better).\n\n## Time\n\n",
    );
    table(&mut out, TIME_ROWS, &peers, samples);
    out.push_str(
        "\nCPU time (user + system of the command and the processes it waited for, so `run` \
         includes the container's init; unlike wall time it hardly depends on how busy the \
         machine is):\n\n",
    );
    table(&mut out, CPU_ROWS, &peers, samples);
    out.push_str("\n## Memory\n\n");
    table(&mut out, MEMORY_ROWS, &peers, samples);
    out.push_str(
        "\nThe cgroup figure moves in steps of 256 KiB on cgroup v1 (the kernel charges pages \
         to a memory cgroup in per-CPU batches of 64).\n",
    );
    for p in &peers {
        if samples
            .get(&p.name)
            .and_then(|m| m.get("cgroup_peak_kb"))
            .is_none()
        {
            let _ = writeln!(
                out,
                "\n{}: no cgroup figure — it left no memory cgroup at the config's cgroupsPath.",
                p.name
            );
        }
    }
    out.push('\n');
    size_table(&mut out, &peers, &meta["machine"]);
    if subjects.iter().any(|s| !s.peer) {
        out.push_str("\n## Cost of each sealrun hardening layer, toggled alone\n\n");
        layer_table(&mut out, subjects, samples);
    }
    out.push_str("\n## Goals (issue 5)\n\n");
    goals(&mut out, samples);
    out.push_str("\n## Goals (issue 14)\n\n");
    goals_14(&mut out, samples);
    out.push_str("\n![chart](chart.svg)\n");
    out
}

pub fn results_root() -> PathBuf {
    match std::env::var("BENCH_OUT") {
        Ok(p) => PathBuf::from(p),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results"),
    }
}

/// Write the results folder; returns it.
pub fn write(subjects: &[Subject], samples: &Samples, meta: &Value) -> Res<PathBuf> {
    let (date, stamp) = now();
    let root = results_root();
    let dir = root.join(&date);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let md = markdown(subjects, samples, meta, &stamp);
    let peers: Vec<&Subject> = subjects.iter().filter(|s| s.peer).collect();
    let chart = crate::svg::chart(&peers, samples, &stamp);
    let raw = json!({"date": stamp, "meta": meta, "samples": samples});
    let put = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    put("results.md", &md)?;
    put("chart.svg", &chart)?;
    put(
        "raw.json",
        &serde_json::to_string_pretty(&raw).map_err(|e| e.to_string())?,
    )?;
    let latest = root.join("latest");
    let _ = std::fs::remove_file(&latest);
    std::os::unix::fs::symlink(&date, &latest).map_err(|e| format!("{}: {e}", latest.display()))?;
    println!("\n{md}");
    Ok(dir)
}

/// One bold line per runtime the run could not measure (`meta.missing`), for both reports.
pub(crate) fn write_missing(out: &mut String, meta: &Value) {
    if let Some(missing) = meta["missing"].as_object().filter(|m| !m.is_empty()) {
        for (name, why) in missing {
            let _ = writeln!(out, "**{name} is MISSING and was not measured: {why}**\n");
        }
    }
}
