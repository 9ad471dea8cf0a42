//! The system-call side: build the ruleset from a [`Policy`] and enforce it on this thread.
//!
//! Default case (no narrowed paths): probe, create the ruleset, open the root `O_PATH`, one
//! rule, up to three `fstat`s of the stdio fds, restrict. Narrowed paths cost one directory
//! listing per ancestor directory and an `open` + `fstat` + rule per entry listed.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use landlock::{
    AccessFs, AccessNet, BitFlags, NetPort, PathBeneath, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetError, RulesetStatus,
};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, FcntlArg, OFlag};
use nix::sys::stat::Mode;

use super::tree::{self, Kind, Node, NO_EXEC_DENY, READ_ONLY_DENY};
use super::{Effective, Policy};
use crate::error::{Context, Error, Result};
use crate::sys;

/// Build the ruleset for `eff`, add the rules, and restrict the calling thread. Returns the
/// number of rules added.
pub(super) fn enforce(policy: &Policy, eff: &Effective, root: &Path) -> Result<usize> {
    let mut ruleset = Ruleset::default();
    if !eff.fs.is_empty() {
        ruleset = ruleset
            .handle_access(eff.fs)
            .map_err(|e| landlock_error("landlock handle_access", None, e))?;
    }
    if !eff.net.is_empty() {
        ruleset = ruleset
            .handle_access(eff.net)
            .map_err(|e| landlock_error("landlock handle_access", None, e))?;
    }
    if !eff.scopes.is_empty() {
        ruleset = ruleset
            .scope(eff.scopes)
            .map_err(|e| landlock_error("landlock scope", None, e))?;
    }
    // no_new_privs stays as the config says (init story step 14); the kernel accepts the
    // restriction without it because the init still holds CAP_SYS_ADMIN in its user namespace.
    let mut created = ruleset
        .create()
        .map_err(|e| landlock_error("landlock_create_ruleset", None, e))?
        .no_new_privs(false);

    let mut rules = 0;
    if !eff.fs.is_empty() {
        rules += fs_rules(&mut created, policy, eff.fs, root)?;
        rules += stdio_rules(&mut created, eff.fs)?;
    }
    let tcp = [
        (&policy.tcp_bind, AccessNet::BindTcp),
        (&policy.tcp_connect, AccessNet::ConnectTcp),
    ];
    for (ports, right) in tcp {
        if !eff.net.contains(right) {
            continue;
        }
        for &port in ports.iter().flatten() {
            (&mut created)
                .add_rule(NetPort::new(port, right))
                .map_err(|e| landlock_error("landlock_add_rule (tcp port)", None, e))?;
            rules += 1;
        }
    }

    let status = created.restrict_self().map_err(|e| {
        let err = landlock_error("landlock_restrict_self", None, e);
        match err.errno() {
            Some(Errno::EPERM) => Error::Other(format!(
                "{err} (the process needs CAP_SYS_ADMIN or no_new_privs: apply Landlock before \
                 dropping capabilities)"
            )),
            _ => err,
        }
    })?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(Error::Other(
            "landlock: the kernel accepted no part of the ruleset".to_string(),
        ));
    }
    Ok(rules)
}

/// The root (and, with narrowed paths, the tree of ancestors and their entries).
fn fs_rules(
    rs: &mut RulesetCreated,
    policy: &Policy,
    full: BitFlags<AccessFs>,
    root: &Path,
) -> Result<usize> {
    let root_fd = sys::fd::open(root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())
        .op_path("open", root)?;
    if policy.read_only.is_empty() && policy.no_exec.is_empty() {
        add(rs, root_fd.as_fd(), full, root, false)?;
        return Ok(1);
    }
    let mut tree = Node::default();
    let narrowed = [
        (&policy.read_only, READ_ONLY_DENY),
        (&policy.no_exec, NO_EXEC_DENY),
    ];
    for (paths, deny) in narrowed {
        for path in paths {
            let components = tree::resolve(path, |c| lookup(root_fd.as_fd(), c))
                .map_err(|e| Error::os("resolve", Some(Path::new(path)), e))?;
            tree.insert(&components, deny);
        }
    }
    let mut walker = Walker { rs, full, rules: 0 };
    walker.node(&tree, root_fd, true, BitFlags::EMPTY, root.to_path_buf())?;
    Ok(walker.rules)
}

/// What `components` (relative to the root) name, without following a final symlink.
fn lookup(root: BorrowedFd<'_>, components: &[OsString]) -> nix::Result<Kind> {
    let rel = tree::relative(components);
    let st = match nix::sys::stat::fstatat(
        Some(root.as_raw_fd()),
        rel.as_os_str(),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => st,
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(Kind::Missing),
        Err(e) => return Err(e),
    };
    Ok(match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink(sys::fd::readlinkat(root, Path::new(&rel))?),
        _ => Kind::Other,
    })
}

struct Walker<'a> {
    rs: &'a mut RulesetCreated,
    full: BitFlags<AccessFs>,
    rules: usize,
}

impl Walker<'_> {
    /// Grant the rights of `node` on `fd`, and for an interior directory on each of its entries.
    fn node(
        &mut self,
        node: &Node,
        fd: OwnedFd,
        is_dir: bool,
        inherited: BitFlags<AccessFs>,
        path: PathBuf,
    ) -> Result<()> {
        if node.is_leaf() || !is_dir {
            // Nothing can exist beneath a non-directory: it is a leaf whatever was asked.
            let rights = mask(node.effective(self.full, inherited), is_dir);
            self.rules += add(self.rs, fd.as_fd(), rights, &path, false)?;
            return Ok(());
        }
        let own = node.granted_on_self(self.full, inherited);
        self.rules += add(self.rs, fd.as_fd(), own, &path, false)?;
        let others = node.effective(self.full, inherited);
        let deny = inherited | node.deny;
        for name in list(fd.as_fd(), &path)? {
            let child_path = path.join(&name);
            let child = match sys::fd::openat(
                fd.as_fd(),
                Path::new(&name),
                OFlag::O_PATH | OFlag::O_NOFOLLOW,
                Mode::empty(),
            ) {
                Ok(f) => f,
                // Removed since the listing: nothing to grant.
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(Error::os("open", Some(&child_path), e)),
            };
            let kind = sys::fd::fstat(child.as_fd())
                .op_path("fstat", &child_path)?
                .st_mode
                & libc::S_IFMT;
            match node.children.get(&name) {
                Some(narrowed) => {
                    if kind == libc::S_IFLNK {
                        // It was resolved as a real directory a moment ago; fail closed.
                        return Err(Error::os("open", Some(&child_path), Errno::ELOOP));
                    }
                    self.node(narrowed, child, kind == libc::S_IFDIR, deny, child_path)?;
                }
                // A symlink is never on the path Landlock walks: it needs no rule.
                None if kind == libc::S_IFLNK => {}
                None => {
                    let rights = mask(others, kind == libc::S_IFDIR);
                    self.rules += add(self.rs, child.as_fd(), rights, &child_path, true)?;
                }
            }
        }
        Ok(())
    }
}

fn mask(rights: BitFlags<AccessFs>, is_dir: bool) -> BitFlags<AccessFs> {
    if is_dir {
        rights
    } else {
        rights & tree::file_rights()
    }
}

/// Entry names of a directory, without `.` and `..`.
fn list(dir: BorrowedFd<'_>, path: &Path) -> Result<Vec<OsString>> {
    let fd = sys::fd::openat(
        dir,
        Path::new("."),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .op_path("open", path)?;
    let mut d = nix::dir::Dir::from(fd).op_path("fdopendir", path)?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let entry = entry.op_path("readdir", path)?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if !tree::is_dot(name) {
            names.push(name.to_os_string());
        }
    }
    Ok(names)
}

/// Let the container reopen its own stdio through `/proc/self/fd/0..2` (`/dev/stdout`, as
/// nginx-style images do) when it is a file or a terminal outside the root, with the rights
/// its open mode already gives. Pipes and sockets need no rule; directories never get one.
fn stdio_rules(rs: &mut RulesetCreated, handled: BitFlags<AccessFs>) -> Result<usize> {
    let mut rules = 0;
    for fd in [
        io::stdin().as_fd(),
        io::stdout().as_fd(),
        io::stderr().as_fd(),
    ] {
        let Ok(st) = sys::fd::fstat(fd) else {
            continue;
        };
        let kind = st.st_mode & libc::S_IFMT;
        if kind != libc::S_IFREG && kind != libc::S_IFCHR {
            continue;
        }
        let Ok(flags) = nix::fcntl::fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL) else {
            continue;
        };
        let flags = OFlag::from_bits_truncate(flags);
        if flags.contains(OFlag::O_PATH) {
            continue;
        }
        let access = flags & OFlag::O_ACCMODE;
        let mut rights = BitFlags::<AccessFs>::EMPTY;
        if access == OFlag::O_RDONLY || access == OFlag::O_RDWR {
            rights |= AccessFs::ReadFile;
        }
        if access == OFlag::O_WRONLY || access == OFlag::O_RDWR {
            rights |= AccessFs::WriteFile;
            if kind == libc::S_IFREG {
                rights |= AccessFs::Truncate;
            }
        }
        if kind == libc::S_IFCHR {
            rights |= AccessFs::IoctlDev;
        }
        rules += add(rs, fd, rights & handled, Path::new("stdio"), true)?;
    }
    Ok(rules)
}

/// Add one path-beneath rule; returns how many rules were added (0 or 1). With `optional`,
/// objects Landlock cannot hold a rule on (internal filesystems: `EBADFD`) are skipped.
fn add(
    rs: &mut RulesetCreated,
    fd: BorrowedFd<'_>,
    rights: BitFlags<AccessFs>,
    path: &Path,
    optional: bool,
) -> Result<usize> {
    if rights.is_empty() {
        return Ok(0);
    }
    match rs.add_rule(PathBeneath::new(fd, rights)) {
        Ok(_) => Ok(1),
        Err(e) => {
            let err = landlock_error("landlock_add_rule", Some(path), e);
            if optional && err.errno() == Some(Errno::EBADFD) {
                Ok(0)
            } else {
                Err(err)
            }
        }
    }
}

/// Turn the crate's nested error into ours, keeping the errno when there is one.
fn landlock_error(op: &str, path: Option<&Path>, e: RulesetError) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(raw) = s
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Error::os(op, path, Errno::from_raw(raw));
        }
        source = s.source();
    }
    Error::Other(format!("{op}: {e}"))
}
