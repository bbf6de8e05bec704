//! `run`: create + start, then (unless --detach) wait for the init while forwarding signals to
//! it, delete the container and exit with the container's exit code (128+N for signal N).

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::cli::{Global, RunArgs};
use crate::commands::{create, delete, start};
use crate::container::Container;
use crate::linux::sys;

/// Signals a foreground `run` passes on to the container's init.
const FORWARDED: [Signal; 8] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

pub fn run(g: &Global, a: &RunArgs) -> Result<i32> {
    super::naming(&a.create.id, run_container(g, a))
}

fn run_container(g: &Global, a: &RunArgs) -> Result<i32> {
    // Before anything else: this may re-execute the process (see linux::exe_seal).
    crate::linux::exe_seal::ensure_sealed(&g.root)?;
    let mut set = SigSet::empty();
    if !a.detach {
        // Blocked before clone so nothing is lost; the init unblocks them for itself. We
        // become a subreaper so processes outside a PID namespace are ours to reap.
        for s in FORWARDED {
            set.add(s);
        }
        set.add(Signal::SIGCHLD);
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("block signals")?;
        nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
    }
    let created = create::create(g, &a.create)?;
    let pid = created.pid;
    drop(created.locked);
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
    let code = wait_forwarding(pid, &set)?;
    if !a.keep {
        let c = Container::lock(&g.root, &a.create.id)?;
        delete::destroy(&c)?;
    }
    reap_all();
    Ok(code)
}

fn wait_forwarding(init: Pid, set: &SigSet) -> Result<i32> {
    loop {
        let sig = set.wait().context("sigwait")?;
        if sig != Signal::SIGCHLD {
            let _ = sys::send_signal(init, sig as i32);
            continue;
        }
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == init => return Ok(code),
                Ok(WaitStatus::Signaled(p, s, _)) if p == init => return Ok(128 + s as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

/// Reap whatever was reparented to us (we are a subreaper).
fn reap_all() {
    while let Ok(s) = waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}
