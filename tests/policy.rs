//! The operator policy (`--policy FILE`, /etc/sealrun/policy.json) and `sealrun check`:
//! annotations may only tighten a layer unless the policy allows weakening it; seccomp and
//! capability floors; `open_by_handle_at` refused while Landlock confines the filesystem
//! (issue 9, defect 9), with its layer-off twin; and `check`'s posture report and exit codes.
//!
//! All of it is sealrun's own: under another runtime the tests return early (there is no
//! policy to test).

#[path = "common/attack.rs"]
mod attack;
mod common;

use std::path::PathBuf;
use std::process::Command;

use attack::{get, off, strs};
use common::*;
use serde_json::{json, Value};

const EPERM: &str = "errno:1";

/// Write a policy file in the test's dir; returns its path.
fn policy_file(t: &Test, name: &str, policy: Value) -> PathBuf {
    let path = t.path(name);
    std::fs::write(&path, policy.to_string()).expect("write policy");
    path
}

/// `--policy FILE` as global flags.
fn with_policy(path: &std::path::Path) -> Vec<String> {
    vec!["--policy".into(), path.display().to_string()]
}

/// The shipped default seccomp profile rendered for `caps` (what `sealrun spec` writes).
fn default_profile(caps: &[&str]) -> Value {
    sealrun::seccomp::default_profile_json(caps).expect("render default profile")
}

// --- Defect 9: open_by_handle_at with CAP_DAC_READ_SEARCH ---------------------------------
//
// A handle names a file without a path, so Landlock (which checks paths) does not see it:
// with CAP_DAC_READ_SEARCH a container opens any file of a filesystem it can see by handle.
// The test makes a scratch host file outside every rootfs, takes its handle on the host, and
// hands the bytes to the container, whose `/` is on the same filesystem.

/// Run the handle attack with `global` flags; returns the `read=` outcome.
fn handle_attack(global: &[&str], t: &Test) -> String {
    let dir = t.path("host-dir");
    std::fs::create_dir_all(&dir).expect("mkdir host dir");
    let secret = dir.join("secret");
    std::fs::write(&secret, "host-secret\n").expect("write secret");
    let out = Command::new(attack::attack_binary())
        .args(["handle-of", &secret.display().to_string()])
        .output()
        .expect("run attack handle-of on the host");
    let handle = get(&String::from_utf8_lossy(&out.stdout), "handle");
    assert!(!handle.starts_with("errno"), "name_to_handle_at: {handle}");
    let mut b = t.bundle();
    attack::attack_args(&mut b, &["handle-read", &handle]);
    let caps = [
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_DAC_READ_SEARCH",
    ];
    b.set(
        "/process/capabilities",
        json!({"bounding": caps, "effective": caps, "permitted": caps}),
    );
    b.set("/linux/seccomp", default_profile(&caps));
    let out = t.run_with(global, &b, &[]);
    out.ok();
    t.assert_nothing_left();
    get(&out.stdout, "read")
}

#[test]
fn open_by_handle_at_is_refused_with_every_layer_on() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    assert_eq!(handle_attack(&[], &t), EPERM);
}

#[test]
fn open_by_handle_at_reads_host_files_without_landlock() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let t = Test::new();
    let g = off(&["landlock"]);
    assert_eq!(handle_attack(&strs(&g), &t), "ok:host-secret");
}

#[test]
fn open_by_handle_at_reads_host_files_when_the_policy_allows_it() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let p = policy_file(&t, "policy.json", json!({"allowOpenByHandleAt": true}));
    let g = with_policy(&p);
    assert_eq!(handle_attack(&strs(&g), &t), "ok:host-secret");
}

#[test]
fn audit_record_flags_cap_dac_read_search() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let mut b = t.bundle();
    attack::attack_args(&mut b, &["sleep"]);
    let caps = ["CAP_KILL", "CAP_DAC_READ_SEARCH"];
    b.set(
        "/process/capabilities",
        json!({"bounding": caps, "effective": caps, "permitted": caps}),
    );
    b.set("/linux/seccomp", default_profile(&caps));
    t.create(&b).ok();
    let report = t.report();
    let r = report.protections(&b.id).expect("audit record");
    assert_eq!(
        r["cap_dac_read_search"]["open_by_handle_at"], "denied",
        "{r}"
    );
    assert_eq!(
        r["seccomp"]["runtime_denies"],
        json!(["open_by_handle_at"]),
        "{r}"
    );
    assert_eq!(r["weakened_layers"], json!([]), "{r}");
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
}

// --- Annotations may only tighten ---------------------------------------------------------

fn weakening_bundle(t: &Test, annotations: Value) -> Bundle {
    let mut b = t.bundle();
    attack::attack_args(&mut b, &["sleep"]);
    b.set("/annotations", annotations);
    b
}

#[test]
fn weakening_annotation_is_refused_without_a_policy() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    for (key, value) in [
        ("run.sealrun.landlock", "off"),
        ("run.sealrun.landlock.scope-abstract-unix", "off"),
    ] {
        let t = Test::new();
        let mut b = weakening_bundle(&t, json!({ key: value }));
        // Scoping is only on by default in the host's network namespace.
        b.remove_namespace("network");
        let out = t.create(&b);
        let line = out.error_line(&[key, "annotationsMayWeaken"]);
        assert!(line.contains("policy none"), "{line}");
        t.assert_nothing_left();
    }
}

#[test]
fn tightening_annotations_need_no_policy() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let mut b = weakening_bundle(
        &t,
        json!({"run.sealrun.landlock": "enforce",
               "run.sealrun.landlock.scope-abstract-unix": "on"}),
    );
    b.args(&["/bin/true"]);
    t.run(&b).ok();
    t.assert_nothing_left();
}

#[test]
fn weakening_annotation_allowed_by_the_policy_is_audited() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let p = policy_file(
        &t,
        "policy.json",
        json!({"annotationsMayWeaken": ["landlock"]}),
    );
    let b = weakening_bundle(&t, json!({"run.sealrun.landlock": "off"}));
    let g = with_policy(&p);
    t.create_with(&strs(&g), &b, &[]).ok();
    let report = t.report();
    let r = report.protections(&b.id).expect("audit record");
    assert_eq!(r["weakened_layers"], json!(["landlock"]), "{r}");
    assert_eq!(r["landlock"]["policy"]["enabled"], false, "{r}");
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
}

#[test]
fn a_policy_allowing_one_weakening_refuses_the_other() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let p = policy_file(
        &t,
        "policy.json",
        json!({"annotationsMayWeaken": ["abstract-unix-scope"]}),
    );
    let b = weakening_bundle(&t, json!({"run.sealrun.landlock": "off"}));
    let out = t.create_with(&strs(&with_policy(&p)), &b, &[]);
    out.error_line(&["run.sealrun.landlock", &p.display().to_string()]);
    t.assert_nothing_left();
}

// --- Floors -------------------------------------------------------------------------------

#[test]
fn seccomp_required_refuses_an_unconfined_container() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let p = policy_file(&t, "policy.json", json!({"requireSeccomp": true}));
    let mut b = t.bundle();
    b.args(&["/bin/true"]);
    let out = t.run_with(&strs(&with_policy(&p)), &b, &[]);
    out.error_line(&["linux.seccomp", "requireSeccomp"]);
    t.assert_nothing_left();
    // With a profile it runs.
    b.set("/linux/seccomp", default_profile(&["CAP_KILL"]));
    t.run_with(&strs(&with_policy(&p)), &b, &[]).ok();
    t.assert_nothing_left();
}

#[test]
fn forbidden_syscall_allowed_by_the_profile_is_refused() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let p = policy_file(&t, "policy.json", json!({"forbiddenSyscalls": ["ptrace"]}));
    let mut b = t.bundle();
    b.args(&["/bin/true"]);
    b.set("/linux/seccomp", default_profile(&["CAP_KILL"]));
    let out = t.run_with(&strs(&with_policy(&p)), &b, &[]);
    out.error_line(&["linux.seccomp.syscalls", "ptrace", "forbiddenSyscalls"]);
    t.assert_nothing_left();
}

#[test]
fn capability_floor() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let p = policy_file(
        &t,
        "policy.json",
        json!({"allowedCapabilities": ["CAP_AUDIT_WRITE", "KILL", "CAP_NET_BIND_SERVICE"]}),
    );
    let mut b = t.bundle();
    b.args(&["/bin/true"]);
    t.run_with(&strs(&with_policy(&p)), &b, &[]).ok();
    let caps = ["CAP_KILL", "CAP_SYS_ADMIN"];
    b.set(
        "/process/capabilities",
        json!({"bounding": caps, "effective": caps, "permitted": caps}),
    );
    let out = t.run_with(&strs(&with_policy(&p)), &b, &[]);
    out.error_line(&[
        "process.capabilities.bounding",
        "CAP_SYS_ADMIN",
        "allowedCapabilities",
    ]);
    t.assert_nothing_left();
}

#[test]
fn missing_explicit_policy_file_is_an_error() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let missing = t.path("no-such-policy.json");
    let b = t.bundle();
    let out = t.create_with(&strs(&with_policy(&missing)), &b, &[]);
    out.error_line(&["no-such-policy.json"]);
    t.assert_nothing_left();
}

#[test]
fn malformed_policy_names_file_and_field() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let b = t.bundle();
    for (policy, field) in [
        (json!({"requireSecomp": true}), "requireSecomp"),
        (
            json!({"allowedCapabilities": ["CAP_NOPE"]}),
            "allowedCapabilities[0]",
        ),
        (
            json!({"annotationsMayWeaken": ["seccomp"]}),
            "annotationsMayWeaken",
        ),
        (
            json!({"allowedHostNamespaces": ["net"]}),
            "allowedHostNamespaces[0]",
        ),
        (json!({"requireSeccomp": "yes"}), "requireSeccomp"),
    ] {
        let p = policy_file(&t, "bad.json", policy);
        let out = t.create_with(&strs(&with_policy(&p)), &b, &[]);
        out.error_line(&[&p.display().to_string(), field]);
        t.assert_nothing_left();
        // `check` reads the same file the same way.
        let dir = b.dir.display().to_string();
        let out = t.rt_global(&strs(&with_policy(&p)), &["check", &dir]);
        out.error_line(&[&p.display().to_string(), field]);
    }
}

// --- sealrun check ------------------------------------------------------------------------

fn check(t: &Test, global: &[&str], b: &Bundle, json_format: bool) -> Out {
    b.write();
    let dir = b.dir.display().to_string();
    let mut args = vec!["check"];
    if json_format {
        args.extend(["--format", "json"]);
    }
    args.push(&dir);
    t.rt_global(global, &args)
}

/// The bundle `sealrun spec` writes (with the test rootfs).
fn spec_bundle(t: &Test) -> Bundle {
    let b = t.bundle();
    std::fs::remove_file(b.dir.join("config.json")).ok();
    let dir = b.dir.display().to_string();
    t.rt(&["spec", "--bundle", &dir]).ok();
    let raw = std::fs::read(b.dir.join("config.json")).expect("spec wrote config.json");
    let mut b = b;
    b.config = serde_json::from_slice(&raw).expect("config.json parses");
    b
}

#[test]
fn check_explains_the_default_config() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let b = spec_bundle(&t);
    let out = check(&t, &[], &b, true);
    out.ok();
    let r = out.json();
    assert_eq!(r["policy"], Value::Null, "{r}");
    assert_eq!(r["seccomp"]["enabled"], true, "{r}");
    assert_eq!(r["seccomp"]["default_action"], "SCMP_ACT_ERRNO", "{r}");
    for risky in [
        "bpf",
        "mount",
        "unshare",
        "keyctl",
        "open_by_handle_at",
        "setns",
    ] {
        assert_eq!(r["seccomp"]["syscalls"][risky], "never", "{risky}: {r}");
    }
    assert_eq!(r["landlock"]["enabled"], true, "{r}");
    assert_eq!(r["landlock"]["fs"], true, "{r}");
    assert!(r["landlock"]["abi"].as_i64().unwrap_or(0) >= 1, "{r}");
    assert_eq!(r["landlock"]["on_this_kernel"]["enforced"], true, "{r}");
    assert!(
        r["landlock"]["on_this_kernel"]["fs"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("read_file"))),
        "{r}"
    );
    assert_eq!(
        r["capabilities"]["bounding"],
        json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]),
        "{r}"
    );
    let shared: Vec<&str> = r["host_namespaces"]
        .as_array()
        .expect("host_namespaces")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for own in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(!shared.contains(&own), "{own}: {r}");
    }
    assert_eq!(r["writable_kernel_mounts"], json!([]), "{r}");
    assert_eq!(r["privileged_devices"], json!([]), "{r}");
    assert_eq!(r["no_new_privileges"], true, "{r}");
    assert_eq!(r["sealed_exe"], true, "{r}");
    assert_eq!(r["violations"], json!([]), "{r}");
    // Nothing was created.
    t.assert_nothing_left();
    // The text form says the same.
    let out = check(&t, &[], &b, false);
    out.ok();
    for needle in [
        "seccomp: on, default SCMP_ACT_ERRNO",
        "landlock: on (ABI",
        "filesystem confined to the root",
        "capabilities bounding: CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE",
        "policy violations: 0",
    ] {
        assert!(out.stdout.contains(needle), "{needle:?}:\n{out}");
    }
}

fn risky_bundle(t: &Test) -> Bundle {
    let mut b = t.bundle();
    b.remove_namespace("pid");
    b.remove_namespace("network");
    let caps = ["CAP_KILL", "CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH"];
    b.set(
        "/process/capabilities",
        json!({"bounding": caps, "effective": caps, "permitted": caps}),
    );
    b.set("/process/noNewPrivileges", json!(false));
    b
}

fn risk_text(r: &Value) -> String {
    r["risks"]
        .as_array()
        .expect("risks")
        .iter()
        .map(|x| format!("{}: {}", x["field"], x["message"]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn check_flags_a_risky_config() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let b = risky_bundle(&t);
    let out = check(&t, &[], &b, true);
    // Risks are information: no policy, no violation, exit 0.
    out.ok();
    let r = out.json();
    assert_eq!(r["seccomp"]["enabled"], false, "{r}");
    let shared = &r["host_namespaces"];
    assert!(
        shared
            .as_array()
            .is_some_and(|a| a.contains(&json!("pid")) && a.contains(&json!("network"))),
        "{r}"
    );
    let risks = risk_text(&r);
    for needle in [
        "no seccomp profile",
        "CAP_SYS_ADMIN",
        "shares the host's pid namespace",
        "shares the host's network namespace",
        "noNewPrivileges",
        "open_by_handle_at allowed",
        "Landlock does not confine the filesystem",
    ] {
        assert!(risks.contains(needle), "{needle:?} in:\n{risks}");
    }
    assert_eq!(
        r["cap_dac_read_search"]["open_by_handle_at"], "allowed",
        "{r}"
    );
    assert_eq!(r["violations"], json!([]), "{r}");
    t.assert_nothing_left();
}

#[test]
fn check_lists_every_policy_violation_and_exits_1() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let p = policy_file(
        &t,
        "policy.json",
        json!({
            "requireSeccomp": true,
            "allowedCapabilities": ["CAP_KILL"],
            "allowedHostNamespaces": ["user", "cgroup", "time"],
            "requireNoNewPrivileges": true
        }),
    );
    let b = risky_bundle(&t);
    let g = with_policy(&p);
    let out = check(&t, &strs(&g), &b, true);
    assert_eq!(out.code(), Some(1), "{out}");
    let r: Value = serde_json::from_str(&out.stdout).expect("json on stdout");
    assert_eq!(r["policy"], json!(p.display().to_string()), "{r}");
    let rules: Vec<&str> = r["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter_map(|v| v["rule"].as_str())
        .collect();
    for rule in [
        "requireSeccomp",
        "allowedCapabilities",
        "allowedHostNamespaces",
        "requireNoNewPrivileges",
    ] {
        assert!(rules.contains(&rule), "{rule}: {r}");
    }
    let fields: Vec<&str> = r["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter_map(|v| v["field"].as_str())
        .collect();
    assert!(fields.contains(&"process.capabilities.bounding"), "{r}");
    assert!(fields.contains(&"linux.namespaces"), "{r}");
    // Text form: same exit code, violations listed.
    let out = check(&t, &strs(&g), &b, false);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stdout.contains("policy violations: "), "{out}");
    assert!(out.stdout.contains("[requireSeccomp]"), "{out}");
    // create refuses with one line naming the first.
    let out = t.create_with(&strs(&g), &b, &[]);
    out.error_line(&["linux.seccomp", "requireSeccomp"]);
    t.assert_nothing_left();
}

#[test]
fn check_of_a_bad_config_is_one_error_line() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/process/capabilities/bounding", json!(["CAP_NOPE"]));
    let out = check(&t, &[], &b, false);
    out.error_line(&["process.capabilities.bounding"]);
    t.assert_nothing_left();
}
