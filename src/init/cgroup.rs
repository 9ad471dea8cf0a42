//! Joining the container's cgroup from inside the new process, in the v1 hierarchies.
//!
//! Moving another process (writing its pid to `cgroup.procs`) takes the kernel's global
//! threadgroup lock for writing, and that waits for an RCU grace period: 5 to 15 ms per
//! container on a busy host, more than everything else `create` does. A thread that moves
//! itself (writing `0` to a v1 `tasks` file) takes no such lock. The runtime's children are
//! single-threaded, so moving the calling thread moves the whole process. The cgroup2
//! hierarchy needs neither: `clone3(CLONE_INTO_CGROUP)` places the child at birth.

use std::io::Write;
use std::path::PathBuf;

use crate::cgroups::Cgroup;
use crate::error::{Context, Result};
use crate::namespaces::NsKind;
use crate::spec::Plan;

/// Whether the init (or the first stage) joins its v1 cgroups itself. Not when it is born in
/// a new user namespace: it can no longer write the host's cgroup files, so the runtime moves
/// it as before. (The two-stage path starts in the runtime's user namespace.)
pub fn joins_itself(plan: &Plan) -> bool {
    plan.namespaces.needs_two_stages() || !plan.namespaces.creates(NsKind::User)
}

/// The `tasks` files of the container's cgroup in every v1 hierarchy.
pub fn tasks_files(cgroup: &Cgroup) -> Vec<PathBuf> {
    cgroup
        .hierarchies
        .iter()
        .filter(|h| !h.v2)
        .map(|h| h.dir.join("tasks"))
        .collect()
}

/// Move the calling thread (the whole process: it has one thread) into each `tasks` file's
/// cgroup.
pub fn join(tasks: &[PathBuf]) -> Result<()> {
    for path in tasks {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(b"0"))
            .op_path("join cgroup", path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::Hierarchy;

    #[test]
    fn only_v1_hierarchies_have_tasks_files() {
        let cg = Cgroup {
            path: "/a/b".into(),
            hierarchies: vec![
                Hierarchy {
                    controllers: vec!["cpu".into()],
                    v2: false,
                    mount_point: "/sys/fs/cgroup/cpu".into(),
                    dir: "/sys/fs/cgroup/cpu/a/b".into(),
                },
                Hierarchy {
                    controllers: vec![],
                    v2: true,
                    mount_point: "/sys/fs/cgroup/unified".into(),
                    dir: "/sys/fs/cgroup/unified/a/b".into(),
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            tasks_files(&cg),
            vec![PathBuf::from("/sys/fs/cgroup/cpu/a/b/tasks")]
        );
    }
}
