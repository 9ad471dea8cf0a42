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
use crate::error::{Context, Error, Result};
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

/// Where an `exec --cgroup` process goes: the `tasks` files of its v1 cgroups and its cgroup2
/// directory (for `CLONE_INTO_CGROUP`). Each spec is `PATH` (every controller) or
/// `CTL[,CTL]:PATH` (those, overriding `PATH`), with PATH a sub-cgroup of the container's
/// (`/` or empty: the container's own), as runc's `exec --cgroup`. The directories must exist.
pub fn exec_targets(cgroup: &Cgroup, specs: &[String]) -> Result<(Vec<PathBuf>, Option<PathBuf>)> {
    let pure_v2 = cgroup.hierarchies.iter().all(|h| h.v2);
    let mut all = String::new();
    let mut by_ctl: Vec<(String, String)> = Vec::new();
    for spec in specs {
        let (ctls, path) = match spec.split_once(':') {
            Some((c, p)) => (Some(c), p),
            None => (None, spec.as_str()),
        };
        let rel = std::path::Path::new(path.trim_start_matches('/'));
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::InvalidArgument(format!(
                "--cgroup: {path} is not a sub cgroup path"
            )));
        }
        let rel = rel.to_string_lossy().into_owned();
        match ctls {
            None => all = rel,
            Some(c) => {
                for ctl in c.split(',') {
                    let known = cgroup
                        .hierarchies
                        .iter()
                        .any(|h| h.controllers.iter().any(|x| x == ctl) || (h.v2 && pure_v2));
                    if !known {
                        return Err(Error::InvalidArgument(format!(
                            "--cgroup: unknown controller {ctl:?}"
                        )));
                    }
                    by_ctl.push((ctl.to_string(), rel.clone()));
                }
            }
        }
    }
    let sub_of = |h: &crate::cgroups::Hierarchy| {
        by_ctl
            .iter()
            .find(|(c, _)| h.controllers.contains(c) || (h.v2 && pure_v2))
            .map_or(all.as_str(), |(_, p)| p.as_str())
            .to_string()
    };
    let mut tasks = Vec::new();
    let mut v2 = None;
    for h in &cgroup.hierarchies {
        let dir = h.dir.join(sub_of(h));
        if !dir.is_dir() {
            let procs = dir.join("cgroup.procs");
            return Err(Error::Other(format!(
                "exec --cgroup: adding pid to cgroups: {}: no such file or directory",
                procs.display()
            )));
        }
        if h.v2 {
            v2 = Some(dir);
        } else {
            tasks.push(dir.join("tasks"));
        }
    }
    Ok((tasks, v2))
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
    fn exec_cgroup_specs_name_sub_cgroups() {
        let dir = std::env::temp_dir().join(format!("sealrun-exec-cg-{}", std::process::id()));
        for d in ["cpu/c/sub", "memory/c/m", "memory/c/sub"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let h = |ctl: &str| Hierarchy {
            controllers: vec![ctl.into()],
            v2: false,
            mount_point: dir.join(ctl),
            dir: dir.join(ctl).join("c"),
        };
        let cg = Cgroup {
            path: "/c".into(),
            hierarchies: vec![h("cpu"), h("memory")],
            ..Default::default()
        };
        let specs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (t, _) = exec_targets(&cg, &specs(&["/"])).unwrap();
        assert_eq!(t, [dir.join("cpu/c/tasks"), dir.join("memory/c/tasks")]);
        let (t, _) = exec_targets(&cg, &specs(&["sub", "memory:m"])).unwrap();
        assert_eq!(
            t,
            [dir.join("cpu/c/sub/tasks"), dir.join("memory/c/m/tasks")]
        );
        let err = |v: &[&str]| exec_targets(&cg, &specs(v)).unwrap_err().to_string();
        assert!(err(&[".."]).contains(".. is not a sub cgroup path"));
        assert!(err(&["whaaat:/"]).contains("unknown controller"));
        assert!(err(&["nope"]).contains("nope/cgroup.procs: no such file"));
        let _ = std::fs::remove_dir_all(&dir);
    }

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
