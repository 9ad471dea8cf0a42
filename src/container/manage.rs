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
    let mut pids: Vec<i32> = st
        .cgroup
        .container_pids(init.as_ref())?
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
        Status::Running | Status::Created => st.cgroup.freeze(),
        s => Err(wrong(
            id,
            s,
            "container not running: only a running container can be paused",
        )),
    }
}

/// `resume`: thaw a paused container.
pub fn resume(rt: &Runtime, id: &str) -> Result<()> {
    let dir = rt.root.open(id)?;
    let st = dir.load()?;
    match dir.status(&st) {
        Status::Paused => st.cgroup.thaw(),
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
    let dir = rt.root.peek(id)?;
    let st = dir.load()?;
    let status = dir.status(&st);
    if status == Status::Stopped {
        return Err(wrong(id, status, "container not running"));
    }
    let s = st.cgroup.stats()?;
    Ok(json!({"type": "stats", "id": id, "data": s.data}))
}

/// `events`: print a stats sample every `interval` until the container stops; `emit` gets each
/// JSON line.
pub fn events(
    rt: &Runtime,
    id: &str,
    interval: Duration,
    mut emit: impl FnMut(&Value),
) -> Result<()> {
    loop {
        match stats(rt, id) {
            Ok(v) => emit(&v),
            Err(Error::WrongState { .. }) | Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
        std::thread::sleep(interval);
    }
}

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
