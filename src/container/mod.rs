//! The parent side: state directory, create/start/run/state/kill/delete/list orchestration.
//!
//! These are the CLI's functions: they act in the calling process (fork, `setns`, working
//! directory, dumpable flag, signal mask) and suit only a single-threaded, sealed runtime
//! binary, which is why they need a [`Runtime`] (made only by the `unsafe` [`Runtime::new`]).
//! Programs embedding sealrun use [`crate::Sandbox`], which runs them in a helper.

mod create;
mod criu;
mod exec;
mod flags;
pub mod host;
mod idmap;
mod launch;
mod lifecycle;
mod manage;
mod nocgroup;
pub mod order;
pub mod state;
mod tty;

pub use create::{create, run, run_keep, RunOutcome};
pub use criu::{checkpoint, restore, unsupported as criu_unsupported};
pub use exec::{exec, ExecOptions, ProcessSource};
pub use flags::{parse_interval, ps_table, UpdateFlags};
pub use lifecycle::{audit, delete, kill, kill_check, list, parse_signal, start, state, ListEntry};
pub use manage::{
    cgroup_stats, events, parse_size, pause, pids, resume, stats, stats_data, update,
};
pub use state::{StateRoot, Status};

/// The runtime's settings, and the proof that the calling process may act as the runtime.
///
/// Every function of this module that drives a container takes a `Runtime`, and the only
/// public way to get one is the `unsafe` [`Runtime::new`]: these functions change the process
/// that calls them (see its safety contract), so a program reaches them only by saying that
/// it is a runtime process. Embedders use [`crate::Sandbox`], whose helper process is one.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// `--root`.
    pub(crate) root: StateRoot,
    /// How the binary is protected (for the audit line).
    pub(crate) seal: crate::selfexe::SealStatus,
    /// The operator policy every `create` is held to (`Policy::default()`: none).
    pub(crate) policy: crate::policy::Policy,
}

impl Runtime {
    /// Settings for the state directory `root`, running as `seal` says, with no operator
    /// policy (see [`Runtime::with_policy`]).
    ///
    /// # Safety
    /// The functions that take a `Runtime` act in the calling process: `create`, `run` and
    /// `exec` fork it with `clone3` (in a process with other threads the child may find a lock
    /// held forever, and it runs Rust code before `exec`), `exec` enters the container's
    /// namespaces, they change its working directory, dumpable flag and signal mask, and
    /// reap or wait for children. The caller promises that the process is dedicated to being
    /// the runtime: single-threaded whenever one of them runs, owning every child it has, and
    /// relying afterwards on none of the state listed. The `sealrun` binary and a shim's
    /// worker are such processes; a program embedding sealrun is not (use [`crate::Sandbox`]).
    ///
    /// Safe code cannot make one:
    ///
    /// ```compile_fail,E0133
    /// use sealrun::container::{Runtime, StateRoot};
    /// use sealrun::selfexe::SealStatus;
    /// let rt = Runtime::new(StateRoot::new("/run/x".as_ref()), SealStatus::Disabled);
    /// ```
    #[allow(unsafe_code)]
    pub unsafe fn new(root: StateRoot, seal: crate::selfexe::SealStatus) -> Runtime {
        Runtime {
            root,
            seal,
            policy: crate::policy::Policy::default(),
        }
    }

    /// A `Runtime` for the read-only queries (`state`, `audit`, `stats`, `pids`) a
    /// [`crate::Sandbox`] answers in the caller's process: they change nothing there, and
    /// nothing else may be called with it.
    pub(crate) fn for_queries(root: StateRoot) -> Runtime {
        Runtime {
            root,
            seal: crate::selfexe::SealStatus::Disabled,
            policy: crate::policy::Policy::default(),
        }
    }

    /// The same settings, holding every `create` to `policy`.
    pub fn with_policy(mut self, policy: crate::policy::Policy) -> Runtime {
        self.policy = policy;
        self
    }

    /// The state directory.
    pub fn root(&self) -> &StateRoot {
        &self.root
    }

    /// How this process's executable is protected.
    pub fn seal(&self) -> crate::selfexe::SealStatus {
        self.seal
    }

    /// The operator policy.
    pub fn policy(&self) -> &crate::policy::Policy {
        &self.policy
    }
}

/// Format rows as an aligned table (columns padded to their widest cell, as runc's tabwriter).
pub fn table(rows: &[Vec<String>]) -> String {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[c].max(10) + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
