//! Pure part of the filesystem rules: which rights go where when some paths are narrowed.
//!
//! Landlock is allow-list only and a right granted on a directory holds for everything beneath
//! it, so "read-only beneath /etc" cannot be expressed as "everything on / minus /etc". Instead
//! the narrowed paths form a tree rooted at the container's root:
//!
//! - a *leaf* (a narrowed path with nothing narrowed beneath it) gets the full rights minus its
//!   own restrictions and those of narrowed ancestors;
//! - an *interior* directory (an ancestor of a narrowed path) gets only the rights that every
//!   narrowed path beneath it keeps, because whatever it gets is inherited by all of them;
//! - every other entry of an interior directory (enumerated when the rules are built) gets the
//!   interior directory's own effective rights, as if nothing were narrowed there.
//!
//! The price: an interior directory itself only has the narrowed rights, so nothing can be
//! created, removed or renamed *directly* in it (with a read-only path beneath), and entries
//! created there after start only get the narrowed rights.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path};

use landlock::{make_bitflags, AccessFs, BitFlags, ABI};
use nix::errno::Errno;

/// Rights taken away by `read-only`: everything that changes the filesystem. Reading, listing,
/// executing, device ioctls and connecting to pathname sockets stay.
pub const READ_ONLY_DENY: BitFlags<AccessFs> = make_bitflags!(AccessFs::{
    WriteFile | RemoveDir | RemoveFile | MakeChar | MakeDir | MakeReg | MakeSock | MakeFifo
        | MakeBlock | MakeSym | Refer | Truncate
});

/// Rights taken away by `no-exec`.
pub const NO_EXEC_DENY: BitFlags<AccessFs> = make_bitflags!(AccessFs::{Execute});

/// Rights that make sense on a non-directory (the kernel refuses directory rights on files),
/// as the landlock crate knows them for its newest ABI.
pub fn file_rights() -> BitFlags<AccessFs> {
    AccessFs::from_file(ABI::V10)
}

/// One directory level of the narrowed-path tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// Rights removed at this path and beneath it.
    pub deny: BitFlags<AccessFs>,
    /// Narrowed paths beneath, by entry name.
    pub children: BTreeMap<OsString, Node>,
}

impl Node {
    /// Narrow `path` (components relative to the root; empty is the root itself) by `deny`.
    pub fn insert(&mut self, path: &[OsString], deny: BitFlags<AccessFs>) {
        match path.split_first() {
            None => self.deny |= deny,
            Some((first, rest)) => self
                .children
                .entry(first.clone())
                .or_default()
                .insert(rest, deny),
        }
    }

    /// Whether nothing is narrowed beneath this node.
    pub fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }

    /// Union of every restriction at or beneath this node.
    pub fn subtree_deny(&self) -> BitFlags<AccessFs> {
        self.children
            .values()
            .fold(self.deny, |acc, c| acc | c.subtree_deny())
    }

    /// Rights at this node's level: `full` minus its own restrictions and those inherited from
    /// narrowed ancestors. A leaf gets them; so does every entry of an interior directory that
    /// is not narrowed itself.
    pub fn effective(
        &self,
        full: BitFlags<AccessFs>,
        inherited: BitFlags<AccessFs>,
    ) -> BitFlags<AccessFs> {
        full & !(inherited | self.deny)
    }

    /// Rights granted on an interior directory itself: only what every narrowed path beneath it
    /// keeps, since a right on a directory holds for all of its subtree. Equal to
    /// [`Node::effective`] for a leaf.
    pub fn granted_on_self(
        &self,
        full: BitFlags<AccessFs>,
        inherited: BitFlags<AccessFs>,
    ) -> BitFlags<AccessFs> {
        full & !(inherited | self.subtree_deny())
    }
}

/// What a path component is, as seen by [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// Anything else that exists and is not a symlink.
    Other,
    /// A symlink with this target.
    Symlink(OsString),
    /// Nothing there.
    Missing,
}

/// The kernel's limit on symlinks followed in one lookup.
const MAX_SYMLINKS: u32 = 40;

/// Resolve an absolute container path to the components of the object it names, following
/// symlinks *inside* the root (absolute targets and `..` stop at the root, as after
/// `pivot_root`). `lookup` reports what the given canonical components name. Components past the
/// first missing one are kept as written: the path may not exist, it is still narrowed.
pub fn resolve(
    path: &str,
    mut lookup: impl FnMut(&[OsString]) -> nix::Result<Kind>,
) -> nix::Result<Vec<OsString>> {
    let mut pending: VecDeque<OsString> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(OsString::from)
        .collect();
    let mut out: Vec<OsString> = Vec::new();
    let mut links = 0;
    let mut missing = false;
    while let Some(comp) = pending.pop_front() {
        if comp == "." {
            continue;
        }
        if comp == ".." {
            out.pop();
            continue;
        }
        out.push(comp);
        if missing {
            continue;
        }
        match lookup(&out)? {
            Kind::Dir => {}
            Kind::Other | Kind::Missing => missing = true,
            Kind::Symlink(target) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                out.pop();
                let target = Path::new(&target);
                if target.is_absolute() {
                    out.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push_front(n.to_os_string()),
                        Component::ParentDir => pending.push_front(OsString::from("..")),
                        Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Join canonical components into a path relative to the root (`.` for the root itself).
pub fn relative(components: &[OsString]) -> OsString {
    if components.is_empty() {
        return OsString::from(".");
    }
    let mut s = OsString::new();
    for (i, c) in components.iter().enumerate() {
        if i > 0 {
            s.push("/");
        }
        s.push(c);
    }
    s
}

/// Whether an entry name is `.` or `..`.
pub fn is_dot(name: &OsStr) -> bool {
    name == "." || name == ".."
}

#[cfg(test)]
mod tests {
    use super::*;
    use landlock::Access;
    use std::collections::HashMap;

    fn comps(p: &str) -> Vec<OsString> {
        p.split('/')
            .filter(|c| !c.is_empty())
            .map(OsString::from)
            .collect()
    }

    fn full() -> BitFlags<AccessFs> {
        AccessFs::from_all(ABI::V7)
    }

    #[test]
    fn no_narrowing_is_one_leaf_with_full_rights() {
        let root = Node::default();
        assert!(root.is_leaf());
        assert_eq!(root.granted_on_self(full(), BitFlags::EMPTY), full());
    }

    #[test]
    fn read_only_etc() {
        let mut root = Node::default();
        root.insert(&comps("/etc"), READ_ONLY_DENY);
        assert!(!root.is_leaf());
        // The root itself only keeps what /etc keeps: no creating directly in /.
        let own = root.granted_on_self(full(), BitFlags::EMPTY);
        assert_eq!(own, full() & !READ_ONLY_DENY);
        assert!(own.contains(AccessFs::ReadDir | AccessFs::ReadFile | AccessFs::Execute));
        assert!(!own.contains(AccessFs::MakeReg));
        // Siblings of /etc keep everything.
        assert_eq!(root.effective(full(), BitFlags::EMPTY), full());
        let etc = &root.children[OsStr::new("etc")];
        assert!(etc.is_leaf());
        assert_eq!(
            etc.granted_on_self(full(), root.deny),
            full() & !READ_ONLY_DENY
        );
    }

    #[test]
    fn nested_restrictions_accumulate_downwards() {
        let mut root = Node::default();
        root.insert(&comps("/usr"), READ_ONLY_DENY);
        root.insert(&comps("/usr/local/bin"), NO_EXEC_DENY);
        let usr = &root.children[OsStr::new("usr")];
        let local = &usr.children[OsStr::new("local")];
        let bin = &local.children[OsStr::new("bin")];
        let ro = full() & !READ_ONLY_DENY;
        // / and /usr and /usr/local carry only what /usr/local/bin keeps.
        assert_eq!(
            root.granted_on_self(full(), BitFlags::EMPTY),
            ro & !NO_EXEC_DENY
        );
        assert_eq!(usr.granted_on_self(full(), root.deny), ro & !NO_EXEC_DENY);
        // Other entries of /usr and /usr/local are read-only but executable.
        assert_eq!(usr.effective(full(), root.deny), ro);
        assert_eq!(local.effective(full(), usr.deny), ro);
        assert_eq!(
            bin.granted_on_self(full(), usr.deny | local.deny),
            ro & !NO_EXEC_DENY
        );
        // Other entries of / are untouched.
        assert_eq!(root.effective(full(), BitFlags::EMPTY), full());
    }

    #[test]
    fn narrowing_the_root_itself() {
        let mut root = Node::default();
        root.insert(&[], READ_ONLY_DENY);
        assert!(root.is_leaf());
        assert_eq!(
            root.granted_on_self(full(), BitFlags::EMPTY),
            full() & !READ_ONLY_DENY
        );
    }

    #[test]
    fn file_rights() {
        let f = super::file_rights();
        assert!(f.contains(AccessFs::Execute | AccessFs::ReadFile | AccessFs::WriteFile));
        assert!(f.contains(AccessFs::Truncate | AccessFs::IoctlDev));
        assert!(!f.intersects(AccessFs::ReadDir | AccessFs::MakeReg | AccessFs::RemoveFile));
    }

    /// A fake filesystem: path (relative, `/`-joined) → kind.
    fn fake(entries: &[(&str, Kind)]) -> impl FnMut(&[OsString]) -> nix::Result<Kind> {
        let map: HashMap<String, Kind> = entries
            .iter()
            .map(|(p, k)| (p.to_string(), k.clone()))
            .collect();
        move |c: &[OsString]| {
            let key = relative(c).into_string().unwrap();
            Ok(map.get(&key).cloned().unwrap_or(Kind::Missing))
        }
    }

    fn link(t: &str) -> Kind {
        Kind::Symlink(OsString::from(t))
    }

    #[test]
    fn resolve_follows_symlinks_inside_the_root() {
        let mut fs = fake(&[
            ("usr", Kind::Dir),
            ("usr/lib", Kind::Dir),
            ("usr/bin", Kind::Dir),
            ("lib", link("usr/lib")),
            ("bin", link("/usr/bin")),
            ("etc", Kind::Dir),
            ("etc/passwd", Kind::Other),
            ("etc/up", link("../../../../usr")),
            ("loop", link("loop")),
        ]);
        assert_eq!(resolve("/lib", &mut fs).unwrap(), comps("usr/lib"));
        assert_eq!(resolve("/bin", &mut fs).unwrap(), comps("usr/bin"));
        assert_eq!(resolve("/lib/x/y", &mut fs).unwrap(), comps("usr/lib/x/y"));
        assert_eq!(
            resolve("/etc/passwd", &mut fs).unwrap(),
            comps("etc/passwd")
        );
        // `..` in a target stops at the root.
        assert_eq!(resolve("/etc/up/lib", &mut fs).unwrap(), comps("usr/lib"));
        assert_eq!(resolve("/", &mut fs).unwrap(), Vec::<OsString>::new());
        assert_eq!(
            resolve("/nope/deeper", &mut fs).unwrap(),
            comps("nope/deeper")
        );
        assert_eq!(resolve("/loop", &mut fs), Err(Errno::ELOOP));
    }

    #[test]
    fn resolve_passes_lookup_errors_through() {
        let r = resolve("/a", |_| Err(Errno::EACCES));
        assert_eq!(r, Err(Errno::EACCES));
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative(&[]), OsString::from("."));
        assert_eq!(relative(&comps("a/b")), OsString::from("a/b"));
    }
}
