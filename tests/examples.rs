//! The embedding examples (`examples/sandbox.rs`, `examples/supervise.rs`), run as built by
//! `cargo build --examples` (./scripts/test does; a missing one is a visible skip).

mod common;

use common::Test;

/// An example as built by `cargo build --examples` (scripts/test does), or a visible skip.
fn built_example(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join(name))
        .unwrap();
    if !example.is_file() {
        common::skip::skip(&format!(
            "{} not built (cargo build --examples)",
            example.display()
        ));
        return None;
    }
    Some(example)
}

/// `examples/sandbox.rs`.
#[test]
fn the_sandbox_example_runs_a_hardened_command() {
    let Some(example) = built_example("sandbox") else {
        return;
    };
    let t = Test::new();
    let run = |args: &[&str]| {
        std::process::Command::new(&example)
            .args(args)
            .env("SEALRUN_BINARY", env!("CARGO_BIN_EXE_sealrun"))
            .env("SANDBOX_STATE_ROOT", &t.root)
            .output()
            .unwrap()
    };
    let rootfs = common::rootfs::template().to_str().unwrap();
    let out = run(&[rootfs, "sh", "-c", "echo out; echo err >&2; exit 3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(stdout.starts_with("out\n"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("err"),
        "{out:?}"
    );
    let audit = stdout
        .lines()
        .find_map(|l| l.strip_prefix("audit: "))
        .unwrap_or_else(|| panic!("no audit line: {stdout}"));
    let audit: serde_json::Value = serde_json::from_str(audit).unwrap();
    assert_eq!(audit["seccomp"]["loaded"], true, "{audit}");
    assert_eq!(
        audit["seccomp"]["default_action"], "SCMP_ACT_ERRNO",
        "strict: {audit}"
    );
    assert_eq!(audit["landlock"]["enforced"], true, "{audit}");
    assert!(
        audit["sealed_exe"] == "read-only-overlay" || audit["sealed_exe"] == "sealed",
        "{audit}"
    );

    // The wall-clock timeout kills it.
    let out = run(&["--timeout", "1", rootfs, "sleep", "1000"]);
    assert_eq!(out.status.code(), Some(128 + libc::SIGKILL), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timeout"),
        "{out:?}"
    );
    let left: Vec<_> = std::fs::read_dir(&t.root)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "state left: {left:?}");
}

/// `examples/supervise.rs`: `mkdir` supervised in this process through the notify fd.
#[test]
fn the_supervise_example_answers_mkdir() {
    let Some(example) = built_example("supervise") else {
        return;
    };
    let t = Test::new();
    let rootfs = common::rootfs::template().to_str().unwrap();
    let out = std::process::Command::new(&example)
        .args([
            rootfs,
            "sh",
            "-c",
            "mkdir /tmp/ok && echo made; mkdir /srv/no || echo refused",
        ])
        .env("SEALRUN_BINARY", env!("CARGO_BIN_EXE_sealrun"))
        .env("SANDBOX_STATE_ROOT", &t.root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout, "made\nrefused\n", "{stderr}");
    assert!(stderr.contains("mkdir \"/tmp/ok\": allowed"), "{stderr}");
    assert!(stderr.contains("mkdir \"/srv/no\": refused"), "{stderr}");
}
