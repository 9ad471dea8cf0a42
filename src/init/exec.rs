//! The child side of `exec`: join the container's namespaces, then the same process steps as
//! the container's init (limits, terminal, executable, fds, Landlock, seccomp, identity,
//! no_new_privs) and execve. Success is the sync channel closing on execve.

use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use super::{become_root, devices, paths::Resolver, process, recv_go, StepResult};
use crate::error::{Context, Error, Result, Step};
use crate::spec::ExecPlan;
use crate::sync::{Channel, Msg};
use crate::sys;

/// What the exec'd process inherits from the runtime.
#[derive(Debug)]
pub struct ExecChannels {
    /// Sync channel to the runtime.
    pub sync: Channel,
    /// Console socket (or the runtime's proxy end), when the process has a terminal.
    pub console: Option<OwnedFd>,
    /// pidfd of the container's init (namespaces are joined through it).
    pub pidfd: OwnedFd,
    /// `CLONE_NEW*` flags of the namespaces to join.
    pub join: u64,
    /// The container's v1 `tasks` files, joined before the namespaces (see `init::cgroup`).
    pub cgroup_tasks: Vec<std::path::PathBuf>,
}

/// Entry point of the cloned exec child. Never returns.
pub fn main(plan: &ExecPlan, ch: ExecChannels) -> ! {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| story(plan, &ch)));
    let (step, err) = match outcome {
        Ok(Ok(never)) => match never {},
        Ok(Err(failure)) => failure,
        Err(_) => (
            super::running_step(),
            Error::Other("exec helper panicked".into()),
        ),
    };
    let _ = ch.sync.send(&Msg::Failed {
        step,
        errno: err.errno().map(|e| e as i32).unwrap_or(0),
        message: err.to_string(),
    });
    sys::process::exit_now(if step == Step::Executable { 127 } else { 1 })
}

fn story(plan: &ExecPlan, ch: &ExecChannels) -> StepResult<Infallible> {
    let p = &plan.process;
    let safe = !plan.layers.no_path_safety;
    step!(Step::Namespaces, join(plan, ch))?;
    step!(Step::Limits, process::apply_limits(p, None, safe))?;
    let console = step!(Step::Terminal, terminal(plan, ch))?;
    step!(Step::Terminal, process::setup_terminal_if(console.as_ref()))?;
    let exe = step!(Step::Executable, process::chdir_and_resolve(p, safe))?;
    let mut ours: Vec<RawFd> = vec![ch.sync.raw(), ch.pidfd.as_raw_fd()];
    ours.extend(ch.console.as_ref().map(|c| c.as_raw_fd()));
    super::confine::confine(
        &super::confine::Confinement {
            process: p,
            landlock: &plan.landlock,
            seccomp: plan.seccomp.as_ref(),
            layers: plan.layers,
            preserve_fds: plan.preserve_fds,
            ours,
        },
        &ch.sync,
    )?;
    let errno = process::exec(&exe, p, &process::environment(p));
    Err((
        Step::Exec,
        Error::Other(format!(
            "exec {}: {}",
            exe.to_string_lossy(),
            crate::error::errno_text(errno)
        )),
    ))
}

/// Become non-dumpable, wait for the runtime's go, join the cgroup and the namespaces.
fn join(plan: &ExecPlan, ch: &ExecChannels) -> Result<()> {
    crate::selfexe::set_nondumpable(&plan.layers)?;
    recv_go_exec(ch)?;
    super::cgroup::join(&ch.cgroup_tasks)?;
    // pid and time namespaces joined here (rootless) rather than by the runtime apply to
    // children only: join them with the user namespace, fork, then the rest (forking after the
    // mount namespace would read the container's /proc, where we are not).
    let for_children = (libc::CLONE_NEWPID | libc::CLONE_NEWTIME) as u64;
    let early = if ch.join & for_children != 0 {
        ch.join & (for_children | libc::CLONE_NEWUSER as u64)
    } else {
        0
    };
    for (flags, then_fork) in [(early, true), (ch.join & !early, false)] {
        if flags == 0 {
            continue;
        }
        sys::process::setns(ch.pidfd.as_fd(), CloneFlags::from_bits_retain(flags as i32))
            .op("setns into the container's namespaces")?;
        if then_fork {
            fork_into_joined(ch)?;
        }
    }
    if ch.join & libc::CLONE_NEWUSER as u64 != 0 {
        become_root();
    }
    if !plan.no_new_keyring {
        // Not the caller's keys: a profile that allows keyctl would otherwise read them.
        super::join_new_keyring();
    }
    Ok(())
}

/// Continue in a child born in the joined pid (and time) namespaces, a sibling of ours so the
/// runtime waits for it; it says Hello so the runtime learns its pid. We exit.
fn fork_into_joined(ch: &ExecChannels) -> Result<()> {
    match sys::process::clone3(libc::CLONE_PARENT as u64, None).op("clone")? {
        sys::process::Forked::Child => ch.sync.send(&Msg::Hello),
        sys::process::Forked::Parent(_) => sys::process::exit_now(0),
    }
}

fn recv_go_exec(ch: &ExecChannels) -> Result<i32> {
    recv_go(&ch.sync)
}

/// A pty from the container's devpts when the process has a terminal; the master goes to the
/// console socket.
fn terminal(plan: &ExecPlan, ch: &ExecChannels) -> Result<Option<OwnedFd>> {
    let (true, Some(sock)) = (plan.process.terminal, ch.console.as_ref()) else {
        return Ok(None);
    };
    let r = Resolver::new(!plan.layers.no_path_safety);
    let root = sys::fd::open(
        Path::new("/"),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .op("open /")?;
    let p = &plan.process;
    let (master, peer, n) = devices::open_pty(&r, root.as_fd(), p.console_size, p.uid)?;
    devices::send_master(sock.as_fd(), &master, n)?;
    Ok(Some(peer))
}
