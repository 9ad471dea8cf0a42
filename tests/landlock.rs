//! Landlock: the container is confined to its root. Each technique reaches a host scratch file
//! or socket the test made; with Landlock on it fails, with `--unsafe-disable landlock` (or the
//! `run.sealrun.landlock=off` annotation, under an operator policy that allows it) it works. Then the annotations that add
//! restrictions: read-only paths, no-exec paths, TCP bind/connect ports, abstract sockets.

#[path = "common/attack.rs"]
mod attack;
mod common;

use std::process::{Command, Stdio};

use attack::{get, off, strs};
use common::*;
use serde_json::json;

const EACCES: &str = "errno:13";
const EPERM: &str = "errno:1";

/// A host directory outside every rootfs, holding `secret`.
fn host_secret(t: &Test) -> std::path::PathBuf {
    let dir = t.path("host-dir");
    std::fs::create_dir_all(&dir).expect("mkdir host dir");
    std::fs::write(dir.join("secret"), "host-secret\n").expect("write secret");
    dir
}

/// `--policy FILE` for an operator policy that lets annotations weaken `layer` (without one,
/// `create` refuses a weakening annotation: see tests/policy.rs).
fn weakening_policy(t: &Test, layer: &str) -> Vec<String> {
    let path = t.path("policy.json");
    std::fs::write(&path, json!({"annotationsMayWeaken": [layer]}).to_string())
        .expect("write policy");
    vec!["--policy".into(), path.display().to_string()]
}

// --- A host directory fd handed to the container (--preserve-fds) ----------------------------

fn preserved_dir_fd(global: &[&str], annotations: serde_json::Value) -> String {
    let t = Test::new();
    let dir = host_secret(&t);
    let mut b = t.bundle();
    attack::install(&b);
    b.set("/annotations", annotations);
    b.sh("/attack readat 3 secret; echo via-proc; /attack read /proc/self/fd/3/secret");
    let redir = format!("3<{}", dir.display());
    let out = attack::run_with_fds(&t, global, &b, &["--preserve-fds", "1"], &redir);
    out.ok();
    t.assert_nothing_left();
    out.stdout
}

fn both_reads(out: &str) -> (String, String) {
    let (before, after) = out.split_once("via-proc").expect("both attempts ran");
    (get(before, "read"), get(after, "read"))
}

#[test]
fn host_dir_fd_is_useless_inside() {
    let out = preserved_dir_fd(&[], json!({}));
    assert_eq!(both_reads(&out), (EACCES.into(), EACCES.into()), "{out}");
}

#[test]
fn host_dir_fd_works_without_landlock() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let g = off(&["landlock"]);
    let out = preserved_dir_fd(&strs(&g), json!({}));
    let ok = "ok:host-secret".to_string();
    assert_eq!(both_reads(&out), (ok.clone(), ok), "{out}");
}

#[test]
fn host_dir_fd_works_with_the_off_annotation() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let t = Test::new();
    let policy = weakening_policy(&t, "landlock");
    let out = preserved_dir_fd(&strs(&policy), json!({"run.sealrun.landlock": "off"}));
    let ok = "ok:host-secret".to_string();
    assert_eq!(both_reads(&out), (ok.clone(), ok), "{out}");
}

// --- Magic links into the host: /proc/<pid>/cwd and /proc/<pid>/root --------------------------
//
// The container shares the host's pid namespace, so its /proc lists host processes. The
// victim is a host process the test starts in the scratch directory, as root with no
// capabilities (the container's own capabilities are then a superset, which ptrace access
// checks ask for). Through /proc/<victim>/cwd and /proc/<victim>/root the container names
// host files; Landlock is what stops the open.

fn magic_links(global: &[&str]) -> (String, String) {
    let t = Test::new();
    let dir = host_secret(&t);
    let mut victim = Command::new("setpriv")
        .args([
            "--bounding-set",
            "-all",
            "--inh-caps",
            "-all",
            "--",
            "/bin/sleep",
            "1000",
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn the victim (util-linux setpriv)");
    t.track_pid(victim.id() as i32);
    let pid = victim.id();
    let mut b = t.bundle();
    attack::install(&b);
    b.remove_namespace("pid");
    b.sh(&format!(
        "/attack read /proc/{pid}/cwd/secret; echo via-root; /attack read /proc/{pid}/root{}/secret",
        dir.display()
    ));
    let out = t.run_with(global, &b, &[]);
    let _ = victim.kill();
    let _ = victim.wait();
    out.ok();
    t.assert_nothing_left();
    let (cwd, root) = out
        .stdout
        .split_once("via-root")
        .expect("both attempts ran");
    (get(cwd, "read"), get(root, "read"))
}

#[test]
fn magic_links_to_the_host_are_useless_inside() {
    let (cwd, root) = magic_links(&[]);
    assert_eq!((cwd.as_str(), root.as_str()), (EACCES, EACCES));
}

#[test]
fn magic_links_to_the_host_work_without_landlock() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let g = off(&["landlock"]);
    let (cwd, root) = magic_links(&strs(&g));
    assert_eq!(
        (cwd.as_str(), root.as_str()),
        ("ok:host-secret", "ok:host-secret")
    );
}

// --- Abstract unix sockets of the host (CVE-2020-15257 style) ---------------------------------
//
// A container in the host's network namespace can connect to every abstract unix socket of
// the host (containerd's shim API was one). The test listens on a scratch abstract name.

fn abstract_socket(global: &[&str], annotations: serde_json::Value) -> String {
    let t = Test::new();
    let name = format!("sealrun-test-{}", t.mark);
    let listener = attack::abstract_listener(&name);
    attack::serve_forever(listener, "hello-from-host\n");
    let mut b = t.bundle();
    attack::attack_args(&mut b, &["abstract", &name]);
    b.remove_namespace("network");
    b.set("/annotations", annotations);
    let out = t.run_with(global, &b, &[]);
    out.ok();
    t.assert_nothing_left();
    get(&out.stdout, "connect")
}

#[test]
fn host_abstract_socket_is_out_of_reach() {
    assert_eq!(abstract_socket(&[], json!({})), EPERM);
}

#[test]
fn host_abstract_socket_is_reachable_without_landlock() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let g = off(&["landlock"]);
    assert_eq!(abstract_socket(&strs(&g), json!({})), "ok:hello-from-host");
}

#[test]
fn host_abstract_socket_scope_can_be_switched_off() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let t = Test::new();
    let policy = weakening_policy(&t, "abstract-unix-scope");
    let a = json!({"run.sealrun.landlock.scope-abstract-unix": "off"});
    assert_eq!(abstract_socket(&strs(&policy), a), "ok:hello-from-host");
}

// --- Annotations that add restrictions --------------------------------------------------------

fn with_annotations(global: &[&str], annotations: serde_json::Value, script: &str) -> String {
    let t = Test::new();
    let mut b = t.bundle();
    attack::install(&b);
    b.writable_root();
    for d in ["data", "scratch", "noexec"] {
        std::fs::create_dir_all(b.rootfs().join(d)).expect("mkdir");
    }
    std::fs::copy(attack::attack_binary(), b.rootfs().join("noexec/attack")).expect("copy");
    b.set("/annotations", annotations);
    b.sh(script);
    let out = t.run_with(global, &b, &[]);
    out.ok();
    t.assert_nothing_left();
    out.stdout
}

#[test]
fn read_only_annotation() {
    let a = json!({"run.sealrun.landlock.read-only": "/data"});
    let script = "/attack write /data/x hi; echo other; /attack write /scratch/y hi";
    let out = with_annotations(&[], a.clone(), script);
    let (data, other) = out.split_once("other").expect("both ran");
    assert_eq!(get(data, "write"), EACCES, "{out}");
    assert_eq!(get(other, "write"), "ok", "{out}");
    if attack::can_disable() {
        let g = off(&["landlock"]);
        let out = with_annotations(&strs(&g), a, script);
        let (data, _) = out.split_once("other").expect("both ran");
        assert_eq!(get(data, "write"), "ok", "{out}");
    } else {
        skip_part(&attack::no_disable());
    }
}

#[test]
fn no_exec_annotation() {
    let a = json!({"run.sealrun.landlock.no-exec": "/noexec"});
    let script = "/attack exec /noexec/attack ids";
    let out = with_annotations(&[], a.clone(), script);
    assert_eq!(get(&out, "exec"), EACCES, "{out}");
    assert!(attack::kv(&out, "uid").is_none(), "{out}");
    if attack::can_disable() {
        let g = off(&["landlock"]);
        let out = with_annotations(&strs(&g), a, script);
        assert_eq!(get(&out, "uid"), "0", "{out}");
    } else {
        skip_part(&attack::no_disable());
    }
}

// In the container's own network namespace the loopback is down: an allowed bind or connect
// then fails with EADDRNOTAVAIL or ENETUNREACH, a denied one with EACCES, before routing.
#[test]
fn tcp_port_annotations() {
    let a = json!({"run.sealrun.landlock.tcp-bind": "8080",
                   "run.sealrun.landlock.tcp-connect": "80"});
    let script = "/attack tcp-bind 8080 9090; /attack tcp-connect 80 81";
    let out = with_annotations(&[], a.clone(), script);
    assert_ne!(get(&out, "bind8080"), EACCES, "{out}");
    assert_eq!(get(&out, "bind9090"), EACCES, "{out}");
    assert_ne!(get(&out, "connect80"), EACCES, "{out}");
    assert_eq!(get(&out, "connect81"), EACCES, "{out}");
    if attack::can_disable() {
        let g = off(&["landlock"]);
        let out = with_annotations(&strs(&g), a, script);
        assert_ne!(get(&out, "bind9090"), EACCES, "{out}");
        assert_ne!(get(&out, "connect81"), EACCES, "{out}");
    } else {
        skip_part(&attack::no_disable());
    }
}

#[test]
fn unknown_landlock_annotation_is_one_error_naming_it() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set(
        "/annotations",
        json!({"run.sealrun.landlock.read-onyl": "/data"}),
    );
    let out = t.run(&b);
    if is_sealrun() {
        out.error_line(&["run.sealrun.landlock.read-onyl"]);
    }
    t.assert_nothing_left();
}
