//! One file per subcommand; each exposes `run(global, args)`.

pub mod create;
pub mod delete;
pub mod kill;
pub mod list;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
