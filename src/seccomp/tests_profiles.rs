//! The shipped profiles (rendered for several capability sets) and random profiles, compiled
//! and compared with the reference meaning (interp.rs).

use std::collections::HashSet;

use oci_spec::runtime::Capability;
use serde_json::json;

use super::interp::{self, arch, assert_meaning, errno, spec, verdict, Data, Rng, A0, ALLOW};
use super::*;

/// The capability sets the shipped profiles are checked with: none, Docker's default set,
/// everything.
fn cap_sets() -> Vec<HashSet<Capability>> {
    use Capability::*;
    let docker = interp::DOCKER_CAPS;
    let all = [
        SysAdmin,
        SysPtrace,
        SysModule,
        SysBoot,
        SysTime,
        Syslog,
        SysNice,
        SysPacct,
        SysRawio,
        SysChroot,
        Bpf,
        Perfmon,
        SysTtyConfig,
        DacReadSearch,
    ];
    vec![HashSet::new(), docker.into(), all.into()]
}

#[test]
fn shipped_profiles_render_and_compile() {
    for (name, _) in profiles::shipped() {
        for (i, caps) in cap_sets().iter().enumerate() {
            let s = profile(name, caps).expect("renders");
            let c = assert_meaning(&s, 100 + i as u64, 3);
            assert!(c.warnings.is_empty(), "{name}: {:?}", c.warnings);
            let admin = caps.contains(&Capability::SysAdmin);
            let ns_clone = [0x1000_0000 | 0x11, 0, 0, 0, 0, 0];
            let eperm = errno(libc::EPERM);
            assert_eq!(verdict(&c, "clone", [0x11, 0, 0, 0, 0, 0]), ALLOW, "{name}");
            let want = if admin && name == "default" {
                ALLOW
            } else {
                eperm
            };
            assert_eq!(verdict(&c, "clone", ns_clone), want, "{name} {i}");
            let want = if admin && name == "default" {
                ALLOW
            } else {
                errno(libc::ENOSYS)
            };
            assert_eq!(verdict(&c, "clone3", A0), want, "{name} {i}");
            assert_eq!(verdict(&c, "socket", [40, 1, 0, 0, 0, 0]), eperm, "{name}");
            assert_eq!(verdict(&c, "socket", [2, 1, 0, 0, 0, 0]), ALLOW, "{name}");
            assert_eq!(verdict(&c, "keyctl", A0), eperm, "{name}");
            assert_eq!(verdict(&c, "io_uring_setup", A0), eperm, "{name}");
            let want = if admin && name == "default" {
                ALLOW
            } else {
                eperm
            };
            assert_eq!(verdict(&c, "mount", A0), want, "{name} {i}");
            assert_eq!(
                verdict(&c, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
                ALLOW
            );
            assert_eq!(
                verdict(&c, "personality", [0x0040_0000, 0, 0, 0, 0, 0]),
                eperm
            );
            assert_eq!(verdict(&c, "getpid", A0), ALLOW);
            // One past the newest syscall known here.
            let newest = arch().table().iter().map(|e| e.1).max().unwrap_or(0);
            let progs: Vec<&[SockFilter]> = c.filters.iter().map(|f| &f.program[..]).collect();
            let data = Data::call(arch(), newest + 1, A0);
            assert_eq!(interp::run_stack(&progs, &data), errno(libc::ENOSYS));
        }
    }
    let strict = profile("strict", &cap_sets()[2]).expect("renders");
    let c = compile(&strict).expect("compiles");
    assert_eq!(
        verdict(&c, "ioctl", [1, 0x5412, 0, 0, 0, 0]),
        errno(libc::EPERM)
    );
    assert_eq!(
        verdict(&c, "ioctl", [1, 0x1_0000_5412, 0, 0, 0, 0]),
        errno(libc::EPERM)
    );
    assert_eq!(verdict(&c, "ioctl", [1, 0x5401, 0, 0, 0, 0]), ALLOW);
    assert_eq!(verdict(&c, "ptrace", A0), errno(libc::EPERM));
}

/// Random profiles over a small pool of syscalls (so rules overlap a lot), every action,
/// operator and a few errno values, compared with the reference meaning.
#[test]
fn random_profiles_mean_what_the_reference_says() {
    let names = [
        "read",
        "getpid",
        "getppid",
        "dup",
        "clone",
        "socket",
        "ioctl",
        "seccomp",
        "pipe2",
        "no_such_call",
    ];
    let actions = [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_LOG",
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_NOTIFY",
    ];
    let ops = interp::CMP_OPS;
    let values: [u64; 8] = [0, 1, 2, 5, 0xff, 1 << 32, (1 << 32) | 5, u64::MAX];
    let mut rng = Rng::new(0x5ea1);
    for round in 0..300 {
        let errno_of = |rng: &mut Rng, action: &str| -> Option<u32> {
            match action {
                "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE" => {
                    *rng.pick(&[None, Some(1), Some(13), Some(38)])
                }
                _ => None,
            }
        };
        let default = *rng.pick(&actions[..8]);
        let mut profile = json!({"defaultAction": default, "listenerPath": "/run/agent"});
        if let Some(e) = errno_of(&mut rng, default) {
            profile["defaultErrnoRet"] = json!(e);
        }
        let mut rules = Vec::new();
        for _ in 0..1 + rng.below(8) {
            let action = *rng.pick(&actions);
            let n: Vec<&str> = (0..1 + rng.below(3)).map(|_| *rng.pick(&names)).collect();
            let mut rule = json!({"names": n, "action": action});
            if let Some(e) = errno_of(&mut rng, action) {
                rule["errnoRet"] = json!(e);
            }
            let args: Vec<serde_json::Value> = (0..rng.below(4))
                .map(|_| {
                    let mut a = json!({"index": rng.below(3), "value": *rng.pick(&values),
                                       "op": *rng.pick(&ops)});
                    if rng.below(2) == 0 {
                        a["valueTwo"] = json!(*rng.pick(&values) & 0xff);
                    }
                    a
                })
                .collect();
            if !args.is_empty() {
                rule["args"] = json!(args);
            }
            rules.push(rule);
        }
        profile["syscalls"] = json!(rules);
        let s = spec(profile);
        let compiled = assert_meaning(&s, round, 1);
        assert_eq!(compiled.filters.len(), 1);
    }
}
