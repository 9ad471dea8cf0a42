//! seccomp: the runtime-spec seccomp object compiled to BPF (seccompiler as the generator),
//! the shipped profiles, and the loader.
//!
//! INTERFACE STUB: the seccomp helper replaces the bodies; signatures are the contract.

use std::os::fd::OwnedFd;

use oci_spec::runtime::LinuxSeccomp;

use crate::error::Result;

/// A compiled profile, ready to load in the container's init.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// Summary for the audit line.
    pub summary: Summary,
}

/// What the audit line reports about a profile.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// sha256 of the profile's canonical JSON.
    pub digest: String,
    /// Number of syscall rules, by action.
    pub rules: std::collections::BTreeMap<String, usize>,
    /// Number of stacked BPF filters.
    pub filters: usize,
}

/// Compile a runtime-spec seccomp object (pure; runs in the parent before cloning).
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Compiled> {
    let _ = seccomp;
    Ok(Compiled::default())
}

/// Load a compiled profile into the calling process; returns the user-notification listener
/// fd when the profile uses `SCMP_ACT_NOTIFY`.
pub fn load(compiled: &Compiled) -> Result<Option<OwnedFd>> {
    let _ = compiled;
    Ok(None)
}

/// Hand the notify listener to the agent at `listenerPath` with the container state.
pub fn forward_listener(
    compiled: &Compiled,
    state: &serde_json::Value,
    fd: std::os::fd::BorrowedFd<'_>,
) -> Result<()> {
    let _ = (compiled, state, fd);
    Ok(())
}

/// The shipped default profile rendered for `caps`, as OCI JSON (for `sealrun spec`).
pub fn default_profile_json(caps: &[&str]) -> Result<serde_json::Value> {
    let _ = caps;
    Ok(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}))
}

/// The `linux.seccomp` object of `features`.
pub fn features_json() -> serde_json::Value {
    serde_json::json!({"enabled": false})
}
