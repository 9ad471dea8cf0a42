//! Support for the escape tests (tests/escapes.rs, tests/seccomp.rs, tests/landlock.rs): the
//! attack program, a private copy of the runtime binary to attack, `--unsafe-disable` flags,
//! a seccomp agent socket that can hold the runtime at a chosen point, and small parsers.
//!
//! Include it next to the harness: `mod common; #[path = "common/attack.rs"] mod attack;`.

#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::common::{is_sealrun, runtime, wait_until, Bundle, Out, Test, TIMEOUT};

/// The attack program's source (see tests/attack/attack.rs for its commands).
const ATTACK_SRC: &str = include_str!("../attack/attack.rs");

/// The compiled attack program (static; built once per source into `CARGO_TARGET_TMPDIR`).
pub fn attack_binary() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let mut h = DefaultHasher::new();
        ATTACK_SRC.hash(&mut h);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        fs::create_dir_all(&dir).expect("create CARGO_TARGET_TMPDIR");
        let bin = dir.join(format!("sealrun-attack-{:016x}", h.finish()));
        if bin.exists() {
            return bin;
        }
        let lock = fs::File::create(dir.join("sealrun-attack.lock")).expect("create lock");
        let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .unwrap_or_else(|(_, e)| panic!("flock attack lock: {e}"));
        if bin.exists() {
            return bin;
        }
        let tmp = dir.join(format!("sealrun-attack.tmp-{}", std::process::id()));
        let src = dir.join(format!("sealrun-attack-{}.rs", std::process::id()));
        crate::common::rootfs::compile_static("attack", ATTACK_SRC, &src, &tmp);
        fs::rename(&tmp, &bin).expect("rename attack binary into place");
        bin
    })
}

/// Put the attack program in the bundle's rootfs as `/attack`.
pub fn install(b: &Bundle) {
    let to = b.rootfs().join("attack");
    fs::copy(attack_binary(), &to).expect("copy attack program");
    fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).expect("chmod attack");
}

/// `process.args = ["/attack", args...]` (and the program installed).
pub fn attack_args(b: &mut Bundle, args: &[&str]) {
    install(b);
    let mut a = vec!["/attack"];
    a.extend_from_slice(args);
    b.args(&a);
}

/// The hidden test flag that switches `layers` off (empty: all layers on).
pub fn off(layers: &[&str]) -> Vec<String> {
    if layers.is_empty() {
        Vec::new()
    } else {
        vec!["--unsafe-disable".to_string(), layers.join(",")]
    }
}

/// `&[String]` as `&[&str]`.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

/// The value of the last `key=value` line of the attack program's output.
pub fn kv(text: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.to_string())
}

/// Like [`kv`], asserting the key is there.
#[track_caller]
pub fn get(text: &str, key: &str) -> String {
    kv(text, key).unwrap_or_else(|| panic!("no {key}= in the attack's output:\n{text}"))
}

/// sha256 of a file, hex.
pub fn sha256(path: &Path) -> String {
    let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A private copy of the runtime binary: the target of the CVE-2019-5736 tests (never the
/// binary cargo built, never one on the host's PATH).
#[derive(Debug)]
pub struct RuntimeCopy {
    /// Where the copy is.
    pub path: PathBuf,
    /// Its sha256 when made.
    pub sha: String,
    /// Environment for every command running the copy.
    pub env: Vec<(String, String)>,
}

impl RuntimeCopy {
    /// Copy the runtime under test into the test's temp dir.
    pub fn new(t: &Test, name: &str) -> RuntimeCopy {
        let path = t.path(name);
        fs::copy(runtime(), &path).expect("copy the runtime binary");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod copy");
        let sha = sha256(&path);
        RuntimeCopy {
            path,
            sha,
            env: Vec::new(),
        }
    }

    /// Whether the copy still has its original content.
    pub fn unchanged(&self) -> bool {
        sha256(&self.path) == self.sha
    }

    /// A command running the copy with the test's global flags (like `Test::command`).
    pub fn command(&self, t: &Test, global: &[&str], args: &[&str]) -> Command {
        let mut c = t.command_with(&self.path, global, args);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }
}

/// `create` with extra global flags and a given runtime binary (`None`: the runtime under
/// test); returns the runtime's output and the file the container's stdout goes to.
pub fn create(
    t: &Test,
    bin: Option<&RuntimeCopy>,
    global: &[&str],
    b: &Bundle,
    extra: &[&str],
) -> (Out, PathBuf) {
    b.write();
    t.track_id(&b.id);
    let _ = fs::remove_file(t.pid_file(&b.id));
    let dir = b.dir.to_string_lossy().into_owned();
    let pid_file = t.pid_file(&b.id).to_string_lossy().into_owned();
    let mut args = vec!["create", "--bundle", &dir, "--pid-file", &pid_file];
    args.extend_from_slice(extra);
    args.push(&b.id);
    let cmd = match bin {
        Some(c) => c.command(t, global, &args),
        None => t.command(global, &args),
    };
    let (out, stdout, _) = t.exec(cmd);
    if let Ok(pid) = fs::read_to_string(t.pid_file(&b.id)).map(|s| s.trim().parse().unwrap_or(0)) {
        if pid > 0 {
            t.track_pid(pid);
        }
    }
    (out, stdout)
}

/// Wait until `file` contains `needle` (guard: [`TIMEOUT`]); returns its text.
#[track_caller]
pub fn wait_file(file: &Path, needle: &str) -> String {
    let mut last = String::new();
    let ok = wait_until(TIMEOUT, || {
        last = fs::read_to_string(file).unwrap_or_default();
        last.contains(needle)
    });
    assert!(
        ok,
        "{} never got {needle:?}; so far:\n{last}",
        file.display()
    );
    last
}

/// Spawn a command with stdout/stderr in files (the runtime may leave a container holding them).
pub fn spawn(t: &Test, mut cmd: Command, tag: &str) -> (Child, PathBuf, PathBuf) {
    let out = t.path(&format!("{tag}.out"));
    let err = t.path(&format!("{tag}.err"));
    cmd.stdout(fs::File::create(&out).expect("create stdout file"))
        .stderr(fs::File::create(&err).expect("create stderr file"));
    let child = cmd.spawn().expect("spawn");
    t.track_pid(child.id() as i32);
    (child, out, err)
}

/// Wait for a child (guard: [`TIMEOUT`]); panics if it does not end.
#[track_caller]
pub fn wait_child(child: &mut Child) -> std::process::ExitStatus {
    let mut status = None;
    let ok = wait_until(TIMEOUT, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    if !ok {
        let _ = child.kill();
        let _ = child.wait();
        panic!("child {} did not finish", child.id());
    }
    status.expect("status")
}

/// Write one line to a FIFO (blocks until the reader opens it).
pub fn gate(fifo: &Path, line: &str) {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .unwrap_or_else(|e| panic!("open {}: {e}", fifo.display()));
    writeln!(f, "{line}").expect("write gate");
}

/// Make a FIFO.
pub fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// A seccomp agent socket (`listenerPath`) listening with a backlog of 0: one connection can
/// wait unaccepted, and the next `connect` blocks until the test accepts. That holds the
/// runtime — and the process whose listener fd it forwards — at a known point, without timing.
#[derive(Debug)]
pub struct Agent {
    /// The socket path.
    pub path: PathBuf,
    listener: UnixListener,
}

impl Agent {
    /// Listen at `path`.
    pub fn new(path: &Path) -> Agent {
        use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag};
        use nix::sys::socket::{SockType, UnixAddr};
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        bind(fd.as_raw_fd(), &UnixAddr::new(path).expect("addr")).expect("bind agent socket");
        listen(&fd, Backlog::new(0).expect("backlog")).expect("listen");
        Agent {
            path: path.to_path_buf(),
            listener: UnixListener::from(fd),
        }
    }

    /// Accept one connection and read the runtime-spec container process state and the
    /// listener fd the runtime sends.
    pub fn accept(&self) -> (serde_json::Value, Option<OwnedFd>) {
        let (conn, _) = self.listener.accept().expect("accept");
        let mut buf = vec![0u8; 65536];
        let (n, fd) = crate::common::host::recv_with_fd(&conn, &mut buf).expect("recvmsg");
        let mut rest = Vec::new();
        let mut conn = conn;
        let _ = conn.read_to_end(&mut rest);
        let mut data = buf[..n].to_vec();
        data.extend(rest);
        let state = serde_json::from_slice(&data).unwrap_or(serde_json::Value::Null);
        (state, fd)
    }
}

/// Whether this runtime can switch layers off (`--unsafe-disable` is sealrun's).
pub fn can_disable() -> bool {
    static CAN: OnceLock<bool> = OnceLock::new();
    *CAN.get_or_init(|| {
        // A build without the `unsafe-test-switches` feature refuses the flag.
        is_sealrun()
            && Command::new(runtime())
                .args(["--unsafe-disable", "seccomp", "features"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    })
}

/// The skip reason of a layer-off twin where [`can_disable`] is false.
pub fn no_disable() -> String {
    crate::common::sealrun_only(
        "a layer switched off (--unsafe-disable, in builds with the unsafe-test-switches feature)",
    )
}

/// Connect to an abstract unix socket from the test (to check a listener is up).
pub fn abstract_listener(name: &str) -> std::os::unix::net::UnixListener {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .expect("abstract address");
    std::os::unix::net::UnixListener::bind_addr(&addr).expect("bind abstract socket")
}

/// Serve one line to every client of `l` in a thread until the test ends (the thread is
/// detached; the listener is dropped when the process exits).
pub fn serve_forever(l: UnixListener, reply: &'static str) {
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(reply.as_bytes());
        }
    });
}

/// Connect to a path socket (for tests that check the agent saw nothing).
pub fn connect(path: &Path) -> std::io::Result<UnixStream> {
    UnixStream::connect(path)
}

/// Parse `/proc/<pid>/status`'s `NSpid` line: the pid as seen in the innermost namespace.
pub fn inner_pid(host_pid: i32) -> Option<i32> {
    let status = fs::read_to_string(format!("/proc/{host_pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().last()?.parse().ok())
}

/// The children of a host process (from `/proc/<pid>/task/*/children`).
pub fn children(pid: i32) -> Vec<i32> {
    let mut v = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let text = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            v.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    v
}

/// The syscall number a process is blocked in (`/proc/<pid>/syscall`), if any.
pub fn blocked_in(pid: i32) -> Option<i64> {
    let text = fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// A short pause between polls (the guard is always [`TIMEOUT`], never a speed assertion).
pub fn poll_pause() {
    std::thread::sleep(Duration::from_millis(20));
}

/// The same command run through `/bin/sh` with extra redirections first (`7<>/path`,
/// `3</dev/null`): the shell opens them without close-on-exec, so the runtime inherits them —
/// a descriptor "leaked" into the runtime by its caller, or one passed on purpose with
/// `--preserve-fds`.
pub fn with_fds(cmd: &Command, redirections: &str) -> Command {
    through_sh(cmd, &format!("exec {redirections};"))
}

/// `cmd` run by `/bin/sh`, which first runs `prelude` (shell words ending in `;`: set up
/// descriptors, export variables; `$$` is the runtime's pid, since `sh` then execs it), with
/// `cmd`'s environment changes.
pub fn through_sh(cmd: &Command, prelude: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(format!("{prelude} exec \"$0\" \"$@\""))
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// `run --bundle DIR [extra] ID` in the foreground (config written first), through [`with_fds`].
pub fn run_with_fds(
    t: &Test,
    global: &[&str],
    b: &Bundle,
    extra: &[&str],
    redirections: &str,
) -> Out {
    let cmd = t.run_command(global, b, extra);
    t.exec(with_fds(&cmd, redirections)).0
}

/// A console socket (`--console-socket`) that accepts connections in a thread and keeps every
/// pty master it receives open until dropped (closing it would hang up the container).
#[derive(Debug)]
pub struct ConsoleSocket {
    /// The socket path.
    pub path: PathBuf,
    masters: std::sync::Arc<std::sync::Mutex<Vec<OwnedFd>>>,
}

impl ConsoleSocket {
    /// Listen at `path`.
    pub fn new(path: &Path) -> ConsoleSocket {
        let listener = UnixListener::bind(path).expect("bind console socket");
        let masters = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = masters.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                if let Some(fd) = recv_fd(&conn) {
                    keep.lock().unwrap_or_else(|e| e.into_inner()).push(fd);
                }
            }
        });
        ConsoleSocket {
            path: path.to_path_buf(),
            masters,
        }
    }

    /// How many pty masters arrived.
    pub fn received(&self) -> usize {
        self.masters.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Receive one message with one fd.
fn recv_fd(conn: &UnixStream) -> Option<OwnedFd> {
    let mut buf = vec![0u8; 4096];
    crate::common::host::recv_with_fd(conn, &mut buf).ok()?.1
}
