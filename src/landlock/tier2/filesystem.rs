//! Filesystem confinement: leaked fds, cwd tricks, magic links, read-only and no-exec paths.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::*;
use crate::landlock::{ANNOTATION_MODE, ANNOTATION_NO_EXEC, ANNOTATION_READ_ONLY};
use crate::sys;

/// Probes that reach the host through a leaked fd, the cwd, and magic links.
fn host_probes(req: &Request, leaked: &File, r: &mut Results) {
    let host = req.scratch.join("host");
    let fd = leaked.as_raw_fd();
    let ppid = std::os::unix::process::parent_id();
    let ins = |r: &mut Results, k: &str, v: String| r.insert(k.to_string(), v);
    ins(
        r,
        "openat_leaked_fd",
        show_nix(sys::fd::openat(
            leaked.as_fd(),
            Path::new("secret.txt"),
            OFlag::O_RDONLY,
            Mode::empty(),
        )),
    );
    ins(
        r,
        "proc_self_fd",
        show(read_to_string(format!("/proc/self/fd/{fd}/secret.txt"))),
    );
    ins(
        r,
        "proc_self_root",
        show(read_to_string(
            Path::new("/proc/self/root").join(host.strip_prefix("/").unwrap().join("secret.txt")),
        )),
    );
    ins(
        r,
        "proc_host_pid_root",
        show(read_to_string(
            Path::new(&format!("/proc/{ppid}/root"))
                .join(host.strip_prefix("/").unwrap().join("secret.txt")),
        )),
    );
    ins(
        r,
        "proc_host_pid_exe",
        show(File::open(format!("/proc/{ppid}/exe"))),
    );
    ins(r, "cwd_relative", show(read_to_string("secret.txt")));
    ins(r, "cwd_dotdot", show(read_to_string("../host/secret.txt")));
    ins(r, "host_create", show(File::create(host.join("new.txt"))));
    ins(r, "host_exec", run(Path::new(BUSYBOX)));
}

/// A host directory fd and a cwd outside the root, as a runtime bug would leave them.
fn leak(req: &Request) -> File {
    let leaked = File::open(req.scratch.join("host")).unwrap();
    std::env::set_current_dir(req.scratch.join("host")).unwrap();
    leaked
}

pub(super) fn scenario_fs(req: &Request) -> Results {
    let mut r = Results::new();
    let root = req.scratch.join("root");
    let leaked = leak(req);
    restrict(req, &mut r);

    host_probes(req, &leaked, &mut r);
    let ins = |r: &mut Results, k: &str, v: String| r.insert(k.to_string(), v);
    ins(
        &mut r,
        "root_read",
        match read_to_string(root.join("data.txt")) {
            Ok(s) if s == "root data" => "ok".into(),
            other => show(other),
        },
    );
    ins(&mut r, "root_list", show(fs::read_dir(&root)));
    ins(
        &mut r,
        "root_write",
        show(
            OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(root.join("data.txt"))
                .and_then(|mut f| f.write_all(b"changed")),
        ),
    );
    ins(
        &mut r,
        "root_create",
        show(File::create(root.join("dir/new.txt"))),
    );
    ins(
        &mut r,
        "root_mkdir",
        show(fs::create_dir(root.join("dir/sub"))),
    );
    ins(
        &mut r,
        "root_rename_across_dirs",
        show(fs::rename(root.join("dir/new.txt"), root.join("moved.txt"))),
    );
    ins(
        &mut r,
        "root_symlink",
        show(symlink("moved.txt", root.join("dir/link"))),
    );
    ins(
        &mut r,
        "root_remove_file",
        show(fs::remove_file(root.join("moved.txt"))),
    );
    ins(
        &mut r,
        "root_remove_dir",
        show(fs::remove_dir(root.join("dir/sub"))),
    );
    ins(&mut r, "root_exec", run(&root.join("busybox")));
    // stdin is the host's /dev/null: reopening it through /proc/self/fd/0 keeps working.
    ins(&mut r, "stdio_reopen", show(File::open("/proc/self/fd/0")));
    r
}

pub(super) fn scenario_narrow(req: &Request) -> Results {
    let mut r = Results::new();
    let root = req.scratch.join("root");
    let leaked = leak(req);
    restrict(req, &mut r);
    host_probes(req, &leaked, &mut r);
    let ins = |r: &mut Results, k: &str, v: String| r.insert(k.to_string(), v);
    let write = |p: PathBuf| {
        show(
            OpenOptions::new()
                .write(true)
                .open(p)
                .and_then(|mut f| f.write_all(b"x")),
        )
    };
    ins(
        &mut r,
        "etc_read",
        show(read_to_string(root.join("etc/conf"))),
    );
    ins(&mut r, "etc_list", show(fs::read_dir(root.join("etc"))));
    ins(&mut r, "etc_write", write(root.join("etc/conf")));
    ins(
        &mut r,
        "etc_create",
        show(File::create(root.join("etc/new"))),
    );
    ins(
        &mut r,
        "etc_sub_create",
        show(File::create(root.join("etc/sub/new"))),
    );
    ins(
        &mut r,
        "etc_remove",
        show(fs::remove_file(root.join("etc/remove-me"))),
    );
    ins(
        &mut r,
        "etc_rename_out",
        show(fs::rename(root.join("etc/move-me"), root.join("tmp/moved"))),
    );
    // /lib is a symlink to usr/lib: the read-only rule lands on usr/lib.
    ins(
        &mut r,
        "lib_create_via_symlink",
        show(File::create(root.join("lib/new"))),
    );
    ins(
        &mut r,
        "usr_lib_create",
        show(File::create(root.join("usr/lib/new"))),
    );
    ins(
        &mut r,
        "usr_lib_read",
        show(read_to_string(root.join("usr/lib/libc"))),
    );
    // /usr itself is an ancestor of a read-only path: only the narrowed rights there.
    ins(
        &mut r,
        "usr_create",
        show(File::create(root.join("usr/new"))),
    );
    ins(
        &mut r,
        "usr_share_create",
        show(File::create(root.join("usr/share/new"))),
    );
    ins(
        &mut r,
        "tmp_create",
        show(File::create(root.join("tmp/new"))),
    );
    ins(
        &mut r,
        "tmp_mkdir",
        show(fs::create_dir(root.join("tmp/d"))),
    );
    ins(
        &mut r,
        "tmp_remove",
        show(fs::remove_file(root.join("tmp/new"))),
    );
    ins(&mut r, "top_file_write", write(root.join("top.txt")));
    ins(
        &mut r,
        "top_create",
        show(File::create(root.join("new-in-root"))),
    );
    ins(&mut r, "root_list", show(fs::read_dir(&root)));
    ins(&mut r, "bin_exec", run(&root.join("bin/busybox")));
    ins(&mut r, "sbin_exec", run(&root.join("sbin/busybox")));
    r
}

// ---------------------------------------------------------------------------------------------
// The tests.
fn fs_scratch() -> Scratch {
    let s = Scratch::new("fs");
    let root = s.root();
    fs::write(root.join("data.txt"), "root data").unwrap();
    fs::create_dir(root.join("dir")).unwrap();
    install_busybox(&root.join("busybox"));
    s
}

fn fs_request(s: &Scratch, annotations: HashMap<String, String>) -> Request {
    Request {
        scenario: "fs".into(),
        scratch: s.0.clone(),
        annotations,
        host_network: false,
        cap_sys_admin: false,
        extra: HashMap::new(),
    }
}

const HOST_PROBES: &[&str] = &[
    "openat_leaked_fd",
    "proc_self_fd",
    "proc_self_root",
    "proc_host_pid_root",
    "proc_host_pid_exe",
    "cwd_relative",
    "cwd_dotdot",
    "host_create",
    "host_exec",
];

const ROOT_PROBES: &[&str] = &[
    "root_read",
    "root_list",
    "root_write",
    "root_create",
    "root_mkdir",
    "root_rename_across_dirs",
    "root_symlink",
    "root_remove_file",
    "root_remove_dir",
    "root_exec",
    "stdio_reopen",
];

#[test]
fn default_policy_denies_the_host_and_allows_the_root() {
    if !kernel_has(5) {
        return;
    }
    let s = fs_scratch();
    let r = run_child(&fs_request(&s, HashMap::new()));
    expect(&r, HOST_PROBES, "EACCES");
    expect(&r, ROOT_PROBES, "ok");
    eprintln!("default apply took {} µs", r["apply_us"]);
    let st = status_of(&r);
    assert_eq!(st["enforced"], true, "{st}");
    assert_eq!(st["abi"], crate::landlock::abi(), "{st}");
    // One rule on the root, one for stdin (the host's /dev/null); stdout/stderr are pipes.
    assert_eq!(st["rules"], 2, "{st}");
    assert_eq!(st["scopes"], serde_json::json!([]), "{st}");
    assert!(
        st["fs"].as_array().unwrap().contains(&"ioctl_dev".into()),
        "{st}"
    );
}

#[test]
fn with_landlock_off_the_same_host_accesses_succeed() {
    if !kernel_has(2) {
        return;
    }
    let s = fs_scratch();
    let r = run_child(&fs_request(&s, off()));
    expect(&r, HOST_PROBES, "ok");
    expect(&r, ROOT_PROBES, "ok");
    let st = status_of(&r);
    assert_eq!(st["enforced"], false, "{st}");
    assert!(st["reason"].as_str().unwrap().contains("=off"), "{st}");
}

#[test]
fn with_cap_sys_admin_filesystem_rules_are_skipped_unless_enforced() {
    if !kernel_has(2) {
        return;
    }
    let s = fs_scratch();
    let mut req = fs_request(&s, HashMap::new());
    req.cap_sys_admin = true;
    let r = run_child(&req);
    expect(&r, HOST_PROBES, "ok");
    let st = status_of(&r);
    assert_eq!(st["enforced"], false, "{st}");
    assert!(
        st["reason"].as_str().unwrap().contains("CAP_SYS_ADMIN"),
        "{st}"
    );

    // A fresh scratch: the first run changed the root.
    let s = fs_scratch();
    req = fs_request(&s, ann(&[(ANNOTATION_MODE, "enforce")]));
    req.cap_sys_admin = true;
    let r = run_child(&req);
    expect(&r, HOST_PROBES, "EACCES");
    expect(&r, ROOT_PROBES, "ok");
}

fn narrow_scratch() -> Scratch {
    let s = Scratch::new("narrow");
    let root = s.root();
    for d in [
        "etc/sub",
        "usr/lib",
        "usr/share",
        "tmp",
        "bin",
        "sbin",
        "mnt",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in ["etc/conf", "etc/remove-me", "etc/move-me"] {
        fs::write(root.join(f), "conf").unwrap();
    }
    fs::write(root.join("usr/lib/libc"), "lib").unwrap();
    fs::write(root.join("top.txt"), "top").unwrap();
    symlink("usr/lib", root.join("lib")).unwrap();
    install_busybox(&root.join("bin/busybox"));
    install_busybox(&root.join("sbin/busybox"));
    s
}

fn narrow_request(s: &Scratch, annotations: HashMap<String, String>) -> Request {
    Request {
        scenario: "narrow".into(),
        ..fs_request(s, annotations)
    }
}

const NARROW_ALLOWED: &[&str] = &[
    "etc_read",
    "etc_list",
    "usr_lib_read",
    "tmp_create",
    "tmp_mkdir",
    "tmp_remove",
    "top_file_write",
    "root_list",
    "sbin_exec",
];

const NARROW_DENIED: &[&str] = &[
    "etc_write",
    "etc_create",
    "etc_sub_create",
    "etc_remove",
    "etc_rename_out",
    "lib_create_via_symlink",
    "usr_lib_create",
    "usr_create",
    "top_create",
    "bin_exec",
];

#[test]
fn read_only_and_no_exec_paths() {
    if !kernel_has(2) {
        return;
    }
    let s = narrow_scratch();
    let a = ann(&[
        (ANNOTATION_READ_ONLY, "/etc,/lib"),
        (ANNOTATION_NO_EXEC, "/bin"),
    ]);
    let r = run_child(&narrow_request(&s, a));
    expect(&r, NARROW_ALLOWED, "ok");
    expect(&r, NARROW_DENIED, "EACCES");
    // Entries of an ancestor that existed at start keep full rights.
    expect(&r, &["usr_share_create"], "ok");
    expect(&r, HOST_PROBES, "EACCES");
    eprintln!("apply with narrowed paths took {} µs", r["apply_us"]);
    let st = status_of(&r);
    assert_eq!(st["enforced"], true, "{st}");
    assert!(st["rules"].as_u64().unwrap() > 2, "{st}");
}

#[test]
fn read_only_and_no_exec_paths_do_nothing_when_off() {
    if !kernel_has(2) {
        return;
    }
    let s = narrow_scratch();
    let mut a = off();
    a.insert(ANNOTATION_READ_ONLY.into(), "/etc,/lib".into());
    a.insert(ANNOTATION_NO_EXEC.into(), "/bin".into());
    let r = run_child(&narrow_request(&s, a));
    expect(&r, NARROW_ALLOWED, "ok");
    expect(&r, NARROW_DENIED, "ok");
    expect(&r, HOST_PROBES, "ok");
}
