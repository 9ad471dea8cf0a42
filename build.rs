//! Record the git commit for `sealrun --version`, and pack relative relocations when the
//! toolchain can.
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SEALRUN_COMMIT={commit}");
    // The sealed self-copy writes the whole binary into a memfd on every create/run/exec, and
    // the loader then applies ~8,500 relative relocations twice (before and after the
    // re-exec). DT_RELR stores them in a few kilobytes and applies them in a tight loop.
    // It needs binutils >= 2.38 and glibc >= 2.36 (GLIBC_ABI_DT_RELR): probe both.
    println!("cargo:rerun-if-env-changed=CC");
    if relr_works() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Link and run a tiny PIE with `-z pack-relative-relocs` using the default linker driver.
fn relr_works() -> bool {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    if env("TARGET") != env("HOST") || env("CARGO_CFG_TARGET_OS") != "linux" {
        return false;
    }
    let out = PathBuf::from(env("OUT_DIR")).join("relr-probe");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let linked = Command::new(cc)
        .args(["-x", "c", "-", "-o"])
        .arg(&out)
        .args(["-fPIE", "-pie", "-Wl,-z,pack-relative-relocs"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(b"static int x; int *p = &x; int main(void) { return *p; }\n")?;
            }
            child.wait()
        })
        .is_ok_and(|s| s.success());
    linked && Command::new(&out).status().is_ok_and(|s| s.success())
}
