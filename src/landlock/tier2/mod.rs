//! Tier-2 tests: real Landlock, enforced in a re-executed copy of this test binary.
//!
//! Each test builds a scratch directory (`root/` plays the container's root, `host/` the host),
//! starts `<test binary> --exact landlock::tier2::child` with a request in the environment, and
//! reads back what each probe got (`ok` or an errno name). Every attack probe is also run with
//! the layer switched off (`run.sealrun.landlock=off`) and must then succeed, so the tests can
//! fail. Landlock restricts only the thread that enforces it, inside the child process; the
//! child's other threads and the host are untouched.

mod filesystem;
mod process;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;
use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};

use super::{apply, policy, Context, Status};

pub(super) const CHILD_ENV: &str = "SEALRUN_LANDLOCK_TIER2";
pub(super) const BUSYBOX: &str = "/bin/busybox";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Request {
    pub scenario: String,
    pub scratch: PathBuf,
    pub annotations: HashMap<String, String>,
    pub host_network: bool,
    pub cap_sys_admin: bool,
    /// Scenario-specific values (socket names, ports).
    pub extra: HashMap<String, String>,
}

pub(super) type Results = BTreeMap<String, String>;

/// A scratch directory under the temp dir, removed on drop.
pub(super) struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sealrun-landlock-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(dir.join("root")).unwrap();
        fs::create_dir_all(dir.join("host")).unwrap();
        fs::write(dir.join("host/secret.txt"), "host secret").unwrap();
        Scratch(dir)
    }
    pub fn root(&self) -> PathBuf {
        self.0.join("root")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub(super) fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn off() -> HashMap<String, String> {
    ann(&[(super::ANNOTATION_MODE, "off")])
}

/// Whether busybox is there: the exec probes (`*_exec`) and the siblings scenario run it. A test
/// that cannot run without it records a skip; [`expect`] records each exec probe it leaves out.
pub(super) fn have_busybox() -> bool {
    let ok = Path::new(BUSYBOX).exists();
    if !ok {
        crate::test_skip::skip(&format!("{BUSYBOX} missing (Debian busybox-static)"));
    }
    ok
}

/// Copy busybox into the scratch root (a static binary: no loader outside the root needed),
/// when the host has it.
pub(super) fn install_busybox(dest: &Path) {
    if Path::new(BUSYBOX).exists() {
        fs::copy(BUSYBOX, dest).unwrap_or_else(|e| panic!("copy {BUSYBOX}: {e}"));
        fs::set_permissions(dest, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Run a scenario in a fresh child process and collect its probe results.
pub(super) fn run_child(req: &Request) -> Results {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "landlock::tier2::child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, serde_json::to_string(req).unwrap())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("TIER2 ").map(|(_, json)| json))
        .unwrap_or_else(|| {
            panic!(
                "child {} gave no result\nstdout:\n{stdout}\nstderr:\n{}",
                req.scenario,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).unwrap()
}

pub(super) fn status_of(r: &Results) -> serde_json::Value {
    serde_json::from_str(&r["status"]).unwrap()
}

/// Assert every named probe got `want`. Without busybox the exec probes cannot run: each is
/// recorded as a skipped part, and its answer (`ENOENT`) is not taken as `want`.
#[track_caller]
pub(super) fn expect(r: &Results, probes: &[&str], want: &str) {
    for p in probes {
        if p.ends_with("_exec") && !Path::new(BUSYBOX).exists() {
            crate::test_skip::skip_part(&format!(
                "probe {p} (want {want}): {BUSYBOX} missing (Debian busybox-static)"
            ));
            continue;
        }
        match r.get(*p) {
            Some(got) => assert_eq!(got, want, "probe {p}; all results: {r:#?}"),
            None => panic!("probe {p} missing: {r:#?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The child side.

/// Entry point of the re-executed child ([`run_child`] runs it with `--ignored`).
#[test]
#[ignore = "not a test: the entry point of the re-executed tier-2 child"]
fn child() {
    let Ok(req) = std::env::var(CHILD_ENV) else {
        // Run by hand with --ignored: nothing to do, and said so.
        return crate::test_skip::skip("the tier-2 child's entry point, run by run_child");
    };
    let req: Request = serde_json::from_str(&req).unwrap();
    let results = match req.scenario.as_str() {
        "fs" => filesystem::scenario_fs(&req),
        "narrow" => filesystem::scenario_narrow(&req),
        "abstract" => process::scenario_abstract(&req),
        "tcp" => process::scenario_tcp(&req),
        "mount" => process::scenario_mount(&req),
        "siblings" => process::scenario_siblings(&req),
        other => panic!("unknown scenario {other}"),
    };
    let mut out = io::stdout().lock();
    writeln!(out, "TIER2 {}", serde_json::to_string(&results).unwrap()).unwrap();
    out.flush().unwrap();
    // Skip the harness's summary; the parent only reads the line above.
    std::process::exit(0);
}

pub(super) fn restrict(req: &Request, results: &mut Results) -> Status {
    let ctx = Context {
        host_network: req.host_network,
        cap_sys_admin: req.cap_sys_admin,
    };
    let p = policy(&req.annotations, &ctx).unwrap();
    let start = std::time::Instant::now();
    let status = apply(&p, &req.scratch.join("root")).unwrap();
    results.insert("apply_us".into(), start.elapsed().as_micros().to_string());
    results.insert("status".into(), serde_json::to_string(&status).unwrap());
    status
}

pub(super) fn show<T>(r: io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => match e.raw_os_error() {
            Some(raw) => format!("{:?}", Errno::from_raw(raw)),
            None => e.to_string(),
        },
    }
}

pub(super) fn show_nix<T>(r: nix::Result<T>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("{e:?}"),
    }
}

pub(super) fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let mut s = String::new();
    File::open(path)?.read_to_string(&mut s)?;
    Ok(s)
}

/// Run a program and report "ok" only if it ran and exited 0 (a missing one: `ENOENT`).
pub(super) fn run(path: &Path) -> String {
    // Inherited stdio: the host's /dev/null is outside the scratch root.
    match Command::new(path).arg("true").status() {
        Ok(s) if s.success() => "ok".to_string(),
        Ok(s) => format!("exit {s}"),
        Err(e) => show::<()>(Err(e)),
    }
}

/// A private mount namespace of this child only: no mount reaches the host's.
pub(super) fn private_mount_namespace() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .unwrap();
}

/// Whether the running kernel has Landlock ABI `min`; a test that needs more is recorded as
/// skipped (this development machine has 7).
pub(super) fn kernel_has(min: i32) -> bool {
    let abi = super::abi();
    if abi < min {
        crate::test_skip::skip(&format!("needs Landlock ABI {min}, the kernel has {abi}"));
    }
    abi >= min
}
