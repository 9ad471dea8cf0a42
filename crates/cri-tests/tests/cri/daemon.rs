//! A private containerd with its CRI plugin on, for one test: config, root, state, sockets, CNI
//! dirs and logs under a temp dir; the busybox image and a pause image (busybox `sleep`) built
//! locally and imported into the `k8s.io` namespace; two runtime handlers, `sealrun` (the runc
//! v2 shim with the sealrun binary as its runc) and `sealrun-native` (containerd-shim-sealrun-v2).
//! Pods get a cgroup parent owned by the test. Dropping it removes pods through the CRI, then
//! containerd, left-over shims and container processes, shim sockets, mounts, cgroups and the
//! temp dir.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::Duration;

use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

use super::host::{hierarchies, mounts_under, proc_pids, remove_cgroup_tree, walk_dirs};
use super::image;
use super::run::{run, Run};

/// containerd's CRI plugin works in this namespace.
pub const NAMESPACE: &str = "k8s.io";
pub const BUSYBOX: &str = "localhost/sealrun-busybox:latest";
pub const PAUSE: &str = "localhost/sealrun-pause:latest";
/// containerd 1.6 puts every shim socket here, whatever its own state dir is.
const SHIM_SOCKET_DIR: &str = "/run/containerd/s";
/// The native shim's state root when containerd passes no runtime options (`ctr run`).
pub const NATIVE_DEFAULT_ROOT: &str = "/run/containerd/sealrun";
/// Shim binaries this harness may have started (ended by pid when left over).
const SHIMS: [&[u8]; 2] = [b"containerd-shim-runc-v2", b"containerd-shim-sealrun-v2"];
const POLL: Duration = Duration::from_millis(20);
const POLL_ROUNDS: u32 = 3000;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The cargo profile directory these tests were built into (`target/<host tuple>/debug`): the sealrun binary
/// and the native shim are there (`cargo build --workspace --bins`, or `cargo test
/// --workspace`, which builds them before running any test).
/// `SEALRUN_BIN_DIR` overrides it (e.g. `target/<host tuple>/release` for the latency figures).
pub fn profile_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SEALRUN_BIN_DIR").filter(|d| !d.is_empty()) {
        return std::fs::canonicalize(&d).unwrap_or_else(|_| PathBuf::from(d));
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap()
}

/// A binary of the workspace, built (see [`profile_dir`]).
pub fn workspace_bin(name: &str) -> PathBuf {
    let p = profile_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace --bins)",
        p.display()
    );
    p
}

pub struct Daemon {
    pub dir: PathBuf,
    pub address: PathBuf,
    /// Absolute cgroup parent given to every pod, e.g. `/sealrun-cri-42-0`.
    pub cgroup_parent: String,
    pub log_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Starts containerd with the CRI plugin and imports the images. Readiness is the caller's
    /// CRI `Version` call (the socket exists before the CRI service serves).
    pub fn start() -> Daemon {
        let tag = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(format!("sealrun-cri-{tag}"));
        if dir.exists() {
            fs::remove_dir_all(&dir).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        let mut d = Daemon {
            address: dir.join("containerd.sock"),
            cgroup_parent: format!("/sealrun-cri-{tag}"),
            log_dir: dir.join("pod-logs"),
            log: dir.join("containerd.log"),
            child: None,
            dir,
        };
        d.spawn();
        d
    }

    fn config(&self) -> String {
        let d = &self.dir;
        let sealrun = workspace_bin("sealrun");
        let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
        format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{grpc}"

[ttrpc]
  address = "{grpc}.ttrpc"

[debug]
  address = "{debug}"
  level = "debug"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{opt}"
  [{cri}]
    sandbox_image = "{PAUSE}"
    # The bounding set here lacks CAP_SYS_RESOURCE: the pause container's oomScoreAdj -998
    # would fail in the runtime.
    restrict_oom_score_adj = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    disable_apparmor = true
    [{cri}.cni]
      bin_dir = "{cni}/bin"
      conf_dir = "{cni}/net.d"
    [{cri}.containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "sealrun"
      [{cri}.containerd.runtimes.sealrun]
        runtime_type = "io.containerd.runc.v2"
        [{cri}.containerd.runtimes.sealrun.options]
          BinaryName = "{sealrun}"
          Root = "{runc_root}"
      # runc itself, for the latency figures' baseline.
      [{cri}.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [{cri}.containerd.runtimes.runc.options]
          BinaryName = "runc"
          Root = "{runc_runc_root}"
      [{cri}.containerd.runtimes.sealrun-native]
        runtime_type = "io.containerd.sealrun.v2"
        [{cri}.containerd.runtimes.sealrun-native.options]
          Root = "{native_root}"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            grpc = self.address.display(),
            debug = d.join("debug.sock").display(),
            opt = d.join("opt").display(),
            cni = d.join("cni").display(),
            sealrun = sealrun.display(),
            runc_root = d.join("runc-root").display(),
            native_root = d.join("native-root").display(),
            runc_runc_root = d.join("runc-runc-root").display(),
        )
    }

    fn spawn(&mut self) {
        for sub in [
            "cni/bin",
            "cni/net.d",
            "runc-root",
            "runc-runc-root",
            "native-root",
            "pod-logs",
        ] {
            fs::create_dir_all(self.dir.join(sub)).unwrap();
        }
        let config_path = self.dir.join("config.toml");
        fs::write(&config_path, self.config()).unwrap();
        self.spawn_daemon();
        self.import(BUSYBOX, &["sh"], "busybox");
        self.import(PAUSE, &["sleep", "2147483647"], "pause");
    }

    fn spawn_daemon(&mut self) {
        let config_path = self.dir.join("config.toml");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        // containerd finds `containerd-shim-sealrun-v2` (runtime_type io.containerd.sealrun.v2)
        // on its PATH: the profile dir first.
        let path = format!(
            "{}:{}",
            profile_dir().display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        );
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn containerd (apt-get install containerd): {e}"));
        self.child = Some(child);
        for _ in 0..POLL_ROUNDS {
            if self.address.exists() {
                break;
            }
            self.check_alive();
            sleep(POLL);
        }
    }

    /// Ends containerd (SIGTERM, as a service manager would) and starts it again on the same
    /// config and state; shims keep running meanwhile.
    pub fn restart(&mut self) {
        self.stop_daemon();
        let _ = fs::remove_file(&self.address);
        self.spawn_daemon();
    }

    fn stop_daemon(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let mut exited = false;
            for _ in 0..500 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    exited = true;
                    break;
                }
                sleep(POLL);
            }
            if !exited {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Panics with containerd's log if it has exited.
    pub fn check_alive(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("containerd exited ({status})\n{}", self.log_tail());
        }
    }

    fn import(&self, reference: &str, cmd: &[&str], name: &str) {
        let archive = image::build_oci_archive_cmd(&self.dir.join("image").join(name), cmd);
        let base = reference.trim_end_matches(":latest");
        let r = self.ctr(&[
            "images",
            "import",
            "--base-name",
            base,
            "--snapshotter",
            "overlayfs",
            archive.to_str().unwrap(),
        ]);
        assert!(r.ok(), "{r}\n{}", self.log_tail());
    }

    /// `ctr` talking to this containerd in the CRI namespace.
    pub fn ctr(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a")
            .arg(&self.address)
            .args(["-n", NAMESPACE, "--timeout", "60s"])
            .args(args);
        run(cmd)
    }

    /// The end of containerd's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(60);
        format!(
            "--- containerd log (last lines of {})\n{}",
            self.log.display(),
            lines[start..].join("\n")
        )
    }

    /// The shim socket containerd 1.6 uses for a task (or a pod's grouped shim) `id`.
    pub fn shim_socket(&self, id: &str) -> PathBuf {
        let key = format!("{}/{NAMESPACE}/{id}", self.address.display());
        let hex: String = Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Path::new(SHIM_SOCKET_DIR).join(hex)
    }

    /// Pids of the shims serving this containerd.
    pub fn shims(&self) -> Vec<i32> {
        let address = self.address.to_string_lossy().into_owned();
        proc_pids()
            .into_iter()
            .filter(|pid| {
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                args.first()
                    .is_some_and(|a| SHIMS.iter().any(|s| a.ends_with(s)))
                    && args
                        .windows(2)
                        .any(|w| w[0] == b"-address" && w[1] == address.as_bytes())
            })
            .collect()
    }

    /// The shims serving this containerd that containerd started (not their children, such as
    /// the native shim's worker): pid and program name.
    pub fn top_shims(&self) -> Vec<(i32, String)> {
        let all = self.shims();
        all.iter()
            .filter(|pid| {
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid = stat
                    .rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<i32>().ok())
                    .unwrap_or(0);
                !all.contains(&ppid)
            })
            .map(|pid| {
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
                let name = Path::new(std::str::from_utf8(argv0).unwrap_or_default())
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (*pid, name)
            })
            .collect()
    }

    /// The test's cgroup parent in every hierarchy that has it.
    pub fn owned_cgroups(&self) -> Vec<PathBuf> {
        hierarchies()
            .into_iter()
            .map(|h| h.join(self.cgroup_parent.trim_start_matches('/')))
            .filter(|p| p.exists())
            .collect()
    }

    /// Everything a pod's life leaves behind while containerd still runs: cgroups below the
    /// test's parent, mounts under the temp dir, shims, runtime state dirs. Empty when clean.
    pub fn leftovers(&self, ids: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for cg in self.owned_cgroups() {
            for d in walk_dirs(&cg).into_iter().skip(1) {
                out.push(format!("cgroup {}", d.display()));
            }
        }
        for h in hierarchies() {
            for id in ids {
                let p = h.join(NAMESPACE).join(id);
                if p.exists() {
                    out.push(format!("cgroup {}", p.display()));
                }
            }
        }
        for m in mounts_under(&self.dir) {
            out.push(format!("mount {}", m.display()));
        }
        for pid in self.shims() {
            out.push(format!("shim process {pid}"));
        }
        for id in ids {
            let s = self.shim_socket(id);
            if s.exists() {
                out.push(format!("shim socket {} (for {id})", s.display()));
            }
        }
        for root in ["runc-root", "runc-runc-root", "native-root"] {
            let root = self.dir.join(root).join(NAMESPACE);
            for e in fs::read_dir(&root).into_iter().flatten().flatten() {
                out.push(format!("runtime state {}", e.path().display()));
            }
        }
        for id in ids {
            let p = Path::new(NATIVE_DEFAULT_ROOT).join(NAMESPACE).join(id);
            if p.exists() {
                out.push(format!("runtime state {}", p.display()));
            }
        }
        out
    }

    /// Waits (bounded) until [`Daemon::leftovers`] is empty; returns what is still there.
    pub fn wait_clean(&self, ids: &[String]) -> Vec<String> {
        let mut left = self.leftovers(ids);
        for _ in 0..POLL_ROUNDS {
            if left.is_empty() {
                break;
            }
            sleep(POLL);
            left = self.leftovers(ids);
        }
        left
    }

    /// Forced clean-up once the CRI has had its chance (see the test's `Cri::drop`).
    pub fn cleanup(&mut self, ids: &[String]) {
        self.stop_daemon();
        // Containers the runtimes still hold: their own `delete --force`.
        let sealrun = profile_dir().join("sealrun");
        for (root, bin) in [
            ("runc-root", sealrun.clone()),
            ("runc-runc-root", PathBuf::from("runc")),
            ("native-root", sealrun.clone()),
        ] {
            let root = self.dir.join(root).join(NAMESPACE);
            for e in fs::read_dir(&root).into_iter().flatten().flatten() {
                let mut cmd = Command::new(&bin);
                cmd.arg("--root")
                    .arg(&root)
                    .args(["delete", "--force"])
                    .arg(e.file_name());
                let _ = run(cmd);
            }
        }
        let default_root = Path::new(NATIVE_DEFAULT_ROOT).join(NAMESPACE);
        for id in ids {
            if default_root.join(id).exists() {
                let mut cmd = Command::new(&sealrun);
                cmd.arg("--root")
                    .arg(&default_root)
                    .args(["delete", "--force", id]);
                let _ = run(cmd);
            }
        }
        for pid in self.shims() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for pid in proc_pids() {
            let root = fs::read_link(format!("/proc/{pid}/root")).unwrap_or_default();
            if root.starts_with(&self.dir) && root != self.dir {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        for cg in self.owned_cgroups() {
            for d in walk_dirs(&cg) {
                for pid in fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .split_whitespace()
                {
                    if let Ok(pid) = pid.parse() {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
            }
        }
        for id in ids {
            let _ = fs::remove_file(self.shim_socket(id));
        }
        let mut mounts = mounts_under(&self.dir);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in &mounts {
            let _ = umount2(m, MntFlags::MNT_DETACH);
        }
        for cg in self.owned_cgroups() {
            remove_cgroup_tree(&cg);
        }
        for h in hierarchies() {
            for id in ids {
                let p = h.join(NAMESPACE).join(id);
                if p.exists() {
                    remove_cgroup_tree(&p);
                }
            }
        }
        if let Some(keep) = std::env::var_os("SEALRUN_TEST_KEEP_LOGS") {
            let keep = PathBuf::from(keep);
            let _ = fs::create_dir_all(&keep);
            let name = self.dir.file_name().unwrap().to_string_lossy().into_owned();
            let _ = fs::copy(&self.log, keep.join(format!("{name}.log")));
        }
        if mounts_under(&self.dir).is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("leaving {} behind: still mounted", self.dir.display());
        }
    }
}
