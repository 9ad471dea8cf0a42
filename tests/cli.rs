//! The command line: --version, spec (and --rootless), features, --log/--log-format,
//! --systemd-cgroup, usage errors, and sealrun's audit record.

mod common;

use std::fs;

use common::*;
use serde_json::{json, Value};

/// A JSON array of strings, as `&str`s.
fn str_list(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// The `type` of each `linux.namespaces` entry of a config.
fn namespace_types(config: &Value) -> Vec<&str> {
    config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect()
}

#[test]
fn version_prints_three_lines() {
    let t = Test::new();
    let out = t.rt(&["--version"]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    let name = if is_sealrun() { "sealrun" } else { "runc" };
    assert!(lines[0].starts_with(&format!("{name} version ")), "{out}");
    assert!(lines[0].len() > format!("{name} version ").len(), "{out}");
    assert!(
        lines[1].starts_with("commit: ") && lines[1].len() > 8,
        "{out}"
    );
    let spec = lines[2].strip_prefix("spec: ").expect("spec line");
    assert!(spec.starts_with("1."), "{out}");
    if is_sealrun() {
        assert_eq!(lines.len(), 3, "{out}");
        // -v is the short form.
        assert_eq!(t.rt(&["-v"]).stdout, out.stdout);
    }
    t.assert_nothing_left();
}

#[test]
fn help_succeeds_and_usage_errors_fail() {
    let t = Test::new();
    let help = t.rt(&["--help"]);
    help.ok();
    assert!(help.stdout.contains("create"), "{help}");
    let bad = t.rt(&["no-such-command"]);
    bad.failed();
    assert!(!bad.stderr.is_empty(), "{bad}");
    let missing = t.rt(&["create"]);
    missing.failed();
    t.assert_nothing_left();
}

#[test]
fn spec_writes_a_config_that_runs() {
    let t = Test::new();
    let mut b = t.bundle();
    fs::remove_file(b.dir.join("config.json")).ok();
    let dir = b.dir.to_str().unwrap().to_string();
    let out = t.rt(&["spec", "--bundle", &dir]);
    out.ok();
    let text = fs::read_to_string(b.dir.join("config.json")).expect("spec wrote config.json");
    let spec: Value = serde_json::from_str(&text).expect("valid JSON");
    assert!(spec["ociVersion"].as_str().unwrap().starts_with("1."));
    assert_eq!(spec["process"]["terminal"], true);
    assert_eq!(spec["process"]["args"], json!(["sh"]));
    assert_eq!(spec["root"]["path"], "rootfs");
    let ns = namespace_types(&spec);
    for kind in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&kind), "{kind} in {ns:?}");
    }
    if is_sealrun() {
        // Hardened defaults.
        assert_eq!(spec["root"]["readonly"], true);
        assert_eq!(spec["process"]["noNewPrivileges"], true);
        assert!(
            spec["linux"]["seccomp"]["syscalls"].is_array(),
            "default seccomp profile"
        );
        assert_eq!(
            spec["process"]["capabilities"]["bounding"],
            json!(DEFAULT_CAPS)
        );
    }
    // Run it, made non-interactive, under the runtime that wrote it.
    b.config = spec;
    b.set("/process/terminal", json!(false));
    b.args(&["/probe"]);
    b.set("/linux/cgroupsPath", json!(t.cgroups_path(t.id())));
    let f = t.probe(&b);
    assert_eq!(f["uid"], json!([0, 0, 0, 0]));
    if is_sealrun() {
        assert_eq!(f["no_new_privs"], 1);
        assert_eq!(f["seccomp"], 2, "the default profile is loaded");
    }
    t.assert_nothing_left();
}

#[test]
fn spec_refuses_to_overwrite() {
    let t = Test::new();
    let b = t.bundle();
    b.write();
    let before = fs::read_to_string(b.dir.join("config.json")).unwrap();
    let out = t.rt(&["spec", "--bundle", b.dir.to_str().unwrap()]);
    let text = out.error_line(&["config.json"]);
    if is_sealrun() {
        // One clean message naming the file (not "container with id config: ... already
        // exists already exists").
        assert!(!text.contains("container"), "{out}");
        assert_eq!(text.matches("already exists").count(), 1, "{out}");
    }
    assert_eq!(
        fs::read_to_string(b.dir.join("config.json")).unwrap(),
        before
    );
    t.assert_nothing_left();
}

#[test]
fn spec_rootless_maps_the_caller_and_runs() {
    let t = Test::new();
    let mut b = t.bundle();
    let dir = b.dir.to_str().unwrap().to_string();
    fs::remove_file(b.dir.join("config.json")).ok();
    t.rt(&["spec", "--rootless", "--bundle", &dir]).ok();
    let spec: Value =
        serde_json::from_str(&fs::read_to_string(b.dir.join("config.json")).unwrap()).unwrap();
    let ns = namespace_types(&spec);
    assert!(ns.contains(&"user"), "{ns:?}");
    assert!(!ns.contains(&"network"), "{ns:?}");
    let uid = nix::unistd::getuid().as_raw();
    assert_eq!(
        spec["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": uid, "size": 1}])
    );
    assert_eq!(
        spec["linux"]["gidMappings"][0]["hostID"],
        nix::unistd::getgid().as_raw()
    );
    b.config = spec;
    b.set("/process/terminal", json!(false));
    b.args(&["/probe", "read=/proc/self/uid_map"]);
    let f = t.probe(&b);
    assert_ne!(f["ns"]["user"], host_ns("user"));
    assert_eq!(f["ns"]["net"], host_ns("net"));
    assert_eq!(f["uid"], json!([0, 0, 0, 0]));
    t.assert_nothing_left();
}

#[test]
fn features_reports_what_the_runtime_supports() {
    let t = Test::new();
    let out = t.rt(&["features"]);
    out.ok();
    let f = out.json();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(f["ociVersionMax"].as_str().unwrap().starts_with("1."));
    assert_eq!(
        f["hooks"],
        json!([
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ])
    );
    let opts = str_list(&f["mountOptions"]);
    for o in [
        "ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "relatime", "rshared", "rslave",
        "rprivate",
    ] {
        assert!(opts.contains(&o), "mount option {o} in {opts:?}");
    }
    let ns = str_list(&f["linux"]["namespaces"]);
    let mut want = vec!["cgroup", "ipc", "mount", "network", "pid", "user", "uts"];
    if is_sealrun() {
        want.push("time");
    }
    for n in want {
        assert!(ns.contains(&n), "namespace {n} in {ns:?}");
    }
    let caps = f["linux"]["capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("CAP_SYS_ADMIN")));
    assert!(caps.contains(&json!("CAP_KILL")));
    assert!(f["linux"]["cgroup"]["v1"].is_boolean());
    assert!(f["linux"]["cgroup"]["v2"].is_boolean());
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(f["linux"]["seccomp"]["actions"]
        .as_array()
        .unwrap()
        .contains(&json!("SCMP_ACT_ERRNO")));
    assert!(f["linux"]["apparmor"]["enabled"].is_boolean());
    if is_sealrun() {
        // features.md: these say what the runtime implements, not what the host has. sealrun
        // has no AppArmor or SELinux support (runc 1.1.5 reports what it was built with).
        assert_eq!(f["linux"]["apparmor"]["enabled"], false);
        assert_eq!(f["linux"]["selinux"]["enabled"], false);
        // No systemd driver: `--systemd-cgroup` is refused (systemd_cgroup_is_a_clear_error).
        assert_eq!(f["linux"]["cgroup"]["systemd"], false);
        assert!(f["annotations"]["run.sealrun.version"].is_string());
        cgroup_features_hold(&t, &f);
    } else {
        skip_part(&sealrun_only(
            "the cgroup features checked against this host",
        ));
    }
    t.assert_nothing_left();
}

/// `features` tells the truth about cgroups: the host's hierarchies (the annotation) are what
/// mountinfo lists, and a container really gets a cgroup in each kind sealrun claims.
fn cgroup_features_hold(t: &Test, f: &Value) {
    let v1 = host::v1_controller_mounts();
    let v2: Vec<_> = host::mounts_of_type("cgroup2")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let kinds: Vec<&str> = [(!v1.is_empty(), "v1"), (!v2.is_empty(), "v2")]
        .into_iter()
        .filter_map(|(on, k)| on.then_some(k))
        .collect();
    let want = if kinds.is_empty() {
        "none".to_string()
    } else {
        kinds.join(",")
    };
    assert_eq!(f["annotations"]["run.sealrun.cgroup.host"], json!(want));
    t.create_sleeper(t.id());
    let rel = t.cgroups_path(t.id());
    for (kind, mounts) in [("v1", &v1), ("v2", &v2)] {
        if mounts.is_empty() {
            continue;
        }
        assert_eq!(f["linux"]["cgroup"][kind], true, "{kind} is mounted here");
        let joined: Vec<_> = mounts
            .iter()
            .filter(|m| m.join(rel.trim_start_matches('/')).is_dir())
            .collect();
        assert!(
            !joined.is_empty(),
            "no {kind} cgroup {rel} under {mounts:?}"
        );
    }
    t.delete_force(t.id()).ok();
}

#[test]
fn log_format_json_writes_json_lines() {
    let t = Test::new();
    t.state("no-such-container").failed();
    let r = t.report();
    let err = r
        .lines
        .iter()
        .find(|l| l["level"] == "error")
        .unwrap_or_else(|| panic!("an error record in {:?}", r.lines));
    if is_sealrun() {
        // runc 1.1.5 says "container does not exist" without the id.
        assert!(
            err["msg"].as_str().unwrap().contains("no-such-container"),
            "{err}"
        );
    }
    let time = err["time"].as_str().expect("time");
    // RFC 3339: 2026-11-28T17:38:40.123Z or with an offset.
    assert_eq!(&time[4..5], "-", "{time}");
    assert_eq!(&time[10..11], "T", "{time}");
    t.assert_nothing_left();
}

#[test]
fn log_format_text_writes_logfmt_lines() {
    let t = Test::new();
    let log = t.path("text.log");
    let mut c = std::process::Command::new(runtime());
    c.arg("--root").arg(&t.root).arg("--log").arg(&log).args([
        "--log-format",
        "text",
        "state",
        "no-such-container",
    ]);
    let (out, _, _) = t.exec(c);
    out.failed();
    let text = fs::read_to_string(&log).expect("log written");
    let line = text
        .lines()
        .find(|l| l.contains("level=error"))
        .unwrap_or_else(|| panic!("an error line in {text}"));
    assert!(line.starts_with("time=\""), "{line}");
    assert!(line.contains("msg="), "{line}");
    if is_sealrun() {
        assert!(line.contains("no-such-container"), "{line}");
    }
    t.assert_nothing_left();
}

#[test]
fn debug_adds_debug_records() {
    let t = Test::new();
    let mut b = t.bundle();
    b.args(&["true"]);
    let out = t.run_with(&["--debug"], &b, &[]);
    out.ok();
    let r = t.report();
    assert!(
        r.lines.iter().any(|l| l["level"] == "debug"),
        "debug records with --debug: {:?}",
        r.lines
    );
    t.assert_nothing_left();
}

#[test]
fn systemd_cgroup_is_a_clear_error() {
    let t = Test::new();
    let mut b = t.bundle();
    b.args(&["true"]);
    b.set("/linux/cgroupsPath", json!("system.slice:sealrun:test"));
    let out = t.create_with(&["--systemd-cgroup"], &b, &[]);
    out.error_line(&["systemd"]);
    t.assert_nothing_left();
}

#[test]
fn create_logs_one_audit_record() {
    if !is_sealrun() {
        return skip(&sealrun_only("the audit record"));
    }
    let t = Test::new();
    let id = t.id();
    t.create_sleeper(id);
    let r = t.report();
    assert_eq!(
        r.with_msg("container protections").len(),
        1,
        "{:?}",
        r.lines
    );
    let a = r.protections(id).expect("audit record for this id");
    assert_eq!(a["level"], "info");
    assert_eq!(a["pid"], t.pid_of(id));
    assert_eq!(a["no_new_privileges"], true);
    let mut caps: Vec<&str> = a["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    caps.sort();
    assert_eq!(caps, DEFAULT_CAPS);
    let ns = a["namespaces"].as_array().unwrap();
    for kind in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&json!(kind)), "{kind} in {ns:?}");
    }
    assert!(
        a.get("seccomp").is_some() && a.get("landlock").is_some(),
        "{a}"
    );
    assert_eq!(a["disabled_layers"], json!([]));
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

/// Run the runtime with `args` and its stdout a pipe whose reading end is already closed
/// (`sealrun features | (exec 0<&-; true)`); killed after TIMEOUT (the test then fails).
/// Returns (exit status, stderr).
fn with_closed_stdout(t: &Test, args: &[&str]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = nix::unistd::pipe().expect("pipe");
    drop(reader);
    let err_path = t.path(&format!("closed-stdout-{}.err", args.join("-")));
    let mut cmd = t.command(&[], args);
    cmd.stdout(std::process::Stdio::from(writer))
        .stderr(fs::File::create(&err_path).expect("stderr file"));
    let mut child = cmd.spawn().expect("spawn runtime");
    drop(cmd);
    let mut status = None;
    let done = wait_until(TIMEOUT, || {
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    if !done {
        let _ = child.kill();
        let _ = child.wait();
        panic!("`{}` with a closed stdout did not finish", args.join(" "));
    }
    (
        status.expect("status"),
        fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

#[test]
fn a_closed_stdout_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let t = Test::new();
    let id = t.id().to_string();
    t.run_sleeper(&id);
    let cases: Vec<Vec<&str>> = vec![
        vec!["features"],
        vec!["--version"],
        vec!["--help"],
        vec!["state", &id],
        vec!["list"],
        vec!["list", "--format", "json"],
        vec!["ps", "--format", "json", &id],
        vec!["events", "--stats", &id],
        vec!["events", "--interval", "100ms", &id],
    ];
    for args in cases {
        let (status, stderr) = with_closed_stdout(&t, &args);
        // 0 or 141 (the shell's code for a SIGPIPE death), or the SIGPIPE death itself (runc).
        let quiet = matches!(status.code(), Some(0) | Some(141)) || status.signal() == Some(13);
        assert!(quiet, "`{}`: {status}\n{stderr}", args.join(" "));
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "`{}`: {stderr}",
            args.join(" ")
        );
    }
    t.delete_force(&id).ok();
    t.assert_nothing_left();
}

#[test]
fn usage_errors_exit_1_and_reach_the_log() {
    let t = Test::new();
    for args in [
        vec!["no-such-command"],
        vec!["create"],
        vec!["--no-such-flag", "list"],
        vec!["update", "--cpu-quota", "lots", "x"],
    ] {
        let out = t.rt(&args);
        assert_eq!(out.code(), Some(1), "{out}");
        assert!(!out.stderr.is_empty(), "{out}");
        if is_sealrun() {
            assert_eq!(out.stderr.trim_end().lines().count(), 1, "one line: {out}");
        }
    }
    if is_sealrun() {
        // containerd shows the last error record of the --log file.
        let errors = t.report().messages("error");
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].contains("no-such-command"), "{errors:?}");
        assert!(errors[1].to_lowercase().contains("id"), "{errors:?}");
        assert!(errors[2].contains("--no-such-flag"), "{errors:?}");
        assert!(errors[3].contains("lots"), "{errors:?}");
        // --log-format text is respected too (the last --log / --log-format win, as parsed).
        let text_log = t.path("text.log");
        let text_log_s = text_log.to_string_lossy().into_owned();
        let out = t.rt_global(
            &["--log", &text_log_s, "--log-format=text"],
            &["no-such-command"],
        );
        assert_eq!(out.code(), Some(1), "{out}");
        let line = fs::read_to_string(&text_log).expect("text log written");
        assert!(
            line.contains("level=error") && line.contains("no-such-command"),
            "{line}"
        );
    }
    // --help and --version still succeed.
    t.rt(&["--help"]).ok();
    t.rt(&["--version"]).ok();
    t.assert_nothing_left();
}
