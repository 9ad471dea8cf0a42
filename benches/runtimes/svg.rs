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

/// Several bar panels (groups of one bar per series) under one title: the cost curve's
/// single-point figures (churn, the floor).
pub fn bars(title: &str, names: &[String], panels: &[Bars]) -> String {
    let mut body = String::new();
    let mut y = 40.0;
    for (ptitle, unit, groups) in panels {
        let groups: Vec<(&str, Vec<Option<f64>>)> = groups
            .iter()
            .map(|(l, v)| (l.as_str(), v.clone()))
            .collect();
        y += panel(&mut body, y, ptitle, unit, &groups);
    }
    let legend = legend(names, 44.0, LABEL_W);
    let height = y + 54.0;
    frame(
        WIDTH,
        height,
        title,
        &format!("{legend}<g transform=\"translate(0,24)\">\n{body}</g>\n"),
    )
}

/// A bar panel: title, unit, and (label, one value per series) groups.
pub type Bars = (String, String, Vec<(String, Vec<Option<f64>>)>);

/// One line panel: y against x (to scale), one line per series.
pub struct Lines {
    pub title: String,
    pub unit: String,
    pub x_label: String,
    pub xs: Vec<f64>,
    /// Tick labels for `xs` (the same length).
    pub ticks: Vec<String>,
    /// One value per x per series (series in legend order).
    pub series: Vec<Vec<Option<f64>>>,
}

const PANEL_W: f64 = 410.0;
const PANEL_H: f64 = 250.0;

/// Line panels in two columns under one title and one legend.
pub fn lines(title: &str, names: &[String], panels: &[Lines]) -> String {
    let mut body = String::new();
    for (i, p) in panels.iter().enumerate() {
        let x0 = 10.0 + (i % 2) as f64 * PANEL_W;
        let y0 = 70.0 + (i / 2) as f64 * PANEL_H;
        line_panel(&mut body, x0, y0, p);
    }
    let rows = panels.len().div_ceil(2) as f64;
    let height = 70.0 + rows * PANEL_H + 10.0;
    let width = 20.0 + 2.0 * PANEL_W;
    let legend = legend(names, 40.0, 20.0);
    frame(width, height, title, &format!("{legend}{body}"))
}

fn legend(names: &[String], y: f64, x0: f64) -> String {
    let mut out = String::new();
    for (i, n) in names.iter().enumerate() {
        let x = x0 + i as f64 * 120.0;
        let _ = writeln!(
            out,
            r#"<rect x="{x:.0}" y="{y:.0}" width="12" height="12" fill="{}"/><text x="{:.0}" y="{:.0}" font-size="12">{}</text>"#,
            color(i),
            x + 16.0,
            y + 11.0,
            esc(n)
        );
    }
    out
}

fn frame(width: f64, height: f64, title: &str, body: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="15" font-weight="bold">{}</text>
{body}</svg>
"#,
        esc(title)
    )
}

fn line_panel(svg: &mut String, x0: f64, y0: f64, p: &Lines) {
    let (left, right, top, bottom) = (
        x0 + 55.0,
        x0 + PANEL_W - 20.0,
        y0 + 28.0,
        y0 + PANEL_H - 50.0,
    );
    let max_y = p
        .series
        .iter()
        .flat_map(|s| s.iter().flatten())
        .fold(0.0_f64, |a, b| a.max(*b))
        * 1.15;
    let (min_x, max_x) =
        p.xs.iter()
            .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
    let sx = |x: f64| {
        if max_x > min_x {
            left + (x - min_x) / (max_x - min_x) * (right - left)
        } else {
            (left + right) / 2.0
        }
    };
    let sy = |y: f64| {
        if max_y > 0.0 {
            bottom - y / max_y * (bottom - top)
        } else {
            bottom
        }
    };
    let _ = writeln!(
        svg,
        r#"<text x="{:.0}" y="{:.0}" font-size="13" font-weight="bold">{} ({})</text>"#,
        x0 + 4.0,
        y0 + 14.0,
        esc(&p.title),
        esc(&p.unit)
    );
    for g in 0..=4 {
        let v = max_y * g as f64 / 4.0;
        let y = sy(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{left:.0}" y1="{y:.1}" x2="{right:.0}" y2="{y:.1}" stroke="#e2e8f0"/><text x="{:.0}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            left - 4.0,
            y + 3.0,
            fmt_num(v)
        );
    }
    let mut last_tick = f64::MIN;
    for (x, t) in p.xs.iter().zip(&p.ticks) {
        let px = sx(*x);
        if px - last_tick < 22.0 {
            continue;
        }
        last_tick = px;
        let _ = writeln!(
            svg,
            r#"<text x="{px:.1}" y="{:.0}" font-size="10" text-anchor="middle">{}</text>"#,
            bottom + 14.0,
            esc(t)
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{left:.0}" y1="{bottom:.0}" x2="{right:.0}" y2="{bottom:.0}" stroke="#4a5568"/><text x="{:.0}" y="{:.0}" font-size="11" text-anchor="middle">{}</text>"##,
        (left + right) / 2.0,
        bottom + 32.0,
        esc(&p.x_label),
    );
    for (i, series) in p.series.iter().enumerate() {
        let pts: Vec<(f64, f64)> =
            p.xs.iter()
                .zip(series)
                .filter_map(|(x, y)| y.map(|y| (sx(*x), sy(y))))
                .collect();
        let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            path.join(" "),
            color(i)
        );
        for (x, y) in &pts {
            let _ = writeln!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{}"/>"#,
                color(i)
            );
        }
    }
}

/// A tick label: no more digits than the scale needs.
fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
