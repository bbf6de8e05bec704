//! One file per subcommand; each exposes `run(global, args)`.

pub mod create;
pub mod delete;
pub mod features;
pub mod kill;
pub mod list;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;

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
