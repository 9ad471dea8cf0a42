//! What a resolved profile does with one syscall, whatever its arguments: the question an
//! operator policy and `sealrun check` ask ("does this profile let `ptrace` through?").

use super::model::{Matcher, Model, Ret};

/// What a profile does with every call of one syscall (native architecture).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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
