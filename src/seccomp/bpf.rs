//! Assembly of the one BPF program (sealrun's own generator): the architecture dispatch, then
//! per syscall table a section: load the syscall number, a balanced tree of `jge` on it whose
//! leaves are either a return (a run of numbers with one constant answer, including our
//! ENOSYS guards for x32 and for numbers newer than the profile) or the argument checks of one
//! syscall, its rules in chain order ([`Model::groups`]), each one's "no match" continuing
//! with the next, the last one's with the default action.
//!
//! Compactness, as libseccomp's generator achieves it: each syscall is dispatched once (not
//! once per action group); conditions that only differ in the datum of an equality (the
//! usual "any of these values" list) test the argument's high word once and then cost one
//! `jeq` each; returns are shared (a jump to an existing `ret`); unconditional jumps to the
//! next instruction are not emitted. The program is built back to front, so every jump
//! target exists when the jump is emitted; a conditional jump (8-bit offsets) to a target out
//! of reach goes through a `ja` or a copy of the `ret` placed right after it.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Cond, Matcher, Model, Op, Ret};
use super::syscalls::NativeArch;
use crate::error::{Error, Result};
use crate::sys::seccomp::SockFilter;

// Classic BPF opcodes (linux/bpf_common.h).
pub(crate) const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
pub(crate) const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
pub(crate) const BPF_JMP_JA: u16 = 0x05;
pub(crate) const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
pub(crate) const BPF_JMP_JGT_K: u16 = 0x05 | 0x20;
pub(crate) const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
pub(crate) const BPF_RET_K: u16 = 0x06;

/// `offsetof(struct seccomp_data, nr)`, `arch` and `args`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARGS: u32 = 16;

/// The kernel's limit on a program's length (`BPF_MAXINSNS`).
pub(crate) const MAX_INSNS: usize = 4096;

/// Longest forward reach of a conditional jump.
const REACH: usize = u8::MAX as usize;

/// Offset in `seccomp_data` of the low or high 32 bits of argument `index`.
fn arg_word(index: u8, high: bool) -> u32 {
    let base = DATA_ARGS + 8 * u32::from(index);
    // The u64 is stored in the host's byte order.
    if high == cfg!(target_endian = "little") {
        base + 4
    } else {
        base
    }
}

fn hi(v: u64) -> u32 {
    (v >> 32) as u32
}

fn lo(v: u64) -> u32 {
    v as u32
}

/// Where control goes: an emitted instruction (its index counted from the program's end) or
/// "return this value" (a shared `ret`, placed where needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    At(usize),
    Ret(u32),
}

/// A program under construction, back to front: `insns` holds it reversed, so the index of an
/// instruction is its distance from the end and stays valid while code is put before it.
#[derive(Default)]
struct Rev {
    insns: Vec<SockFilter>,
    /// The `ret` nearest the front for each value (the one later jumps reach best).
    rets: BTreeMap<u32, usize>,
}

impl Rev {
    fn push(&mut self, code: u16, jt: u8, jf: u8, k: u32) -> To {
        self.insns.push(SockFilter { code, jt, jf, k });
        if code == BPF_RET_K {
            self.rets.insert(k, self.insns.len() - 1);
        }
        To::At(self.insns.len() - 1)
    }

    /// The instruction `to` means, if it exists.
    fn resolve(&self, to: To) -> Option<usize> {
        match to {
            To::At(i) => Some(i),
            To::Ret(k) => self.rets.get(&k).copied(),
        }
    }

    /// Put an unconditional transfer to `to` at the front, unless `to` is already the front.
    fn goto(&mut self, to: To) -> To {
        let front = self.insns.len().checked_sub(1);
        match (to, self.resolve(to)) {
            (_, Some(i)) if Some(i) == front => To::At(i),
            (To::Ret(k), _) => self.push(BPF_RET_K, 0, 0, k),
            (To::At(i), _) => {
                let at = self.insns.len();
                self.push(BPF_JMP_JA, 0, 0, (at - i - 1) as u32)
            }
        }
    }

    /// Put a statement (load, and) at the front, continuing with `next`.
    fn stmt(&mut self, code: u16, k: u32, next: To) -> To {
        self.goto(next);
        self.push(code, 0, 0, k)
    }

    /// Put `if (A <code> k) goto jt else goto jf` at the front. A target out of reach (with a
    /// margin for the at most two instructions put in between) gets a trampoline right after
    /// the jump: a copy of the `ret`, or a `ja`.
    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) -> To {
        if jt == jf {
            return self.goto(jt);
        }
        let mut targets = [jt, jf];
        for t in &mut targets {
            let near = self
                .resolve(*t)
                .is_some_and(|i| self.insns.len() + 2 - i - 1 <= REACH);
            if !near {
                // Not `goto`: the trampoline must be an instruction of its own even if the
                // target is the front (the other target may have been placed there).
                *t = match *t {
                    To::Ret(v) => self.push(BPF_RET_K, 0, 0, v),
                    To::At(i) => {
                        let at = self.insns.len();
                        self.push(BPF_JMP_JA, 0, 0, (at - i - 1) as u32)
                    }
                };
            }
        }
        let at = self.insns.len();
        let off = |t: To| {
            // Resolved above: every target now exists and is in reach.
            self.resolve(t).map_or(0, |i| {
                debug_assert!(at - i - 1 <= REACH, "jump out of reach");
                (at - i - 1) as u8
            })
        };
        let (t, f) = (off(targets[0]), off(targets[1]));
        self.push(code, t, f, k)
    }

    fn finish(self) -> Vec<SockFilter> {
        let mut prog = self.insns;
        prog.reverse();
        prog
    }
}

/// `if (args[index] & mask) == datum for one of `data` goto t else goto f`, the data
/// sharing their high word (one high test, then one `jeq` per low word).
fn masked_eq(
    b: &mut Rev,
    index: u8,
    mask: u64,
    data_hi: u32,
    data_lo: &BTreeSet<u32>,
    t: To,
    f: To,
) -> To {
    let low = if lo(mask) == 0 {
        // Every datum is inside the mask (the model drops the others): the low half holds.
        t
    } else {
        let mut next = f;
        for &d in data_lo.iter().rev() {
            next = b.jump(BPF_JMP_JEQ_K, d, t, next);
        }
        if lo(mask) != u32::MAX {
            next = b.stmt(BPF_ALU_AND_K, lo(mask), next);
        }
        b.stmt(BPF_LD_W_ABS, arg_word(index, false), next)
    };
    if hi(mask) == 0 {
        return low;
    }
    let mut next = b.jump(BPF_JMP_JEQ_K, data_hi, low, f);
    if hi(mask) != u32::MAX {
        next = b.stmt(BPF_ALU_AND_K, hi(mask), next);
    }
    b.stmt(BPF_LD_W_ABS, arg_word(index, true), next)
}

/// `if args[c.index] <op> c.value goto t else goto f` for the ordering operators and `!=`,
/// on 64 bits: the high words decide unless equal, then the low words (unsigned).
fn ordered(b: &mut Rev, c: &Cond, t: To, f: To) -> To {
    let (v_hi, v_lo) = (hi(c.value), lo(c.value));
    // (low test, high greater goes to, high equal → low, high less goes to)
    let (low, above, below) = match c.op {
        Op::Ne => (b.jump(BPF_JMP_JEQ_K, v_lo, f, t), t, t),
        Op::Gt => (b.jump(BPF_JMP_JGT_K, v_lo, t, f), t, f),
        Op::Ge => (b.jump(BPF_JMP_JGE_K, v_lo, t, f), t, f),
        Op::Lt => (b.jump(BPF_JMP_JGE_K, v_lo, f, t), f, t),
        Op::Le => (b.jump(BPF_JMP_JGT_K, v_lo, f, t), f, t),
        Op::Eq | Op::MaskedEq(_) => unreachable!("equalities go through masked_eq"),
    };
    let low = b.stmt(BPF_LD_W_ABS, arg_word(c.index, false), low);
    let mut next = b.jump(BPF_JMP_JEQ_K, v_hi, low, below);
    if above != below {
        next = b.jump(BPF_JMP_JGT_K, v_hi, above, next);
    }
    b.stmt(BPF_LD_W_ABS, arg_word(c.index, true), next)
}

/// An equality as (mask, datum).
fn as_masked(c: &Cond) -> Option<(u64, u64)> {
    match c.op {
        Op::Eq => Some((u64::MAX, c.value)),
        Op::MaskedEq(mask) => Some((mask, c.value)),
        _ => None,
    }
}

/// `if c goto t else goto f`.
fn condition(b: &mut Rev, c: &Cond, t: To, f: To) -> To {
    match as_masked(c) {
        Some((mask, datum)) => masked_eq(
            b,
            c.index,
            mask,
            hi(datum),
            &BTreeSet::from([lo(datum)]),
            t,
            f,
        ),
        None => ordered(b, c, t, f),
    }
}

/// `if any list of conditions holds entirely goto t else goto f`. Lists of one condition are
/// merged per argument: equalities with the same mask and high word test it once.
fn any_of(b: &mut Rev, lists: &[Vec<Cond>], t: To, f: To) -> To {
    if lists.iter().any(Vec::is_empty) {
        return t;
    }
    // (index, mask, datum high word) → low words.
    let mut eqs: BTreeMap<(u8, u64, u32), BTreeSet<u32>> = BTreeMap::new();
    let mut others: Vec<&[Cond]> = Vec::new();
    for list in lists {
        match list.as_slice() {
            [c] => match as_masked(c) {
                Some((mask, datum)) => {
                    eqs.entry((c.index, mask, hi(datum)))
                        .or_default()
                        .insert(lo(datum));
                }
                None => others.push(list),
            },
            _ => others.push(list),
        }
    }
    // Each alternative's miss continues with the next one; the last one's goes to f.
    let mut next = f;
    for list in others.iter().rev() {
        let mut pass = t;
        for c in list.iter().rev() {
            pass = condition(b, c, pass, next);
        }
        next = pass;
    }
    for ((index, mask, data_hi), data_lo) in eqs.iter().rev() {
        next = masked_eq(b, *index, *mask, *data_hi, data_lo, t, next);
    }
    next
}

/// What the tree's leaf for a run of syscall numbers does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Leaf<'a> {
    Ret(u32),
    /// A syscall's rules in chain order (return value and matcher), then what a call
    /// matching none of them gets.
    Check(Vec<(u32, &'a [Vec<Cond>])>, u32),
}

/// The syscall number space as runs with one leaf each: (first number, leaf), sorted.
fn runs<'a>(model: &'a Model, arch: &NativeArch) -> Vec<(u32, Leaf<'a>)> {
    let mut plans: BTreeMap<u32, Vec<(u32, &Matcher)>> = BTreeMap::new();
    for group in &model.groups {
        for (nr, matcher) in &group.syscalls {
            plans.entry(*nr).or_default().push((group.ret.0, matcher));
        }
    }
    let default = model.default.0;
    let mut runs: Vec<(u32, Leaf)> = Vec::new();
    let mut put = |start: u32, leaf: Leaf<'a>| {
        if runs.last().is_some_and(|(s, _)| *s == start) {
            runs.pop();
        }
        if matches!(leaf, Leaf::Ret(_)) && runs.last().is_some_and(|(_, l)| *l == leaf) {
            return;
        }
        runs.push((start, leaf));
    };
    put(0, Leaf::Ret(default));
    for (nr, plan) in plans {
        // The first rule that takes every call ends the chain.
        let mut checks = Vec::new();
        let mut otherwise = default;
        for (ret, matcher) in plan {
            match matcher {
                Matcher::All => {
                    otherwise = ret;
                    break;
                }
                Matcher::Any(lists) => checks.push((ret, lists.as_slice())),
            }
        }
        // A last rule answering what no match answers anyway changes nothing.
        while checks.last().is_some_and(|(ret, _)| *ret == otherwise) {
            checks.pop();
        }
        let leaf = if checks.is_empty() {
            Leaf::Ret(otherwise)
        } else {
            Leaf::Check(checks, otherwise)
        };
        put(nr, leaf);
        if let Some(next) = nr.checked_add(1) {
            put(next, Leaf::Ret(default));
        }
    }
    // Numbers above every one the profile names: ENOSYS when the default is an errno, so
    // libc falls back to an older call.
    if let Some(max) = model.max_nr {
        if model.default.is_errno() && model.default != Ret::ENOSYS {
            put(max + 1, Leaf::Ret(Ret::ENOSYS.0));
        }
    }
    // The x32 ABI (and, unsigned, negative numbers: nr -1 is "no syscall" for ptrace).
    if let Some(bit) = arch.abi_bit {
        put(bit, Leaf::Ret(Ret::ENOSYS.0));
    }
    runs
}

/// A balanced tree of `jge` over `runs`, the syscall number in the accumulator.
fn tree(b: &mut Rev, runs: &[(u32, Leaf)]) -> To {
    match runs {
        [] => To::Ret(Ret::ENOSYS.0),
        [(_, Leaf::Ret(k))] => To::Ret(*k),
        [(_, Leaf::Check(checks, otherwise))] => {
            let mut next = To::Ret(*otherwise);
            for (ret, lists) in checks.iter().rev() {
                next = any_of(b, lists, To::Ret(*ret), next);
            }
            next
        }
        _ => {
            let mid = runs.len() / 2;
            // Back to front: the upper half ends up after the lower one.
            let upper = tree(b, &runs[mid..]);
            let lower = tree(b, &runs[..mid]);
            b.jump(BPF_JMP_JGE_K, runs[mid].0, upper, lower)
        }
    }
}

/// One table's section: load the syscall number, then the tree.
fn section(b: &mut Rev, model: &Model, arch: &NativeArch) -> To {
    let runs = runs(model, arch);
    let entry = tree(b, &runs);
    b.stmt(BPF_LD_W_ABS, DATA_NR, entry)
}

/// Assemble the profile's single program: the architecture dispatch, the native table's
/// section and, when the profile addresses it (`companion`, i386 on x86_64), that table's
/// section. Any other `AUDIT_ARCH` gets ENOSYS.
pub(crate) fn assemble(
    model: &Model,
    arch: &NativeArch,
    companion: Option<(&Model, &NativeArch)>,
) -> Result<Vec<SockFilter>> {
    let mut b = Rev::default();
    let enosys = To::Ret(Ret::ENOSYS.0);
    let other = match companion {
        Some((m, a)) => {
            let entry = section(&mut b, m, a);
            // Placed between the two sections; no path of the native one falls into it.
            b.jump(BPF_JMP_JEQ_K, a.audit_arch, entry, enosys)
        }
        None => enosys,
    };
    let native = section(&mut b, model, arch);
    let entry = b.jump(BPF_JMP_JEQ_K, arch.audit_arch, native, other);
    b.stmt(BPF_LD_W_ABS, DATA_ARCH, entry);
    let prog = b.finish();
    if prog.len() > MAX_INSNS {
        return Err(Error::config(
            "linux.seccomp.syscalls",
            format!(
                "the profile needs {} BPF instructions, the kernel takes at most {MAX_INSNS}",
                prog.len()
            ),
        ));
    }
    Ok(prog)
}
