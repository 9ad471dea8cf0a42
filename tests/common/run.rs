//! Running a helper command (`ctr`, `podman`, util-linux `script`) and keeping what it did, for
//! the containerd and podman harnesses.
//!
//! Include it from a harness's test file: `#[path = "common/run.rs"] mod run;`.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt;
use std::process::{Command, Output, Stdio};

/// What a command did, printable in assertion messages.
pub struct Run {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(what: String, out: Output) -> Run {
        Run {
            what,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Stdout without surrounding whitespace (and without a terminal's carriage returns).
    pub fn out(&self) -> String {
        self.stdout.replace('\r', "").trim().to_string()
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` with stdin from /dev/null (or `input`) and captures its output.
pub fn run_with_input(mut cmd: Command, input: Option<&[u8]>) -> Run {
    use std::io::Write;
    let what = describe(&cmd);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(data)
            .unwrap_or_else(|e| panic!("write stdin of {what}: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait {what}: {e}"));
    Run::from_output(what, out)
}

/// Runs `cmd` with stdin from /dev/null and captures its output.
pub fn run(cmd: Command) -> Run {
    run_with_input(cmd, None)
}

/// `cmd` as one shell command line, every word single-quoted.
pub fn shell_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}
