//! The cached rootfs template: busybox-static with its applet symlinks, /etc/passwd and
//! /etc/group, and the probe (compiled once with rustc, statically linked) at `/probe`.
//!
//! The template lives in `CARGO_TARGET_TMPDIR` under a name that hashes everything it is built
//! from, is built once under a file lock (several test binaries may start at once) into a
//! temporary directory and renamed into place, so a reader never sees half a template.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The probe's source, compiled into the template.
const PROBE_SRC: &str = include_str!("../probe/probe.rs");

/// Where busybox comes from (Debian's busybox-static).
pub const BUSYBOX: &str = "/bin/busybox";

/// `/etc/passwd` of the test rootfs.
pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
user:x:1000:1000:user:/home/user:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

/// `/etc/group` of the test rootfs.
pub const GROUP: &str = "root:x:0:\n\
daemon:x:1:\n\
tty:x:5:\n\
users:x:100:user\n\
user:x:1000:\n\
nogroup:x:65534:\n";

fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The template directory (built on first use in this process).
pub fn template() -> &'static Path {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(build_template)
}

/// The compiled probe binary (inside the template).
pub fn probe_binary() -> PathBuf {
    template().join("probe")
}

fn build_template() -> PathBuf {
    let bb = fs::metadata(BUSYBOX).unwrap_or_else(|e| {
        panic!("{BUSYBOX}: {e} (install Debian's busybox-static: ./scripts/test does)")
    });
    let mut h = DefaultHasher::new();
    PROBE_SRC.hash(&mut h);
    PASSWD.hash(&mut h);
    GROUP.hash(&mut h);
    (bb.len(), bb.mtime(), bb.ino()).hash(&mut h);
    let dir = cache_dir();
    fs::create_dir_all(&dir).expect("create CARGO_TARGET_TMPDIR");
    let final_dir = dir.join(format!("sealrun-rootfs-{:016x}", h.finish()));
    if final_dir.join("probe").exists() {
        return final_dir;
    }
    let lock = fs::File::create(dir.join("sealrun-rootfs.lock")).expect("create template lock");
    let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("flock template lock: {e}"));
    if final_dir.join("probe").exists() {
        return final_dir;
    }
    let tmp = dir.join(format!("sealrun-rootfs.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    for d in [
        "bin",
        "dev",
        "etc",
        "proc",
        "sys",
        "tmp",
        "root",
        "home/user",
        "run",
        "var",
        "mnt",
    ] {
        fs::create_dir_all(tmp.join(d)).expect("mkdir in template");
    }
    fs::set_permissions(tmp.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod tmp");
    fs::copy(BUSYBOX, tmp.join("bin/busybox")).expect("copy busybox");
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        std::os::unix::fs::symlink("busybox", tmp.join("bin").join(applet))
            .expect("applet symlink");
    }
    fs::write(tmp.join("etc/passwd"), PASSWD).expect("write passwd");
    fs::write(tmp.join("etc/group"), GROUP).expect("write group");
    compile_probe(&tmp);
    fs::rename(&tmp, &final_dir).expect("rename template into place");
    final_dir
}

fn compile_probe(into: &Path) {
    compile_static(
        "probe",
        PROBE_SRC,
        &into.join("probe.rs.src"),
        &into.join("probe"),
    );
}

/// Compile the single-file program `source` (written to `src_path`, removed after) with
/// rustc into the static, stripped binary `out`; panics with rustc's stderr when it fails.
pub fn compile_static(crate_name: &str, source: &str, src_path: &Path, out: &Path) {
    fs::write(src_path, source).unwrap_or_else(|e| panic!("write {}: {e}", src_path.display()));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let res = Command::new(&rustc)
        .args([
            "--edition",
            "2021",
            "--crate-name",
            crate_name,
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "debuginfo=0",
            "-C",
            "strip=symbols",
            "-o",
        ])
        .arg(out)
        .arg(src_path)
        .output()
        .unwrap_or_else(|e| panic!("run {rustc:?}: {e}"));
    let _ = fs::remove_file(src_path);
    assert!(
        res.status.success(),
        "compiling the {crate_name} program failed:\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
}

/// Copy the template to `dest` (created), preserving modes and symlinks.
pub fn copy_tree(from: &Path, dest: &Path) {
    fs::create_dir_all(dest).unwrap_or_else(|e| panic!("mkdir {}: {e}", dest.display()));
    let meta = fs::metadata(from).expect("stat template dir");
    fs::set_permissions(dest, meta.permissions()).expect("chmod copy");
    for entry in fs::read_dir(from).expect("read template") {
        let entry = entry.expect("template entry");
        let ty = entry.file_type().expect("file type");
        let to = dest.join(entry.file_name());
        if ty.is_symlink() {
            let target = fs::read_link(entry.path()).expect("readlink");
            std::os::unix::fs::symlink(target, &to).expect("symlink");
        } else if ty.is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to).expect("copy file");
        }
    }
}
