//! A hand-written SVG bar chart: medians per runtime, time and memory panels.

use std::fmt::Write as _;

use crate::stats::median;
use crate::{Samples, Subject};

const WIDTH: f64 = 820.0;
const LABEL_W: f64 = 190.0;
const BAR_W: f64 = 520.0;
const BAR_H: f64 = 14.0;
const GAP: f64 = 3.0;
const GROUP_GAP: f64 = 14.0;

fn color(i: usize) -> &'static str {
    ["#2b6cb0", "#dd6b20", "#718096", "#38a169", "#805ad5"][i % 5]
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One panel: groups of bars (one per runtime) on a common scale. Returns the height used.
fn panel(
    svg: &mut String,
    top: f64,
    title: &str,
    unit: &str,
    groups: &[(&str, Vec<Option<f64>>)],
) -> f64 {
    let max = groups
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(0.0_f64, |a, b| a.max(*b));
    let _ = writeln!(
        svg,
        r#"<text x="10" y="{:.0}" font-size="14" font-weight="bold">{}</text>"#,
        top + 16.0,
        esc(title)
    );
    let mut y = top + 30.0;
    for (label, values) in groups {
        let group_h = values.len() as f64 * (BAR_H + GAP);
        let _ = writeln!(
            svg,
            r#"<text x="{:.0}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            y + group_h / 2.0 + 4.0,
            esc(label)
        );
        for (i, v) in values.iter().enumerate() {
            let by = y + i as f64 * (BAR_H + GAP);
            match v {
                Some(v) => {
                    let w = if max > 0.0 { v / max * BAR_W } else { 0.0 };
                    let _ = writeln!(
                        svg,
                        r#"<rect x="{LABEL_W:.0}" y="{by:.1}" width="{w:.1}" height="{BAR_H:.0}" fill="{}"/>"#,
                        color(i)
                    );
                    let _ = writeln!(
                        svg,
                        r#"<text x="{:.1}" y="{:.1}" font-size="11">{v:.1} {unit}</text>"#,
                        LABEL_W + w + 4.0,
                        by + BAR_H - 3.0
                    );
                }
                None => {
                    let _ = writeln!(
                        svg,
                        r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#c53030">n/a</text>"##,
                        LABEL_W + 4.0,
                        by + BAR_H - 3.0
                    );
                }
            }
        }
        y += group_h + GROUP_GAP;
    }
    y - top
}

/// The chart for the peers (sealrun first).
pub fn chart(peers: &[&Subject], samples: &Samples, stamp: &str) -> String {
    let get = |metric: &str, scale: f64| -> Vec<Option<f64>> {
        peers
            .iter()
            .map(|p| {
                samples
                    .get(&p.name)
                    .and_then(|m| m.get(metric))
                    .and_then(|v| median(v))
                    .map(|x| x / scale)
            })
            .collect()
    };
    let times = [
        ("run /bin/true", get("run_ms", 1.0)),
        ("create", get("create_ms", 1.0)),
        ("start", get("start_ms", 1.0)),
        ("delete", get("delete_ms", 1.0)),
        ("exec /bin/true", get("exec_ms", 1.0)),
    ];
    let cpu = [
        ("run /bin/true", get("run_cpu_ms", 1.0)),
        ("exec /bin/true", get("exec_cpu_ms", 1.0)),
    ];
    let memory = [
        ("peak RSS of run", get("run_rss_kb", 1024.0)),
        ("peak RSS of create", get("create_rss_kb", 1024.0)),
        ("peak RSS of exec", get("exec_rss_kb", 1024.0)),
        ("peak RSS of container init", get("init_rss_kb", 1024.0)),
        ("container cgroup peak", get("cgroup_peak_kb", 1024.0)),
    ];
    let mut body = String::new();
    let mut y = 40.0;
    y += panel(
        &mut body,
        y,
        "Time, median (ms, lower is better)",
        "ms",
        &times,
    );
    y += panel(
        &mut body,
        y,
        "CPU time (user + system), median (ms, lower is better)",
        "ms",
        &cpu,
    );
    y += panel(
        &mut body,
        y,
        "Memory, median (MiB, lower is better)",
        "MiB",
        &memory,
    );
    let mut legend = String::new();
    for (i, p) in peers.iter().enumerate() {
        let x = LABEL_W + i as f64 * 120.0;
        let _ = writeln!(
            legend,
            r#"<rect x="{x:.0}" y="44" width="12" height="12" fill="{}"/><text x="{:.0}" y="55" font-size="12">{}</text>"#,
            color(i),
            x + 16.0,
            esc(&p.name)
        );
    }
    let height = y + 30.0;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{:.0}" viewBox="0 0 {WIDTH:.0} {:.0}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="16" font-weight="bold">sealrun, crun and runc on the same busybox bundle — {}</text>
{legend}<g transform="translate(0,24)">
{body}</g>
</svg>
"#,
        height + 24.0,
        height + 24.0,
        esc(stamp)
    )
}
