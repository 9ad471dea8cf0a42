//! A private podman for one test: storage, run and temp dirs, configuration (containers.conf,
//! storage.conf, registries.conf, policy.json), events log and locks under a temp dir; the
//! runtime under test given with `--runtime`; every container in a cgroup below a parent owned by
//! the test. Dropping it removes containers, conmon and container processes left behind, the
//! runtime's state for this test's containers, mounts under the temp dir, the test's cgroups
//! (and any `libpod_parent` the run created) and the temp dir.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::Duration;

use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use super::run::{run, Run};
use super::run::{run_with_input, shell_line};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Polling bounds: they bound a wait for a state and assert nothing about speed.
const POLL: Duration = Duration::from_millis(25);
const POLL_ROUNDS: u32 = 2400;
/// A PATH for podman, conmon and the helpers, independent of the caller's.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// podman 4.3 (as root) creates netavark's run directory here at every start, whatever its
/// configuration says; the last test's podman to go removes what the tests created.
const HOST_DIRS: [&str; 2] = ["/run/containers/networks", "/run/containers"];
/// Live podmans, and which of `HOST_DIRS` did not exist before the first of them.
static LIVE: Mutex<(usize, Vec<&str>)> = Mutex::new((0, Vec::new()));

/// The runtime under test: `SEALRUN_TEST_RUNTIME` (`runc`, a name on PATH or a path), or the
/// sealrun binary built with these tests.
pub fn runtime() -> PathBuf {
    match std::env::var("SEALRUN_TEST_RUNTIME") {
        Ok(v) if !v.is_empty() && v != "sealrun" => {
            if v.contains('/') {
                return PathBuf::from(v);
            }
            std::env::var("PATH")
                .unwrap_or_default()
                .split(':')
                .chain(PATH.split(':'))
                .map(|dir| Path::new(dir).join(&v))
                .find(|p| p.is_file())
                .unwrap_or_else(|| panic!("SEALRUN_TEST_RUNTIME={v}: not found on PATH"))
        }
        _ => PathBuf::from(env!("CARGO_BIN_EXE_sealrun")),
    }
}

/// True when the runtime under test is the sealrun built with these tests.
pub fn runtime_is_sealrun() -> bool {
    runtime() == Path::new(env!("CARGO_BIN_EXE_sealrun"))
}

/// The runtime's name as podman sees it (the file name of `--runtime`).
pub fn runtime_name() -> String {
    runtime()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Where the runtime keeps state when podman gives it no `--root` (runc: /run/runc, sealrun:
/// /run/sealrun). podman 4.3 drops `--runtime-flag`s from the exit command that cleans up after
/// a container ends by itself, so the tests leave the runtime on its default root, as users do.
pub fn runtime_state_dir(id: &str) -> PathBuf {
    Path::new("/run").join(runtime_name()).join(id)
}

/// Runs `cmd` with a pseudo-terminal as its controlling terminal and stdio (util-linux
/// `script`), as a user at a terminal would; the output is what the terminal showed.
pub fn run_in_pty(cmd: Command) -> Run {
    run_in_pty_typing(cmd, "", None)
}

/// Like [`run_in_pty`], with `setup` (shell commands, e.g. `stty cols 100`) run on the terminal
/// first and `input` typed at it.
pub fn run_in_pty_typing(cmd: Command, setup: &str, input: Option<&[u8]>) -> Run {
    let mut line = shell_line(&cmd);
    if !setup.is_empty() {
        line = format!("{setup}; exec {line}");
    }
    let mut script = Command::new("script");
    script.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            script.env(k, v);
        }
    }
    script.args(["-q", "-e", "-c", &line, "/dev/null"]);
    let mut r = run_with_input(script, input);
    r.what = format!("(in a pty) {line}");
    r
}

/// Polls `f` until it returns `Some`; panics naming `what` if that never happens.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..POLL_ROUNDS {
        if let Some(v) = f() {
            return v;
        }
        sleep(POLL);
    }
    panic!("gave up waiting for {what}");
}

/// Options of a test's podman.
#[derive(Default, Clone, Copy)]
pub struct Options {
    /// List the runtime in `runtime_supports_json`: podman then passes it
    /// `--log-format=json --log <file>` and reads errors from that file, as it does for runc
    /// and crun. Without it, errors come from the runtime's stderr.
    pub json_log: bool,
}

/// A podman of its own for one test.
pub struct Podman {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    /// Absolute cgroup parent of every container of this test, e.g. `/sealrun-podman-42-0`.
    pub cgroup_parent: String,
    pub runtime: PathBuf,
    /// Extra global flags (e.g. `--runtime-flag`), put before the subcommand.
    global: Mutex<Vec<String>>,
    /// Containers this test created (full ids), for the cleanup of the runtime's state.
    ids: Mutex<BTreeSet<String>>,
    /// Entries of /sys/fs/cgroup and the `libpod_parent` dirs that existed before the test.
    cgroup_before: BTreeSet<PathBuf>,
}

impl Podman {
    /// A podman with default options (errors from the runtime's stderr).
    pub fn new(name: &str) -> Podman {
        Podman::with(name, Options::default())
    }

    /// A podman on private paths, with a busybox root filesystem at `self.rootfs`.
    pub fn with(name: &str, opts: Options) -> Podman {
        {
            let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
            if live.0 == 0 {
                live.1 = HOST_DIRS
                    .into_iter()
                    .filter(|d| !Path::new(d).exists())
                    .collect();
            }
            live.0 += 1;
        }
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("sealrun-podman-{name}-{pid}-{n}"));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["home/.config/containers", "tmp", "imgtmp", "net"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let p = Podman {
            rootfs: dir.join("rootfs"),
            cgroup_parent: format!("/sealrun-podman-{name}-{pid}-{n}"),
            runtime: runtime(),
            global: Mutex::new(Vec::new()),
            ids: Mutex::new(BTreeSet::new()),
            cgroup_before: cgroup_snapshot(),
            dir,
        };
        p.write_config(opts);
        build_rootfs(&p.rootfs);
        p
    }

    fn write_config(&self, opts: Options) {
        let d = self.dir.display();
        let json = if opts.json_log {
            format!("{:?}", runtime_name())
        } else {
            String::new()
        };
        // lock_type file: podman's default shm lock segment (/dev/shm/libpod_lock) is shared by
        // every podman on the host. Paths podman would otherwise put under /etc, /run or /var
        // are all moved here.
        // default_ulimits: podman's defaults exceed this host's hard limits, and the infra
        // container of a pod takes no --ulimit.
        let conf = format!(
            r#"[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
lock_type = "file"
tmp_dir = "{d}/tmp"
volume_path = "{d}/volumes"
image_copy_tmp_dir = "{d}/imgtmp"
runtime_supports_json = [{json}]
[network]
network_backend = "netavark"
network_config_dir = "{d}/net"
"#
        );
        fs::write(self.dir.join("containers.conf"), conf).unwrap();
        fs::write(
            self.dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{d}/runroot\"\ngraphroot = \"{d}/root\"\n"
            ),
        )
        .unwrap();
        fs::write(
            self.dir.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();
        fs::write(
            self.dir.join("home/.config/containers/policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
    }

    /// Adds a global flag for every later podman command.
    pub fn add_global(&self, flag: &str) {
        self.global.lock().unwrap().push(flag.to_string());
    }

    /// `podman <global flags> <args>` with a private environment.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let d = &self.dir;
        let mut cmd = Command::new("podman");
        cmd.env_clear()
            .env("PATH", PATH)
            .env("HOME", d.join("home"))
            .env("XDG_CONFIG_HOME", d.join("home/.config"))
            .env("XDG_DATA_HOME", d.join("home/.local/share"))
            .env("TMPDIR", d.join("imgtmp"))
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--runtime")
            .arg(&self.runtime)
            .args(["--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .args(["--storage-driver", "vfs"])
            .args(self.global.lock().unwrap().iter())
            .args(args);
        cmd
    }

    /// Runs podman with `args`.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        let r = run(self.cmd(args));
        self.note_ids(&r);
        r
    }

    /// Runs podman with `args` and `input` on its stdin.
    pub fn run_input<S: AsRef<OsStr>>(&self, args: &[S], input: &[u8]) -> Run {
        run_with_input(self.cmd(args), Some(input))
    }

    /// Runs podman with `args` under a pseudo-terminal.
    pub fn run_pty<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        run_in_pty(self.cmd(args))
    }

    /// Runs podman with `args` under a pseudo-terminal set up by `setup`, typing `input`.
    pub fn run_pty_typing<S: AsRef<OsStr>>(&self, args: &[S], setup: &str, input: &[u8]) -> Run {
        run_in_pty_typing(self.cmd(args), setup, Some(input))
    }

    /// Runs podman with `args`; panics unless it succeeds.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        let r = self.run(args);
        assert!(r.ok(), "{r}");
        r
    }

    /// The flags every container of this test is created with: no network, the test's cgroup
    /// parent, and rlimits within this host's hard limits (podman's defaults exceed them).
    pub fn container_flags(&self) -> Vec<String> {
        [
            "--network",
            "none",
            "--cgroup-parent",
            &self.cgroup_parent,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ]
        .map(String::from)
        .to_vec()
    }

    /// `podman <verb> <container flags> [extra] --rootfs <rootfs> <command>` (verb: run or
    /// create).
    pub fn with_rootfs(&self, verb: &str, extra: &[&str], command: &[&str]) -> Vec<String> {
        let mut args = vec![verb.to_string()];
        args.extend(self.container_flags());
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push("--rootfs".into());
        args.push(self.rootfs.display().to_string());
        args.extend(command.iter().map(|s| s.to_string()));
        args
    }

    /// `podman run -d --name <name> … --rootfs <rootfs> <command>`; returns the container id.
    pub fn run_detached(&self, name: &str, extra: &[&str], command: &[&str]) -> String {
        let mut flags = vec!["-d", "--name", name];
        flags.extend_from_slice(extra);
        let r = self.ok(&self.with_rootfs("run", &flags, command));
        let id = r.out();
        assert_eq!(id.len(), 64, "not a container id: {r}");
        assert_eq!(r.stderr.trim(), "", "{r}");
        self.ids.lock().unwrap().insert(id.clone());
        id
    }

    /// Remembers full container ids printed by `run -d`, `create` or `ps --no-trunc`.
    fn note_ids(&self, r: &Run) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        for word in r.stdout.split_whitespace() {
            if word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit()) {
                ids.insert(word.to_string());
            }
        }
    }

    /// `podman inspect --format <format> <container>`.
    pub fn inspect(&self, container: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, container]).out()
    }

    /// Waits until podman reports `status` for `container`.
    pub fn wait_status(&self, container: &str, status: &str) {
        wait_for(&format!("{container} to be {status}"), || {
            (self.inspect(container, "{{.State.Status}}") == status).then_some(())
        });
    }

    /// Runs podman in a private mount namespace with a tmpfs over /var/lib: containers/image
    /// writes a blob-info cache to /var/lib/containers/cache for root whatever the storage paths
    /// are (`podman import`, and `pod create`, which builds the pause image), and the host must
    /// not keep it.
    pub fn run_without_host_cache<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        let podman = self.cmd(args);
        let mut cmd = Command::new("unshare");
        cmd.env_clear();
        for (k, v) in podman.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs -o mode=0755 sealrun-test /var/lib && exec \"$@\"")
            .arg("sh")
            .arg(podman.get_program())
            .args(podman.get_args());
        let r = run(cmd);
        self.note_ids(&r);
        r
    }

    /// Builds an image from the busybox root filesystem with `podman import`; returns its name.
    pub fn import_image(&self, name: &str) -> String {
        let tar = self.dir.join("rootfs.tar");
        let r = run({
            let mut c = Command::new("tar");
            c.arg("-C").arg(&self.rootfs).arg("-cf").arg(&tar).arg(".");
            c
        });
        assert!(r.ok(), "{r}");
        let image = format!("localhost/{name}:test");
        let r = self.run_without_host_cache(&[
            OsStr::new("import"),
            OsStr::new("-q"),
            tar.as_os_str(),
            OsStr::new(&image),
        ]);
        assert!(r.ok(), "{r}");
        image
    }

    /// Creates the mount points podman's config names in the rootfs, for containers whose root
    /// (in a user namespace) cannot create them in the host-owned rootfs.
    pub fn make_mount_points(&self, dirs: &[&str]) {
        for d in ["proc", "sys", "dev", "run"].iter().chain(dirs) {
            fs::create_dir_all(self.rootfs.join(d)).unwrap();
        }
        for f in [
            "etc/hosts",
            "etc/hostname",
            "etc/resolv.conf",
            "run/.containerenv",
        ] {
            fs::write(self.rootfs.join(f), "").unwrap();
        }
    }

    /// The container's cgroup directories that exist, in every hierarchy of this host (below
    /// the test's parent, or below a pod's cgroup in it).
    pub fn container_cgroups(&self, id: &str) -> Vec<PathBuf> {
        let name = format!("libpod-{id}");
        let parent = self.cgroup_parent.trim_start_matches('/');
        let mut found = Vec::new();
        for h in cgroup_entries() {
            let top = h.join(parent);
            let mut dirs = vec![top.clone()];
            if let Ok(rd) = fs::read_dir(&top) {
                dirs.extend(
                    rd.flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
            found.extend(
                dirs.into_iter()
                    .map(|d| d.join(&name))
                    .filter(|p| p.is_dir()),
            );
        }
        found
    }

    /// Pids of processes in the test's cgroup parent (any hierarchy), conmon's included.
    pub fn processes(&self) -> Vec<i32> {
        let needle = format!("{}/", self.cgroup_parent);
        pids_where(|pid| {
            fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .map(|c| c.lines().any(|l| l.contains(&needle)))
                .unwrap_or(false)
        })
    }

    /// conmon processes of this test (their command line names the temp dir).
    fn conmons(&self) -> Vec<i32> {
        let dir = self.dir.display().to_string();
        pids_where(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "conmon")
                && fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&dir))
        })
    }

    /// Mount points under the temp dir (innermost last).
    pub fn mounts(&self) -> Vec<PathBuf> {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        info.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(unescape_mountinfo)
            .filter(|p| p.starts_with(&self.dir))
            .collect()
    }

    fn cleanup(&mut self) {
        // Full ids of every container podman still knows, for the runtime-state cleanup.
        let _ = self.run(&["ps", "-aq", "--no-trunc"]);
        let _ = run(self.cmd(&["unpause", "--all"]));
        let _ = run(self.cmd(&["pod", "rm", "-af", "-t", "0"]));
        let _ = run(self.cmd(&["rm", "-af", "-t", "0"]));
        for pid in self.conmons().into_iter().chain(self.processes()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for id in self.ids.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if runtime_state_dir(id).exists() {
                let mut c = Command::new(&self.runtime);
                c.args(["delete", "--force", id]);
                let _ = run(c);
            }
        }
        for m in self.mounts().iter().rev() {
            let _ = umount2(m, MntFlags::MNT_DETACH);
        }
        self.remove_cgroups();
        let _ = fs::remove_dir_all(&self.dir);
    }

    fn remove_cgroups(&self) {
        let parent = self.cgroup_parent.trim_start_matches('/');
        for h in cgroup_entries() {
            remove_tree(&h.join(parent));
            let libpod = h.join("libpod_parent");
            if libpod.exists() && !self.cgroup_before.contains(&libpod) {
                remove_tree(&libpod);
            }
            // A plain directory on the tmpfs, made by podman for a controller that is not
            // mounted, is removed when empty.
            if !self.cgroup_before.contains(&h) && !is_mount_point(&h) {
                let _ = fs::remove_dir(&h);
            }
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        self.cleanup();
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.0 -= 1;
        if live.0 == 0 {
            for d in live.1.drain(..) {
                let _ = fs::remove_dir(d); // only when empty: another podman may be using it
            }
        }
    }
}

/// Entries of /sys/fs/cgroup plus the `libpod_parent` dirs in them.
fn cgroup_snapshot() -> BTreeSet<PathBuf> {
    let mut set = BTreeSet::new();
    for h in cgroup_entries() {
        let libpod = h.join("libpod_parent");
        if libpod.exists() {
            set.insert(libpod);
        }
        set.insert(h);
    }
    set
}

/// Directories directly under /sys/fs/cgroup (the hierarchies, and plain dirs on its tmpfs).
fn cgroup_entries() -> Vec<PathBuf> {
    fs::read_dir(CGROUP_ROOT)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn is_mount_point(path: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape_mountinfo(m) == path)
}

/// Removes a cgroup directory tree (children first); a cgroup that is still busy right after
/// its processes died is retried for a while.
fn remove_tree(dir: &Path) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    for _ in 0..200 {
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => sleep(POLL),
        }
    }
}

fn pids_where(mut f: impl FnMut(i32) -> bool) -> Vec<i32> {
    let me = std::process::id() as i32;
    fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&pid| pid != me && f(pid))
                .collect()
        })
        .unwrap_or_default()
}

/// Mount points in mountinfo escape space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> PathBuf {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

/// A busybox root filesystem: the static busybox, one symlink per applet, root and nobody.
fn build_rootfs(rootfs: &Path) {
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::create_dir_all(rootfs.join("root")).unwrap();
    let tmp = rootfs.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("busybox not found: install busybox-static");
    fs::copy(busybox, bin.join("busybox")).unwrap();
    let list = Command::new(busybox).arg("--list").output().unwrap();
    assert!(list.status.success(), "busybox --list failed");
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}
