//! The persisted form of a [`Compiled`] profile: it is part of the container's Plan, which
//! `create` keeps in the state directory, so that `exec` loads exactly the filter the
//! container's init loaded without compiling the profile again.
//!
//! A filter is `{"flags": <SECCOMP_FILTER_FLAG_* bits>, "program": "<hex>"}`, the program being
//! its instructions as the kernel lays them out (`code` u16 LE, `jt`, `jf`, `k` u32 LE). Reading
//! back refuses unknown flags and a program that is empty, too long or not whole instructions.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Filter;
use crate::sys::seccomp::{FilterFlags, SockFilter};

/// Every flag a persisted filter may carry.
const KNOWN_FLAGS: [FilterFlags; 6] = [
    FilterFlags::TSYNC,
    FilterFlags::LOG,
    FilterFlags::SPEC_ALLOW,
    FilterFlags::NEW_LISTENER,
    FilterFlags::TSYNC_ESRCH,
    FilterFlags::WAIT_KILLABLE_RECV,
];

#[derive(Serialize, Deserialize)]
struct Persisted {
    flags: u32,
    program: String,
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut program = String::with_capacity(self.program.len() * 16);
        for i in &self.program {
            for b in i
                .code
                .to_le_bytes()
                .into_iter()
                .chain([i.jt, i.jf])
                .chain(i.k.to_le_bytes())
            {
                program.push_str(&format!("{b:02x}"));
            }
        }
        Persisted {
            flags: self.flags.bits(),
            program,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Filter, D::Error> {
        use serde::de::Error as _;
        let p = Persisted::deserialize(d)?;
        let flags = flags_from(p.flags)
            .ok_or_else(|| D::Error::custom(format!("unknown filter flags {:#x}", p.flags)))?;
        let bytes = unhex(&p.program).ok_or_else(|| D::Error::custom("program: not hex"))?;
        if bytes.is_empty() || bytes.len() % 8 != 0 || bytes.len() / 8 > super::bpf::MAX_INSNS {
            return Err(D::Error::custom("program: not a whole, loadable program"));
        }
        let program = bytes
            .chunks_exact(8)
            .map(|c| SockFilter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(Filter { program, flags })
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
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

#[cfg(test)]
mod tests {
    use super::super::Compiled;

    fn default_profile() -> Compiled {
        let v = super::super::default_profile_json(crate::spec::DEFAULT_CAPS).unwrap();
        let seccomp: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(v).unwrap();
        super::super::compile(&seccomp).unwrap()
    }

    #[test]
    fn the_persisted_program_is_the_compiled_one() {
        let compiled = default_profile();
        let json = serde_json::to_string(&compiled).unwrap();
        let back: Compiled = serde_json::from_str(&json).unwrap();
        assert_eq!(back.filters.len(), compiled.filters.len());
        for (a, b) in back.filters.iter().zip(&compiled.filters) {
            assert_eq!(a.program, b.program);
            assert_eq!(a.flags, b.flags);
        }
        assert_eq!(back.summary.digest, compiled.summary.digest);
    }

    #[test]
    fn anything_unexpected_is_refused() {
        let compiled = default_profile();
        let v = serde_json::to_value(&compiled).unwrap();
        let program = v["filters"][0]["program"].as_str().unwrap().to_string();
        let with = |flags: u64, program: &str| {
            let mut v = v.clone();
            v["filters"][0]["flags"] = flags.into();
            v["filters"][0]["program"] = program.into();
            serde_json::from_value::<Compiled>(v)
        };
        assert!(with(0, &program).is_ok());
        assert!(with(0, &program[..program.len() - 2]).is_err(), "short");
        assert!(with(0, &format!("{program}00")).is_err(), "long");
        assert!(with(0, "").is_err(), "empty");
        assert!(with(0, &program.replace('0', "g")).is_err(), "not hex");
        assert!(with(0x8000_0000, &program).is_err(), "unknown flag");
    }
}
