//! What a resolved profile does with one syscall, whatever its arguments: the question an
//! operator policy and `sealrun check` ask ("does this profile let `ptrace` through?").

use super::model::{Matcher, Model, Ret};

/// What a profile does with every call of one syscall (native architecture).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Allowed (or only logged) whatever the arguments.
    Always,
    /// Allowed for some arguments, refused for others, or left to a tracer or a seccomp agent.
    Sometimes,
    /// Refused (errno, trap or kill) whatever the arguments.
    Never,
}

/// How one action treats the calls it matches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Refuse,
    /// A tracer or a user-space agent decides.
    Delegate,
}

fn effect(ret: Ret) -> Effect {
    if ret == Ret::ALLOW || ret == Ret::LOG {
        Effect::Allow
    } else if ret == Ret::USER_NOTIF || ret.rank() == Ret::trace(0).rank() {
        Effect::Delegate
    } else {
        Effect::Refuse
    }
}

/// The verdict of `model` on syscall number `nr`: walk the groups in chain order as the
/// program does; a conditional group decides only part of the calls, the rest go on.
pub(crate) fn verdict(model: &Model, nr: u32) -> Verdict {
    let mut some_allowed = false;
    let mut some_refused = false;
    for g in &model.groups {
        let Some(m) = g.syscalls.get(&nr) else {
            continue;
        };
        let e = effect(g.ret);
        match m {
            Matcher::All => return decide(e, some_allowed, some_refused),
            Matcher::Any(_) => match e {
                Effect::Allow | Effect::Delegate => some_allowed = true,
                Effect::Refuse => some_refused = true,
            },
        }
    }
    // Calls above the highest number the profile names get ENOSYS when the default is ERRNO;
    // either way the default action refuses them then.
    decide(effect(model.default), some_allowed, some_refused)
}

fn decide(e: Effect, some_allowed: bool, some_refused: bool) -> Verdict {
    match e {
        Effect::Allow if !some_refused => Verdict::Always,
        Effect::Refuse if !some_allowed => Verdict::Never,
        _ => Verdict::Sometimes,
    }
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::LinuxSeccomp;
    use serde_json::json;

    use super::super::{compile_with, interp, Verdict};

    fn profile(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    fn verdicts(p: &LinuxSeccomp, deny: &[&str]) -> std::collections::BTreeMap<String, Verdict> {
        compile_with(p, deny, &["getpid".to_string()])
            .unwrap()
            .verdicts
    }

    #[test]
    fn verdicts_follow_the_precedence() {
        let p = profile(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["ptrace", "getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}]},
                {"names": ["unshare"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["keyctl"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["bpf"], "action": "SCMP_ACT_KILL"}
            ],
            "listenerPath": "/run/agent.sock"
        }));
        let v = verdicts(&p, &[]);
        assert_eq!(v["getpid"], Verdict::Always);
        assert_eq!(v["ptrace"], Verdict::Sometimes);
        assert_eq!(v["unshare"], Verdict::Sometimes);
        assert_eq!(v["keyctl"], Verdict::Sometimes);
        assert_eq!(v["bpf"], Verdict::Never);
        assert_eq!(v["mount"], Verdict::Never);
        let allow_all = profile(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]}));
        let v = verdicts(&allow_all, &[]);
        assert_eq!(v["ptrace"], Verdict::Always);
        assert_eq!(v["mount"], Verdict::Never);
    }

    #[test]
    fn runtime_denies_refuse_with_eperm_and_keep_the_summary() {
        let arch = interp::arch();
        let nr = arch.lookup("open_by_handle_at").unwrap();
        for p in [
            profile(json!({"defaultAction": "SCMP_ACT_ALLOW"})),
            profile(json!({"defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["open_by_handle_at", "read"], "action": "SCMP_ACT_ALLOW"}]})),
            profile(json!({"defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["open_by_handle_at"], "action": "SCMP_ACT_LOG"}]})),
        ] {
            let plain = compile_with(&p, &[], &[]).unwrap();
            let hardened = compile_with(&p, &["open_by_handle_at"], &[]).unwrap();
            assert_eq!(hardened.summary.runtime_denies, ["open_by_handle_at"]);
            assert_eq!(hardened.summary.digest, plain.summary.digest);
            assert_eq!(hardened.summary.rules, plain.summary.rules);
            assert_eq!(hardened.verdicts["open_by_handle_at"], Verdict::Never);
            let data = interp::Data::call(arch, nr, [0; 6]);
            let ret = interp::run(&hardened.filters[0].program, &data);
            assert_eq!(ret, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32);
            assert_ne!(interp::run(&plain.filters[0].program, &data), ret);
        }
        // Already refused: nothing added, the program is the plain one.
        let p = profile(json!({"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}));
        let plain = compile_with(&p, &[], &[]).unwrap();
        let hardened = compile_with(&p, &["open_by_handle_at"], &[]).unwrap();
        assert!(hardened.summary.runtime_denies.is_empty());
        assert_eq!(hardened.filters[0].program, plain.filters[0].program);
    }
}
