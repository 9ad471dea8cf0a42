//! Operator policy: the floors a host sets for every container, which a container's own config
//! cannot lower.
//!
//! A container's config is written by whoever ships the container; the policy is written by
//! whoever runs the host. It lives in a JSON file, by default [`DEFAULT_PATH`] (the CLI's global
//! `--policy FILE` names another; library callers pass a [`Policy`] value). Without a file the
//! [`Policy::default`] applies: everything the runtime-spec allows is allowed, except that
//! annotations may only *tighten* a layer, never weaken it.
//!
//! The policy is evaluated in the parent, before anything is created, on the resolved
//! [`Plan`]: [`evaluate`] is pure and returns every [`Violation`], each naming the config field
//! at fault and the policy setting it breaks; [`enforce`] turns the first into the error that
//! makes `create` fail. `sealrun check` prints them all (see [`crate::check`]).
//!
//! One setting is not a floor but a hole the operator may open: `allowOpenByHandleAt`. While
//! Landlock confines the filesystem, sealrun refuses `open_by_handle_at` (EPERM) in the seccomp
//! program, because a handle names a file without a path and Landlock, which checks paths, cannot
//! see it: with CAP_DAC_READ_SEARCH a container could open any host file by handle.

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::landlock::Weakening;
use crate::namespaces::NsKind;
use crate::seccomp::Verdict;
use crate::spec::{MountKind, Plan};

/// Where the host policy is read from when `--policy` is not given.
pub const DEFAULT_PATH: &str = "/etc/sealrun/policy.json";

/// The syscall sealrun refuses while Landlock confines the filesystem (see the module doc).
pub const OPEN_BY_HANDLE_AT: &str = "open_by_handle_at";

/// The operator policy (`/etc/sealrun/policy.json`). Every field is optional; an absent field
/// keeps the default, which is documented on the field. Unknown fields are errors: a misspelt
/// floor that is silently ignored would be a hole nobody notices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// The file this policy was read from (`None`: built-in defaults or a library value).
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Layers that container annotations may weaken: `"landlock"`
    /// (`run.sealrun.landlock=off`) and `"abstract-unix-scope"`
    /// (`run.sealrun.landlock.scope-abstract-unix=off` in the host's network namespace).
    /// Default: none; annotations may only tighten.
    #[serde(default)]
    pub annotations_may_weaken: Vec<Weakening>,
    /// Refuse a container without a seccomp profile (`linux.seccomp`). Default: false.
    #[serde(default)]
    pub require_seccomp: bool,
    /// Syscalls a container's seccomp profile must not allow unconditionally (for every
    /// argument); a container without a profile allows them all. Default: none.
    #[serde(default)]
    pub forbidden_syscalls: Vec<String>,
    /// Capabilities a container may be granted, in any of the five sets (`CAP_` prefix
    /// optional). Default (absent): any.
    #[serde(default)]
    pub allowed_capabilities: Option<Vec<String>>,
    /// Namespace kinds (`pid`, `network`, `ipc`, `uts`, `mount`, `user`, `cgroup`, `time`) a
    /// container may share with the host, that is neither create nor join by path. Default
    /// (absent): any. A root container without a user namespace shares the host's `user`
    /// namespace, and most configs share `time` and often `cgroup`: list those to allow them.
    #[serde(default)]
    pub allowed_host_namespaces: Option<Vec<String>>,
    /// Allow privileged device access: a `linux.devices` node beyond the runtime-spec default
    /// devices, a device cgroup rule allowing every device of a type, or the host's /dev
    /// bind-mounted. Default: true.
    #[serde(default = "yes")]
    pub allow_privileged_devices: bool,
    /// Refuse a container whose `process.noNewPrivileges` is not true. Default: false.
    #[serde(default)]
    pub require_no_new_privileges: bool,
    /// Let `open_by_handle_at` through even while Landlock confines the filesystem (see the
    /// module doc). Default: false.
    #[serde(default)]
    pub allow_open_by_handle_at: bool,
    /// What a capability name sealrun does not know in `process.capabilities` (or an exec's
    /// process.json) does: `"refuse"` (the runtime-spec's MUST error; crun refuses too) or
    /// `"warn"` (runc's leniency: the name is dropped from every set with one warning line
    /// naming the fields, and the container runs with the known names). Default: refuse.
    #[serde(default)]
    pub unknown_capabilities: UnknownCapabilities,
}

/// The policy's answer to an unknown capability name (see [`Policy::unknown_capabilities`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownCapabilities {
    /// An error naming the field (the runtime-spec's MUST).
    #[default]
    Refuse,
    /// Drop the name with a warning, as runc 1.1 does.
    Warn,
}

fn yes() -> bool {
    true
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            source: None,
            annotations_may_weaken: Vec::new(),
            require_seccomp: false,
            forbidden_syscalls: Vec::new(),
            allowed_capabilities: None,
            allowed_host_namespaces: None,
            allow_privileged_devices: true,
            require_no_new_privileges: false,
            allow_open_by_handle_at: false,
            unknown_capabilities: UnknownCapabilities::Refuse,
        }
    }
}

impl Policy {
    /// Load the policy: `path` when given (a missing file is an error), else [`DEFAULT_PATH`]
    /// (a missing file means the defaults). A malformed file is an error naming the file and
    /// the field.
    pub fn load(path: Option<&Path>) -> Result<Policy> {
        let (path, explicit) = match path {
            Some(p) => (p, true),
            None => (Path::new(DEFAULT_PATH), false),
        };
        let raw = match std::fs::read(path) {
            Ok(raw) => raw,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Policy::default())
            }
            Err(e) => {
                return Err(Error::InvalidArgument(format!(
                    "policy {}: {}",
                    path.display(),
                    crate::error::errno_text(nix::errno::Errno::from_raw(
                        e.raw_os_error().unwrap_or(0)
                    ))
                )))
            }
        };
        let mut policy = Policy::parse(&raw).map_err(|e| in_file(e, path))?;
        policy.source = Some(path.to_path_buf());
        Ok(policy)
    }

    /// Parse and validate a policy document (no file).
    pub fn parse(raw: &[u8]) -> Result<Policy> {
        let policy: Policy = crate::spec::parse_json(raw, "policy")?;
        policy.validate()?;
        Ok(policy)
    }

    /// Check the names in the lists: capabilities, namespace kinds, syscall names.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(caps) = &self.allowed_capabilities {
            crate::spec::parse_capabilities(caps, "allowedCapabilities")?;
        }
        for (i, name) in self.allowed_host_namespaces.iter().flatten().enumerate() {
            if ns_kind(name).is_none() {
                return Err(Error::config(
                    format!("allowedHostNamespaces[{i}]"),
                    format!("unknown namespace kind {name:?}"),
                ));
            }
        }
        for (i, name) in self.forbidden_syscalls.iter().enumerate() {
            if !crate::seccomp::known_syscall(name) {
                return Err(Error::config(
                    format!("forbiddenSyscalls[{i}]"),
                    format!(
                        "{name:?} is not a syscall of this architecture ({})",
                        std::env::consts::ARCH
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Where it came from, for messages.
    pub fn describe(&self) -> String {
        match &self.source {
            Some(p) => p.display().to_string(),
            None if *self == Policy::default() => "none (defaults)".to_string(),
            None => "given by the embedding program".to_string(),
        }
    }
}

/// Prefix a policy parse error's field with the file name.
fn in_file(e: Error, path: &Path) -> Error {
    match e {
        Error::InvalidConfig { field, reason } => {
            let field = if field == "policy" {
                format!("policy {}", path.display())
            } else {
                format!("policy {}: {field}", path.display())
            };
            Error::config(field, reason)
        }
        other => other,
    }
}

fn ns_kind(name: &str) -> Option<NsKind> {
    NsKind::ALL.into_iter().find(|k| k.spec_name() == name)
}

/// One way a container breaks the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The config field at fault (`linux.seccomp`, `annotations["run.sealrun.landlock"]`).
    pub field: String,
    /// The policy setting it breaks (`requireSeccomp`).
    pub rule: &'static str,
    /// What is wrong, in one sentence.
    pub message: String,
}

/// Every way `plan` breaks `policy` (pure), in config order: annotations, seccomp,
/// capabilities, namespaces, devices, noNewPrivileges.
pub fn evaluate(plan: &Plan, policy: &Policy) -> Vec<Violation> {
    let mut out = Vec::new();
    for w in &plan.landlock.init.weakened {
        if !policy.annotations_may_weaken.contains(w) {
            out.push(Violation {
                field: crate::landlock::annotation_field(w.annotation()),
                rule: "annotationsMayWeaken",
                message: format!(
                    "weakens {} below sealrun's default; annotations may only tighten a layer \
                     unless the operator policy lists \"{}\" in annotationsMayWeaken",
                    describe_weakening(*w),
                    w.name()
                ),
            });
        }
    }
    match &plan.seccomp {
        None if policy.require_seccomp => out.push(Violation {
            field: "linux.seccomp".into(),
            rule: "requireSeccomp",
            message: "missing: the operator policy requires a seccomp profile".into(),
        }),
        None if !policy.forbidden_syscalls.is_empty() => out.push(Violation {
            field: "linux.seccomp".into(),
            rule: "forbiddenSyscalls",
            message: format!(
                "missing: without a profile every syscall is allowed, including {}",
                policy.forbidden_syscalls.join(", ")
            ),
        }),
        None => {}
        Some(c) => {
            for name in &policy.forbidden_syscalls {
                if c.verdicts.get(name) == Some(&Verdict::Always) {
                    out.push(Violation {
                        field: "linux.seccomp.syscalls".into(),
                        rule: "forbiddenSyscalls",
                        message: format!("the profile allows {name} unconditionally"),
                    });
                }
            }
        }
    }
    if let Some(allowed) = &policy.allowed_capabilities {
        let allowed =
            crate::spec::parse_capabilities(allowed, "allowedCapabilities").unwrap_or_default();
        for (set, caps) in cap_sets(plan) {
            for cap in caps {
                if !allowed.iter().any(|a| a.to_string() == cap) {
                    out.push(Violation {
                        field: format!("process.capabilities.{set}"),
                        rule: "allowedCapabilities",
                        message: format!("{cap} is not allowed by the operator policy"),
                    });
                }
            }
        }
    }
    if let Some(allowed) = &policy.allowed_host_namespaces {
        for kind in host_namespaces(plan) {
            if !allowed.iter().any(|a| a == kind.spec_name()) {
                out.push(Violation {
                    field: "linux.namespaces".into(),
                    rule: "allowedHostNamespaces",
                    message: format!(
                        "shares the host's {} namespace (no {:?} entry)",
                        kind.spec_name(),
                        kind.spec_name()
                    ),
                });
            }
        }
    }
    if !policy.allow_privileged_devices {
        for (field, what) in privileged_devices(plan) {
            out.push(Violation {
                field,
                rule: "allowPrivilegedDevices",
                message: format!("{what}: privileged devices are not allowed"),
            });
        }
    }
    if policy.require_no_new_privileges && !plan.process.no_new_privileges {
        out.push(Violation {
            field: "process.noNewPrivileges".into(),
            rule: "requireNoNewPrivileges",
            message: "must be true under the operator policy".into(),
        });
    }
    out
}

fn describe_weakening(w: Weakening) -> &'static str {
    match w {
        Weakening::Landlock => "Landlock (switched off)",
        Weakening::AbstractUnixScope => {
            "abstract unix socket scoping (the host's abstract sockets become reachable)"
        }
    }
}

/// Fail with the first violation of the plan's own policy (`plan.opts.policy`); the message
/// says how many more there are (`sealrun check` lists them all).
pub fn enforce(plan: &Plan) -> Result<()> {
    let policy = &plan.opts.policy;
    let violations = evaluate(plan, policy);
    let Some(first) = violations.first() else {
        return Ok(());
    };
    let more = match violations.len() - 1 {
        0 => String::new(),
        n => format!("; and {n} more (see sealrun check)"),
    };
    Err(Error::config(
        first.field.clone(),
        format!(
            "{} [policy {}: {}]{more}",
            first.message,
            policy.describe(),
            first.rule
        ),
    ))
}

/// The capabilities of each set, as sorted names (`("bounding", ["CAP_KILL"])`).
pub fn cap_sets(plan: &Plan) -> Vec<(&'static str, Vec<String>)> {
    let c = &plan.process.caps;
    [
        ("bounding", &c.bounding),
        ("effective", &c.effective),
        ("permitted", &c.permitted),
        ("inheritable", &c.inheritable),
        ("ambient", &c.ambient),
    ]
    .into_iter()
    .map(|(name, set)| {
        let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
        v.sort();
        (name, v)
    })
    .collect()
}

/// Namespace kinds the container shares with the runtime (neither created nor joined).
pub fn host_namespaces(plan: &Plan) -> Vec<NsKind> {
    NsKind::ALL
        .into_iter()
        .filter(|k| !plan.namespaces.has(*k))
        .collect()
}

/// Privileged device access the plan grants: `(config field, what)`.
pub fn privileged_devices(plan: &Plan) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in &plan.devices {
        let default = crate::spec::DEFAULT_DEVICES
            .iter()
            .any(|(_, major, minor)| d.major == *major && d.minor == *minor);
        if !default && d.kind != libc::S_IFIFO {
            out.push((
                "linux.devices".to_string(),
                format!("device {} ({}:{})", d.path.display(), d.major, d.minor),
            ));
        }
    }
    for (i, r) in plan.resources.devices().iter().flatten().enumerate() {
        if r.allow() && r.major().is_none() {
            let typ = r.typ().map(|t| t.as_str().to_string());
            out.push((
                "linux.resources.devices".to_string(),
                format!(
                    "rule {i} allows every {} device",
                    typ.as_deref().unwrap_or("a")
                ),
            ));
        }
    }
    for m in &plan.mounts {
        if let MountKind::Bind { source, .. } = &m.kind {
            if m.destination == Path::new("/dev") || source == Path::new("/dev") {
                out.push((
                    format!("mounts[{}]", m.index),
                    format!("the host's {} bind-mounted", source.display()),
                ));
            }
        }
    }
    out
}

/// Whether sealrun refuses `open_by_handle_at` in this container's seccomp program, and why,
/// or why not (`None`: the process cannot hold CAP_DAC_READ_SEARCH, nothing to say).
pub fn open_by_handle_at(plan: &Plan) -> Option<Value> {
    if !plan.process.has_cap(caps::Capability::CAP_DAC_READ_SEARCH) {
        return None;
    }
    let verdict = plan
        .seccomp
        .as_ref()
        .and_then(|c| c.verdicts.get(OPEN_BY_HANDLE_AT).copied());
    let denied_by_us = plan.seccomp.as_ref().is_some_and(|c| {
        c.summary
            .runtime_denies
            .iter()
            .any(|n| n == OPEN_BY_HANDLE_AT)
    });
    let (state, why) = match (&plan.seccomp, verdict) {
        (None, _) => (
            "allowed",
            "no seccomp profile: CAP_DAC_READ_SEARCH opens any file of a visible filesystem by handle",
        ),
        (Some(_), Some(Verdict::Never)) if denied_by_us => (
            "denied",
            "refused by sealrun while Landlock confines the filesystem (Landlock cannot see handles)",
        ),
        (Some(_), Some(Verdict::Never)) => ("denied", "refused by the seccomp profile"),
        (Some(_), _) if policy_allows(plan) => (
            "allowed",
            "the operator policy allows it (allowOpenByHandleAt): any file of a visible filesystem can be opened by handle",
        ),
        (Some(_), _) => (
            "allowed",
            "Landlock does not confine the filesystem: any file of a visible filesystem can be opened by handle",
        ),
    };
    Some(json!({
        "capability": "CAP_DAC_READ_SEARCH",
        "open_by_handle_at": state,
        "reason": why,
    }))
}

fn policy_allows(plan: &Plan) -> bool {
    plan.opts.policy.allow_open_by_handle_at
}

/// The syscalls sealrun refuses on top of the profile for this container: `open_by_handle_at`
/// while Landlock confines the filesystem, unless the policy allows it.
pub fn runtime_denies(
    landlock: &crate::landlock::Policy,
    policy: &Policy,
) -> &'static [&'static str] {
    if landlock.enabled && landlock.fs && !policy.allow_open_by_handle_at {
        &[OPEN_BY_HANDLE_AT]
    } else {
        &[]
    }
}

/// Compile the container's seccomp profile with sealrun's own refusals ([`runtime_denies`])
/// and the verdicts the policy asks about (called by `spec::plan`).
pub fn compile_seccomp(
    profile: &oci_spec::runtime::LinuxSeccomp,
    landlock: &crate::landlock::Policy,
    policy: &Policy,
) -> Result<crate::seccomp::Compiled> {
    crate::seccomp::compile_with(
        profile,
        runtime_denies(landlock, policy),
        &policy.forbidden_syscalls,
    )
}
