//! What tests/embed.rs and tests/embed_io.rs share: a sandbox on a test's state root, bundles
//! running a shell script, creating from the config in memory.

#![allow(dead_code)]

use std::io::Read;

use crate::common::bundle::Bundle;
use crate::common::Test;
use sealrun::{Container, Sandbox, Stdio};

/// A sandbox on the test's state root and log, with the sealrun binary cargo built.
pub fn sandbox(t: &Test) -> Sandbox {
    Sandbox::builder()
        .state_root(&t.root)
        .runtime_binary(env!("CARGO_BIN_EXE_sealrun"))
        .log_file(&t.log)
        .build()
        .expect("sandbox")
}

/// A bundle for `id` running `sh -c script`.
pub fn sh_bundle(t: &Test, id: &str, script: &str) -> Bundle {
    let mut b = t.bundle_for(id);
    b.sh(script);
    b
}

/// Create from the bundle's config in memory (the rootfs as a separate path).
pub fn create(sb: &Sandbox, b: &Bundle, stdio: [Stdio; 3]) -> Container {
    let [i, o, e] = stdio;
    sb.container(&b.id)
        .spec_json(serde_json::to_vec(&b.config).unwrap())
        .rootfs(b.rootfs())
        .stdin(i)
        .stdout(o)
        .stderr(e)
        .create()
        .unwrap_or_else(|e| panic!("create {}: {e}", b.id))
}

pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}
