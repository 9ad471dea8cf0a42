//! Unknown capability names (issue 13): refused by default, naming the field (the
//! runtime-spec's MUST; crun refuses too), where runc 1.1 ignores them with a warning; an
//! operator policy `unknownCapabilities: "warn"` asks for runc's leniency.

use std::fs;

use crate::common::*;
use serde_json::{json, Value};

/// CAP_KILL (5) and CAP_CHOWN (0) in the bounding and permitted sets, CAP_KILL alone in the
/// effective set, and an unknown name in all three.
fn caps_with_unknown() -> Value {
    json!({
        "bounding": ["CAP_KILL", "CAP_NOPE", "CAP_CHOWN"],
        "effective": ["CAP_NOPE", "CAP_KILL"],
        "permitted": ["CAP_KILL", "CAP_CHOWN", "CAP_NOPE"]
    })
}

fn warn_policy(t: &Test) -> String {
    let path = t.path("policy.json");
    fs::write(&path, json!({"unknownCapabilities": "warn"}).to_string()).expect("write policy");
    path.display().to_string()
}

/// The `Cap*:` lines of /proc/self/status, as printed by the container.
fn cap_line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {out:?}"))
}

#[test]
fn unknown_capability_is_refused_naming_the_field() {
    if !is_sealrun() {
        // runc 1.1 ignores the name with a warning: the difference is deliberate.
        return skip(&sealrun_only("refusing unknown capability names"));
    }
    let t = Test::new();
    let mut b = t.bundle();
    b.args(&["/bin/true"]);
    b.set("/process/capabilities", caps_with_unknown());
    t.run(&b)
        .error_line(&["process.capabilities.bounding", "CAP_NOPE"]);
    t.assert_nothing_left();
    // `check` refuses it the same way.
    b.write();
    let dir = b.dir.display().to_string();
    t.rt(&["check", &dir])
        .error_line(&["process.capabilities.bounding", "CAP_NOPE"]);
}

/// Under the policy (runc: always) the name is dropped from every set with a warning naming
/// it, the container runs, and the known capabilities are in effect.
#[test]
fn unknown_capability_is_ignored_with_a_warning_under_the_policy() {
    let t = Test::new();
    let policy = warn_policy(&t);
    let global: Vec<&str> = if is_sealrun() {
        vec!["--policy", &policy]
    } else {
        Vec::new()
    };
    let mut b = t.bundle();
    b.sh("grep '^Cap' /proc/self/status");
    b.set("/process/capabilities", caps_with_unknown());
    let out = t.run_with(&global, &b, &[]);
    out.ok();
    assert_eq!(
        cap_line(&out.stdout, "CapBnd:"),
        "0000000000000021",
        "{out}"
    );
    assert_eq!(
        cap_line(&out.stdout, "CapPrm:"),
        "0000000000000021",
        "{out}"
    );
    // Root's execve raises the effective set to the permitted one (runc's too).
    assert_eq!(
        cap_line(&out.stdout, "CapEff:"),
        "0000000000000021",
        "{out}"
    );
    let warnings: Vec<String> = t
        .report()
        .messages("warning")
        .into_iter()
        .filter(|w| w.contains("CAP_NOPE"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    if is_sealrun() {
        let w = &warnings[0];
        for field in ["bounding", "effective", "permitted"] {
            assert!(w.contains(&format!("process.capabilities.{field}")), "{w}");
        }
        assert!(w.contains("unknownCapabilities"), "{w}");
    }
    t.assert_nothing_left();
    if !is_sealrun() {
        return;
    }
    // `check` under the policy passes and lists the name among the risks.
    b.write();
    let dir = b.dir.display().to_string();
    let out = t.rt_global(&global, &["check", "--format", "json", &dir]);
    out.ok();
    let risks = out.json()["risks"].to_string();
    assert!(
        risks.contains("CAP_NOPE") && risks.contains("process.capabilities.effective"),
        "{risks}"
    );
}

/// An exec's process.json follows the policy the container was created under.
#[test]
fn unknown_capability_in_an_exec_process_follows_the_policy() {
    if !is_sealrun() {
        return skip(&sealrun_only("the operator policy"));
    }
    let t = Test::new();
    let policy = warn_policy(&t);
    for (global, lenient) in [(vec!["--policy", policy.as_str()], true), (vec![], false)] {
        let id = t.new_id(if lenient { "warn" } else { "refuse" });
        let mut b = t.sleeper(&id);
        b.set("/process/capabilities", json!({"bounding": ["CAP_KILL"]}));
        t.create_with(&global, &b, &[]).ok();
        t.start(&id).ok();
        let process = t.path(&format!("process-{id}.json"));
        let p = json!({"cwd": "/", "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", "grep '^CapEff' /proc/self/status"],
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL", "CAP_NOPE"],
                             "permitted": ["CAP_KILL"]}});
        fs::write(&process, p.to_string()).expect("write process.json");
        let out = t.rt_global(
            &global,
            &["exec", "--process", &process.display().to_string(), &id],
        );
        if lenient {
            out.ok();
            assert_eq!(
                cap_line(&out.stdout, "CapEff:"),
                "0000000000000020",
                "{out}"
            );
            let warnings = t.report().messages("warning");
            assert!(
                warnings
                    .iter()
                    .any(|w| w.contains("capabilities.effective") && w.contains("CAP_NOPE")),
                "{warnings:?}"
            );
        } else {
            out.error_line(&["capabilities.effective", "CAP_NOPE"]);
        }
        t.delete_force(&id).ok();
    }
    t.assert_nothing_left();
}
