//! The native shim under `ctr` (containerd's own client), as `ctr run --runtime
//! io.containerd.sealrun.v2` drives it: output and exit status, exec, ps, pause and resume,
//! kill, delete, a terminal; nothing left behind.
//!
//! Needs root, the Debian packages containerd, busybox-static and bsdutils (`script`), and the
//! workspace's binaries built (`cargo build --workspace --bins`).

#[path = "cri/daemon.rs"]
#[allow(dead_code)]
mod daemon;
#[path = "../../../tests/containerd/host.rs"]
#[allow(dead_code)]
mod host;
#[path = "../../../tests/containerd/image.rs"]
#[allow(dead_code)]
mod image;
#[path = "../../../tests/common/run.rs"]
mod run;

use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use daemon::{Daemon, BUSYBOX, NAMESPACE};
use run::{run, shell_line, Run};

const RUNTIME: &str = "io.containerd.sealrun.v2";

struct Ctr {
    d: Daemon,
    ids: Vec<String>,
}

impl Ctr {
    fn start() -> Ctr {
        let mut d = Daemon::start();
        let mut ok = false;
        for _ in 0..3000 {
            if d.ctr(&["version"]).ok() {
                ok = true;
                break;
            }
            d.check_alive();
            sleep(Duration::from_millis(20));
        }
        assert!(ok, "containerd never answered\n{}", d.log_tail());
        Ctr { d, ids: Vec::new() }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a")
            .arg(&self.d.address)
            .args(["-n", NAMESPACE])
            .args(args);
        cmd
    }

    /// `ctr run` with the native shim, in a cgroup below the test's parent.
    fn run_cmd(&mut self, id: &str, opts: &[&str], args: &[&str]) -> Command {
        self.ids.push(id.to_string());
        let cgroup = format!("{}/{id}", self.d.cgroup_parent);
        let mut cmd = self.cmd(&["run", "--runtime", RUNTIME, "--cgroup", &cgroup]);
        cmd.args(opts).arg(BUSYBOX).arg(id).args(args);
        cmd
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = run(self.cmd(args));
        assert!(r.ok(), "{r}\n{}", self.d.log_tail());
        r
    }

    fn status(&self, id: &str) -> Option<String> {
        let r = self.ok(&["task", "ls"]);
        r.stdout.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[0] == id).then(|| f[2].to_string())
        })
    }

    fn wait_status(&self, id: &str, want: &str) {
        let mut last = None;
        for _ in 0..3000 {
            last = self.status(id);
            if last.as_deref() == Some(want) {
                return;
            }
            sleep(Duration::from_millis(20));
        }
        panic!("{id} never {want}: {last:?}\n{}", self.d.log_tail());
    }

    fn assert_nothing_left(&self) {
        let left = self.d.wait_clean(&self.ids);
        assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = run(self.cmd(&["task", "delete", "--force", id]));
            let _ = run(self.cmd(&["containers", "delete", id]));
        }
        let ids = self.ids.clone();
        self.d.cleanup(&ids);
    }
}

#[test]
fn run_output_and_exit_status() {
    let mut c = Ctr::start();
    let cmd = c.run_cmd(
        "out",
        &["--rm"],
        &[
            "sh",
            "-c",
            "echo hello from sealrun; echo to-stderr >&2; exit 3",
        ],
    );
    let r = run(cmd);
    assert_eq!(r.code, Some(3), "{r}\n{}", c.d.log_tail());
    assert_eq!(r.stdout.trim(), "hello from sealrun", "{r}");
    assert!(r.stderr.contains("to-stderr"), "{r}");
    c.assert_nothing_left();
}

#[test]
fn exec_ps_pause_resume_kill_delete() {
    let mut c = Ctr::start();
    let cmd = c.run_cmd("life", &["--detach"], &["sleep", "3600"]);
    let r = run(cmd);
    assert!(r.ok(), "{r}\n{}", c.d.log_tail());
    c.wait_status("life", "RUNNING");

    let r = run(c.cmd(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "life",
        "sh",
        "-c",
        "echo in-exec; exit 5",
    ]));
    assert_eq!(r.code, Some(5), "{r}\n{}", c.d.log_tail());
    assert_eq!(r.stdout.trim(), "in-exec", "{r}");

    c.ok(&[
        "task",
        "exec",
        "--detach",
        "--exec-id",
        "e2",
        "life",
        "sleep",
        "3601",
    ]);
    let ps = c.ok(&["task", "ps", "life"]);
    assert_eq!(ps.stdout.lines().skip(1).count(), 2, "{ps}");
    assert!(ps.stdout.contains("ExecID:e2"), "{ps}");

    c.ok(&["task", "pause", "life"]);
    c.wait_status("life", "PAUSED");
    c.ok(&["task", "resume", "life"]);
    c.wait_status("life", "RUNNING");

    // ctr prints containerd's v1 metrics table on v1/hybrid hosts, its v2 one on cgroup2.
    let m = c.ok(&["task", "metrics", "life"]);
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let want = if v2 {
        "memory.usage_limit"
    } else {
        "memory.usage_in_bytes"
    };
    assert!(m.stdout.contains(want), "{m}");

    c.ok(&["task", "kill", "--signal", "SIGKILL", "life"]);
    c.wait_status("life", "STOPPED");
    c.ok(&["task", "delete", "life"]);
    c.ok(&["containers", "delete", "life"]);
    c.assert_nothing_left();
}

#[test]
fn run_with_a_terminal() {
    let mut c = Ctr::start();
    let cmd = c.run_cmd(
        "tty",
        &["--rm", "--tty"],
        &[
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo on-a-tty; tty; exit 6",
        ],
    );
    let line = shell_line(&cmd);
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-c", &line, "/dev/null"]);
    let r = run(script);
    assert_eq!(r.code, Some(6), "{r}\n{}", c.d.log_tail());
    assert!(r.stdout.contains("on-a-tty"), "{r}");
    assert!(r.stdout.contains("/dev/pts/"), "{r}");
    c.assert_nothing_left();
}

/// A killed shim: containerd cleans up through `containerd-shim-sealrun-v2 delete`, which
/// must leave no container process, cgroup, mount or state behind.
#[test]
fn killed_shim_is_cleaned_up_by_containerd() {
    let mut c = Ctr::start();
    let cmd = c.run_cmd("crash", &["--detach"], &["sleep", "3600"]);
    let r = run(cmd);
    assert!(r.ok(), "{r}\n{}", c.d.log_tail());
    c.wait_status("crash", "RUNNING");
    let shims = c.d.top_shims();
    assert_eq!(shims.len(), 1, "{shims:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shims[0].0),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // containerd notices the shim is gone, runs `<shim> delete` and forgets the task.
    let mut gone = false;
    for _ in 0..3000 {
        if c.status("crash").is_none() {
            gone = true;
            break;
        }
        sleep(Duration::from_millis(20));
    }
    assert!(gone, "the task outlived its shim\n{}", c.d.log_tail());
    c.ok(&["containers", "delete", "crash"]);
    c.assert_nothing_left();
}

/// containerd restarts: the shim keeps the container running and answers the new containerd
/// (state, exec, kill, delete).
#[test]
fn shim_survives_a_containerd_restart() {
    let mut c = Ctr::start();
    let cmd = c.run_cmd("keep", &["--detach"], &["sleep", "3600"]);
    let r = run(cmd);
    assert!(r.ok(), "{r}\n{}", c.d.log_tail());
    c.wait_status("keep", "RUNNING");
    let shims = c.d.top_shims();

    c.d.restart();
    let mut up = false;
    for _ in 0..3000 {
        if c.d.ctr(&["version"]).ok() {
            up = true;
            break;
        }
        sleep(Duration::from_millis(20));
    }
    assert!(up, "containerd did not come back\n{}", c.d.log_tail());
    assert_eq!(
        c.d.top_shims(),
        shims,
        "the shim did not outlive containerd"
    );
    c.wait_status("keep", "RUNNING");
    let r = run(c.cmd(&[
        "task",
        "exec",
        "--exec-id",
        "after",
        "keep",
        "sh",
        "-c",
        "echo still-here",
    ]));
    assert!(r.ok(), "{r}\n{}", c.d.log_tail());
    assert_eq!(r.stdout.trim(), "still-here", "{r}");

    c.ok(&["task", "kill", "--signal", "SIGKILL", "keep"]);
    c.wait_status("keep", "STOPPED");
    c.ok(&["task", "delete", "keep"]);
    c.ok(&["containers", "delete", "keep"]);
    c.assert_nothing_left();
}

/// `ctr task exec --tty`: the exec'd process gets its own terminal (ctr also resizes it).
#[test]
fn exec_with_a_terminal() {
    let mut c = Ctr::start();
    let r = run(c.run_cmd("exectty", &["--detach"], &["sleep", "3600"]));
    assert!(r.ok(), "{r}\n{}", c.d.log_tail());
    c.wait_status("exectty", "RUNNING");
    let cmd = c.cmd(&[
        "task",
        "exec",
        "--tty",
        "--exec-id",
        "t1",
        "exectty",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo on-a-tty; tty; exit 4",
    ]);
    let line = shell_line(&cmd);
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-c", &line, "/dev/null"]);
    let r = run(script);
    assert_eq!(r.code, Some(4), "{r}\n{}", c.d.log_tail());
    assert!(r.stdout.contains("on-a-tty"), "{r}");
    assert!(r.stdout.contains("/dev/pts/"), "{r}");
    c.ok(&["task", "kill", "--signal", "SIGKILL", "exectty"]);
    c.wait_status("exectty", "STOPPED");
    c.ok(&["task", "delete", "exectty"]);
    c.ok(&["containers", "delete", "exectty"]);
    c.assert_nothing_left();
}

/// Every native shim runs from one sealed memfd copy of the shim binary shared by the node (and
/// starts its workers, whose clones enter containers, from it), not from a copy per shim: two
/// shims, one copy, sealed against writes, resizing, exec-bit changes and further seals, byte
/// for byte the binary containerd started; no worker stays beside a shim once its call is done.
#[test]
fn shims_share_one_sealed_copy() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    // F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_EXEC
    const SEALS: i32 = 0x1 | 0x2 | 0x4 | 0x8 | 0x20;
    let mut c = Ctr::start();
    for id in ["share1", "share2"] {
        let r = run(c.run_cmd(id, &["--detach"], &["sleep", "3600"]));
        assert!(r.ok(), "{r}\n{}", c.d.log_tail());
        c.wait_status(id, "RUNNING");
    }
    let top: Vec<i32> = c.d.top_shims().into_iter().map(|(pid, _)| pid).collect();
    assert_eq!(top.len(), 2, "one shim per container: {top:?}");
    let idle: Vec<i32> =
        c.d.shims()
            .into_iter()
            .filter(|p| !top.contains(p))
            .collect();
    assert!(idle.is_empty(), "workers left beside the shims: {idle:?}");

    let binary = std::fs::read(daemon::workspace_bin("containerd-shim-sealrun-v2")).unwrap();
    let mut copies = Vec::new();
    for pid in &top {
        let exe = std::fs::File::open(format!("/proc/{pid}/exe")).unwrap();
        let seals = nix::fcntl::fcntl(exe.as_raw_fd(), nix::fcntl::FcntlArg::F_GET_SEALS)
            .unwrap_or_else(|e| panic!("shim {pid} does not run from a memfd: {e}"));
        assert_eq!(seals & SEALS, SEALS, "shim {pid}: seals {seals:#x}");
        let content = std::fs::read(format!("/proc/{pid}/exe")).unwrap();
        assert!(content == binary, "shim {pid} runs another binary");
        let m = exe.metadata().unwrap();
        copies.push((m.dev(), m.ino()));
    }
    copies.dedup();
    assert_eq!(
        copies.len(),
        1,
        "the shims run from {} copies",
        copies.len()
    );
    for id in ["share1", "share2"] {
        c.ok(&["task", "kill", "--signal", "SIGKILL", id]);
        c.wait_status(id, "STOPPED");
        c.ok(&["task", "delete", id]);
        c.ok(&["containers", "delete", id]);
    }
    c.assert_nothing_left();
}

/// stdin from a pipe: the container reads it to its end (EOF once the client closes it, which
/// containerd passes on with CloseIO), for the init and for an exec.
#[test]
fn stdin_reaches_its_end() {
    let mut c = Ctr::start();
    let cmd = c.run_cmd("stdin", &["--rm"], &["sh", "-c", "cat; echo end-of-stdin"]);
    let r = run::run_with_input(cmd, Some(b"through-the-pipe\n"));
    assert!(r.ok(), "{r}\n{}", c.d.log_tail());
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        ["through-the-pipe", "end-of-stdin"],
        "{r}"
    );

    let r = run(c.run_cmd("stdinexec", &["--detach"], &["sleep", "3600"]));
    assert!(r.ok(), "{r}\n{}", c.d.log_tail());
    c.wait_status("stdinexec", "RUNNING");
    let cmd = c.cmd(&[
        "task",
        "exec",
        "--exec-id",
        "in",
        "stdinexec",
        "sh",
        "-c",
        "cat; echo end-of-stdin",
    ]);
    let r = run::run_with_input(cmd, Some(b"into-the-exec\n"));
    assert!(r.ok(), "{r}\n{}", c.d.log_tail());
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        ["into-the-exec", "end-of-stdin"],
        "{r}"
    );
    c.ok(&["task", "kill", "--signal", "SIGKILL", "stdinexec"]);
    c.wait_status("stdinexec", "STOPPED");
    c.ok(&["task", "delete", "stdinexec"]);
    c.ok(&["containers", "delete", "stdinexec"]);
    c.assert_nothing_left();
}

/// A process of a container over its memory limit is OOM-killed while the init lives on:
/// containerd hears TaskOOM then, not only when the init exits.
#[test]
fn oom_while_the_init_lives() {
    use std::io::BufRead;
    let mut c = Ctr::start();
    let mut events = c
        .cmd(&["events"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = events.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let r = run(c.run_cmd(
        "oomlive",
        &["--detach", "--memory-limit", &(32u64 << 20).to_string()],
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 3600",
        ],
    ));
    assert!(r.ok(), "{r}\n{}", c.d.log_tail());
    let mut seen = Vec::new();
    let mut oom = false;
    for _ in 0..600 {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                oom |= line.contains("/tasks/oom") && line.contains("oomlive");
                seen.push(line);
            }
            Err(_) => c.d.check_alive(),
        }
        if oom {
            break;
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    assert!(
        oom,
        "no TaskOOM while the container runs:\n{}",
        seen.join("\n")
    );
    assert_eq!(c.status("oomlive").as_deref(), Some("RUNNING"));
    c.ok(&["task", "kill", "--signal", "SIGKILL", "oomlive"]);
    c.wait_status("oomlive", "STOPPED");
    c.ok(&["task", "delete", "oomlive"]);
    c.ok(&["containers", "delete", "oomlive"]);
    c.assert_nothing_left();
}

/// `binary://` stdio, as the runc v2 shim runs it: the logging binary gets the process's
/// stdout and stderr on fds 3 and 4, the URI's query as arguments, the container's id and
/// namespace in its environment, and fd 5 to close once it is ready.
#[test]
fn binary_log_uri() {
    use std::os::unix::fs::PermissionsExt;
    let mut c = Ctr::start();
    let logger = c.d.dir.join("logger.sh");
    std::fs::write(
        &logger,
        "#!/bin/sh\nexec 5>&-\n{ echo \"id=$CONTAINER_ID ns=$CONTAINER_NAMESPACE args=$1\"; \
         cat <&3; cat <&4; } > \"$2.part\" && mv \"$2.part\" \"$2\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = c.d.dir.join("logged.txt");
    let uri = format!("binary://{}?out={}", logger.display(), log.display());
    let cmd = c.run_cmd(
        "logged",
        &["--rm", "--log-uri", &uri],
        &["sh", "-c", "echo to-stdout; echo to-stderr >&2"],
    );
    let r = run(cmd);
    assert!(r.ok(), "{r}\n{}", c.d.log_tail());
    let mut text = None;
    for _ in 0..3000 {
        if let Ok(t) = std::fs::read_to_string(&log) {
            text = Some(t);
            break;
        }
        sleep(Duration::from_millis(20));
    }
    let text = text.expect("the logging binary wrote nothing");
    assert_eq!(
        text,
        format!("id=logged ns={NAMESPACE} args=out\nto-stdout\nto-stderr\n"),
    );
    c.assert_nothing_left();
}
