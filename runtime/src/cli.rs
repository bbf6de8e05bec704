//! The command line, mirroring runc's (`runc --help`): global flags first, then a subcommand.
//! Flags runc has that change nothing for us (`--no-new-keyring`, `--no-subreaper`, `--criu`)
//! are accepted so engines that pass them keep working.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::log;

#[derive(Debug, Parser)]
#[command(
    name = "mocker-runtime",
    version,
    about = "runc-compatible OCI container runtime"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Root directory for container state (should be on a tmpfs)
    #[arg(long, default_value = "/run/mocker")]
    pub root: PathBuf,
    /// Log file (default: stderr)
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Log format
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: log::Format,
    /// Enable debug logging
    #[arg(long)]
    pub debug: bool,
    /// Use systemd to manage cgroups (refused where systemd does not manage them)
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility; checkpoint/restore is not supported
    #[arg(long, hide = true)]
    pub criu: Option<PathBuf>,
    /// runc's rootless mode switch: only `false` (or `auto` as root) is supported
    #[arg(long, hide = true)]
    pub rootless: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container (its process waits for `start`)
    Create(CreateArgs),
    /// Start the user process of a created container
    Start(IdArg),
    /// Print the state of a container as OCI state JSON
    State(IdArg),
    /// Send a signal to a container's init (or every process with --all)
    Kill(KillArgs),
    /// Delete a container and everything it holds
    Delete(DeleteArgs),
    /// Create and start a container, wait for it and delete it (unless --detach)
    Run(RunArgs),
    /// List containers
    List(ListArgs),
    /// Write a default config.json
    Spec(SpecArgs),
    /// Show the enabled features (the runtime-spec features document)
    Features,
    /// Run a new process inside a running container
    Exec(Box<ExecArgs>),
    /// Suspend every process in the container
    Pause(IdArg),
    /// Resume a paused container
    Resume(IdArg),
    /// List the processes running in a container
    Ps(PsArgs),
    /// Update a running container's resource limits
    Update(Box<UpdateArgs>),
    /// Show OOM events and resource statistics of a container
    Events(EventsArgs),
}

#[derive(Debug, Args)]
pub struct IdArg {
    pub id: String,
}

#[derive(Debug, Args, Clone)]
pub struct CreateArgs {
    /// Bundle directory (holds config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the init's pid to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Pass this many extra descriptors (3, 4, ...) to the container process
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Accepted for runc compatibility: mocker always uses pivot_root
    #[arg(long, hide = true)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility: mocker creates no session keyring
    #[arg(long, hide = true)]
    pub no_new_keyring: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Unix socket that receives the pty master (with --tty)
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=value), after the container's
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// UID[:GID] to run as
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional group ids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// The process as JSON (runtime-spec `process`); replaces the command line
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Return once the process runs instead of waiting for it
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// SELinux label for the process
    #[arg(long)]
    pub process_label: Option<String>,
    /// AppArmor profile for the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// Add a capability to the process's sets
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Pass this many extra descriptors (3, 4, ...) to the process
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Run the process in a sub-cgroup (not supported)
    #[arg(long)]
    pub cgroup: Option<String>,
    /// Allow exec in a paused container
    #[arg(long)]
    pub ignore_paused: bool,
    pub id: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: ListFormat,
    pub id: String,
    /// Arguments for ps (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// A linux.resources JSON document, or - for standard input
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_share: Option<u64>,
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    #[arg(long)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    #[arg(long)]
    pub cpu_idle: Option<i64>,
    /// Memory limit (bytes, or with k/m/g)
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap (bytes, or with k/m/g; -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Accepted for runc compatibility (obsolete)
    #[arg(long, hide = true)]
    pub kernel_memory: Option<String>,
    /// Accepted for runc compatibility (obsolete)
    #[arg(long, hide = true)]
    pub kernel_memory_tcp: Option<String>,
    #[arg(long)]
    pub l3_cache_schema: Option<String>,
    #[arg(long)]
    pub mem_bw_schema: Option<String>,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Time between two statistics
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Print the statistics once and exit
    #[arg(long)]
    pub stats: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal every process in the container's cgroup
    #[arg(short, long)]
    pub all: bool,
    pub id: String,
    /// Signal name (KILL, SIGKILL) or number; default SIGTERM
    pub signal: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill a running container first
    #[arg(short, long)]
    pub force: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return once the container runs instead of waiting for it
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
    /// Accepted for runc compatibility
    #[arg(long, hide = true)]
    pub no_subreaper: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// Print only ids
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Directory to write config.json in
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("mocker-runtime").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn runc_style_invocations_parse() {
        let c = parse(&[
            "--root",
            "/r",
            "--log",
            "/l",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "id1",
        ]);
        assert_eq!(c.global.root, PathBuf::from("/r"));
        assert_eq!(c.global.log_format, log::Format::Json);
        let Command::Create(a) = c.command else {
            panic!()
        };
        assert_eq!((a.bundle.to_str(), a.id.as_str()), (Some("/b"), "id1"));

        let c = parse(&["kill", "--all", "x", "KILL"]);
        let Command::Kill(k) = c.command else {
            panic!()
        };
        assert!(k.all);
        assert_eq!(k.signal.as_deref(), Some("KILL"));

        let c = parse(&["run", "-d", "-b", "/b", "--no-new-keyring", "x"]);
        let Command::Run(r) = c.command else { panic!() };
        assert!(r.detach);
        assert_eq!(c.global.root, PathBuf::from("/run/mocker"));

        let c = parse(&["list", "--format", "json", "-q"]);
        assert!(matches!(
            c.command,
            Command::List(ListArgs {
                format: ListFormat::Json,
                quiet: true
            })
        ));
        assert!(matches!(
            parse(&["delete", "-f", "x"]).command,
            Command::Delete(DeleteArgs { force: true, .. })
        ));
    }
}
