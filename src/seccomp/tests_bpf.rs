//! The generator's size and its meaning on large and grouped profiles: the default profile
//! plus the cost-curve benchmark's generated rules (benches/runtimes/curve.rs) must stay well
//! under the kernel's 4096 instructions and below libseccomp's count for the same profile,
//! and every compiled program is run (interp.rs) against the reference meaning.

use serde_json::{json, Value};

use super::bpf::MAX_INSNS;
use super::interp::{self, assert_meaning, config_field, errno, spec, verdict, Rng, A0, ALLOW};
use super::*;

/// The default profile (Docker's capabilities) as JSON.
pub(crate) fn default_json() -> Value {
    default_profile_json(crate::spec::DEFAULT_CAPS).expect("default profile renders")
}

/// The default profile plus `n` rules as the benchmark generates them: `SCMP_ACT_ERRNO`
/// with `EACCES` when argument `i / pool % 6` equals `1000 + i`, on refused syscalls.
pub(crate) fn with_generated_rules(n: usize) -> Value {
    let mut profile = default_json();
    let extra = super::generated_rules::extra_rules(&profile, n, known_syscall);
    profile["syscalls"]
        .as_array_mut()
        .expect("syscalls")
        .extend(extra);
    profile
}

/// The instruction counts the report quotes; sealrun's before this generator: 167, 602,
/// 2352 and 7087 (refused); libseccomp's (crun, same run): 321, 565, 1409, 2113.
#[test]
fn generated_rule_profiles_stay_small() {
    let mut counts = Vec::new();
    for (n, libseccomp) in [(0, 321), (50, 565), (300, 1409), (1000, 2113)] {
        let s = spec(with_generated_rules(n));
        let c = assert_meaning(&s, n as u64, 2);
        let len = c.filters[0].program.len();
        assert_eq!(c.summary.instructions, len);
        counts.push(format!("+{n}: {len}"));
        assert!(len < MAX_INSNS, "+{n}: {len} instructions");
        assert!(
            len < libseccomp,
            "+{n}: {len} instructions, libseccomp {libseccomp}"
        );
    }
    eprintln!("instructions: {}", counts.join(", "));
}

/// Spot checks of the +1000 profile on values whose high halves differ.
#[test]
fn generated_rules_keep_their_meaning() {
    let s = spec(with_generated_rules(1000));
    let c = compile(&s).expect("compiles");
    let rule = &with_generated_rules(1000)["syscalls"]
        .as_array()
        .expect("rules")
        .clone();
    let eacces = errno(libc::EACCES);
    let eperm = errno(libc::EPERM);
    for r in rule.iter().rev().take(300) {
        let name = r["names"][0].as_str().expect("name");
        let index = r["args"][0]["index"].as_u64().expect("index") as usize;
        let value = r["args"][0]["value"].as_u64().expect("value");
        let mut args = A0;
        args[index] = value;
        assert_eq!(verdict(&c, name, args), eacces, "{name} arg{index}={value}");
        args[index] = value | (1 << 32);
        assert_eq!(verdict(&c, name, args), eperm, "{name} high half");
        args[index] = value + 1_000_000;
        assert_eq!(verdict(&c, name, args), eperm, "{name} other value");
    }
    assert_eq!(verdict(&c, "getpid", A0), ALLOW);
}

/// Random profiles built to hit the grouping: many equalities and masked equalities on the
/// same arguments sharing high words, every ordering operator with non-zero high halves,
/// several conditions on one argument (OR) and on several (AND), several actions, and some
/// profiles long enough to need trampolines.
#[test]
fn grouped_conditions_mean_what_the_reference_says() {
    let names = ["getppid", "dup", "ioctl", "socket", "read"];
    let actions = [
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_LOG",
    ];
    let highs: [u64; 4] = [0, 1, 0x8000_0000, 0xffff_ffff];
    let mut rng = Rng::new(0xb9f);
    for round in 0..150 {
        let default = *rng.pick(&actions[..2]);
        let mut rules = Vec::new();
        // Every tenth profile long enough that blocks outgrow a conditional jump's reach.
        let count = if round % 10 == 0 {
            150 + rng.below(150)
        } else {
            1 + rng.below(12)
        };
        for _ in 0..count {
            let action = *rng.pick(&actions);
            let mut rule = json!({"names": [*rng.pick(&names)], "action": action});
            if action == "SCMP_ACT_ERRNO" {
                rule["errnoRet"] = json!(*rng.pick(&[1u32, 13, 22]));
            }
            let shared = rng.below(6);
            let args: Vec<Value> = (0..rng.below(5))
                .map(|_| {
                    let value = (*rng.pick(&highs) << 32) | rng.below(4) as u64;
                    let index = if rng.below(2) == 0 {
                        shared
                    } else {
                        rng.below(6)
                    };
                    let op = *rng.pick(&interp::CMP_OPS);
                    let mut a = json!({"index": index, "value": value, "op": op});
                    if op == "SCMP_CMP_MASKED_EQ" {
                        a["value"] = json!(*rng.pick(&[u64::MAX, 0xffff_0000_0000_0003, 3, 0]));
                        a["valueTwo"] = json!(value & 0xffff_0000_0000_0003);
                    }
                    a
                })
                .collect();
            if !args.is_empty() {
                rule["args"] = json!(args);
            }
            rules.push(rule);
        }
        let s = spec(json!({"defaultAction": default, "syscalls": rules}));
        assert_meaning(&s, round, 3);
    }
}

/// A check block longer than a conditional jump reaches (255): the generator must route the
/// far targets through trampolines, and the program still means the same.
#[test]
fn far_targets_are_reached() {
    let values: Vec<u64> = (0..700).map(|i| (i % 3) << 32 | (i * 7)).collect();
    let many: Vec<Value> = values
        .iter()
        .map(|v| json!({"index": 2, "value": v, "op": "SCMP_CMP_EQ"}))
        .collect();
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["read", "write", "close", "getppid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ioctl", "dup"], "action": "SCMP_ACT_ALLOW", "args": many},
            {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [{"index": 1, "value": 0x5401, "op": "SCMP_CMP_GE"},
                      {"index": 0, "value": 3, "op": "SCMP_CMP_NE"}]},
        ]
    }));
    let c = assert_meaning(&s, 7, 3);
    assert!(c.filters[0].program.len() > 2 * 255);
    for v in [values[0], values[350], values[699]] {
        assert_eq!(verdict(&c, "dup", [0, 0, v, 0, 0, 0]), ALLOW);
        assert_eq!(verdict(&c, "dup", [0, 0, v ^ (1 << 40), 0, 0, 0]), errno(1));
    }
    assert_eq!(verdict(&c, "ioctl", [4, 0x5402, 1, 0, 0, 0]), errno(22));
    assert_eq!(verdict(&c, "ioctl", [3, 0x5402, 1, 0, 0, 0]), errno(1));
    assert_eq!(verdict(&c, "ioctl", [3, 0x5402, 21, 0, 0, 0]), ALLOW);
}

/// A profile too large for one program: one error naming `linux.seccomp.syscalls` with the
/// count and the limit (no generator error text).
#[test]
fn too_large_names_the_field_and_the_count() {
    let s = spec(too_large());
    let err = compile(&s).expect_err("too large");
    let text = err.to_string();
    assert!(text.contains("BPF instructions"), "{text}");
    assert!(text.contains("4096"), "{text}");
    assert!(!text.contains('\n'), "{text}");
    assert_eq!(config_field(err), "linux.seccomp.syscalls");
}

/// 1200 rules of one action no grouping can merge (two range tests each): one group, which
/// seccompiler refused with its own message before sealrun could name the field.
pub(crate) fn too_large() -> Value {
    let rules: Vec<Value> = (0..1200)
        .map(|i| {
            json!({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES,
                   "args": [{"index": i % 6, "value": i, "op": "SCMP_CMP_GT"},
                            {"index": (i + 1) % 6, "value": i, "op": "SCMP_CMP_LT"}]})
        })
        .collect();
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})
}
