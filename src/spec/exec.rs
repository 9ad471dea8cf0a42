//! `exec`: the process to run in an existing container, from a process.json or from the
//! container's own process with command-line overrides (as runc builds it).

use std::path::PathBuf;

use oci_spec::runtime::{Process, Spec};

use super::plan::Layers;
use super::process::{parse_capabilities, plan_process, ProcessPlan};
use crate::error::{Error, Result};

/// Command-line overrides of `exec` (the argument form).
#[derive(Debug, Clone, Default)]
pub struct ExecOverrides {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// `--tty`.
    pub tty: bool,
    /// `--cwd`.
    pub cwd: Option<PathBuf>,
    /// `--env KEY=value`, added to (or replacing in) the container's environment.
    pub env: Vec<String>,
    /// `--user uid[:gid]`.
    pub user: Option<String>,
    /// `--additional-gids`.
    pub additional_gids: Vec<u32>,
    /// `--no-new-privs`.
    pub no_new_privs: bool,
}

/// Everything `exec` needs, decided before cloning.
#[derive(Debug)]
pub struct ExecPlan {
    /// Container id.
    pub id: String,
    /// The process.
    pub process: ProcessPlan,
    /// The container's seccomp profile, compiled.
    pub seccomp: Option<crate::seccomp::Compiled>,
    /// Landlock policy for this process.
    pub landlock: crate::landlock::Policy,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
    /// Layers switched off (tests only; inherited from the container's create).
    pub layers: Layers,
}

/// Build the process from `--process FILE` contents.
pub fn process_from_json(raw: &[u8]) -> Result<Process> {
    super::parse_json::<Process>(raw, "process.json")
}

/// Build the process from the container's config and the argument-form overrides.
pub fn process_from_overrides(spec: &Spec, o: &ExecOverrides) -> Result<Process> {
    let mut p = spec
        .process()
        .clone()
        .ok_or_else(|| Error::config("process", "missing in the container's config"))?;
    if o.args.is_empty() {
        return Err(Error::InvalidArgument("exec: no command given".into()));
    }
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &o.env {
        let key = kv.split_once('=').map(|(k, _)| k).unwrap_or(kv);
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(user) = &o.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let bad = || Error::InvalidArgument(format!("--user {user:?}: expected uid[:gid]"));
        p.user_mut().set_uid(uid.parse().map_err(|_| bad())?);
        p.user_mut().set_gid(
            gid.map(str::parse)
                .transpose()
                .map_err(|_| bad())?
                .unwrap_or(0),
        );
    }
    if !o.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(o.additional_gids.clone()));
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// Resolve the exec plan: the process, plus `--cap` additions, the container's seccomp profile
/// and a Landlock policy computed for this process's own capabilities. `compiled` is the
/// program `create` compiled from that same profile, when it kept one: used instead of
/// compiling again.
pub fn exec_plan(
    id: &str,
    spec: &Spec,
    process: &Process,
    extra_caps: &[String],
    preserve_fds: u32,
    layers: Layers,
    compiled: Option<crate::seccomp::Compiled>,
) -> Result<ExecPlan> {
    let mut plan = plan_process(process, "process")?;
    let extra = parse_capabilities(extra_caps, "--cap")?;
    for set in [
        &mut plan.caps.bounding,
        &mut plan.caps.effective,
        &mut plan.caps.permitted,
        &mut plan.caps.inheritable,
    ] {
        set.extend(extra.iter().copied());
    }
    let no_linux = oci_spec::runtime::Linux::default();
    let linux = spec.linux().as_ref().unwrap_or(&no_linux);
    let seccomp = match linux.seccomp() {
        Some(s) if !layers.no_seccomp => Some(match compiled {
            Some(c) => c,
            None => crate::seccomp::compile(s)?,
        }),
        _ => None,
    };
    let annotations = spec.annotations().clone().unwrap_or_default();
    let landlock = if layers.no_landlock {
        crate::landlock::Policy {
            enabled: false,
            ..crate::landlock::Policy::default()
        }
    } else {
        let ns = crate::namespaces::Namespaces::from_config(
            linux.namespaces().as_deref().unwrap_or(&[]),
        )?;
        crate::landlock::policy(
            &annotations,
            &crate::landlock::Context {
                host_network: super::plan::shares_host_network(&ns),
                cap_sys_admin: plan.has_cap(caps::Capability::CAP_SYS_ADMIN),
            },
        )?
    };
    Ok(ExecPlan {
        id: id.to_string(),
        process: plan,
        seccomp,
        landlock,
        preserve_fds,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["sh"],
                        "env": ["PATH=/bin", "A=1"]},
            "linux": {"namespaces": [{"type": "mount"}]}
        }))
        .unwrap()
    }

    #[test]
    fn overrides_replace_args_env_user_cwd() {
        let o = ExecOverrides {
            args: vec!["ls".into(), "-l".into()],
            env: vec!["A=2".into(), "B=3".into()],
            user: Some("1000:100".into()),
            cwd: Some("/tmp".into()),
            ..ExecOverrides::default()
        };
        let p = process_from_overrides(&spec(), &o).unwrap();
        assert_eq!(
            p.args().as_ref().unwrap(),
            &vec!["ls".to_string(), "-l".into()]
        );
        assert_eq!(
            p.env().as_ref().unwrap(),
            &vec!["PATH=/bin".to_string(), "A=2".into(), "B=3".into()]
        );
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
        assert_eq!(p.cwd(), &PathBuf::from("/tmp"));
    }

    #[test]
    fn bad_user_is_rejected() {
        let o = ExecOverrides {
            args: vec!["ls".into()],
            user: Some("root".into()),
            ..ExecOverrides::default()
        };
        assert!(process_from_overrides(&spec(), &o).is_err());
    }

    #[test]
    fn cap_flag_adds_to_the_sets() {
        let s = spec();
        let p = process_from_overrides(
            &s,
            &ExecOverrides {
                args: vec!["ls".into()],
                ..Default::default()
            },
        )
        .unwrap();
        let plan = exec_plan(
            "c",
            &s,
            &p,
            &["CAP_SYS_PTRACE".into()],
            0,
            Layers::default(),
            None,
        )
        .unwrap();
        assert!(plan
            .process
            .caps
            .effective
            .contains(&caps::Capability::CAP_SYS_PTRACE));
    }
}
