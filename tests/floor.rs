//! The security floor: decisions come from the Plan `create` persisted and from the host, never
//! from the container, and the process starts as the config says. Each test here failed
//! before the fix it guards (the persisted Plan, the host's cap_last_cap, signal reset,
//! `exec --cap`/`--user`, session keyrings, the audit record read back).

#[path = "common/attack.rs"]
mod attack;
mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;

use serde_json::{json, Value};

use attack::get;
use common::{is_sealrun, sealrun_only, skip, skip_part, Bundle, Test};

/// A capability-set line (`CapBnd`, `SigIgn`, ...) of `/proc/<pid>/status`, read on the host.
fn status_field(pid: i32, field: &str) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn mask(caps: &[u32]) -> String {
    format!("{:016x}", caps.iter().fold(0u64, |m, c| m | 1 << c))
}

const CAP_CHOWN: u32 = 0;
const CAP_KILL: u32 = 5;
const CAP_NET_BIND_SERVICE: u32 = 10;

/// Defect: the bounding set was computed from the container's own
/// `/proc/sys/kernel/cap_last_cap`. A rootfs without procfs and a fake file saying `0` made
/// the init drop nothing, and a root process without no_new_privs got every capability at
/// execve. The number now comes from the host, in the parent, for `exec` too.
#[test]
fn bounding_set_does_not_come_from_the_container() {
    if !is_sealrun() {
        return skip(&sealrun_only(
            "runc 1.1 refuses a container without procfs at /proc",
        ));
    }
    let t = Test::new();
    let mut b = t.bundle();
    b.remove_mount("/proc");
    b.set("/linux/maskedPaths", json!([]));
    b.set("/linux/readonlyPaths", json!([]));
    let three = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    b.set(
        "/process/capabilities",
        json!({"bounding": three, "effective": three, "permitted": three}),
    );
    b.set("/process/noNewPrivileges", json!(false));
    b.set("/root/readonly", json!(false));
    let fake = b.rootfs().join("proc/sys/kernel");
    fs::create_dir_all(&fake).expect("mkdir fake /proc/sys/kernel");
    fs::write(fake.join("cap_last_cap"), "0\n").expect("write fake cap_last_cap");
    attack::attack_args(&mut b, &["sleep"]);
    t.create(&b).ok();
    t.start(&b.id).ok();
    let want = mask(&[CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE]);
    let init = t.pid_of(&b.id);
    assert_eq!(
        status_field(init, "CapBnd"),
        want,
        "the init's bounding set"
    );
    assert_eq!(
        status_field(init, "CapEff"),
        want,
        "the init's effective set"
    );
    let pid_file = t.path("exec.pid");
    t.rt(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &b.id,
        "/attack",
        "sleep",
    ])
    .ok();
    let pid: i32 = fs::read_to_string(&pid_file)
        .expect("exec pid file")
        .trim()
        .parse()
        .expect("pid");
    t.track_pid(pid);
    assert_eq!(
        status_field(pid, "CapBnd"),
        want,
        "the exec'd process's bounding set"
    );
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
}

/// Defect: every container started with SIGPIPE ignored (Rust's runtime ignores it) and with
/// whatever its caller ignored or blocked; `yes | head -1` then made `yes` exit 1 on EPIPE
/// instead of dying of SIGPIPE (141). Dispositions and the mask are reset before execve, in the
/// init and in `exec`.
#[test]
fn processes_start_with_default_signals() {
    if !is_sealrun() {
        return skip(&sealrun_only(
            "runc 1.1 keeps the real-time signals its caller ignored",
        ));
    }
    let t = Test::new();
    let mut b = t.bundle();
    b.sh("( (yes; echo status=$? >&2) | head -1 >/dev/null ) 2>&1");
    let out = t.run(&b);
    out.ok();
    assert!(
        out.stdout.contains("status=141"),
        "yes must die of SIGPIPE: {out}"
    );
    // The caller ignores SIGHUP and blocks SIGUSR1: neither may reach the container.
    let mut b = t.bundle_for(&t.new_id("m"));
    // busybox cat, not the probe: a Rust program ignores SIGPIPE itself at start-up.
    b.args(&["cat", "/proc/self/status"]);
    b.write();
    t.track_id(&b.id);
    let dir = b.dir.to_string_lossy().into_owned();
    let mut run = t.command(&[], &["run", "--bundle", &dir, &b.id]);
    // SAFETY: only async-signal-safe calls (signal, sigprocmask) between fork and exec.
    unsafe {
        run.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let (out, _, _) = t.exec(run);
    out.ok();
    assert_clean_signals(&out.stdout, "init");
    let b = sleeper_with_attack(&t, &[]);
    let out = t.rt(&["exec", &b.id, "cat", "/proc/self/status"]);
    out.ok();
    assert_clean_signals(&out.stdout, "exec");
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
}

#[track_caller]
fn assert_clean_signals(status: &str, who: &str) {
    for field in ["SigIgn", "SigBlk"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("{who}: no {field} in {status}"));
        assert!(line.ends_with("0000000000000000"), "{who}: {line}");
    }
}

fn sleeper_with_attack(t: &Test, extra: &[&str]) -> Bundle {
    let mut b = t.bundle_for(&t.new_id("s"));
    attack::attack_args(&mut b, &["sleep"]);
    t.create_with(&[], &b, extra).ok();
    t.start(&b.id).ok();
    b
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Defect: `exec --cap X` added X to the inheritable set (CVE-2022-29162, fixed in runc 1.1.2).
/// It goes to bounding, effective and permitted, and to ambient only when the process already
/// has inheritable capabilities.
#[test]
fn exec_cap_never_reaches_the_inheritable_set() {
    let t = Test::new();
    let b = sleeper_with_attack(&t, &[]);
    let out = t.rt(&["exec", "--cap", "CAP_SYS_PTRACE", &b.id, "/probe"]);
    out.ok();
    let caps = &out.probe_facts()["caps"];
    for set in ["bounding", "effective", "permitted"] {
        assert!(
            names(&caps[set]).contains(&"CAP_SYS_PTRACE".to_string()),
            "{set}: {caps}"
        );
    }
    assert!(
        !names(&caps["inheritable"]).contains(&"CAP_SYS_PTRACE".to_string()),
        "inheritable: {caps}"
    );
    assert!(
        !names(&caps["ambient"]).contains(&"CAP_SYS_PTRACE".to_string()),
        "no inheritable caps, so not ambient either: {caps}"
    );
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
}

/// Defect: `exec --user UID` ran with gid 0; without a gid the configured one stays.
#[test]
fn exec_user_keeps_the_configured_gid() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/process/user/gid", json!(100));
    attack::attack_args(&mut b, &["sleep"]);
    t.create(&b).ok();
    t.start(&b.id).ok();
    let out = t.rt(&["exec", "--user", "1000", &b.id, "/probe"]);
    out.ok();
    let f = out.probe_facts();
    assert_eq!(f["uid"][0], 1000, "{f}");
    assert_eq!(f["gid"][0], 100, "the configured gid, not 0: {f}");
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
}

/// `attack keyring` in `cmd`'s context: (serial, description).
fn keyring(out: &str) -> (String, String) {
    (
        get(out, "session"),
        attack::kv(out, "description").unwrap_or_default(),
    )
}

/// Defect: processes started by `exec` kept the caller's session keyring (only the init joined
/// a fresh one), so a container whose profile allows `keyctl` read the host caller's keys.
/// Both now join a new anonymous keyring (`_ses`, which no other container can pre-create by
/// name), unless `--no-new-keyring` was given at create.
#[test]
fn containers_never_share_the_callers_session_keyring() {
    let t = Test::new();
    let host = Command::new(attack::attack_binary())
        .arg("keyring")
        .output()
        .expect("attack keyring on the host");
    let (host_serial, _) = keyring(&String::from_utf8_lossy(&host.stdout));
    for (extra, shared) in [(&[][..], false), (&["--no-new-keyring"][..], true)] {
        let b = sleeper_with_attack(&t, extra);
        let out = t.rt(&["exec", &b.id, "/attack", "keyring"]);
        out.ok();
        let (serial, description) = keyring(&out.stdout);
        assert_eq!(
            serial == host_serial,
            shared,
            "exec {extra:?}: {serial} vs host {host_serial}"
        );
        if !shared && is_sealrun() {
            assert_eq!(description, "_ses", "an anonymous session keyring");
        }
        t.delete_force(&b.id).ok();
    }
    let mut b = t.bundle_for(&t.new_id("init"));
    attack::attack_args(&mut b, &["keyring"]);
    let out = t.run(&b);
    out.ok();
    let (serial, description) = keyring(&out.stdout);
    assert_ne!(serial, host_serial, "the init's keyring");
    if is_sealrun() {
        assert_eq!(description, "_ses", "the init's keyring is anonymous");
    }
    t.assert_nothing_left();
}

/// Defect: the audit record reported intent (ambient capabilities that were never applied,
/// Landlock's status dropped in the child) and existed only with `--log`. It now says what the
/// process read back, and `sealrun audit ID` prints it from the state directory.
#[test]
fn audit_record_reports_what_was_enforced() {
    if !is_sealrun() {
        return skip(&sealrun_only("the audit record"));
    }
    let t = Test::new();
    let mut b = t.bundle();
    // Ambient capabilities without the inheritable ones cannot be raised.
    b.set(
        "/process/capabilities",
        json!({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
               "permitted": ["CAP_KILL"], "ambient": ["CAP_KILL"]}),
    );
    attack::attack_args(&mut b, &["sleep"]);
    // No --log of its own: the last --log wins, and /dev/null keeps nothing.
    t.create_with(&["--log", "/dev/null"], &b, &[]).ok();
    assert!(
        t.report().protections(&b.id).is_none(),
        "nothing was logged"
    );
    let out = t.rt(&["audit", &b.id]);
    out.ok();
    let a = out.json();
    assert_eq!(a["id"], json!(b.id), "{a}");
    assert_eq!(a["pid"], json!(t.pid_of(&b.id)), "{a}");
    assert_eq!(
        a["capabilities"]["ambient"],
        json!([]),
        "never applied: {a}"
    );
    assert_eq!(a["capabilities"]["bounding"], json!(["CAP_KILL"]), "{a}");
    assert_eq!(a["capabilities_read_back"], true, "{a}");
    assert_eq!(a["no_new_privileges"], true, "{a}");
    assert_eq!(a["landlock"]["enforced"], true, "{a}");
    assert!(
        a["landlock"]["status"]["rules"].as_u64().unwrap_or(0) > 0,
        "{a}"
    );
    assert!(
        names(&a["landlock"]["status"]["fs"]).contains(&"write_file".to_string()),
        "{a}"
    );
    assert_eq!(
        a["seccomp"],
        Value::Null,
        "the test config has no profile: {a}"
    );
    let unknown = t.rt(&["audit", "no-such-container"]);
    unknown.error_line(&["no-such-container"]);
    t.delete_force(&b.id).ok();
    // With a layer off, the record shows the outcome, not the plan.
    if attack::can_disable() {
        let mut b2 = t.bundle_for(&t.new_id("off"));
        attack::attack_args(&mut b2, &["sleep"]);
        t.create_with(&["--unsafe-disable", "landlock"], &b2, &[])
            .ok();
        let a = t.rt(&["audit", &b2.id]).json();
        assert_eq!(a["landlock"]["enforced"], false, "{a}");
        assert_eq!(a["disabled_layers"], json!(["landlock"]), "{a}");
        t.delete_force(&b2.id).ok();
    } else {
        skip_part(&attack::no_disable());
    }
    t.assert_nothing_left();
}

/// The Plan is the one persisted truth: once created, the container no longer depends on its
/// bundle. `exec` works with the bundle's config.json gone (it used to re-parse it), and no
/// copy of the config is kept in the state directory.
#[test]
fn exec_reads_the_persisted_plan_not_the_config() {
    if !is_sealrun() {
        return skip(&sealrun_only("the state directory's layout"));
    }
    let t = Test::new();
    let b = sleeper_with_attack(&t, &[]);
    fs::remove_file(b.dir.join("config.json")).expect("remove config.json");
    let out = t.rt(&["exec", &b.id, "/probe"]);
    out.ok();
    let state_dir = t.root.join(&b.id);
    assert!(state_dir.join("plan.json").exists());
    assert!(!state_dir.join("config.json").exists());
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
}
