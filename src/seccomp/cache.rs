//! The compiled program `create` keeps in the container's state directory, so that `exec`
//! loads exactly the filter the container's init loaded without compiling the profile again
//! (compiling is most of the runtime's own work in `exec`).
//!
//! Format: `SRBPF\01\0`, the number of filters (u32 LE), then per filter its
//! `SECCOMP_FILTER_FLAG_*` bits (u32 LE), its length (u32 LE) and its instructions as the
//! kernel lays them out (`code` u16 LE, `jt`, `jf`, `k` u32 LE). Profiles that hand a listener
//! to a seccomp agent are not kept: `exec` compiles those, as before. Anything unexpected in
//! the file (another version, a short or long read, unknown flags) makes `exec` compile too.

use super::{Compiled, Filter};
use crate::sys::seccomp::{FilterFlags, SockFilter};

const MAGIC: &[u8; 8] = b"SRBPF\x001\x00";

/// Every flag a kept filter may carry.
const KNOWN_FLAGS: [FilterFlags; 4] = [
    FilterFlags::TSYNC,
    FilterFlags::LOG,
    FilterFlags::SPEC_ALLOW,
    FilterFlags::TSYNC_ESRCH,
];

impl Compiled {
    /// The bytes to keep for `exec`; `None` when the profile uses a listener.
    pub fn to_cache(&self) -> Option<Vec<u8>> {
        if self.listener.is_some() || self.filters.is_empty() {
            return None;
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&(self.filters.len() as u32).to_le_bytes());
        for f in &self.filters {
            out.extend_from_slice(&f.flags.bits().to_le_bytes());
            out.extend_from_slice(&(f.program.len() as u32).to_le_bytes());
            for i in &f.program {
                out.extend_from_slice(&i.code.to_le_bytes());
                out.extend_from_slice(&[i.jt, i.jf]);
                out.extend_from_slice(&i.k.to_le_bytes());
            }
        }
        Some(out)
    }

    /// A program kept by [`Compiled::to_cache`] (no summary, warnings or listener: `exec`
    /// uses none of them).
    pub fn from_cache(bytes: &[u8]) -> Option<Compiled> {
        let mut r = Reader(bytes.strip_prefix(MAGIC)?);
        let count = r.u32()?;
        let mut filters = Vec::new();
        for _ in 0..count {
            let flags = flags_from(r.u32()?)?;
            let len = r.u32()? as usize;
            if len == 0 || len > super::bpf::MAX_INSNS {
                return None;
            }
            let mut program = Vec::with_capacity(len);
            for _ in 0..len {
                let code = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
                let (jt, jf) = match r.take(2)? {
                    &[jt, jf] => (jt, jf),
                    _ => return None,
                };
                let k = r.u32()?;
                program.push(SockFilter { code, jt, jf, k });
            }
            filters.push(Filter { program, flags });
        }
        if !r.0.is_empty() || filters.is_empty() {
            return None;
        }
        Some(Compiled {
            filters,
            ..Compiled::default()
        })
    }
}

fn flags_from(bits: u32) -> Option<FilterFlags> {
    let mut flags = FilterFlags::EMPTY;
    let mut rest = bits;
    for f in KNOWN_FLAGS {
        if bits & f.bits() == f.bits() {
            flags |= f;
            rest &= !f.bits();
        }
    }
    (rest == 0).then_some(flags)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_profile() -> Compiled {
        let v = super::super::default_profile_json(crate::spec::DEFAULT_CAPS).unwrap();
        let seccomp: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(v).unwrap();
        super::super::compile(&seccomp).unwrap()
    }

    #[test]
    fn the_kept_program_is_the_compiled_one() {
        let compiled = default_profile();
        let bytes = compiled.to_cache().unwrap();
        let back = Compiled::from_cache(&bytes).unwrap();
        assert_eq!(back.filters.len(), compiled.filters.len());
        for (a, b) in back.filters.iter().zip(&compiled.filters) {
            assert_eq!(a.program, b.program);
            assert_eq!(a.flags, b.flags);
        }
    }

    #[test]
    fn anything_unexpected_means_compile_again() {
        let bytes = default_profile().to_cache().unwrap();
        assert!(Compiled::from_cache(&bytes[..bytes.len() - 1]).is_none());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Compiled::from_cache(&longer).is_none());
        let mut other_version = bytes.clone();
        other_version[6] = b'2';
        assert!(Compiled::from_cache(&other_version).is_none());
        let mut unknown_flag = bytes.clone();
        unknown_flag[12..16].copy_from_slice(&0x8000_0000u32.to_le_bytes());
        assert!(Compiled::from_cache(&unknown_flag).is_none());
        assert!(Compiled::from_cache(b"").is_none());
    }

    #[test]
    fn listener_profiles_are_not_kept() {
        let mut c = default_profile();
        c.listener = Some(super::super::Listener {
            path: "/run/agent.sock".into(),
            metadata: None,
            filter: 0,
        });
        assert!(c.to_cache().is_none());
    }
}
