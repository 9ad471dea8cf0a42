//! Unit tests of compile: operators, conflicts, actions, errno defaults, guards, validation,
//! warnings, flags and summary; every profile is also checked against the reference meaning
//! (interp.rs) over many synthetic calls.

use serde_json::json;

use super::interp::{
    self, arch, assert_meaning, config_field, errno, nr, spec, verdict, Data, A0, ALLOW,
};
use super::*;
use crate::sys::seccomp::FilterFlags;

#[test]
fn every_operator_on_64_bits() {
    let ops = [
        ("SCMP_CMP_EQ", 7u64),
        ("SCMP_CMP_NE", 7),
        ("SCMP_CMP_LT", 7),
        ("SCMP_CMP_LE", 7),
        ("SCMP_CMP_GT", 7),
        ("SCMP_CMP_GE", 7),
        ("SCMP_CMP_EQ", 0x1_0000_0007),
        ("SCMP_CMP_LT", 0x1_0000_0000),
        ("SCMP_CMP_GT", 0xffff_ffff),
    ];
    for (i, (op, value)) in ops.into_iter().enumerate() {
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["dup"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 1, "value": value, "op": op}]}]
        }));
        assert_meaning(&s, i as u64, 4);
        let c = compile(&s).expect("compiles");
        // Only the upper half differs: a 32-bit compare would get these wrong.
        let hi = [0, value ^ (1 << 32), 0, 0, 0, 0];
        let lo = [0, value, 0, 0, 0, 0];
        let holds = |arg: u64| match op {
            "SCMP_CMP_EQ" => arg == value,
            "SCMP_CMP_NE" => arg != value,
            "SCMP_CMP_LT" => arg < value,
            "SCMP_CMP_LE" => arg <= value,
            "SCMP_CMP_GT" => arg > value,
            _ => arg >= value,
        };
        for args in [hi, lo] {
            let want = if holds(args[1]) {
                errno(libc::EPERM)
            } else {
                ALLOW
            };
            assert_eq!(
                verdict(&c, "dup", args),
                want,
                "{op} {value:#x} on {:#x}",
                args[1]
            );
        }
    }
}

#[test]
fn masked_eq_uses_value_as_mask_and_value_two_as_datum() {
    // clone without namespace flags: (flags & 0x7e020000) == 0
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x7e02_0000u64, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 1, "value": 0xffff_ffffu64, "valueTwo": 0x5412,
                       "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    }));
    let c = assert_meaning(&s, 1, 8);
    let eperm = errno(libc::EPERM);
    assert_eq!(verdict(&c, "clone", [0x0100_0011, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(verdict(&c, "clone", [0x1000_0011, 0, 0, 0, 0, 0]), eperm);
    assert_eq!(verdict(&c, "ioctl", [0, 0x5412, 0, 0, 0, 0]), ALLOW);
    assert_eq!(verdict(&c, "ioctl", [0, 0x7_0000_5412, 0, 0, 0, 0]), ALLOW);
    assert_eq!(verdict(&c, "ioctl", [0, 0x5413, 0, 0, 0, 0]), eperm);
}

#[test]
fn masked_eq_datum_outside_mask_never_matches() {
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["dup"], "action": "SCMP_ACT_KILL_PROCESS",
                      "args": [{"index": 0, "value": 0xf0, "valueTwo": 0x0f,
                                "op": "SCMP_CMP_MASKED_EQ"}]}]
    }));
    let c = assert_meaning(&s, 2, 8);
    assert!(c.warnings.iter().any(|w| w.contains("syscalls[0].args[0]")));
    assert_eq!(verdict(&c, "dup", [0x0f, 0, 0, 0, 0, 0]), ALLOW);
}

#[test]
fn args_and_within_a_rule_and_rules_or() {
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["dup"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_GE"},
                      {"index": 1, "value": 20, "op": "SCMP_CMP_LE"}]},
            {"names": ["dup"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 99, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let c = assert_meaning(&s, 3, 16);
    let at = |a: u64, b: u64| verdict(&c, "dup", [a, b, 0, 0, 0, 0]);
    assert_eq!(at(9, 0), errno(libc::EPERM));
    assert_eq!(at(10, 20), ALLOW);
    assert_eq!(at(10, 21), errno(libc::EPERM));
    assert_eq!(at(99, 21), ALLOW);
}

/// runc (with libseccomp) reads two conditions on one argument as alternatives: each becomes a
/// rule of its own. Profiles written for runc list allowed values that way.
#[test]
fn conditions_on_one_argument_are_alternatives() {
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["dup"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 20, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 5, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let c = assert_meaning(&s, 5, 16);
    let at = |a: u64, b: u64| verdict(&c, "dup", [a, b, 0, 0, 0, 0]);
    assert_eq!(at(10, 0), errno(libc::EPERM));
    assert_eq!(at(20, 0), errno(libc::EPERM));
    assert_eq!(at(7, 5), errno(libc::EPERM));
    assert_eq!(at(7, 0), ALLOW);
}

#[test]
fn conflicts_resolve_by_kernel_precedence() {
    // Allowlist: an ALLOW exception on clone cannot beat an ERRNO rule on all of clone.
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x7e02_0000u64, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    let c = assert_meaning(&s, 4, 8);
    assert_eq!(
        verdict(&c, "clone", [0x11, 0, 0, 0, 0, 0]),
        errno(libc::ENOSYS)
    );
    assert_eq!(verdict(&c, "getpid", A0), ALLOW);
    assert_eq!(verdict(&c, "dup", A0), errno(libc::EPERM));

    // The same with the default's own action: the rule still wins over the ALLOW.
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let c = assert_meaning(&s, 5, 8);
    assert_eq!(verdict(&c, "socket", [2, 1, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        verdict(&c, "socket", [40, 1, 0, 0, 0, 0]),
        errno(libc::EPERM)
    );

    // Denylist: KILL beats ERRNO, everything else allowed, ALLOW rules are no-ops.
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["dup", "getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["dup"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    let c = assert_meaning(&s, 6, 8);
    assert_eq!(
        verdict(&c, "dup", [3, 0, 0, 0, 0, 0]),
        libc::SECCOMP_RET_KILL_PROCESS
    );
    assert_eq!(verdict(&c, "dup", [4, 0, 0, 0, 0, 0]), errno(libc::EACCES));
    assert_eq!(verdict(&c, "getppid", A0), errno(libc::EACCES));
    assert_eq!(verdict(&c, "getpid", A0), ALLOW);
    assert_eq!(c.summary.filters, 1);
}

#[test]
fn equal_ranks_go_to_the_action_listed_first() {
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["getpid", "dup"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22},
            {"names": ["dup"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["dup"], "action": "SCMP_ACT_TRACE"}
        ]
    }));
    let c = assert_meaning(&s, 7, 8);
    assert_eq!(verdict(&c, "getpid", A0), errno(libc::EACCES));
    assert_eq!(verdict(&c, "dup", A0), errno(libc::EINVAL));
}

#[test]
fn actions_and_errno_defaults() {
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_KILL"},
            {"names": ["write"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["open"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["close"], "action": "SCMP_ACT_TRAP"},
            {"names": ["stat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["fstat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0},
            {"names": ["lstat"], "action": "SCMP_ACT_TRACE"},
            {"names": ["poll"], "action": "SCMP_ACT_TRACE", "errnoRet": 42},
            {"names": ["lseek"], "action": "SCMP_ACT_LOG"},
            {"names": ["mmap"], "action": "SCMP_ACT_NOTIFY"}
        ],
        "listenerPath": "/run/agent.sock"
    }));
    let c = assert_meaning(&s, 8, 4);
    assert_eq!(verdict(&c, "read", A0), libc::SECCOMP_RET_KILL_THREAD);
    assert_eq!(verdict(&c, "write", A0), libc::SECCOMP_RET_KILL_THREAD);
    assert_eq!(verdict(&c, "open", A0), libc::SECCOMP_RET_KILL_PROCESS);
    assert_eq!(verdict(&c, "close", A0), libc::SECCOMP_RET_TRAP);
    assert_eq!(verdict(&c, "stat", A0), errno(libc::EPERM));
    assert_eq!(verdict(&c, "fstat", A0), errno(0));
    assert_eq!(verdict(&c, "lstat", A0), libc::SECCOMP_RET_TRACE | 1);
    assert_eq!(verdict(&c, "poll", A0), libc::SECCOMP_RET_TRACE | 42);
    assert_eq!(verdict(&c, "lseek", A0), libc::SECCOMP_RET_LOG);
    assert_eq!(verdict(&c, "mmap", A0), libc::SECCOMP_RET_USER_NOTIF);
    assert_eq!(verdict(&c, "getpid", A0), ALLOW);
    let listener = c.listener.as_ref().expect("notify listener");
    assert_eq!(listener.path, PathBuf::from("/run/agent.sock"));
    assert!(c.filters[listener.filter]
        .flags
        .contains(FilterFlags::NEW_LISTENER));
}

#[test]
fn default_errno_and_newer_syscalls() {
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 13,
        "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let c = assert_meaning(&s, 9, 4);
    assert_eq!(verdict(&c, "dup", A0), errno(libc::EACCES));
    // exit_group (231 on x86_64) is the newest named: pipe2 (293) is "newer".
    assert!(nr("pipe2") > nr("exit_group"));
    assert_eq!(verdict(&c, "pipe2", A0), errno(libc::ENOSYS));
    // Not for other default actions.
    for default in ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_LOG"] {
        let s = spec(json!({
            "defaultAction": default,
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
        }));
        let c = assert_meaning(&s, 10, 2);
        assert_ne!(verdict(&c, "pipe2", A0), errno(libc::ENOSYS), "{default}");
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn i386_follows_the_profile_when_named() {
    let i386 = arch().companion.expect("i386 table");
    for default in ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"] {
        let s = spec(json!({
            "defaultAction": default,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["getpid", "mmap2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
                {"names": ["getppid", "socketcall", "arch_prctl"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["dup"], "action": "SCMP_ACT_KILL_PROCESS",
                 "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 4, "op": "SCMP_CMP_EQ"}]}
            ]
        }));
        let c = assert_meaning(&s, 21, 3);
        let progs: Vec<&[SockFilter]> = c.filters.iter().map(|f| &f.program[..]).collect();
        let on_i386 = |name: &str, a0: u64| {
            let mut args = A0;
            args[0] = a0;
            let data = Data {
                arch: i386.audit_arch,
                ..Data::call(arch(), i386.lookup(name).expect("i386 name"), args)
            };
            interp::run_stack(&progs, &data)
        };
        assert_eq!(on_i386("getpid", 0), errno(5), "{default}");
        assert_eq!(on_i386("mmap2", 0), errno(5), "{default}");
        assert_eq!(on_i386("getppid", 0), ALLOW, "{default}");
        assert_eq!(
            on_i386("dup", 4),
            libc::SECCOMP_RET_KILL_PROCESS,
            "{default}"
        );
        assert!(
            c.warnings.iter().all(|w| !w.contains("architectures")),
            "{:?}",
            c.warnings
        );
    }
}

#[test]
fn foreign_tables_are_refused_even_in_a_denylist() {
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let c = assert_meaning(&s, 11, 2);
    let progs: Vec<&[SockFilter]> = c.filters.iter().map(|f| &f.program[..]).collect();
    for &foreign in arch().compat_audit {
        let data = Data {
            arch: foreign,
            ..Data::call(arch(), 20, A0)
        };
        assert_eq!(interp::run_stack(&progs, &data), errno(libc::ENOSYS));
    }
    if let Some(bit) = arch().abi_bit {
        let data = Data::call(arch(), bit | nr("getpid"), A0);
        assert_eq!(interp::run_stack(&progs, &data), errno(libc::ENOSYS));
        assert_eq!(
            c.warnings
                .iter()
                .filter(|w| w.contains("architectures"))
                .count(),
            1
        );
    }
    // Even with no rules at all a filter is loaded (the guard).
    let c = compile(&spec(json!({"defaultAction": "SCMP_ACT_ALLOW"}))).expect("compiles");
    assert_eq!(c.filters.len(), 1);
    assert_eq!(verdict(&c, "getpid", A0), ALLOW);
}

#[test]
fn unknown_names_are_skipped_with_one_warning() {
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["getpid", "no_such_call", "fstat64"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["another_unknown"], "action": "SCMP_ACT_KILL"}
        ]
    }));
    let c = assert_meaning(&s, 12, 2);
    let w: Vec<&String> = c
        .warnings
        .iter()
        .filter(|w| w.contains("unknown"))
        .collect();
    assert_eq!(w.len(), 1, "{:?}", c.warnings);
    assert!(
        w[0].contains("another_unknown, fstat64, no_such_call"),
        "{}",
        w[0]
    );
    assert_eq!(verdict(&c, "getpid", A0), ALLOW);
    assert_eq!(c.summary.rules.get("SCMP_ACT_ALLOW"), Some(&1));
    assert_eq!(c.summary.rules.get("SCMP_ACT_KILL"), None);
}

#[test]
fn validation_errors_name_the_field() {
    let rule = |extra: serde_json::Value| {
        let mut r = json!({"names": ["getpid"], "action": "SCMP_ACT_ALLOW"});
        r.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        r
    };
    let ok = || rule(json!({}));
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [ok(), ok(), ok(),
                rule(json!({"errnoRet": 5}))]}),
            "linux.seccomp.syscalls[3].errnoRet",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}),
            "linux.seccomp.defaultErrnoRet",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}),
            "linux.seccomp.defaultErrnoRet",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(json!({"args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}))]}),
            "linux.seccomp.syscalls[0].args[1].index",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [ok(),
                {"names": [], "action": "SCMP_ACT_ERRNO"}]}),
            "linux.seccomp.syscalls[1].names",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getpid", ""], "action": "SCMP_ACT_ERRNO"}]}),
            "linux.seccomp.syscalls[0].names[1]",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}),
            "linux.seccomp.listenerMetadata",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.listenerPath",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}),
            "linux.seccomp.defaultAction",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "syscalls": [
                {"names": ["getpid", "write"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.syscalls[0].names[1]",
        ),
    ];
    for (profile, field) in cases {
        let err = compile(&spec(profile.clone())).expect_err(field);
        assert_eq!(config_field(err), field, "{profile}");
    }
}

#[test]
fn parser_rejects_unknown_strings_and_accepts_the_spec_lists() {
    for bad in [
        json!({"defaultAction": "SCMP_ACT_NOPE"}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"],
            "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}),
    ] {
        assert!(
            serde_json::from_value::<LinuxSeccomp>(bad.clone()).is_err(),
            "{bad}"
        );
    }
    let rules: Vec<serde_json::Value> = super::interp::CMP_OPS
        .iter()
        .map(|op| {
            json!({"names": ["dup"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 3, "op": op}]})
        })
        .collect();
    let all = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
            "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
            "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
            "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
            "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64"],
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": rules
    });
    let s = spec(all);
    let c = assert_meaning(&s, 13, 4);
    assert!(c.warnings.iter().any(|w| w.contains("WAIT_KILLABLE_RECV")));
    assert_eq!(
        c.filters[0].flags,
        FilterFlags::TSYNC | FilterFlags::LOG | FilterFlags::SPEC_ALLOW
    );
}

#[test]
fn notify_flags() {
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "listenerPath": "/run/agent.sock",
        "listenerMetadata": "hello",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"},
                     {"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let c = compile(&s).expect("compiles");
    assert_eq!(
        c.filters[0].flags,
        FilterFlags::TSYNC
            | FilterFlags::TSYNC_ESRCH
            | FilterFlags::NEW_LISTENER
            | FilterFlags::WAIT_KILLABLE_RECV
    );
    let l = c.listener.as_ref().expect("listener");
    assert_eq!(l.metadata.as_deref(), Some("hello"));
    assert!(
        c.warnings.iter().any(|w| w.contains("may hang")),
        "{:?}",
        c.warnings
    );
    // listenerPath without NOTIFY is ignored.
    let s = spec(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"}));
    assert!(compile(&s).expect("compiles").listener.is_none());
}

#[test]
fn summary_digest_and_counts() {
    let v = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                     {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    });
    let a = compile(&spec(v.clone())).expect("compiles");
    let b = compile(&spec(v)).expect("compiles");
    assert_eq!(a.summary.digest, b.summary.digest);
    assert_eq!(a.summary.digest.len(), 64);
    assert_eq!(a.summary.rules.get("SCMP_ACT_ALLOW"), Some(&2));
    assert_eq!(a.summary.rules.get("SCMP_ACT_ERRNO"), Some(&1));
    assert_eq!(a.summary.default_action, "SCMP_ACT_ERRNO");
    assert_eq!(a.summary.filters, 1);
    assert_eq!(a.summary.instructions, a.filters[0].program.len());
    let c = compile(&spec(json!({"defaultAction": "SCMP_ACT_ALLOW"}))).expect("compiles");
    assert_ne!(a.summary.digest, c.summary.digest);
    assert!(serde_json::to_string(&a.summary).is_ok());
}
