//! `exec [flags] ID COMMAND... | exec -p process.json ID`: a new process in a running
//! container, with runc's flags and exit codes: the process's status in the foreground,
//! 0 with `--detach` once it runs, 255 when it could not be started (one error line).
//!
//! The process is the container's `process` from its config with the command line's
//! changes (args, env appended, cwd, user, additional gids, capabilities added, tty,
//! no_new_privs, LSM labels), or the given process.json. It joins every namespace and the
//! cgroup of the container and gets its seccomp profile (`linux::tenant`).

use std::os::unix::net::UnixStream;

use anyhow::{Context, Result, bail};
use nix::sys::signal::SigSet;
use oci_spec::runtime::{Capabilities, Capability, Process};

use crate::cli::{ExecArgs, Global};
use crate::commands::{foreground, terminal};
use crate::container::Container;
use crate::container::status::Status;
use crate::linux::tenant::{self, Tenant};
use crate::linux::{hooks, lsm, sched, seccomp};
use crate::log;

/// Exit status when the process could not be started (runc's).
const COULD_NOT_START: i32 = 255;

pub fn run(g: &Global, a: &ExecArgs) -> Result<i32> {
    match super::naming(&a.id, exec(g, a)) {
        Ok(code) => Ok(code),
        Err(e) => {
            log::fatal(&format!("{e:#}"));
            Ok(COULD_NOT_START)
        }
    }
}

fn exec(g: &Global, a: &ExecArgs) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    match c.status() {
        Status::Running => {}
        Status::Paused if a.ignore_paused => {}
        Status::Paused => {
            bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        Status::Stopped => bail!("cannot exec in a stopped container"),
        Status::Created | Status::Creating => {
            bail!("cannot exec in a container that has not started")
        }
    }
    if a.cgroup.is_some() {
        bail!("--cgroup: running an exec'd process in a sub-cgroup is not supported");
    }
    let spec = bundle_tools::validate::parse_config(&c.state.bundle.join("config.json"))
        .context("the container's config.json")?;
    let process = process(a, spec.process().as_ref())?;
    lsm::check_process(&process)?;
    sched::check(&process)?;
    let terminal = process.terminal().unwrap_or(false);
    // Without a console socket, a foreground exec makes this terminal the process's.
    let (console, ours) = match (&a.console_socket, terminal) {
        (Some(path), true) => (
            Some(
                UnixStream::connect(path)
                    .with_context(|| format!("--console-socket {}", path.display()))?,
            ),
            None,
        ),
        (Some(_), false) => bail!("--console-socket given but the process has no terminal"),
        (None, true) if a.detach => {
            bail!("--tty with --detach: --console-socket is required to receive the pty")
        }
        (None, true) => {
            let (ours, theirs) = terminal::console_pair()?;
            (Some(theirs), Some(ours))
        }
        (None, false) => (None, None),
    };
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let filter = match profile {
        Some(p) => Some(seccomp::compile(p, Some(&g.root))?),
        None => None,
    };
    let cgroup = c.cgroup()?;
    // Blocked before the clone so nothing is lost; the child unblocks them for itself.
    let set = if a.detach {
        SigSet::empty()
    } else {
        foreground::block_signals()?
    };
    let pid = tenant::spawn(&Tenant {
        init: c.pid(),
        cgroup: &cgroup,
        process: &process,
        seccomp: profile.zip(filter.as_ref()),
        state: hooks::state_for(
            &c.state.id,
            c.state.pid,
            &c.state.bundle,
            &c.state.annotations,
        ),
        preserve_fds: a.preserve_fds,
        console_socket: console.as_ref(),
    })?;
    if let Some(p) = &a.pid_file {
        super::write_pid_file(p, pid)?;
    }
    if a.detach {
        return Ok(0);
    }
    match ours {
        Some(ours) => terminal::bridge(terminal::receive_master(&ours)?, pid, &set),
        None => foreground::wait_forwarding(pid, &set),
    }
}

/// The process to start: process.json, or the container's with the command line's changes.
fn process(a: &ExecArgs, base: Option<&Process>) -> Result<Process> {
    if let Some(path) = &a.process {
        if !a.command.is_empty() {
            bail!("--process: give either a process.json or a command, not both");
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--process {}", path.display()))?;
        let p: Process =
            serde_json::from_str(&text).with_context(|| format!("--process {}", path.display()))?;
        if p.args().as_ref().is_none_or(|a| a.is_empty()) {
            bail!("--process {}: args must not be empty", path.display());
        }
        return Ok(p);
    }
    if a.command.is_empty() {
        bail!("exec: a command is required (or --process)");
    }
    let mut p = base.cloned().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    for e in &a.env {
        if !e.contains('=') {
            bail!("--env {e:?}: not KEY=value");
        }
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    p.set_terminal(Some(a.tty));
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &a.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &a.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    let mut user = p.user().clone();
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let num = |s: &str, what: &str| {
            s.parse::<u32>()
                .map_err(|_| anyhow::anyhow!("--user {u:?}: {what} must be a number"))
        };
        user.set_uid(num(uid, "the uid")?);
        if let Some(g) = gid {
            user.set_gid(num(g, "the gid")?);
        }
    }
    if !a.additional_gids.is_empty() {
        user.set_additional_gids(Some(a.additional_gids.clone()));
    }
    p.set_user(user);
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let added: Capabilities = a
            .cap
            .iter()
            .map(|name| {
                serde_json::from_value::<Capability>(serde_json::Value::String(name.clone()))
                    .map_err(|_| anyhow::anyhow!("--cap {name}: unknown capability"))
            })
            .collect::<Result<_>>()?;
        let grow = |set: &Option<Capabilities>| {
            let mut s = set.clone().unwrap_or_default();
            s.extend(added.iter().copied());
            Some(s)
        };
        caps.set_bounding(grow(caps.bounding()));
        caps.set_effective(grow(caps.effective()));
        caps.set_permitted(grow(caps.permitted()));
        caps.set_inheritable(grow(caps.inheritable()));
        caps.set_ambient(grow(caps.ambient()));
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}
