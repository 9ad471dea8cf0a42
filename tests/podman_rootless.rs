//! podman, rootless, with sealrun as its runtime: the unprivileged test user (`sealrun-rl`,
//! created by scripts/test) runs, execs, stops and removes a busybox container imported from a
//! local tar. What works on this machine (see issue 12): vfs storage, `--network host`
//! (slirp4netns cannot open /dev/net/tun here), `--pull=never`, and the same 0700
//! `XDG_RUNTIME_DIR` for every call. Everything lives under a private temp dir (HOME, storage,
//! run dir); the rootless podman's pause process (it holds podman's user namespace) is ended by
//! its pid when the test is done.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{is_sealrun, runtime, sealrun_only, skip, which};

const USER: &str = "sealrun-rl";

struct RootlessPodman {
    dir: PathBuf,
    uid: u32,
    gid: u32,
}

impl RootlessPodman {
    fn new() -> Option<RootlessPodman> {
        if !is_sealrun() {
            skip(&sealrun_only("the rootless podman test drives sealrun"));
            return None;
        }
        for tool in ["podman", "setpriv", "newuidmap", "catatonit"] {
            if which(tool).is_none() && !Path::new("/usr/libexec/podman/catatonit").exists() {
                skip(&format!(
                    "{tool} is not installed (scripts/test installs it)"
                ));
                return None;
            }
        }
        let out = Command::new("getent")
            .args(["passwd", USER])
            .output()
            .ok()?;
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        let f: Vec<&str> = line.trim().split(':').collect();
        let (Some(uid), Some(gid)) = (
            f.get(2).and_then(|u| u.parse().ok()),
            f.get(3).and_then(|g| g.parse().ok()),
        ) else {
            skip(&format!("no user {USER} (scripts/test creates it)"));
            return None;
        };
        let dir = std::env::temp_dir().join(format!("sealrun-podman-rl-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["home", "xdg", "rootfs/bin", "bin"] {
            fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        // The runtime, where the user can run it (the build tree may be closed to others).
        fs::copy(runtime(), dir.join("bin/sealrun")).expect("copy runtime");
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox (busybox-static)");
        fs::copy(busybox, dir.join("rootfs/bin/busybox")).expect("copy busybox");
        for applet in ["sh", "id", "cat", "grep", "sleep", "echo"] {
            symlink("busybox", dir.join("rootfs/bin").join(applet)).expect("symlink");
        }
        let tar = Command::new("tar")
            .arg("-C")
            .arg(dir.join("rootfs"))
            .arg("-cf")
            .arg(dir.join("rootfs.tar"))
            .arg(".")
            .status()
            .expect("tar");
        assert!(tar.success());
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(st.success());
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::set_permissions(dir.join("xdg"), fs::Permissions::from_mode(0o700)).expect("chmod");
        Some(RootlessPodman { dir, uid, gid })
    }

    /// `podman ARGS` as the user, with sealrun as the runtime.
    fn podman(&self, args: &[&str]) -> Output {
        let mut c = Command::new(which("setpriv").expect("setpriv"));
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg("podman")
            .args(["--storage-driver", "vfs", "--events-backend", "file"])
            .arg("--runtime")
            .arg(self.dir.join("bin/sealrun"))
            .args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", self.dir.join("home"))
            .env("USER", USER)
            .env("XDG_RUNTIME_DIR", self.dir.join("xdg"))
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null());
        c.output().expect("run podman")
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman {args:?} -> {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RootlessPodman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        // The rootless pause process holds podman's user namespace: end it by its pid.
        let pidfile = self.dir.join("xdg/libpod/tmp/pause.pid");
        if let Some(pid) = fs::read_to_string(&pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn rootless_podman_runs_execs_stops_and_removes_a_container() {
    let Some(p) = RootlessPodman::new() else {
        return;
    };
    let tar = p.dir.join("rootfs.tar");
    p.ok(&["import", "-q", &tar.to_string_lossy(), "localhost/bb:test"]);
    let common = ["--network", "host", "--pull=never"];
    // A foreground run: root in podman's user namespace (the user's uid), seccomp on.
    let mut args = vec!["run", "--rm"];
    args.extend(common);
    args.extend([
        "localhost/bb:test",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; grep '^Seccomp:' /proc/self/status",
    ]);
    let out = p.ok(&args);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"0"), "{out}");
    let first_map: Vec<&str> = lines.get(1).unwrap_or(&"").split_whitespace().collect();
    assert_eq!(first_map, ["0", &p.uid.to_string(), "1"], "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // Detached, exec, stop, rm.
    let mut args = vec!["run", "-d", "--name", "c1"];
    args.extend(common);
    args.extend(["localhost/bb:test", "sleep", "1000"]);
    p.ok(&args);
    let ex = p.ok(&[
        "exec",
        "c1",
        "sh",
        "-c",
        "echo exec-ok; grep '^Seccomp:' /proc/self/status",
    ]);
    assert!(ex.contains("exec-ok") && ex.contains("Seccomp:\t2"), "{ex}");
    let state = p.ok(&["inspect", "--format", "{{.State.Status}}", "c1"]);
    assert_eq!(state.trim(), "running");
    p.ok(&["stop", "-t", "1", "c1"]);
    let state = p.ok(&["inspect", "--format", "{{.State.Status}}", "c1"]);
    assert_eq!(state.trim(), "exited");
    p.ok(&["rm", "c1"]);
    assert_eq!(p.ok(&["ps", "-a", "-q"]).trim(), "");
    // Nothing of sealrun's is left in the user's state root.
    let root = p.dir.join("xdg/sealrun");
    let left: Vec<_> = fs::read_dir(&root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", root.display());
}
