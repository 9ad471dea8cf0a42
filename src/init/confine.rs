//! Steps 10 to 15, shared by the container's init and by `exec`: the one confinement tail.
//! fds → Landlock → seccomp (without no_new_privs) → identity → no_new_privs → seccomp (with
//! it); then the process reads back what holds and reports it to the runtime.

use std::os::fd::RawFd;
use std::path::Path;

use caps::CapSet;

use super::{process, seccomp, StepResult};
use crate::audit::{cap_names, CapNames, Enforced};
use crate::error::Step;
use crate::landlock::Policy;
use crate::seccomp::Compiled;
use crate::spec::{Layers, ProcessPlan};
use crate::sync::{Channel, Msg};
use crate::sys;

/// What to confine a process with.
#[derive(Debug)]
pub struct Confinement<'a> {
    /// The process's identity and capabilities.
    pub process: &'a ProcessPlan,
    /// Its Landlock policy.
    pub landlock: &'a Policy,
    /// Its seccomp program (`None`: no profile, or the layer is off).
    pub seccomp: Option<&'a Compiled>,
    /// Layers switched off for a test.
    pub layers: Layers,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
    /// The runtime's own descriptors, kept open across the sweep.
    pub ours: Vec<RawFd>,
}

/// Confine the calling process, then report what it enforced over `sync`.
pub fn confine(c: &Confinement<'_>, sync: &Channel) -> StepResult<()> {
    let p = c.process;
    if !c.layers.no_fd_hygiene {
        step!(Step::Fds, process::sweep_fds(c.preserve_fds, &c.ours))?;
    }
    let landlock = step!(
        Step::Landlock,
        crate::landlock::apply(c.landlock, Path::new("/")),
    )?;
    step!(
        Step::SeccompEarly,
        seccomp(c.seccomp, sync, !p.no_new_privileges),
    )?;
    step!(Step::Identity, process::apply_identity(p))?;
    step!(Step::NoNewPrivileges, process::set_no_new_privileges(p))?;
    step!(Step::Seccomp, seccomp(c.seccomp, sync, p.no_new_privileges))?;
    let report = read_back(landlock, c.seccomp.map_or(0, |s| s.filters.len()));
    let report = serde_json::to_string(&report).unwrap_or_default();
    step!(Step::Seccomp, sync.send(&Msg::Enforced { report }))
}

/// What holds now, as the process itself sees it.
fn read_back(landlock: crate::landlock::Status, seccomp_filters: usize) -> Enforced {
    let set = |s: CapSet| caps::read(None, s).map(|v| cap_names(&v)).ok();
    let capabilities = (|| {
        Some(CapNames {
            bounding: set(CapSet::Bounding)?,
            effective: set(CapSet::Effective)?,
            permitted: set(CapSet::Permitted)?,
            inheritable: set(CapSet::Inheritable)?,
            ambient: set(CapSet::Ambient)?,
        })
    })();
    Enforced {
        landlock,
        seccomp_mode: sys::process::get_seccomp().ok(),
        seccomp_filters,
        capabilities,
        no_new_privileges: sys::process::get_no_new_privs().ok(),
    }
}
