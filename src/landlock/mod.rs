//! Landlock: confine the container to its own root.
//!
//! The default policy allows everything beneath the container's root and nothing outside it.
//! Leaked host file descriptors, a working directory outside the root (CVE-2024-21626) and magic
//! links into the host (`/proc/<pid>/exe`, `/proc/<pid>/root`, `/proc/self/fd/N`) then lead
//! nowhere, even when the layer that should have prevented them fails. Abstract unix sockets are
//! scoped when the container shares the host's network namespace (CVE-2020-15257).
//!
//! The split follows the house rule: [`policy`] decides from the annotations and the
//! [`Context`] (pure, in the parent), [`check`] tells the parent early whether the kernel can
//! enforce a policy that is *required*, and `apply` (crate-internal) builds and enforces the ruleset in the
//! process that is about to run the container's code (init story step 11, after `pivot_root`
//! with `root` = `/`; `exec` processes do the same after joining the mount namespace).
//!
//! Signals are never scoped: processes started by `exec` live in a sibling domain and must be
//! able to `kill 1`. Annotations and consequences are documented in `docs/landlock.md`.

mod annotations;
mod build;
mod tree;

#[cfg(test)]
mod tier2;

use std::collections::HashMap;
use std::path::Path;

use landlock::{Access, AccessFs, AccessNet, BitFlags, RestrictSelf, Scope, ABI};

use crate::error::{Error, Result};

pub use annotations::{field as annotation_field, Weakening};
pub use annotations::{
    Mode, ALL as ANNOTATIONS, MAX_PORTS, MODE as ANNOTATION_MODE, NO_EXEC as ANNOTATION_NO_EXEC,
    READ_ONLY as ANNOTATION_READ_ONLY, SCOPE_ABSTRACT_UNIX as ANNOTATION_SCOPE_ABSTRACT_UNIX,
    TCP_BIND as ANNOTATION_TCP_BIND, TCP_CONNECT as ANNOTATION_TCP_CONNECT,
};

/// The Landlock policy for one container process, decided in the parent by [`policy`].
///
/// `Policy::default()` is the default policy of a container that is not granted CAP_SYS_ADMIN
/// and has a network namespace of its own: confined to its root, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    /// Whether a ruleset is applied at all.
    pub enabled: bool,
    /// The `run.sealrun.landlock` mode.
    pub mode: Mode,
    /// Whether filesystem rights are handled (confinement to the root). False only when the
    /// process is granted CAP_SYS_ADMIN and the mode is `on`.
    pub fs: bool,
    /// Container paths made read-only (normalised, absolute).
    pub read_only: Vec<String>,
    /// Container paths beneath which no file may be `execve`d (normalised, absolute).
    pub no_exec: Vec<String>,
    /// Allowed TCP bind ports; `None` leaves binding unrestricted.
    pub tcp_bind: Option<Vec<u16>>,
    /// Allowed TCP connect ports; `None` leaves connecting unrestricted.
    pub tcp_connect: Option<Vec<u16>>,
    /// Scope abstract unix sockets to the container's domain.
    pub scope_abstract_unix: bool,
    /// Why the policy is disabled or narrower than the default, for the audit line.
    pub notes: Vec<String>,
    /// Layers the container's annotations weakened below the default: refused at `create`
    /// unless the operator policy allows each (`crate::policy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weakened: Vec<Weakening>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled: true,
            mode: Mode::On,
            fs: true,
            read_only: Vec::new(),
            no_exec: Vec::new(),
            tcp_bind: None,
            tcp_connect: None,
            scope_abstract_unix: false,
            notes: Vec::new(),
            weakened: Vec::new(),
        }
    }
}

/// What was enforced, for the audit line.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Status {
    /// Effective Landlock ABI (0 when unsupported).
    pub abi: i32,
    /// The `run.sealrun.landlock` mode.
    pub mode: Mode,
    /// Whether a Landlock domain now confines the process.
    pub enforced: bool,
    /// Why nothing was enforced, when `enforced` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Handled filesystem rights (kernel names without the `LANDLOCK_ACCESS_FS_` prefix, lower case).
    pub fs: Vec<String>,
    /// Handled network rights.
    pub net: Vec<String>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Number of rules added (filesystem and network).
    pub rules: usize,
    /// What was skipped or narrowed, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Inputs to the policy decision besides the annotations.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The container shares the runtime's network namespace: no `network` entry in
    /// `linux.namespaces`, or one joined by a path whose inode is that of `/proc/self/ns/net`.
    pub host_network: bool,
    /// The process may hold CAP_SYS_ADMIN: it is in the bounding set of its
    /// `process.capabilities` (or any other of the five sets). For `exec`, the exec'd
    /// process's own capabilities.
    pub cap_sys_admin: bool,
}

/// Decide the policy from the `run.sealrun.landlock*` annotations (pure).
pub fn policy(annotations: &HashMap<String, String>, ctx: &Context) -> Result<Policy> {
    let a = annotations::parse(annotations)?;
    let mut p = Policy {
        enabled: a.mode != Mode::Off,
        mode: a.mode,
        read_only: a.read_only,
        no_exec: a.no_exec,
        tcp_bind: a.tcp_bind,
        tcp_connect: a.tcp_connect,
        scope_abstract_unix: a.scope_abstract_unix.unwrap_or(ctx.host_network),
        ..Policy::default()
    };
    if a.mode != Mode::Off && ctx.host_network && a.scope_abstract_unix == Some(false) {
        p.weakened.push(Weakening::AbstractUnixScope);
    }
    match p.mode {
        Mode::Off => {
            p.weakened.push(Weakening::Landlock);
            p.fs = false;
            p.scope_abstract_unix = false;
            p.notes
                .push(format!("disabled by annotation {}=off", annotations::MODE));
        }
        Mode::On if ctx.cap_sys_admin => {
            let key = if !p.read_only.is_empty() {
                Some(annotations::READ_ONLY)
            } else if !p.no_exec.is_empty() {
                Some(annotations::NO_EXEC)
            } else {
                None
            };
            if let Some(key) = key {
                return Err(Error::config(
                    annotations::field(key),
                    format!(
                        "filesystem rules are not applied to a process granted CAP_SYS_ADMIN \
                         (Landlock would forbid mount); set {}=enforce to apply them anyway",
                        annotations::MODE
                    ),
                ));
            }
            p.fs = false;
            p.notes.push(format!(
                "filesystem rules skipped: the process is granted CAP_SYS_ADMIN and Landlock \
                 would forbid mount and pivot_root (set {}=enforce to apply them)",
                annotations::MODE
            ));
            p.enabled = p.scope_abstract_unix || p.tcp_bind.is_some() || p.tcp_connect.is_some();
        }
        Mode::On | Mode::Enforce => {}
    }
    Ok(p)
}

/// What to handle on a kernel with a given ABI (pure).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Effective {
    fs: BitFlags<AccessFs>,
    net: BitFlags<AccessNet>,
    scopes: BitFlags<Scope>,
    notes: Vec<String>,
}

impl Effective {
    fn is_empty(&self) -> bool {
        self.fs.is_empty() && self.net.is_empty() && self.scopes.is_empty()
    }
}

/// Fail when the policy is required (`enforce`) but the kernel cannot enforce all of it. The
/// parent calls this before creating anything so `create` fails cleanly; `apply` calls it again.
pub fn check(policy: &Policy, abi: i32) -> Result<()> {
    if policy.mode != Mode::Enforce {
        return Ok(());
    }
    let need = |what: &str, min: i32| -> Result<()> {
        if abi < min {
            Err(Error::Unsupported(format!(
                "{}=enforce: {what} needs Landlock ABI {min}, this kernel has {}",
                annotations::MODE,
                describe_abi(abi)
            )))
        } else {
            Ok(())
        }
    };
    need("Landlock", 1)?;
    if policy.tcp_bind.is_some() || policy.tcp_connect.is_some() {
        need("TCP port rules", 4)?;
    }
    if policy.scope_abstract_unix {
        need("abstract unix socket scoping", 6)?;
    }
    Ok(())
}

fn describe_abi(abi: i32) -> String {
    if abi < 1 {
        "none".to_string()
    } else {
        abi.to_string()
    }
}

fn effective(policy: &Policy, abi: ABI) -> Effective {
    let mut e = Effective::default();
    let n = abi as i32;
    if !policy.enabled {
        return e;
    }
    if policy.fs {
        if abi == ABI::V1 && policy.mode != Mode::Enforce {
            e.notes.push(format!(
                "filesystem rules skipped: Landlock ABI 1 would make every rename or link across \
                 directories fail (set {}=enforce to apply them anyway)",
                annotations::MODE
            ));
        } else {
            e.fs = AccessFs::from_all(abi);
        }
    }
    let tcp = [
        (&policy.tcp_bind, AccessNet::BindTcp, annotations::TCP_BIND),
        (
            &policy.tcp_connect,
            AccessNet::ConnectTcp,
            annotations::TCP_CONNECT,
        ),
    ];
    for (ports, right, key) in tcp {
        if ports.is_some() {
            if n >= 4 {
                e.net |= right;
            } else if n >= 1 {
                e.notes.push(format!(
                    "{key} not enforced: TCP rules need Landlock ABI 4, this kernel has {n}"
                ));
            }
        }
    }
    if policy.scope_abstract_unix {
        if n >= 6 {
            e.scopes |= Scope::AbstractUnixSocket;
        } else if n >= 1 {
            e.notes.push(format!(
                "abstract unix sockets not scoped: scoping needs Landlock ABI 6, this kernel has {n}"
            ));
        }
    }
    e
}

/// The effective ABI of the running kernel as this build understands it.
fn current_abi() -> ABI {
    // With no flags and no no_new_privs this only probes the kernel's ABI version.
    match RestrictSelf::default().no_new_privs(false).apply() {
        Ok(status) => ABI::from(status.landlock),
        Err(_) => ABI::Unsupported,
    }
}

/// The Landlock ABI of the running kernel, capped at the newest this build knows (0 when
/// Landlock is unavailable). Used by `features` and the audit line.
pub fn abi() -> i32 {
    current_abi() as i32
}

/// Apply the policy to the calling thread (the init is single-threaded): everything beneath
/// `root` (the container's root: `/` after `pivot_root`) stays reachable, nothing else does.
///
/// Call it after the last path the runtime opens outside the root and while the process still
/// holds CAP_SYS_ADMIN in its user namespace: `no_new_privs` is left to the config, so the kernel
/// needs that capability to accept the restriction.
pub(crate) fn apply(policy: &Policy, root: &Path) -> Result<Status> {
    let abi = current_abi();
    let mut status = Status {
        abi: abi as i32,
        mode: policy.mode,
        notes: policy.notes.clone(),
        ..Status::default()
    };
    if !policy.enabled {
        status.reason = Some(
            policy
                .notes
                .first()
                .cloned()
                .unwrap_or_else(|| "disabled".to_string()),
        );
        return Ok(status);
    }
    check(policy, status.abi)?;
    if abi == ABI::Unsupported {
        status.reason = Some("the kernel does not support Landlock".to_string());
        return Ok(status);
    }
    let eff = effective(policy, abi);
    status.notes.extend(eff.notes.iter().cloned());
    if eff.is_empty() {
        status.reason = Some(
            status
                .notes
                .last()
                .cloned()
                .unwrap_or_else(|| "nothing to enforce".to_string()),
        );
        return Ok(status);
    }
    status.rules = build::enforce(policy, &eff, root)?;
    status.enforced = true;
    status.fs = fs_names(eff.fs);
    status.net = net_names(eff.net);
    status.scopes = scope_names(eff.scopes);
    Ok(status)
}

/// What `apply` would enforce on this kernel, enforcing nothing (for `sealrun check`): the
/// handled rights and scopes, the notes, and the reason when nothing would be enforced (a
/// required policy the kernel cannot meet included). `rules` stays 0: rules are counted as
/// they are built, beneath the container's root.
pub fn preview(policy: &Policy) -> Status {
    let abi = current_abi();
    let mut status = Status {
        abi: abi as i32,
        mode: policy.mode,
        notes: policy.notes.clone(),
        ..Status::default()
    };
    if !policy.enabled {
        status.reason = Some(
            policy
                .notes
                .first()
                .cloned()
                .unwrap_or_else(|| "disabled".to_string()),
        );
        return status;
    }
    if let Err(e) = check(policy, status.abi) {
        status.reason = Some(e.to_string());
        return status;
    }
    if abi == ABI::Unsupported {
        status.reason = Some("the kernel does not support Landlock".to_string());
        return status;
    }
    let eff = effective(policy, abi);
    status.notes.extend(eff.notes.iter().cloned());
    if eff.is_empty() {
        status.reason = Some(
            status
                .notes
                .last()
                .cloned()
                .unwrap_or_else(|| "nothing to enforce".to_string()),
        );
        return status;
    }
    status.enforced = true;
    status.fs = fs_names(eff.fs);
    status.net = net_names(eff.net);
    status.scopes = scope_names(eff.scopes);
    status
}

/// Kernel names of filesystem rights, lower case, without the `LANDLOCK_ACCESS_FS_` prefix.
fn fs_names(rights: BitFlags<AccessFs>) -> Vec<String> {
    rights
        .iter()
        .map(|r| match r {
            AccessFs::Execute => "execute",
            AccessFs::WriteFile => "write_file",
            AccessFs::ReadFile => "read_file",
            AccessFs::ReadDir => "read_dir",
            AccessFs::RemoveDir => "remove_dir",
            AccessFs::RemoveFile => "remove_file",
            AccessFs::MakeChar => "make_char",
            AccessFs::MakeDir => "make_dir",
            AccessFs::MakeReg => "make_reg",
            AccessFs::MakeSock => "make_sock",
            AccessFs::MakeFifo => "make_fifo",
            AccessFs::MakeBlock => "make_block",
            AccessFs::MakeSym => "make_sym",
            AccessFs::Refer => "refer",
            AccessFs::Truncate => "truncate",
            AccessFs::IoctlDev => "ioctl_dev",
            AccessFs::ResolveUnix => "resolve_unix",
            _ => "unknown",
        })
        .map(str::to_string)
        .collect()
}

fn net_names(rights: BitFlags<AccessNet>) -> Vec<String> {
    rights
        .iter()
        .map(|r| match r {
            AccessNet::BindTcp => "bind_tcp",
            AccessNet::ConnectTcp => "connect_tcp",
            AccessNet::BindUdp => "bind_udp",
            AccessNet::ConnectSendUdp => "connect_send_udp",
            _ => "unknown",
        })
        .map(str::to_string)
        .collect()
}

fn scope_names(scopes: BitFlags<Scope>) -> Vec<String> {
    scopes
        .iter()
        .map(|s| match s {
            Scope::AbstractUnixSocket => "abstract_unix_socket",
            Scope::Signal => "signal",
            _ => "unknown",
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const PLAIN: Context = Context {
        host_network: false,
        cap_sys_admin: false,
    };
    const HOST_NET: Context = Context {
        host_network: true,
        cap_sys_admin: false,
    };
    const SYS_ADMIN: Context = Context {
        host_network: false,
        cap_sys_admin: true,
    };

    #[test]
    fn default_policy_confines_the_filesystem_only() {
        let p = policy(&HashMap::new(), &PLAIN).unwrap();
        assert!(p.enabled && p.fs);
        assert_eq!(p.mode, Mode::On);
        assert!(!p.scope_abstract_unix);
        assert_eq!((p.tcp_bind.clone(), p.tcp_connect.clone()), (None, None));
        let e = effective(&p, ABI::V7);
        assert_eq!(e.fs, AccessFs::from_all(ABI::V7));
        assert!(e.net.is_empty() && e.scopes.is_empty() && e.notes.is_empty());
        assert_eq!(
            fs_names(e.fs),
            [
                "execute",
                "write_file",
                "read_file",
                "read_dir",
                "remove_dir",
                "remove_file",
                "make_char",
                "make_dir",
                "make_reg",
                "make_sock",
                "make_fifo",
                "make_block",
                "make_sym",
                "refer",
                "truncate",
                "ioctl_dev"
            ]
        );
    }

    #[test]
    fn policy_default_is_the_default_policy() {
        assert_eq!(
            policy(&HashMap::new(), &Context::default()).unwrap(),
            Policy::default()
        );
    }

    #[test]
    fn host_network_scopes_abstract_sockets_unless_told_otherwise() {
        assert!(
            policy(&HashMap::new(), &HOST_NET)
                .unwrap()
                .scope_abstract_unix
        );
        let off = ann(&[(ANNOTATION_SCOPE_ABSTRACT_UNIX, "off")]);
        let p = policy(&off, &HOST_NET).unwrap();
        assert!(!p.scope_abstract_unix);
        assert_eq!(p.weakened, [Weakening::AbstractUnixScope]);
        // In a network namespace of its own, "off" is the default: nothing is weakened.
        assert!(policy(&off, &PLAIN).unwrap().weakened.is_empty());
        let on = ann(&[(ANNOTATION_SCOPE_ABSTRACT_UNIX, "on")]);
        assert!(policy(&on, &PLAIN).unwrap().scope_abstract_unix);
        let p = policy(&HashMap::new(), &HOST_NET).unwrap();
        assert_eq!(effective(&p, ABI::V6).scopes, Scope::AbstractUnixSocket);
        let e = effective(&p, ABI::V5);
        assert!(e.scopes.is_empty());
        assert!(e.notes[0].contains("ABI 6"), "{:?}", e.notes);
    }

    #[test]
    fn off_disables_everything() {
        let p = policy(&ann(&[(ANNOTATION_MODE, "off")]), &HOST_NET).unwrap();
        assert!(!p.enabled && !p.fs && !p.scope_abstract_unix);
        assert!(p.notes[0].contains("=off"));
        assert_eq!(p.weakened, [Weakening::Landlock]);
        assert!(effective(&p, ABI::V7).is_empty());
        // Other annotations are still validated.
        let bad = ann(&[(ANNOTATION_MODE, "off"), (ANNOTATION_TCP_BIND, "x")]);
        assert!(policy(&bad, &PLAIN).is_err());
    }

    #[test]
    fn cap_sys_admin_skips_filesystem_rules_but_keeps_the_rest() {
        let p = policy(&HashMap::new(), &SYS_ADMIN).unwrap();
        assert!(!p.enabled && !p.fs);
        // The default for CAP_SYS_ADMIN, not the container's choice.
        assert!(p.weakened.is_empty());
        assert!(p.notes[0].contains("CAP_SYS_ADMIN"));
        let ctx = Context {
            host_network: true,
            cap_sys_admin: true,
        };
        let p = policy(&ann(&[(ANNOTATION_TCP_CONNECT, "443")]), &ctx).unwrap();
        assert!(p.enabled && !p.fs && p.scope_abstract_unix);
        let e = effective(&p, ABI::V7);
        assert!(e.fs.is_empty());
        assert_eq!(e.net, AccessNet::ConnectTcp);
        assert_eq!(e.scopes, Scope::AbstractUnixSocket);
    }

    #[test]
    fn cap_sys_admin_with_path_rules_needs_enforce() {
        let a = ann(&[(ANNOTATION_READ_ONLY, "/etc")]);
        match policy(&a, &SYS_ADMIN).unwrap_err() {
            Error::InvalidConfig { field, reason } => {
                assert_eq!(field, "annotations[\"run.sealrun.landlock.read-only\"]");
                assert!(reason.contains("enforce"), "{reason}");
            }
            e => panic!("{e}"),
        }
        let a = ann(&[(ANNOTATION_NO_EXEC, "/tmp"), (ANNOTATION_MODE, "enforce")]);
        let p = policy(&a, &SYS_ADMIN).unwrap();
        assert!(p.enabled && p.fs);
        assert_eq!(p.no_exec, vec!["/tmp"]);
    }

    #[test]
    fn abi_1_skips_filesystem_rules_unless_enforced() {
        let p = policy(&HashMap::new(), &PLAIN).unwrap();
        let e = effective(&p, ABI::V1);
        assert!(e.is_empty());
        assert!(e.notes[0].contains("ABI 1"));
        let p = policy(&ann(&[(ANNOTATION_MODE, "enforce")]), &PLAIN).unwrap();
        assert_eq!(effective(&p, ABI::V1).fs, AccessFs::from_all(ABI::V1));
        assert_eq!(effective(&p, ABI::V2).fs, AccessFs::from_all(ABI::V2));
    }

    #[test]
    fn tcp_rules_are_best_effort_when_on() {
        let a = ann(&[(ANNOTATION_TCP_BIND, "8080"), (ANNOTATION_TCP_CONNECT, "")]);
        let p = policy(&a, &PLAIN).unwrap();
        assert_eq!(p.tcp_bind, Some(vec![8080]));
        assert_eq!(p.tcp_connect, Some(vec![]));
        assert_eq!(
            effective(&p, ABI::V4).net,
            AccessNet::BindTcp | AccessNet::ConnectTcp
        );
        let e = effective(&p, ABI::V3);
        assert!(e.net.is_empty());
        assert_eq!(e.notes.len(), 2);
        assert!(check(&p, 3).is_ok());
    }

    #[test]
    fn enforce_requires_what_it_asks_for() {
        let p = policy(&ann(&[(ANNOTATION_MODE, "enforce")]), &PLAIN).unwrap();
        assert!(check(&p, 1).is_ok());
        let e = check(&p, 0).unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        let p = policy(
            &ann(&[(ANNOTATION_MODE, "enforce"), (ANNOTATION_TCP_BIND, "80")]),
            &PLAIN,
        )
        .unwrap();
        assert!(check(&p, 3).unwrap_err().to_string().contains("TCP"));
        assert!(check(&p, 4).is_ok());
        let p = policy(&ann(&[(ANNOTATION_MODE, "enforce")]), &HOST_NET).unwrap();
        assert!(check(&p, 5).unwrap_err().to_string().contains("ABI 6"));
        assert!(check(&p, 6).is_ok());
        // `on` never fails for lack of kernel support.
        let p = policy(&ann(&[(ANNOTATION_TCP_BIND, "80")]), &HOST_NET).unwrap();
        assert!(check(&p, 0).is_ok());
    }

    #[test]
    fn status_serialises_for_the_audit_line() {
        let s = Status {
            abi: 7,
            mode: Mode::On,
            enforced: true,
            reason: None,
            fs: vec!["execute".to_string()],
            net: vec![],
            scopes: vec!["abstract_unix_socket".to_string()],
            rules: 1,
            notes: vec![],
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"abi":7,"mode":"on","enforced":true,"fs":["execute"],"net":[],"scopes":["abstract_unix_socket"],"rules":1}"#
        );
    }

    #[test]
    fn abi_reports_this_kernel() {
        // The kernel's own answer, asked directly rather than through the landlock crate that
        // abi() uses: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION).
        const VERSION: libc::c_uint = 1;
        #[allow(unsafe_code)]
        // SAFETY: with no attribute pointer and size 0 the kernel reads no memory; the call
        // only returns the ABI version (or -1 with errno when Landlock is unavailable).
        let kernel = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                VERSION,
            )
        };
        // abi() caps at the newest version this build knows; no Landlock is 0.
        let newest = ABI::from(i32::MAX) as i64;
        let want = if kernel <= 0 { 0 } else { kernel.min(newest) };
        assert_eq!(i64::from(abi()), want, "the kernel answered {kernel}");
    }
}
