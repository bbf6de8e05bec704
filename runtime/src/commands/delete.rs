//! `delete [--force] ID`: remove a stopped container (a created one too, like runc); a running
//! one only with --force, which kills it first. Removes every process, the cgroup and the
//! state directory.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use nix::sys::signal::Signal;

use crate::cli::{DeleteArgs, Global};
use crate::container::status::Status;
use crate::container::{self, Container};
use crate::linux::hooks::{self, Phase};
use crate::linux::sys;

const KILL_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(g: &Global, a: &DeleteArgs) -> Result<()> {
    super::naming(&a.id, delete(g, a))
}

fn delete(g: &Global, a: &DeleteArgs) -> Result<()> {
    let Some(c) = Container::try_lock(&g.root, &a.id)? else {
        // A directory without state.json is what a create killed early leaves: remove it.
        if let Some(l) = Container::lock_dir_only(&g.root, &a.id)?
            && container::state::State::load(&l.dir)?.is_none()
        {
            container::remove_dir(&l.dir)?;
        }
        if a.force {
            return Ok(());
        }
        bail!("container does not exist");
    };
    match c.status() {
        Status::Stopped => {}
        Status::Created => kill_init(&c)?,
        _ if a.force => kill_init(&c)?,
        status => bail!(
            "cannot delete container {} that is not stopped: {status}",
            a.id
        ),
    }
    destroy(&c)
}

/// SIGKILL the init and wait until it is gone (a zombie counts as gone).
pub fn kill_init(c: &Container) -> Result<()> {
    match sys::send_signal(c.pid(), libc::SIGKILL) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
        Err(e) => bail!("kill {}: {e}", c.pid()),
    }
    if c.state.paused {
        // A frozen process only dies once thawed.
        c.cgroup()?.thaw()?;
    }
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    while c.status() != Status::Stopped {
        if start.elapsed() > KILL_TIMEOUT {
            bail!("container init {} did not die after SIGKILL", c.pid());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    Ok(())
}

/// Everything but the (dead) init: leftover processes (only possible without a PID
/// namespace of its own), the cgroup, the rootfs mounts (only in the host's mount namespace
/// when the container has none of its own), the state directory.
pub fn destroy(c: &Container) -> Result<()> {
    let cgroup = c.cgroup()?;
    if !c.state.has_own_pid_namespace() {
        let start = Instant::now();
        while !cgroup.pids().is_empty() {
            cgroup.kill_all(Signal::SIGKILL)?;
            if start.elapsed() > KILL_TIMEOUT {
                bail!("processes of container {} survive SIGKILL", c.state.id);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    cgroup.destroy()?;
    crate::linux::rootfs::host_ns::release(&c.dir, &c.state.rootfs)?;
    container::remove_dir(&c.dir)?;
    crate::log::debug(format_args!("container {} deleted", c.state.id));
    // After the container is gone, before delete returns; a failure is a warning.
    hooks::run_recorded(Phase::Poststop, &c.state);
    Ok(())
}
