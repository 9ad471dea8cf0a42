//! Kubernetes' path to sealrun, end to end: the CRI (`runtime.v1`, as the kubelet speaks it)
//! against containerd 1.6's CRI plugin in a private containerd, with each runtime handler:
//!
//! - `sealrun`: containerd's runc v2 shim with the sealrun binary as its runc (`BinaryName`);
//! - `sealrun-native`: sealrun's own shim, `containerd-shim-sealrun-v2`.
//!
//! No kubelet, no registry, no CNI: busybox and a pause image are built locally and imported,
//! pods use the host network. Each test checks that nothing is left behind (cgroups, mounts,
//! shims and their sockets, runtime state).
//!
//! Needs root, the Debian packages containerd and busybox-static, and the workspace's binaries
//! built (`cargo build --workspace --bins`; `cargo test --workspace` builds them first).

#[path = "cri/client.rs"]
mod client;
#[path = "cri/daemon.rs"]
#[allow(dead_code)] // shared with tests/ctr.rs
mod daemon;
#[path = "../../../tests/containerd/host.rs"]
#[allow(dead_code)]
mod host;
#[path = "../../../tests/containerd/image.rs"]
#[allow(dead_code)]
mod image;
#[path = "../../../tests/common/run.rs"]
mod run;

use client::Cri;
use k8s_cri::v1::{LinuxContainerConfig, LinuxContainerResources, PodSandboxState};

/// A container that logs to stdout and stderr, then runs until SIGTERM, which it obeys.
const OBEDIENT: &str =
    "trap 'exit 0' TERM; echo hello-log; echo to-stderr >&2; while true; do sleep 1; done";

/// A container that ignores SIGTERM (and so do its children).
const STUBBORN: &str = "trap '' TERM; touch /tmp/ready; while true; do sleep 1; done";

/// The whole CRI life of one container, as the kubelet drives it.
fn lifecycle(handler: &str) {
    let mut cri = Cri::start(handler);
    let pod = cri.run_pod("life", false);
    assert_eq!(
        cri.pod_state(&pod),
        PodSandboxState::SandboxReady as i32,
        "pod not ready"
    );

    let cfg = cri.container_config("main", &["sh", "-c", OBEDIENT]);
    let main = cri.create(&pod, cfg);
    cri.start_container(&main);

    check_shims(&cri, 1);

    // ExecSync: output on both streams and the exit code.
    let r = cri.exec_sync(&main, &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(String::from_utf8_lossy(&r.stdout), "out\n", "{r:?}");
    assert_eq!(String::from_utf8_lossy(&r.stderr), "err\n", "{r:?}");
    assert_eq!(r.exit_code, 3, "{r:?}");
    let r = cri.exec_sync(&main, &["cat", "/proc/self/cgroup"]);
    assert_eq!(r.exit_code, 0, "{r:?}");
    assert!(
        String::from_utf8_lossy(&r.stdout).contains(&main),
        "the exec is not in the container's cgroup: {r:?}"
    );

    // Stats from the container's cgroup.
    let stats = cri.stats(&main);
    assert_eq!(
        stats.attributes.as_ref().map(|a| a.id.as_str()),
        Some(main.as_str())
    );
    let cpu = stats
        .cpu
        .as_ref()
        .and_then(|c| c.usage_core_nano_seconds.as_ref());
    assert!(cpu.is_some_and(|v| v.value > 0), "cpu usage: {stats:?}");
    let mem = stats
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref());
    assert!(
        mem.is_some_and(|v| v.value > 0),
        "memory working set: {stats:?}"
    );

    // The CRI log, in the kubelet's format: `<time> <stream> F <line>`.
    let log = cri.wait_log(&pod, "main", "stderr F to-stderr");
    assert!(log.contains(" stdout F hello-log\n"), "{log}");

    // Graceful stop: the process obeys SIGTERM and exits 0.
    cri.stop_container(&main, 60);
    let st = cri.wait_exited(&main);
    assert_eq!(
        (st.exit_code, st.reason.as_str()),
        (0, "Completed"),
        "{st:?}"
    );
    cri.remove_container(&main);

    // Forced stop: a process that ignores SIGTERM is killed after the timeout.
    let cfg = cri.container_config("stubborn", &["sh", "-c", STUBBORN]);
    let stubborn = cri.run_container(&pod, cfg);
    // Stop only once the trap is set (StartContainer returns when the shell runs, not later).
    let mut ready = false;
    for _ in 0..3000 {
        if cri
            .exec_sync(&stubborn, &["test", "-e", "/tmp/ready"])
            .exit_code
            == 0
        {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ready, "the stubborn container never set its trap");
    cri.stop_container(&stubborn, 1);
    let st = cri.wait_exited(&stubborn);
    assert_eq!(st.exit_code, 137, "{st:?}");
    cri.remove_container(&stubborn);

    cri.stop_pod(&pod);
    assert_eq!(cri.pod_state(&pod), PodSandboxState::SandboxNotready as i32);
    cri.remove_pod(&pod);
    cri.assert_nothing_left();
}

fn exit_non_zero(handler: &str) {
    let mut cri = Cri::start(handler);
    let pod = cri.run_pod("exit", false);
    let cfg = cri.container_config("seven", &["sh", "-c", "echo bye; exit 7"]);
    let id = cri.run_container(&pod, cfg);
    let st = cri.wait_exited(&id);
    assert_eq!((st.exit_code, st.reason.as_str()), (7, "Error"), "{st:?}");
    // The exit time is the shim's, the start time containerd's (taken when Start returned):
    // a process that exits at once can be dated a fraction of a millisecond before that, so
    // only the order against creation is certain.
    assert!(
        st.started_at > 0 && st.finished_at > st.created_at,
        "{st:?}"
    );
    cri.wait_log(&pod, "seven", " stdout F bye");
    cri.remove_container(&id);
    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    cri.assert_nothing_left();
}

fn oom_killed(handler: &str) {
    let mut cri = Cri::start(handler);
    let pod = cri.run_pod("oom", false);
    let limit = 32 << 20;
    let mut cfg = cri.container_config(
        "hog",
        // dd fills a 256 MiB buffer: far over the limit (there is no swap to escape to).
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
    );
    cfg.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            memory_limit_in_bytes: limit,
            memory_swap_limit_in_bytes: limit,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = cri.run_container(&pod, cfg);
    let st = cri.wait_exited(&id);
    assert_eq!(
        (st.exit_code, st.reason.as_str()),
        (137, "OOMKilled"),
        "{st:?}"
    );
    cri.remove_container(&id);
    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    cri.assert_nothing_left();
}

/// Two containers of one pod share its IPC, UTS and PID namespaces (and the host's network);
/// each sees the other's processes.
fn pod_with_two_containers(handler: &str) {
    let mut cri = Cri::start(handler);
    let pod = cri.run_pod("pair", true);
    let cfg = cri.container_config("first", &["sleep", "3601"]);
    let first = cri.run_container(&pod, cfg);
    let cfg = cri.container_config("second", &["sleep", "3602"]);
    let second = cri.run_container(&pod, cfg);

    let ns = "for n in ipc uts pid net; do readlink /proc/self/ns/$n; done";
    let a = cri.exec_sync(&first, &["sh", "-c", ns]);
    let b = cri.exec_sync(&second, &["sh", "-c", ns]);
    assert_eq!((a.exit_code, b.exit_code), (0, 0), "{a:?} {b:?}");
    assert_eq!(a.stdout, b.stdout, "namespaces differ");
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    let out = String::from_utf8_lossy(&a.stdout).into_owned();
    assert!(
        out.lines().any(|l| l == host_net.to_str().unwrap()),
        "not on the host network: {out}"
    );
    let host_pid = std::fs::read_link("/proc/self/ns/pid").unwrap();
    assert!(
        !out.lines().any(|l| l == host_pid.to_str().unwrap()),
        "in the host's PID namespace: {out}"
    );
    let ps = cri.exec_sync(&second, &["ps", "-o", "args"]);
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(
        ps.contains("sleep 3601"),
        "the pod's PID namespace is not shared:\n{ps}"
    );

    // One shim serves the whole pod, of the handler's kind.
    check_shims(&cri, 1);

    // Removing the pod removes its containers with it.
    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    cri.assert_nothing_left();
}

/// `count` shims serve this containerd, each the handler's: containerd's runc v2 shim for
/// `sealrun`, sealrun's own for `sealrun-native`, which runs (and starts the workers whose
/// clones enter containers) from the node's sealed memfd copy of it, with no worker left idle.
fn check_shims(cri: &Cri, count: usize) {
    let shims = cri.daemon.top_shims();
    assert_eq!(shims.len(), count, "shims: {shims:?}");
    let want = match cri.handler.as_str() {
        "sealrun-native" => "containerd-shim-sealrun-v2",
        _ => "containerd-shim-runc-v2",
    };
    for (pid, name) in &shims {
        assert_eq!(name, want, "shim {pid}");
    }
    if want == "containerd-shim-sealrun-v2" {
        let top: Vec<i32> = shims.iter().map(|(pid, _)| *pid).collect();
        let idle: Vec<i32> = cri
            .daemon
            .shims()
            .into_iter()
            .filter(|p| !top.contains(p))
            .collect();
        assert!(idle.is_empty(), "workers left beside the shims: {idle:?}");
        for pid in top {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
            assert!(
                exe.to_string_lossy()
                    .starts_with("/memfd:containerd-shim-sealrun-v2-sealed"),
                "the native shim {pid} does not run from the sealed copy: {}",
                exe.display()
            );
        }
    }
}

/// UpdateContainerResources reaches the container's cgroup (the shim's Update).
fn update_resources(handler: &str) {
    let mut cri = Cri::start(handler);
    let pod = cri.run_pod("update", false);
    let cfg = cri.container_config("grow", &["sleep", "3600"]);
    let id = cri.run_container(&pod, cfg);
    let limit: i64 = 48 << 20;
    cri.update_resources(
        &id,
        LinuxContainerResources {
            memory_limit_in_bytes: limit,
            memory_swap_limit_in_bytes: limit,
            ..Default::default()
        },
    );
    let rel = format!("{}/{id}", cri.daemon.cgroup_parent);
    let rel = rel.trim_start_matches('/');
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory").join(rel);
    let (file, want) = if v1.is_dir() {
        (v1.join("memory.limit_in_bytes"), limit.to_string())
    } else {
        let base = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "/sys/fs/cgroup"
        } else {
            "/sys/fs/cgroup/unified"
        };
        (
            std::path::Path::new(base).join(rel).join("memory.max"),
            limit.to_string(),
        )
    };
    let got = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!(got.trim(), want, "{}", file.display());
    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    cri.assert_nothing_left();
}

macro_rules! handler_tests {
    ($module:ident, $handler:literal) => {
        mod $module {
            #[test]
            fn lifecycle() {
                super::lifecycle($handler);
            }
            #[test]
            fn exit_non_zero() {
                super::exit_non_zero($handler);
            }
            #[test]
            fn oom_killed() {
                super::oom_killed($handler);
            }
            #[test]
            fn update_resources() {
                super::update_resources($handler);
            }
            #[test]
            fn pod_with_two_containers() {
                super::pod_with_two_containers($handler);
            }
        }
    };
}

handler_tests!(runc_shim, "sealrun");
handler_tests!(native_shim, "sealrun-native");
