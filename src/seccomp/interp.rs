//! Test support: a classic-BPF interpreter that runs seccomp programs over synthetic
//! `seccomp_data` the way the kernel does (including precedence across stacked filters), a
//! validity check like the kernel's, and the reference meaning of a profile (the module doc's
//! rules 1–4, computed directly from the runtime-spec object), and the helpers the unit tests
//! share (compile and compare over many synthetic calls).

use oci_spec::runtime::{Capability, LinuxSeccomp, LinuxSeccompOperator};
use serde_json::json;

use super::bpf::{
    BPF_ALU_AND_K, BPF_JMP_JA, BPF_JMP_JEQ_K, BPF_JMP_JGE_K, BPF_JMP_JGT_K, BPF_LD_W_ABS,
    BPF_RET_K, MAX_INSNS,
};
use super::model::Ret;
use super::syscalls::{self, NativeArch};
use super::{compile, Compiled};
use crate::error::Error;
use crate::sys::seccomp::SockFilter;

const BPF_JMP_JSET_K: u16 = 0x05 | 0x40;

/// Docker's default capability set, a common set to render the shipped profiles for.
pub(crate) const DOCKER_CAPS: [Capability; 14] = {
    use Capability::*;
    [
        Chown,
        DacOverride,
        Fsetid,
        Fowner,
        Mknod,
        NetRaw,
        Setgid,
        Setuid,
        Setfcap,
        Setpcap,
        NetBindService,
        SysChroot,
        Kill,
        AuditWrite,
    ]
};

/// Every argument comparison operator of the runtime-spec, by its JSON name.
pub(crate) const CMP_OPS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// `struct seccomp_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Data {
    pub nr: i32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

impl Data {
    /// A native call of `nr` with `args`.
    pub fn call(arch: &NativeArch, nr: u32, args: [u64; 6]) -> Data {
        Data {
            nr: nr as i32,
            arch: arch.audit_arch,
            ip: 0x7fff_0000_1234,
            args,
        }
    }

    fn word(&self, offset: u32) -> u32 {
        let lo_hi = |v: u64, hi: bool| if hi { (v >> 32) as u32 } else { v as u32 };
        match offset {
            0 => self.nr as u32,
            4 => self.arch,
            8 | 12 => lo_hi(self.ip, offset == 12),
            16..=60 => {
                let i = ((offset - 16) / 8) as usize;
                lo_hi(self.args[i], offset % 8 == 4)
            }
            _ => panic!("load outside seccomp_data at {offset}"),
        }
    }
}

/// Check `prog` the way the kernel's `bpf_check_classic` + seccomp checker would: length,
/// known opcodes, aligned loads inside `seccomp_data`, jumps inside the program, ends with a
/// return.
pub(crate) fn check(prog: &[SockFilter]) {
    assert!(
        !prog.is_empty() && prog.len() <= MAX_INSNS,
        "length {}",
        prog.len()
    );
    for (pc, insn) in prog.iter().enumerate() {
        match insn.code {
            BPF_LD_W_ABS => assert!(insn.k % 4 == 0 && insn.k < 64, "pc {pc}: load {}", insn.k),
            BPF_ALU_AND_K | BPF_RET_K => {}
            BPF_JMP_JA => assert!(pc + 1 + (insn.k as usize) < prog.len(), "pc {pc}: ja out"),
            BPF_JMP_JEQ_K | BPF_JMP_JGT_K | BPF_JMP_JGE_K | BPF_JMP_JSET_K => {
                let far = usize::from(insn.jt.max(insn.jf));
                assert!(pc + 1 + far < prog.len(), "pc {pc}: jump out");
            }
            other => panic!("pc {pc}: opcode {other:#x} not allowed"),
        }
    }
    assert_eq!(
        prog[prog.len() - 1].code,
        BPF_RET_K,
        "last instruction must return"
    );
}

/// Run one program.
pub(crate) fn run(prog: &[SockFilter], data: &Data) -> u32 {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let insn = prog[pc];
        pc += 1;
        match insn.code {
            BPF_LD_W_ABS => acc = data.word(insn.k),
            BPF_ALU_AND_K => acc &= insn.k,
            BPF_RET_K => return insn.k,
            BPF_JMP_JA => pc += insn.k as usize,
            code => {
                let taken = match code {
                    BPF_JMP_JEQ_K => acc == insn.k,
                    BPF_JMP_JGT_K => acc > insn.k,
                    BPF_JMP_JGE_K => acc >= insn.k,
                    BPF_JMP_JSET_K => acc & insn.k != 0,
                    other => panic!("opcode {other:#x}"),
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
        }
    }
}

/// Run stacked filters (`filters[0]` installed first) and combine as the kernel does: the
/// smallest action rank wins, the most recently installed filter among equals.
pub(crate) fn run_stack(filters: &[&[SockFilter]], data: &Data) -> u32 {
    let mut ret = Ret::ALLOW.0;
    for prog in filters.iter().rev() {
        let cur = run(prog, data);
        if Ret(cur).rank() < Ret(ret).rank() {
            ret = cur;
        }
    }
    ret
}

fn action(action: oci_spec::runtime::LinuxSeccompAction, data: Option<u32>) -> Ret {
    use oci_spec::runtime::LinuxSeccompAction as A;
    let data = data.unwrap_or(libc::EPERM as u32) as u16;
    match action {
        A::ScmpActKill | A::ScmpActKillThread => Ret::KILL_THREAD,
        A::ScmpActKillProcess => Ret::KILL_PROCESS,
        A::ScmpActTrap => Ret::TRAP,
        A::ScmpActErrno => Ret::errno(data),
        A::ScmpActNotify => Ret::USER_NOTIF,
        A::ScmpActTrace => Ret::trace(data),
        A::ScmpActLog => Ret::LOG,
        A::ScmpActAllow => Ret::ALLOW,
    }
}

/// What the profile means for `data` (module doc, rules 1–4), straight from the spec object.
pub(crate) fn expected(seccomp: &LinuxSeccomp, arch: &NativeArch, data: &Data) -> u32 {
    if data.arch != arch.audit_arch {
        // The companion table (i386 on x86_64) follows the same rules by name when named.
        return match arch.companion {
            Some(c)
                if data.arch == c.audit_arch
                    && seccomp
                        .architectures()
                        .iter()
                        .flatten()
                        .any(|a| *a == c.oci) =>
            {
                expected(seccomp, c, data)
            }
            _ => Ret::ENOSYS.0,
        };
    }
    let nr = data.nr as u32;
    if arch.abi_bit.is_some_and(|bit| nr >= bit) {
        return Ret::ENOSYS.0;
    }
    let rules = seccomp.syscalls().as_deref().unwrap_or_default();
    let default = action(seccomp.default_action(), seccomp.default_errno_ret());
    let max = rules
        .iter()
        .flat_map(|r| r.names())
        .filter_map(|n| arch.lookup(n))
        .max();
    if default.is_errno() && default != Ret::ENOSYS && max.is_some_and(|m| nr > m) {
        return Ret::ENOSYS.0;
    }
    let first_index = |ret: Ret| {
        rules
            .iter()
            .position(|r| action(r.action(), r.errno_ret()) == ret)
            .unwrap_or(usize::MAX)
    };
    let mut best: Option<Ret> = None;
    for rule in rules {
        if !rule.names().iter().any(|n| arch.lookup(n) == Some(nr)) {
            continue;
        }
        let args = rule.args().as_deref().unwrap_or_default();
        // Two conditions on one argument: any one of them (rule 3).
        let any = args
            .iter()
            .enumerate()
            .any(|(i, a)| args[..i].iter().any(|b| b.index() == a.index()));
        let cond = |a: &oci_spec::runtime::LinuxSeccompArg| {
            let arg = data.args[a.index()];
            let v = a.value();
            match a.op() {
                LinuxSeccompOperator::ScmpCmpEq => arg == v,
                LinuxSeccompOperator::ScmpCmpNe => arg != v,
                LinuxSeccompOperator::ScmpCmpLt => arg < v,
                LinuxSeccompOperator::ScmpCmpLe => arg <= v,
                LinuxSeccompOperator::ScmpCmpGt => arg > v,
                LinuxSeccompOperator::ScmpCmpGe => arg >= v,
                LinuxSeccompOperator::ScmpCmpMaskedEq => arg & v == a.value_two().unwrap_or(0),
            }
        };
        let holds = if any {
            args.iter().any(cond)
        } else {
            args.iter().all(cond)
        };
        if !holds {
            continue;
        }
        let ret = action(rule.action(), rule.errno_ret());
        best = Some(match best {
            None => ret,
            Some(b) if ret.rank() < b.rank() => ret,
            Some(b) if ret.rank() == b.rank() && first_index(ret) < first_index(b) => ret,
            Some(b) => b,
        });
    }
    best.unwrap_or(default).0
}

/// A small deterministic PRNG (xorshift64*), so tests need no dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// Helpers shared by the unit tests.

pub(crate) fn arch() -> &'static NativeArch {
    syscalls::native().expect("native syscall table")
}

pub(crate) fn spec(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("valid seccomp object")
}

pub(crate) fn nr(name: &str) -> u32 {
    arch()
        .lookup(name)
        .unwrap_or_else(|| panic!("{name} unknown"))
}

/// Result of one call under the compiled profile.
pub(crate) fn verdict(c: &Compiled, name: &str, args: [u64; 6]) -> u32 {
    let progs: Vec<&[SockFilter]> = c.filters.iter().map(|f| &f.program[..]).collect();
    run_stack(&progs, &Data::call(arch(), nr(name), args))
}

pub(crate) fn config_field(err: Error) -> String {
    match err {
        Error::InvalidConfig { field, .. } => field,
        other => panic!("expected an invalid-config error, got {other:?}"),
    }
}

pub(crate) fn errno(e: i32) -> u32 {
    Ret::errno(e as u16).0
}

pub(crate) const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub(crate) const A0: [u64; 6] = [0; 6];

/// Interesting argument values for `seccomp`: every value in its conditions, neighbours,
/// high-half variants and extremes.
pub(crate) fn interesting_values(seccomp: &LinuxSeccomp) -> Vec<u64> {
    let mut v = vec![
        0,
        1,
        2,
        40,
        0xffff_ffff,
        1 << 32,
        (1 << 32) | 1,
        u64::MAX,
        u64::MAX - 1,
    ];
    for rule in seccomp.syscalls().iter().flatten() {
        for a in rule.args().iter().flatten() {
            for x in [a.value(), a.value_two().unwrap_or(0)] {
                v.extend([
                    x,
                    x.wrapping_add(1),
                    x.wrapping_sub(1),
                    x ^ (1 << 32),
                    x | 0x8000_0000,
                    x & 0xffff_ffff,
                    x & a.value(),
                    !x,
                ]);
            }
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// Compare the compiled program with the reference meaning on `samples` argument vectors per
/// syscall number, for every number up to past the profile's highest, the x32 range and
/// foreign architectures.
pub(crate) fn assert_meaning(seccomp: &LinuxSeccomp, seed: u64, samples: usize) -> Compiled {
    let compiled = compile(seccomp).expect("compiles");
    let progs: Vec<&[SockFilter]> = compiled.filters.iter().map(|f| &f.program[..]).collect();
    for p in &progs {
        check(p);
    }
    let values = interesting_values(seccomp);
    let mut rng = Rng::new(seed);
    let a = arch();
    let max = a.table().iter().map(|e| e.1).max().unwrap_or(0);
    let mut numbers: Vec<u32> = (0..=max + 3).collect();
    numbers.extend([
        1000,
        0x4000_0000,
        0x4000_0000 | nr("getpid"),
        u32::MAX,
        0x8000_0000,
    ]);
    let compare = |data: Data| {
        let got = run_stack(&progs, &data);
        let want = expected(seccomp, a, &data);
        assert_eq!(got, want, "{data:x?}\nprofile: {}", json!(seccomp));
    };
    for &n in &numbers {
        for _ in 0..samples {
            let mut args = [0u64; 6];
            for arg in &mut args {
                *arg = if rng.below(8) == 0 {
                    rng.next()
                } else {
                    *rng.pick(&values)
                };
            }
            compare(Data::call(a, n, args));
        }
    }
    if let Some(c) = a.companion {
        let max = c.table().iter().map(|e| e.1).max().unwrap_or(0);
        for n in 0..=max + 3 {
            compare(Data {
                arch: c.audit_arch,
                ..Data::call(a, n, A0)
            });
        }
    }
    for &foreign in a.compat_audit.iter().chain(&[0, 0x4000_003e, 0xc000_00b7]) {
        if foreign != a.audit_arch {
            compare(Data {
                arch: foreign,
                ..Data::call(a, nr("getpid"), A0)
            });
        }
    }
    compiled
}
