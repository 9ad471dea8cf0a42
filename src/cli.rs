//! The command line, mirroring runc's commands and flags. No logic here: `main` maps these
//! structs onto library calls.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// sealrun: a hardened, minimal, OCI-compatible container runtime.
#[derive(Debug, Parser)]
// A flag given twice keeps its last value, as in runc: podman passes its own `--log` after any
// `--runtime-flag log=...` the user gave.
#[command(
    name = "sealrun",
    disable_version_flag = true,
    max_term_width = 100,
    args_override_self = true
)]
pub struct Cli {
    /// Root directory for container state (default: /run/sealrun as root, else
    /// $XDG_RUNTIME_DIR/sealrun).
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Operator policy file (default: /etc/sealrun/policy.json when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Use systemd to manage cgroups (not available: sealrun manages cgroupfs directly).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility; ignored.
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    /// Accepted for runc compatibility (true, false or auto); ignored.
    #[arg(long = "rootless", hide = true)]
    pub rootless_mode: Option<String>,
    /// TESTING ONLY: switch a hardening layer off (selfexe, landlock, seccomp, fd-hygiene,
    /// path-safety, nondumpable). Never use in production.
    #[arg(
        long = "unsafe-disable",
        global = true,
        hide = true,
        value_name = "LAYER"
    )]
    pub unsafe_disable: Vec<String>,
    /// Print the version.
    #[arg(short = 'v', long)]
    pub version: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// logfmt-style text.
    Text,
    /// JSON lines.
    Json,
}

/// `--format` of `list` and `ps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned table.
    Table,
    /// JSON.
    Json,
}

/// `--format` of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// Text, one fact per line.
    Text,
    /// JSON (stable field names).
    Json,
}

// Options shared by `create` and `run`. (The `Args` structs carry plain comments: a doc comment
// would become the about text of every command using them, over the command's own, since
// `Command` defers their flags.)
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Container id.
    pub id: String,
    /// Path to the bundle (the directory holding config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// File to write the container process's pid to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not give the container its own session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3..3+N) to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
}

/// The commands. Each one's flags are defined only when that command is parsed (`defer`):
/// building every command's arguments cost a sealed `run` about 300 KB of heap (clap's `Arg`
/// is over 1 KB) and the CPU to make and drop them.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Create a container and leave it waiting for `start`.
    Create(CreateArgs),
    /// Start a created container.
    Start {
        /// Container id.
        id: String,
    },
    /// Create and start a container; wait for it unless --detach.
    Run {
        /// Create options.
        #[command(flatten)]
        create: CreateArgs,
        /// Do not wait for the container.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container (state and cgroup) after it exits, until `delete`.
        #[arg(long)]
        keep: bool,
    },
    /// Print the state of a container.
    State {
        /// Container id.
        id: String,
    },
    /// Send a signal to a container's process (default SIGTERM).
    Kill {
        /// Container id.
        id: String,
        /// Signal name (with or without SIG) or number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
        /// Signal every process in the container.
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container.
    Delete {
        /// Container id.
        id: String,
        /// Kill it first if it is still running.
        #[arg(short, long)]
        force: bool,
    },
    /// List containers.
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Print only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default, hardened config.json.
    Spec {
        /// Where to write it.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A config for running without root (user namespace, no network namespace).
        #[arg(long)]
        rootless: bool,
    },
    /// Print what this runtime supports (runtime-spec features.md JSON).
    Features,
    /// Print a container's audit record (JSON): what its process enforced, as read back.
    Audit {
        /// Container id.
        id: String,
    },
    /// Explain a bundle's security posture on this host and check it against the operator
    /// policy, without creating anything (exit 1 on policy violations).
    Check {
        /// Output format.
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
        /// The bundle directory (default: the current directory).
        #[arg(default_value = ".")]
        bundle: PathBuf,
    },
    /// Run a new process in a running container.
    Exec(ExecArgs),
    /// Internal: the embedding API's helper process (control socket on descriptor 3).
    #[command(name = "__helper", hide = true)]
    Helper {
        /// The control socket's descriptor; those from 3 below it go to the container.
        #[arg(long, default_value_t = 3)]
        control_fd: i32,
    },
    /// List the processes of a container.
    Ps {
        /// Output format (json: an array of pids).
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Container id.
        id: String,
        /// Options for ps(1) in table format (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause {
        /// Container id.
        id: String,
    },
    /// Thaw a paused container.
    Resume {
        /// Container id.
        id: String,
    },
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Checkpoint a running container (not supported: sealrun has no CRIU support).
    // `--help` fails like the command: podman (and other clients) take a successful
    // `checkpoint --help` to mean the runtime can checkpoint.
    #[command(disable_help_flag = true)]
    Checkpoint(CheckpointArgs),
    /// Restore a container from a checkpoint (not supported: sealrun has no CRIU support).
    #[command(disable_help_flag = true)]
    Restore(RestoreArgs),
    /// Print resource usage: one sample with --stats, else a sample every --interval.
    Events {
        /// Container id.
        id: String,
        /// Print one sample and exit.
        #[arg(long)]
        stats: bool,
        /// Sampling interval (e.g. 5s, 500ms).
        #[arg(long, default_value = "5s")]
        interval: String,
    },
}

// `update` options (runc's).
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Container id.
    pub id: String,
    /// A runtime-spec linux.resources JSON file, or - for stdin.
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1: unlimited).
    #[arg(short, long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Kernel memory limit (ignored by current kernels).
    #[arg(long, allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPU CFS quota in microseconds (-1: no limit).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU realtime period.
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime.
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs allowed (e.g. 0-1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes (-1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block I/O weight (10-1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
}

// `exec` options (runc's).
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Container id.
    pub id: String,
    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A runtime-spec process JSON file.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=value); repeatable.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional gids; repeatable.
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// Add a capability; repeatable.
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs.
    #[arg(long)]
    pub no_new_privs: bool,
    /// SELinux label (accepted; SELinux is not supported here).
    #[arg(long)]
    pub process_label: Option<String>,
    /// AppArmor profile (accepted; AppArmor is not supported here).
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Do not wait for the process.
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the process's pid to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Pass N extra fds (3..3+N).
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Allow exec into a paused container.
    #[arg(long)]
    pub ignore_paused: bool,
    /// Run in a sub-cgroup of the container's: PATH, or CTL[,CTL]:PATH; repeatable.
    #[arg(long)]
    pub cgroup: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_flags_keep_the_last_value_and_lists_accumulate() {
        let cli = Cli::try_parse_from([
            "sealrun",
            "--root",
            "/a",
            "--log=/x",
            "--root=/b",
            "--log",
            "/y",
            "exec",
            "--env",
            "A=1",
            "-e",
            "B=2",
            "--cwd",
            "/c",
            "--cwd=/d",
            "id",
            "true",
        ])
        .unwrap();
        assert_eq!(cli.root, Some(PathBuf::from("/b")));
        assert_eq!(cli.log, Some(PathBuf::from("/y")));
        let Some(Command::Exec(a)) = cli.command else {
            panic!("not exec");
        };
        assert_eq!(a.env, ["A=1", "B=2"]);
        assert_eq!(a.cwd, Some(PathBuf::from("/d")));
        assert_eq!(a.command, ["true"]);
    }
}

// The options `checkpoint` and `restore` share (runc's; sealrun has no CRIU, so only the id
// and `--image-path` are read).
#[derive(Debug, Args)]
// Accepted so runc's command lines parse.
#[allow(dead_code)]
pub struct CriuArgs {
    /// Refused like the command itself (no CRIU support).
    #[arg(short = 'h', long = "help")]
    pub help: bool,
    /// Container id.
    #[arg(required_unless_present = "help")]
    pub id: Option<String>,
    /// Directory of the images (default: ./checkpoint).
    #[arg(long)]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's logs and work files.
    #[arg(long)]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long)]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long)]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long)]
    pub file_locks: bool,
    /// Cgroups mode: soft, full, strict or ignore.
    #[arg(long)]
    pub manage_cgroups_mode: Option<String>,
    /// Namespaces not to checkpoint or restore.
    #[arg(long)]
    pub empty_ns: Option<String>,
    /// Deduplicate with the parent image.
    #[arg(long)]
    pub auto_dedup: bool,
    /// Use userfaultfd to lazily restore memory pages.
    #[arg(long)]
    pub lazy_pages: bool,
}

// `checkpoint` options (checked as runc does, then refused: sealrun has no CRIU).
#[derive(Debug, Args)]
// Accepted so runc's command lines parse; only the id and the paths are read.
#[allow(dead_code)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Previous pre-dump, relative to --image-path.
    #[arg(long)]
    pub parent_path: Option<PathBuf>,
    /// Leave the process running after the checkpoint.
    #[arg(long)]
    pub leave_running: bool,
    /// Descriptor to report lazy-pages readiness on.
    #[arg(long)]
    pub status_fd: Option<String>,
    /// ADDRESS:PORT of a page server.
    #[arg(long)]
    pub page_server: Option<String>,
    /// Dump memory only, leave the container running.
    #[arg(long)]
    pub pre_dump: bool,
}

// `restore` options (refused: sealrun has no CRIU).
#[derive(Debug, Args)]
// Accepted so runc's command lines parse; only the id is read.
#[allow(dead_code)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// The bundle directory.
    #[arg(short, long)]
    pub bundle: Option<PathBuf>,
    /// Socket for the console's pty master.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Do not wait for the container.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the init's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Do not become the subreaper.
    #[arg(long)]
    pub no_subreaper: bool,
    /// Use MS_MOVE instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// LSM profile for the restored process.
    #[arg(long)]
    pub lsm_profile: Option<String>,
    /// LSM mount context.
    #[arg(long)]
    pub lsm_mount_context: Option<String>,
}
