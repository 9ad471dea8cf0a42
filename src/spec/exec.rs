//! `exec`: the process to run in an existing container, from a process.json or from the
//! container's own process with command-line overrides (as runc builds it). Everything else
//! comes from the container's persisted [`Plan`]: nothing re-parses the config.

use std::ffi::CString;
use std::path::PathBuf;

use oci_spec::runtime::Process;

use super::plan::{Layers, Plan};
use super::process::{parse_capabilities, plan_process, ProcessPlan};
use crate::error::{Error, Result};

/// Command-line overrides of `exec` (the argument form). Start from `Default` and set
/// fields: new fields may be added.
#[non_exhaustive]
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
    /// The container's seccomp profile, compiled at create.
    pub seccomp: Option<crate::seccomp::Compiled>,
    /// Landlock policy for this process (decided at create for processes like it).
    pub landlock: crate::landlock::Policy,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
    /// Layers switched off (tests only; those of the container's create, plus exec's own).
    pub layers: Layers,
    /// Keep the caller's session keyring (`create --no-new-keyring`).
    pub no_new_keyring: bool,
}

/// Build the process from `--process FILE` contents. Unknown capability names follow the
/// policy the container was created under (refused, or dropped and returned to warn about).
pub fn process_from_json(
    raw: &[u8],
    container: &Plan,
) -> Result<(ProcessPlan, Vec<super::IgnoredCapability>)> {
    let (p, ignored) = super::parse_with::<Process>(
        &with_default_user(raw),
        "process.json",
        &["capabilities"],
        container.opts.policy.unknown_capabilities,
    )?;
    let plan = plan_process(&p, "process", container.process.cap_last_cap)?;
    Ok((plan, ignored))
}

/// A process.json without `user` runs as 0:0, as runc's exec reads it (the Go struct's zero
/// value); anything else is left for the parser to judge.
fn with_default_user(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(mut m)) if !m.contains_key("user") => {
            m.insert("user".into(), serde_json::json!({"uid": 0, "gid": 0}));
            serde_json::to_vec(&m).map_or(raw.into(), Into::into)
        }
        _ => raw.into(),
    }
}

fn cstring(s: &str, field: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::config(field, "contains a NUL byte"))
}

/// Build the process from the container's own process and the argument-form overrides.
pub fn process_from_overrides(base: &ProcessPlan, o: &ExecOverrides) -> Result<ProcessPlan> {
    let mut p = base.clone();
    if o.args.is_empty() || o.args[0].is_empty() {
        return Err(Error::InvalidArgument("exec: no command given".into()));
    }
    p.args = o
        .args
        .iter()
        .map(|a| cstring(a, "args"))
        .collect::<Result<_>>()?;
    p.terminal = o.tty;
    if let Some(cwd) = &o.cwd {
        if !cwd.is_absolute() {
            return Err(Error::config(
                "--cwd",
                format!("{} is not an absolute path", cwd.display()),
            ));
        }
        p.cwd = cwd.clone();
    }
    for kv in &o.env {
        let Some((key, _)) = kv.split_once('=') else {
            return Err(Error::config("--env", format!("{kv:?} is not KEY=value")));
        };
        let prefix = format!("{key}=");
        p.env
            .retain(|e| !e.to_bytes().starts_with(prefix.as_bytes()));
        p.env.push(cstring(kv, "--env")?);
        if key == "PATH" {
            p.path_var = Some(kv[prefix.len()..].to_string());
        }
    }
    if let Some(user) = &o.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let bad = || Error::InvalidArgument(format!("--user {user:?}: expected uid[:gid]"));
        p.uid = uid.parse().map_err(|_| bad())?;
        // Without a gid the process keeps the configured one, as runc does.
        if let Some(g) = gid {
            p.gid = g.parse().map_err(|_| bad())?;
        }
    }
    if !o.additional_gids.is_empty() {
        p.additional_gids = o.additional_gids.clone();
    }
    if o.no_new_privs {
        p.no_new_privileges = true;
    }
    Ok(p)
}

/// Resolve the exec plan from the container's persisted Plan: `--cap` additions (to the
/// bounding, effective and permitted sets, and to ambient only when the process already has
/// inheritable capabilities, as runc does since CVE-2022-29162), the container's compiled
/// seccomp program and the Landlock policy decided at create for a process like this one.
pub fn exec_plan(
    container: &Plan,
    mut process: ProcessPlan,
    extra_caps: &[String],
    preserve_fds: u32,
    exec_layers: Layers,
) -> Result<ExecPlan> {
    let extra = parse_capabilities(extra_caps, "--cap")?;
    let ambient_too = !process.caps.inheritable.is_empty();
    for cap in extra {
        process.caps.bounding.insert(cap);
        process.caps.effective.insert(cap);
        process.caps.permitted.insert(cap);
        if ambient_too {
            process.caps.ambient.insert(cap);
        }
    }
    process.setgroups_denied = container.process.setgroups_denied;
    let layers = container.opts.layers.union(exec_layers);
    let seccomp = if layers.no_seccomp {
        None
    } else {
        container.seccomp.clone()
    };
    let landlock = if layers.no_landlock {
        crate::landlock::Policy {
            enabled: false,
            ..crate::landlock::Policy::default()
        }
    } else {
        container
            .landlock
            .for_exec(process.has_cap(caps::Capability::CAP_SYS_ADMIN))?
            .clone()
    };
    Ok(ExecPlan {
        id: container.id.clone(),
        process,
        seccomp,
        landlock,
        preserve_fds,
        layers,
        no_new_keyring: container.opts.no_new_keyring,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use caps::Capability as Cap;

    fn base(json: serde_json::Value) -> ProcessPlan {
        let p: Process = serde_json::from_value(json).unwrap();
        plan_process(&p, "process", 40).unwrap()
    }

    fn sh() -> ProcessPlan {
        base(serde_json::json!({
            "cwd": "/", "user": {"uid": 0, "gid": 7}, "args": ["sh"], "env": ["PATH=/bin", "A=1"]
        }))
    }

    fn strs(v: &[CString]) -> Vec<String> {
        v.iter().map(|c| c.to_str().unwrap().to_string()).collect()
    }

    #[test]
    fn overrides_replace_args_env_user_cwd() {
        let o = ExecOverrides {
            args: vec!["ls".into(), "-l".into()],
            env: vec!["A=2".into(), "B=3".into(), "PATH=/usr/bin".into()],
            user: Some("1000:100".into()),
            cwd: Some("/tmp".into()),
            ..ExecOverrides::default()
        };
        let p = process_from_overrides(&sh(), &o).unwrap();
        assert_eq!(strs(&p.args), vec!["ls", "-l"]);
        assert_eq!(strs(&p.env), vec!["A=2", "B=3", "PATH=/usr/bin"]);
        assert_eq!(p.path_var.as_deref(), Some("/usr/bin"));
        assert_eq!((p.uid, p.gid), (1000, 100));
        assert_eq!(p.cwd, PathBuf::from("/tmp"));
    }

    #[test]
    fn user_without_gid_keeps_the_configured_gid() {
        let o = ExecOverrides {
            args: vec!["id".into()],
            user: Some("1000".into()),
            ..ExecOverrides::default()
        };
        let p = process_from_overrides(&sh(), &o).unwrap();
        assert_eq!(
            (p.uid, p.gid),
            (1000, 7),
            "gid stays the configured 7, not 0"
        );
    }

    #[test]
    fn bad_user_and_relative_cwd_are_rejected() {
        let o = ExecOverrides {
            args: vec!["ls".into()],
            user: Some("root".into()),
            ..ExecOverrides::default()
        };
        assert!(process_from_overrides(&sh(), &o).is_err());
        let o = ExecOverrides {
            args: vec!["ls".into()],
            cwd: Some("tmp".into()),
            ..ExecOverrides::default()
        };
        let e = process_from_overrides(&sh(), &o).unwrap_err().to_string();
        assert!(e.contains("--cwd"), "{e}");
    }

    fn container(process: ProcessPlan) -> Plan {
        let mut plan = crate::spec::plan::tests::plan_for_tests();
        plan.process = process;
        plan
    }

    #[test]
    fn cap_flag_never_adds_to_inheritable() {
        let c = container(sh());
        let plan = exec_plan(&c, sh(), &["CAP_SYS_PTRACE".into()], 0, Layers::default()).unwrap();
        let caps = &plan.process.caps;
        for set in [&caps.bounding, &caps.effective, &caps.permitted] {
            assert!(set.contains(&Cap::CAP_SYS_PTRACE));
        }
        assert!(caps.inheritable.is_empty(), "CVE-2022-29162: {caps:?}");
        assert!(
            caps.ambient.is_empty(),
            "no inheritable caps, so no ambient"
        );
    }

    #[test]
    fn cap_flag_goes_to_ambient_when_inheritable_caps_exist() {
        let p = base(serde_json::json!({
            "cwd": "/", "user": {"uid": 1, "gid": 1}, "args": ["sh"],
            "capabilities": {"inheritable": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
        }));
        let plan = exec_plan(
            &container(p.clone()),
            p,
            &["CAP_CHOWN".into()],
            0,
            Layers::default(),
        )
        .unwrap();
        let caps = &plan.process.caps;
        assert!(caps.ambient.contains(&Cap::CAP_CHOWN));
        assert!(!caps.inheritable.contains(&Cap::CAP_CHOWN));
    }

    #[test]
    fn exec_keeps_the_containers_layers_and_keyring_choice() {
        let mut c = container(sh());
        c.opts.layers.no_seccomp = true;
        c.opts.no_new_keyring = true;
        let plan = exec_plan(&c, sh(), &[], 0, Layers::default()).unwrap();
        assert!(plan.seccomp.is_none());
        assert!(plan.layers.no_seccomp && plan.no_new_keyring);
    }
}
