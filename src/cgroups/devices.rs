//! Device access control, a security boundary.
//!
//! The OCI rules are applied in order with the kernel's cgroup v1 semantics (see
//! `security/device_cgroup.c`): a rule of type `a` resets everything to "allow all" or "deny
//! all"; any other rule adds an exception to the current default or removes access from an
//! existing identical exception. On v1 the kernel does this itself (we write `a` to
//! `devices.deny` and then every rule in order). On v2 there is no such state machine, so we run
//! the same one here ([`DeviceState`]) and compile its result into a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program ([`program`]): both versions then enforce exactly the
//! same decisions, which the tests check against an interpreter.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};
use crate::sys::bpf::Insn;

/// `BPF_DEVCG_ACC_MKNOD`.
pub const ACC_MKNOD: u8 = 1;
/// `BPF_DEVCG_ACC_READ`.
pub const ACC_READ: u8 = 2;
/// `BPF_DEVCG_ACC_WRITE`.
pub const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// Device kind of an exception (the BPF context's type values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Block device (`BPF_DEVCG_DEV_BLOCK`).
    Block = 1,
    /// Character device (`BPF_DEVCG_DEV_CHAR`).
    Char = 2,
}

/// One entry of the exception list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// Block or char.
    pub kind: Kind,
    /// Major number; `None` matches any.
    pub major: Option<u32>,
    /// Minor number; `None` matches any.
    pub minor: Option<u32>,
    /// `ACC_*` bits.
    pub access: u8,
}

/// One parsed OCI rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Allow or deny.
    pub allow: bool,
    /// `None` for type `a` (every device).
    pub kind: Option<Kind>,
    /// Major (`None`: any).
    pub major: Option<u32>,
    /// Minor (`None`: any).
    pub minor: Option<u32>,
    /// `ACC_*` bits.
    pub access: u8,
}

fn number(v: Option<i64>, field: &str) -> Result<Option<u32>> {
    match v {
        None | Some(-1) => Ok(None),
        // Device numbers are far below 2^31 (12-bit majors, 20-bit minors); staying in i32
        // range keeps the BPF immediates exact.
        Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(Error::config(
            field,
            format!("{n} is not a device number or -1"),
        )),
    }
}

/// Parse the access string (`r`, `w`, `m` in any combination; empty or absent means all).
pub fn parse_access(s: Option<&str>, field: &str) -> Result<u8> {
    let s = s.unwrap_or("");
    if s.is_empty() {
        return Ok(ACC_ALL);
    }
    let mut acc = 0;
    for c in s.chars() {
        acc |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => {
                return Err(Error::config(
                    field,
                    format!("{s:?}: access is made of r, w and m"),
                ))
            }
        };
    }
    Ok(acc)
}

/// Parse `linux.resources.devices`.
pub fn parse_rules(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let field = |f: &str| format!("linux.resources.devices[{i}].{f}");
            let kind = match r.typ() {
                None | Some(LinuxDeviceType::A) => None,
                Some(LinuxDeviceType::B) => Some(Kind::Block),
                Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(Kind::Char),
                Some(LinuxDeviceType::P) => {
                    return Err(Error::config(field("type"), "must be a, b or c"))
                }
            };
            Ok(Rule {
                allow: r.allow(),
                kind,
                major: number(r.major(), &field("major"))?,
                minor: number(r.minor(), &field("minor"))?,
                access: parse_access(r.access().as_deref(), &field("access"))?,
            })
        })
        .collect()
}

fn access_text(acc: u8) -> String {
    let mut s = String::new();
    if acc & ACC_READ != 0 {
        s.push('r');
    }
    if acc & ACC_WRITE != 0 {
        s.push('w');
    }
    if acc & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

fn num_text(n: Option<u32>) -> String {
    n.map_or_else(|| "*".to_string(), |n| n.to_string())
}

impl Rule {
    /// The line written to `devices.allow` / `devices.deny` (`c 1:3 rwm`, `a *:* rwm`).
    pub fn v1_line(&self) -> String {
        let t = match self.kind {
            None => 'a',
            Some(Kind::Block) => 'b',
            Some(Kind::Char) => 'c',
        };
        format!(
            "{t} {}:{} {}",
            num_text(self.major),
            num_text(self.minor),
            access_text(self.access)
        )
    }
}

/// The kernel's device-cgroup state: a default and a list of exceptions to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// `true`: everything not excepted is allowed (a deny list).
    pub default_allow: bool,
    /// The exceptions, in insertion order.
    pub exceptions: Vec<Exception>,
}

impl DeviceState {
    /// The state after `deny a` (what sealrun starts from on every container).
    pub fn deny_all() -> DeviceState {
        DeviceState {
            default_allow: false,
            exceptions: Vec::new(),
        }
    }

    /// Apply one rule as the kernel applies a write to `devices.allow`/`devices.deny`.
    pub fn apply(&mut self, rule: &Rule) {
        let Some(kind) = rule.kind else {
            self.default_allow = rule.allow;
            self.exceptions.clear();
            return;
        };
        let same = |e: &Exception| e.kind == kind && e.major == rule.major && e.minor == rule.minor;
        if rule.allow != self.default_allow {
            // An exception to the default: add it, or widen an identical one.
            if let Some(e) = self.exceptions.iter_mut().find(|e| same(e)) {
                e.access |= rule.access;
            } else {
                self.exceptions.push(Exception {
                    kind,
                    major: rule.major,
                    minor: rule.minor,
                    access: rule.access,
                });
            }
        } else {
            // Same as the default: narrow identical exceptions (only identical ones, as the
            // kernel does: a rule never punches a hole into a wildcard exception).
            for e in self.exceptions.iter_mut().filter(|e| same(e)) {
                e.access &= !rule.access;
            }
            self.exceptions.retain(|e| e.access != 0);
        }
    }

    /// The state the rules produce, starting from deny-all.
    pub fn from_rules(rules: &[Rule]) -> DeviceState {
        let mut s = DeviceState::deny_all();
        for r in rules {
            s.apply(r);
        }
        s
    }

    /// The kernel's decision for one access (`ACC_*` bits, possibly several).
    pub fn allows(&self, kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        let matches = |e: &&Exception| {
            e.kind == kind
                && e.major.is_none_or(|m| m == major)
                && e.minor.is_none_or(|m| m == minor)
        };
        if self.default_allow {
            // Denied if any exception overlaps the request.
            !self
                .exceptions
                .iter()
                .filter(matches)
                .any(|e| e.access & access != 0)
        } else {
            // Allowed only if one exception covers the whole request.
            self.exceptions
                .iter()
                .filter(matches)
                .any(|e| access & !e.access == 0)
        }
    }

    /// `devices.list` as the kernel prints it for this state (`a *:* rwm` for allow-all).
    pub fn v1_list(&self) -> Vec<String> {
        if self.default_allow {
            return vec!["a *:* rwm".to_string()];
        }
        self.exceptions
            .iter()
            .map(|e| {
                Rule {
                    allow: true,
                    kind: Some(e.kind),
                    major: e.major,
                    minor: e.minor,
                    access: e.access,
                }
                .v1_line()
            })
            .collect()
    }
}

// eBPF encoding (include/uapi/linux/bpf.h, bpf_common.h).
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// Compile a device state into a cgroup device program. The context (`struct
/// bpf_cgroup_dev_ctx`) holds `access_type` (device type in the low 16 bits, access in the high
/// 16), `major` and `minor`; the program returns 1 to allow and 0 to deny.
pub fn program(state: &DeviceState) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU32_AND_K, R2, 0, 0, 0xffff), // R2 = type
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU32_RSH_K, R3, 0, 0, 16), // R3 = requested access
        insn(LDX_MEM_W, R4, R1, 4, 0),   // R4 = major
        insn(LDX_MEM_W, R5, R1, 8, 0),   // R5 = minor
    ];
    // Each exception is one block; a mismatch jumps to the next block. Exceptions that
    // match return the opposite of the default.
    let verdict = i32::from(!state.default_allow);
    for e in &state.exceptions {
        let mut block = vec![insn(JMP_JNE_K, R2, 0, 0, e.kind as i32)];
        if let Some(m) = e.major {
            block.push(insn(JMP_JNE_K, R4, 0, 0, m as i32));
        }
        if let Some(m) = e.minor {
            block.push(insn(JMP_JNE_K, R5, 0, 0, m as i32));
        }
        if e.access != ACC_ALL {
            block.push(insn(ALU32_MOV_X, R1, R3, 0, 0));
            if state.default_allow {
                // Deny list: the exception applies if the request overlaps it.
                block.push(insn(ALU32_AND_K, R1, 0, 0, i32::from(e.access)));
                block.push(insn(JMP_JEQ_K, R1, 0, 0, 0));
            } else {
                // Allow list: the exception applies if it covers the whole request.
                block.push(insn(ALU32_AND_K, R1, 0, 0, i32::from(!e.access & ACC_ALL)));
                block.push(insn(JMP_JNE_K, R1, 0, 0, 0));
            }
        }
        block.push(insn(ALU32_MOV_K, R0, 0, 0, verdict));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        // Patch every conditional jump to land just past this block.
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K || ins.code == JMP_JEQ_K {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(ALU32_MOV_K, R0, 0, 0, i32::from(state.default_allow)));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions [`program`] emits.
    fn run(prog: &[Insn], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [kind | (access << 16), major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0x0f) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[(i.off / 4) as usize]);
                }
                ALU32_AND_K => r[dst] = u64::from((r[dst] as u32) & (i.imm as u32)),
                ALU32_RSH_K => r[dst] = u64::from((r[dst] as u32) >> i.imm),
                ALU32_MOV_K => r[dst] = u64::from(i.imm as u32),
                ALU32_MOV_X => r[dst] = u64::from(r[src] as u32),
                JMP_JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc = (pc as isize + i.off as isize) as usize;
                    }
                }
                JMP_JEQ_K => {
                    if r[dst] == i.imm as i64 as u64 {
                        pc = (pc as isize + i.off as isize) as usize;
                    }
                }
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn rule(allow: bool, t: &str, major: Option<u32>, minor: Option<u32>, acc: &str) -> Rule {
        Rule {
            allow,
            kind: match t {
                "b" => Some(Kind::Block),
                "c" => Some(Kind::Char),
                _ => None,
            },
            major,
            minor,
            access: parse_access(Some(acc), "x").unwrap(),
        }
    }

    /// Every request shape against a state: the program agrees with the kernel's semantics.
    fn check_agrees(state: &DeviceState) {
        let prog = program(state);
        for kind in [Kind::Block, Kind::Char] {
            for major in [0, 1, 5, 136, 4000] {
                for minor in [0, 1, 3, 5, 9] {
                    for access in 1..=ACC_ALL {
                        let want = state.allows(kind, major, minor, access);
                        let got = run(&prog, kind as u32, u32::from(access), major, minor);
                        assert_eq!(
                            got == 1,
                            want,
                            "{kind:?} {major}:{minor} access {access} in {state:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn default_rules_allow_only_listed_devices() {
        let rules = [
            rule(false, "a", None, None, "rwm"),
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(true, "c", Some(136), None, "rwm"),
            rule(true, "c", Some(1), Some(9), "r"),
        ];
        let s = DeviceState::from_rules(&rules);
        assert!(!s.default_allow);
        assert!(s.allows(Kind::Char, 1, 3, ACC_READ | ACC_WRITE));
        assert!(s.allows(Kind::Char, 136, 7, ACC_WRITE));
        assert!(s.allows(Kind::Char, 1, 9, ACC_READ));
        assert!(!s.allows(Kind::Char, 1, 9, ACC_READ | ACC_WRITE));
        assert!(!s.allows(Kind::Char, 1, 5, ACC_READ));
        assert!(!s.allows(Kind::Block, 1, 3, ACC_READ));
        check_agrees(&s);
        assert_eq!(s.v1_list(), ["c 1:3 rwm", "c 136:* rwm", "c 1:9 r"]);
    }

    /// The rules the plan makes for a deny-all config listing /dev/kmsg (1:11): the v2 program
    /// denies opening it as the v1 list does, and allows only the mknod the init needs.
    #[test]
    fn a_listed_device_under_deny_all_is_not_opened_on_v1_or_v2() {
        let rules = [
            rule(false, "a", None, None, "rwm"),
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(true, "c", Some(5), Some(2), "rwm"),
            rule(true, "c", Some(136), None, "rwm"),
            rule(true, "c", Some(1), Some(11), "m"),
        ];
        let s = DeviceState::from_rules(&rules);
        let prog = program(&s);
        let char = Kind::Char as u32;
        for acc in [ACC_READ, ACC_WRITE] {
            assert_eq!(run(&prog, char, u32::from(acc), 1, 11), 0);
        }
        assert_eq!(run(&prog, char, u32::from(ACC_MKNOD), 1, 11), 1);
        assert_eq!(run(&prog, char, u32::from(ACC_READ | ACC_WRITE), 1, 3), 1);
        assert!(s.v1_list().contains(&"c 1:11 m".to_string()));
        check_agrees(&s);
    }

    #[test]
    fn deny_after_allow_narrows_the_identical_exception_only() {
        let s = DeviceState::from_rules(&[
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(false, "c", Some(1), Some(3), "w"),
            rule(true, "c", Some(5), None, "rw"),
            // Does not punch a hole into 5:* (not identical), as in the kernel.
            rule(false, "c", Some(5), Some(1), "rw"),
        ]);
        assert_eq!(s.v1_list(), ["c 1:3 rm", "c 5:* rw"]);
        assert!(!s.allows(Kind::Char, 1, 3, ACC_WRITE));
        assert!(s.allows(Kind::Char, 5, 1, ACC_READ));
        check_agrees(&s);
    }

    #[test]
    fn identical_allows_merge_their_access() {
        let s = DeviceState::from_rules(&[
            rule(true, "c", Some(1), Some(3), "r"),
            rule(true, "c", Some(1), Some(3), "w"),
        ]);
        assert_eq!(s.v1_list(), ["c 1:3 rw"]);
        assert!(s.allows(Kind::Char, 1, 3, ACC_READ | ACC_WRITE));
        check_agrees(&s);
    }

    #[test]
    fn allow_all_then_deny_is_a_deny_list() {
        let s = DeviceState::from_rules(&[
            rule(true, "a", None, None, "rwm"),
            rule(false, "b", Some(8), None, "w"),
            rule(false, "c", None, Some(5), "rwm"),
        ]);
        assert!(s.default_allow);
        assert!(s.allows(Kind::Block, 8, 1, ACC_READ));
        assert!(!s.allows(Kind::Block, 8, 1, ACC_READ | ACC_WRITE));
        assert!(!s.allows(Kind::Char, 42, 5, ACC_MKNOD));
        assert!(s.allows(Kind::Char, 42, 6, ACC_MKNOD));
        assert_eq!(s.v1_list(), ["a *:* rwm"]);
        check_agrees(&s);
    }

    #[test]
    fn a_type_rule_resets_everything_before_it() {
        let s = DeviceState::from_rules(&[
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(false, "a", Some(1), Some(3), "r"),
        ]);
        assert_eq!(s, DeviceState::deny_all());
        check_agrees(&s);
        // An empty rule list denies everything.
        let empty = DeviceState::from_rules(&[]);
        assert!(!empty.allows(Kind::Char, 1, 3, ACC_READ));
        check_agrees(&empty);
        assert_eq!(program(&empty).len(), 8);
    }

    #[test]
    fn rules_parse_from_oci_with_wildcards_and_field_names() {
        let raw: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":-1,"access":"rw"},
                {"allow":true,"type":"b","major":8}]"#,
        )
        .unwrap();
        let rules = parse_rules(&raw).unwrap();
        assert_eq!(rules[0].v1_line(), "a *:* rwm");
        assert_eq!(rules[1].v1_line(), "c 1:* rw");
        assert_eq!(rules[2].v1_line(), "b 8:* rwm");
        let bad: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":true},{"allow":true,"type":"c","access":"rx"}]"#)
                .unwrap();
        let e = parse_rules(&bad).unwrap_err().to_string();
        assert!(e.contains("linux.resources.devices[1].access"), "{e}");
        let bad: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":true,"type":"c","major":-7}]"#).unwrap();
        let e = parse_rules(&bad).unwrap_err().to_string();
        assert!(e.contains("devices[0].major"), "{e}");
    }

    #[test]
    fn the_kernel_verifier_accepts_the_programs() {
        let states = [
            DeviceState::deny_all(),
            DeviceState::from_rules(&[
                rule(true, "c", Some(1), Some(3), "rwm"),
                rule(true, "c", Some(136), None, "rw"),
                rule(true, "b", None, Some(0), "m"),
            ]),
            DeviceState::from_rules(&[
                rule(true, "a", None, None, "rwm"),
                rule(false, "c", Some(10), Some(200), "r"),
            ]),
        ];
        for state in &states {
            match crate::sys::bpf::prog_load_cgroup_device(&program(state), c"Apache-2.0") {
                Ok(_) => {}
                // Loading needs CAP_BPF/CAP_SYS_ADMIN; unprivileged runs cannot check this.
                Err((nix::errno::Errno::EPERM, _)) if !nix::unistd::geteuid().is_root() => {
                    return crate::test_skip::skip("loading a cgroup device program needs root");
                }
                Err((e, log)) => panic!("{e}: {log}"),
            }
        }
    }

    #[test]
    fn random_rule_lists_compile_to_the_kernels_decisions() {
        // A small deterministic generator (no rand dependency).
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let majors = [None, Some(1), Some(5), Some(136)];
        let minors = [None, Some(3), Some(5), Some(9)];
        for _ in 0..300 {
            let n = next(8) as usize;
            let rules: Vec<Rule> = (0..n)
                .map(|_| Rule {
                    allow: next(2) == 0,
                    kind: match next(7) {
                        0 => None,
                        1..=3 => Some(Kind::Char),
                        _ => Some(Kind::Block),
                    },
                    major: majors[next(4) as usize],
                    minor: minors[next(4) as usize],
                    access: (next(7) + 1) as u8,
                })
                .collect();
            check_agrees(&DeviceState::from_rules(&rules));
        }
    }
}
