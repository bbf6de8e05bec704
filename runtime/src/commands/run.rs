//! `run`: create + start, then (unless --detach) wait for the init while forwarding signals to
//! it, delete the container and exit with the container's exit code (128+N for signal N).

use anyhow::{Context, Result};
use nix::sys::signal::SigSet;
use nix::sys::wait::waitpid;

use crate::cli::{Global, RunArgs};
use crate::commands::{create, delete, foreground, start, terminal};
use crate::container::Container;

pub fn run(g: &Global, a: &RunArgs) -> Result<i32> {
    super::naming(&a.create.id, run_container(g, a))
}

fn run_container(g: &Global, a: &RunArgs) -> Result<i32> {
    // Before anything else: this may re-execute the process (see linux::exe_seal).
    crate::linux::exe_seal::ensure_sealed()?;
    let mut set = SigSet::empty();
    if !a.detach {
        // Blocked before clone so nothing is lost; the init unblocks them for itself. We
        // become a subreaper so processes outside a PID namespace are ours to reap.
        set = foreground::block_signals()?;
        nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
    }
    // A terminal without a console socket: this terminal becomes the container's (runc's
    // behaviour), which a detached run cannot do.
    let created = create::create_with(g, &a.create, !a.detach)?;
    let pid = created.pid;
    drop(created.locked);
    let master = match &created.console {
        Some(ours) => Some(terminal::receive_master(ours)?),
        None => None,
    };
    let c = Container::lock(&g.root, &a.create.id)?;
    if let Err(e) = start::start(&c) {
        let _ = delete::kill_init(&c).and_then(|()| delete::destroy(&c));
        let _ = waitpid(pid, None);
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    drop(c);
    let code = match master {
        Some(m) => terminal::bridge(m, pid, &set)?,
        None => foreground::wait_forwarding(pid, &set)?,
    };
    if !a.keep {
        let c = Container::lock(&g.root, &a.create.id)?;
        delete::destroy(&c)?;
    }
    foreground::reap_all();
    Ok(code)
}
