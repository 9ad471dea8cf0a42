//! The child side: THE STORY. `story` is the ordered list of setup steps, one call per line;
//! each step handles its own "nothing to do" case. A failure is sent to the parent as
//! `(step, errno, message)` and the child exits; the parent cleans up.

/// Run one step of a story: mark it as the running step (a panic inside is then reported at
/// this step, see [`running_step`]), evaluate it, and attach the step to its error.
macro_rules! step {
    ($step:expr, $body:expr $(,)?) => {{
        $crate::init::enter_step($step);
        $crate::init::at($step, $body)
    }};
}

pub mod cgroup;
mod confine;
mod devices;
pub mod exec;
mod mounts;
pub mod paths;
pub mod process;
mod rootfs;

use std::convert::Infallible;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::{Context, Error, Result, Step};
use crate::hooks::{self, HookKind};
use crate::namespaces::{self, NsKind};
use crate::spec::Plan;
use crate::sync::{Channel, Msg};
use crate::sys::{self, process::Forked};

/// What the init inherits from the runtime.
#[derive(Debug)]
pub struct Channels {
    /// The sync channel to the runtime.
    pub sync: Channel,
    /// The listening socket `start` connects to.
    pub start: OwnedFd,
    /// The console socket (or the runtime's end of a socketpair when it proxies a terminal).
    pub console: Option<OwnedFd>,
    /// Descriptors of the runtime the child must close at once (the state directory's lock
    /// would otherwise be held by the init until execve).
    pub close: Vec<std::os::fd::RawFd>,
}

type StepResult<T> = std::result::Result<T, (Step, Error)>;

fn at<T>(step: Step, r: Result<T>) -> StepResult<T> {
    r.map_err(|e| (step, e))
}

/// The step the child is running, for the panic handler (one child process, one thread).
static RUNNING_STEP: std::sync::atomic::AtomicU8 =
    std::sync::atomic::AtomicU8::new(Step::Namespaces as u8);

fn enter_step(step: Step) {
    RUNNING_STEP.store(step as u8, std::sync::atomic::Ordering::Relaxed);
}

/// The step marked by the last [`step!`].
fn running_step() -> Step {
    Step::from_u8(RUNNING_STEP.load(std::sync::atomic::Ordering::Relaxed))
        .unwrap_or(Step::Namespaces)
}

/// Entry point of the cloned child. Never returns.
pub fn main(plan: &Plan, ch: Channels, two_stage: bool) -> ! {
    for fd in &ch.close {
        sys::fd::close_raw(*fd);
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if two_stage {
            first_stage(plan, &ch)
        } else {
            story(plan, &ch, false)
        }
    }));
    let (step, err) = match outcome {
        Ok(Ok(never)) => match never {},
        Ok(Err(failure)) => failure,
        Err(_) => (running_step(), Error::Other("init panicked".into())),
    };
    let _ = ch.sync.send(&Msg::Failed {
        step,
        errno: err.errno().map(|e| e as i32).unwrap_or(0),
        message: err.to_string(),
    });
    sys::process::exit_now(1)
}

/// THE STORY: the container's init, from namespaces to execve.
fn story(plan: &Plan, ch: &Channels, staged: bool) -> StepResult<Infallible> {
    let p = &plan.process;
    let host_pid = step!(Step::Namespaces, enter_namespaces(plan, ch, staged))?;
    step!(Step::Hostname, set_hostname(plan))?;
    let sources = step!(Step::Rootfs, mounts::receive_sources(plan, &ch.sync))?;
    let prepared = step!(
        Step::Rootfs,
        rootfs::prepare(plan, ch.console.as_ref().map(|c| c.as_fd()), &sources),
    )?;
    step!(Step::CreateContainerHooks, create_hooks(plan, ch, host_pid))?;
    step!(Step::PivotRoot, rootfs::pivot(plan))?;
    step!(Step::Finalize, rootfs::finalize(plan))?;
    step!(
        Step::Limits,
        process::apply_limits(p, plan.personality, !plan.opts.layers.no_path_safety),
    )?;
    step!(
        Step::Terminal,
        process::setup_terminal(prepared.console.as_ref()),
    )?;
    let exe = step!(
        Step::Executable,
        process::chdir_and_resolve(p, !plan.opts.layers.no_path_safety),
    )?;
    let mut ours = vec![ch.sync.raw(), ch.start.as_raw_fd()];
    ours.extend(ch.console.as_ref().map(|c| c.as_raw_fd()));
    confine::confine(
        &confine::Confinement {
            process: p,
            landlock: &plan.landlock.init,
            seccomp: plan.seccomp.as_ref(),
            layers: plan.opts.layers,
            // The socket-activation fds come first, then the preserved ones (runc's order).
            preserve_fds: plan.opts.listen_fds.saturating_add(plan.opts.preserve_fds),
            ours,
        },
        &ch.sync,
    )?;
    wait_start_and_exec(plan, ch, host_pid, &exe)
}

/// Step 1 for the single-stage path (and the second stage): wait for the runtime to write id
/// maps (and place us in the cgroup when we cannot: see [`cgroup`]), join the cgroup, join
/// namespaces given by path, unshare the cgroup namespace.
fn enter_namespaces(plan: &Plan, ch: &Channels, staged: bool) -> Result<i32> {
    crate::selfexe::set_nondumpable(&plan.opts.layers)?;
    sys::process::umask(0);
    let pid = recv_go(&ch.sync)?;
    if !staged && cgroup::joins_itself(plan) {
        cgroup::join(&cgroup::tasks_files(&plan.cgroup))?;
    }
    if !staged {
        if plan.namespaces.creates(NsKind::User) {
            if plan.id_map_writers.unprivileged {
                request_maps(plan, &ch.sync)?;
            }
            become_root();
        }
        for (kind, path) in &plan.namespaces.join {
            if !matches!(kind, NsKind::Pid | NsKind::Time) {
                namespaces::join(*kind, path)?;
            }
        }
        if plan.time_ns_in_userns {
            create_time_namespace(plan)?;
        }
    }
    if plan.namespaces.creates(NsKind::Cgroup) {
        sys::process::unshare(NsKind::Cgroup.clone_flag()).op("unshare cgroup namespace")?;
    }
    if !plan.opts.no_new_keyring {
        join_new_keyring();
    }
    Ok(pid)
}

/// Leave the caller's session keyring for a new anonymous one. Best effort, as runc: some
/// kernels or seccomp policies refuse keyctl.
fn join_new_keyring() {
    if let Err(e) = sys::process::join_session_keyring() {
        crate::log::debug(&format!("session keyring: {}", crate::error::errno_text(e)));
    }
}

/// Wait for the runtime's `Go` (maps written, cgroups joined); returns our host pid.
fn recv_go(sync: &Channel) -> Result<i32> {
    match sync.recv()?.msg {
        Some(Msg::Go { pid }) => Ok(pid),
        other => Err(Error::Other(format!(
            "expected Go from the runtime, got {other:?}"
        ))),
    }
}

/// Ask the runtime to write our id maps. A runtime without privilege can open our `/proc`
/// files only while we are dumpable: for that moment we are (nothing of the container runs
/// yet, and our executable is the sealed copy), then not again.
fn request_maps(plan: &Plan, sync: &Channel) -> Result<()> {
    if plan.id_map_writers.unprivileged {
        sys::process::set_dumpable(true).op("prctl PR_SET_DUMPABLE")?;
    }
    sync.send(&Msg::MapsPlease)?;
    sync.expect(&Msg::MapsDone)?;
    crate::selfexe::set_nondumpable(&plan.opts.layers)
}

/// Create the time namespace in our (the container's) user namespace, for a runtime without
/// privilege. Writing our `/proc/self/timens_offsets` as root of this namespace needs us
/// dumpable (else the file is the host root's): for that moment we are, as for the id maps.
fn create_time_namespace(plan: &Plan) -> Result<()> {
    sys::process::set_dumpable(true).op("prctl PR_SET_DUMPABLE")?;
    let made = namespaces::unshare_time(&plan.time_offsets);
    crate::selfexe::set_nondumpable(&plan.opts.layers)?;
    made
}

/// Become uid/gid 0 of our user namespace, if 0 is mapped.
fn become_root() {
    let _ = sys::process::setresgid(0);
    let _ = sys::process::setresuid(0);
}

/// The first stage of the two-stage path: join namespaces with the runtime's privileges, then
/// enter or create the user namespace, unshare the rest, and fork the init (as a sibling, so
/// the runtime can wait for it).
fn first_stage(plan: &Plan, ch: &Channels) -> StepResult<Infallible> {
    let r: Result<()> = (|| {
        crate::selfexe::set_nondumpable(&plan.opts.layers)?;
        recv_go(&ch.sync)?;
        // Still in the runtime's namespaces: the init forked below inherits the cgroups.
        cgroup::join(&cgroup::tasks_files(&plan.cgroup))?;
        for (kind, path) in &plan.namespaces.join {
            if !matches!(kind, NsKind::Pid | NsKind::Time | NsKind::User) {
                namespaces::join(*kind, path)?;
            }
        }
        if let Some(path) = plan.namespaces.joins(NsKind::User) {
            namespaces::join(NsKind::User, path)?;
        } else {
            sys::process::unshare(NsKind::User.clone_flag()).op("unshare user namespace")?;
            request_maps(plan, &ch.sync)?;
        }
        become_root();
        if plan.time_ns_in_userns {
            create_time_namespace(plan)?;
        }
        let rest = plan
            .namespaces
            .new
            .iter()
            .filter(|k| !matches!(k, NsKind::User | NsKind::Cgroup | NsKind::Time))
            .fold(0, |acc, k| acc | k.clone_flag());
        sys::process::unshare(rest).op("unshare namespaces")?;
        Ok(())
    })();
    at(Step::Namespaces, r)?;
    match at(
        Step::Namespaces,
        sys::process::clone3(libc::CLONE_PARENT as u64, None).op("clone"),
    )? {
        Forked::Child => {
            at(Step::Namespaces, ch.sync.send(&Msg::Hello))?;
            story(plan, ch, true)
        }
        Forked::Parent(_) => sys::process::exit_now(0),
    }
}

/// Step 2.
fn set_hostname(plan: &Plan) -> Result<()> {
    if let Some(h) = &plan.hostname {
        sys::process::sethostname(h).op("sethostname")?;
    }
    if let Some(d) = &plan.domainname {
        sys::process::setdomainname(d).op("setdomainname")?;
    }
    Ok(())
}

/// Step 4: the runtime runs prestart and createRuntime hooks, then we run createContainer
/// hooks here, in the container's mount namespace before pivot_root.
fn create_hooks(plan: &Plan, ch: &Channels, pid: i32) -> Result<()> {
    if !HookKind::Prestart.list(&plan.hooks).is_empty()
        || !HookKind::CreateRuntime.list(&plan.hooks).is_empty()
    {
        ch.sync.send(&Msg::RunHooks)?;
        ch.sync.expect(&Msg::HooksDone)?;
    }
    // `created`, as for prestart and createRuntime (see container::launch).
    let state = hooks::state_json(
        &plan.id,
        "created",
        pid,
        &plan.opts.bundle,
        &plan.annotations,
    );
    let rootfs = Some(plan.rootfs.as_path()).filter(|p| p.is_dir());
    hooks::run_in(HookKind::CreateContainer, &plan.hooks, &state, rootfs)
}

/// Steps 12 and 15: load seccomp now if `now`; hand a notify listener to the runtime.
fn seccomp(compiled: Option<&crate::seccomp::Compiled>, sync: &Channel, now: bool) -> Result<()> {
    let Some(compiled) = compiled.filter(|_| now) else {
        return Ok(());
    };
    if let Some(listener) = crate::seccomp::load(compiled)? {
        sync.send_with(&Msg::SeccompListener, &[listener.as_fd()])?;
        sync.expect(&Msg::SeccompListenerSent)?;
    }
    Ok(())
}

/// Step 16: report Ready, wait for `start`, run startContainer hooks, execve. After Ready the
/// runtime may be gone: failures go to the `start` connection instead.
fn wait_start_and_exec(
    plan: &Plan,
    ch: &Channels,
    pid: i32,
    exe: &std::ffi::CStr,
) -> StepResult<Infallible> {
    step!(Step::Exec, ch.sync.send(&Msg::Ready))?;
    let mut conn = wait_for_start(ch);
    let state = hooks::state_json(
        &plan.id,
        "created",
        pid,
        &plan.opts.bundle,
        &plan.annotations,
    );
    let env = process::environment(&plan.process);
    // Run inside the container: one without an `env` of its own gets the process's
    // environment (as runc and crun), never the runtime's, which the container must not see.
    if let Err(e) = hooks::run_with_env(HookKind::StartContainer, &plan.hooks, &state, &env) {
        let _ = conn.write_all(format!("init failed at {}: {e}", Step::Exec).as_bytes());
        sys::process::exit_now(1);
    }
    let errno = process::exec(exe, &plan.process, &env);
    let _ = conn.write_all(
        format!(
            "exec {}: {}",
            exe.to_string_lossy(),
            crate::error::errno_text(errno)
        )
        .as_bytes(),
    );
    sys::process::exit_now(if errno == nix::errno::Errno::ENOENT {
        127
    } else {
        126
    })
}

/// Block until `start` connects and sends its byte. If the runtime dies before committing the
/// container's state, nobody will ever start or delete us: exit instead of lingering.
fn wait_for_start(ch: &Channels) -> std::fs::File {
    let mut committed = false;
    loop {
        let mut fds = vec![PollFd::new(ch.start.as_fd(), PollFlags::POLLIN)];
        if !committed {
            fds.push(PollFd::new(ch.sync.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => sys::process::exit_now(1),
        }
        let sync_ready = fds
            .get(1)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty());
        let start_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        if sync_ready {
            match ch.sync.recv().map(|i| i.msg) {
                Ok(Some(Msg::Committed)) => committed = true,
                _ => sys::process::exit_now(1),
            }
        }
        if start_ready {
            let Ok(conn) = sys::socket::accept(ch.start.as_fd()) else {
                continue;
            };
            let mut conn = std::fs::File::from(conn);
            let mut byte = [0u8; 1];
            if matches!(conn.read(&mut byte), Ok(1)) {
                return conn;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boom() -> Result<()> {
        panic!("a bug in a step")
    }

    #[test]
    fn a_panic_is_reported_at_the_running_step() {
        let r = std::panic::catch_unwind(|| -> StepResult<()> {
            step!(Step::Hostname, Ok(()))?;
            step!(Step::Rootfs, boom())
        });
        assert!(r.is_err());
        assert_eq!(running_step(), Step::Rootfs);
    }
}
