//! sealrun's binary: seal self (create/run/exec only) → parse CLI → call the library → print
//! the error (one line) → exit code.

// The C entry point below replaces Rust's runtime start-up (see `selfexe::standard_start`);
// test builds keep the harness's own main.
#![cfg_attr(not(test), no_main)]

mod cli;

use clap::Parser;

use cli::{Cli, Command, Format, LogFormat};
use sealrun::container::order::{Ordered, EVENT_ORDER, STATE_ORDER};
use sealrun::container::{self, RunOutcome, Runtime, StateRoot};
use sealrun::error::{Error, Result};
use sealrun::selfexe::{self, SealStatus};
use sealrun::spec::{CreateOptions, Layers};

/// `println!` that never panics: see [`emit`].
macro_rules! outln {
    ($($arg:tt)*) => { emit(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Write to stdout; a reader that went away (EPIPE) ends the process quietly with 141, the
/// status a shell reports for a SIGPIPE death (runc's), instead of `println!`'s panic.
fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        fail(&format!("write stdout: {e}"));
    }
}

/// Print the one error line on stderr (never panicking if stderr is gone too) and exit 1.
fn fail(msg: &str) -> ! {
    fail_with(msg, 1)
}

/// [`fail`] with another exit code.
fn fail_with(msg: &str, code: i32) -> ! {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "sealrun: {msg}");
    std::process::exit(code)
}

/// The process's entry point. `std::env::args` still works: glibc hands argv to the
/// initialisers Rust's standard library registers, whatever the entry point.
#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    // SAFETY: first thing in the `sealrun` binary's entry point, which owns its process.
    if let Err(e) = unsafe { selfexe::standard_start() } {
        fail(&e.to_string());
    }
    sealrun_main();
    // `process::exit` flushes stdout as Rust's runtime would after `main`.
    std::process::exit(0)
}

#[cfg_attr(test, allow(dead_code))]
fn sealrun_main() {
    seal_early();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    if cli.version {
        outln!("sealrun version {}", env!("CARGO_PKG_VERSION"));
        outln!(
            "commit: {}",
            option_env!("SEALRUN_COMMIT").unwrap_or("unknown")
        );
        outln!("spec: {}", sealrun::OCI_VERSION);
        return;
    }
    let format = match cli.log_format {
        LogFormat::Text => sealrun::LogFormat::Text,
        LogFormat::Json => sealrun::LogFormat::Json,
    };
    if let Err(e) = sealrun::ProcessLog::init(cli.log.as_deref(), format, cli.debug) {
        fail(&format!("--log: {e}"));
    }
    // As runc: exec's own failures exit 255, so callers tell them from the process's status.
    let failed = if matches!(cli.command, Some(Command::Exec(_))) {
        255
    } else {
        1
    };
    match dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = e.to_string();
            sealrun::ProcessLog::error(&msg);
            fail_with(&msg, failed);
        }
    }
}

/// clap could not parse the command line: `--help` and `--version`-like requests print and
/// exit 0; a usage error becomes one line on stderr and in the `--log` file (containerd reads
/// the runtime's error from there), and exits 1 as runc's do.
fn usage_error(e: clap::Error) -> ! {
    if !e.use_stderr() {
        let text = e.render().to_string();
        emit(format_args!("{text}"));
        std::process::exit(0);
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let msg = match help_topic(&e, &args) {
        // `sealrun foo -h`: runc's words, which scripts (and runc's suite) look for.
        Some(topic) => format!("No help topic for '{topic}'"),
        None => usage_message(&e.render().to_string()),
    };
    let (log, format) = raw_log_flags(&args);
    if sealrun::ProcessLog::init(log.as_deref(), format, false).is_ok() {
        sealrun::ProcessLog::error(&msg);
    }
    fail(&msg)
}

/// The unknown command help was asked for (`sealrun foo -h`), if that is the error.
fn help_topic(e: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let asks_help = args.iter().any(|a| a == "-h" || a == "--help");
    if e.kind() != ErrorKind::InvalidSubcommand || !asks_help {
        return None;
    }
    match e.get(ContextKind::InvalidSubcommand) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// clap's rendered error as one line: the text before the usage block, whitespace collapsed,
/// without the `error: ` prefix, pointing at `--help`.
fn usage_message(rendered: &str) -> String {
    let head = rendered.split("\nUsage:").next().unwrap_or(rendered);
    let head = head.split("\nFor more information").next().unwrap_or(head);
    let words: Vec<&str> = head.split_whitespace().collect();
    let line = words.join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    format!("{line} (see --help)")
}

/// `--log` and `--log-format` read from the raw arguments (clap failed, so there is no parsed
/// command line); the last occurrence wins, as when parsing succeeds.
fn raw_log_flags(args: &[std::ffi::OsString]) -> (Option<std::path::PathBuf>, sealrun::LogFormat) {
    let mut log = None;
    let mut format = sealrun::LogFormat::Text;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let Some(a) = a.to_str() else { continue };
        if a == "--" {
            break;
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f, Some(std::ffi::OsString::from(v))),
            None => (a, None),
        };
        if flag != "--log" && flag != "--log-format" {
            continue;
        }
        let Some(value) = inline.or_else(|| it.next().cloned()) else {
            break;
        };
        if flag == "--log" {
            log = Some(std::path::PathBuf::from(value));
        } else if value == "json" {
            format = sealrun::LogFormat::Json;
        } else if value == "text" {
            format = sealrun::LogFormat::Text;
        }
    }
    (log, format)
}

/// Commands that enter a container and therefore run from the sealed copy.
const SEALED_COMMANDS: &[&str] = &["create", "run", "exec", "__helper"];

/// Whether the raw arguments may name a sealed command without switching the seal off. Errs
/// on the side of sealing: an id or flag value spelled `run` also counts, and only a plain
/// `--unsafe-disable ...selfexe...` is read as switching it off. `dispatch` decides again
/// from the parsed command line, so this only chooses whether the copy happens before parsing.
fn wants_seal_early(args: &[std::ffi::OsString]) -> bool {
    let args: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    let disabled = args.iter().enumerate().any(|(i, a)| {
        let list = match a.strip_prefix("--unsafe-disable") {
            Some("") => args.get(i + 1).copied().unwrap_or_default(),
            Some(rest) => rest.strip_prefix('=').unwrap_or_default(),
            None => return false,
        };
        list.split(',').any(|l| l == "selfexe")
    });
    !disabled && args.iter().any(|a| SEALED_COMMANDS.contains(a))
}

/// Copy, seal and re-execute before anything else when the command will need it, so the
/// unsealed first process does no other work (CLI parsing, logging) that the sealed one
/// repeats. Failures are left to `dispatch`, which seals again and reports them.
fn seal_early() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if wants_seal_early(&args) {
        // SAFETY: the `sealrun` binary, single-threaded, before it has done anything.
        let _ = unsafe { selfexe::ensure_sealed(false) };
    }
}

/// `--pid-file` made absolute against the caller's cwd (as runc), before the library runs, so
/// nothing later depends on the process's working directory.
fn absolute_pid_file(p: Option<std::path::PathBuf>) -> Result<Option<std::path::PathBuf>> {
    p.map(|p| {
        std::path::absolute(&p)
            .map_err(|e| Error::InvalidArgument(format!("--pid-file {}: {e}", p.display())))
    })
    .transpose()
}

fn create_options(a: cli::CreateArgs, layers: Layers) -> Result<CreateOptions> {
    // The policy stays the default: `create` holds the container to `Runtime::policy`.
    let mut o = CreateOptions::new(a.id, a.bundle);
    o.console_socket = a.console_socket;
    o.pid_file = absolute_pid_file(a.pid_file)?;
    o.no_pivot = a.no_pivot;
    o.no_new_keyring = a.no_new_keyring;
    o.preserve_fds = a.preserve_fds;
    o.listen_fds = listen_fds();
    o.layers = layers;
    Ok(o)
}

/// systemd socket activation addressed to this process (`LISTEN_PID` is our pid): how many
/// descriptors from 3 on to hand to the container, as runc does for `create` and `run`. Only
/// when every one of them is open: a count past them would hand on whatever the runtime
/// itself opens there.
fn listen_fds() -> u32 {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    let n = match (var("LISTEN_PID"), var("LISTEN_FDS")) {
        (Some(pid), Some(n)) if pid == std::process::id() => n,
        _ => return 0,
    };
    let open = |fd: u32| std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok();
    if (3..3u32.saturating_add(n)).all(open) {
        n
    } else {
        sealrun::ProcessLog::warn(&format!(
            "LISTEN_FDS={n}: not all of descriptors 3 to {} are open; socket activation ignored",
            2u32.saturating_add(n)
        ));
        0
    }
}

fn exec_options(a: cli::ExecArgs, layers: Layers) -> Result<container::ExecOptions> {
    use container::ProcessSource;
    for (flag, value) in [
        ("--process-label", &a.process_label),
        ("--apparmor", &a.apparmor),
    ] {
        if value.as_deref().is_some_and(|v| !v.is_empty()) {
            sealrun::ProcessLog::debug(&format!("{flag}: not supported on this host, ignored"));
        }
    }
    let process = match a.process {
        Some(path) => ProcessSource::File(path),
        None => {
            let mut o = sealrun::spec::ExecOverrides::default();
            o.args = a.command;
            o.tty = a.tty;
            o.cwd = a.cwd;
            o.env = a.env;
            o.user = a.user;
            o.additional_gids = a.additional_gids;
            o.no_new_privs = a.no_new_privs;
            ProcessSource::Args(o)
        }
    };
    let mut o = container::ExecOptions::new(a.id, process);
    o.caps = a.cap;
    o.detach = a.detach;
    o.pid_file = absolute_pid_file(a.pid_file)?;
    o.console_socket = a.console_socket;
    o.preserve_fds = a.preserve_fds;
    o.ignore_paused = a.ignore_paused;
    o.cgroup = a.cgroup;
    o.layers = layers;
    Ok(o)
}

fn dispatch(cli: Cli) -> Result<i32> {
    let Some(command) = cli.command else {
        return Err(Error::InvalidArgument(
            "no command given (see --help)".into(),
        ));
    };
    if cli.systemd_cgroup {
        return Err(Error::Unsupported(
            "--systemd-cgroup: systemd is not available to sealrun; use cgroupfs paths".into(),
        ));
    }
    let mut layers = Layers::default();
    for name in cli.unsafe_disable.iter().flat_map(|s| s.split(',')) {
        layers.disable(name)?;
    }
    let seals = matches!(
        command,
        Command::Create(_) | Command::Run { .. } | Command::Exec(_) | Command::Helper { .. }
    );
    let seal = if seals {
        // SAFETY: the `sealrun` binary, still single-threaded, holding nothing to release.
        unsafe { selfexe::ensure_sealed(layers.selfexe_off())? }
    } else {
        SealStatus::Disabled
    };
    // Only the commands that plan a container read the policy: a broken policy file must not
    // stop `delete` or `kill` from cleaning up.
    let policy = if matches!(
        command,
        Command::Create(_) | Command::Run { .. } | Command::Check { .. } | Command::Helper { .. }
    ) {
        sealrun::policy::Policy::load(cli.policy.as_deref())?
    } else {
        sealrun::policy::Policy::default()
    };
    let root = match &cli.root {
        Some(root) => StateRoot::new(root),
        None => StateRoot::new(&StateRoot::default_path()?),
    };
    // SAFETY: the `sealrun` binary is the runtime process: single-threaded, and every child
    // it makes is its own.
    let rt = unsafe { Runtime::new(root, seal) }.with_policy(policy);
    match command {
        Command::Create(a) => container::create(&rt, create_options(a, layers)?).map(|_| 0),
        Command::Start { id } => container::start(&rt, &id).map(|_| 0),
        Command::Run {
            create,
            detach,
            keep,
        } => match container::run_keep(&rt, create_options(create, layers)?, detach, keep)? {
            RunOutcome::Detached => Ok(0),
            RunOutcome::Exited(code) => Ok(code),
        },
        Command::State { id } => {
            let v = container::state(&rt, &id)?;
            let v = Ordered(&v, STATE_ORDER);
            outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(0)
        }
        Command::Kill { id, signal, all } if signal == "0" => {
            container::kill_check(&rt, &id, all).map(|_| 0)
        }
        Command::Kill { id, signal, all } => {
            let sig = container::parse_signal(&signal)?;
            container::kill(&rt, &id, sig, all).map(|_| 0)
        }
        Command::Delete { id, force } => container::delete(&rt, &id, force).map(|_| 0),
        Command::List { format, quiet } => list(&rt, format, quiet),
        Command::Spec { bundle, rootless } => {
            sealrun::spec::write_default(&bundle, rootless).map(|_| 0)
        }
        Command::Exec(a) => container::exec(&rt, exec_options(a, layers)?),
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps(&rt, &id, format, &ps_args),
        Command::Pause { id } => container::pause(&rt, &id).map(|_| 0),
        Command::Resume { id } => container::resume(&rt, &id).map(|_| 0),
        Command::Update(a) => {
            let id = a.id.clone();
            container::update(&rt, &id, update_resources(a)?).map(|_| 0)
        }
        Command::Events {
            id,
            stats,
            interval,
        } => {
            if stats {
                outln!("{}", Ordered(&container::stats(&rt, &id)?, EVENT_ORDER));
                return Ok(0);
            }
            let every = container::parse_interval(&interval)?;
            container::events(&rt, &id, every, |v| outln!("{}", Ordered(v, EVENT_ORDER))).map(|_| 0)
        }
        Command::Checkpoint(a) => match a.criu.id {
            Some(id) if !a.criu.help => container::checkpoint(
                &rt,
                &id,
                a.criu.image_path.as_deref(),
                a.parent_path.as_deref(),
            )
            .map(|_| 0),
            _ => Err(container::criu_unsupported("checkpoint")),
        },
        Command::Restore(a) => match a.criu.id {
            Some(id) if !a.criu.help => container::restore(&rt, &id).map(|_| 0),
            _ => Err(container::criu_unsupported("restore")),
        },
        Command::Audit { id } => {
            let record = container::audit(&rt, &id)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&record).unwrap_or_default()
            );
            Ok(0)
        }
        Command::Check { format, bundle } => check(&rt, &bundle, format, layers),
        Command::Helper { control_fd } => Ok(sealrun::sandbox::helper_main(rt.clone(), control_fd)),
        Command::Features => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&sealrun::features::features()).unwrap_or_default()
            );
            Ok(0)
        }
    }
}

/// `check`: print the posture; exit 1 when the policy is violated.
fn check(
    rt: &Runtime,
    bundle: &std::path::Path,
    format: cli::CheckFormat,
    layers: Layers,
) -> Result<i32> {
    let report = sealrun::check::check(bundle, rt.policy(), layers)?;
    match format {
        cli::CheckFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        cli::CheckFormat::Text => print!("{}", report.to_text()),
    }
    Ok(if report.violations.is_empty() { 0 } else { 1 })
}

fn list(rt: &Runtime, format: Format, quiet: bool) -> Result<i32> {
    let entries = container::list(rt)?;
    let field = |v: &serde_json::Value, k: &str| match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if quiet {
        for e in &entries {
            outln!("{}", field(&e.state, "id"));
        }
        return Ok(0);
    }
    match format {
        Format::Json => {
            let all: Vec<Ordered> = entries
                .iter()
                .map(|e| Ordered(&e.state, STATE_ORDER))
                .collect();
            outln!("{}", serde_json::to_string(&all).unwrap_or_default());
        }
        Format::Table => {
            let cols = ["id", "pid", "status", "bundle", "created", "owner"];
            let mut rows = vec![cols.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>()];
            for e in &entries {
                rows.push(cols.iter().map(|c| field(&e.state, c)).collect());
            }
            emit(format_args!("{}", sealrun::container::table(&rows)));
        }
    }
    Ok(0)
}

fn ps(rt: &Runtime, id: &str, format: Format, args: &[String]) -> Result<i32> {
    if format == Format::Json {
        let pids = container::pids(rt, id)?;
        outln!("{}", serde_json::to_string(&pids).unwrap_or_default());
        return Ok(0);
    }
    emit(format_args!("{}", container::ps_table(rt, id, args)?));
    Ok(0)
}

fn update_resources(a: cli::UpdateArgs) -> Result<oci_spec::runtime::LinuxResources> {
    let base = match &a.resources {
        Some(path) if path.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                .map_err(|e| Error::Other(format!("read stdin: {e}")))?;
            Some(buf)
        }
        Some(path) => Some(
            std::fs::read(path).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let mut f = container::UpdateFlags::default();
    f.memory = a.memory;
    f.memory_swap = a.memory_swap;
    f.memory_reservation = a.memory_reservation;
    f.kernel_memory = a.kernel_memory;
    f.cpu_shares = a.cpu_shares;
    f.cpu_quota = a.cpu_quota;
    f.cpu_period = a.cpu_period;
    f.cpu_rt_period = a.cpu_rt_period;
    f.cpu_rt_runtime = a.cpu_rt_runtime;
    f.cpuset_cpus = a.cpuset_cpus;
    f.cpuset_mems = a.cpuset_mems;
    f.pids_limit = a.pids_limit;
    f.blkio_weight = a.blkio_weight;
    f.to_resources(base.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn early(args: &[&str]) -> bool {
        let mut v = vec![std::ffi::OsString::from("sealrun")];
        v.extend(args.iter().map(std::ffi::OsString::from));
        wants_seal_early(&v)
    }

    fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
        args.iter().map(std::ffi::OsString::from).collect()
    }

    #[test]
    fn log_flags_are_found_in_raw_arguments() {
        use sealrun::LogFormat as Format;
        let (log, f) = raw_log_flags(&os(&["sealrun", "--log", "/a", "bogus", "--log=/b"]));
        assert_eq!(log.as_deref(), Some(std::path::Path::new("/b")));
        assert_eq!(f, Format::Text);
        let (log, f) = raw_log_flags(&os(&["sealrun", "--log-format", "json", "--log", "/x"]));
        assert_eq!(log.as_deref(), Some(std::path::Path::new("/x")));
        assert_eq!(f, Format::Json);
        let (log, f) = raw_log_flags(&os(&["sealrun", "--log-format=json", "--", "--log", "/y"]));
        assert_eq!(log, None);
        assert_eq!(f, Format::Json);
        assert_eq!(raw_log_flags(&os(&["sealrun", "--log"])).0, None);
    }

    #[test]
    fn usage_errors_become_one_line() {
        let e = Cli::try_parse_from(["sealrun", "create"]).unwrap_err();
        let line = usage_message(&e.render().to_string());
        assert!(!line.contains('\n'), "{line}");
        assert!(!line.starts_with("error"), "{line}");
        assert!(line.contains("<ID>"), "{line}");
    }

    #[test]
    fn sealed_commands_seal_before_parsing() {
        assert!(early(&["run", "c1"]));
        assert!(early(&["--root", "/r", "create", "--bundle", "b", "c1"]));
        assert!(early(&["exec", "c1", "/bin/true"]));
        assert!(early(&["--unsafe-disable", "landlock", "run", "c1"]));
        assert!(early(&["state", "run"]), "over-approximates: harmless");
        assert!(!early(&["state", "c1"]));
        assert!(!early(&["delete", "--force", "c1"]));
        assert!(!early(&[]));
    }

    #[test]
    fn only_an_explicit_selfexe_switch_skips_it() {
        assert!(!early(&["--unsafe-disable", "selfexe", "run", "c1"]));
        assert!(!early(&["--unsafe-disable=seccomp,selfexe", "run", "c1"]));
        assert!(!early(&[
            "run",
            "--unsafe-disable",
            "landlock,selfexe",
            "c1"
        ]));
        assert!(early(&["--unsafe-disable", "selfexecute", "run", "c1"]));
        assert!(early(&["--unsafe-disable"]) == early(&[]));
    }
}
