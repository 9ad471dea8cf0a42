//! The state directory: one directory per container under `--root`, locked with `flock` so two
//! commands on the same id cannot corrupt it, written atomically (temp file + rename). Status
//! is derived from the live process, not only from the file.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::sys::fd as sfd;

/// File names inside a container's state directory.
pub const STATE_FILE: &str = "state.json";
/// The container's [`crate::spec::Plan`], as `create` decided it: every later command reads
/// it, nothing re-parses the config.
pub const PLAN_FILE: &str = "plan.json";
/// The audit record ([`crate::audit::AuditRecord`]): what the container's process enforced.
pub const AUDIT_FILE: &str = "audit.json";
/// The socket `start` connects to (exists only while the container is created).
pub const START_SOCKET: &str = "start.sock";

/// Container status, as in the runtime-spec (plus `paused`, as runc reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Set up and waiting for `start`.
    Created,
    /// The user process runs.
    Running,
    /// Frozen.
    Paused,
    /// The process exited.
    Stopped,
}

impl Status {
    /// The spec's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What `create` records about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile {
    /// Container id.
    pub id: String,
    /// Host pid of the init (the container's process once started).
    pub pid: i32,
    /// Start time of that pid (field 22 of `/proc/<pid>/stat`), to detect pid reuse.
    pub pid_start_time: u64,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Root filesystem.
    pub rootfs: PathBuf,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Owner (empty: root, as runc prints it).
    #[serde(default)]
    pub owner: String,
    /// Annotations from the config.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Where its cgroups are.
    pub cgroup: Cgroup,
}

/// `--root`: the directory holding every container's state directory.
#[derive(Debug, Clone)]
pub struct StateRoot {
    path: PathBuf,
}

impl StateRoot {
    /// Use `path` (created 0700 on first use by commands that create containers).
    pub fn new(path: &Path) -> StateRoot {
        StateRoot {
            path: path.to_path_buf(),
        }
    }

    /// The default root, runc's rule: `/run/sealrun` for root, `$XDG_RUNTIME_DIR/sealrun` for
    /// anyone else (who cannot write `/run`); an error naming `--root` when neither fits.
    /// Root of a user namespace (rootless podman runs the runtime so) counts as not root when
    /// `XDG_RUNTIME_DIR` is set and `$USER` is not `root`, as for runc.
    pub fn default_path() -> Result<PathBuf> {
        let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
        let honour_xdg = if nix::unistd::geteuid().is_root() {
            xdg.is_some()
                && super::host::in_user_namespace()
                && std::env::var_os("USER").is_none_or(|u| u != "root")
        } else {
            true
        };
        if !honour_xdg {
            return Ok(PathBuf::from("/run/sealrun"));
        }
        match xdg {
            Some(dir) => Ok(Path::new(&dir).join("sealrun")),
            None => Err(Error::InvalidArgument(
                "--root: not running as root and XDG_RUNTIME_DIR is not set: give --root DIR"
                    .into(),
            )),
        }
    }

    /// The root path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every container's state, for `list`: one pass over the root's directory, each state
    /// file read through the root's descriptor (a short relative lookup, no separate
    /// existence checks), unlocked as [`StateRoot::peek`]. Entries that are not containers
    /// (no state file, a name that is no valid id) and state files being replaced are
    /// skipped. Sorted by id.
    pub fn scan(&self) -> Result<Vec<Scanned>> {
        let root = match sfd::open(
            &self.path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(Vec::new()),
            Err(e) => return Err(e).op_path("open", &self.path),
        };
        let names = sfd::read_dir_names(root.as_fd()).op_path("read", &self.path)?;
        let mut out = Vec::new();
        for name in names {
            let Some(id) = name.to_str().filter(|id| validate_id(id).is_ok()) else {
                continue;
            };
            let file = Path::new(id).join(STATE_FILE);
            let Ok(raw) = sfd::read_small(Some(root.as_fd()), &file) else {
                continue;
            };
            let Ok(state) = serde_json::from_slice::<StateFile>(&raw) else {
                continue;
            };
            let status = status_of(&state, || {
                sfd::exists_at(root.as_fd(), &Path::new(id).join(START_SOCKET))
            });
            out.push(Scanned { state, status });
        }
        out.sort_by(|a, b| a.state.id.cmp(&b.state.id));
        Ok(out)
    }

    /// Create a new container directory (fails if the id exists) and lock it. The directory is
    /// removed again when the returned guard is dropped without [`ContainerDir::commit`].
    pub fn create(&self, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(STATE_DIR_MODE)
            .create(&self.path)
            .op_path("mkdir", &self.path)?;
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(STATE_DIR_MODE))
            .op_path("chmod", &self.path)?;
        let dir = self.path.join(id);
        match std::fs::DirBuilder::new().mode(STATE_DIR_MODE).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id.to_string()))
            }
            Err(e) => return Err(e).op_path("mkdir", &dir),
        }
        // The guard removes the directory again if anything below fails.
        let mut cd = ContainerDir::open_dir(id, dir, true)?;
        cd.fresh = true;
        // Exactly 0700, whatever the caller's umask.
        sfd::fchmod(cd.fd.as_fd(), Mode::from_bits_truncate(STATE_DIR_MODE))
            .op_path("chmod", &cd.path)?;
        Ok(cd)
    }

    /// Open and lock an existing container's directory.
    pub fn open(&self, id: &str) -> Result<ContainerDir> {
        self.open_with(id, true)
    }

    /// Open an existing container's directory without waiting for its lock (`state`, `list`).
    pub fn peek(&self, id: &str) -> Result<ContainerDir> {
        self.open_with(id, false)
    }

    fn open_with(&self, id: &str, lock: bool) -> Result<ContainerDir> {
        validate_id(id)?;
        let dir = self.path.join(id);
        let cd = match ContainerDir::open_dir(id, dir, lock) {
            Err(Error::Os {
                errno: Errno::ENOENT,
                ..
            }) => return Err(Error::NotFound(id.into())),
            other => other?,
        };
        if !sfd::exists_at(cd.fd.as_fd(), Path::new(STATE_FILE)) {
            return Err(Error::NotFound(id.into()));
        }
        Ok(cd)
    }
}

/// Container ids are one path component of safe characters (as runc: `^[\w+\-.]+$`).
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid container id {id:?}: use letters, digits, '_', '+', '-' and '.'"
        )))
    }
}

/// A locked container directory.
#[derive(Debug)]
pub struct ContainerDir {
    id: String,
    path: PathBuf,
    fd: OwnedFd,
    fresh: bool,
}

impl ContainerDir {
    fn open_dir(id: &str, path: PathBuf, lock: bool) -> Result<ContainerDir> {
        let fd = sfd::open(&path, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())
            .op_path("open", &path)?;
        if lock {
            sfd::flock_exclusive(fd.as_fd()).op_path("flock", &path)?;
        }
        Ok(ContainerDir {
            id: id.to_string(),
            path,
            fd,
            fresh: false,
        })
    }

    /// Container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A short path to a file in the directory through `/proc/self/fd` (unix socket paths
    /// are limited to 108 bytes; `--root` may be long).
    pub fn short_path(&self, name: &str) -> PathBuf {
        sfd::proc_fd_path(self.fd.as_fd()).join(name)
    }

    /// The locked directory's descriptor number (closed in the cloned init).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd)
    }

    /// Keep the directory (create succeeded).
    pub fn commit(&mut self) {
        self.fresh = false;
    }

    /// Write a file atomically (temp + rename), mode [`STATE_FILE_MODE`] whatever the umask.
    pub fn write_atomic(&self, name: &str, data: &[u8]) -> Result<()> {
        write_atomic_in(
            self.fd.as_fd(),
            &self.path,
            Path::new(name),
            data,
            STATE_FILE_MODE,
        )
    }

    /// Read a JSON file `create` wrote (the Plan, or part of it; the audit record).
    pub fn load_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let path = self.path.join(name);
        let raw = std::fs::read(&path).op_path("read", &path)?;
        serde_json::from_slice(&raw)
            .map_err(|e| Error::Other(format!("{}: corrupt state file: {e}", path.display())))
    }

    /// Read the state file.
    pub fn load(&self) -> Result<StateFile> {
        let raw =
            sfd::read_small(Some(self.fd.as_fd()), Path::new(STATE_FILE)).map_err(|e| {
                match e.kind() {
                    std::io::ErrorKind::NotFound => Error::NotFound(self.id.clone()),
                    _ => Error::from(e),
                }
            })?;
        serde_json::from_slice(&raw).map_err(|e| {
            let path = self.path.join(STATE_FILE);
            Error::Other(format!("{}: corrupt state file: {e}", path.display()))
        })
    }

    /// Whether `start` has not been called yet.
    pub fn start_pending(&self) -> bool {
        sfd::exists_at(self.fd.as_fd(), Path::new(START_SOCKET))
    }

    /// The status, derived from the process (and the cgroup freezer).
    pub fn status(&self, st: &StateFile) -> Status {
        status_of(st, || self.start_pending())
    }

    /// Remove the directory and everything in it.
    pub fn remove(&mut self) -> Result<()> {
        self.fresh = false;
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).op_path("remove", &self.path),
        }
    }
}

impl Drop for ContainerDir {
    fn drop(&mut self) {
        if self.fresh {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Mode of the files in a state directory: they hold the environment (often secrets).
pub const STATE_FILE_MODE: u32 = 0o600;
/// Mode of a state directory and of `--root`.
pub const STATE_DIR_MODE: u32 = 0o700;
/// Mode of a `--pid-file` (not secret; monitors read it), as runc's under the usual umask.
pub const PID_FILE_MODE: u32 = 0o644;

/// Write `data` to `path` atomically (the pid file of `create`, `run` and `exec`), mode
/// [`PID_FILE_MODE`]. The directory may be writable by a container (a volume): see
/// [`write_atomic_in`] for why that is safe.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let name = match path.file_name() {
        Some(n) => Path::new(n),
        None => {
            return Err(Error::InvalidArgument(format!(
                "{}: not a file name",
                path.display()
            )))
        }
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = sfd::open(parent, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())
        .op_path("open", parent)?;
    write_atomic_in(dir.as_fd(), parent, name, data, PID_FILE_MODE)
}

/// Write `data` as `name` in the directory `dir` (`dir_path` only names it in errors),
/// atomically and with exactly `mode`. The temp file gets an unpredictable name and is created
/// with `O_CREAT|O_EXCL|O_NOFOLLOW` relative to `dir`, so a symlink planted in the directory is
/// never followed; `renameat` then replaces whatever `name` is (a planted symlink included)
/// instead of following it.
pub fn write_atomic_in(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    name: &Path,
    data: &[u8],
    mode: u32,
) -> Result<()> {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
    let mut attempt = 0;
    let (tmp, fd) = loop {
        let tmp = PathBuf::from(format!(".sealrun-{:016x}.tmp", random_u64()));
        match sfd::openat(dir, &tmp, flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => break (tmp, fd),
            Err(Errno::EEXIST) if attempt < 16 => attempt += 1,
            Err(e) => return Err(Error::os("create", Some(&dir_path.join(&tmp)), e)),
        }
    };
    let written = (|| {
        sfd::fchmod(fd.as_fd(), Mode::from_bits_truncate(mode)).op("fchmod")?;
        let mut f = std::fs::File::from(fd);
        f.write_all(data).op("write")?;
        sfd::fsync(f.as_fd()).op("fsync")?;
        sfd::renameat(dir, &tmp, dir, name).op_path("rename", &dir_path.join(name))
    })();
    if written.is_err() {
        let _ = sfd::unlinkat(dir, &tmp, false);
    }
    written
}

/// 64 unpredictable bits (std seeds every `RandomState` from the OS's random source).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// Fields of `/proc/<pid>/stat` after the command name: `(state, starttime)`.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = sfd::read_small_string(None, Path::new(&format!("/proc/{pid}/stat"))).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // starttime is field 22; after ')' the first field is 3 (state), so it is the 20th here.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// One container found by [`StateRoot::scan`].
#[derive(Debug)]
pub struct Scanned {
    /// Its state file.
    pub state: StateFile,
    /// Its status then.
    pub status: Status,
}

/// The status of the container `st` describes: from its init (alive, the same process), then
/// whether `start` is still awaited (asked only of a live init), then the cgroup freezer.
fn status_of(st: &StateFile, start_pending: impl FnOnce() -> bool) -> Status {
    if !process_alive(st.pid, st.pid_start_time) {
        return Status::Stopped;
    }
    if start_pending() {
        return Status::Created;
    }
    if st.cgroup.is_frozen().unwrap_or(false) {
        return Status::Paused;
    }
    Status::Running
}

/// Whether `pid` is alive (not a zombie) and is still the process that started at `start`.
pub fn process_alive(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_stat(pid) {
        Some((state, s)) => s == start && state != 'Z' && state != 'X',
        None => false,
    }
}

/// The pid as a nix `Pid`.
pub fn pid_of(st: &StateFile) -> Pid {
    Pid::from_raw(st.pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        for ok in ["a", "abc-123", "x_y.z+1"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn own_process_is_alive_and_start_time_guards_reuse() {
        let me = std::process::id() as i32;
        let (state, start) = proc_stat(me).unwrap();
        assert_ne!(state, 'Z');
        assert!(process_alive(me, start));
        assert!(!process_alive(me, start + 1));
        assert!(!process_alive(0, 0));
    }

    #[test]
    fn scan_finds_containers_and_skips_everything_else() {
        let root = std::env::temp_dir().join(format!("sealrun-scan-{}", std::process::id()));
        let r = StateRoot::new(&root);
        assert!(r.scan().unwrap().is_empty(), "a missing root lists nothing");
        let me = std::process::id() as i32;
        let state = |id: &str, pid: i32, start: u64| StateFile {
            id: id.into(),
            pid,
            pid_start_time: start,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-12-03T00:00:00Z".into(),
            owner: String::new(),
            annotations: HashMap::new(),
            cgroup: Cgroup::default(),
        };
        let put = |dir: &str, st: &StateFile| {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            let json = serde_json::to_vec(st).unwrap();
            std::fs::write(root.join(dir).join(STATE_FILE), json).unwrap();
        };
        let (_, start) = proc_stat(me).unwrap();
        put("b-gone", &state("b-gone", 0, 0));
        put("a-live", &state("a-live", me, start));
        put("c-created", &state("c-created", me, start));
        std::fs::write(root.join("c-created").join(START_SOCKET), b"").unwrap();
        put("bad id", &state("bad id", me, start));
        std::fs::create_dir_all(root.join("no-state")).unwrap();
        std::fs::create_dir_all(root.join("corrupt")).unwrap();
        std::fs::write(root.join("corrupt").join(STATE_FILE), b"{").unwrap();
        std::fs::write(root.join("a-file"), b"").unwrap();
        let found: Vec<(String, Status)> = r
            .scan()
            .unwrap()
            .into_iter()
            .map(|c| (c.state.id, c.status))
            .collect();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            found,
            [
                ("a-live".to_string(), Status::Running),
                ("b-gone".to_string(), Status::Stopped),
                ("c-created".to_string(), Status::Created),
            ]
        );
    }

    #[test]
    fn create_is_exclusive_and_uncommitted_dirs_vanish() {
        let root = std::env::temp_dir().join(format!("sealrun-state-{}", std::process::id()));
        let r = StateRoot::new(&root);
        {
            let _c = r.create("c1").unwrap();
            assert!(matches!(r.create("c1"), Err(Error::AlreadyExists(_))));
        }
        assert!(!root.join("c1").exists());
        assert!(matches!(r.open("c1"), Err(Error::NotFound(_))));
        std::fs::remove_dir_all(root).unwrap();
    }
}
