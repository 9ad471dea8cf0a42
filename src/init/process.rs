//! Steps 7 to 15, shared by the container's init and by `exec`: limits, terminal, executable
//! and cwd, fd hygiene, identity and capabilities, no_new_privs, seccomp.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use caps::CapSet;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result};
use crate::spec::ProcessPlan;
use crate::sys::fd::{self as sfd, Resolve};
use crate::sys::{process as sp, tty};

/// Step 7: rlimits, personality, umask, oom score, scheduler, I/O priority.
/// `safe` is the path-safety layer: /proc files are opened checked ([`super::paths::open_proc`]).
pub fn apply_limits(p: &ProcessPlan, personality: Option<libc::c_ulong>, safe: bool) -> Result<()> {
    for (res, soft, hard) in &p.rlimits {
        sp::setrlimit(*res, *soft, *hard).op(&format!("setrlimit {res}"))?;
    }
    if let Some(persona) = personality {
        sp::personality(persona).op("personality")?;
    }
    sp::umask(p.umask.unwrap_or(0o022));
    if let Some(adj) = p.oom_score_adj {
        let path = Path::new("/proc/self/oom_score_adj");
        let fd = super::paths::open_proc(Path::new("self/oom_score_adj"), OFlag::O_WRONLY, safe)?;
        std::io::Write::write_all(&mut std::fs::File::from(fd), adj.to_string().as_bytes())
            .op_path("process.oomScoreAdj: write", path)?;
    }
    if let Some(s) = p.scheduler {
        let attr = sp::SchedAttr {
            sched_policy: s.policy,
            sched_flags: s.flags,
            sched_nice: s.nice,
            sched_priority: s.priority,
            sched_runtime: s.runtime,
            sched_deadline: s.deadline,
            sched_period: s.period,
            ..sp::SchedAttr::default()
        };
        sp::sched_setattr(attr).op("sched_setattr")?;
    }
    if let Some((class, level)) = p.io_priority {
        sp::ioprio_set(class, level).op("ioprio_set")?;
    }
    Ok(())
}

/// Step 8: a new session, and the pty peer as stdio and controlling terminal.
pub fn setup_terminal(console: Option<&OwnedFd>) -> Result<()> {
    sp::setsid().op("setsid")?;
    if let Some(peer) = console {
        sfd::replace_stdio(peer.as_fd()).op("dup3 console")?;
        tty::set_controlling_terminal(peer.as_fd()).op("ioctl TIOCSCTTY")?;
    }
    Ok(())
}

/// Step 8 for `exec`: a new session and controlling terminal only when there is a terminal.
pub fn setup_terminal_if(console: Option<&OwnedFd>) -> Result<()> {
    match console {
        Some(_) => setup_terminal(console),
        None => Ok(()),
    }
}

/// Step 9: change to the working directory (resolved inside the root: a cwd such as
/// `/proc/self/fd/7` cannot land outside it, CVE-2024-21626) and find the executable.
pub fn chdir_and_resolve(p: &ProcessPlan, safe: bool) -> Result<CString> {
    let root = sfd::open(
        Path::new("/"),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .op("open /")?;
    let resolve = if safe {
        Resolve::IN_ROOT | Resolve::NO_MAGICLINKS
    } else {
        Resolve::NONE
    };
    let cwd = sfd::openat2(
        root.as_fd(),
        &super::paths::relative(&p.cwd),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
        resolve,
    )
    .op_path("chdir", &p.cwd)?;
    sfd::fchdir(cwd.as_fd()).op_path("chdir", &p.cwd)?;
    if safe {
        let here = std::env::current_dir().op("getcwd")?;
        if !here.is_absolute() {
            return Err(Error::Other(format!(
                "cwd {} is outside the container",
                p.cwd.display()
            )));
        }
    }
    find_executable(p)
}

/// Whether `path` is a regular file we may execute (faccessat with the real ids, i.e. as root
/// before the identity step: at least one execute bit must be set).
fn is_executable(path: &Path) -> std::io::Result<bool> {
    let meta = std::fs::metadata(path)?;
    Ok(meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Find `args[0]` like `execvp` would, but in `process.env`'s PATH, with runc's messages (podman
/// maps "executable file not found in $PATH" and "no such file or directory" to exit 127,
/// "permission denied" to 126).
fn find_executable(p: &ProcessPlan) -> Result<CString> {
    let name = p.args[0].to_str().unwrap_or_default().to_string();
    let fail = |what: String| Error::Other(format!("exec: {name:?}: {what}"));
    if name.contains('/') {
        return match is_executable(Path::new(&name)) {
            Ok(true) => Ok(p.args[0].clone()),
            Ok(false) => Err(fail(format!("stat {name}: permission denied"))),
            Err(e) => Err(fail(format!(
                "stat {name}: {}",
                crate::error::errno_text(nix::errno::Errno::from_raw(
                    e.raw_os_error().unwrap_or(0)
                ))
            ))),
        };
    }
    let path_var = p.path_var.as_deref().unwrap_or("");
    let mut denied = false;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate: PathBuf = Path::new(dir).join(&name);
        match is_executable(&candidate) {
            Ok(true) => {
                return CString::new(candidate.as_os_str().as_bytes())
                    .map_err(|_| fail("bad path".into()))
            }
            Ok(false) => denied = true,
            Err(_) => {}
        }
    }
    if denied {
        Err(fail("permission denied".into()))
    } else {
        Err(fail("executable file not found in $PATH".into()))
    }
}

/// Step 10: mark every fd ≥ 3 close-on-exec, except the `preserve` fds the caller passed
/// (3..3+preserve) that are not ours (`ours`). Nothing else reaches the container.
///
/// The fd table is not read from `/proc/self/fd`: after `pivot_root` that is the container's
/// /proc, which the image or a mount could fake to hide a leaked descriptor. `close_range`
/// marks the whole range in the kernel; the old kernels without it get every number up to
/// the descriptor limit.
pub fn sweep_fds(preserve: u32, ours: &[RawFd]) -> Result<()> {
    sfd::keep_only_across_exec(3 + preserve as RawFd, ours)
        .map_err(|(op, e)| Error::os(op, None, e))
}

/// Step 13: supplementary groups, gid, uid, then the capability sets (bounding was dropped
/// first, while the process could still do so).
pub fn apply_identity(p: &ProcessPlan) -> Result<()> {
    for n in p.bounding_drop() {
        sp::capbset_drop(n).op(&format!("drop capability {n} from the bounding set"))?;
    }
    // With setgroups denied (a rootless self-mapped gid) the groups cannot change; planning
    // refused additionalGids there.
    if !p.setgroups_denied {
        sp::setgroups(&p.additional_gids).op("setgroups")?;
    }
    sp::set_keepcaps(true).op("prctl PR_SET_KEEPCAPS")?;
    sp::setresgid(p.gid).op(&format!("setresgid {}", p.gid))?;
    sp::setresuid(p.uid).op(&format!("setresuid {}", p.uid))?;
    sp::set_keepcaps(false).op("prctl PR_SET_KEEPCAPS")?;
    let mask = |set: &caps::CapsHashSet| set.iter().fold(0u64, |m, c| m | c.bitmask());
    sp::capset(
        mask(&p.caps.effective),
        mask(&p.caps.permitted),
        mask(&p.caps.inheritable),
    )
    .op("capset")?;
    // Ambient capabilities must be permitted and inheritable; others cannot be raised.
    caps::clear(None, CapSet::Ambient).map_err(|e| Error::Other(format!("clear ambient: {e}")))?;
    for cap in &p.caps.ambient {
        if p.caps.permitted.contains(cap) && p.caps.inheritable.contains(cap) {
            caps::raise(None, CapSet::Ambient, *cap)
                .map_err(|e| Error::Other(format!("raise ambient {cap}: {e}")))?;
        } else {
            crate::log::debug(&format!(
                "ambient {cap} skipped: not in the permitted and inheritable sets"
            ));
        }
    }
    Ok(())
}

/// Step 14: no_new_privs exactly as configured, and checked.
pub fn set_no_new_privileges(p: &ProcessPlan) -> Result<()> {
    if p.no_new_privileges {
        sp::set_no_new_privs().op("prctl PR_SET_NO_NEW_PRIVS")?;
        if !sp::get_no_new_privs().op("prctl PR_GET_NO_NEW_PRIVS")? {
            return Err(Error::Other("no_new_privs did not stick".into()));
        }
    }
    Ok(())
}

/// Execute the process (the last step); returns only the errno of a failed execve. Signal
/// dispositions and the mask start clean whatever the runtime (Rust ignores SIGPIPE) or its
/// caller set: `(yes; echo $?) | head -1` prints 141 as under runc.
/// `env` is the process's [`environment`].
pub fn exec(path: &CStr, p: &ProcessPlan, env: &[CString]) -> nix::errno::Errno {
    if let Err(e) = sp::reset_signals() {
        return e;
    }
    let argv: Vec<&CStr> = p.args.iter().map(|a| a.as_c_str()).collect();
    let envp: Vec<&CStr> = env.iter().map(|a| a.as_c_str()).collect();
    sp::execve(path, &argv, &envp)
}

/// The environment the process is executed with: `process.env`, plus `HOME` when it lacks
/// one. Computed in the container's root, as the process's user (see `default_home`); the
/// startContainer hooks without an `env` of their own get it too, as runc and crun give them.
pub fn environment(p: &ProcessPlan) -> Vec<CString> {
    let mut env = p.env.clone();
    env.extend(default_home(p));
    env
}

/// `HOME=` for an environment that lacks it, as runc sets it: the user's home directory from
/// the container's /etc/passwd, else `/`. Read here, at the very end, as the process's own
/// user inside its root and Landlock domain, so it can only see what the process could.
fn default_home(p: &ProcessPlan) -> Option<CString> {
    if p.env.iter().any(|e| e.to_bytes().starts_with(b"HOME=")) {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let home = home_of(&passwd, p.uid).unwrap_or("/");
    CString::new(format!("HOME={home}")).ok()
}

/// The home directory of `uid` in passwd(5) text (the first entry with that uid).
fn home_of(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse() == Ok(uid) && !f[5].is_empty()).then(|| f[5])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_comes_from_the_users_passwd_entry() {
        let passwd =
            "root:x:0:0:root:/root:/bin/sh\nbad line\nnobody:x:65534:65534::/home:/bin/false\n";
        assert_eq!(home_of(passwd, 0), Some("/root"));
        assert_eq!(home_of(passwd, 65534), Some("/home"));
        assert_eq!(home_of(passwd, 1000), None);
    }

    fn plan(args: &[&str], path: &str) -> ProcessPlan {
        let json = serde_json::json!({
            "cwd": "/", "user": {"uid": 0, "gid": 0}, "args": args, "env": [format!("PATH={path}")]
        });
        let p: oci_spec::runtime::Process = serde_json::from_value(json).unwrap();
        crate::spec::plan_process(&p, "process", 40).unwrap()
    }

    #[test]
    fn finds_executables_in_process_path_only() {
        let p = plan(&["sh"], "/nonexistent:/bin");
        assert_eq!(find_executable(&p).unwrap().to_str().unwrap(), "/bin/sh");
        let p = plan(&["sh"], "/nonexistent");
        let e = find_executable(&p).unwrap_err().to_string();
        assert!(e.contains("executable file not found in $PATH"), "{e}");
    }

    #[test]
    fn explicit_paths_report_like_runc() {
        let e = find_executable(&plan(&["/no/such"], "/bin"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file or directory"), "{e}");
        let f = std::env::temp_dir().join(format!("sealrun-noexec-{}", std::process::id()));
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = find_executable(&plan(&[f.to_str().unwrap()], "/bin"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("permission denied"), "{e}");
        std::fs::remove_file(f).unwrap();
    }
}
