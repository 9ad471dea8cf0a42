//! seccomp: the runtime-spec seccomp object compiled to classic BPF (sealrun's own generator),
//! the loader, the listener hand-off for `SCMP_ACT_NOTIFY`, and the shipped
//! profiles.
//!
//! [`compile`] runs in the parent before cloning and does all the work; `load` in the
//! container's init only passes ready programs to `seccomp(2)`.
//!
//! # Meaning
//!
//! For a call of the native architecture, in this order:
//! 1. a call through another syscall table — another `AUDIT_ARCH` (i386 through `int 0x80` on
//!    x86_64, arm32 on aarch64) or the x32 ABI (number with bit `0x40000000`) — fails with
//!    `ENOSYS`, as on a kernel built without that ABI, so a denylist cannot be bypassed
//!    through them. `ENOSYS` rather than a kill: a 32-bit helper that probes fails cleanly.
//!    The exception is i386 on x86_64 when `architectures` names `SCMP_ARCH_X86`, as
//!    libseccomp reads it: its calls get the same rules, by name, from the i386 table (names
//!    that table lacks, such as `socket` before its direct calls, simply do not apply; the
//!    multiplexed `socketcall` is matched only by name). `SCMP_ARCH_X32`/`ARM` in
//!    `architectures` are accepted with a warning; other foreign architectures are ignored
//!    (this host cannot run them). Rules 2 to 4 apply to each table on its own.
//! 2. if `defaultAction` is `SCMP_ACT_ERRNO`, a syscall numbered above the highest number the
//!    profile names fails with `ENOSYS` (not the default errno), so libc falls back to an older
//!    call (`clone3` → `clone`, `faccessat2` → `faccessat`), as runc does.
//! 3. a call matching rules gets the action of the matching rule that the kernel ranks
//!    strongest (KILL_PROCESS > KILL_THREAD > TRAP > ERRNO > NOTIFY > TRACE > LOG > ALLOW);
//!    between equal ranks with different data (ERRNO with different errnos, TRACE with
//!    different values) the action whose first rule comes first in `syscalls` wins. A rule
//!    matches when its syscall is called and all its `args` conditions hold (AND), except when
//!    two of them test the same argument: then any one condition suffices (OR), as runc and
//!    libseccomp read such rules (profiles written for them list allowed values that way);
//!    several rules for one syscall and action are alternatives (OR).
//! 4. any other call gets `defaultAction`.
//!
//! Rule 3 is how the kernel itself combines stacked filters, so it never depends on the order
//! of rules. Consequences worth knowing: an `SCMP_ACT_ALLOW` rule cannot carve an exception
//! out of a broader `SCMP_ACT_ERRNO` rule on the same syscall (the errno wins, as with
//! libseccomp where the unconditional rule wins), and in a denylist (`defaultAction` ALLOW) a
//! KILL rule beats an ERRNO rule on the same call. A rule whose action equals the default is
//! not dropped (runc drops it): where it overlaps a weaker rule, it wins.
//!
//! Arguments are compared on all 64 bits, as libseccomp does. `SCMP_CMP_MASKED_EQ` follows
//! the runtime-spec/libseccomp reading: `value` is the mask, `valueTwo` (default 0) the datum:
//! `(arg & value) == valueTwo`; a datum with bits outside the mask can never match, so such a
//! rule is skipped with a warning.
//!
//! # Construction: one program, the rules in chain order
//!
//! sealrun generates the classic BPF itself (bpf.rs). The rules are grouped by exact return
//! value (action plus errno/trace data) and the groups ordered as rule 3 ranks them —
//! strongest rank first, ties by first appearance. For each syscall number the program walks
//! that syscall's rules in this order and returns the value of the first whose conditions
//! hold, else the default: exactly the strongest matching action, which is what the same
//! groups loaded as stacked filters would yield under the kernel's precedence — but in one
//! filter:
//!
//! * one `seccomp(2)` call: with stacked filters every filter after the first must let the
//!   loader's own `seccomp(2)` through, so a profile that denies `seccomp` (not rare for
//!   allowlists) could not be loaded without weakening it;
//! * one walk per syscall instead of one per filter (each filter repeats the architecture check
//!   and the dispatch on the syscall number), and at most one `USER_NOTIF` listener, which the
//!   kernel requires anyway;
//! * calls whose answer is a constant ALLOW still hit the kernel's per-syscall action cache
//!   (the emulator follows the `jge` tree on the number), so most syscalls never run the
//!   program at all.
//!
//! The syscall number is dispatched once, by a balanced tree of `jge` over runs of numbers
//! (a run of numbers with one constant answer costs one comparison); a syscall with argument
//! conditions gets its own block, where equalities on one argument that share the high word
//! test it once and then cost one `jeq` each, as libseccomp's do. The cost-curve profiles
//! (the default plus 50, 300, 1000 one-argument rules) compile to 92, 326, 1175 and 1883
//! instructions (seccompiler's bodies took 167, 602, 2352 and 7087; libseccomp 321, 565,
//! 1409, 2113).
//!
//! Groups that cannot change a result are left out: a group with the default's return value
//! none of whose syscalls appears in a later group (in a denylist: the ALLOW rules), and a
//! syscall's last rules whose value is what no match returns anyway.
//! Rules 1 and 2: `ld arch; jeq native → native section; [jeq i386 → i386 section]; ret
//! ENOSYS`; in a section, the x32 numbers (from 0x40000000, unsigned) and, by rule 2, the
//! numbers above the profile's highest are runs of the tree answering ENOSYS; the i386
//! section has its own numbers. [`Compiled::filters`] stays a list (load
//! order) so that a future split of an over-long profile needs no API change.
//!
//! # Errors and warnings
//!
//! Unknown action, operator or architecture strings are already rejected by the parser
//! (oci-spec). [`compile`] rejects, naming the field: `errnoRet` on an action that takes no
//! errno or above 16 bits, an argument index above 5, empty `names` or an empty name,
//! `SCMP_ACT_NOTIFY` as default action or without `listenerPath`, `listenerMetadata` without
//! `listenerPath`, a program above 4096 instructions. Syscall names unknown on this
//! architecture are skipped and reported in [`Compiled::warnings`], like refused
//! architectures and ignored flags; the caller logs them.

mod bpf;
mod cache;
mod model;
mod profiles;
mod syscalls;
mod verdict;

#[cfg(test)]
mod generated_rules;
#[cfg(test)]
mod interp;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bpf;
#[cfg(test)]
mod tests_kernel;
#[cfg(test)]
mod tests_profiles;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use crate::error::{Context, Error, Result};
use crate::sys::seccomp::{seccomp_set_mode_filter, FilterFlags, SockFilter};

pub use profiles::{profile, PROFILE_NAMES};
pub use verdict::Verdict;

/// Syscalls whose [`Verdict`] every compiled profile records, for `sealrun check`, the audit
/// record and the operator policy: each one, allowed, reaches past a namespace or another layer.
pub const RISKY_SYSCALLS: &[&str] = &[
    "add_key",
    "bpf",
    "chroot",
    "delete_module",
    "finit_module",
    "fsmount",
    "fsopen",
    "init_module",
    "io_uring_setup",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "mount",
    "move_mount",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "reboot",
    "request_key",
    "setns",
    "swapon",
    "umount2",
    "unshare",
    "userfaultfd",
];

/// A compiled profile, ready to load in the container's init (and persisted in the Plan).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Compiled {
    /// Summary for the audit line.
    pub summary: Summary,
    /// BPF programs in load order (one today, see the module doc).
    pub filters: Vec<Filter>,
    /// Where the user-notification listener fd goes, when a rule uses `SCMP_ACT_NOTIFY`.
    pub listener: Option<Listener>,
    /// What was accepted but not applied (unknown syscall names, refused architectures,
    /// ignored flags), one message each, for the caller to log (not persisted).
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// What the program does with each of [`RISKY_SYSCALLS`] and the syscalls the caller
    /// asked about (names unknown on this architecture are absent). Empty for a program read
    /// back from the cache.
    pub verdicts: BTreeMap<String, Verdict>,
}

/// One BPF program and the flags it is loaded with (persisted as described in `cache.rs`).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The classic-BPF program.
    pub program: Vec<SockFilter>,
    /// `SECCOMP_FILTER_FLAG_*` for its `seccomp(2)` call (`NEW_LISTENER` on the filter that
    /// returns `USER_NOTIF`).
    pub flags: FilterFlags,
}

/// Where to send the listener fd of a profile that uses `SCMP_ACT_NOTIFY`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listener {
    /// `listenerPath`: the seccomp agent's unix socket.
    pub path: PathBuf,
    /// `listenerMetadata`, passed to the agent as is.
    pub metadata: Option<String>,
    /// Index in [`Compiled::filters`] of the filter loaded with `NEW_LISTENER`.
    pub filter: usize,
}

/// What the audit line reports about a profile.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// sha256 of the profile's canonical JSON (the seccomp object serialised by oci-spec).
    pub digest: String,
    /// Number of syscall rules, by action: one per (rule, syscall name known here).
    pub rules: BTreeMap<String, usize>,
    /// Number of stacked BPF filters.
    pub filters: usize,
    /// The default action (`SCMP_ACT_ERRNO`, ...).
    pub default_action: String,
    /// Total BPF instructions loaded.
    pub instructions: usize,
    /// Syscalls sealrun refuses (EPERM) on top of the profile, which allowed them
    /// (`open_by_handle_at` while Landlock confines the filesystem; see [`compile_with`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_denies: Vec<String>,
}

impl Compiled {
    /// Whether loading returns a listener fd to hand to the agent.
    pub fn uses_notify(&self) -> bool {
        self.listener.is_some()
    }
}

/// Compile a runtime-spec seccomp object (pure; runs in the parent before cloning).
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Compiled> {
    compile_with(seccomp, &[], &[])
}

/// [`compile`], refusing with `EPERM` each syscall of `deny` that the profile would allow for
/// some call ([`Verdict`] not `Never`), and recording the verdicts of [`RISKY_SYSCALLS`] and
/// `watch`. The summary (digest, rule counts) stays that of the profile as written; the
/// added refusals are listed in [`Summary::runtime_denies`].
///
/// The refusal is one `SCMP_ACT_ERRNO` rule appended to the profile: by the meaning above it
/// beats every ALLOW, LOG, TRACE or NOTIFY rule on the same call and yields to a KILL, TRAP
/// or earlier ERRNO rule, which refuse as well.
pub fn compile_with(seccomp: &LinuxSeccomp, deny: &[&str], watch: &[String]) -> Result<Compiled> {
    let arch = syscalls::native().ok_or_else(|| {
        Error::Unsupported(format!(
            "seccomp on {}: sealrun has no syscall table for it",
            std::env::consts::ARCH
        ))
    })?;
    let mut model = model::resolve(seccomp, arch)?;
    let rule_counts = model.rule_counts.clone();
    let runtime_denies: Vec<String> = deny
        .iter()
        .filter(|name| {
            arch.lookup(name)
                .is_some_and(|nr| verdict::verdict(&model, nr) != Verdict::Never)
        })
        .map(|name| name.to_string())
        .collect();
    let mut hardened = None;
    if !runtime_denies.is_empty() {
        let mut rules = seccomp.syscalls().clone().unwrap_or_default();
        let rule = oci_spec::runtime::LinuxSyscallBuilder::default()
            .names(runtime_denies.clone())
            .action(oci_spec::runtime::LinuxSeccompAction::ScmpActErrno)
            .errno_ret(libc::EPERM as u32)
            .build()
            .map_err(|e| Error::Other(format!("seccomp rule: {e}")))?;
        rules.push(rule);
        let mut h = seccomp.clone();
        h.set_syscalls(Some(rules));
        model = model::resolve(&h, arch)?;
        hardened = Some(h);
    }
    // The i386 table on x86_64 when `architectures` names it: the same rules by name.
    let effective = hardened.as_ref().unwrap_or(seccomp);
    let companion = match arch.companion {
        Some(c)
            if effective
                .architectures()
                .iter()
                .flatten()
                .any(|a| *a == c.oci) =>
        {
            Some((model::resolve(effective, c)?, c))
        }
        _ => None,
    };
    let verdicts = RISKY_SYSCALLS
        .iter()
        .copied()
        .chain(watch.iter().map(String::as_str))
        .filter_map(|name| {
            let nr = arch.lookup(name)?;
            Some((name.to_string(), verdict::verdict(&model, nr)))
        })
        .collect();
    let program = bpf::assemble(&model, arch, companion.as_ref().map(|(m, c)| (m, *c)))?;
    let canonical = serde_json::to_vec(seccomp)
        .map_err(|e| Error::Other(format!("serialise seccomp profile: {e}")))?;
    let summary = Summary {
        digest: hex(&Sha256::digest(&canonical)),
        rules: rule_counts,
        filters: 1,
        default_action: seccomp.default_action().to_string(),
        instructions: program.len(),
        runtime_denies,
    };
    let listener = match (model.notify, model.listener_path) {
        (true, Some(path)) => Some(Listener {
            path,
            metadata: model.listener_metadata,
            filter: 0,
        }),
        _ => None,
    };
    Ok(Compiled {
        summary,
        filters: vec![Filter {
            program,
            flags: model.flags,
        }],
        listener,
        warnings: model.warnings,
        verdicts,
    })
}

/// Whether `name` is a syscall of the native architecture (what a profile or a policy may
/// name to any effect here).
pub fn known_syscall(name: &str) -> bool {
    syscalls::native().is_some_and(|arch| arch.lookup(name).is_some())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Load a compiled profile into the calling thread (and its future children); returns the
/// user-notification listener fd when the profile uses `SCMP_ACT_NOTIFY`.
///
/// Does not set no_new_privs: the caller decides (without it the kernel requires
/// `CAP_SYS_ADMIN`). Allocates nothing on success. Between this call and `execve` every
/// syscall the caller makes is filtered: a NOTIFY rule on those waits for an agent, which
/// only gets the listener fd through [`send_listener`].
pub(crate) fn load(compiled: &Compiled) -> Result<Option<OwnedFd>> {
    let mut listener = None;
    for filter in &compiled.filters {
        if let Some(fd) = seccomp_set_mode_filter(&filter.program, filter.flags)
            .op("seccomp(SECCOMP_SET_MODE_FILTER)")?
        {
            listener = Some(fd);
        }
    }
    Ok(listener)
}

/// The runtime-spec "container process state" sent to a seccomp agent.
fn container_process_state(metadata: Option<&str>, state: &serde_json::Value) -> Vec<u8> {
    let mut msg = serde_json::Map::new();
    msg.insert("ociVersion".into(), crate::OCI_VERSION.into());
    msg.insert("fds".into(), serde_json::json!(["seccompFd"]));
    let pid = state
        .get("pid")
        .cloned()
        .unwrap_or(serde_json::Value::from(0));
    msg.insert("pid".into(), pid);
    if let Some(m) = metadata {
        msg.insert("metadata".into(), m.into());
    }
    msg.insert("state".into(), state.clone());
    serde_json::Value::Object(msg).to_string().into_bytes()
}

/// Hand the listener fd to the seccomp agent listening at `listener_path`: connect, send the
/// runtime-spec container process state (`ociVersion`, `fds: ["seccompFd"]`, `pid`,
/// `metadata`, `state`) as JSON with the fd in the same `SCM_RIGHTS` message, close.
/// `state` is the container's runtime-spec state (its `pid` is copied to the top level).
pub(crate) fn send_listener(
    listener_path: &Path,
    metadata: Option<&str>,
    state: &serde_json::Value,
    fd: BorrowedFd<'_>,
) -> Result<()> {
    let payload = container_process_state(metadata, state);
    let sock = crate::sys::socket::connect_unix(listener_path)
        .op_path("failed to connect with seccomp agent", listener_path)?;
    crate::sys::socket::send_with_fds(sock.as_fd(), &payload, &[fd.as_raw_fd()])
        .op_path("send seccomp listener fd", listener_path)?;
    Ok(())
}

/// Hand the listener of a compiled profile to its agent (`listenerPath`).
pub(crate) fn forward_listener(
    compiled: &Compiled,
    state: &serde_json::Value,
    fd: BorrowedFd<'_>,
) -> Result<()> {
    let listener = compiled
        .listener
        .as_ref()
        .ok_or_else(|| Error::Other("seccomp listener fd without listenerPath".into()))?;
    send_listener(&listener.path, listener.metadata.as_deref(), state, fd)
}

/// The shipped default profile rendered for the capability names `caps`, as OCI JSON (for
/// `sealrun spec`).
pub fn default_profile_json(caps: &[&str]) -> Result<serde_json::Value> {
    let granted: Vec<oci_spec::runtime::Capability> = caps
        .iter()
        .map(|c| {
            serde_json::from_value(serde_json::Value::from(*c))
                .map_err(|e| Error::Other(format!("capability {c}: {e}")))
        })
        .collect::<Result<_>>()?;
    let rendered = profile("default", granted.iter())?;
    serde_json::to_value(rendered).map_err(|e| Error::Other(e.to_string()))
}

/// The `linux.seccomp` object of `features`: every action, operator and flag sealrun handles,
/// and the architectures it has syscall tables for.
pub fn features_json() -> serde_json::Value {
    let archs: &[&str] = if syscalls::native().is_some() {
        &["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]
    } else {
        &[]
    };
    serde_json::json!({
        "enabled": syscalls::native().is_some(),
        "actions": [
            "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
            "SCMP_ACT_TRAP"
        ],
        "operators": [
            "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
            "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
        ],
        "archs": archs,
        "knownFlags": [
            "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
        ],
        "supportedFlags": [
            "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
        ]
    })
}
