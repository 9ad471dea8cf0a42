use std::path::PathBuf;

use serde_json::{json, Value};

use super::*;
use crate::spec::{CreateOptions, Layers};

/// A bundle directory with an empty rootfs (the plan only canonicalises it).
struct Bundle(PathBuf);

impl Bundle {
    fn new(name: &str) -> Bundle {
        let dir =
            std::env::temp_dir().join(format!("sealrun-policy-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        Bundle(dir)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `sealrun spec`'s config with `edit` applied, planned under `policy`.
fn plan_with(name: &str, policy: &Policy, edit: impl FnOnce(&mut Value)) -> Plan {
    let b = Bundle::new(name);
    let mut config = crate::spec::default_config(false).unwrap();
    config["process"]["terminal"] = json!(false);
    edit(&mut config);
    let spec: oci_spec::runtime::Spec = serde_json::from_value(config).unwrap();
    let opts = CreateOptions {
        id: format!("policy-test-{name}"),
        bundle: b.0.clone(),
        layers: Layers::default(),
        policy: policy.clone(),
        ..CreateOptions::default()
    };
    let host = crate::spec::HostFacts::for_tests(&b.0.join("rootfs").to_string_lossy());
    crate::spec::plan(&spec, opts, &host).unwrap()
}

fn rules(v: &[Violation]) -> Vec<&'static str> {
    v.iter().map(|v| v.rule).collect()
}

#[test]
fn empty_document_is_the_default_policy() {
    assert_eq!(Policy::parse(b"{}").unwrap(), Policy::default());
    let d = Policy::default();
    assert!(d.annotations_may_weaken.is_empty() && d.allow_privileged_devices);
    assert!(!d.require_seccomp && !d.allow_open_by_handle_at);
}

#[test]
fn bad_documents_name_the_field() {
    for (doc, field) in [
        (r#"{"requireSecomp": true}"#, "requireSecomp"),
        (
            r#"{"allowedCapabilities": ["CAP_KILL", "NOPE"]}"#,
            "allowedCapabilities[1]",
        ),
        (
            r#"{"allowedHostNamespaces": ["mnt"]}"#,
            "allowedHostNamespaces[0]",
        ),
        (
            r#"{"forbiddenSyscalls": ["ptrace", "a b"]}"#,
            "forbiddenSyscalls[1]",
        ),
        (
            r#"{"annotationsMayWeaken": ["landlock", "all"]}"#,
            "annotationsMayWeaken[1]",
        ),
    ] {
        match Policy::parse(doc.as_bytes()).unwrap_err() {
            Error::InvalidConfig { field: f, .. } => assert_eq!(f, field, "{doc}"),
            e => panic!("{doc}: {e}"),
        }
    }
}

#[test]
fn load_distinguishes_a_missing_default_from_a_missing_file() {
    let missing = std::env::temp_dir().join(format!("sealrun-no-policy-{}", std::process::id()));
    let e = Policy::load(Some(&missing)).unwrap_err().to_string();
    assert!(e.contains(&missing.display().to_string()), "{e}");
    let b = Bundle::new("load");
    let path = b.0.join("policy.json");
    std::fs::write(&path, r#"{"requireSeccomp": 1}"#).unwrap();
    let e = Policy::load(Some(&path)).unwrap_err().to_string();
    assert!(
        e.contains(&path.display().to_string()) && e.contains("requireSeccomp"),
        "{e}"
    );
    std::fs::write(&path, r#"{"requireSeccomp": true}"#).unwrap();
    let p = Policy::load(Some(&path)).unwrap();
    assert!(p.require_seccomp);
    assert_eq!(p.source.as_deref(), Some(path.as_path()));
}

#[test]
fn the_default_config_meets_the_default_policy() {
    let plan = plan_with("default", &Policy::default(), |_| {});
    assert_eq!(evaluate(&plan, &Policy::default()), []);
    assert!(enforce(&plan).is_ok());
}

#[test]
fn weakening_annotations_need_the_policy() {
    let off = |c: &mut Value| c["annotations"] = json!({"run.sealrun.landlock": "off"});
    let plan = plan_with("weaken", &Policy::default(), off);
    let v = evaluate(&plan, &Policy::default());
    assert_eq!(rules(&v), ["annotationsMayWeaken"]);
    assert_eq!(v[0].field, "annotations[\"run.sealrun.landlock\"]");
    let e = enforce(&plan).unwrap_err().to_string();
    assert!(
        e.contains("run.sealrun.landlock") && e.contains("policy none"),
        "{e}"
    );
    let allow = Policy {
        annotations_may_weaken: vec![Weakening::Landlock],
        ..Policy::default()
    };
    assert_eq!(evaluate(&plan, &allow), []);
    // Tightening needs nothing.
    let tighten = |c: &mut Value| c["annotations"] = json!({"run.sealrun.landlock": "enforce"});
    let plan = plan_with("tighten", &Policy::default(), tighten);
    assert_eq!(evaluate(&plan, &Policy::default()), []);
}

#[test]
fn floors() {
    let strict = Policy {
        require_seccomp: true,
        allowed_capabilities: Some(vec!["CAP_KILL".into()]),
        allowed_host_namespaces: Some(vec!["user".into(), "time".into()]),
        allow_privileged_devices: false,
        require_no_new_privileges: true,
        forbidden_syscalls: vec!["ptrace".into()],
        ..Policy::default()
    };
    let plan = plan_with("strict", &strict, |c| {
        c["linux"].as_object_mut().unwrap().remove("seccomp");
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "pid"}, {"type": "uts"}]);
        c["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
    });
    let v = evaluate(&plan, &strict);
    let r = rules(&v);
    for rule in [
        "requireSeccomp",
        "allowedCapabilities",
        "allowedHostNamespaces",
        "allowPrivilegedDevices",
        "requireNoNewPrivileges",
    ] {
        assert!(r.contains(&rule), "{rule}: {v:?}");
    }
    // CAP_AUDIT_WRITE and CAP_NET_BIND_SERVICE in four sets each.
    assert_eq!(r.iter().filter(|r| **r == "allowedCapabilities").count(), 8);
    let shared: Vec<&str> = v
        .iter()
        .filter(|v| v.rule == "allowedHostNamespaces")
        .map(|v| v.message.as_str())
        .collect();
    assert!(shared.iter().any(|m| m.contains("network")), "{shared:?}");
    assert!(!shared.iter().any(|m| m.contains("user")), "{shared:?}");
    let e = enforce(&plan).unwrap_err().to_string();
    assert!(e.contains("linux.seccomp") && e.contains("more"), "{e}");
}

#[test]
fn forbidden_syscalls_are_checked_against_the_program() {
    let p = Policy {
        forbidden_syscalls: vec!["ptrace".into(), "bpf".into()],
        ..Policy::default()
    };
    let plan = plan_with("forbidden", &p, |_| {});
    // The default profile allows ptrace, not bpf.
    let v = evaluate(&plan, &p);
    assert_eq!(rules(&v), ["forbiddenSyscalls"]);
    assert!(v[0].message.contains("ptrace"), "{v:?}");
}

fn with_dac_read_search(c: &mut Value) {
    let caps = json!(["CAP_KILL", "CAP_DAC_READ_SEARCH"]);
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set] = caps.clone();
    }
    c["linux"]["seccomp"] =
        crate::seccomp::default_profile_json(&["CAP_KILL", "CAP_DAC_READ_SEARCH"]).unwrap();
}

#[test]
fn open_by_handle_at_is_refused_while_landlock_confines_the_filesystem() {
    let plan = plan_with("handle", &Policy::default(), with_dac_read_search);
    let c = plan.seccomp.as_ref().unwrap();
    assert_eq!(c.summary.runtime_denies, [OPEN_BY_HANDLE_AT]);
    assert_eq!(c.verdicts[OPEN_BY_HANDLE_AT], Verdict::Never);
    assert_eq!(
        open_by_handle_at(&plan).unwrap()["open_by_handle_at"],
        "denied"
    );
    let record = crate::audit::AuditRecord::new(&plan, 1, "sealed", Default::default());
    let record = serde_json::to_value(&record).unwrap();
    assert_eq!(record["weakened_layers"], json!([]));
    assert_eq!(record["cap_dac_read_search"]["open_by_handle_at"], "denied");

    let allow = Policy {
        allow_open_by_handle_at: true,
        ..Policy::default()
    };
    let plan = plan_with("handle-allowed", &allow, with_dac_read_search);
    let c = plan.seccomp.as_ref().unwrap();
    assert!(c.summary.runtime_denies.is_empty());
    assert_eq!(c.verdicts[OPEN_BY_HANDLE_AT], Verdict::Always);
    assert_eq!(
        open_by_handle_at(&plan).unwrap()["open_by_handle_at"],
        "allowed"
    );
}

#[test]
fn the_default_program_is_unchanged_without_the_capability() {
    // The default profile never allows open_by_handle_at without CAP_DAC_READ_SEARCH, so
    // nothing is added: same program as a plain compile.
    let plan = plan_with("plain", &Policy::default(), |_| {});
    let c = plan.seccomp.as_ref().unwrap();
    assert!(c.summary.runtime_denies.is_empty());
    assert!(open_by_handle_at(&plan).is_none());
}

#[test]
fn unknown_capabilities_setting() {
    assert_eq!(
        Policy::default().unknown_capabilities,
        UnknownCapabilities::Refuse
    );
    let warn = Policy::parse(br#"{"unknownCapabilities": "warn"}"#).unwrap();
    assert_eq!(warn.unknown_capabilities, UnknownCapabilities::Warn);
    let e = Policy::parse(br#"{"unknownCapabilities": "ignore"}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknownCapabilities"), "{e}");
    // A library caller's value, as `create` applies it to a bundle.
    let b = Bundle::new("unknown-caps");
    let mut config = crate::spec::default_config(false).unwrap();
    config["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_NOPE"]);
    std::fs::write(b.0.join("config.json"), config.to_string()).unwrap();
    let e = crate::spec::load_bundle_with(&b.0, &Policy::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("process.capabilities.bounding"), "{e}");
    let value = Policy {
        unknown_capabilities: UnknownCapabilities::Warn,
        ..Policy::default()
    };
    let (spec, ignored) = crate::spec::load_bundle_with(&b.0, &value).unwrap();
    assert_eq!(ignored.len(), 1);
    assert_eq!(ignored[0].name, "CAP_NOPE");
    let caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    assert_eq!(caps.bounding().as_ref().map(|s| s.len()), Some(1));
}
