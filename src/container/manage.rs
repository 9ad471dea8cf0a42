//! `ps`, `pause`, `resume`, `update`, `events`: operations on a running container's cgroup.

use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use super::state::Status;
use super::Runtime;
use crate::error::{Error, Result};

fn wrong(id: &str, status: Status, reason: &str) -> Error {
    Error::WrongState {
        id: id.to_string(),
        status: status.as_str().into(),
        reason: reason.into(),
    }
}

/// `ps`: the pids of the container's processes (every process in a cgroup sealrun created;
/// only the container's own in a joined one).
pub fn pids(rt: &Runtime, id: &str) -> Result<Vec<i32>> {
    let dir = rt.root.peek(id)?;
    let st = dir.load()?;
    let init = super::lifecycle::container_init(&st);
    let mut pids: Vec<i32> = super::nocgroup::pids(&st, init.as_ref())?
        .iter()
        .map(|p| p.as_raw())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// `pause`: freeze every process of a running container.
pub fn pause(rt: &Runtime, id: &str) -> Result<()> {
    let dir = rt.root.open(id)?;
    let st = dir.load()?;
    match dir.status(&st) {
        Status::Running | Status::Created if st.cgroup.is_none() => {
            Err(super::nocgroup::no_freezer(id))
        }
        s @ (Status::Running | Status::Created) => {
            check_freezable(id, &st, s)?;
            st.cgroup.freeze()
        }
        s => Err(wrong(
            id,
            s,
            "container not running: only a running container can be paused",
        )),
    }
}

/// The freezer acts on a whole cgroup: refuse it when the cgroup (one sealrun only joined)
/// also holds processes the container did not start, which would be frozen or thawed too.
fn check_freezable(id: &str, st: &super::state::StateFile, status: Status) -> Result<()> {
    if st.cgroup.owned() {
        return Ok(());
    }
    let init = super::lifecycle::container_init(st);
    let ours = st.cgroup.container_pids(init.as_ref())?;
    let foreign = st
        .cgroup
        .pids()?
        .into_iter()
        .filter(|p| !ours.contains(p))
        .count();
    if foreign == 0 {
        return Ok(());
    }
    Err(Error::WrongState {
        id: id.to_string(),
        status: status.as_str().into(),
        reason: format!(
            "cannot freeze or thaw container {id}: its cgroup {} was not created by sealrun and              holds {foreign} process(es) it did not start",
            st.cgroup.path
        ),
    })
}

/// `resume`: thaw a paused container.
pub fn resume(rt: &Runtime, id: &str) -> Result<()> {
    let dir = rt.root.open(id)?;
    let st = dir.load()?;
    match dir.status(&st) {
        Status::Paused if st.cgroup.is_none() => Err(super::nocgroup::no_freezer(id)),
        Status::Paused => {
            check_freezable(id, &st, Status::Paused)?;
            st.cgroup.thaw()
        }
        s => Err(wrong(id, s, "container is not paused")),
    }
}

/// `update`: apply new resource limits (devices are never changed by update).
pub fn update(rt: &Runtime, id: &str, mut resources: LinuxResources) -> Result<()> {
    let dir = rt.root.open(id)?;
    let st = dir.load()?;
    let status = dir.status(&st);
    if status == Status::Stopped {
        return Err(wrong(id, status, "container not running"));
    }
    resources.set_devices(None);
    crate::cgroups::resources::validate(&resources)?;
    for ignored in st.cgroup.ignored_settings(&resources) {
        crate::log::warn(&format!("{ignored} (ignored)"));
    }
    st.cgroup.apply(&resources)
}

/// One `events --stats` sample: `{"type":"stats","id":...,"data":{...}}`.
pub fn stats(rt: &Runtime, id: &str) -> Result<Value> {
    let data = stats_data(rt, id)?;
    Ok(json!({"type": "stats", "id": id, "data": data}))
}

/// One statistics sample of a running container, typed (the `data` of [`stats`]).
pub fn stats_data(rt: &Runtime, id: &str) -> Result<crate::cgroups::stats::StatsData> {
    Ok(cgroup_stats(rt, id)?.data)
}

/// One statistics sample of a running container with, on cgroup2, the counters runc's shape
/// leaves out (what a containerd shim needs for its v2 metrics).
pub fn cgroup_stats(rt: &Runtime, id: &str) -> Result<crate::cgroups::Stats> {
    let dir = rt.root.peek(id)?;
    let st = dir.load()?;
    let status = dir.status(&st);
    if status == Status::Stopped {
        return Err(wrong(id, status, "container not running"));
    }
    st.cgroup.stats()
}

/// `events`: print a stats sample every `interval` until the container stops, and an
/// `{"type":"oom","id":...}` event whenever the OOM killer acted in its cgroup (looked at every
/// 100 ms between samples); `emit` gets each JSON object.
pub fn events(
    rt: &Runtime,
    id: &str,
    interval: Duration,
    mut emit: impl FnMut(&Value),
) -> Result<()> {
    let cgroup = rt.root.peek(id)?.load()?.cgroup;
    let mut ooms = cgroup.oom_kills().unwrap_or(0);
    loop {
        match stats(rt, id) {
            Ok(v) => emit(&v),
            Err(Error::WrongState { .. }) | Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
        let next = std::time::Instant::now() + interval;
        loop {
            let now = cgroup.oom_kills().unwrap_or(ooms);
            if now > ooms {
                emit(&json!({"type": "oom", "id": id}));
            }
            ooms = ooms.max(now);
            let left = next.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(OOM_POLL));
        }
    }
}

/// How often `events` looks at the OOM counter between samples.
const OOM_POLL: Duration = Duration::from_millis(100);

/// Parse a size like runc's `--memory`: a decimal number (digits, at most one `.`) with an
/// optional k/m/g/t suffix (binary units, case-insensitive, optional trailing `b`), or -1 for
/// unlimited. Anything else (`nan`, `inf`, `1e3`, negative numbers, overflow) is an error.
pub fn parse_size(s: &str) -> Result<i64> {
    let bad = |why: &str| Error::InvalidArgument(format!("invalid size {s:?}: {why}"));
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let digits = !num.is_empty()
        && num.chars().all(|c| c.is_ascii_digit() || c == '.')
        && num.chars().filter(|c| *c == '.').count() <= 1
        && num.chars().any(|c| c.is_ascii_digit());
    if !digits {
        return Err(bad(
            "use a number of bytes with an optional k, m, g or t suffix, or -1",
        ));
    }
    let n: f64 = num.parse().map_err(|_| bad("not a number"))?;
    let bytes = n * mult as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(bad("too large"));
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_runc() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("512kb").unwrap(), 512 << 10);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("-5").is_err());
        for bad in [
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e3",
            "",
            "k",
            ".",
            "1.2.3",
            "-1m",
            "99999999t",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
