//! The runc-compatible command-line values that need more than parsing: `update`'s resource
//! flags, `ps`'s filtered table and `events --interval`. The CLI only collects them; the logic
//! lives here so every client (the CLI, an embedder) gets the same answers.

use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use super::manage::parse_size;
use super::Runtime;
use crate::error::{Error, Result};

/// `update`'s flags (runc's names). Sizes are strings (`512m`, `-1` for unlimited), checked
/// here so each error names its flag.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UpdateFlags {
    /// `--memory`.
    pub memory: Option<String>,
    /// `--memory-swap`.
    pub memory_swap: Option<String>,
    /// `--memory-reservation`.
    pub memory_reservation: Option<String>,
    /// `--kernel-memory`.
    pub kernel_memory: Option<String>,
    /// `--cpu-share`.
    pub cpu_shares: Option<u64>,
    /// `--cpu-quota` (-1: unlimited).
    pub cpu_quota: Option<i64>,
    /// `--cpu-period`.
    pub cpu_period: Option<u64>,
    /// `--cpu-rt-period`.
    pub cpu_rt_period: Option<u64>,
    /// `--cpu-rt-runtime`.
    pub cpu_rt_runtime: Option<i64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight`.
    pub blkio_weight: Option<u16>,
}

impl UpdateFlags {
    /// The resources to apply: `base` (the JSON of `--resources FILE|-`, if given) with every
    /// flag set on top of it.
    pub fn to_resources(&self, base: Option<&[u8]>) -> Result<LinuxResources> {
        let mut r: Value = match base {
            Some(raw) => crate::spec::parse_json::<Value>(raw, "resources")?,
            None => json!({}),
        };
        let size = |flag: &str, v: &Option<String>| {
            v.as_deref()
                .map(|s| {
                    parse_size(s).map_err(|e| match e {
                        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{flag}: {m}")),
                        other => other,
                    })
                })
                .transpose()
        };
        let mut set = |section: &str, key: &str, v: Option<Value>| {
            if let Some(v) = v {
                if !r[section].is_object() {
                    r[section] = json!({});
                }
                r[section][key] = v;
            }
        };
        set(
            "memory",
            "limit",
            size("--memory", &self.memory)?.map(Value::from),
        );
        set(
            "memory",
            "swap",
            size("--memory-swap", &self.memory_swap)?.map(Value::from),
        );
        set(
            "memory",
            "reservation",
            size("--memory-reservation", &self.memory_reservation)?.map(Value::from),
        );
        set(
            "memory",
            "kernel",
            size("--kernel-memory", &self.kernel_memory)?.map(Value::from),
        );
        set("cpu", "shares", self.cpu_shares.map(Value::from));
        set("cpu", "quota", self.cpu_quota.map(Value::from));
        set("cpu", "period", self.cpu_period.map(Value::from));
        set("cpu", "realtimePeriod", self.cpu_rt_period.map(Value::from));
        set(
            "cpu",
            "realtimeRuntime",
            self.cpu_rt_runtime.map(Value::from),
        );
        set("cpu", "cpus", self.cpuset_cpus.clone().map(Value::from));
        set("cpu", "mems", self.cpuset_mems.clone().map(Value::from));
        set("pids", "limit", self.pids_limit.map(Value::from));
        set("blockIO", "weight", self.blkio_weight.map(Value::from));
        let raw = serde_json::to_vec(&r).map_err(|e| Error::Other(e.to_string()))?;
        crate::spec::parse_json(&raw, "resources")
    }
}

/// `ps ID [ps args]`: the host's `ps` output (default `-ef`) with its header and only the
/// lines of the container's processes.
pub fn ps_table(rt: &Runtime, id: &str, ps_args: &[String]) -> Result<String> {
    let pids = super::pids(rt, id)?;
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Error::Other(format!("ps: {e}")))?;
    filter_ps(&String::from_utf8_lossy(&out.stdout), &pids)
}

/// Keep `ps`'s header and the lines whose PID column is one of `pids`.
fn filter_ps(text: &str, pids: &[i32]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::Other("ps output has no PID column".into()))?;
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// `events --interval`: `500ms`, `5s` (the default unit), `1m`; finite and positive.
pub fn parse_interval(s: &str) -> Result<std::time::Duration> {
    let bad = || Error::InvalidArgument(format!("--interval {s:?}: use e.g. 5s or 500ms"));
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    // `nan` and `inf` parse as f64 but are no interval (from_secs_f64 would panic on them).
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_must_be_finite_and_positive() {
        assert_eq!(
            parse_interval("500ms").unwrap(),
            std::time::Duration::from_millis(500)
        );
        assert_eq!(
            parse_interval("2").unwrap(),
            std::time::Duration::from_secs(2)
        );
        for bad in ["nan", "inf", "NaNs", "0", "-1s", "5x"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn update_flags_go_on_top_of_the_resources_file() {
        let flags = UpdateFlags {
            memory: Some("1m".into()),
            cpu_quota: Some(-1),
            pids_limit: Some(40),
            ..UpdateFlags::default()
        };
        let r = flags
            .to_resources(Some(br#"{"memory":{"limit":5,"swap":7}}"#))
            .unwrap();
        let m = r.memory().as_ref().unwrap();
        assert_eq!((m.limit(), m.swap()), (Some(1 << 20), Some(7)));
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(-1));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 40);
        let e = UpdateFlags {
            memory_swap: Some("lots".into()),
            ..UpdateFlags::default()
        }
        .to_resources(None)
        .unwrap_err()
        .to_string();
        assert!(e.contains("--memory-swap"), "{e}");
    }

    #[test]
    fn ps_keeps_the_header_and_the_containers_lines() {
        let text = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 sleep\nroot 43 1 other\n";
        assert_eq!(
            filter_ps(text, &[42]).unwrap(),
            "UID PID PPID CMD\nroot 42 1 sleep\n"
        );
        assert!(filter_ps("no header\n", &[1]).is_err());
    }
}
