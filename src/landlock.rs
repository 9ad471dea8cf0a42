//! Landlock: confine the container to its own root.
//!
//! INTERFACE STUB: the Landlock helper replaces the bodies; signatures are the contract.

use std::collections::HashMap;

use crate::error::Result;

/// The Landlock policy for one container process, decided in the parent.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Whether a ruleset is applied at all.
    pub enabled: bool,
}

/// What was enforced, for the audit line.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Status {
    /// Effective Landlock ABI (0 when unsupported or disabled).
    pub abi: i32,
}

/// Inputs to the policy decision besides the annotations.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The container shares the host's network namespace.
    pub host_network: bool,
    /// The process is granted CAP_SYS_ADMIN.
    pub cap_sys_admin: bool,
}

/// Decide the policy from the `run.sealrun.landlock*` annotations (pure).
pub fn policy(annotations: &HashMap<String, String>, ctx: &Context) -> Result<Policy> {
    let _ = (annotations, ctx);
    Ok(Policy::default())
}

/// Apply the policy to the calling process; "/" must already be the container's root.
pub fn apply(policy: &Policy, root: &std::path::Path) -> Result<Status> {
    let _ = (policy, root);
    Ok(Status::default())
}

/// The Landlock ABI of the running kernel (0 when unavailable).
pub fn abi() -> i32 {
    0
}

/// What the policy will enforce, for the audit line (decided in the parent).
pub fn describe(policy: &Policy) -> serde_json::Value {
    serde_json::json!({ "enabled": policy.enabled, "abi": abi() })
}
