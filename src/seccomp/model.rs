//! Validation and resolution of the runtime-spec seccomp object into action groups.
//!
//! Pure: the input is the parsed `LinuxSeccomp`, the output a [`Model`]: the default return
//! value, the groups of rules (one per distinct return value) in chain order, the highest
//! syscall number the profile names, the load flags and the warnings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::syscalls::NativeArch;
use crate::error::{Error, Result};
use crate::sys::seccomp::FilterFlags;

/// A seccomp return value: action in the upper 16 bits, data (errno, trace value) below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Ret(pub u32);

impl Ret {
    pub const KILL_PROCESS: Ret = Ret(libc::SECCOMP_RET_KILL_PROCESS);
    pub const KILL_THREAD: Ret = Ret(libc::SECCOMP_RET_KILL_THREAD);
    pub const TRAP: Ret = Ret(libc::SECCOMP_RET_TRAP);
    pub const USER_NOTIF: Ret = Ret(libc::SECCOMP_RET_USER_NOTIF);
    pub const LOG: Ret = Ret(libc::SECCOMP_RET_LOG);
    pub const ALLOW: Ret = Ret(libc::SECCOMP_RET_ALLOW);
    /// What foreign-table calls and syscalls newer than the profile get.
    pub const ENOSYS: Ret = Ret(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);

    /// `SECCOMP_RET_ERRNO` with `errno`.
    pub fn errno(errno: u16) -> Ret {
        Ret(libc::SECCOMP_RET_ERRNO | u32::from(errno))
    }

    /// `SECCOMP_RET_TRACE` with `data`.
    pub fn trace(data: u16) -> Ret {
        Ret(libc::SECCOMP_RET_TRACE | u32::from(data))
    }

    /// The kernel's precedence rank: the action bits read as a signed number, smaller wins
    /// (KILL_PROCESS < KILL_THREAD < TRAP < ERRNO < USER_NOTIF < TRACE < LOG < ALLOW).
    pub fn rank(self) -> i32 {
        (self.0 & libc::SECCOMP_RET_ACTION_FULL) as i32
    }

    /// Whether this is an ERRNO return.
    pub fn is_errno(self) -> bool {
        self.0 & libc::SECCOMP_RET_ACTION_FULL == libc::SECCOMP_RET_ERRNO
    }
}

/// An argument comparison, on the full 64-bit argument (as libseccomp compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & mask) == value`.
    MaskedEq(u64),
}

/// One condition of a rule: `args[index] <op> value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cond {
    pub index: u8,
    pub op: Op,
    pub value: u64,
}

/// Which calls of one syscall a group matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Matcher {
    /// Every call.
    All,
    /// Calls meeting every condition of at least one of the lists.
    Any(Vec<Vec<Cond>>),
}

/// Every rule of the profile with one return value, by syscall number.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub ret: Ret,
    /// Index of the first rule with this return value (ties between equal ranks go to the
    /// group that appears first).
    pub first_rule: usize,
    pub syscalls: BTreeMap<u32, Matcher>,
}

/// The profile resolved for the native architecture.
#[derive(Debug, Clone)]
pub(crate) struct Model {
    /// What calls matching no rule get.
    pub default: Ret,
    /// Groups in chain order: strongest rank first, then first appearance.
    pub groups: Vec<Group>,
    /// The highest syscall number the profile names (any action), when it names one.
    pub max_nr: Option<u32>,
    /// Flags for the load.
    pub flags: FilterFlags,
    /// Whether any rule uses `SCMP_ACT_NOTIFY`.
    pub notify: bool,
    pub listener_path: Option<PathBuf>,
    pub listener_metadata: Option<String>,
    /// Resolved (rule, syscall) pairs by action name.
    pub rule_counts: BTreeMap<String, usize>,
    pub warnings: Vec<String>,
}

/// Syscalls the init still makes between loading the filter and `execve` (handing over the
/// listener fd, `Ready`, waiting for `start`): a NOTIFY rule on them waits for an agent that
/// has no fd yet.
const INIT_SYSCALLS_AFTER_LOAD: &[&str] = &[
    "read",
    "write",
    "close",
    "sendmsg",
    "recvmsg",
    "sendto",
    "recvfrom",
    "execve",
    "execveat",
    "exit_group",
    "exit",
    "futex",
    "rt_sigprocmask",
    "rt_sigaction",
];

const FIELD: &str = "linux.seccomp";

/// The return value of `action` with its optional errno/trace data. `field` names the
/// errnoRet field for errors.
fn resolve_action(action: LinuxSeccompAction, data: Option<u32>, field: &str) -> Result<Ret> {
    use LinuxSeccompAction as A;
    let data = match (action, data) {
        (A::ScmpActErrno | A::ScmpActTrace, Some(d)) => u16::try_from(d).map_err(|_| {
            Error::config(
                field,
                format!("{d} does not fit the 16-bit seccomp return data"),
            )
        })?,
        (A::ScmpActErrno | A::ScmpActTrace, None) => libc::EPERM as u16,
        (other, Some(_)) => {
            return Err(Error::config(
                field,
                format!("{other} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"),
            ))
        }
        (_, None) => 0,
    };
    Ok(match action {
        A::ScmpActKill | A::ScmpActKillThread => Ret::KILL_THREAD,
        A::ScmpActKillProcess => Ret::KILL_PROCESS,
        A::ScmpActTrap => Ret::TRAP,
        A::ScmpActErrno => Ret::errno(data),
        A::ScmpActNotify => Ret::USER_NOTIF,
        A::ScmpActTrace => Ret::trace(data),
        A::ScmpActLog => Ret::LOG,
        A::ScmpActAllow => Ret::ALLOW,
    })
}

fn resolve_op(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (Op, u64) {
    use LinuxSeccompOperator as O;
    match op {
        O::ScmpCmpEq => (Op::Eq, value),
        O::ScmpCmpNe => (Op::Ne, value),
        O::ScmpCmpLt => (Op::Lt, value),
        O::ScmpCmpLe => (Op::Le, value),
        O::ScmpCmpGt => (Op::Gt, value),
        O::ScmpCmpGe => (Op::Ge, value),
        // runtime-spec / libseccomp: `value` is the mask, `valueTwo` the datum.
        O::ScmpCmpMaskedEq => (Op::MaskedEq(value), value_two.unwrap_or(0)),
    }
}

fn resolve_flags(flags: &[LinuxSeccompFilterFlag]) -> FilterFlags {
    let mut out = FilterFlags::EMPTY;
    for flag in flags {
        out |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FilterFlags::LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FilterFlags::TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FilterFlags::SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                FilterFlags::WAIT_KILLABLE_RECV
            }
        };
    }
    out
}

/// Validate `seccomp` and resolve it for `arch`.
pub(crate) fn resolve(seccomp: &LinuxSeccomp, arch: &NativeArch) -> Result<Model> {
    let mut warnings = Vec::new();
    let default = resolve_action(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        &format!("{FIELD}.defaultErrnoRet"),
    )?;
    if default == Ret::USER_NOTIF {
        return Err(Error::config(
            format!("{FIELD}.defaultAction"),
            "SCMP_ACT_NOTIFY cannot be the default action: the runtime's own calls after \
             loading would wait for an agent that has no listener fd yet",
        ));
    }
    if seccomp.listener_metadata().is_some() && seccomp.listener_path().is_none() {
        return Err(Error::config(
            format!("{FIELD}.listenerMetadata"),
            "must not be set without listenerPath",
        ));
    }

    for a in seccomp.architectures().iter().flatten() {
        if arch.compat.contains(a) {
            warnings.push(format!(
                "{FIELD}.architectures: {a} is accepted but its syscall table is refused: \
                 its calls fail with ENOSYS"
            ));
        }
    }

    let mut groups: Vec<Group> = Vec::new();
    let mut rule_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut unknown: Vec<&str> = Vec::new();
    let mut max_nr: Option<u32> = None;
    let mut notify_names: BTreeSet<&str> = BTreeSet::new();

    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        let field = format!("{FIELD}.syscalls[{i}]");
        let ret = resolve_action(
            rule.action(),
            rule.errno_ret(),
            &format!("{field}.errnoRet"),
        )?;
        if rule.names().is_empty() {
            return Err(Error::config(
                format!("{field}.names"),
                "must contain at least one syscall name",
            ));
        }
        // Each condition, with whether it can ever hold.
        let mut conds: Vec<(Cond, bool)> = Vec::new();
        for (j, arg) in rule.args().iter().flatten().enumerate() {
            let index = u8::try_from(arg.index())
                .ok()
                .filter(|i| *i <= 5)
                .ok_or_else(|| {
                    Error::config(
                        format!("{field}.args[{j}].index"),
                        format!("{} is not a syscall argument index (0 to 5)", arg.index()),
                    )
                })?;
            let (op, value) = resolve_op(arg.op(), arg.value(), arg.value_two());
            let mut satisfiable = true;
            match op {
                Op::MaskedEq(mask) if value & !mask != 0 => {
                    satisfiable = false;
                    warnings.push(format!(
                        "{field}.args[{j}]: valueTwo {value:#x} has bits outside the mask \
                         {mask:#x}, the rule can never match and is skipped"
                    ));
                }
                Op::MaskedEq(_) => {}
                _ if arg.value_two().is_some_and(|v| v != 0) => warnings.push(format!(
                    "{field}.args[{j}].valueTwo: ignored by {}",
                    arg.op()
                )),
                _ => {}
            }
            conds.push((Cond { index, op, value }, satisfiable));
        }
        let alternatives = alternatives(&conds);

        let group = match groups.iter().position(|g| g.ret == ret) {
            Some(g) => g,
            None => {
                groups.push(Group {
                    ret,
                    first_rule: i,
                    syscalls: BTreeMap::new(),
                });
                groups.len() - 1
            }
        };
        for (j, name) in rule.names().iter().enumerate() {
            if name.is_empty() {
                return Err(Error::config(
                    format!("{field}.names[{j}]"),
                    "empty syscall name",
                ));
            }
            let Some(nr) = arch.lookup(name) else {
                unknown.push(name);
                continue;
            };
            max_nr = max_nr.max(Some(nr));
            *rule_counts.entry(rule.action().to_string()).or_default() += 1;
            if ret == Ret::USER_NOTIF {
                // The runtime itself writes after loading the filter (to report, to the
                // log): a write that waits for an agent would hang it. runc refuses too.
                if name == "write" {
                    return Err(Error::config(
                        format!("{field}.names[{j}]"),
                        "SCMP_ACT_NOTIFY cannot be used for the write syscall",
                    ));
                }
                notify_names.insert(name);
            }
            if alternatives.is_empty() {
                continue;
            }
            let entry = groups[group].syscalls.entry(nr);
            let matcher = entry.or_insert_with(|| Matcher::Any(Vec::new()));
            match matcher {
                Matcher::All => {}
                Matcher::Any(_) if conds.is_empty() => *matcher = Matcher::All,
                Matcher::Any(lists) => lists.extend(alternatives.iter().cloned()),
            }
        }
    }
    groups.retain(|g| !g.syscalls.is_empty());

    if !unknown.is_empty() {
        unknown.sort_unstable();
        unknown.dedup();
        warnings.push(format!(
            "{FIELD}.syscalls: {} syscall name(s) unknown on {} skipped: {}",
            unknown.len(),
            arch.name,
            unknown.join(", ")
        ));
    }

    let notify = groups.iter().any(|g| g.ret == Ret::USER_NOTIF);
    if notify && seccomp.listener_path().is_none() {
        return Err(Error::config(
            format!("{FIELD}.listenerPath"),
            "required when a rule uses SCMP_ACT_NOTIFY",
        ));
    }
    let risky: Vec<&str> = INIT_SYSCALLS_AFTER_LOAD
        .iter()
        .copied()
        .filter(|n| notify_names.contains(n))
        .collect();
    if !risky.is_empty() {
        warnings.push(format!(
            "{FIELD}.syscalls: SCMP_ACT_NOTIFY on {} which the runtime itself calls before \
             the agent has the listener fd; the container may hang",
            risky.join(", ")
        ));
    }

    let mut flags = resolve_flags(seccomp.flags().as_deref().unwrap_or_default());
    if notify {
        flags |= FilterFlags::NEW_LISTENER;
        if flags.contains(FilterFlags::TSYNC) {
            flags |= FilterFlags::TSYNC_ESRCH;
        }
    } else if flags.contains(FilterFlags::WAIT_KILLABLE_RECV) {
        flags = flags.without(FilterFlags::WAIT_KILLABLE_RECV);
        warnings.push(format!(
            "{FIELD}.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored: no rule uses \
             SCMP_ACT_NOTIFY"
        ));
    }

    Ok(Model {
        default,
        groups: chain_order(groups, default),
        max_nr,
        flags,
        notify,
        listener_path: if notify {
            seccomp.listener_path().clone()
        } else {
            None
        },
        listener_metadata: if notify {
            seccomp.listener_metadata().clone()
        } else {
            None
        },
        rule_counts,
        warnings,
    })
}

/// The condition lists one rule contributes (a call matches when every condition of one list
/// holds). Normally one list, all conditions ANDed. When two conditions test the same argument,
/// each condition becomes a list of its own (OR), as runc does with libseccomp, which cannot
/// AND two comparisons of one argument: profiles written for runc mean "any of these values".
/// Conditions that can never hold are dropped; an empty result means the rule never matches.
fn alternatives(conds: &[(Cond, bool)]) -> Vec<Vec<Cond>> {
    let same_index = conds
        .iter()
        .enumerate()
        .any(|(i, (a, _))| conds[..i].iter().any(|(b, _)| b.index == a.index));
    if same_index {
        return conds
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(c, _)| vec![*c])
            .collect();
    }
    if conds.iter().all(|(_, ok)| *ok) {
        vec![conds.iter().map(|(c, _)| *c).collect()]
    } else {
        Vec::new()
    }
}

/// Order groups for a first-match chain: strongest kernel rank first, equal ranks by first
/// appearance in `syscalls`. Then drop groups that cannot change a result: a group whose
/// return value is the default's and none of whose syscalls appears in a later group (a call
/// matching it would fall through to the same default).
fn chain_order(mut groups: Vec<Group>, default: Ret) -> Vec<Group> {
    groups.sort_by_key(|g| (g.ret.rank(), g.first_rule));
    let mut later: BTreeSet<u32> = BTreeSet::new();
    let mut kept: Vec<Group> = Vec::with_capacity(groups.len());
    for g in groups.into_iter().rev() {
        if g.ret == default && g.syscalls.keys().all(|nr| !later.contains(nr)) {
            continue;
        }
        later.extend(g.syscalls.keys().copied());
        kept.push(g);
    }
    kept.reverse();
    kept
}
