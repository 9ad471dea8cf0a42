//! Process-level rules: abstract unix socket scoping, TCP ports, mount under CAP_SYS_ADMIN, and
//! the sibling domains of `exec` processes.

use std::collections::HashMap;
use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

use nix::mount::MsFlags;

use super::*;
use crate::landlock::{
    ANNOTATION_MODE, ANNOTATION_SCOPE_ABSTRACT_UNIX, ANNOTATION_TCP_BIND, ANNOTATION_TCP_CONNECT,
};

pub(super) fn scenario_abstract(req: &Request) -> Results {
    let mut r = Results::new();
    restrict(req, &mut r);
    let host_name = &req.extra["name"];
    let addr = SocketAddr::from_abstract_name(host_name.as_bytes()).unwrap();
    r.insert(
        "connect_host_abstract".into(),
        show(UnixStream::connect_addr(&addr)),
    );
    // A socket made inside the sandbox stays reachable from it.
    let own = format!("{host_name}-own");
    let own_addr = SocketAddr::from_abstract_name(own.as_bytes()).unwrap();
    let _listener = UnixListener::bind_addr(&own_addr).unwrap();
    r.insert(
        "connect_own_abstract".into(),
        show(UnixStream::connect_addr(&own_addr)),
    );
    r
}

pub(super) fn scenario_tcp(req: &Request) -> Results {
    let mut r = Results::new();
    // A free port to try binding explicitly, found before the restriction.
    let specific = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    restrict(req, &mut r);
    let port = |k: &str| req.extra[k].parse::<u16>().unwrap();
    r.insert(
        "connect_allowed".into(),
        show(TcpStream::connect((Ipv4Addr::LOCALHOST, port("allowed")))),
    );
    r.insert(
        "connect_other".into(),
        show(TcpStream::connect((Ipv4Addr::LOCALHOST, port("other")))),
    );
    r.insert(
        "bind_ephemeral".into(),
        show(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))),
    );
    r.insert(
        "bind_specific".into(),
        show(TcpListener::bind((Ipv4Addr::LOCALHOST, specific))),
    );
    r
}

pub(super) fn scenario_mount(req: &Request) -> Results {
    let mut r = Results::new();
    private_mount_namespace();
    restrict(req, &mut r);
    r.insert(
        "mount_tmpfs".into(),
        show_nix(nix::mount::mount(
            Some("tmpfs"),
            &req.scratch.join("root/mnt"),
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )),
    );
    r
}

/// Two threads enforce the same policy separately, as the container's init and a later `exec`
/// do: two sibling domains.
pub(super) fn scenario_siblings(req: &Request) -> Results {
    let mut r = Results::new();
    let root = req.scratch.join("root");
    let name = req.extra["name"].clone();
    // A procfs inside the root (in a private mount namespace of this child), as a container
    // has: the filesystem rule then allows it and only Landlock's ptrace restriction remains.
    private_mount_namespace();
    nix::mount::mount(
        Some("proc"),
        &root.join("proc"),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .unwrap();
    let proc = root.join("proc");
    let (mut sleeper, _listener) = std::thread::scope(|s| {
        s.spawn(|| {
            let mut ignored = Results::new();
            restrict(req, &mut ignored);
            let child = Command::new(root.join("busybox"))
                .args(["sleep", "30"])
                .spawn()
                .unwrap();
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            (child, UnixListener::bind_addr(&addr).unwrap())
        })
        .join()
        .unwrap()
    });
    let pid = sleeper.id();
    std::thread::scope(|s| {
        s.spawn(|| {
            restrict(req, &mut r);
            let target = nix::unistd::Pid::from_raw(pid as i32);
            r.insert(
                "signal_sibling".into(),
                show_nix(nix::sys::signal::kill(target, None)),
            );
            r.insert(
                "proc_sibling_cmdline".into(),
                show(read_to_string(proc.join(format!("{pid}/cmdline")))),
            );
            r.insert(
                "proc_sibling_exe_link".into(),
                show(fs::read_link(proc.join(format!("{pid}/exe")))),
            );
            r.insert(
                "proc_sibling_fd_link".into(),
                show(fs::read_link(proc.join(format!("{pid}/fd/0")))),
            );
            r.insert(
                "proc_sibling_mem".into(),
                show(File::open(proc.join(format!("{pid}/mem")))),
            );
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            r.insert(
                "connect_sibling_abstract".into(),
                show(UnixStream::connect_addr(&addr)),
            );
        })
        .join()
        .unwrap()
    });
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    r
}

// ---------------------------------------------------------------------------------------------
// The tests.
fn abstract_request(
    s: &Scratch,
    name: &str,
    host_network: bool,
    a: HashMap<String, String>,
) -> Request {
    Request {
        scenario: "abstract".into(),
        scratch: s.0.clone(),
        annotations: a,
        host_network,
        cap_sys_admin: false,
        extra: [("name".to_string(), name.to_string())].into(),
    }
}

#[test]
fn host_abstract_socket_is_unreachable_with_host_network() {
    if !kernel_has(6) {
        return;
    }
    let s = Scratch::new("abstract");
    // The host daemon's socket (CVE-2020-15257: containerd-shim's abstract socket).
    let name = format!("sealrun-landlock-test-{}", s.0.display());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _host = UnixListener::bind_addr(&addr).unwrap();

    let r = run_child(&abstract_request(&s, &name, true, HashMap::new()));
    expect(&r, &["connect_host_abstract"], "EPERM");
    expect(&r, &["connect_own_abstract"], "ok");
    assert_eq!(
        status_of(&r)["scopes"],
        serde_json::json!(["abstract_unix_socket"])
    );

    // Scoping off (by annotation, or by having a network namespace of its own): reachable.
    let a = ann(&[(ANNOTATION_SCOPE_ABSTRACT_UNIX, "off")]);
    let r = run_child(&abstract_request(&s, &name, true, a));
    expect(&r, &["connect_host_abstract", "connect_own_abstract"], "ok");
    let r = run_child(&abstract_request(&s, &name, false, HashMap::new()));
    expect(&r, &["connect_host_abstract"], "ok");
    let r = run_child(&abstract_request(&s, &name, true, off()));
    expect(&r, &["connect_host_abstract"], "ok");
}

#[test]
fn tcp_bind_and_connect_ports() {
    if !kernel_has(4) {
        return;
    }
    let s = Scratch::new("tcp");
    let allowed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let other = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let extra: HashMap<String, String> = [
        (
            "allowed".to_string(),
            allowed.local_addr().unwrap().port().to_string(),
        ),
        (
            "other".to_string(),
            other.local_addr().unwrap().port().to_string(),
        ),
    ]
    .into();
    let mut req = Request {
        scenario: "tcp".into(),
        scratch: s.0.clone(),
        annotations: ann(&[
            (ANNOTATION_TCP_CONNECT, &extra["allowed"]),
            (ANNOTATION_TCP_BIND, "0"),
        ]),
        host_network: false,
        cap_sys_admin: false,
        extra,
    };
    let r = run_child(&req);
    expect(&r, &["connect_allowed", "bind_ephemeral"], "ok");
    expect(&r, &["connect_other", "bind_specific"], "EACCES");
    assert_eq!(
        status_of(&r)["net"],
        serde_json::json!(["bind_tcp", "connect_tcp"])
    );

    req.annotations.insert(ANNOTATION_MODE.into(), "off".into());
    let r = run_child(&req);
    expect(
        &r,
        &[
            "connect_allowed",
            "bind_ephemeral",
            "connect_other",
            "bind_specific",
        ],
        "ok",
    );
}

#[test]
fn cap_sys_admin_keeps_mount_working_unless_enforced() {
    if !kernel_has(6) {
        return;
    }
    let s = Scratch::new("mount");
    fs::create_dir(s.root().join("mnt")).unwrap();
    let mut req = Request {
        scenario: "mount".into(),
        scratch: s.0.clone(),
        annotations: HashMap::new(),
        // Scoping still applies: a domain exists, but it handles no filesystem right.
        host_network: true,
        cap_sys_admin: true,
        extra: HashMap::new(),
    };
    let r = run_child(&req);
    expect(&r, &["mount_tmpfs"], "ok");
    let st = status_of(&r);
    assert_eq!(st["enforced"], true, "{st}");
    assert_eq!(st["fs"], serde_json::json!([]), "{st}");

    req.annotations = ann(&[(ANNOTATION_MODE, "enforce")]);
    let r = run_child(&req);
    expect(&r, &["mount_tmpfs"], "EPERM");
}

fn siblings_request(s: &Scratch, host_network: bool, a: HashMap<String, String>) -> Request {
    Request {
        scenario: "siblings".into(),
        scratch: s.0.clone(),
        annotations: a,
        host_network,
        cap_sys_admin: false,
        extra: [(
            "name".to_string(),
            format!("sealrun-landlock-siblings-{}", s.0.display()),
        )]
        .into(),
    }
}

const SIBLING_PTRACE: &[&str] = &[
    "proc_sibling_exe_link",
    "proc_sibling_fd_link",
    "proc_sibling_mem",
];

#[test]
fn exec_processes_form_a_sibling_domain() {
    if !kernel_has(6) || !have_busybox() {
        return;
    }
    let s = Scratch::new("siblings");
    fs::create_dir(s.root().join("proc")).unwrap();
    install_busybox(&s.root().join("busybox"));
    // `kill 1` from an exec'd process works (signals are not scoped); ptrace-guarded /proc
    // entries of the init's processes (exe, root, cwd, fd/N links, mem) do not; plain ones do.
    let r = run_child(&siblings_request(&s, false, HashMap::new()));
    expect(
        &r,
        &[
            "signal_sibling",
            "proc_sibling_cmdline",
            "connect_sibling_abstract",
        ],
        "ok",
    );
    expect(&r, SIBLING_PTRACE, "EACCES");
    // With the host network, abstract sockets are scoped: the sibling's are out of reach too.
    let r = run_child(&siblings_request(&s, true, HashMap::new()));
    expect(&r, &["signal_sibling", "proc_sibling_cmdline"], "ok");
    expect(&r, SIBLING_PTRACE, "EACCES");
    expect(&r, &["connect_sibling_abstract"], "EPERM");
    // Without Landlock, all of it works.
    let r = run_child(&siblings_request(&s, true, off()));
    expect(
        &r,
        &[
            "signal_sibling",
            "proc_sibling_cmdline",
            "connect_sibling_abstract",
        ],
        "ok",
    );
    expect(&r, SIBLING_PTRACE, "ok");
}
