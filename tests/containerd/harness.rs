//! A private containerd for one test: config, root, state, sockets and FIFOs under a temp dir,
//! the busybox image imported, containers run through the runc v2 shim with the runtime under
//! test as its runc binary, each in a cgroup below a parent owned by the test. Dropping it
//! removes containers, containerd, left-over shims and container processes, shim sockets,
//! mounts, cgroups and the temp dir.

use std::fs;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::Duration;

use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

use super::grpc;
use super::host::{hierarchies, mounts_under, proc_pids, remove_cgroup_tree, walk_dirs};
use super::image;
use super::run::shell_line;
pub use super::run::{run, Run};

/// Name the test image gets in containerd.
pub const IMAGE_BASE: &str = "localhost/sealrun-busybox";
/// containerd 1.6 puts every shim socket here, whatever its own state dir is.
const SHIM_SOCKET_DIR: &str = "/run/containerd/s";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Bounds for polling loops: these bound a wait for a state, they assert nothing about speed.
const POLL: Duration = Duration::from_millis(20);
const POLL_ROUNDS: u32 = 3000;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The runtime under test: `SEALRUN_TEST_RUNTIME` (`runc`, a name on PATH or a path), or the
/// sealrun binary built with these tests.
pub fn runtime() -> PathBuf {
    match std::env::var("SEALRUN_TEST_RUNTIME") {
        Ok(v) if !v.is_empty() && v != "sealrun" => {
            if v.contains('/') {
                return PathBuf::from(v);
            }
            let path = std::env::var("PATH").unwrap_or_default();
            let found = path
                .split(':')
                .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin"])
                .map(|dir| Path::new(dir).join(&v))
                .find(|p| p.is_file());
            found.unwrap_or_else(|| panic!("SEALRUN_TEST_RUNTIME={v}: not found on PATH"))
        }
        _ => PathBuf::from(env!("CARGO_BIN_EXE_sealrun")),
    }
}

/// True when the runtime under test is the sealrun built with these tests.
pub fn runtime_is_sealrun() -> bool {
    runtime() == Path::new(env!("CARGO_BIN_EXE_sealrun"))
}

/// Runs `cmd` with a pseudo-terminal as its controlling terminal and stdio (through util-linux
/// `script`), as a user at a terminal would; output is what the terminal showed.
pub fn run_in_pty(cmd: Command) -> Run {
    let line = shell_line(&cmd);
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-c", &line, "/dev/null"]);
    let mut r = run(script);
    r.what = format!("(in a pty) {line}");
    r
}

pub struct Containerd {
    pub dir: PathBuf,
    pub namespace: String,
    pub address: PathBuf,
    /// The shim's `--root` for the runtime is this joined with the namespace.
    pub runc_root: PathBuf,
    pub fifo_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Absolute cgroup parent of every container of this instance, e.g. `/sealrun-ctd-42-0`.
    pub cgroup_parent: String,
    pub runtime: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    ids: Mutex<Vec<String>>,
}

impl Containerd {
    /// Starts containerd on private paths and imports the busybox image.
    pub fn start() -> Containerd {
        let tag = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(format!("sealrun-ctd-{tag}"));
        if dir.exists() {
            fs::remove_dir_all(&dir).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        let mut ctd = Containerd {
            namespace: format!("sealrun-ctdns-{tag}"),
            address: dir.join("containerd.sock"),
            runc_root: dir.join("runc-root"),
            fifo_dir: dir.join("fifo"),
            state_dir: dir.join("state"),
            cgroup_parent: format!("/sealrun-ctd-{tag}"),
            runtime: runtime(),
            log: dir.join("containerd.log"),
            child: None,
            ids: Mutex::new(Vec::new()),
            dir,
        };
        ctd.spawn_daemon();
        ctd.import_image();
        ctd
    }

    fn spawn_daemon(&mut self) {
        let d = &self.dir;
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
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
"#,
            root = d.join("root").display(),
            state = self.state_dir.display(),
            grpc = self.address.display(),
            debug = d.join("debug.sock").display(),
            opt = d.join("opt").display(),
        );
        let config_path = d.join("config.toml");
        fs::write(&config_path, config).unwrap();
        fs::create_dir_all(&self.fifo_dir).unwrap();
        fs::create_dir_all(&self.runc_root).unwrap();
        let log = fs::File::create(&self.log).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn containerd (apt-get install containerd): {e}"));
        self.child = Some(child);
        for _ in 0..POLL_ROUNDS {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "containerd exited ({status}) before serving\n{}",
                    self.log_tail()
                );
            }
            if UnixStream::connect(&self.address).is_ok() {
                return;
            }
            sleep(POLL);
        }
        panic!(
            "containerd never served {}\n{}",
            self.address.display(),
            self.log_tail()
        );
    }

    fn import_image(&self) {
        let archive = image::build_oci_archive(&self.dir.join("image"));
        let mut cmd = self.ctr();
        cmd.args([
            "images",
            "import",
            "--base-name",
            IMAGE_BASE,
            "--snapshotter",
            "overlayfs",
        ])
        .arg(archive);
        self.expect_ok(cmd);
    }

    /// The image reference to run.
    pub fn image(&self) -> String {
        format!("{IMAGE_BASE}:{}", image::TAG)
    }

    /// `ctr` talking to this containerd, in this instance's namespace.
    pub fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a")
            .arg(&self.address)
            .args(["-n", &self.namespace]);
        cmd
    }

    /// Runs `cmd`, panicking with its output and containerd's log when it fails.
    pub fn expect_ok(&self, cmd: Command) -> Run {
        let r = run(cmd);
        assert!(r.ok(), "{r}\n{}", self.log_tail());
        r
    }

    /// The cgroup path given to a container (absolute: below the test's parent).
    pub fn cgroup_path(&self, id: &str) -> String {
        format!("{}/{id}", self.cgroup_parent)
    }

    /// `ctr run` with the runtime under test and every path private: `--rm` unless `detach`.
    pub fn ctr_run(&self, id: &str, detach: bool, opts: &[&str], args: &[&str]) -> Command {
        let cgroup = ["--cgroup", &self.cgroup_path(id)];
        self.ctr_run_with(id, detach, &[&cgroup[..], opts].concat(), args)
    }

    /// `ctr_run` without `--cgroup`: containerd's default cgroups path, `/<namespace>/<id>`.
    pub fn ctr_run_with(&self, id: &str, detach: bool, opts: &[&str], args: &[&str]) -> Command {
        self.ids.lock().unwrap().push(id.to_string());
        let mut cmd = self.ctr();
        cmd.arg("run")
            .arg(if detach { "--detach" } else { "--rm" })
            .args(["--runtime", "io.containerd.runc.v2", "--runc-binary"])
            .arg(&self.runtime)
            .arg("--runc-root")
            .arg(&self.runc_root)
            .arg("--fifo-dir")
            .arg(&self.fifo_dir)
            .args(["--snapshotter", "overlayfs"])
            .args(opts)
            .arg(self.image())
            .arg(id)
            .args(args);
        cmd
    }

    /// Starts a detached container running `args` and waits until its task is RUNNING.
    pub fn run_detached(&self, id: &str, opts: &[&str], args: &[&str]) -> u32 {
        self.expect_ok(self.ctr_run(id, true, opts, args));
        self.wait_status(id, "RUNNING")
    }

    /// `run_detached` without `--cgroup`.
    pub fn run_detached_with(&self, id: &str, opts: &[&str], args: &[&str]) -> u32 {
        self.expect_ok(self.ctr_run_with(id, true, opts, args));
        self.wait_status(id, "RUNNING")
    }

    /// `ctr task exec` of `args` in `id`.
    pub fn ctr_exec(&self, id: &str, exec_id: &str, opts: &[&str], args: &[&str]) -> Command {
        let mut cmd = self.ctr();
        cmd.args(["task", "exec", "--exec-id", exec_id, "--fifo-dir"])
            .arg(&self.fifo_dir)
            .args(opts)
            .arg(id)
            .args(args);
        cmd
    }

    /// `ctr task <verb> <args…>`, expected to succeed.
    pub fn task(&self, args: &[&str]) -> Run {
        let mut cmd = self.ctr();
        cmd.arg("task").args(args);
        self.expect_ok(cmd)
    }

    /// (pid, status) of `id`'s task as `ctr task ls` shows it.
    pub fn task_status(&self, id: &str) -> Option<(u32, String)> {
        let r = self.task(&["ls"]);
        r.stdout.lines().skip(1).find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() == 3 && f[0] == id).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    /// Waits until `id`'s task reports `status`; returns its pid.
    pub fn wait_status(&self, id: &str, status: &str) -> u32 {
        let mut last = None;
        for _ in 0..POLL_ROUNDS {
            last = self.task_status(id);
            if let Some((pid, s)) = &last {
                if s == status {
                    return *pid;
                }
            }
            sleep(POLL);
        }
        panic!(
            "task {id} never became {status}; last seen {last:?}\n{}",
            self.log_tail()
        );
    }

    /// The runtime under test pointed at the root the shim gives it.
    pub fn runtime_cmd(&self) -> Command {
        let mut cmd = Command::new(&self.runtime);
        cmd.arg("--root").arg(self.runc_root.join(&self.namespace));
        cmd
    }

    /// The bundle the shim creates for `id` (holds the runtime's log.json).
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.state_dir
            .join("io.containerd.runtime.v2.task")
            .join(&self.namespace)
            .join(id)
    }

    /// A cgroup file of container `id` as the host sees it: the v1 controller's hierarchy when
    /// it is mounted, else the unified hierarchy.
    pub fn cgroup_file(
        &self,
        id: &str,
        v1_controller: &str,
        v1_file: &str,
        v2_file: &str,
    ) -> PathBuf {
        let v1 = Path::new(CGROUP_ROOT).join(v1_controller);
        let rel = self.cgroup_path(id);
        let rel = rel.trim_start_matches('/');
        if v1.join("tasks").exists() {
            v1.join(rel).join(v1_file)
        } else {
            Path::new(CGROUP_ROOT).join(rel).join(v2_file)
        }
    }

    /// Every directory `id`'s cgroup has on the host (one per mounted hierarchy).
    pub fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        let rel = self.cgroup_path(id);
        hierarchies()
            .into_iter()
            .map(|h| h.join(rel.trim_start_matches('/')))
            .filter(|p| p.exists())
            .collect()
    }

    /// Subscribes to containerd's events (`ctr events`) and waits until the subscription is
    /// live (an event this call provokes itself has arrived).
    pub fn events(&self) -> Events {
        let mut cmd = self.ctr();
        cmd.arg("events")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let events = Events { child, seen };
        for i in 0..POLL_ROUNDS {
            let mut label = self.ctr();
            label.args([
                "namespaces",
                "label",
                &self.namespace,
                &format!("probe={i}"),
            ]);
            self.expect_ok(label);
            if events.text().contains("/namespaces/update") {
                return events;
            }
            sleep(POLL);
        }
        panic!("`ctr events` never saw an event\n{}", self.log_tail());
    }

    /// containerd's `Tasks.Update` with the given runtime-spec LinuxResources JSON.
    pub fn update_resources(&self, id: &str, resources_json: &str) -> Result<(), String> {
        grpc::update_task(&self.address, &self.namespace, id, resources_json)
    }

    /// The end of containerd's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(40);
        format!(
            "--- containerd log (last lines of {})\n{}",
            self.log.display(),
            lines[start..].join("\n")
        )
    }

    fn shim_socket(&self, id: &str) -> PathBuf {
        let key = format!("{}/{}/{id}", self.address.display(), self.namespace);
        let hex: String = Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Path::new(SHIM_SOCKET_DIR).join(hex)
    }

    fn quiet_ctr(&self, args: &[&str]) -> Run {
        let mut cmd = self.ctr();
        cmd.args(["--timeout", "30s"]).args(args);
        run(cmd)
    }

    fn cleanup(&mut self) {
        // 1. Through containerd, as a user would.
        if self.child.is_some() {
            let listed = self.quiet_ctr(&["containers", "ls", "-q"]);
            for id in listed.stdout.split_whitespace() {
                self.quiet_ctr(&["task", "kill", "--all", "--signal", "SIGKILL", id]);
                self.quiet_ctr(&["task", "delete", "--force", id]);
                self.quiet_ctr(&["containers", "delete", id]);
            }
        }
        // 2. containerd itself.
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
        // 3. Whatever containerd left running: shims serving this instance, and processes
        //    whose root is in this instance's state dir or that sit in its cgroups.
        let address = self.address.to_string_lossy().into_owned();
        for pid in proc_pids() {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_our_shim = args
                .first()
                .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"))
                && args
                    .windows(2)
                    .any(|w| w[0] == b"-address" && w[1] == address.as_bytes());
            let root = fs::read_link(format!("/proc/{pid}/root")).unwrap_or_default();
            if is_our_shim || (root.starts_with(&self.dir) && root != self.dir) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        for dir in self.owned_cgroups() {
            for procs in walk_dirs(&dir) {
                for pid in fs::read_to_string(procs.join("cgroup.procs"))
                    .unwrap_or_default()
                    .split_whitespace()
                {
                    if let Ok(pid) = pid.parse() {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
            }
        }
        // 4. Shim sockets containerd 1.6 keeps outside its state dir.
        for id in self.ids.lock().unwrap().iter() {
            let _ = fs::remove_file(self.shim_socket(id));
        }
        // 5. Mounts under the temp dir (container rootfs), deepest first.
        let mut mounts = mounts_under(&self.dir);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in &mounts {
            let _ = umount2(m, MntFlags::MNT_DETACH);
        }
        // 6. Cgroups: the test's parent and containerd's per-namespace parent, in every
        //    hierarchy (v1 controllers, the named systemd one, the unified one).
        for dir in self.owned_cgroups() {
            remove_cgroup_tree(&dir);
        }
        // 7. The temp dir, unless something is still mounted in it; containerd's log is kept
        //    on request (SEALRUN_TEST_KEEP_LOGS=DIR) to compare runtimes.
        if let Some(keep) = std::env::var_os("SEALRUN_TEST_KEEP_LOGS") {
            let keep = PathBuf::from(keep);
            let _ = fs::create_dir_all(&keep);
            let _ = fs::copy(&self.log, keep.join(format!("{}.log", self.namespace)));
        }
        if mounts_under(&self.dir).is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("leaving {} behind: still mounted", self.dir.display());
        }
    }

    fn owned_cgroups(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for h in hierarchies() {
            for name in [
                self.cgroup_parent.trim_start_matches('/'),
                self.namespace.as_str(),
            ] {
                let p = h.join(name);
                if p.exists() {
                    out.push(p);
                }
            }
        }
        out
    }
}

/// A running `ctr events`; stopped when dropped.
pub struct Events {
    child: Child,
    seen: Arc<Mutex<String>>,
}

impl Events {
    /// Everything printed so far.
    pub fn text(&self) -> String {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.cleanup();
    }
}
