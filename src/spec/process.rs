//! The container process (or an `exec`'d process): identity, capabilities, limits, terminal,
//! environment and command, resolved from `process` in the config (or a process.json).

use std::ffi::CString;
use std::path::PathBuf;

use caps::{Capability as Cap, CapsHashSet};
use oci_spec::runtime::{
    Capabilities, IOPriorityClass, LinuxSchedulerFlag, LinuxSchedulerPolicy, PosixRlimitType,
    Process,
};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Terminal window size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WinSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// `process.scheduler`, resolved to the kernel's numbers (`sched_setattr(2)`'s fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Scheduler {
    /// `SCHED_*` policy.
    pub policy: u32,
    /// `SCHED_FLAG_*`.
    pub flags: u64,
    /// Nice value (SCHED_OTHER/BATCH).
    pub nice: i32,
    /// Static priority (SCHED_FIFO/RR).
    pub priority: u32,
    /// SCHED_DEADLINE runtime.
    pub runtime: u64,
    /// SCHED_DEADLINE deadline.
    pub deadline: u64,
    /// SCHED_DEADLINE period.
    pub period: u64,
}

/// The five capability sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapSets {
    /// Bounding set: dropped first, while the init is still fully privileged.
    #[serde(with = "super::ser::caps_mask")]
    pub bounding: CapsHashSet,
    /// Effective.
    #[serde(with = "super::ser::caps_mask")]
    pub effective: CapsHashSet,
    /// Permitted.
    #[serde(with = "super::ser::caps_mask")]
    pub permitted: CapsHashSet,
    /// Inheritable.
    #[serde(with = "super::ser::caps_mask")]
    pub inheritable: CapsHashSet,
    /// Ambient.
    #[serde(with = "super::ser::caps_mask")]
    pub ambient: CapsHashSet,
}

/// Everything about the process that will be executed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessPlan {
    /// argv.
    #[serde(with = "super::ser::cstrings")]
    pub args: Vec<CString>,
    /// envp, exactly `process.env`.
    #[serde(with = "super::ser::cstrings")]
    pub env: Vec<CString>,
    /// The `PATH` from `process.env`, for finding `args[0]`.
    pub path_var: Option<String>,
    /// Working directory inside the container.
    pub cwd: PathBuf,
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// `setgroups` is denied in the container's user namespace (rootless, gid map written
    /// without newgidmap): the groups are left as they are instead of set to the empty list.
    #[serde(default)]
    pub setgroups_denied: bool,
    /// umask, if set.
    pub umask: Option<u32>,
    /// Capability sets.
    pub caps: CapSets,
    /// The kernel's highest capability number (from the host): every capability up to it that
    /// is not in the bounding set is dropped from it, including ones this build has no name for.
    pub cap_last_cap: u8,
    /// Capability names from the config this kernel does not know (skipped, logged at debug).
    pub unknown_to_kernel: Vec<String>,
    /// no_new_privs.
    pub no_new_privileges: bool,
    /// `(resource, soft, hard)`.
    pub rlimits: Vec<(u32, u64, u64)>,
    /// oom_score_adj.
    pub oom_score_adj: Option<i32>,
    /// Allocate a pty.
    pub terminal: bool,
    /// Initial console size.
    pub console_size: Option<WinSize>,
    /// Scheduler attributes.
    pub scheduler: Option<Scheduler>,
    /// I/O priority `(class, level)`.
    pub io_priority: Option<(u32, u32)>,
}

impl ProcessPlan {
    /// The capability numbers to drop from the bounding set: every number the host kernel
    /// knows (up to [`ProcessPlan::cap_last_cap`]) that the bounding set does not hold.
    pub fn bounding_drop(&self) -> Vec<u8> {
        (0..=self.cap_last_cap)
            .filter(|n| !self.caps.bounding.iter().any(|c| c.index() == *n))
            .collect()
    }

    /// Whether the process may hold `cap`: it is in any of the five sets.
    pub fn has_cap(&self, cap: Cap) -> bool {
        let c = &self.caps;
        [
            &c.bounding,
            &c.effective,
            &c.permitted,
            &c.inheritable,
            &c.ambient,
        ]
        .iter()
        .any(|set| set.contains(&cap))
    }
}

/// Convert oci-spec capability names to `caps` values; names this kernel lacks go to `unknown`.
fn to_caps(set: &Option<Capabilities>, last: u8, unknown: &mut Vec<String>) -> CapsHashSet {
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = format!("CAP_{c}");
        match name.parse::<Cap>() {
            Ok(cap) if cap.index() <= last => {
                out.insert(cap);
            }
            _ => {
                if !unknown.contains(&name) {
                    unknown.push(name);
                }
            }
        }
    }
    out
}

/// Parse capability names given on the command line (`exec --cap`), with or without `CAP_`.
pub fn parse_capabilities(names: &[String], field: &str) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for (i, n) in names.iter().enumerate() {
        let cap = caps::to_canonical(n).parse::<Cap>().map_err(|_| {
            Error::config(format!("{field}[{i}]"), format!("unknown capability {n}"))
        })?;
        out.insert(cap);
    }
    Ok(out)
}

// The RLIMIT_* constants are u32 on glibc and c_int on musl.
#[allow(clippy::unnecessary_cast)]
fn rlimit_resource(t: PosixRlimitType) -> u32 {
    (match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as u32
}

fn cstrings(list: &[String], field: &str) -> Result<Vec<CString>> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::config(format!("{field}[{i}]"), "contains a NUL byte"))
        })
        .collect()
}

fn scheduler(p: &Process) -> Result<Option<Scheduler>> {
    let Some(s) = p.scheduler() else {
        return Ok(None);
    };
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER,
        LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO,
        LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR,
        LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH,
        LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE,
        LinuxSchedulerPolicy::SchedDeadline => 6,
        LinuxSchedulerPolicy::SchedIso => {
            return Err(Error::Unsupported(
                "process.scheduler.policy: SCHED_ISO is not implemented by Linux".into(),
            ))
        }
    } as u32;
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(Error::config(
            "process.scheduler.nice",
            "must be in -20..19",
        ));
    }
    Ok(Some(Scheduler {
        policy,
        flags,
        nice,
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    }))
}

/// Resolve `process` (pure). `field` is the JSON prefix for messages (`process`).
pub fn plan_process(p: &Process, field: &str, cap_last_cap: u8) -> Result<ProcessPlan> {
    let f = |x: &str| format!("{field}.{x}");
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(Error::config(f("args"), "must name the program to run"));
    }
    let env_list = p.env().clone().unwrap_or_default();
    for (i, e) in env_list.iter().enumerate() {
        if !e.contains('=') {
            return Err(Error::config(
                format!("{}[{i}]", f("env")),
                format!("{e:?} is not KEY=value"),
            ));
        }
    }
    let path_var = env_list
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH=").map(str::to_string));
    let cwd = p.cwd().clone();
    if !cwd.is_absolute() {
        return Err(Error::config(
            f("cwd"),
            format!("{} is not an absolute path", cwd.display()),
        ));
    }
    let last = cap_last_cap;
    let mut unknown = Vec::new();
    let caps = match p.capabilities() {
        Some(c) => CapSets {
            bounding: to_caps(c.bounding(), last, &mut unknown),
            effective: to_caps(c.effective(), last, &mut unknown),
            permitted: to_caps(c.permitted(), last, &mut unknown),
            inheritable: to_caps(c.inheritable(), last, &mut unknown),
            ambient: to_caps(c.ambient(), last, &mut unknown),
        },
        None => CapSets::default(),
    };
    let mut rlimits = Vec::new();
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        if r.soft() > r.hard() {
            return Err(Error::config(
                format!("{}[{i}].soft", f("rlimits")),
                format!("{} exceeds hard limit {}", r.soft(), r.hard()),
            ));
        }
        let res = rlimit_resource(r.typ());
        if rlimits.iter().any(|(x, _, _)| *x == res) {
            return Err(Error::config(
                format!("{}[{i}].type", f("rlimits")),
                format!("{} given twice", r.typ()),
            ));
        }
        rlimits.push((res, r.soft(), r.hard()));
    }
    if let Some(adj) = p.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(Error::config(f("oomScoreAdj"), "must be in -1000..1000"));
        }
    }
    let io_priority = match p.io_priority() {
        Some(io) => {
            let class = match io.class() {
                IOPriorityClass::IoprioClassRt => 1,
                IOPriorityClass::IoprioClassBe => 2,
                IOPriorityClass::IoprioClassIdle => 3,
            };
            if !(0..=7).contains(&io.priority()) {
                return Err(Error::config(f("ioPriority.priority"), "must be in 0..7"));
            }
            Some((class, io.priority() as u32))
        }
        None => None,
    };
    let user = p.user();
    Ok(ProcessPlan {
        args: cstrings(&args, &f("args"))?,
        env: cstrings(&env_list, &f("env"))?,
        path_var,
        cwd,
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        setgroups_denied: false,
        umask: user.umask(),
        caps,
        cap_last_cap,
        unknown_to_kernel: unknown,
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        rlimits,
        oom_score_adj: p.oom_score_adj(),
        terminal: p.terminal().unwrap_or(false),
        console_size: p.console_size().map(|b| WinSize {
            rows: b.height().min(u16::MAX as u64) as u16,
            cols: b.width().min(u16::MAX as u64) as u16,
        }),
        scheduler: scheduler(p)?,
        io_priority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(json: &str) -> Process {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn empty_args_are_rejected() {
        let p = process(r#"{"cwd":"/","user":{"uid":0,"gid":0},"args":[]}"#);
        let err = plan_process(&p, "process", 40).unwrap_err();
        assert!(err.to_string().contains("process.args"), "{err}");
    }

    #[test]
    fn relative_cwd_is_rejected() {
        let p = process(r#"{"cwd":"tmp","user":{"uid":0,"gid":0},"args":["sh"]}"#);
        assert!(plan_process(&p, "process", 40)
            .unwrap_err()
            .to_string()
            .contains("process.cwd"));
    }

    #[test]
    fn path_comes_from_process_env_only() {
        let p = process(
            r#"{"cwd":"/","user":{"uid":1,"gid":2,"additionalGids":[3]},"args":["sh"],
                "env":["A=1","PATH=/bin:/usr/bin"],"capabilities":{"bounding":["CAP_KILL"]}}"#,
        );
        let plan = plan_process(&p, "process", 40).unwrap();
        assert_eq!(plan.path_var.as_deref(), Some("/bin:/usr/bin"));
        assert_eq!(
            (plan.uid, plan.gid, plan.additional_gids.clone()),
            (1, 2, vec![3])
        );
        assert!(plan.caps.bounding.contains(&Cap::CAP_KILL));
        assert!(plan.caps.effective.is_empty());
    }

    #[test]
    fn soft_above_hard_names_the_rlimit() {
        let p = process(
            r#"{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh"],
                "rlimits":[{"type":"RLIMIT_NOFILE","soft":10,"hard":5}]}"#,
        );
        let err = plan_process(&p, "process", 40).unwrap_err().to_string();
        assert!(err.contains("process.rlimits[0].soft"), "{err}");
    }

    #[test]
    fn command_line_capabilities_accept_short_names() {
        let set = parse_capabilities(&["kill".into(), "CAP_CHOWN".into()], "--cap").unwrap();
        assert!(set.contains(&Cap::CAP_KILL) && set.contains(&Cap::CAP_CHOWN));
        assert!(parse_capabilities(&["nope".into()], "--cap").is_err());
    }
}
