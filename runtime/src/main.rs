//! mocker-runtime: parse the command line, set up logging, dispatch. Nothing else.

use clap::Parser;

use mocker_runtime::cli::{Cli, Command};
use mocker_runtime::{commands, log};

fn main() {
    let cli = Cli::parse();
    let g = &cli.global;
    if let Err(e) = log::init(g.log.as_deref(), g.log_format, g.debug) {
        eprintln!("{e:#}");
        std::process::exit(1);
    }
    let result = match &cli.command {
        Command::Create(a) => commands::create::run(g, a).map(|()| 0),
        Command::Start(a) => commands::start::run(g, a).map(|()| 0),
        Command::State(a) => commands::state::run(g, a).map(|()| 0),
        Command::Kill(a) => commands::kill::run(g, a).map(|()| 0),
        Command::Delete(a) => commands::delete::run(g, a).map(|()| 0),
        Command::Run(a) => commands::run::run(g, a),
        Command::List(a) => commands::list::run(g, a).map(|()| 0),
        Command::Spec(a) => commands::spec::run(a).map(|()| 0),
        Command::Features => commands::features::run().map(|()| 0),
        Command::Exec(a) => commands::exec::run(g, a),
        Command::Pause(a) => commands::pause::run(g, a).map(|()| 0),
        Command::Resume(a) => commands::resume::run(g, a).map(|()| 0),
        Command::Ps(a) => commands::ps::run(g, a).map(|()| 0),
        Command::Update(a) => commands::update::run(g, a).map(|()| 0),
        Command::Events(a) => commands::events::run(g, a).map(|()| 0),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            log::fatal(&format!("{e:#}"));
            std::process::exit(1);
        }
    }
}
