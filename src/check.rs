//! `sealrun check`: a config's security posture on this host, before running it.
//!
//! The bundle is planned exactly as `create` would plan it (same validation, same seccomp
//! compilation, same Landlock decision for this kernel), then described; nothing is created.
//! The [`Report`] says what each layer will do, lists risky settings (informational) and every
//! operator-policy [`Violation`] (the ones `create` would refuse). The JSON field names are
//! stable: CI pipelines read them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Context, Result};
use crate::policy::{Policy, Violation};
use crate::seccomp::Verdict;
use crate::spec::{CreateOptions, Layers, MountKind, Plan};

/// The posture of one bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The bundle directory (canonical).
    pub bundle: PathBuf,
    /// The policy file evaluated (`None`: no policy file, defaults).
    pub policy: Option<PathBuf>,
    /// The seccomp layer.
    pub seccomp: SeccompPosture,
    /// The Landlock layer on this kernel.
    pub landlock: LandlockPosture,
    /// Capabilities per set (sorted names).
    pub capabilities: BTreeMap<String, Vec<String>>,
    /// Namespace kinds shared with the host (neither created nor joined).
    pub host_namespaces: Vec<String>,
    /// `proc`/`sysfs` mounts, or binds of the host's /proc or /sys, that are writable.
    pub writable_kernel_mounts: Vec<String>,
    /// Privileged device access (`field: what`).
    pub privileged_devices: Vec<String>,
    /// `process.noNewPrivileges`.
    pub no_new_privileges: bool,
    /// Whether `create` runs from the sealed memfd copy of the runtime.
    pub sealed_exe: bool,
    /// What `open_by_handle_at` does for a process granted CAP_DAC_READ_SEARCH (absent when
    /// the process cannot hold it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_dac_read_search: Option<Value>,
    /// Risky settings: allowed by the policy, worth a look.
    pub risks: Vec<Risk>,
    /// What the operator policy refuses; `create` fails on the first.
    pub violations: Vec<Violation>,
}

/// The seccomp layer.
#[derive(Debug, Clone, Serialize)]
pub struct SeccompPosture {
    /// Whether a profile is loaded at all.
    pub enabled: bool,
    /// `defaultAction`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_action: Option<String>,
    /// Rules by action.
    pub rules: BTreeMap<String, usize>,
    /// BPF instructions.
    pub instructions: usize,
    /// Syscalls sealrun refuses on top of the profile.
    pub runtime_denies: Vec<String>,
    /// Verdicts on risky syscalls (`always`, `sometimes`, `never`).
    pub syscalls: BTreeMap<String, Verdict>,
}

/// The Landlock layer on this kernel.
#[derive(Debug, Clone, Serialize)]
pub struct LandlockPosture {
    /// The kernel's Landlock ABI (0: none).
    pub abi: i32,
    /// Whether a ruleset is applied.
    pub enabled: bool,
    /// `off`, `on` or `enforce`.
    pub mode: crate::landlock::Mode,
    /// Whether the filesystem is confined to the container's root.
    pub fs: bool,
    /// Read-only container paths.
    pub read_only: Vec<String>,
    /// No-exec container paths.
    pub no_exec: Vec<String>,
    /// Allowed TCP bind ports (`None`: unrestricted).
    pub tcp_bind: Option<Vec<u16>>,
    /// Allowed TCP connect ports (`None`: unrestricted).
    pub tcp_connect: Option<Vec<u16>>,
    /// Whether abstract unix sockets are scoped.
    pub scope_abstract_unix: bool,
    /// Layers the annotations weaken.
    pub weakened: Vec<&'static str>,
    /// What Landlock will enforce on this kernel ([`crate::landlock::preview`]).
    pub on_this_kernel: crate::landlock::Status,
}

/// A risky setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Risk {
    /// The config field.
    pub field: String,
    /// What it means.
    pub message: String,
}

/// Plan `bundle` as `create` would with `policy` and `layers`, and describe it.
pub fn check(bundle: &Path, policy: &Policy, layers: Layers) -> Result<Report> {
    let bundle = std::fs::canonicalize(bundle).op_path("bundle", bundle)?;
    let (spec, ignored_caps) = crate::spec::load_bundle_with(&bundle, policy)?;
    let opts = CreateOptions {
        id: "sealrun-check".into(),
        bundle: bundle.clone(),
        // A terminal is a matter of how it is started, not of its posture.
        proxy_terminal: true,
        layers,
        policy: policy.clone(),
        ..CreateOptions::default()
    };
    let host = crate::container::host::gather(&spec, &bundle)?;
    let plan = crate::spec::plan(&spec, opts, &host)?;
    let mut r = report(&plan, bundle);
    // Names the policy lets through (unknownCapabilities "warn"): create warns about each.
    for i in ignored_caps {
        r.risks.push(Risk {
            field: i.fields.join(", "),
            message: format!(
                "unknown capability {:?} ignored (operator policy unknownCapabilities: \"warn\")",
                i.name
            ),
        });
    }
    Ok(r)
}

fn report(plan: &Plan, bundle: PathBuf) -> Report {
    let policy = &plan.opts.policy;
    let seccomp = match &plan.seccomp {
        Some(c) => SeccompPosture {
            enabled: true,
            default_action: Some(c.summary.default_action.clone()),
            rules: c.summary.rules.clone(),
            instructions: c.summary.instructions,
            runtime_denies: c.summary.runtime_denies.clone(),
            syscalls: c.verdicts.clone().into_iter().collect(),
        },
        None => SeccompPosture {
            enabled: false,
            default_action: None,
            rules: BTreeMap::new(),
            instructions: 0,
            runtime_denies: Vec::new(),
            syscalls: BTreeMap::new(),
        },
    };
    let l = &plan.landlock.init;
    let landlock = LandlockPosture {
        abi: crate::landlock::abi(),
        enabled: l.enabled,
        mode: l.mode,
        fs: l.enabled && l.fs,
        read_only: l.read_only.clone(),
        no_exec: l.no_exec.clone(),
        tcp_bind: l.tcp_bind.clone(),
        tcp_connect: l.tcp_connect.clone(),
        scope_abstract_unix: l.scope_abstract_unix,
        weakened: l.weakened.iter().map(|w| w.name()).collect(),
        on_this_kernel: crate::landlock::preview(l),
    };
    let capabilities: BTreeMap<String, Vec<String>> = crate::policy::cap_sets(plan)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let host_namespaces: Vec<String> = crate::policy::host_namespaces(plan)
        .iter()
        .map(|k| k.spec_name().to_string())
        .collect();
    let privileged_devices: Vec<String> = crate::policy::privileged_devices(plan)
        .into_iter()
        .map(|(f, w)| format!("{f}: {w}"))
        .collect();
    let mut r = Report {
        bundle,
        policy: policy.source.clone(),
        seccomp,
        landlock,
        capabilities,
        host_namespaces,
        writable_kernel_mounts: writable_kernel_mounts(plan),
        privileged_devices,
        no_new_privileges: plan.process.no_new_privileges,
        sealed_exe: !plan.opts.layers.no_selfexe,
        cap_dac_read_search: crate::policy::open_by_handle_at(plan),
        risks: Vec::new(),
        violations: crate::policy::evaluate(plan, policy),
    };
    r.risks = risks(plan, &r);
    r
}

/// Writable kernel interfaces: `proc` or `sysfs` mounted without `ro` (for /proc, only when
/// /proc/sys is neither read-only nor masked), or a writable bind of the host's /proc or /sys.
fn writable_kernel_mounts(plan: &Plan) -> Vec<String> {
    let ro = |m: &crate::spec::MountPlan| m.options.flags.contains(nix::mount::MsFlags::MS_RDONLY);
    let proc_sys = Path::new("/proc/sys");
    let proc_sys_guarded = plan.readonly_paths.iter().any(|p| p == proc_sys)
        || plan.masked_paths.iter().any(|p| p == proc_sys);
    let mut out = Vec::new();
    for m in plan.mounts.iter().filter(|m| !ro(m)) {
        let at = format!("mounts[{}] {}", m.index, m.destination.display());
        match &m.kind {
            MountKind::Fs { fstype, .. } if fstype == "sysfs" => out.push(at),
            MountKind::Fs { fstype, .. } if fstype == "proc" && !proc_sys_guarded => out.push(at),
            MountKind::Bind { source, .. }
                if source.starts_with("/proc") || source.starts_with("/sys") =>
            {
                out.push(at)
            }
            _ => {}
        }
    }
    out
}

fn risks(plan: &Plan, r: &Report) -> Vec<Risk> {
    let mut out = Vec::new();
    let mut add = |field: &str, message: String| {
        out.push(Risk {
            field: field.to_string(),
            message,
        })
    };
    if !r.seccomp.enabled {
        add(
            "linux.seccomp",
            "no seccomp profile: every syscall reaches the kernel".into(),
        );
    } else {
        let allowed: Vec<String> = r
            .seccomp
            .syscalls
            .iter()
            .filter(|(_, v)| **v != Verdict::Never)
            .map(|(n, v)| format!("{n} ({})", verdict_word(*v)))
            .collect();
        if !allowed.is_empty() {
            add(
                "linux.seccomp",
                format!("the profile allows {}", allowed.join(", ")),
            );
        }
    }
    if !r.landlock.enabled {
        add(
            "annotations",
            "Landlock is off: nothing confines the container to its root if another layer fails"
                .into(),
        );
    } else if !r.landlock.fs {
        add(
            "process.capabilities",
            "Landlock does not confine the filesystem (CAP_SYS_ADMIN without enforce)".into(),
        );
    }
    for w in &plan.landlock.init.weakened {
        add(
            &crate::landlock::annotation_field(w.annotation()),
            format!("weakens the {} layer", w.name()),
        );
    }
    let defaults: Vec<String> = crate::spec::DEFAULT_CAPS
        .iter()
        .map(|c| c.to_string())
        .collect();
    let mut extra: Vec<&String> = r
        .capabilities
        .values()
        .flatten()
        .filter(|c| !defaults.contains(c))
        .collect();
    extra.sort();
    extra.dedup();
    if !extra.is_empty() {
        let names: Vec<&str> = extra.iter().map(|s| s.as_str()).collect();
        add(
            "process.capabilities",
            format!("granted beyond the default set: {}", names.join(", ")),
        );
    }
    for kind in ["pid", "network", "ipc", "uts"] {
        if r.host_namespaces.iter().any(|k| k == kind) {
            add(
                "linux.namespaces",
                format!("shares the host's {kind} namespace"),
            );
        }
    }
    for m in &r.writable_kernel_mounts {
        add("mounts", format!("{m}: writable kernel interface"));
    }
    for d in &r.privileged_devices {
        add("linux.devices", d.clone());
    }
    if !r.no_new_privileges {
        add(
            "process.noNewPrivileges",
            "false: setuid binaries and file capabilities can raise privileges".into(),
        );
    }
    if let Some(v) = &r.cap_dac_read_search {
        if v["open_by_handle_at"] == "allowed" {
            add(
                "process.capabilities",
                format!(
                    "CAP_DAC_READ_SEARCH with open_by_handle_at allowed: {}",
                    v["reason"].as_str().unwrap_or_default()
                ),
            );
        }
    }
    if !r.sealed_exe {
        add(
            "--unsafe-disable",
            "the runtime binary is not sealed (test switch)".into(),
        );
    }
    out
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Always => "always",
        Verdict::Sometimes => "for some arguments",
        Verdict::Never => "never",
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl Report {
    /// The report as text for a terminal, one fact per line.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let mut line = |l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        line(format!("bundle: {}", self.bundle.display()));
        line(format!(
            "policy: {}",
            self.policy
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none (annotations may only tighten)".into())
        ));
        let sc = &self.seccomp;
        if sc.enabled {
            let rules: usize = sc.rules.values().sum();
            line(format!(
                "seccomp: on, default {}, {rules} rules, {} instructions",
                sc.default_action.as_deref().unwrap_or("?"),
                sc.instructions
            ));
            if !sc.runtime_denies.is_empty() {
                line(format!(
                    "  refused by sealrun on top of the profile: {}",
                    sc.runtime_denies.join(", ")
                ));
            }
            for (name, v) in &sc.syscalls {
                if *v != Verdict::Never {
                    line(format!("  allows {name}: {}", verdict_word(*v)));
                }
            }
        } else {
            line("seccomp: off (no profile)".into());
        }
        let ll = &self.landlock;
        let abi = if ll.abi > 0 {
            format!("ABI {}", ll.abi)
        } else {
            "not supported by this kernel".into()
        };
        line(format!(
            "landlock: {} ({abi}), mode {}, filesystem {}, abstract unix sockets {}",
            if ll.enabled { "on" } else { "off" },
            ll.mode.as_str(),
            if ll.fs {
                "confined to the root"
            } else {
                "not confined"
            },
            if ll.scope_abstract_unix {
                "scoped"
            } else {
                "not scoped"
            }
        ));
        if !ll.read_only.is_empty() {
            line(format!("  read-only: {}", ll.read_only.join(", ")));
        }
        if !ll.no_exec.is_empty() {
            line(format!("  no-exec: {}", ll.no_exec.join(", ")));
        }
        for (what, ports) in [("tcp-bind", &ll.tcp_bind), ("tcp-connect", &ll.tcp_connect)] {
            if let Some(p) = ports {
                let p: Vec<String> = p.iter().map(u16::to_string).collect();
                line(format!("  {what} allowed: {}", list(&p)));
            }
        }
        let k = &ll.on_this_kernel;
        if k.enforced {
            line(format!(
                "  enforced here: filesystem [{}], network [{}], scopes [{}]",
                k.fs.join(" "),
                k.net.join(" "),
                k.scopes.join(" ")
            ));
        } else if let Some(why) = &k.reason {
            line(format!("  nothing enforced here: {why}"));
        }
        for n in &k.notes {
            line(format!("  note: {n}"));
        }
        for (set, caps) in &self.capabilities {
            line(format!("capabilities {set}: {}", list(caps)));
        }
        line(format!(
            "namespaces shared with the host: {}",
            list(&self.host_namespaces)
        ));
        line(format!(
            "writable /proc or /sys: {}",
            list(&self.writable_kernel_mounts)
        ));
        line(format!(
            "privileged devices: {}",
            list(&self.privileged_devices)
        ));
        line(format!("noNewPrivileges: {}", self.no_new_privileges));
        line(format!(
            "sealed exe: {}",
            if self.sealed_exe { "yes" } else { "no" }
        ));
        if let Some(v) = &self.cap_dac_read_search {
            line(format!(
                "CAP_DAC_READ_SEARCH: open_by_handle_at {} ({})",
                v["open_by_handle_at"].as_str().unwrap_or_default(),
                v["reason"].as_str().unwrap_or_default()
            ));
        }
        line(format!("risks: {}", self.risks.len()));
        for r in &self.risks {
            line(format!("  - {}: {}", r.field, r.message));
        }
        line(format!("policy violations: {}", self.violations.len()));
        for v in &self.violations {
            line(format!("  - {}: {} [{}]", v.field, v.message, v.rule));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// Plan `sealrun spec`'s config with `edit` applied and describe it.
    fn report_of(name: &str, edit: impl FnOnce(&mut Value)) -> Report {
        let dir = std::env::temp_dir().join(format!("sealrun-check-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        let mut config = crate::spec::default_config(false).unwrap();
        edit(&mut config);
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let r = check(&dir, &Policy::default(), Layers::default());
        let _ = std::fs::remove_dir_all(&dir);
        r.unwrap()
    }

    fn risk(r: &Report, needle: &str) -> bool {
        r.risks.iter().any(|x| x.message.contains(needle))
    }

    #[test]
    fn default_config_has_only_the_ptrace_risk() {
        let r = report_of("default", |_| {});
        assert!(r.writable_kernel_mounts.is_empty() && r.privileged_devices.is_empty());
        assert!(r.violations.is_empty());
        assert!(r.seccomp.enabled && r.landlock.fs && r.no_new_privileges);
        let fields: Vec<&str> = r.risks.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["linux.seccomp"], "{:?}", r.risks);
        assert!(r.to_text().contains("policy violations: 0"));
    }

    #[test]
    fn writable_sysfs_and_unguarded_proc_are_flagged() {
        let r = report_of("writable", |c| {
            for m in c["mounts"].as_array_mut().unwrap() {
                if m["type"] == "sysfs" {
                    m["options"] = json!(["nosuid", "noexec", "nodev"]);
                }
            }
            c["linux"]["readonlyPaths"] = json!([]);
        });
        let w = r.writable_kernel_mounts.join("\n");
        assert!(w.contains("/sys") && w.contains("/proc"), "{w}");
        assert!(risk(&r, "writable kernel interface"), "{:?}", r.risks);
    }

    #[test]
    fn landlock_off_and_privileged_devices_are_flagged() {
        let r = report_of("devices", |c| {
            c["annotations"] = json!({"run.sealrun.landlock": "off"});
            c["linux"]["devices"] =
                json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]);
        });
        assert!(!r.landlock.enabled && !r.landlock.on_this_kernel.enforced);
        assert_eq!(r.landlock.weakened, ["landlock"]);
        assert!(risk(&r, "Landlock is off"), "{:?}", r.risks);
        assert!(
            r.privileged_devices[0].contains("/dev/kmsg"),
            "{:?}",
            r.privileged_devices
        );
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
        assert_eq!(r.violations[0].rule, "annotationsMayWeaken");
    }
}
