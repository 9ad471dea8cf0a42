//! The integration-test harness: run the real runtime binary, as root, on real busybox bundles.
//!
//! Include it from a test file with `mod common;` and `use common::*;`.
//!
//! # Which runtime
//! [`runtime()`] is `$SEALRUN_TEST_RUNTIME` (a path, or a name looked up in `$PATH`, e.g. `runc`)
//! or else the sealrun binary cargo built for this test run. Tests must pass against both;
//! sealrun-only behaviour (the one `sealrun: ...` error line, the audit record,
//! `--unsafe-disable`) is gated with [`is_sealrun()`].
//!
//! # A test
//! ```ignore
//! let t = Test::new();                 // private temp dir, --root, --log (json), cgroup parent
//! let mut b = t.bundle();              // busybox + /probe rootfs, runc-spec-like config
//! b.probe_args(&["sysctl=kernel.hostname"]);
//! let facts = t.probe(&b);             // `run` in the foreground, parse the probe's JSON
//! assert_eq!(facts["hostname"], "sealrun-test");
//! t.assert_nothing_left();             // no state dir, cgroup, mount or process remains
//! ```
//! Dropping the [`Test`] deletes its containers (`delete --force`), kills the processes it
//! started (by pid: tracked init pids, pids in its own cgroups, and processes that carry its
//! marker variable `SEALRUN_TEST_MARK`, which every runtime invocation gets in its
//! environment), unmounts whatever is left under its temp dir, removes its cgroup directories in
//! every hierarchy and removes the temp dir (kept when `SEALRUN_TEST_KEEP=1`).
//!
//! # The API, in short
//! - [`runtime()`], [`is_sealrun()`], [`is_runc()`], [`which()`], [`host_ns()`], [`wait_until()`],
//!   [`CAP_SETS`]; [`skip()`], [`skip_part()`], [`sealrun_only()`].
//! - [`Test`]: `id()`, `new_id(tag)`, `bundle()`, `bundle_for(id)`, `cgroups_path(id)`,
//!   `path(name)`, `pid_file(id)`; containers that stay up: `sleeper(id)` (a bundle),
//!   `create_sleeper(id)`, `run_sleeper(id)`; one that has ended: `run_stopped(id)`; runtime calls `rt(args)`,
//!   `rt_global(globals, args)`, `command(globals, args)` / `command_with(binary, ...)` +
//!   `exec(cmd)`, `create(b)`, `create_with(globals, b, flags)`, `start(id)`, `start_probe(id)`,
//!   `run(b)`, `run_with(globals, b, flags)`, `run_detached(b)`, `probe(b)`,
//!   `probe_with(binary, b)`, `state(id)`, `state_json(id)`, `status(id)`,
//!   `wait_status(id, s)`, `kill(id, sig)`, `delete(id)`, `delete_force(id)`; container output
//!   `output(id)`, `wait_output(id, needle)`, `pid_of(id)`; the log `report()`; host helpers
//!   `persistent_ns(kind)`, `own_mount(path)`, `track_pid(pid)`, `track_id(id)`; checks
//!   `leftovers(grace)`, `assert_nothing_left()`.
//! - [`Out`]: `code()`, `signal()`, `success()`, `ok()`, `failed()`, `error_line(needles)`,
//!   `json()`, `probe_facts()`.
//! - [`Report`]: `lines`, `with_msg(msg)`, `messages(level)`, `protections(id)`.
//! - [`Bundle`] (bundle.rs): `config` (JSON), `set(pointer, value)`, `args`, `probe_args`, `sh`,
//!   `add_mount`, `bind(dest, source, options)`, `remove_mount`, `namespace(kind, path)`,
//!   `remove_namespace`, `user_namespace(uid_host, gid_host, size)`, `writable_root`,
//!   `use_sealrun_spec`, `rootfs()`, `write()`.
//! - [`host`]: cgroup hierarchies/dirs/pids, `proc_stat`, `alive`, `pids_with_env`,
//!   `mounts_under`, `unmount_under`, `remove_cgroups`, `mounts_of_type`,
//!   `v1_controller_mounts`.
//!
//! # Stdio
//! Every runtime invocation gets stdin from /dev/null and stdout/stderr in files under the temp
//! dir, never pipes: a container started by `create` or `run --detach` keeps those files as its
//! fds 0-2, so waiting for a pipe's EOF would wait for the container. [`Out`] holds what the
//! runtime wrote until it exited; [`Test::output`] reads what a created container wrote after.
//!
//! # The probe
//! `/probe` (tests/probe/probe.rs, compiled once per template by rustc, static) prints one JSON
//! object: pid, ppid, pgrp, sid, tty_nr, args, env, cwd, uid/gid (`[real, effective, saved,
//! fs]`), groups, umask (`"0022"`), caps (five sets of names), no_new_privs, seccomp,
//! seccomp_filters, ns (inode per /proc/self/ns entry), hostname, domainname, oom_score_adj,
//! rlimits (`{"RLIMIT_NOFILE": [soft, hard]}`, unlimited = u64::MAX), fds (`{"0": target}`),
//! cgroup (lines), mounts (parsed mountinfo), and answers to requests given as arguments:
//! `sysctl=NAME`, `read=PATH`, `write=PATH`, `mkdir=PATH`, `stat=PATH`, `ls=PATH`, `exit=N`.
//! Failed requests answer `{"errno": N}`.
//!
//! # Skips
//! A test that cannot run here returns through [`skip()`] with the reason (a part it cannot
//! check: [`skip_part()`]); skip.rs records it for the summary `scripts/test` prints. A test
//! that only sealrun can pass uses [`sealrun_only()`] as the reason.
//!
//! # Timeouts
//! Each runtime invocation is killed after [`TIMEOUT`] and the test fails: a guard against
//! hangs, never a speed assertion.

#![allow(dead_code, unused_imports)]

pub mod bundle;
pub mod host;
pub mod rootfs;
pub mod skip;

use std::collections::HashMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use bundle::{Bundle, DEFAULT_CAPS, DEFAULT_ENV};
pub use host::wait_until;
pub use skip::{skip, skip_part};

/// The five capability sets, as the config and the probe's `caps` name them.
pub const CAP_SETS: [&str; 5] = [
    "bounding",
    "effective",
    "permitted",
    "inheritable",
    "ambient",
];

/// How long one runtime invocation may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The runtime under test: `$SEALRUN_TEST_RUNTIME` (path or name in `$PATH`) or the sealrun
/// binary cargo built.
pub fn runtime() -> &'static Path {
    static R: OnceLock<PathBuf> = OnceLock::new();
    R.get_or_init(|| match std::env::var_os("SEALRUN_TEST_RUNTIME") {
        Some(v) if !v.is_empty() => {
            let p = PathBuf::from(&v);
            if p.components().count() > 1 {
                return p;
            }
            which(&v.to_string_lossy())
                .unwrap_or_else(|| panic!("SEALRUN_TEST_RUNTIME={v:?}: not found in $PATH"))
        }
        _ => PathBuf::from(env!("CARGO_BIN_EXE_sealrun")),
    })
}

/// Find an executable in `$PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The first line of `<runtime> --version`.
pub fn runtime_version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let out = Command::new(runtime())
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", runtime().display()));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    })
}

/// Whether the runtime under test is sealrun (its `--version` says so).
pub fn is_sealrun() -> bool {
    runtime_version().starts_with("sealrun ")
}

/// A skip reason for what only sealrun does (`what`), naming the runtime under test.
pub fn sealrun_only(what: &str) -> String {
    format!(
        "sealrun-only: {what} (runtime under test: {})",
        runtime_version()
    )
}

/// Whether the runtime under test is runc.
pub fn is_runc() -> bool {
    runtime_version().starts_with("runc ")
}

/// The inode of one of this (test) process's namespaces (`net`, `mnt`, `pid`, `user`...).
pub fn host_ns(kind: &str) -> u64 {
    let link = fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap_or_else(|e| panic!("/proc/self/ns/{kind}: {e}"));
    let l = link.to_string_lossy();
    let a = l.find('[').expect("ns link has [");
    l[a + 1..l.len() - 1].parse().expect("ns inode")
}

/// What one runtime invocation did.
#[derive(Debug, Clone)]
pub struct Out {
    /// The program that ran (the runtime binary).
    pub program: String,
    /// The arguments it got (after the runtime path).
    pub args: Vec<String>,
    /// How it ended.
    pub status: ExitStatus,
    /// What it wrote on stdout until it exited.
    pub stdout: String,
    /// What it wrote on stderr until it exited.
    pub stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{} {}` -> {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.program,
            self.args.join(" "),
            self.status,
            self.stdout,
            self.stderr
        )
    }
}

impl Out {
    /// Exit code (None when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that killed it, if any.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Assert it exited 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.status.success(), "expected success:\n{self}");
        self
    }

    /// Assert it exited with a non-zero code (not killed by a signal).
    #[track_caller]
    pub fn failed(&self) -> &Self {
        assert!(
            matches!(self.status.code(), Some(c) if c != 0),
            "expected a non-zero exit:\n{self}"
        );
        self
    }

    /// Assert a clean failure: non-zero exit, and for sealrun exactly one stderr line,
    /// `sealrun: ...`, containing every one of `needles` (the field or the id). Other
    /// runtimes only have to say something on stderr. Returns the stderr text.
    #[track_caller]
    pub fn error_line(&self, needles: &[&str]) -> String {
        self.failed();
        let text = self.stderr.trim_end_matches('\n');
        assert!(
            !text.trim().is_empty(),
            "expected an error on stderr:\n{self}"
        );
        if is_sealrun() {
            assert_eq!(
                text.lines().count(),
                1,
                "expected exactly one stderr line:\n{self}"
            );
            assert!(
                text.starts_with("sealrun: "),
                "stderr must start with `sealrun: `:\n{self}"
            );
            for n in needles {
                assert!(text.contains(n), "stderr should name {n:?}:\n{self}");
            }
            assert!(
                self.stdout.is_empty(),
                "nothing on stdout on error:\n{self}"
            );
        }
        text.to_string()
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }

    /// The last stdout line that parses as a JSON object (the probe's report).
    #[track_caller]
    pub fn probe_facts(&self) -> Value {
        self.stdout
            .lines()
            .rev()
            .filter(|l| l.starts_with('{'))
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no probe report on stdout:\n{self}"))
    }
}

/// The lines of the `--log` file (JSON lines, as written with `--log-format json`).
#[derive(Debug, Clone)]
pub struct Report {
    /// Every record, in order.
    pub lines: Vec<Value>,
}

impl Report {
    /// Read and parse a JSON-lines log; panics on a line that is not a JSON object.
    pub fn read(path: &Path) -> Report {
        let text = fs::read_to_string(path).unwrap_or_default();
        let lines = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"));
                assert!(v.is_object(), "log line is not an object: {l}");
                v
            })
            .collect();
        Report { lines }
    }

    /// Records whose `msg` equals `msg`.
    pub fn with_msg(&self, msg: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["msg"] == msg).collect()
    }

    /// Messages of the records at `level` (`error`, `warning`, `info`, `debug`).
    pub fn messages(&self, level: &str) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| l["level"] == level)
            .map(|l| l["msg"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// sealrun's audit record (`"msg":"container protections"`) for container `id`.
    pub fn protections(&self, id: &str) -> Option<&Value> {
        self.lines
            .iter()
            .find(|l| l["msg"] == "container protections" && l["id"] == id)
    }
}

/// Where a created (or detached) container's stdio went.
#[derive(Debug, Clone)]
struct Io {
    out: PathBuf,
    err: PathBuf,
    out_at: usize,
    err_at: usize,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Default)]
struct Tracked {
    ids: Vec<String>,
    pids: Vec<(i32, u64)>,
    io: HashMap<String, Io>,
    own_mounts: Vec<PathBuf>,
    n: u32,
}

/// One test's private world: temp dir, `--root`, `--log`, cgroup parent, container ids.
/// Cleans everything up on drop (see the module docs).
#[derive(Debug)]
pub struct Test {
    /// Short name (from the test's thread name).
    pub name: String,
    /// Private temp dir (bundles, state root, log, stdio files).
    pub dir: PathBuf,
    /// `--root` for every invocation.
    pub root: PathBuf,
    /// `--log` for every invocation (`--log-format json`).
    pub log: PathBuf,
    /// The test's own cgroup parent, absolute (`/sealrun-test-<pid>-<n>`); containers get
    /// `<cgroup_parent>/<id>` as `cgroupsPath`.
    pub cgroup_parent: String,
    /// `SEALRUN_TEST_MARK` value in every runtime invocation's environment.
    pub mark: String,
    id: String,
    tracked: Mutex<Tracked>,
}

impl Default for Test {
    fn default() -> Self {
        Test::new()
    }
}

impl Test {
    /// A new test context; its primary container id is [`Test::id`].
    pub fn new() -> Test {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let thread = std::thread::current();
        let full = thread.name().unwrap_or("test");
        let short: String = full
            .rsplit("::")
            .next()
            .unwrap_or("test")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(24)
            .collect();
        let short = short.trim_matches('-').to_string();
        let short = if short.is_empty() || short == "main" {
            "t".to_string()
        } else {
            short
        };
        let mark = format!("{pid}-{n}");
        let dir = std::env::temp_dir().join(format!("sealrun-test-{mark}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("io")).expect("create test dir");
        let t = Test {
            id: format!("{short}-{mark}"),
            name: short,
            root: dir.join("root"),
            log: dir.join("log.json"),
            cgroup_parent: format!("/sealrun-test-{mark}"),
            mark,
            dir,
            tracked: Mutex::new(Tracked::default()),
        };
        t.track_id(&t.id.clone());
        t
    }

    fn tracked(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.tracked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The primary container id (unique on the machine).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Another unique container id (cleaned up like the primary one).
    pub fn new_id(&self, tag: &str) -> String {
        let n = {
            let mut t = self.tracked();
            t.n += 1;
            t.n
        };
        let id = format!("{}-{tag}{n}", self.id);
        self.track_id(&id);
        id
    }

    /// Remember an id for cleanup (for ids not made by [`Test::new_id`]).
    pub fn track_id(&self, id: &str) {
        let mut t = self.tracked();
        if !t.ids.iter().any(|x| x == id) {
            t.ids.push(id.to_string());
        }
    }

    /// Remember a host pid for cleanup and for [`Test::assert_nothing_left`].
    pub fn track_pid(&self, pid: i32) {
        if let Some((_, start)) = host::proc_stat(pid) {
            let mut t = self.tracked();
            if !t.pids.contains(&(pid, start)) {
                t.pids.push((pid, start));
            }
        }
    }

    /// The absolute cgroupsPath of container `id`.
    pub fn cgroups_path(&self, id: &str) -> String {
        format!("{}/{id}", self.cgroup_parent)
    }

    /// A path in the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A bundle for the primary id.
    pub fn bundle(&self) -> Bundle {
        self.bundle_for(&self.id.clone())
    }

    /// A bundle for container `id` (in `<dir>/bundle-<id>`).
    pub fn bundle_for(&self, id: &str) -> Bundle {
        self.track_id(id);
        Bundle::new(
            id,
            &self.dir.join(format!("bundle-{id}")),
            &self.cgroups_path(id),
        )
    }

    /// A bundle for container `id` whose process is `sleep 1000`: a container that stays up
    /// until the test deletes it.
    pub fn sleeper(&self, id: &str) -> Bundle {
        let mut b = self.bundle_for(id);
        b.args(&["sleep", "1000"]);
        b
    }

    /// [`Test::sleeper`] for `id`, created (asserting success); returns its bundle.
    #[track_caller]
    pub fn create_sleeper(&self, id: &str) -> Bundle {
        let b = self.sleeper(id);
        self.create(&b).ok();
        b
    }

    /// [`Test::sleeper`] for `id`, run detached (asserting success) and waited for until
    /// `running`; returns its bundle.
    #[track_caller]
    pub fn run_sleeper(&self, id: &str) -> Bundle {
        let b = self.sleeper(id);
        self.run_detached(&b).ok();
        self.wait_status(id, "running");
        b
    }

    /// Container `id` running `true`, run detached (asserting success) and waited for until
    /// `stopped`; returns its bundle.
    #[track_caller]
    pub fn run_stopped(&self, id: &str) -> Bundle {
        let mut b = self.bundle_for(id);
        b.args(&["true"]);
        self.run_detached(&b).ok();
        self.wait_status(id, "stopped");
        b
    }

    /// The pid file `create`/`run -d` write for `id`.
    pub fn pid_file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.pid"))
    }

    /// A runtime command with the test's global flags (`--root`, `--log`, `--log-format json`),
    /// extra global flags, then `args`; stdin is /dev/null, the marker is in its environment.
    pub fn command(&self, global: &[&str], args: &[&str]) -> Command {
        self.command_with(runtime(), global, args)
    }

    /// [`Test::command`] for another runtime binary (differential tests run sealrun and runc
    /// side by side).
    pub fn command_with(&self, rt: &Path, global: &[&str], args: &[&str]) -> Command {
        let mut c = Command::new(rt);
        c.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"])
            .args(global)
            .args(args)
            .env("SEALRUN_TEST_MARK", &self.mark)
            .stdin(Stdio::null());
        c
    }

    /// Run `cmd` with stdout/stderr in fresh files under the temp dir; wait (at most
    /// [`TIMEOUT`]). Returns the output and the two file paths.
    pub fn exec(&self, mut cmd: Command) -> (Out, PathBuf, PathBuf) {
        let n = {
            let mut t = self.tracked();
            t.n += 1;
            t.n
        };
        let program = cmd.get_program().to_string_lossy().into_owned();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let verb = args
            .iter()
            .find(|a| {
                matches!(
                    a.as_str(),
                    "create" | "start" | "run" | "state" | "kill" | "delete" | "list" | "exec"
                )
            })
            .cloned()
            .unwrap_or_else(|| "cmd".into());
        let out_path = self.dir.join("io").join(format!("{n}-{verb}.out"));
        let err_path = self.dir.join("io").join(format!("{n}-{verb}.err"));
        let out_f = fs::File::create(&out_path).expect("create stdout file");
        let err_f = fs::File::create(&err_path).expect("create stderr file");
        cmd.stdout(out_f).stderr(err_f);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait runtime") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`{program} {}` did not finish within {TIMEOUT:?}",
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = Out {
            program,
            args,
            status,
            stdout: fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        };
        (out, out_path, err_path)
    }

    /// Run the runtime with `args` (after the test's global flags).
    pub fn rt(&self, args: &[&str]) -> Out {
        self.exec(self.command(&[], args)).0
    }

    /// Run the runtime with extra global flags (`--debug`, `--unsafe-disable X`) and `args`.
    pub fn rt_global(&self, global: &[&str], args: &[&str]) -> Out {
        self.exec(self.command(global, args)).0
    }

    fn remember_io(&self, id: &str, out: &Out, o: PathBuf, e: PathBuf) {
        self.tracked().io.insert(
            id.to_string(),
            Io {
                out: o,
                err: e,
                out_at: out.stdout.len(),
                err_at: out.stderr.len(),
            },
        );
    }

    fn track_pid_file(&self, id: &str) {
        if let Ok(text) = fs::read_to_string(self.pid_file(id)) {
            if let Ok(pid) = text.trim().parse() {
                self.track_pid(pid);
            }
        }
    }

    /// `create --bundle <dir> --pid-file <pid_file(id)> [extra...] <id>` with extra global
    /// flags; writes config.json first. The container's stdio are files: see [`Test::output`].
    pub fn create_with(&self, global: &[&str], b: &Bundle, extra: &[&str]) -> Out {
        b.write();
        self.track_id(&b.id);
        let _ = fs::remove_file(self.pid_file(&b.id));
        let dir = b.dir.to_string_lossy().into_owned();
        let pid_file = self.pid_file(&b.id).to_string_lossy().into_owned();
        let mut args = vec!["create", "--bundle", &dir, "--pid-file", &pid_file];
        args.extend_from_slice(extra);
        args.push(&b.id);
        let (out, o, e) = self.exec(self.command(global, &args));
        self.remember_io(&b.id, &out, o, e);
        self.track_pid_file(&b.id);
        out
    }

    /// `create` (see [`Test::create_with`]).
    pub fn create(&self, b: &Bundle) -> Out {
        self.create_with(&[], b, &[])
    }

    /// `start <id>`.
    pub fn start(&self, id: &str) -> Out {
        self.rt(&["start", id])
    }

    /// `run <id>` in the foreground (writes config.json first).
    pub fn run(&self, b: &Bundle) -> Out {
        self.run_with(&[], b, &[])
    }

    /// `run` with extra global flags and extra run flags.
    pub fn run_with(&self, global: &[&str], b: &Bundle, extra: &[&str]) -> Out {
        self.exec(self.run_command(global, b, extra)).0
    }

    /// The command `run --bundle DIR [extra] ID` in the foreground, with `b`'s config written
    /// and its id tracked for the clean-up; for tests that wrap it (in a shell, with
    /// redirections) before [`Test::exec`].
    pub fn run_command(&self, global: &[&str], b: &Bundle, extra: &[&str]) -> Command {
        b.write();
        self.track_id(&b.id);
        let dir = b.dir.to_string_lossy().into_owned();
        let mut args = vec!["run", "--bundle", &dir];
        args.extend_from_slice(extra);
        args.push(&b.id);
        self.command(global, &args)
    }

    /// `run --detach --pid-file <pid_file(id)> <id>`; the container's output is read with
    /// [`Test::output`].
    pub fn run_detached(&self, b: &Bundle) -> Out {
        b.write();
        self.track_id(&b.id);
        let _ = fs::remove_file(self.pid_file(&b.id));
        let dir = b.dir.to_string_lossy().into_owned();
        let pid_file = self.pid_file(&b.id).to_string_lossy().into_owned();
        let args = [
            "run",
            "--detach",
            "--bundle",
            &dir,
            "--pid-file",
            &pid_file,
            &b.id,
        ];
        let (out, o, e) = self.exec(self.command(&[], &args));
        // The container may write before the runtime exits: its output starts at 0.
        self.tracked().io.insert(
            b.id.clone(),
            Io {
                out: o,
                err: e,
                out_at: 0,
                err_at: 0,
            },
        );
        self.track_pid_file(&b.id);
        out
    }

    /// `run` the bundle in the foreground under the runtime binary `rt`, assert success and
    /// return the probe's report.
    #[track_caller]
    pub fn probe_with(&self, rt: &Path, b: &Bundle) -> Value {
        b.write();
        self.track_id(&b.id);
        let dir = b.dir.to_string_lossy().into_owned();
        let out = self
            .exec(self.command_with(rt, &[], &["run", "--bundle", &dir, &b.id]))
            .0;
        out.ok();
        out.probe_facts()
    }

    /// Run the bundle in the foreground, assert success and return the probe's report.
    #[track_caller]
    pub fn probe(&self, b: &Bundle) -> Value {
        let out = self.run(b);
        out.ok();
        out.probe_facts()
    }

    /// `start` a created container that runs the probe (asserting success), wait until it
    /// stopped, and return its report: the whole stdout, which must be one JSON object.
    #[track_caller]
    pub fn start_probe(&self, id: &str) -> Value {
        self.start(id).ok();
        self.wait_status(id, "stopped");
        let out = self.output(id).0;
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("probe report of {id} is not JSON ({e}):\n{out}"))
    }

    /// What a container wrote on (stdout, stderr): for `create`, what came after the runtime
    /// exited; for `run --detach`, the whole files (the container may write before `run`
    /// returns, so they may also hold the runtime's own output).
    pub fn output(&self, id: &str) -> (String, String) {
        let io = self
            .tracked()
            .io
            .get(id)
            .cloned()
            .unwrap_or_else(|| panic!("no create/run -d of {id} in this test"));
        let read = |p: &Path, at: usize| {
            let b = fs::read(p).unwrap_or_default();
            String::from_utf8_lossy(b.get(at..).unwrap_or_default()).into_owned()
        };
        (read(&io.out, io.out_at), read(&io.err, io.err_at))
    }

    /// Wait until the container's stdout contains `needle`; returns the stdout.
    #[track_caller]
    pub fn wait_output(&self, id: &str, needle: &str) -> String {
        let mut last = String::new();
        let ok = wait_until(TIMEOUT, || {
            last = self.output(id).0;
            last.contains(needle)
        });
        assert!(
            ok,
            "container {id} never printed {needle:?}; stdout so far:\n{last}"
        );
        last
    }

    /// The pid in the pid file of `id` (asserting the file exists).
    #[track_caller]
    pub fn pid_of(&self, id: &str) -> i32 {
        let p = self.pid_file(id);
        let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{}: not a pid: {text:?}", p.display()))
    }

    /// `state <id>`.
    pub fn state(&self, id: &str) -> Out {
        self.rt(&["state", id])
    }

    /// `state <id>` parsed (asserting success).
    #[track_caller]
    pub fn state_json(&self, id: &str) -> Value {
        let out = self.state(id);
        out.ok();
        out.json()
    }

    /// The `status` field of `state <id>`.
    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        self.state_json(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait until `state <id>` reports `status` (guard: [`TIMEOUT`]).
    #[track_caller]
    pub fn wait_status(&self, id: &str, status: &str) {
        let mut last = String::new();
        let ok = wait_until(TIMEOUT, || {
            last = self.status(id);
            last == status
        });
        assert!(ok, "container {id} never became {status} (last: {last})");
    }

    /// `kill <id> <signal>`.
    pub fn kill(&self, id: &str, signal: &str) -> Out {
        self.rt(&["kill", id, signal])
    }

    /// `delete <id>`.
    pub fn delete(&self, id: &str) -> Out {
        self.rt(&["delete", id])
    }

    /// `delete --force <id>`.
    pub fn delete_force(&self, id: &str) -> Out {
        self.rt(&["delete", "--force", id])
    }

    /// The `--log` file's records.
    pub fn report(&self) -> Report {
        Report::read(&self.log)
    }

    /// A persistent namespace of `kind` (`net`, `ipc`, `uts`, `mount`...) made with
    /// util-linux `unshare --<kind>=FILE`, bind-mounted on a file in the temp dir (unmounted
    /// on drop). Returns the file, for a `linux.namespaces[].path`.
    #[track_caller]
    pub fn persistent_ns(&self, kind: &str) -> PathBuf {
        let file = self.dir.join(format!("ns-{kind}-{}", self.new_seq()));
        fs::write(&file, "").expect("create ns file");
        let out = Command::new("unshare")
            .arg(format!("--{kind}={}", file.display()))
            .arg("true")
            .output()
            .expect("run unshare (util-linux)");
        assert!(out.status.success(), "unshare --{kind}: {out:?}");
        self.own_mount(&file);
        file
    }

    /// Declare a mount the test made itself under its temp dir: [`Test::leftovers`] does not
    /// count it (it is still unmounted on drop).
    pub fn own_mount(&self, path: &Path) {
        self.tracked().own_mounts.push(path.to_path_buf());
    }

    fn new_seq(&self) -> u32 {
        let mut t = self.tracked();
        t.n += 1;
        t.n
    }

    /// What the runtime left of this test's containers, after waiting up to `grace` for
    /// processes to finish dying: state directories, cgroup directories
    /// (`<cgroup_parent>/<id>` in any hierarchy), mounts under the temp dir, processes
    /// (tracked pids, pids in the test's cgroups, processes carrying its marker).
    pub fn leftovers(&self, grace: Duration) -> Vec<String> {
        let (ids, pids, own) = {
            let t = self.tracked();
            (t.ids.clone(), t.pids.clone(), t.own_mounts.clone())
        };
        let needle = format!("SEALRUN_TEST_MARK={}", self.mark);
        let procs = || {
            let mut v: Vec<i32> = pids
                .iter()
                .filter(|(p, s)| host::alive(*p, *s))
                .map(|(p, _)| *p)
                .collect();
            v.extend(host::pids_with_env(&needle));
            v.extend(host::cgroup_pids(&self.cgroup_parent));
            v.sort();
            v.dedup();
            v
        };
        wait_until(grace, || procs().is_empty());
        let mut left: Vec<String> = procs()
            .into_iter()
            .map(|p| {
                let cmd = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                format!(
                    "process {p} ({})",
                    String::from_utf8_lossy(&cmd).replace('\0', " ")
                )
            })
            .collect();
        for id in &ids {
            let d = self.root.join(id);
            if d.exists() {
                left.push(format!("state dir {}", d.display()));
            }
            for h in host::cgroup_hierarchies() {
                let c = h.join(self.cgroups_path(id).trim_start_matches('/'));
                if c.exists() {
                    left.push(format!("cgroup {}", c.display()));
                }
            }
        }
        for m in host::mounts_under(&self.dir) {
            if own.contains(&m) {
                continue;
            }
            left.push(format!("mount {}", m.display()));
        }
        left
    }

    /// Assert the runtime left nothing of this test's containers (see [`Test::leftovers`];
    /// processes get 10 s to finish dying: a guard, not a speed assertion).
    #[track_caller]
    pub fn assert_nothing_left(&self) {
        let left = self.leftovers(Duration::from_secs(10));
        assert!(left.is_empty(), "left behind: {left:#?}");
    }
}

impl Drop for Test {
    fn drop(&mut self) {
        let (ids, pids) = {
            let t = self.tracked();
            (t.ids.clone(), t.pids.clone())
        };
        for id in &ids {
            let mut c = self.command(&[], &["delete", "--force", id]);
            c.stdout(Stdio::null()).stderr(Stdio::null());
            if let Ok(mut child) = c.spawn() {
                let done = wait_until(TIMEOUT, || matches!(child.try_wait(), Ok(Some(_))));
                if !done {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        let needle = format!("SEALRUN_TEST_MARK={}", self.mark);
        wait_until(Duration::from_secs(10), || {
            let mut any = false;
            for (p, s) in &pids {
                if host::alive(*p, *s) {
                    host::kill_if_same(*p, *s);
                    any = true;
                }
            }
            for p in host::pids_with_env(&needle) {
                host::kill_pid(p);
                any = true;
            }
            !any
        });
        host::unmount_under(&self.dir);
        host::remove_cgroups(&self.cgroup_parent);
        if std::env::var_os("SEALRUN_TEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Assert that nothing of `test`'s containers is left (see [`Test::assert_nothing_left`]).
#[track_caller]
pub fn assert_nothing_left(test: &Test) {
    test.assert_nothing_left();
}
