//! Which cgroup hierarchies this host has (from `/proc/self/mountinfo`), and where a
//! container's cgroup lives in each of them. Pure: every function takes the file text.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only cgroup v1 hierarchies.
    V1,
    /// Only the unified cgroup2 hierarchy.
    #[default]
    V2,
    /// v1 hierarchies for the controllers plus a cgroup2 hierarchy (usually
    /// `/sys/fs/cgroup/unified`) that holds processes and whatever controllers v1 left to it.
    Hybrid,
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    /// v1: the controllers bound to it (`cpu`, `cpuacct`, `name=systemd`); empty for cgroup2.
    pub controllers: Vec<String>,
    /// `true` for cgroup2.
    pub v2: bool,
    /// Mount point.
    pub mount_point: PathBuf,
    /// The cgroup (path inside the hierarchy) that is the root of this mount.
    pub root: PathBuf,
}

/// The host's cgroup hierarchies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// v1, v2 or hybrid.
    pub mode: Mode,
    /// Every hierarchy a container joins: each v1 hierarchy once, then the cgroup2 one.
    pub hierarchies: Vec<Mounted>,
}

/// Undo mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// cgroup v1 super options that are not controllers.
fn is_controller_option(opt: &str) -> bool {
    !matches!(
        opt,
        "rw" | "ro"
            | "noprefix"
            | "xattr"
            | "clone_children"
            | "cpuset_v2_mode"
            | "favordynmods"
            | "nofavordynmods"
            | "none"
    ) && !opt.starts_with("release_agent=")
}

/// Parse `/proc/self/mountinfo` text into the host's layout. Mounts hidden by a later mount on
/// (or above) their mount point are ignored, and a hierarchy mounted twice counts once.
pub fn parse_mountinfo(text: &str) -> Layout {
    let mut found: Vec<Mounted> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.is_empty() {
            continue;
        }
        let mount_point = PathBuf::from(unescape(l[4]));
        // A later mount on or above an earlier one hides it.
        found.retain(|m| !m.mount_point.starts_with(&mount_point));
        let root = PathBuf::from(unescape(l[3]));
        match r[0] {
            "cgroup2" => found.push(Mounted {
                controllers: Vec::new(),
                v2: true,
                mount_point,
                root,
            }),
            "cgroup" => {
                let opts = r.get(2).copied().unwrap_or("");
                let mut controllers: Vec<String> = opts
                    .split(',')
                    .filter(|o| is_controller_option(o))
                    .map(str::to_string)
                    .collect();
                controllers.sort();
                if controllers.is_empty() {
                    continue;
                }
                found.push(Mounted {
                    controllers,
                    v2: false,
                    mount_point,
                    root,
                });
            }
            _ => {}
        }
    }
    let mut hierarchies: Vec<Mounted> = Vec::new();
    for m in found.iter().filter(|m| !m.v2) {
        if !hierarchies.iter().any(|h| h.controllers == m.controllers) {
            hierarchies.push(m.clone());
        }
    }
    let has_v1 = hierarchies
        .iter()
        .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
    let v2: Vec<&Mounted> = found.iter().filter(|m| m.v2).collect();
    // Prefer the conventional places when cgroup2 is mounted more than once.
    let preferred = if has_v1 {
        "/sys/fs/cgroup/unified"
    } else {
        "/sys/fs/cgroup"
    };
    let unified = v2
        .iter()
        .find(|m| m.mount_point == Path::new(preferred))
        .or_else(|| v2.first())
        .map(|m| (*m).clone());
    let mode = match (has_v1, &unified) {
        (true, Some(_)) => Mode::Hybrid,
        (true, None) => Mode::V1,
        (false, _) => Mode::V2,
    };
    if mode == Mode::V2 {
        // Named v1 hierarchies without controllers have nothing to offer on a v2 host.
        hierarchies.clear();
    }
    hierarchies.extend(unified);
    Layout { mode, hierarchies }
}

/// One line of `/proc/self/cgroup`: (controllers, path). cgroup2's line has no controllers.
pub fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, PathBuf)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let ctl = parts.next()?;
            let path = parts.next()?;
            let mut controllers: Vec<String> = ctl
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            controllers.sort();
            Some((controllers, PathBuf::from(path)))
        })
        .collect()
}

/// Lexically clean a cgroupsPath like runc's `CleanPath`: `.` and `..` are resolved, and a
/// relative path cannot climb above its starting point.
pub fn clean_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().unwrap_or_default()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// The container's cgroup directory in hierarchy `h`. `inner` is a cleaned cgroupsPath:
/// absolute paths are taken from the hierarchy's root; relative ones from the caller's own
/// cgroup (`own`, from /proc/self/cgroup), or from its parent on a pure v2 host, as runc 1.1
/// does (the caller's own v2 cgroup usually has processes, so it cannot have controllers
/// enabled for children).
pub fn dir_in(
    h: &Mounted,
    mode: Mode,
    inner: &str,
    own: &[(Vec<String>, PathBuf)],
) -> Result<PathBuf> {
    let rel = inner.trim_start_matches('/');
    if inner.starts_with('/') {
        return Ok(h.mount_point.join(rel));
    }
    let mine = own
        .iter()
        .find(|(c, _)| *c == h.controllers && (h.v2 == c.is_empty()))
        .or_else(|| {
            own.iter()
                .find(|(c, _)| c.iter().any(|x| h.controllers.contains(x)))
        })
        .map(|(_, p)| p.clone())
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "cannot find this process's cgroup for the hierarchy at {}",
                h.mount_point.display()
            ))
        })?;
    let mine = if h.v2 && mode == Mode::V2 {
        mine.parent().map(Path::to_path_buf).unwrap_or(mine)
    } else {
        mine
    };
    // In a cgroup namespace, a hierarchy mounted from outside it shows a root above the
    // namespace's (`/..`, `/../..`): cleaned like runc's (`/`), the caller's cgroup as it
    // sees it (`/` or below) is taken from the mount point.
    let root = PathBuf::from(clean_path(&h.root.to_string_lossy()));
    let below_root = mine.strip_prefix(&root).map_err(|_| {
        Error::Unsupported(format!(
            "this process's cgroup {} is outside the hierarchy mounted at {}",
            mine.display(),
            h.mount_point.display()
        ))
    })?;
    Ok(h.mount_point.join(below_root).join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const V2: &str = "\
25 21 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    const V1: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,net_cls,net_prio
37 30 0:33 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,devices
90 30 0:31 /docker /mnt/mem\\040copy rw - cgroup cgroup rw,memory
";

    #[test]
    fn hybrid_layout_is_detected_with_every_hierarchy() {
        let l = parse_mountinfo(HYBRID);
        assert_eq!(l.mode, Mode::Hybrid);
        assert_eq!(l.hierarchies.len(), 10);
        assert_eq!(l.hierarchies[0].controllers, vec!["cpu"]);
        assert_eq!(l.hierarchies[8].controllers, vec!["name=systemd"]);
        let u = l.hierarchies.last().unwrap();
        assert!(u.v2);
        assert_eq!(u.mount_point, Path::new("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn pure_v2_layout_has_one_hierarchy() {
        let l = parse_mountinfo(V2);
        assert_eq!(l.mode, Mode::V2);
        assert_eq!(l.hierarchies.len(), 1);
        assert!(l.hierarchies[0].v2);
        assert_eq!(l.hierarchies[0].mount_point, Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn v1_layout_keeps_comounted_controllers_together_and_skips_duplicates() {
        let l = parse_mountinfo(V1);
        assert_eq!(l.mode, Mode::V1);
        let names: Vec<String> = l
            .hierarchies
            .iter()
            .map(|h| h.controllers.join(","))
            .collect();
        assert_eq!(
            names,
            [
                "name=systemd",
                "cpu,cpuacct",
                "memory",
                "net_cls,net_prio",
                "devices"
            ]
        );
        assert!(l.hierarchies.iter().all(|h| !h.v2));
    }

    #[test]
    fn shadowed_cgroup2_mount_is_ignored() {
        let text = format!("{HYBRID}50 41 0:60 / /sys/fs/cgroup/unified rw - tmpfs none rw\n");
        let l = parse_mountinfo(&text);
        assert_eq!(l.mode, Mode::V1);
        assert!(l.hierarchies.iter().all(|h| !h.v2));
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape("/mnt/mem\\040copy"), "/mnt/mem copy");
        assert_eq!(unescape("plain"), "plain");
        assert_eq!(unescape("trailing\\"), "trailing\\");
    }

    #[test]
    fn paths_are_cleaned_like_runc() {
        assert_eq!(clean_path("/a/../b/./c/"), "/b/c");
        assert_eq!(clean_path("/../../x"), "/x");
        assert_eq!(clean_path("../../x/y"), "x/y");
        assert_eq!(clean_path("a//b"), "a/b");
        assert_eq!(clean_path("/"), "/");
        assert_eq!(clean_path(".."), "");
    }

    const OWN: &str = "\
9:name=systemd:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/user
0::/init.scope
";

    #[test]
    fn absolute_paths_start_at_the_hierarchy_root() {
        let l = parse_mountinfo(HYBRID);
        let own = parse_proc_cgroup(OWN);
        let mem = l
            .hierarchies
            .iter()
            .find(|h| h.controllers == ["memory"])
            .unwrap();
        assert_eq!(
            dir_in(mem, l.mode, "/sealrun/c1", &own).unwrap(),
            Path::new("/sys/fs/cgroup/memory/sealrun/c1")
        );
    }

    #[test]
    fn relative_paths_start_at_the_callers_cgroup() {
        let l = parse_mountinfo(HYBRID);
        let own = parse_proc_cgroup(OWN);
        let find = |c: &str| l.hierarchies.iter().find(|h| h.controllers == [c]).unwrap();
        assert_eq!(
            dir_in(find("memory"), l.mode, "x/c1", &own).unwrap(),
            Path::new("/sys/fs/cgroup/memory/process_api/abc/x/c1")
        );
        assert_eq!(
            dir_in(find("cpu"), l.mode, "c1", &own).unwrap(),
            Path::new("/sys/fs/cgroup/cpu/user/c1")
        );
        // Hybrid: the unified hierarchy is joined like a v1 one (runc's "" subsystem).
        let unified = l.hierarchies.last().unwrap();
        assert_eq!(
            dir_in(unified, l.mode, "c1", &own).unwrap(),
            Path::new("/sys/fs/cgroup/unified/init.scope/c1")
        );
        // A hierarchy this process is not in cannot take a relative path.
        assert!(dir_in(find("pids"), l.mode, "c1", &own).is_err());
    }

    #[test]
    fn relative_paths_on_pure_v2_start_at_the_callers_parent() {
        let l = parse_mountinfo(V2);
        let own = parse_proc_cgroup("0::/user.slice/session-1.scope\n");
        assert_eq!(
            dir_in(&l.hierarchies[0], l.mode, "c1", &own).unwrap(),
            Path::new("/sys/fs/cgroup/user.slice/c1")
        );
    }

    #[test]
    fn relative_paths_honour_the_mount_root() {
        let h = Mounted {
            controllers: vec!["memory".into()],
            v2: false,
            mount_point: PathBuf::from("/sys/fs/cgroup/memory"),
            root: PathBuf::from("/docker/abc"),
        };
        let own = parse_proc_cgroup("4:memory:/docker/abc/sub\n");
        assert_eq!(
            dir_in(&h, Mode::V1, "c1", &own).unwrap(),
            Path::new("/sys/fs/cgroup/memory/sub/c1")
        );
        let outside = parse_proc_cgroup("4:memory:/elsewhere\n");
        assert!(dir_in(&h, Mode::V1, "c1", &outside).is_err());
    }

    #[test]
    fn relative_paths_in_a_cgroup_namespace_start_at_its_root() {
        let h = Mounted {
            controllers: vec!["memory".into()],
            v2: false,
            mount_point: PathBuf::from("/sys/fs/cgroup/memory"),
            root: PathBuf::from("/../.."),
        };
        let own = parse_proc_cgroup("4:memory:/\n");
        assert_eq!(
            dir_in(&h, Mode::V1, "x/c1", &own).unwrap(),
            Path::new("/sys/fs/cgroup/memory/x/c1")
        );
    }
}
