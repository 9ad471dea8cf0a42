//! Assembly of the one BPF program: the architecture dispatch, then per syscall table a
//! section with our number guard and one seccompiler-generated body per action group, chained
//! so that a group's "no match" continues with the next group and the last group's "no match"
//! returns the default action.

use std::collections::BTreeMap;

use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use super::model::{Cond, Group, Matcher, Model, Op, Ret};
use super::syscalls::NativeArch;
use crate::error::{Error, Result};
use crate::sys::seccomp::SockFilter;

// Classic BPF opcodes (linux/bpf_common.h).
pub(crate) const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
#[cfg(test)]
pub(crate) const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
pub(crate) const BPF_JMP_JA: u16 = 0x05;
pub(crate) const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
pub(crate) const BPF_JMP_JGT_K: u16 = 0x05 | 0x20;
pub(crate) const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
pub(crate) const BPF_RET_K: u16 = 0x06;

/// `offsetof(struct seccomp_data, nr)` and `arch`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// The kernel's limit on a program's length (`BPF_MAXINSNS`).
pub(crate) const MAX_INSNS: usize = 4096;

/// Return values seccompiler is asked to emit for "rule matched" and "no rule matched"; we
/// rewrite every such `ret` afterwards (seccompiler has no USER_NOTIF and no "continue").
const MATCH_SENTINEL: SeccompAction = SeccompAction::Trace(0xa5a5);
const MISS_SENTINEL: SeccompAction = SeccompAction::Trace(0x5a5a);

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// The start of a table's section: load the syscall number; the x32 bit on x86_64 and, when
/// the default is an errno, a syscall numbered above everything the profile names get ENOSYS
/// (so libc falls back to an older call). Leaves the syscall number in the accumulator.
fn number_guard(arch: &NativeArch, newer_than: Option<u32>) -> Vec<SockFilter> {
    let enosys = stmt(BPF_RET_K, Ret::ENOSYS.0);
    let mut prog = vec![stmt(BPF_LD_W_ABS, DATA_NR)];
    if let Some(bit) = arch.abi_bit {
        // Unsigned: also catches negative numbers (nr -1 is "no syscall" for ptrace).
        prog.push(jump(BPF_JMP_JGE_K, bit, 0, 1));
        prog.push(enosys);
    }
    if let Some(max) = newer_than {
        prog.push(jump(BPF_JMP_JGT_K, max, 0, 1));
        prog.push(enosys);
    }
    prog
}

fn condition(c: &Cond) -> Result<SeccompCondition> {
    let op = match c.op {
        Op::Eq => SeccompCmpOp::Eq,
        Op::Ne => SeccompCmpOp::Ne,
        Op::Lt => SeccompCmpOp::Lt,
        Op::Le => SeccompCmpOp::Le,
        Op::Gt => SeccompCmpOp::Gt,
        Op::Ge => SeccompCmpOp::Ge,
        Op::MaskedEq(mask) => SeccompCmpOp::MaskedEq(mask),
    };
    // Always the full 64 bits, as libseccomp compares.
    SeccompCondition::new(c.index, SeccompCmpArgLen::Qword, op, c.value).map_err(generator)
}

fn generator(e: seccompiler::BackendError) -> Error {
    Error::Other(format!("seccomp BPF generator: {e}"))
}

/// Checks returning `k` for every number in `nrs` (sorted), the accumulator holding the
/// syscall number: a run of consecutive numbers shares one range check (`jge lo; jgt hi; ret`),
/// a lone number gets `jeq; ret`. A number outside every run falls through past the checks.
fn returns_for(nrs: &[u32], k: u32) -> Vec<SockFilter> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < nrs.len() {
        let lo = nrs[i];
        let mut hi = lo;
        while i + 1 < nrs.len() && nrs[i + 1] == hi + 1 {
            i += 1;
            hi = nrs[i];
        }
        i += 1;
        if lo == hi {
            out.push(jump(BPF_JMP_JEQ_K, lo, 0, 1));
        } else {
            out.push(jump(BPF_JMP_JGE_K, lo, 0, 2));
            out.push(jump(BPF_JMP_JGT_K, hi, 1, 0));
        }
        out.push(stmt(BPF_RET_K, k));
    }
    out
}

/// One group's body: load the syscall number, return the group's value for the syscalls it
/// takes unconditionally (range checks, see [`returns_for`]), then seccompiler's program for
/// the syscalls with argument conditions (arch check stripped), which ends in the "no match"
/// return. seccompiler spends five instructions on each unconditional syscall; the range
/// checks need two or fewer, and the kernel's load time (conversion to eBPF, JIT) and the walk
/// of every filtered call grow with the program's length.
fn group_body(group: &Group, arch: &NativeArch) -> Result<Vec<SockFilter>> {
    let unconditional: Vec<u32> = group
        .syscalls
        .iter()
        .filter(|(_, m)| matches!(m, Matcher::All))
        .map(|(nr, _)| *nr)
        .collect();
    let mut body = vec![stmt(BPF_LD_W_ABS, DATA_NR)];
    body.extend(returns_for(&unconditional, u32::from(MATCH_SENTINEL)));
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (nr, matcher) in &group.syscalls {
        let Matcher::Any(lists) = matcher else {
            continue;
        };
        let chain = lists
            .iter()
            .map(|conds| {
                let conds = conds.iter().map(condition).collect::<Result<Vec<_>>>()?;
                SeccompRule::new(conds).map_err(generator)
            })
            .collect::<Result<Vec<_>>>()?;
        rules.insert(i64::from(*nr), chain);
    }
    if rules.is_empty() {
        body.push(stmt(BPF_RET_K, u32::from(MISS_SENTINEL)));
        return Ok(body);
    }
    let filter =
        SeccompFilter::new(rules, MISS_SENTINEL, MATCH_SENTINEL, arch.target).map_err(generator)?;
    let prog: seccompiler::BpfProgram = filter.try_into().map_err(generator)?;
    // seccompiler starts with `ld arch; jeq native, 1, 0; ret KILL_PROCESS`: our guard has
    // already done that (with ENOSYS instead of a kill), so drop it.
    let expected_prefix = [
        (BPF_LD_W_ABS, DATA_ARCH),
        (BPF_JMP_JEQ_K, arch.target_audit),
        (BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
    ];
    let prefix_ok = prog.len() > expected_prefix.len()
        && prog
            .iter()
            .zip(expected_prefix)
            .all(|(insn, (code, k))| insn.code == code && insn.k == k);
    if !prefix_ok {
        return Err(Error::Other(
            "seccomp BPF generator: unexpected program prefix".into(),
        ));
    }
    body.extend(prog[expected_prefix.len()..].iter().map(|i| SockFilter {
        code: i.code,
        jt: i.jt,
        jf: i.jf,
        k: i.k,
    }));
    Ok(body)
}

/// Assemble the profile's single program: the architecture dispatch, the native table's
/// section and, when the profile addresses it (`companion`, i386 on x86_64), that table's
/// section. Any other `AUDIT_ARCH` gets ENOSYS.
pub(crate) fn assemble(
    model: &Model,
    arch: &NativeArch,
    companion: Option<(&Model, &NativeArch)>,
) -> Result<Vec<SockFilter>> {
    let mut prog = vec![stmt(BPF_LD_W_ABS, DATA_ARCH)];
    // `ja` takes a 32-bit offset (conditional jumps only 8 bits): patched below.
    let to_companion = companion.map(|(_, a)| {
        prog.push(jump(BPF_JMP_JEQ_K, a.audit_arch, 0, 1));
        prog.push(stmt(BPF_JMP_JA, 0));
        prog.len() - 1
    });
    prog.push(jump(BPF_JMP_JEQ_K, arch.audit_arch, 1, 0));
    prog.push(stmt(BPF_RET_K, Ret::ENOSYS.0));
    prog.extend(section(model, arch)?);
    if let (Some(at), Some((m, a))) = (to_companion, companion) {
        prog[at].k = (prog.len() - at - 1) as u32;
        prog.extend(section(m, a)?);
    }
    if prog.len() > MAX_INSNS {
        return Err(Error::config(
            "linux.seccomp.syscalls",
            format!(
                "the profile needs {} BPF instructions, the kernel takes {MAX_INSNS}",
                prog.len()
            ),
        ));
    }
    Ok(prog)
}

/// One table's section: its number guard, the group bodies chained, the default action.
/// Jumps stay inside it, so sections can be placed anywhere.
fn section(model: &Model, arch: &NativeArch) -> Result<Vec<SockFilter>> {
    let newer_than = match model.max_nr {
        Some(max) if model.default.is_errno() && model.default != Ret::ENOSYS => Some(max),
        _ => None,
    };
    let mut prog = number_guard(arch, newer_than);
    let bodies = model
        .groups
        .iter()
        .map(|g| group_body(g, arch))
        .collect::<Result<Vec<_>>>()?;
    let total = prog.len() + bodies.iter().map(Vec::len).sum::<usize>() + 1;
    if total > MAX_INSNS {
        return Err(Error::config(
            "linux.seccomp.syscalls",
            format!("the profile needs {total} BPF instructions, the kernel takes {MAX_INSNS}"),
        ));
    }
    let match_k = u32::from(MATCH_SENTINEL);
    let miss_k = u32::from(MISS_SENTINEL);
    for (group, body) in model.groups.iter().zip(bodies) {
        let start = prog.len();
        let next = start + body.len();
        for (offset, mut insn) in body.into_iter().enumerate() {
            if insn.code == BPF_RET_K {
                if insn.k == match_k {
                    insn.k = group.ret.0;
                } else if insn.k == miss_k {
                    // Continue with the next group (which reloads the syscall number), or
                    // fall through to the default action after the last one.
                    insn = stmt(BPF_JMP_JA, (next - (start + offset) - 1) as u32);
                } else {
                    return Err(Error::Other(format!(
                        "seccomp BPF generator: unexpected return value {:#x}",
                        insn.k
                    )));
                }
            }
            prog.push(insn);
        }
    }
    prog.push(stmt(BPF_RET_K, model.default.0));
    Ok(prog)
}
