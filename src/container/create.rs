//! `create` and `run`.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use serde_json::{Map, Value};

use super::launch::{launch, Launched, Undo};
use super::lifecycle::{destroy, start_container};
use super::state::{write_atomic, StateFile, AUDIT_FILE, PLAN_FILE, STATE_FILE};
use super::Runtime;
use crate::audit::AuditRecord;
use crate::error::{Context, Error, Result, Step};
use crate::spec::{self, CreateOptions, Plan};
use crate::sync::Msg;
use crate::sys;

/// Create a container: set up its init and leave it blocked, waiting for `start`.
pub fn create(rt: &Runtime, opts: CreateOptions) -> Result<()> {
    let console = match &opts.console_socket {
        Some(path) => {
            Some(sys::socket::connect_unix(path).op_path("connect console socket", path)?)
        }
        None => None,
    };
    create_inner(rt, opts, console).map(drop)
}

fn create_inner(
    rt: &Runtime,
    mut opts: CreateOptions,
    console: Option<OwnedFd>,
) -> Result<(Plan, Launched)> {
    opts.bundle = std::fs::canonicalize(&opts.bundle).op_path("bundle", &opts.bundle)?;
    let (spec, ignored_caps) = spec::load_bundle_with(&opts.bundle, &rt.policy)?;
    // No process-wide chdir: relative paths in the config are joined with the bundle by
    // `spec::plan`, hooks get the bundle as their cwd (`hooks`), and the caller's relative
    // paths (--pid-file) keep meaning what the caller meant.
    let host = super::host::gather(&spec, &opts.bundle)?;
    opts.policy = rt.policy.clone();
    let mut plan = spec::plan(&spec, opts, &host)?;
    crate::policy::enforce(&plan)?;
    // Info, not warning: podman's default profile names 32-bit syscalls and architectures on
    // every container, and conmon shows the runtime's stderr to the user (runc is silent).
    for w in plan.seccomp.iter().flat_map(|s| &s.warnings) {
        crate::log::info(&format!("seccomp: {w}"));
    }
    // Only under the operator policy's unknownCapabilities "warn" (runc's leniency).
    for ignored in &ignored_caps {
        crate::log::warn(&ignored.warning());
    }
    for name in &plan.process.unknown_to_kernel {
        crate::log::debug(&format!(
            "capability {name} is unknown to this kernel: skipped"
        ));
    }
    super::launch::restrict_cgroup(&mut plan)?;
    let mut dir = rt.root.create(&plan.id)?;
    let mut undo = Undo::new();
    let launched = match launch(&plan, &dir, console, &mut undo) {
        Ok(l) => l,
        Err(e) => {
            // runtime-spec lifecycle: a failed prestart/createRuntime/createContainer hook
            // stops the container, destroys it, then runs the poststop hooks.
            let hook_failed = matches!(e, Error::Hook { .. })
                || matches!(e, Error::Init { step, .. } if step == Step::CreateContainerHooks);
            drop(undo);
            if hook_failed {
                let state = crate::hooks::state_json(
                    &plan.id,
                    "stopped",
                    0,
                    &plan.opts.bundle,
                    &plan.annotations,
                );
                crate::hooks::run_warn(crate::hooks::HookKind::Poststop, &plan.hooks, &state);
            }
            return Err(e);
        }
    };
    // The cgroup as launched: it records what sealrun created and what it only joined.
    plan.cgroup = launched.cgroup.clone();
    dir.write_atomic(PLAN_FILE, &to_json(&plan)?)?;
    let start_time = super::state::proc_stat(launched.pid.as_raw())
        .map(|(_, s)| s)
        .ok_or_else(|| Error::Other("container init vanished".into()))?;
    let st = StateFile {
        id: plan.id.clone(),
        pid: launched.pid.as_raw(),
        pid_start_time: start_time,
        bundle: plan.opts.bundle.clone(),
        rootfs: plan.rootfs.clone(),
        created: crate::log::now_rfc3339(),
        owner: String::new(),
        annotations: plan.annotations.clone(),
        cgroup: launched.cgroup.clone(),
    };
    dir.write_atomic(STATE_FILE, &to_json(&st)?)?;
    if let Some(pid_file) = &plan.opts.pid_file {
        write_atomic(pid_file, launched.pid.as_raw().to_string().as_bytes())?;
    }
    let record = AuditRecord::new(
        &plan,
        launched.pid.as_raw(),
        rt.seal.as_str(),
        launched.enforced.clone(),
    );
    dir.write_atomic(AUDIT_FILE, &to_json(&record)?)?;
    log_audit("container protections", &record);
    launched.channel.send(&Msg::Committed)?;
    undo.disarm();
    dir.commit();
    Ok((plan, launched))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Other(format!("serialise state: {e}")))
}

/// Log an audit record (operators see it in `--log`; containerd and podman keep that file).
pub(super) fn log_audit(msg: &str, record: &AuditRecord) {
    let Ok(Value::Object(fields)) = serde_json::to_value(record) else {
        return;
    };
    let fields: Map<String, Value> = fields;
    crate::log::record(crate::log::Level::Info, msg, fields);
}

/// How a foreground `run` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// `--detach`: the container runs on.
    Detached,
    /// The container process's exit code (128+N when killed by signal N).
    Exited(i32),
}

/// `run`: create + start, then (unless detached) wait, forwarding signals and proxying a
/// terminal, and delete the container afterwards.
pub fn run(rt: &Runtime, opts: CreateOptions, detach: bool) -> Result<RunOutcome> {
    run_keep(rt, opts, detach, false)
}

/// [`run`]; with `keep`, a foreground container that exited is left stopped (state and cgroup
/// kept, for `state`, `events` or a look at the cgroup) until `delete`, as runc's `run --keep`.
pub fn run_keep(
    rt: &Runtime,
    mut opts: CreateOptions,
    detach: bool,
    keep: bool,
) -> Result<RunOutcome> {
    let id = opts.id.clone();
    let (console, proxy) = if opts.console_socket.is_some() {
        let path = opts.console_socket.clone().unwrap_or_default();
        (
            Some(sys::socket::connect_unix(&path).op_path("connect console socket", &path)?),
            None,
        )
    } else if !detach {
        let (ours, theirs) = sys::socket::stream_pair().op("socketpair")?;
        opts.proxy_terminal = true;
        (Some(theirs), Some(ours))
    } else {
        (None, None)
    };
    let (plan, launched) = create_inner(rt, opts, console)?;
    let proxy = proxy.filter(|_| plan.process.terminal);
    let master = match proxy {
        Some(sock) => Some(super::tty::receive_master(sock.as_fd())?),
        None => None,
    };
    let pid = launched.pid;
    drop(launched);
    if let Err(e) = start_container(rt, &id) {
        let _ = destroy(rt, &id, true);
        return Err(e);
    }
    if detach {
        return Ok(RunOutcome::Detached);
    }
    let code = super::tty::wait_forwarding(pid, master.as_ref())?;
    if !keep {
        destroy(rt, &id, true)?;
    }
    Ok(RunOutcome::Exited(code))
}

/// Read what the init wrote on the start connection (empty when execve succeeded).
pub(super) fn read_start_reply(conn: OwnedFd) -> Result<String> {
    let mut f = std::fs::File::from(conn);
    let _ = f.write_all(&[1]);
    let mut reply = String::new();
    f.read_to_string(&mut reply).op("read start reply")?;
    Ok(reply)
}
