//! The audit record: what protects a container, as the container's process itself read it
//! back after confining itself (not what the Plan intended). The child sends an [`Enforced`]
//! report over the sync channel; `create` turns it into an [`AuditRecord`], logs it and keeps
//! it in the state directory, where `sealrun audit ID` finds it with or without `--log`.

use serde::{Deserialize, Serialize};

use crate::spec::NsKind;
use crate::spec::Plan;

/// Capability sets as names (`CAP_KILL`, ...), sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapNames {
    /// Bounding set.
    pub bounding: Vec<String>,
    /// Effective set.
    pub effective: Vec<String>,
    /// Permitted set.
    pub permitted: Vec<String>,
    /// Inheritable set.
    pub inheritable: Vec<String>,
    /// Ambient set.
    pub ambient: Vec<String>,
}

/// What the confined process read back about itself, just before `execve` waits for `start`.
/// A field is `None` when the process could not read it (a seccomp profile denying `capget`,
/// say).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enforced {
    /// The Landlock ruleset as applied (ABI, rights handled, rules, or why none).
    pub landlock: crate::landlock::Status,
    /// `PR_GET_SECCOMP`: 2 when a seccomp filter confines the process, 0 when none.
    pub seccomp_mode: Option<u32>,
    /// Number of seccomp filters the process loaded.
    pub seccomp_filters: usize,
    /// The capability sets as read back.
    pub capabilities: Option<CapNames>,
    /// `PR_GET_NO_NEW_PRIVS` as read back.
    pub no_new_privileges: Option<bool>,
}

/// The seccomp part of the record: the profile's summary and whether it was loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeccompRecord {
    /// The process is in seccomp filter mode (read back).
    pub loaded: bool,
    /// `PR_GET_SECCOMP` as read back.
    pub mode: Option<u32>,
    /// sha256 of the profile, rule counts, default action, instructions.
    #[serde(flatten)]
    pub summary: crate::seccomp::Summary,
}

/// The Landlock part of the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockRecord {
    /// The ABI the ruleset was built for (0: no Landlock).
    pub abi: i32,
    /// A Landlock domain confines the process (read back from the ruleset status).
    pub enforced: bool,
    /// The policy decided at create.
    pub policy: crate::landlock::Policy,
    /// The ruleset as applied.
    pub status: crate::landlock::Status,
}

/// What protects a container, as enforced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Container id.
    pub id: String,
    /// Host pid of the container's process.
    pub pid: i32,
    /// How the runtime binary was protected (`sealed`, `disabled`).
    pub sealed_exe: String,
    /// Capability sets as read back by the process (empty sets when it could not read them).
    pub capabilities: CapNames,
    /// The capability sets could be read back.
    pub capabilities_read_back: bool,
    /// no_new_privs as read back (`false` when it could not be read).
    pub no_new_privileges: bool,
    /// The seccomp profile and whether it confines the process; `null` without one.
    pub seccomp: Option<SeccompRecord>,
    /// Landlock.
    pub landlock: LandlockRecord,
    /// Namespaces the container does not share with the runtime (spec names).
    pub namespaces: Vec<String>,
    /// Layers switched off for a test (`--unsafe-disable`).
    pub disabled_layers: Vec<String>,
    /// Layers weakened by the container's annotations, as the operator policy allowed.
    pub weakened_layers: Vec<String>,
    /// Whether `open_by_handle_at` is refused, when the process could hold
    /// CAP_DAC_READ_SEARCH (see [`crate::policy::open_by_handle_at`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_dac_read_search: Option<serde_json::Value>,
}

impl AuditRecord {
    /// The record for a container planned as `plan` whose process reported `enforced`.
    pub fn new(plan: &Plan, pid: i32, sealed_exe: &str, enforced: Enforced) -> AuditRecord {
        AuditRecord {
            id: plan.id.clone(),
            pid,
            sealed_exe: sealed_exe.to_string(),
            capabilities_read_back: enforced.capabilities.is_some(),
            capabilities: enforced.capabilities.unwrap_or_default(),
            no_new_privileges: enforced.no_new_privileges.unwrap_or(false),
            seccomp: plan.seccomp.as_ref().map(|c| SeccompRecord {
                loaded: enforced.seccomp_filters > 0 && enforced.seccomp_mode != Some(0),
                mode: enforced.seccomp_mode,
                summary: c.summary.clone(),
            }),
            landlock: LandlockRecord {
                abi: enforced.landlock.abi,
                enforced: enforced.landlock.enforced,
                policy: plan.landlock.init.clone(),
                status: enforced.landlock,
            },
            namespaces: NsKind::ALL
                .iter()
                .filter(|k| plan.namespaces.has(**k))
                .map(|k| k.spec_name().to_string())
                .collect(),
            disabled_layers: plan.opts.layers.disabled_names(),
            weakened_layers: plan
                .landlock
                .init
                .weakened
                .iter()
                .map(|w| w.name().to_string())
                .collect(),
            cap_dac_read_search: crate::policy::open_by_handle_at(plan),
        }
    }
}

impl AuditRecord {
    /// The record of a process `exec` started in the container planned as `container`.
    pub fn for_exec(
        container: &Plan,
        exec: &crate::spec::ExecPlan,
        pid: i32,
        sealed_exe: &str,
        enforced: Enforced,
    ) -> AuditRecord {
        let mut r = AuditRecord::new(container, pid, sealed_exe, enforced);
        if exec.seccomp.is_none() {
            r.seccomp = None;
        }
        r.landlock.policy = exec.landlock.clone();
        r.disabled_layers = exec.layers.disabled_names();
        r
    }
}

/// Sorted names of a capability set.
pub fn cap_names(set: &caps::CapsHashSet) -> Vec<String> {
    let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}
