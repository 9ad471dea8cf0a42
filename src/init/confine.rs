//! Steps 10 to 15, shared by the container's init and by `exec`: the one confinement tail.
//! fds → Landlock → seccomp (without no_new_privs) → identity → no_new_privs → seccomp (with
//! it); then the process reads back what holds and reports it to the runtime.

use std::os::fd::RawFd;
use std::path::Path;

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
    let report = read_back(
        landlock,
        c.seccomp.map_or(0, |s| s.filters.len()),
        p.cap_last_cap,
    );
    let report = serde_json::to_string(&report).unwrap_or_default();
    step!(Step::Seccomp, sync.send(&Msg::Enforced { report }))
}

/// What holds now, as the process itself sees it.
fn read_back(landlock: crate::landlock::Status, seccomp_filters: usize, last_cap: u8) -> Enforced {
    Enforced {
        landlock,
        seccomp_mode: sys::process::get_seccomp().ok(),
        seccomp_filters,
        capabilities: read_caps(last_cap),
        no_new_privileges: sys::process::get_no_new_privs().ok(),
    }
}

/// The five capability sets in as few system calls as the kernel allows (each one passes the
/// seccomp filter by now): one `capget` for three sets, one bounding read per capability, and
/// ambient reads only where the kernel can hold one (ambient ⊆ permitted ∩ inheritable).
fn read_caps(last_cap: u8) -> Option<CapNames> {
    let (effective, permitted, inheritable) = sys::process::capget().ok()?;
    let mut bounding = 0u64;
    let mut ambient = 0u64;
    for n in 0..=last_cap.min(63) {
        if sys::process::capbset_read(n).ok()? {
            bounding |= 1 << n;
        }
        if permitted & inheritable & (1 << n) != 0 && sys::process::cap_ambient_is_set(n).ok()? {
            ambient |= 1 << n;
        }
    }
    let names = |mask: u64| {
        let set: caps::CapsHashSet = caps::all()
            .into_iter()
            .filter(|c| c.index() <= 63 && mask & c.bitmask() != 0)
            .collect();
        cap_names(&set)
    };
    Some(CapNames {
        bounding: names(bounding),
        effective: names(effective),
        permitted: names(permitted),
        inheritable: names(inheritable),
        ambient: names(ambient),
    })
}
