//! More of issue 13's gaps: configuration checks in runc's words, `checkpoint`/`restore`,
//! exec's own `noNewPrivileges`, and the behaviours runc's suite and clients depend on.

use std::fs;
use std::path::Path;

use crate::common::*;
use serde_json::json;

/// `linux.resources.unified` keys for a controller that is on cgroup v1 here are an invalid
/// configuration, in runc's words (its suite greps "invalid configuration").
#[test]
fn unified_resources_on_cgroup_v1_are_an_invalid_configuration() {
    if !Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        return skip("needs the memory controller on cgroup v1");
    }
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/linux/resources/unified", json!({"memory.min": "131072"}));
    t.run(&b)
        .error_line(&["invalid configuration", "memory.min"]);
    t.assert_nothing_left();
}

/// `checkpoint` and `restore` exist and refuse clearly: sealrun has no CRIU. Their `--help`
/// fails the same way, since podman takes a successful `checkpoint --help` to mean support
/// (runc's help test greps runc's own name there anyway). A bad `--parent-path` is named
/// first, as runc names it.
#[test]
fn checkpoint_and_restore_are_refused_clearly() {
    let t = Test::new();
    if is_sealrun() {
        for cmd in ["checkpoint", "restore"] {
            for help in ["-h", "--help"] {
                t.rt(&[cmd, help]).error_line(&[cmd, "not supported"]);
            }
        }
    }
    let id = t.id().to_string();
    t.run_sleeper(&id);
    let images = t.path("images");
    fs::create_dir_all(&images).unwrap();
    let images = images.to_str().unwrap();
    let abs = t.path("parent");
    t.rt(&[
        "checkpoint",
        "--parent-path",
        abs.to_str().unwrap(),
        "--image-path",
        images,
        &id,
    ])
    .error_line(&["--parent-path"]);
    t.rt(&[
        "checkpoint",
        "--parent-path",
        "./no-such",
        "--image-path",
        images,
        &id,
    ])
    .error_line(&["--parent-path"]);
    if is_sealrun() {
        t.rt(&["checkpoint", "--image-path", images, &id])
            .error_line(&["checkpoint", "not supported"]);
        t.rt(&["restore", "--image-path", images, &t.new_id("restored")])
            .error_line(&["restore", "not supported"]);
    } else {
        skip_part("criu cannot dump on this kernel: checkpoint's refusal is sealrun's own");
    }
    assert_eq!(t.status(&id), "running", "the container is untouched");
    t.delete_force(&id).ok();
    t.assert_nothing_left();
}

/// `kernel.hostname` in `linux.sysctl` is refused (the config has `hostname` for it), and so is
/// a `kernel.domainname` that contradicts `domainname`; an agreeing one is applied.
#[test]
fn sysctls_that_conflict_with_config_fields_are_refused() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/linux/sysctl", json!({"kernel.hostname": "other"}));
    t.run(&b)
        .error_line(&["kernel.hostname", "conflicts", "hostname"]);
    t.assert_nothing_left();
    let mut b = t.bundle_for(&t.new_id("dn"));
    b.set("/domainname", json!("config.example"));
    b.set(
        "/linux/sysctl",
        json!({"kernel.domainname": "sysctl.example"}),
    );
    if is_sealrun() {
        t.run(&b)
            .error_line(&["kernel.domainname", "conflicts", "domainname"]);
        t.assert_nothing_left();
    } else {
        skip_part("runc 1.1.5 applies both (the sysctl last)");
    }
    let mut b = t.bundle_for(&t.new_id("same"));
    b.set("/domainname", json!("same.example"));
    b.set(
        "/linux/sysctl",
        json!({"kernel.domainname": "same.example"}),
    );
    b.args(&["cat", "/proc/sys/kernel/domainname"]);
    let out = t.run(&b);
    out.ok();
    assert_eq!(out.stdout.trim(), "same.example", "{out}");
    t.assert_nothing_left();
}

/// `exec --process`: the process's own `noNewPrivileges` decides, not the container's
/// (runc reads the process.json's field, false when absent).
#[test]
fn exec_process_json_decides_no_new_privileges() {
    for (config, uid) in [(true, 0), (false, 0), (true, 1000), (false, 1000)] {
        exec_no_new_privileges(config, uid);
    }
}

fn exec_no_new_privileges(config: bool, uid: u32) {
    let t = Test::new();
    let id = t.id().to_string();
    let mut b = t.sleeper(&id);
    b.set("/process/noNewPrivileges", json!(config));
    b.set("/process/user", json!({"uid": uid, "gid": uid}));
    t.run_detached(&b).ok();
    t.wait_status(&id, "running");
    let nnp = |set: Option<bool>| {
        let mut p = json!({"args": ["/probe"], "cwd": "/", "env": DEFAULT_ENV,
                           "user": {"uid": uid, "gid": uid}});
        if let Some(v) = set {
            p["noNewPrivileges"] = json!(v);
        }
        let file = t.path("process.json");
        fs::write(&file, p.to_string()).unwrap();
        let out = t.rt(&["exec", "--process", file.to_str().unwrap(), &id]);
        out.ok();
        out.probe_facts()["no_new_privs"].clone()
    };
    assert_eq!(nnp(Some(true)), json!(1), "config {config}, uid {uid}");
    assert_eq!(nnp(Some(false)), json!(0), "config {config}, uid {uid}");
    assert_eq!(nnp(None), json!(0), "config {config}, uid {uid}");
    t.delete_force(&id).ok();
    t.assert_nothing_left();
}
