//! serde adapters for the [`super::Plan`]'s kernel-shaped fields, so the Plan can be persisted
//! in the state directory as JSON and read back by every later command.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `MsFlags` as its bits.
pub mod ms_flags {
    use super::*;
    use nix::mount::MsFlags;

    /// Serialize.
    pub fn serialize<S: Serializer>(f: &MsFlags, s: S) -> Result<S::Ok, S::Error> {
        f.bits().serialize(s)
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MsFlags, D::Error> {
        Ok(MsFlags::from_bits_retain(Deserialize::deserialize(d)?))
    }
}

/// `Vec<MsFlags>` as a list of bits.
pub mod ms_flags_vec {
    use super::*;
    use nix::mount::MsFlags;

    /// Serialize.
    pub fn serialize<S: Serializer>(v: &[MsFlags], s: S) -> Result<S::Ok, S::Error> {
        v.iter().map(|f| f.bits()).collect::<Vec<_>>().serialize(s)
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MsFlags>, D::Error> {
        let bits: Vec<libc::c_ulong> = Deserialize::deserialize(d)?;
        Ok(bits.into_iter().map(MsFlags::from_bits_retain).collect())
    }
}

/// A capability set as a bit mask of capability numbers.
pub mod caps_mask {
    use super::*;
    use caps::CapsHashSet;

    /// Serialize.
    pub fn serialize<S: Serializer>(set: &CapsHashSet, s: S) -> Result<S::Ok, S::Error> {
        set.iter().fold(0u64, |m, c| m | c.bitmask()).serialize(s)
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CapsHashSet, D::Error> {
        let mask: u64 = Deserialize::deserialize(d)?;
        Ok(caps::all()
            .into_iter()
            .filter(|c| mask & c.bitmask() != 0)
            .collect())
    }
}

/// `Vec<CString>` as strings (they came from JSON strings, so they are UTF-8).
pub mod cstrings {
    use super::*;
    use std::ffi::CString;

    /// Serialize.
    pub fn serialize<S: Serializer>(v: &[CString], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|c| c.to_string_lossy())
            .collect::<Vec<_>>()
            .serialize(s)
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CString>, D::Error> {
        let v: Vec<String> = Deserialize::deserialize(d)?;
        v.into_iter()
            .map(|s| CString::new(s).map_err(serde::de::Error::custom))
            .collect()
    }
}
