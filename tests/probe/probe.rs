//! The test probe: a small static program the harness (tests/common) compiles once with rustc
//! and puts in every test rootfs as `/probe`. It prints one JSON object describing what the
//! process sees (ids, capabilities, namespaces, mounts, rlimits, env, fds...) and exits 0 (or
//! the code asked for with `exit=N`).
//!
//! Arguments are requests, each `KEY=VALUE`:
//! - `sysctl=NAME` (`net.ipv4.ip_forward`): `"sysctl": {NAME: value or {"errno": N}}`
//! - `read=PATH`: `"read": {PATH: first 4 KiB as text, or {"errno": N}}`
//! - `write=PATH`: open for writing (create if missing, no truncation) and write nothing:
//!   `"write": {PATH: "ok" or {"errno": N}}`
//! - `mkdir=PATH`: `"mkdir": {PATH: "ok" or {"errno": N}}`
//! - `stat=PATH` (lstat): `"stat": {PATH: {"type","mode","uid","gid","major","minor","link"}}`
//! - `ls=PATH`: `"ls": {PATH: [names, sorted] or {"errno": N}}`
//! - `exit=N`: exit with status N after printing.
//!
//! No dependencies: std only, JSON written by hand.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// A tiny JSON value.
enum J {
    Null,
    Num(i128),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

fn esc(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl J {
    fn write(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Num(n) => {
                let _ = write!(out, "{n}");
            }
            J::Str(s) => esc(s, out),
            J::Arr(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write(out);
                }
                out.push(']');
            }
            J::Obj(v) => {
                out.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    esc(k, out);
                    out.push(':');
                    x.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn s(x: impl Into<String>) -> J {
    J::Str(x.into())
}

fn errno(e: &std::io::Error) -> J {
    J::Obj(vec![(
        "errno".into(),
        J::Num(e.raw_os_error().unwrap_or(-1) as i128),
    )])
}

const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn cap_names(hex: &str) -> J {
    let bits = u64::from_str_radix(hex.trim(), 16).unwrap_or(0);
    J::Arr(
        (0..64)
            .filter(|b| bits & (1u64 << b) != 0)
            .map(|b| match CAPS.get(b) {
                Some(n) => s(*n),
                None => s(format!("CAP_{b}")),
            })
            .collect(),
    )
}

fn nums(v: &str) -> J {
    J::Arr(
        v.split_whitespace()
            .filter_map(|x| x.parse::<i128>().ok())
            .map(J::Num)
            .collect(),
    )
}

/// Undo mountinfo's octal escapes (`\040` for a space).
fn unescape(f: &str) -> String {
    let b = f.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x");
            if let Ok(n) = u8::from_str_radix(digits, 8) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mounts() -> J {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v = Vec::new();
    for line in text.lines() {
        let (pre, post) = line.split_once(" - ").unwrap_or((line, ""));
        let f: Vec<&str> = pre.split(' ').collect();
        let p: Vec<&str> = post.split(' ').collect();
        if f.len() < 6 {
            continue;
        }
        v.push(J::Obj(vec![
            ("id".into(), J::Num(f[0].parse().unwrap_or(0))),
            ("parent".into(), J::Num(f[1].parse().unwrap_or(0))),
            ("dev".into(), s(f[2])),
            ("root".into(), s(unescape(f[3]))),
            ("mount_point".into(), s(unescape(f[4]))),
            ("options".into(), s(f[5])),
            (
                "optional".into(),
                J::Arr(f[6..].iter().map(|x| s(*x)).collect()),
            ),
            ("fstype".into(), s(*p.first().unwrap_or(&""))),
            ("source".into(), s(unescape(p.get(1).unwrap_or(&"")))),
            ("super_options".into(), s(*p.get(2).unwrap_or(&""))),
        ]));
    }
    J::Arr(v)
}

fn rlimits() -> J {
    const NAMES: &[(&str, &str)] = &[
        ("Max cpu time", "RLIMIT_CPU"),
        ("Max file size", "RLIMIT_FSIZE"),
        ("Max data size", "RLIMIT_DATA"),
        ("Max stack size", "RLIMIT_STACK"),
        ("Max core file size", "RLIMIT_CORE"),
        ("Max resident set", "RLIMIT_RSS"),
        ("Max processes", "RLIMIT_NPROC"),
        ("Max open files", "RLIMIT_NOFILE"),
        ("Max locked memory", "RLIMIT_MEMLOCK"),
        ("Max address space", "RLIMIT_AS"),
        ("Max file locks", "RLIMIT_LOCKS"),
        ("Max pending signals", "RLIMIT_SIGPENDING"),
        ("Max msgqueue size", "RLIMIT_MSGQUEUE"),
        ("Max nice priority", "RLIMIT_NICE"),
        ("Max realtime priority", "RLIMIT_RTPRIO"),
        ("Max realtime timeout", "RLIMIT_RTTIME"),
    ];
    let text = fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let mut v = Vec::new();
    for line in text.lines() {
        for (prefix, name) in NAMES {
            if let Some(rest) = line.strip_prefix(prefix) {
                let mut it = rest.split_whitespace();
                let val = |x: Option<&str>| match x {
                    Some("unlimited") => J::Num(u64::MAX as i128),
                    Some(n) => J::Num(n.parse().unwrap_or(-1)),
                    None => J::Null,
                };
                let soft = val(it.next());
                let hard = val(it.next());
                v.push((name.to_string(), J::Arr(vec![soft, hard])));
            }
        }
    }
    J::Obj(v)
}

fn namespaces() -> J {
    let mut v = Vec::new();
    for kind in [
        "cgroup",
        "ipc",
        "mnt",
        "net",
        "pid",
        "pid_for_children",
        "time",
        "time_for_children",
        "user",
        "uts",
    ] {
        let ino = fs::read_link(format!("/proc/self/ns/{kind}"))
            .ok()
            .and_then(|l| {
                let l = l.to_string_lossy().into_owned();
                let a = l.find('[')?;
                l[a + 1..l.len() - 1].parse::<i128>().ok()
            });
        v.push((kind.to_string(), ino.map(J::Num).unwrap_or(J::Null)));
    }
    J::Obj(v)
}

fn fds() -> J {
    let mut map = BTreeMap::new();
    let own = format!("/proc/{}/fd", std::process::id());
    if let Ok(dir) = fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(n) = name.parse::<i64>() else { continue };
            let target = fs::read_link(e.path())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            if target == own || target == "/proc/self/fd" {
                continue; // the directory being listed
            }
            map.insert(n, target);
        }
    }
    J::Obj(map.into_iter().map(|(k, v)| (k.to_string(), s(v))).collect())
}

fn stat(path: &str) -> J {
    match fs::symlink_metadata(path) {
        Err(e) => errno(&e),
        Ok(m) => {
            let ft = m.file_type();
            let kind = if ft.is_symlink() {
                "symlink"
            } else if ft.is_dir() {
                "dir"
            } else if ft.is_char_device() {
                "char"
            } else if ft.is_block_device() {
                "block"
            } else if ft.is_fifo() {
                "fifo"
            } else if ft.is_socket() {
                "socket"
            } else {
                "file"
            };
            let rdev = m.rdev();
            let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
            let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
            let link = fs::read_link(path)
                .map(|l| s(l.to_string_lossy()))
                .unwrap_or(J::Null);
            J::Obj(vec![
                ("type".into(), s(kind)),
                ("mode".into(), s(format!("{:04o}", m.mode() & 0o7777))),
                ("uid".into(), J::Num(m.uid() as i128)),
                ("gid".into(), J::Num(m.gid() as i128)),
                ("major".into(), J::Num(major as i128)),
                ("minor".into(), J::Num(minor as i128)),
                ("link".into(), link),
            ])
        }
    }
}

fn main() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let stat_line = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after: Vec<&str> = stat_line
        .rsplit_once(')')
        .map(|x| x.1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let stat_num = |i: usize| J::Num(after.get(i).and_then(|x| x.parse().ok()).unwrap_or(-1));
    let read_trim = |p: &str| {
        fs::read_to_string(p)
            .map(|t| s(t.trim_end_matches('\n')))
            .unwrap_or(J::Null)
    };

    let mut sysctl = Vec::new();
    let mut read = Vec::new();
    let mut write = Vec::new();
    let mut mkdir = Vec::new();
    let mut stats = Vec::new();
    let mut ls = Vec::new();
    let mut exit_code = 0;
    let args: Vec<String> = std::env::args().collect();
    for a in args.iter().skip(1) {
        let Some((k, v)) = a.split_once('=') else {
            continue;
        };
        match k {
            "sysctl" => {
                let p = format!("/proc/sys/{}", v.replace('.', "/"));
                let val = match fs::read_to_string(&p) {
                    Ok(t) => s(t.trim_end_matches('\n')),
                    Err(e) => errno(&e),
                };
                sysctl.push((v.to_string(), val));
            }
            "read" => {
                // At most 4 KiB: /dev/zero never ends.
                let val = match fs::File::open(v).and_then(|f| {
                    let mut b = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::Read::take(f, 4096), &mut b)?;
                    Ok(b)
                }) {
                    Ok(b) => s(String::from_utf8_lossy(&b)),
                    Err(e) => errno(&e),
                };
                read.push((v.to_string(), val));
            }
            "write" => {
                let val = match fs::OpenOptions::new().append(true).create(true).open(v) {
                    Ok(_) => s("ok"),
                    Err(e) => errno(&e),
                };
                write.push((v.to_string(), val));
            }
            "mkdir" => {
                let val = match fs::create_dir(v) {
                    Ok(_) => s("ok"),
                    Err(e) => errno(&e),
                };
                mkdir.push((v.to_string(), val));
            }
            "stat" => stats.push((v.to_string(), stat(v))),
            "ls" => {
                let val = match fs::read_dir(v) {
                    Ok(d) => {
                        let mut names: Vec<String> = d
                            .flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect();
                        names.sort();
                        J::Arr(names.into_iter().map(s).collect())
                    }
                    Err(e) => errno(&e),
                };
                ls.push((v.to_string(), val));
            }
            "exit" => exit_code = v.parse().unwrap_or(1),
            _ => {}
        }
    }

    let facts = J::Obj(vec![
        ("pid".into(), J::Num(std::process::id() as i128)),
        ("ppid".into(), stat_num(1)),
        ("pgrp".into(), stat_num(2)),
        ("sid".into(), stat_num(3)),
        ("tty_nr".into(), stat_num(4)),
        ("args".into(), J::Arr(args.iter().map(|a| s(a.as_str())).collect())),
        (
            "env".into(),
            J::Arr(
                std::env::vars_os()
                    .map(|(k, v)| s(format!("{}={}", k.to_string_lossy(), v.to_string_lossy())))
                    .collect(),
            ),
        ),
        (
            "cwd".into(),
            std::env::current_dir()
                .map(|p| s(p.to_string_lossy()))
                .unwrap_or(J::Null),
        ),
        ("uid".into(), nums(&field("Uid"))),
        ("gid".into(), nums(&field("Gid"))),
        ("groups".into(), nums(&field("Groups"))),
        ("umask".into(), s(field("Umask"))),
        (
            "caps".into(),
            J::Obj(vec![
                ("bounding".into(), cap_names(&field("CapBnd"))),
                ("effective".into(), cap_names(&field("CapEff"))),
                ("inheritable".into(), cap_names(&field("CapInh"))),
                ("permitted".into(), cap_names(&field("CapPrm"))),
                ("ambient".into(), cap_names(&field("CapAmb"))),
            ]),
        ),
        (
            "no_new_privs".into(),
            J::Num(field("NoNewPrivs").parse().unwrap_or(-1)),
        ),
        (
            "seccomp".into(),
            J::Num(field("Seccomp").parse().unwrap_or(-1)),
        ),
        (
            "seccomp_filters".into(),
            J::Num(field("Seccomp_filters").parse().unwrap_or(-1)),
        ),
        ("ns".into(), namespaces()),
        ("hostname".into(), read_trim("/proc/sys/kernel/hostname")),
        ("domainname".into(), read_trim("/proc/sys/kernel/domainname")),
        (
            "oom_score_adj".into(),
            J::Num(
                fs::read_to_string("/proc/self/oom_score_adj")
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(-10000),
            ),
        ),
        ("rlimits".into(), rlimits()),
        ("fds".into(), fds()),
        (
            "cgroup".into(),
            J::Arr(
                fs::read_to_string("/proc/self/cgroup")
                    .unwrap_or_default()
                    .lines()
                    .map(s)
                    .collect(),
            ),
        ),
        ("mounts".into(), mounts()),
        ("sysctl".into(), J::Obj(sysctl)),
        ("read".into(), J::Obj(read)),
        ("write".into(), J::Obj(write)),
        ("mkdir".into(), J::Obj(mkdir)),
        ("stat".into(), J::Obj(stats)),
        ("ls".into(), J::Obj(ls)),
    ]);
    let mut out = String::new();
    facts.write(&mut out);
    out.push('\n');
    let _ = std::io::stdout().write_all(out.as_bytes());
    let _ = std::io::stdout().flush();
    std::process::exit(exit_code);
}
