//! A foreground `run` or `exec`: the signals it forwards to its process, and the wait that
//! forwards them until that process exits.

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::linux::sys;

/// Signals a foreground `run` or `exec` passes on to its process.
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

/// Block the forwarded signals and SIGCHLD (before the process exists, so nothing is lost;
/// the child unblocks them for itself).
pub fn block_signals() -> Result<SigSet> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("block signals")?;
    Ok(set)
}

/// Wait for `pid` to exit, forwarding every signal in `set`; its exit code, 128+N for
/// signal N.
pub fn wait_forwarding(init: Pid, set: &SigSet) -> Result<i32> {
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
pub fn reap_all() {
    while let Ok(s) = waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}
