//! Visible skips. Rust's test harness has no runtime "skipped" state: a test that cannot run on
//! this host (the runtime under test is not sealrun, the kernel lacks a feature, a tool is
//! missing) would otherwise count as passed. Such a test calls [`skip`] with the reason and
//! returns (`return skip("needs sealrun: the audit record");`); a test that runs but cannot
//! check one of its parts here calls [`skip_part`] and goes on.
//!
//! Each call prints `SKIP <binary>::<test>: <reason>` on stderr and appends the same line to
//! the skip log, `$SEALRUN_SKIP_LOG` or else `sealrun-skips.log` in cargo's profile directory
//! (`target/<host tuple>/debug`). `scripts/test` empties the log before the run and prints "N skipped:"
//! with every line after it. A skipped test never reaches its assertions.
//!
//! Std only: the unit tests of the library include this file too (`crate::test_skip`).

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// Record that the running test cannot run on this host, and why. Return right after it.
pub fn skip(reason: &str) {
    record("", reason);
}

/// Record that one part of the running test (a layer-off twin, a check one runtime cannot
/// pass) is not checked on this host, and why; the test goes on with the rest.
pub fn skip_part(reason: &str) {
    record(" (part)", reason);
}

/// The skip log: `$SEALRUN_SKIP_LOG`, or `sealrun-skips.log` next to the `deps` directory
/// that holds the test binaries.
pub fn log_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SEALRUN_SKIP_LOG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|p| p.to_path_buf())
        .unwrap_or_else(std::env::temp_dir);
    profile.join("sealrun-skips.log")
}

/// The test binary's name without cargo's hash (`lifecycle`, `sealrun`).
fn binary() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            name.to_string()
        }
        _ => stem,
    }
}

fn record(kind: &str, reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("main");
    let line = format!("SKIP {}::{test}{kind}: {reason}\n", binary());
    eprint!("{line}");
    let path = log_path();
    // One short append per line: concurrent tests and test binaries do not interleave.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        // A skip that cannot be recorded would be silent: fail the test instead.
        panic!("cannot record the skip in {}: {e}", path.display());
    }
}
