//! The shipped profiles (`seccomp-profiles/*.json`, embedded) and their rendering into plain
//! runtime-spec seccomp objects for a capability set.
//!
//! # Profile format
//!
//! A shipped profile is the runtime-spec seccomp object (`defaultAction`, `defaultErrnoRet`,
//! `flags`, `syscalls` with `names`, `action`, `errnoRet`, `args`) plus a few sealrun keys,
//! which rendering removes (OCI JSON has no conditionals):
//!
//! * `"comment"` (top level and on rules): free text, ignored.
//! * `"includes": {"caps": [...], "minKernel": "M.m"}` on a rule: the rule is kept only if
//!   every listed capability is granted and the running kernel is at least `M.m`.
//! * `"excludes": {"caps": [...]}` on a rule: the rule is dropped if any listed capability is
//!   granted.
//!
//! Capability names are the runtime-spec's (`CAP_SYS_ADMIN`); unknown keys are errors, so a
//! typo cannot silently widen a profile. Rendering also drops syscall names this architecture
//! does not have (profiles name x86_64 and aarch64 calls alike) and sets `architectures` to the
//! native one only (the compat tables are refused anyway).

use std::collections::HashSet;

use oci_spec::runtime::{
    Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSyscall,
};
use serde::Deserialize;

use super::syscalls::{self, NativeArch};
use crate::error::{Error, Result};

/// Names of the shipped profiles, for [`profile`].
pub const PROFILE_NAMES: &[&str] = &["default", "strict"];

const DEFAULT_JSON: &str = include_str!("../../seccomp-profiles/default.json");
const STRICT_JSON: &str = include_str!("../../seccomp-profiles/strict.json");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProfileFile {
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    syscalls: Vec<ProfileRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProfileRule {
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
    names: Vec<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Includes,
    #[serde(default)]
    excludes: Excludes,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Includes {
    #[serde(default)]
    caps: Vec<Capability>,
    #[serde(default)]
    min_kernel: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Excludes {
    #[serde(default)]
    caps: Vec<Capability>,
}

/// `"M.m..."` → (M, m).
fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()
        .map(|m| {
            let digits: String = m.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or(Some(0))?;
    Some((major, minor))
}

/// The running kernel's (major, minor), from uname.
fn kernel_version() -> Option<(u32, u32)> {
    let uts = nix::sys::utsname::uname().ok()?;
    parse_version(uts.release().to_str()?)
}

/// Render the shipped profile `name` into a plain runtime-spec seccomp object for a container
/// granted `granted_caps` (the bounding set), on the running kernel and architecture.
/// Used by `sealrun spec` to write config.json.
pub fn profile<'a>(
    name: &str,
    granted_caps: impl IntoIterator<Item = &'a Capability>,
) -> Result<LinuxSeccomp> {
    let json = match name {
        "default" => DEFAULT_JSON,
        "strict" => STRICT_JSON,
        other => {
            return Err(Error::InvalidArgument(format!(
                "unknown seccomp profile {other:?} (shipped: {})",
                PROFILE_NAMES.join(", ")
            )))
        }
    };
    let arch = syscalls::native().ok_or_else(|| {
        Error::Unsupported(format!(
            "seccomp profiles on {}: sealrun has no syscall table for it",
            std::env::consts::ARCH
        ))
    })?;
    let caps: HashSet<Capability> = granted_caps.into_iter().copied().collect();
    render(name, json, &caps, kernel_version(), arch)
}

/// Render profile text for `caps` and `kernel` (unknown kernel: `minKernel` rules are left
/// out) on `arch`.
pub(crate) fn render(
    name: &str,
    json: &str,
    caps: &HashSet<Capability>,
    kernel: Option<(u32, u32)>,
    arch: &NativeArch,
) -> Result<LinuxSeccomp> {
    let file: ProfileFile = serde_json::from_str(json)
        .map_err(|e| Error::Other(format!("seccomp profile {name}: {e}")))?;
    let mut syscalls = Vec::with_capacity(file.syscalls.len());
    for (i, rule) in file.syscalls.into_iter().enumerate() {
        if !rule.includes.caps.iter().all(|c| caps.contains(c))
            || rule.excludes.caps.iter().any(|c| caps.contains(c))
        {
            continue;
        }
        if let Some(min) = &rule.includes.min_kernel {
            let min = parse_version(min).ok_or_else(|| {
                Error::Other(format!(
                    "seccomp profile {name}: syscalls[{i}].includes.minKernel: bad version {min:?}"
                ))
            })?;
            if kernel.is_none_or(|k| k < min) {
                continue;
            }
        }
        let names: Vec<String> = rule
            .names
            .into_iter()
            .filter(|n| arch.lookup(n).is_some())
            .collect();
        if names.is_empty() {
            continue;
        }
        let mut out = LinuxSyscall::default();
        out.set_names(names)
            .set_action(rule.action)
            .set_errno_ret(rule.errno_ret)
            .set_args(rule.args);
        syscalls.push(out);
    }
    let mut seccomp = LinuxSeccomp::default();
    seccomp
        .set_default_action(file.default_action)
        .set_default_errno_ret(file.default_errno_ret)
        .set_architectures(Some(vec![arch.oci]))
        .set_flags(file.flags)
        .set_syscalls(Some(syscalls));
    Ok(seccomp)
}

#[cfg(test)]
pub(crate) fn shipped() -> [(&'static str, &'static str); 2] {
    [("default", DEFAULT_JSON), ("strict", STRICT_JSON)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("4.8"), Some((4, 8)));
        assert_eq!(parse_version("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_version("5"), Some((5, 0)));
        assert_eq!(parse_version("6.1-rc3"), Some((6, 1)));
        assert_eq!(parse_version("x.1"), None);
        assert!(kernel_version().is_some());
    }

    #[test]
    fn unknown_profile_name_is_an_error() {
        assert!(matches!(
            profile("nope", &[]),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn unknown_extension_keys_are_errors() {
        let arch = syscalls::native().expect("native");
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["getpid"],"action":"SCMP_ACT_ERRNO","include":{"caps":["CAP_SYS_ADMIN"]}}]}"#;
        assert!(render("t", json, &HashSet::new(), Some((6, 1)), arch).is_err());
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["getpid"],"action":"SCMP_ACT_ERRNO","includes":{"caps":["CAP_SYS_ADMINN"]}}]}"#;
        assert!(render("t", json, &HashSet::new(), Some((6, 1)), arch).is_err());
    }

    #[test]
    fn conditions_select_rules() {
        let arch = syscalls::native().expect("native");
        let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["getpid"],"action":"SCMP_ACT_ALLOW"},
            {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
            {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38,
             "excludes":{"caps":["CAP_SYS_ADMIN"]}},
            {"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.8"}},
            {"names":["no_such_call"],"action":"SCMP_ACT_ALLOW"}]}"#;
        let names = |s: &LinuxSeccomp| -> Vec<String> {
            s.syscalls()
                .iter()
                .flatten()
                .flat_map(|r| r.names().clone())
                .collect()
        };
        let none = render("t", json, &HashSet::new(), Some((4, 7)), arch).expect("render");
        assert_eq!(names(&none), ["getpid", "clone3"]);
        assert_eq!(none.architectures().as_deref(), Some(&[arch.oci][..]));
        let admin: HashSet<Capability> = [Capability::SysAdmin].into();
        let with = render("t", json, &admin, Some((6, 1)), arch).expect("render");
        assert_eq!(names(&with), ["getpid", "mount", "ptrace"]);
        let unknown_kernel = render("t", json, &HashSet::new(), None, arch).expect("render");
        assert_eq!(names(&unknown_kernel), ["getpid", "clone3"]);
    }
}
