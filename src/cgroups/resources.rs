//! `linux.resources` → the cgroup files to write, for v1 and v2, with runc's conversions and
//! write orders. Pure: what the host offers comes through the [`Host`] trait, so the planning
//! and the list of settings the host cannot honour are unit-tested without touching cgroupfs.
//! Device rules are not handled here (see `devices.rs`).

use oci_spec::runtime::{LinuxResources, LinuxThrottleDevice};

use super::devices;
use crate::error::{Error, Result};

/// Which cgroup version serves a controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ver {
    /// A v1 hierarchy.
    V1,
    /// The unified hierarchy.
    V2,
}

/// What the planner needs to know about the host.
pub trait Host {
    /// Where `ctl` (`memory`, `cpu`, `io`, ...) is available, if anywhere.
    fn version(&self, ctl: &str) -> Option<Ver>;
    /// Whether `file` exists in the container's directory for `ctl`.
    fn exists(&self, ctl: &str, file: &str) -> bool;
    /// Current content of `file` in the container's directory for `ctl`.
    fn read(&self, ctl: &str, file: &str) -> Option<String>;
    /// Huge page sizes the kernel supports, in cgroup notation (`2MB`, `1GB`).
    fn hugepage_sizes(&self) -> Vec<String>;
}

/// One value to write into one file of the container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The controller whose directory holds the file (`cgroup` for core v2 files).
    pub ctl: String,
    /// File name.
    pub file: String,
    /// Value.
    pub value: String,
    /// The config field it comes from, for error messages.
    pub field: String,
    /// On `EINVAL`, try again after the next write (cfs period before quota, as runc).
    pub retry_after_next: bool,
    /// Read the value back and fail if the kernel changed it (cpu.shares clamping).
    pub verify: bool,
}

/// The result of planning: the writes, in order, and one note per ignored setting.
#[derive(Debug, Default)]
pub struct Planned {
    /// Writes, in the order they must happen.
    pub writes: Vec<Write>,
    /// Settings the host cannot honour (`memory.kernel: ...`), for one warning each.
    pub ignored: Vec<String>,
}

impl Planned {
    fn write(&mut self, ctl: &str, file: &str, value: impl ToString, field: &str) -> &mut Write {
        self.writes.push(Write {
            ctl: ctl.to_string(),
            file: file.to_string(),
            value: value.to_string(),
            field: format!("linux.resources.{field}"),
            retry_after_next: false,
            verify: false,
        });
        self.writes.last_mut().expect("just pushed")
    }

    fn ignore(&mut self, field: &str, why: impl std::fmt::Display) {
        self.ignored.push(format!("linux.resources.{field}: {why}"));
    }
}

/// runc's conversion of cpu shares (v1, 2..262144) to cpu.weight (v2, 1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// runc's conversion of a blkio weight (10..1000) to io.weight (1..10000).
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = u64::from(weight.max(10));
    1 + (w - 10) * 9999 / 990
}

/// runc's conversion of the OCI memory+swap limit to v2's swap-only `memory.swap.max`
/// (-1: unlimited, 0: leave alone).
pub fn swap_to_v2(swap: i64, memory: i64) -> Result<i64> {
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory <= 0 {
        return Err(Error::config(
            "linux.resources.memory.swap",
            "a swap limit needs a memory limit",
        ));
    }
    if swap < memory {
        return Err(Error::config(
            "linux.resources.memory.swap",
            "memory+swap limit must be >= memory limit",
        ));
    }
    Ok(swap - memory)
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// Unified keys that would hand the container's writer control over processes or the tree
/// shape rather than over resources.
const FORBIDDEN_UNIFIED: &[&str] = &[
    "cgroup.procs",
    "cgroup.threads",
    "cgroup.kill",
    "cgroup.freeze",
    "cgroup.type",
    "cgroup.subtree_control",
];

/// Check `linux.resources` without touching the host; errors name the field.
pub fn validate(r: &LinuxResources) -> Result<()> {
    devices::parse_rules(r.devices().as_deref().unwrap_or(&[]))?;
    if let Some(m) = r.memory() {
        if m.swappiness().is_some_and(|s| s > 100) {
            return Err(Error::config(
                "linux.resources.memory.swappiness",
                "must be between 0 and 100",
            ));
        }
        if let (Some(limit), Some(swap)) = (m.limit(), m.swap()) {
            if limit > 0 && swap > 0 && swap < limit {
                return Err(Error::config(
                    "linux.resources.memory.swap",
                    "memory+swap limit must be >= memory limit",
                ));
            }
        }
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let size = h.page_size();
        let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &size[digits.len()..];
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || !matches!(unit, "KB" | "MB" | "GB" | "TB" | "PB")
        {
            return Err(Error::config(
                format!("linux.resources.hugepageLimits[{i}].pageSize"),
                format!("{size:?} is not a page size like 2MB or 1GB"),
            ));
        }
    }
    for key in r.unified().iter().flat_map(|u| u.keys()) {
        let field = format!("linux.resources.unified[{key:?}]");
        let well_formed = key
            .split_once('.')
            .is_some_and(|(ctl, rest)| !ctl.is_empty() && !rest.is_empty())
            && !key.contains('/')
            && !key.contains('\0');
        if !well_formed {
            return Err(Error::config(
                field,
                "must be a cgroup v2 file name like memory.high",
            ));
        }
        if FORBIDDEN_UNIFIED.contains(&key.as_str()) {
            return Err(Error::config(
                field,
                "only resource files can be set, not the cgroup's membership or state",
            ));
        }
    }
    Ok(())
}

/// Plan every write for `r` (except devices) on this host.
pub fn plan(r: &LinuxResources, host: &dyn Host) -> Result<Planned> {
    let mut p = Planned::default();
    cpuset(r, host, &mut p);
    memory(r, host, &mut p)?;
    cpu(r, host, &mut p);
    pids(r, host, &mut p);
    blkio(r, host, &mut p);
    hugetlb(r, host, &mut p);
    network(r, host, &mut p);
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        p.ignore("rdma", "rdma limits are not supported");
    }
    unified(r, host, &mut p)?;
    Ok(p)
}

fn missing(p: &mut Planned, field: &str, ctl: &str) {
    p.ignore(field, format!("the {ctl} controller is not available"));
}

fn cpuset(r: &LinuxResources, host: &dyn Host, p: &mut Planned) {
    let Some(cpu) = r.cpu() else { return };
    for (field, value, file) in [
        ("cpu.cpus", cpu.cpus(), "cpuset.cpus"),
        ("cpu.mems", cpu.mems(), "cpuset.mems"),
    ] {
        let Some(v) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        if host.version("cpuset").is_some() {
            p.write("cpuset", file, v, field);
        } else {
            missing(p, field, "cpuset");
        }
    }
}

fn memory(r: &LinuxResources, host: &dyn Host, p: &mut Planned) -> Result<()> {
    let Some(m) = r.memory() else { return Ok(()) };
    if m.kernel().is_some() {
        p.ignore("memory.kernel", "kernel memory limits are not supported");
    }
    if m.kernel_tcp().is_some() {
        p.ignore("memory.kernelTCP", "kernel memory limits are not supported");
    }
    let limit = m.limit().unwrap_or(0);
    let swap = m.swap().unwrap_or(0);
    let reservation = m.reservation().unwrap_or(0);
    let wants = limit != 0
        || swap != 0
        || reservation != 0
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true);
    let Some(ver) = host.version("memory") else {
        if wants {
            missing(p, "memory", "memory");
        }
        return Ok(());
    };
    match ver {
        Ver::V1 => {
            let has_swap = host.exists("memory", "memory.memsw.limit_in_bytes");
            // Unlimited memory with swap unspecified means unlimited swap too (runc).
            let swap = if limit == -1 && swap == 0 && has_swap {
                -1
            } else {
                swap
            };
            if swap != 0 && !has_swap {
                p.ignore("memory.swap", "swap accounting is not enabled on this host");
            }
            let swap = if has_swap { swap } else { 0 };
            let set_limit = |p: &mut Planned| {
                if limit != 0 {
                    p.write("memory", "memory.limit_in_bytes", limit, "memory.limit");
                }
            };
            let set_swap = |p: &mut Planned| {
                if swap != 0 {
                    p.write("memory", "memory.memsw.limit_in_bytes", swap, "memory.swap");
                }
            };
            // The kernel keeps memsw >= memory at every step: raise swap first when the new
            // swap limit is above the current memory limit.
            let current = host
                .read("memory", "memory.limit_in_bytes")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            if limit != 0 && swap != 0 && (swap == -1 || current < swap as u64) {
                set_swap(p);
                set_limit(p);
            } else {
                set_limit(p);
                set_swap(p);
            }
            if reservation != 0 {
                p.write(
                    "memory",
                    "memory.soft_limit_in_bytes",
                    reservation,
                    "memory.reservation",
                );
            }
            if let Some(s) = m.swappiness() {
                p.write("memory", "memory.swappiness", s, "memory.swappiness");
            }
            if m.disable_oom_killer() == Some(true) {
                p.write("memory", "memory.oom_control", 1, "memory.disableOOMKiller");
            }
        }
        Ver::V2 => {
            let swap_max = swap_to_v2(swap, limit)?;
            if swap_max != 0 {
                if host.exists("memory", "memory.swap.max") {
                    p.write("memory", "memory.swap.max", max_or(swap_max), "memory.swap");
                } else if swap != 0 {
                    p.ignore("memory.swap", "swap accounting is not enabled on this host");
                }
            }
            if limit != 0 {
                p.write("memory", "memory.max", max_or(limit), "memory.limit");
            }
            if reservation != 0 {
                p.write(
                    "memory",
                    "memory.low",
                    max_or(reservation),
                    "memory.reservation",
                );
            }
            if m.swappiness().is_some() {
                p.ignore("memory.swappiness", "not supported by cgroup v2");
            }
            if m.disable_oom_killer() == Some(true) {
                p.ignore("memory.disableOOMKiller", "not supported by cgroup v2");
            }
        }
    }
    Ok(())
}

fn cpu(r: &LinuxResources, host: &dyn Host, p: &mut Planned) {
    let Some(c) = r.cpu() else { return };
    let shares = c.shares().unwrap_or(0);
    let quota = c.quota().unwrap_or(0);
    let period = c.period().unwrap_or(0);
    let rt_period = c.realtime_period().unwrap_or(0);
    let rt_runtime = c.realtime_runtime().unwrap_or(0);
    let wants = shares != 0
        || quota != 0
        || period != 0
        || rt_period != 0
        || rt_runtime != 0
        || c.burst().is_some()
        || c.idle().is_some();
    let Some(ver) = host.version("cpu") else {
        if wants {
            missing(p, "cpu", "cpu");
        }
        return;
    };
    match ver {
        Ver::V1 => {
            for (v, file, field) in [
                (rt_period as i64, "cpu.rt_period_us", "cpu.realtimePeriod"),
                (rt_runtime, "cpu.rt_runtime_us", "cpu.realtimeRuntime"),
            ] {
                if v == 0 {
                    continue;
                }
                if host.exists("cpu", file) {
                    p.write("cpu", file, v, field);
                } else {
                    p.ignore(
                        field,
                        "realtime scheduling groups are not enabled in this kernel",
                    );
                }
            }
            if shares != 0 {
                p.write("cpu", "cpu.shares", shares, "cpu.shares").verify = true;
            }
            if period != 0 {
                p.write("cpu", "cpu.cfs_period_us", period, "cpu.period")
                    .retry_after_next = quota != 0;
            }
            if quota != 0 {
                p.write("cpu", "cpu.cfs_quota_us", quota, "cpu.quota");
            }
            if let Some(b) = c.burst() {
                if host.exists("cpu", "cpu.cfs_burst_us") {
                    p.write("cpu", "cpu.cfs_burst_us", b, "cpu.burst");
                } else {
                    p.ignore("cpu.burst", "not supported by this kernel");
                }
            }
            if let Some(i) = c.idle() {
                if host.exists("cpu", "cpu.idle") {
                    p.write("cpu", "cpu.idle", i, "cpu.idle");
                } else {
                    p.ignore("cpu.idle", "not supported by this kernel");
                }
            }
        }
        Ver::V2 => {
            if rt_period != 0 || rt_runtime != 0 {
                p.ignore(
                    "cpu.realtimeRuntime",
                    "realtime limits are not supported by cgroup v2",
                );
            }
            if shares != 0 {
                p.write("cpu", "cpu.weight", shares_to_weight(shares), "cpu.shares");
            }
            if quota != 0 || period != 0 {
                let mut v = if quota > 0 {
                    quota.to_string()
                } else {
                    "max".to_string()
                };
                if period != 0 {
                    v = format!("{v} {period}");
                }
                p.write("cpu", "cpu.max", v, "cpu.quota");
            }
            if let Some(b) = c.burst() {
                if host.exists("cpu", "cpu.max.burst") {
                    p.write("cpu", "cpu.max.burst", b, "cpu.burst");
                } else {
                    p.ignore("cpu.burst", "not supported by this kernel");
                }
            }
            if let Some(i) = c.idle() {
                p.write("cpu", "cpu.idle", i, "cpu.idle");
            }
        }
    }
}

fn pids(r: &LinuxResources, host: &dyn Host, p: &mut Planned) {
    let Some(limit) = r.pids().map(|x| x.limit()).filter(|l| *l != 0) else {
        return;
    };
    if host.version("pids").is_some() {
        p.write("pids", "pids.max", max_or(limit), "pids.limit");
    } else {
        missing(p, "pids", "pids");
    }
}

fn device_line(d: &LinuxThrottleDevice, v2_key: Option<&str>) -> String {
    match v2_key {
        Some(k) if d.rate() == 0 => format!("{}:{} {k}=max", d.major(), d.minor()),
        Some(k) => format!("{}:{} {k}={}", d.major(), d.minor(), d.rate()),
        None => format!("{}:{} {}", d.major(), d.minor(), d.rate()),
    }
}

fn blkio(r: &LinuxResources, host: &dyn Host, p: &mut Planned) {
    let Some(b) = r.block_io() else { return };
    let throttles = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
            "blockIO.throttleReadBpsDevice",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
            "blockIO.throttleWriteBpsDevice",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
            "blockIO.throttleReadIOPSDevice",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
            "blockIO.throttleWriteIOPSDevice",
        ),
    ];
    let weight = b.weight().unwrap_or(0);
    let leaf = b.leaf_weight().unwrap_or(0);
    let devices = b.weight_device().as_deref().unwrap_or(&[]);
    let wants = weight != 0
        || leaf != 0
        || !devices.is_empty()
        || throttles
            .iter()
            .any(|t| t.0.as_ref().is_some_and(|v| !v.is_empty()));
    let (ctl, ver) = match (host.version("blkio"), host.version("io")) {
        (Some(v), _) => ("blkio", v),
        (None, Some(v)) => ("io", v),
        (None, None) => {
            if wants {
                missing(p, "blockIO", "blkio/io");
            }
            return;
        }
    };
    match ver {
        Ver::V1 => {
            let (wfile, dfile) = if host.exists(ctl, "blkio.weight") {
                ("blkio.weight", "blkio.weight_device")
            } else if host.exists(ctl, "blkio.bfq.weight") {
                ("blkio.bfq.weight", "blkio.bfq.weight_device")
            } else {
                ("", "")
            };
            if weight != 0 {
                if wfile.is_empty() {
                    p.ignore(
                        "blockIO.weight",
                        "no I/O scheduler with weights on this host",
                    );
                } else {
                    p.write(ctl, wfile, weight, "blockIO.weight");
                }
            }
            if leaf != 0 {
                if host.exists(ctl, "blkio.leaf_weight") {
                    p.write(ctl, "blkio.leaf_weight", leaf, "blockIO.leafWeight");
                } else {
                    p.ignore("blockIO.leafWeight", "not supported by this kernel");
                }
            }
            for (i, d) in devices.iter().enumerate() {
                let field = format!("blockIO.weightDevice[{i}]");
                if let Some(w) = d.weight() {
                    if dfile.is_empty() {
                        p.ignore(&field, "no I/O scheduler with weights on this host");
                    } else {
                        let v = format!("{}:{} {w}", d.major(), d.minor());
                        p.write(ctl, dfile, v, &field);
                    }
                }
                if let Some(w) = d.leaf_weight() {
                    if host.exists(ctl, "blkio.leaf_weight_device") {
                        let v = format!("{}:{} {w}", d.major(), d.minor());
                        p.write(ctl, "blkio.leaf_weight_device", v, &field);
                    } else {
                        p.ignore(
                            &format!("{field}.leafWeight"),
                            "not supported by this kernel",
                        );
                    }
                }
            }
            for (list, file, _, field) in &throttles {
                for (i, d) in list.iter().flatten().enumerate() {
                    p.write(ctl, file, device_line(d, None), &format!("{field}[{i}]"));
                }
            }
        }
        Ver::V2 => {
            let bfq = host.exists(ctl, "io.bfq.weight");
            if weight != 0 {
                if bfq {
                    p.write(ctl, "io.bfq.weight", weight, "blockIO.weight");
                } else if host.exists(ctl, "io.weight") {
                    p.write(
                        ctl,
                        "io.weight",
                        blkio_weight_to_io_weight(weight),
                        "blockIO.weight",
                    );
                } else {
                    p.ignore(
                        "blockIO.weight",
                        "no I/O scheduler with weights on this host",
                    );
                }
            }
            if leaf != 0 {
                p.ignore("blockIO.leafWeight", "not supported by cgroup v2");
            }
            for (i, d) in devices.iter().enumerate() {
                let field = format!("blockIO.weightDevice[{i}]");
                match d.weight() {
                    Some(w) if bfq => {
                        let v = format!("{}:{} {w}", d.major(), d.minor());
                        p.write(ctl, "io.bfq.weight", v, &field);
                    }
                    Some(_) => p.ignore(&field, "per-device weights need the BFQ scheduler"),
                    None => {}
                }
            }
            for (list, _, key, field) in &throttles {
                for (i, d) in list.iter().flatten().enumerate() {
                    p.write(
                        ctl,
                        "io.max",
                        device_line(d, Some(key)),
                        &format!("{field}[{i}]"),
                    );
                }
            }
        }
    }
}

fn hugetlb(r: &LinuxResources, host: &dyn Host, p: &mut Planned) {
    let limits = r.hugepage_limits().as_deref().unwrap_or(&[]);
    if limits.is_empty() {
        return;
    }
    let Some(ver) = host.version("hugetlb") else {
        missing(p, "hugepageLimits", "hugetlb");
        return;
    };
    let sizes = host.hugepage_sizes();
    for (i, h) in limits.iter().enumerate() {
        let field = format!("hugepageLimits[{i}]");
        if !sizes.iter().any(|s| s == h.page_size()) {
            p.ignore(
                &field,
                format!(
                    "huge page size {} is not supported by this host",
                    h.page_size()
                ),
            );
            continue;
        }
        let file = match ver {
            Ver::V1 => format!("hugetlb.{}.limit_in_bytes", h.page_size()),
            Ver::V2 => format!("hugetlb.{}.max", h.page_size()),
        };
        p.write("hugetlb", &file, max_or(h.limit()), &field);
    }
}

fn network(r: &LinuxResources, host: &dyn Host, p: &mut Planned) {
    let Some(n) = r.network() else { return };
    if let Some(id) = n.class_id() {
        if host.version("net_cls") == Some(Ver::V1) {
            p.write("net_cls", "net_cls.classid", id, "network.classID");
        } else {
            missing(p, "network.classID", "net_cls");
        }
    }
    for (i, prio) in n.priorities().iter().flatten().enumerate() {
        let field = format!("network.priorities[{i}]");
        if host.version("net_prio") == Some(Ver::V1) {
            let v = format!("{} {}", prio.name(), prio.priority());
            p.write("net_prio", "net_prio.ifpriomap", v, &field);
        } else {
            missing(p, &field, "net_prio");
        }
    }
}

fn unified(r: &LinuxResources, host: &dyn Host, p: &mut Planned) -> Result<()> {
    let Some(map) = r.unified().as_ref().filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    // Stable order (the map has none), so repeated runs write identically.
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let ctl = key.split('.').next().unwrap_or_default();
        let field = format!("unified[{key:?}]");
        let on_v2 = ctl == "cgroup" || host.version(ctl) == Some(Ver::V2);
        if !on_v2 {
            // runc's words: unified keys on a v1 controller are a configuration error.
            return Err(Error::config(
                format!("linux.resources.{field}"),
                format!("the {ctl} controller is not on cgroup v2 here (cgroup v1 cannot take unified keys)"),
            ));
        }
        p.write(ctl, key, &map[key], &field);
    }
    Ok(())
}

#[cfg(test)]
#[path = "resources_tests.rs"]
mod tests;
