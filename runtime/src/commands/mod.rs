//! One file per subcommand; each exposes `run(global, args)`.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod foreground;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod resume;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod terminal;
pub mod update;

/// `--pid-file`: the pid, written atomically (relative paths from our cwd, as runc).
pub fn write_pid_file(path: &std::path::Path, pid: nix::unistd::Pid) -> anyhow::Result<()> {
    use anyhow::Context;
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    crate::container::state::write_atomic(&path, pid.as_raw().to_string().as_bytes())
        .with_context(|| format!("--pid-file {}", path.display()))
}

/// Make a command's error name its container (`ID: container does not exist`), keeping
/// runc's wording after the prefix: engines match substrings such as "does not exist" and
/// "container not running".
pub fn naming<T>(id: &str, r: anyhow::Result<T>) -> anyhow::Result<T> {
    r.map_err(|e| {
        if format!("{e:#}").contains(id) {
            e
        } else {
            e.context(id.to_string())
        }
    })
}
