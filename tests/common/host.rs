//! Looking at (and cleaning) the host: mounts under a directory, cgroup directories in every
//! hierarchy, processes by pid, by cgroup, or by the marker variable the harness puts in the
//! runtime's environment.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every mounted cgroup hierarchy: `/sys/fs/cgroup/<name>` (v1 controllers, `systemd`, and
/// `unified` for cgroup2 on this hybrid host), or `/sys/fs/cgroup` itself on a pure v2 host.
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    let mut v: Vec<PathBuf> = fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every directory at or below `rel` (relative to each hierarchy), deepest first.
pub fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(d) = fs::read_dir(dir) {
            for e in d.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(dir.to_path_buf());
    }
    let mut out = Vec::new();
    for h in cgroup_hierarchies() {
        let d = h.join(rel.trim_start_matches('/'));
        if d.is_dir() {
            walk(&d, &mut out);
        }
    }
    out
}

/// Pids in any cgroup at or below `rel`.
pub fn cgroup_pids(rel: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = cgroup_dirs(rel)
        .iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort();
    pids.dedup();
    pids
}

/// `(state, starttime)` of a pid from /proc/<pid>/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let mut f = after.split_whitespace();
    let state = f.next()?.chars().next()?;
    let start = f.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether `pid` still runs (not a zombie) and is the process that started at `start`.
pub fn alive(pid: i32, start: u64) -> bool {
    matches!(proc_stat(pid), Some((s, t)) if t == start && s != 'Z' && s != 'X')
}

/// Pids of every process whose environment holds `needle` (`NAME=value`).
pub fn pids_with_env(needle: &str) -> Vec<i32> {
    let mut needle_z = needle.as_bytes().to_vec();
    needle_z.push(0);
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let Ok(env) = fs::read(e.path().join("environ")) else {
            continue;
        };
        let hit = env.starts_with(&needle_z)
            || env
                .windows(needle_z.len() + 1)
                .any(|w| w[0] == 0 && w[1..] == needle_z[..]);
        if hit && proc_stat(pid).is_some_and(|(s, _)| s != 'Z') {
            out.push(pid);
        }
    }
    out
}

/// Mount points (in our mount namespace) at or under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    let mut v: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .map(PathBuf::from)
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    v
}

/// Mount points of every `fstype` mount (`cgroup`, `cgroup2`) in our mount namespace, with
/// its super options (a v1 cgroup mount's controllers: `rw,cpu`).
pub fn mounts_of_type(fstype: &str) -> Vec<(PathBuf, String)> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut r = right.split(' ');
            if r.next()? != fstype {
                return None;
            }
            let opts = r.nth(1).unwrap_or("").to_string();
            Some((PathBuf::from(unescape(left.split(' ').nth(4)?)), opts))
        })
        .collect()
}

/// v1 cgroup mounts that hold a controller (the kernel's /proc/cgroups names them), not only
/// a named hierarchy such as `name=systemd`.
pub fn v1_controller_mounts() -> Vec<PathBuf> {
    let known = fs::read_to_string("/proc/cgroups").unwrap_or_default();
    let controllers: Vec<&str> = known
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    mounts_of_type("cgroup")
        .into_iter()
        .filter(|(_, opts)| opts.split(',').any(|o| controllers.contains(&o)))
        .map(|(p, _)| p)
        .collect()
}

fn unescape(f: &str) -> String {
    let b = f.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(n) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x"), 8)
            {
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

/// Lazily unmount everything at or under `dir` (repeats for stacked mounts).
pub fn unmount_under(dir: &Path) {
    for _ in 0..16 {
        let m = mounts_under(dir);
        if m.is_empty() {
            return;
        }
        for p in m {
            let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// SIGKILL `pid` if it still is the process that started at `start`.
pub fn kill_if_same(pid: i32, start: u64) {
    if alive(pid, start) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// SIGKILL a pid found a moment ago (in our cgroup or carrying our marker).
pub fn kill_pid(pid: i32) {
    if let Some((_, start)) = proc_stat(pid) {
        kill_if_same(pid, start);
    }
}

/// Poll `cond` every 10 ms until it holds or `limit` passes; returns whether it held. A guard
/// against hangs, never a speed assertion.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Remove every cgroup directory at or below `rel` in every hierarchy (deepest first),
/// killing what is inside first. Retries while processes leave.
pub fn remove_cgroups(rel: &str) {
    if rel.trim_matches('/').is_empty() {
        return;
    }
    wait_until(Duration::from_secs(10), || {
        for d in cgroup_dirs(rel) {
            // A paused container cannot die until thawed.
            if d.join("freezer.state").exists() {
                let _ = fs::write(d.join("freezer.state"), "THAWED");
            }
            if d.join("cgroup.freeze").exists() {
                let _ = fs::write(d.join("cgroup.freeze"), "0");
            }
        }
        for pid in cgroup_pids(rel) {
            kill_pid(pid);
        }
        for d in cgroup_dirs(rel) {
            let _ = fs::remove_dir(&d);
        }
        cgroup_dirs(rel).is_empty()
    });
}

/// Receive one message on a unix socket into `buf`: how many bytes came, and the first file
/// descriptor passed with it (`SCM_RIGHTS`, close-on-exec), if any.
pub fn recv_with_fd(
    conn: &std::os::unix::net::UnixStream,
    buf: &mut [u8],
) -> nix::Result<(usize, Option<std::os::fd::OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fd = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed these fds for us; nobody else owns them.
            fd = fds.first().map(|f| unsafe { OwnedFd::from_raw_fd(*f) });
            break;
        }
    }
    Ok((msg.bytes, fd))
}
