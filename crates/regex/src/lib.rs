//! sealrun's stand-in for the `regex` crate, wired in with `[patch.crates-io]`.
//!
//! The only user in sealrun's dependency tree is oci-spec, which checks one ASCII pattern
//! (`execCPUAffinity`, `^(\d+(-\d+)?)(,\d+(-\d+)?)*$`). The full `regex` engine and its
//! Unicode tables made up a fifth of the sealrun binary, which the sealed self-copy writes
//! into a memfd on every create, run and exec. `regex-lite` has the same API for this use
//! with ASCII-only classes, which is what the pattern means.
pub use regex_lite::*;
