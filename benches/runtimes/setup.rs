//! Preparing a run: root check, busybox, the runtimes (Debian's runc and crun installed with
//! apt-get when missing), the sealrun release binary, the bundle and configs, the work folder
//! and the bench's own cgroup parent (both removed at the end).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::Res;

pub fn require_root() -> Res<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("must run as root (it creates containers with three runtimes)".into())
    }
}

fn apt_install(package: &str) -> Res<()> {
    eprintln!("bench: installing {package} with apt-get");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if install() {
        return Ok(());
    }
    let _ = Command::new("apt-get")
        .args(["update", "-qq"])
        .stdout(Stdio::null())
        .status();
    if install() {
        Ok(())
    } else {
        Err(format!("apt-get install {package} failed"))
    }
}

/// Find an executable on PATH (plus the sbin folders a non-login root shell may miss).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p));
    found
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A peer runtime: found on PATH, else installed from the distribution.
pub fn peer(name: &str, package: &str) -> Res<PathBuf> {
    if let Some(p) = which(name) {
        return Ok(p);
    }
    apt_install(package)?;
    which(name).ok_or_else(|| format!("{package} installed but no {name} on PATH"))
}

/// A statically linked busybox for the rootfs (Debian's busybox-static).
pub fn busybox() -> Res<PathBuf> {
    let p = PathBuf::from("/bin/busybox");
    if !(p.exists() && crate::machine::is_static(&p)) {
        apt_install("busybox-static")?;
    }
    if p.exists() && crate::machine::is_static(&p) {
        Ok(p)
    } else {
        Err("/bin/busybox is not a static binary (install busybox-static)".into())
    }
}

/// The sealrun binary: `SEALRUN_BIN`, else this checkout's release build (cargo builds it for
/// `cargo bench`, in the release profile), else `cargo build --release`.
pub fn sealrun_bin() -> Res<PathBuf> {
    if let Ok(p) = std::env::var("SEALRUN_BIN") {
        return Ok(PathBuf::from(p));
    }
    let built = PathBuf::from(env!("CARGO_BIN_EXE_sealrun"));
    if built.exists() {
        return Ok(built);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--bin",
            "sealrun",
            "--features",
            "unsafe-test-switches",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .is_ok_and(|s| s.success());
    if ok && built.exists() {
        Ok(built)
    } else {
        Err(format!(
            "no sealrun binary at {} and cargo build --release failed",
            built.display()
        ))
    }
}

/// The bench's temporary folder and cgroup parent.
pub struct Work {
    dir: PathBuf,
    cgroup_parent: String,
}

impl Work {
    pub fn new() -> Res<Work> {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("sealrun-bench-{pid}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Work {
            dir,
            cgroup_parent: format!("/sealrun-bench-{pid}"),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn config(&self, name: &str) -> PathBuf {
        self.dir.join(format!("config-{name}.json"))
    }

    /// Where each helper mounts its tmpfs: the runtimes' state roots and pid files.
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    pub fn state_root(&self, slug: &str) -> PathBuf {
        self.run_dir().join(slug)
    }

    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = remove_cgroups(&self.cgroup_parent);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Remove the bench's cgroup parent in every hierarchy (deepest first; processes that are
/// somehow still inside are killed first). Returns how many cgroups were found below it (what
/// a runtime left behind).
pub fn remove_cgroups(parent: &str) -> usize {
    let rel = parent.trim_start_matches('/');
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    let mut below = 0;
    for root in roots {
        let top = root.join(rel);
        if top.is_dir() {
            below += remove_tree(&top);
        }
    }
    below
}

/// Removes `dir` and the cgroups below it; returns how many there were below it.
fn remove_tree(dir: &Path) -> usize {
    let mut below = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                below += 1 + remove_tree(&e.path());
            }
        }
    }
    if std::fs::remove_dir(dir).is_err() {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        if let Err(e) = std::fs::remove_dir(dir) {
            eprintln!("bench: cannot remove cgroup {}: {e}", dir.display());
        }
    }
    below
}

/// The rootfs: busybox-static with its applet symlinks, and the mount points.
pub fn write_rootfs(root: &Path, busybox: &Path) -> Res<()> {
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        let p = root.join(d);
        std::fs::create_dir_all(&p).map_err(|e| err(&p, e))?;
    }
    let bin = root.join("bin/busybox");
    std::fs::copy(busybox, &bin).map_err(|e| err(&bin, e))?;
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| format!("busybox --list: {e}"))?;
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            let link = root.join("bin").join(applet);
            std::os::unix::fs::symlink("busybox", &link).map_err(|e| err(&link, e))?;
        }
    }
    let etc = root.join("etc");
    std::fs::write(etc.join("passwd"), "root:x:0:0:root:/:/bin/sh\n").map_err(|e| err(&etc, e))?;
    std::fs::write(etc.join("group"), "root:x:0:\n").map_err(|e| err(&etc, e))?;
    Ok(())
}

/// The configs every runtime runs: sealrun's hardened default (`sealrun spec`: read-only root,
/// no_new_privs, three capabilities, masked paths, the default seccomp profile, pid, network,
/// ipc, uts, mount and cgroup namespaces), with `ociVersion` 1.0.2 (crun 1.8 refuses others),
/// no terminal, and the process `/bin/true` (or `sleep` for exec). The helper adds the rootfs
/// and a unique cgroupsPath per container.
pub fn write_configs(work: &Work) -> Res<()> {
    let base = sealrun::spec::default_config(false).map_err(|e| format!("default config: {e}"))?;
    let with = |args: Value, seccomp: bool| {
        let mut c = base.clone();
        c["ociVersion"] = json!("1.0.2");
        c["hostname"] = json!("bench");
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = args;
        if !seccomp {
            if let Some(linux) = c["linux"].as_object_mut() {
                linux.remove("seccomp");
            }
        }
        c
    };
    for (name, cfg) in [
        ("true", with(json!(["/bin/true"]), true)),
        ("true-noseccomp", with(json!(["/bin/true"]), false)),
        ("sleep", with(json!(["/bin/sleep", "600"]), true)),
    ] {
        let p = work.config(name);
        let text = serde_json::to_string_pretty(&cfg).map_err(|e| e.to_string())?;
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}
