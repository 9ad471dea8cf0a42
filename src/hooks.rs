//! Lifecycle hooks: run each hook with the container's state JSON on stdin, honour its
//! timeout, and report failures with what the hook printed.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use oci_spec::runtime::{Hook, Hooks};

use crate::error::{Error, Result};
use crate::sys;

/// The six hook lists of the runtime-spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// Deprecated, runs with createRuntime.
    Prestart,
    /// Runtime namespace, after the container's namespaces exist.
    CreateRuntime,
    /// Container's mount namespace, before pivot_root.
    CreateContainer,
    /// In the container, just before the user process is executed.
    StartContainer,
    /// After the user process started.
    Poststart,
    /// After the container is deleted.
    Poststop,
}

impl HookKind {
    /// The name used in config.json.
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }

    /// The hooks of this kind in `hooks`.
    #[allow(deprecated)]
    pub fn list(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            HookKind::Prestart => hooks.prestart(),
            HookKind::CreateRuntime => hooks.create_runtime(),
            HookKind::CreateContainer => hooks.create_container(),
            HookKind::StartContainer => hooks.start_container(),
            HookKind::Poststart => hooks.poststart(),
            HookKind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }
}

/// The runtime-spec state object hooks read on stdin (and `sealrun state` prints).
pub fn state_json(
    id: &str,
    status: &str,
    pid: i32,
    bundle: &std::path::Path,
    annotations: &std::collections::HashMap<String, String>,
) -> serde_json::Value {
    let mut v = serde_json::json!({
        "ociVersion": crate::OCI_VERSION,
        "id": id,
        "status": status,
        "bundle": bundle,
    });
    if pid > 0 {
        v["pid"] = serde_json::json!(pid);
    }
    if !annotations.is_empty() {
        v["annotations"] = serde_json::json!(annotations);
    }
    v
}

/// Run every hook of `kind` in order; stop at the first failure.
pub fn run(kind: HookKind, hooks: &Hooks, state: &serde_json::Value) -> Result<()> {
    run_in(kind, hooks, state, bundle_dir(state))
}

/// [`run`] with another working directory (createContainer hooks run in the container's
/// root before pivot_root, as runc runs them, so relative paths name the container's files).
pub fn run_in(
    kind: HookKind,
    hooks: &Hooks,
    state: &serde_json::Value,
    cwd: Option<&std::path::Path>,
) -> Result<()> {
    run_each(kind, hooks, state, cwd, None)
}

/// [`run`] where a hook without its own `env` gets `env` (`KEY=value` entries) instead of the
/// runtime's environment: the startContainer hooks, which run inside the container and get
/// the container process's environment, as runc and crun give them.
pub fn run_with_env(
    kind: HookKind,
    hooks: &Hooks,
    state: &serde_json::Value,
    env: &[std::ffi::CString],
) -> Result<()> {
    run_each(kind, hooks, state, bundle_dir(state), Some(env))
}

/// Every hook of `kind` in order, in `cwd`, a hook without `env` getting `inherit` (`None`:
/// the runtime's environment); stop at the first failure.
fn run_each(
    kind: HookKind,
    hooks: &Hooks,
    state: &serde_json::Value,
    cwd: Option<&std::path::Path>,
    inherit: Option<&[std::ffi::CString]>,
) -> Result<()> {
    let list = kind.list(hooks);
    if list.is_empty() {
        return Ok(());
    }
    let input = state.to_string();
    for hook in list {
        run_one(kind, hook, input.as_bytes(), cwd, inherit)?;
    }
    Ok(())
}

/// Run every hook of `kind`, turning each failure into a warning and going on with the next
/// (poststart, poststop: "the remaining hooks and lifecycle continue as if the hook had
/// succeeded").
pub fn run_warn(kind: HookKind, hooks: &Hooks, state: &serde_json::Value) {
    let input = state.to_string();
    let cwd = bundle_dir(state);
    for hook in kind.list(hooks) {
        if let Err(e) = run_one(kind, hook, input.as_bytes(), cwd, None) {
            crate::log::warn(&e.to_string());
        }
    }
}

fn hook_error(kind: HookKind, hook: &Hook, reason: String) -> Error {
    Error::Hook {
        kind: kind.name(),
        path: hook.path().display().to_string(),
        reason,
    }
}

/// The bundle named in the state, as the hooks' working directory (runc runs them there);
/// `None` when it is not a directory here (a hook in a mount namespace that lacks it).
fn bundle_dir(state: &serde_json::Value) -> Option<&std::path::Path> {
    state["bundle"]
        .as_str()
        .map(std::path::Path::new)
        .filter(|p| p.is_absolute() && p.is_dir())
}

/// `inherit`: the environment of a hook without `env` (`None`: the runtime's).
fn run_one(
    kind: HookKind,
    hook: &Hook,
    input: &[u8],
    cwd: Option<&std::path::Path>,
    inherit: Option<&[std::ffi::CString]>,
) -> Result<()> {
    let fail = |reason: String| hook_error(kind, hook, reason);
    // Output goes to an anonymous file, so a chatty hook can never block on a full pipe while
    // we wait for it, and we can quote it in the error.
    let out = sys::memfd::memfd_create(c"sealrun-hook-output", sys::memfd::MFD_CLOEXEC)
        .map_err(|e| fail(format!("memfd: {}", crate::error::errno_text(e))))?;
    let mut out = File::from(out);
    let mut cmd = Command::new(hook.path());
    let args = hook.args().as_deref().unwrap_or(&[]);
    if let Some(first) = args.first() {
        cmd.arg0(first);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    // As runc and crun: a hook with its own `env` gets exactly that; one without gets the
    // runtime's environment (PATH included, which hook scripts rely on), or `inherit`.
    if let Some(env) = hook.env() {
        cmd.env_clear()
            .envs(env.iter().filter_map(|e| e.split_once('=')));
    } else if let Some(env) = inherit {
        use std::os::unix::ffi::OsStrExt;
        let pairs = env.iter().filter_map(|e| {
            let kv = e.to_bytes();
            let eq = kv.iter().position(|b| *b == b'=')?;
            Some((
                std::ffi::OsStr::from_bytes(&kv[..eq]),
                std::ffi::OsStr::from_bytes(&kv[eq + 1..]),
            ))
        });
        cmd.env_clear().envs(pairs);
    }
    cmd.args(args.iter().skip(1))
        .stdin(Stdio::piped())
        .stdout(Stdio::from(
            out.try_clone().map_err(|e| fail(e.to_string()))?,
        ))
        .stderr(Stdio::from(
            out.try_clone().map_err(|e| fail(e.to_string()))?,
        ));
    let mut child = cmd.spawn().map_err(|e| fail(format!("cannot run: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE is ignored).
        let _ = stdin.write_all(input);
    }
    let status = match hook.timeout() {
        None => child.wait().map_err(|e| fail(e.to_string()))?,
        Some(secs) => {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let pidfd = sys::process::pidfd_open(pid)
                .map_err(|e| fail(format!("pidfd_open: {}", crate::error::errno_text(e))))?;
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs as u64);
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let ms = left.as_millis().min(i32::MAX as u128) as i32;
                match poll(
                    &mut fds,
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
                ) {
                    Ok(0) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(fail(format!("timed out after {secs}s")));
                    }
                    Ok(_) => break,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(fail(format!("poll: {}", crate::error::errno_text(e)))),
                }
            }
            child.wait().map_err(|e| fail(e.to_string()))?
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let _ = out.rewind();
    let _ = Read::by_ref(&mut out).take(2048).read_to_string(&mut text);
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}{}", signal_words(s)),
        _ => "failed".into(),
    };
    let text = text.trim();
    Err(fail(if text.is_empty() {
        how
    } else {
        format!("{how}: {}", text.replace('\n', " "))
    }))
}

/// What the common fatal signals mean, in the words Go (and so runc's messages) uses: a hook
/// killed by seccomp then says "bad system call".
fn signal_words(sig: i32) -> &'static str {
    match sig {
        libc::SIGSYS => " (bad system call)",
        libc::SIGKILL => " (killed)",
        libc::SIGSEGV => " (segmentation fault)",
        libc::SIGABRT => " (aborted)",
        libc::SIGTERM => " (terminated)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(json: &str) -> Hooks {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn hook_gets_state_on_stdin_and_env() {
        let dir = std::env::temp_dir().join(format!("sealrun-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("state");
        let h = hooks(&format!(
            r#"{{"poststart":[{{"path":"/bin/sh","args":["sh","-c","cat > {} && echo $X >> {}"],
                 "env":["X=hello"]}}]}}"#,
            out.display(),
            out.display()
        ));
        run(HookKind::Poststart, &h, &serde_json::json!({"id":"c1"})).unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        assert!(got.starts_with(r#"{"id":"c1"}"#), "{got}");
        assert!(got.ends_with("hello\n"), "{got}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failing_hook_reports_status_and_output() {
        let h = hooks(
            r#"{"prestart":[{"path":"/bin/sh","args":["sh","-c","echo nope >&2; exit 3"]}]}"#,
        );
        let e = run(HookKind::Prestart, &h, &serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("prestart hook /bin/sh"), "{e}");
        assert!(e.contains("exit status 3") && e.contains("nope"), "{e}");
    }

    #[test]
    fn timeout_kills_the_hook() {
        let h =
            hooks(r#"{"createRuntime":[{"path":"/bin/sleep","args":["sleep","30"],"timeout":1}]}"#);
        let t = std::time::Instant::now();
        let e = run(HookKind::CreateRuntime, &h, &serde_json::json!({})).unwrap_err();
        assert!(e.to_string().contains("timed out after 1s"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
    }
}
