//! The embedding API, used only through its public items (`sealrun::Sandbox` and friends):
//! from a multi-threaded program, with the caller's process checked unchanged afterwards.

mod common;

use std::io::{Read, Write};
use std::path::Path;

use common::bundle::Bundle;
use common::Test;
use sealrun::{Container, ExecBuilder, Sandbox, Status, Stdio};

fn sandbox(t: &Test) -> Sandbox {
    Sandbox::builder()
        .state_root(&t.root)
        .runtime_binary(env!("CARGO_BIN_EXE_sealrun"))
        .log_file(&t.log)
        .build()
        .expect("sandbox")
}

/// A bundle for `id` running `sh -c script`.
fn sh_bundle(t: &Test, id: &str, script: &str) -> Bundle {
    let mut b = t.bundle_for(id);
    b.sh(script);
    b
}

/// Create from the bundle's config in memory (the rootfs as a separate path).
fn create(sb: &Sandbox, b: &Bundle, stdio: [Stdio; 3]) -> Container {
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

#[test]
fn run_one_and_read_its_output() {
    let t = Test::new();
    let sb = sandbox(&t);
    let b = sh_bundle(&t, t.id(), "echo hello; echo oops >&2; exit 3");
    let c = create(&sb, &b, [Stdio::Null, Stdio::Pipe, Stdio::Pipe]);
    assert!(c.pid() > 0);
    assert_eq!(c.state().unwrap().status, Status::Created);
    let mut out = c.take_stdout().unwrap();
    let mut err = c.take_stderr().unwrap();
    c.start().unwrap();
    let mut s = String::new();
    out.read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello\n");
    let mut s = String::new();
    err.read_to_string(&mut s).unwrap();
    assert_eq!(s, "oops\n");
    let status = c.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(c.state().unwrap().status, Status::Stopped);
    let audit = c.audit().unwrap();
    let audit = serde_json::to_value(&audit).unwrap();
    assert_eq!(audit["id"], t.id());
    c.delete().unwrap();
    assert!(matches!(c.start(), Err(sealrun::Error::NotFound(_))));
    t.assert_nothing_left();
}
