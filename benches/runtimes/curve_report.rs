//! The cost curve's results, next to the lifecycle figures in `benches/results/<date>/`:
//! `curve.md` (the tables), `curve-running.svg`, `curve-seccomp.svg`, `curve-mounts.svg`,
//! `curve-churn-floor.svg` and `curve-raw.json` (every sample, the settings and the machine);
//! `benches/results/curve-latest` points at the folder.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::curve::{EXTRA_MOUNTS, EXTRA_RULES};
use crate::stats::{median, percentile};
use crate::svg::{Bars, Lines};
use crate::{Res, Samples, Subject};

/// Median (p = 50) or a nearest-rank percentile of a metric, divided by `scale`.
fn stat(samples: &Samples, who: &str, metric: &str, p: f64, scale: f64) -> Option<f64> {
    let v = samples.get(who)?.get(metric)?;
    let x = if p == 50.0 {
        median(v)?
    } else {
        percentile(v, p)?
    };
    Some(x / scale)
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".into(), |x| format!("{x:.decimals$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    }
}

/// A row: label, metric, percentile (50 = median), scale, decimals.
type Row = (String, String, f64, f64, usize);

/// `| first | label | runtimes... | sealrun ÷ others... |`
fn table(out: &mut String, first: &str, rows: &[(String, Row)], names: &[String], s: &Samples) {
    let others: Vec<&String> = names.iter().filter(|n| *n != "sealrun").collect();
    let _ = write!(out, "| {first} | figure |");
    for n in names {
        let _ = write!(out, " {n} |");
    }
    for o in &others {
        let _ = write!(out, " sealrun ÷ {o} |");
    }
    let _ = write!(out, "\n|---|---|");
    for _ in 0..names.len() + others.len() {
        out.push_str("---:|");
    }
    out.push('\n');
    for (lead, (label, metric, p, scale, dec)) in rows {
        let _ = write!(out, "| {lead} | {label} |");
        for n in names {
            let _ = write!(out, " {} |", fmt(stat(s, n, metric, *p, *scale), *dec));
        }
        let base = stat(s, "sealrun", metric, *p, *scale);
        for o in &others {
            let _ = write!(out, " {} |", ratio(base, stat(s, o, metric, *p, *scale)));
        }
        out.push('\n');
    }
}

fn row(label: &str, metric: String, p: f64, scale: f64, dec: usize) -> Row {
    (label.to_string(), metric, p, scale, dec)
}

fn running_rows(ns: &[usize]) -> Vec<(String, Row)> {
    let mut rows = Vec::new();
    for &n in ns {
        let m = |k: &str| format!("n{n}/{k}");
        for r in [
            row("`create`+`start`, median (ms)", m("cs_ms"), 50.0, 1.0, 1),
            row("`create`+`start`, p99 (ms)", m("cs_ms"), 99.0, 1.0, 1),
            row(
                "`create`+`start`, CPU, median (ms)",
                m("cs_cpu_ms"),
                50.0,
                1.0,
                2,
            ),
            row("`state`, median (ms)", m("state_ms"), 50.0, 1.0, 1),
            row("`list`, median (ms)", m("list_ms"), 50.0, 1.0, 1),
            row("`list`, CPU, median (ms)", m("list_cpu_ms"), 50.0, 1.0, 2),
            row("`delete`, median (ms)", m("delete_ms"), 50.0, 1.0, 1),
            row("idle init RSS (MiB)", m("idle_rss_kb"), 50.0, 1024.0, 2),
            row(
                "idle container's cgroup `memory.usage_in_bytes` (MiB)",
                m("idle_cgroup_kb"),
                50.0,
                1024.0,
                2,
            ),
        ] {
            rows.push((n.to_string(), r));
        }
    }
    rows
}

fn series(
    s: &Samples,
    names: &[String],
    metrics: &[String],
    p: f64,
    scale: f64,
) -> Vec<Vec<Option<f64>>> {
    names
        .iter()
        .map(|n| metrics.iter().map(|m| stat(s, n, m, p, scale)).collect())
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn lines(
    title: &str,
    unit: &str,
    x_label: &str,
    xs: &[usize],
    metrics: &[String],
    names: &[String],
    s: &Samples,
    p: f64,
    scale: f64,
) -> Lines {
    Lines {
        title: title.into(),
        unit: unit.into(),
        x_label: x_label.into(),
        xs: xs.iter().map(|&x| x as f64).collect(),
        ticks: xs.iter().map(usize::to_string).collect(),
        series: series(s, names, metrics, p, scale),
    }
}

fn seccomp_names() -> Vec<(usize, String, String)> {
    let mut v = vec![(0, "seccomp-default".to_string(), "default".to_string())];
    v.extend(
        EXTRA_RULES
            .iter()
            .map(|n| (*n, format!("seccomp-{n}"), format!("+{n}"))),
    );
    v
}

fn mount_names() -> Vec<(usize, String)> {
    let mut v = vec![(0, "seccomp-default".to_string())];
    v.extend(EXTRA_MOUNTS.iter().map(|n| (*n, format!("mounts-{n}"))));
    v
}

fn markdown(names: &[String], s: &Samples, meta: &Value, stamp: &str) -> String {
    let c = &meta["curve"];
    let mut out = format!("# The cost curve: sealrun, crun and runc — {stamp}\n\n");
    let _ = writeln!(
        out,
        "{}\n",
        crate::machine::summary(&meta["machine"]).replace('\n', "  \n")
    );
    let _ = writeln!(
        out,
        "Settings: {}. Load average before / after: {} / {}. Took {} s. Every runtime runs the \
         same config (sealrun's hardened default with its default seccomp profile), wrapped \
         alike; see docs/benchmarks.md.\n",
        c,
        meta["loadavg"]["before"].as_str().unwrap_or_default(),
        meta["loadavg"]["after"].as_str().unwrap_or_default(),
        meta["seconds"],
    );
    crate::report::write_missing(&mut out, meta);
    if let Some(fails) = meta["failures"].as_object().filter(|m| !m.is_empty()) {
        out.push_str("**Failures (not in the figures):**\n\n");
        for (who, what) in fails {
            for (part, msg) in what.as_object().into_iter().flatten() {
                let msg = msg.as_str().unwrap_or_default();
                let short: String = msg.chars().take(300).collect();
                let _ = writeln!(out, "- **{who}, {part}**: {}", short.replace('\n', " "));
            }
        }
        out.push('\n');
    }
    out.push_str(
        "Ratios are sealrun's figure divided by the peer's: below 1.00 sealrun is faster or \
         smaller (for containers per second, above 1.00 is better).\n",
    );
    let ns: Vec<usize> = c["ns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_u64().map(|n| n as usize))
        .collect();
    if s.values().any(|m| m.keys().any(|k| k.starts_with('n'))) {
        out.push_str(
            "\n## With N containers already running\n\n\
             N sleeping busybox containers of the same runtime are running while sample \
             containers are created, started, queried, killed and deleted next to them.\n\n",
        );
        table(&mut out, "N", &running_rows(&ns), names, s);
        out.push_str("\n![with N containers running](curve-running.svg)\n");
    }
    if s.values().any(|m| m.contains_key("churn/per_s")) {
        let _ = writeln!(
            out,
            "\n## Churn\n\n{} clients each `run` /bin/true (create, start, wait, delete) back to \
             back for {} s.\n",
            c["churn_par"], c["churn_secs"]
        );
        let specs: [(&str, &str, f64, usize); 5] = [
            ("containers per second", "per_s", 50.0, 1),
            ("`run` latency, median (ms)", "lat_ms", 50.0, 1),
            ("`run` latency, p99 (ms)", "lat_ms", 99.0, 1),
            ("CPU time per container (ms)", "cpu_ms_each", 50.0, 2),
            ("failed runs", "failed", 50.0, 0),
        ];
        let rows: Vec<(String, Row)> = specs
            .iter()
            .map(|(l, k, p, d)| (String::new(), row(l, format!("churn/{k}"), *p, 1.0, *d)))
            .collect();
        table(&mut out, "", &rows, names, s);
    }
    if s.values().any(|m| m.contains_key("run/seccomp-default_ms")) {
        seccomp_section(&mut out, names, s, meta);
        out.push_str(
            "\n## Mount count\n\n`run` /bin/true with 5, 50 and 200 read-only bind mounts of one \
             host folder added to the config's own mounts.\n\n",
        );
        let rows: Vec<(String, Row)> = mount_names()
            .into_iter()
            .flat_map(|(n, v)| {
                [
                    (
                        n.to_string(),
                        row("`run`, median (ms)", format!("run/{v}_ms"), 50.0, 1.0, 1),
                    ),
                    (
                        n.to_string(),
                        row(
                            "`run` CPU, median (ms)",
                            format!("run_cpu/{v}_ms"),
                            50.0,
                            1.0,
                            2,
                        ),
                    ),
                ]
            })
            .collect();
        table(&mut out, "extra bind mounts", &rows, names, s);
        out.push_str("\n![mount count](curve-mounts.svg)\n");
        floor_section(&mut out, names, s);
    }
    out
}

fn seccomp_section(out: &mut String, names: &[String], s: &Samples, meta: &Value) {
    out.push_str(
        "\n## seccomp profile size\n\n`run` /bin/true with sealrun's default profile, and with \
         50, 300 and 1000 rules added: one syscall and one argument each (`SCMP_ACT_ERRNO` with \
         `EACCES` when the argument equals a constant, on syscalls the default refuses anyway), \
         so the container runs the same code. Instructions: of the filter each runtime \
         actually loaded, read from a running container's init with \
         `PTRACE_SECCOMP_GET_FILTER` (all filters summed; the count of filters in brackets \
         when more than one). sealrun's compile time is its library's `seccomp::compile`, in \
         process, median.\n\n",
    );
    let _ = write!(
        out,
        "| profile | rules (sealrun's count) | sealrun compile (ms) |"
    );
    for n in names {
        let _ = write!(out, " {n}: instructions |");
    }
    out.push_str("\n|---|---:|---:|");
    for _ in names {
        out.push_str("---:|");
    }
    out.push('\n');
    for (_, _, label) in seccomp_names() {
        let info = &meta["compiled"][&label];
        let rules = match info["error"].as_str() {
            Some(e) => format!("refused: {e}"),
            None => fmt(info["rules"].as_f64(), 0),
        };
        let _ = write!(
            out,
            "| {label} | {rules} | {} |",
            fmt(
                stat(s, "sealrun", &format!("compile/{label}"), 50.0, 1.0),
                3
            )
        );
        for n in names {
            let insns = stat(s, n, &format!("insns/{label}"), 50.0, 1.0);
            let filters = stat(s, n, &format!("filters/{label}"), 50.0, 1.0).unwrap_or(1.0);
            let more = if filters > 1.0 {
                format!(" ({filters:.0})")
            } else {
                String::new()
            };
            let _ = write!(out, " {}{more} |", fmt(insns, 0));
        }
        out.push('\n');
    }
    out.push('\n');
    let rows: Vec<(String, Row)> = seccomp_names()
        .into_iter()
        .flat_map(|(_, v, label)| {
            [
                (
                    label.clone(),
                    row("`run`, median (ms)", format!("run/{v}_ms"), 50.0, 1.0, 1),
                ),
                (
                    label,
                    row(
                        "`run` CPU, median (ms)",
                        format!("run_cpu/{v}_ms"),
                        50.0,
                        1.0,
                        2,
                    ),
                ),
            ]
        })
        .collect();
    table(out, "profile", &rows, names, s);
    out.push_str("\n![seccomp profile size](curve-seccomp.svg)\n");
}

fn floor_section(out: &mut String, names: &[String], s: &Samples) {
    out.push_str(
        "\n## Distance to the floor\n\nThe floor is `unshare` of the namespaces the config asks \
         for (pid with a fork, network, ipc, uts, mount, cgroup) and `chroot` into the same \
         rootfs, running /bin/true: what namespaces alone cost, with no cgroups, mounts, \
         capabilities, seccomp or Landlock. Same wrapper, same rounds.\n\n\
         | runtime | `run`, median (ms) | − floor (ms) | ÷ floor | CPU, median (ms) | − floor (ms) | ÷ floor |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    let wall = |n: &str| stat(s, n, &format!("run/{}_ms", metric_of(n)), 50.0, 1.0);
    let cpu = |n: &str| stat(s, n, &format!("run_cpu/{}_ms", metric_of(n)), 50.0, 1.0);
    let (fw, fc) = (wall("floor"), cpu("floor"));
    let minus = |a: Option<f64>, b: Option<f64>| fmt(a.zip(b).map(|(a, b)| a - b), 1);
    for n in names.iter().map(String::as_str).chain(["floor"]) {
        let _ = writeln!(
            out,
            "| {n} | {} | {} | {} | {} | {} | {} |",
            fmt(wall(n), 1),
            minus(wall(n), fw),
            ratio(wall(n), fw),
            fmt(cpu(n), 2),
            minus(cpu(n), fc),
            ratio(cpu(n), fc)
        );
    }
    out.push_str("\n![churn and the floor](curve-churn-floor.svg)\n");
}

/// The `run` variant the floor is compared with: the default config.
fn metric_of(who: &str) -> &'static str {
    if who == "floor" {
        "floor"
    } else {
        "seccomp-default"
    }
}

fn charts(
    names: &[String],
    s: &Samples,
    ns: &[usize],
    churn_par: u64,
    stamp: &str,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let m = |k: &str| -> Vec<String> { ns.iter().map(|n| format!("n{n}/{k}")).collect() };
    let x = "containers already running (N)";
    let specs: [(&str, &str, &str, f64, f64); 8] = [
        ("create+start, median", "ms", "cs_ms", 50.0, 1.0),
        ("create+start, CPU, median", "ms", "cs_cpu_ms", 50.0, 1.0),
        ("create+start, p99", "ms", "cs_ms", 99.0, 1.0),
        ("state, median", "ms", "state_ms", 50.0, 1.0),
        ("list, median", "ms", "list_ms", 50.0, 1.0),
        ("list, CPU, median", "ms", "list_cpu_ms", 50.0, 1.0),
        ("delete, median", "ms", "delete_ms", 50.0, 1.0),
        (
            "idle container: cgroup memory.usage",
            "MiB",
            "idle_cgroup_kb",
            50.0,
            1024.0,
        ),
    ];
    let panels: Vec<Lines> = specs
        .iter()
        .map(|(t, u, k, p, scale)| lines(t, u, x, ns, &m(k), names, s, *p, *scale))
        .collect();
    let title = format!("With N containers running — {stamp}");
    out.push((
        "curve-running.svg".into(),
        crate::svg::lines(&title, names, &panels),
    ));
    let sec = seccomp_names();
    let xs: Vec<usize> = sec.iter().map(|(n, _, _)| *n).collect();
    let run_m: Vec<String> = sec.iter().map(|(_, v, _)| format!("run/{v}_ms")).collect();
    let cpu_m: Vec<String> = sec
        .iter()
        .map(|(_, v, _)| format!("run_cpu/{v}_ms"))
        .collect();
    let ins_m: Vec<String> = sec.iter().map(|(_, _, l)| format!("insns/{l}")).collect();
    let cmp_m: Vec<String> = sec.iter().map(|(_, _, l)| format!("compile/{l}")).collect();
    let xl = "rules added to the default profile";
    let median = |title: &str, unit: &str, metrics: &[String], who: &[String]| {
        lines(title, unit, xl, &xs, metrics, who, s, 50.0, 1.0)
    };
    let only_sealrun: Vec<String> = names.iter().take(1).cloned().collect();
    let panels = vec![
        median("run /bin/true, median", "ms", &run_m, names),
        median("run /bin/true, CPU, median", "ms", &cpu_m, names),
        median(
            "instructions of the loaded filter",
            "BPF insns",
            &ins_m,
            names,
        ),
        median(
            "sealrun: compile time (in process)",
            "ms",
            &cmp_m,
            &only_sealrun,
        ),
    ];
    let title = format!("seccomp profile size — {stamp}");
    out.push((
        "curve-seccomp.svg".into(),
        crate::svg::lines(&title, names, &panels),
    ));
    let mnt = mount_names();
    let xs: Vec<usize> = mnt.iter().map(|(n, _)| *n).collect();
    let run_m: Vec<String> = mnt.iter().map(|(_, v)| format!("run/{v}_ms")).collect();
    let cpu_m: Vec<String> = mnt.iter().map(|(_, v)| format!("run_cpu/{v}_ms")).collect();
    let xl = "bind mounts added";
    let median = |title: &str, unit: &str, metrics: &[String], who: &[String]| {
        lines(title, unit, xl, &xs, metrics, who, s, 50.0, 1.0)
    };
    let panels = vec![
        median("run /bin/true, median", "ms", &run_m, names),
        median("run /bin/true, CPU, median", "ms", &cpu_m, names),
    ];
    let title = format!("Mount count — {stamp}");
    out.push((
        "curve-mounts.svg".into(),
        crate::svg::lines(&title, names, &panels),
    ));
    let mut with_floor = names.to_vec();
    with_floor.push("floor".into());
    let one = |metric: &dyn Fn(&str) -> String, p: f64, who: &[String]| -> Vec<Option<f64>> {
        who.iter().map(|n| stat(s, n, &metric(n), p, 1.0)).collect()
    };
    let churn: Vec<Bars> = vec![
        (
            format!("Churn: {churn_par} clients run containers back to back (higher is better)"),
            "/s".into(),
            vec![(
                "containers per second".into(),
                one(&|_| "churn/per_s".into(), 50.0, names),
            )],
        ),
        (
            "Churn: latency of each run (lower is better)".into(),
            "ms".into(),
            vec![
                (
                    "median".into(),
                    one(&|_| "churn/lat_ms".into(), 50.0, names),
                ),
                ("p99".into(), one(&|_| "churn/lat_ms".into(), 99.0, names)),
            ],
        ),
        (
            "Distance to the floor (unshare + chroot), median (lower is better)".into(),
            "ms".into(),
            vec![
                (
                    "run /bin/true".into(),
                    one(&|n| format!("run/{}_ms", metric_of(n)), 50.0, &with_floor),
                ),
                (
                    "CPU time".into(),
                    one(
                        &|n| format!("run_cpu/{}_ms", metric_of(n)),
                        50.0,
                        &with_floor,
                    ),
                ),
            ],
        ),
    ];
    let title = format!("Churn and the floor — {stamp}");
    out.push((
        "curve-churn-floor.svg".into(),
        crate::svg::bars(&title, &with_floor, &churn),
    ));
    out
}

/// Write the results; returns the folder.
pub fn write(subjects: &[Subject], samples: &Samples, meta: &Value) -> Res<PathBuf> {
    let (date, stamp) = crate::report::now();
    let root = crate::report::results_root();
    let dir = root.join(&date);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let names: Vec<String> = subjects.iter().map(|s| s.name.clone()).collect();
    let ns: Vec<usize> = meta["curve"]["ns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_u64().map(|n| n as usize))
        .collect();
    let put = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    let md = markdown(&names, samples, meta, &stamp);
    put("curve.md", &md)?;
    for (name, svg) in charts(
        &names,
        samples,
        &ns,
        meta["curve"]["churn_par"].as_u64().unwrap_or(0),
        &stamp,
    ) {
        put(&name, &svg)?;
    }
    let raw = json!({"date": stamp, "meta": meta, "samples": samples});
    put(
        "curve-raw.json",
        &serde_json::to_string_pretty(&raw).map_err(|e| e.to_string())?,
    )?;
    let latest = root.join("curve-latest");
    let _ = std::fs::remove_file(&latest);
    std::os::unix::fs::symlink(&date, &latest).map_err(|e| format!("{}: {e}", latest.display()))?;
    println!("\n{md}");
    Ok(dir)
}
