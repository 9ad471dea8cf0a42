//! The command line, mirroring runc's commands and flags. No logic here: `main` maps these
//! structs onto library calls.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// sealrun: a hardened, minimal, OCI-compatible container runtime.
#[derive(Debug, Parser)]
#[command(name = "sealrun", disable_version_flag = true, max_term_width = 100)]
pub struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = "/run/sealrun")]
    pub root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
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

/// Options shared by `create` and `run`.
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

/// The commands.
#[derive(Debug, Subcommand)]
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
        /// Keep the container's state after it exits (accepted; sealrun removes it).
        #[arg(long, hide = true)]
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
    /// Run a new process in a running container.
    Exec(ExecArgs),
}

/// `exec` options (runc's).
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
}
