//! The shim binary on its own (containerd's end-to-end use is in crates/cri-tests). This test
//! also makes `cargo test --workspace` build the binary the CRI and ctr tests run.

use std::process::Command;

#[test]
fn refuses_to_start_without_a_namespace() {
    let out = Command::new(env!("CARGO_BIN_EXE_containerd-shim-sealrun-v2"))
        .args(["-id", "x", "start"])
        .env_remove("TTRPC_ADDRESS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("namespace"), "{err}");
}
