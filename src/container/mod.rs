//! The parent side: state directory, create/start/run/state/kill/delete/list orchestration.
//!
//! These are the CLI's functions: they act in the calling process (fork, `setns`, working
//! directory, dumpable flag, signal mask) and suit only a single-threaded, sealed runtime
//! binary. Programs embedding sealrun use [`crate::Sandbox`], which runs them in a helper.

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

/// Global settings every command needs.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Runtime {
    /// `--root`.
    pub root: StateRoot,
    /// How the binary is protected (for the audit line).
    pub seal: crate::selfexe::SealStatus,
    /// The operator policy every `create` is held to (`Policy::default()`: none).
    pub policy: crate::policy::Policy,
}

impl Runtime {
    /// Settings for the state directory `root`, running as `seal` says, with no operator
    /// policy (set [`Runtime::policy`] for one).
    pub fn new(root: StateRoot, seal: crate::selfexe::SealStatus) -> Runtime {
        Runtime {
            root,
            seal,
            policy: crate::policy::Policy::default(),
        }
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
