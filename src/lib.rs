//! sealrun: a hardened, minimal, OCI-compatible container runtime.
//!
//! The library is the product; the `sealrun` binary is a thin runc-compatible CLI over it.
//! The rule that keeps it readable: pure decisions in [`spec`], irreversible actions in
//! [`init`] and [`container`], `unsafe` only in [`sys`].
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod cgroups;
pub mod check;
pub mod container;
pub mod error;
pub mod features;
pub mod hooks;
pub mod init;
pub mod landlock;
pub mod log;
pub mod namespaces;
pub mod policy;
pub mod seccomp;
pub mod selfexe;
pub mod spec;
pub mod sync;
pub mod sys;

// Visible skips for the unit tests, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/common/skip.rs"]
pub(crate) mod test_skip;

pub use error::{Error, Result, Step};

/// The runtime-spec version sealrun implements.
pub const OCI_VERSION: &str = "1.2.0";
