//! The second half of every container process: from a set-up container to execve.
//!
//! The init runs it after `linux::init` has built the container (rootfs, pivot_root, masks);
//! a process exec'd into a running container (`exec`, next) runs it right after joining the
//! container's namespaces and cgroup. Both get the same steps: rlimits, cwd, environment,
//! program lookup, scheduler, LSM labels, seccomp, capabilities, user, no_new_privs, umask,
//! and no descriptor of the host left. What differs is a [`Gate`]: the init reports ready
//! and waits for `start`; an exec'd process goes straight on.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::sys::stat::{Mode, umask};
use nix::unistd::execve;
use oci_spec::runtime::Process;

use crate::linux::channel::{Channel, Message};
use crate::linux::steps::{Failed, step};
use crate::linux::{capabilities, exec, fds, lsm, rlimits, sched, seccomp, user};

/// What the process is finished from.
pub struct Finish<'a> {
    pub process: &'a Process,
    pub seccomp: Option<&'a seccomp::Filter>,
    pub preserve_fds: u32,
    /// The descriptors the process keeps until execve.
    pub keep: &'a fds::Keep,
    /// To the runtime: a seccomp notify descriptor goes there.
    pub channel: &'a Channel,
}

/// Where the init and an exec'd process differ.
pub trait Gate {
    /// Before privileges are dropped (the init: the exec fifo must be reachable).
    fn check(&self) -> Result<()>;
    /// Once everything but a late seccomp filter is in place (the init: report ready, wait
    /// for `start`, run startContainer hooks).
    fn pass(&self) -> Result<()>;
}

/// Finish the process and execve its program; returns only the failure.
pub fn finish(f: &Finish<'_>, gate: &dyn Gate) -> Result<Infallible, Failed> {
    let process = f.process;
    step("rlimits", || {
        rlimits::apply(process.rlimits().as_deref().unwrap_or(&[]))
    })?;
    // Whatever setup opened is gone before the cwd and the program are resolved.
    step("close setup descriptors", || f.keep.close_others())?;
    step("change directory", || change_dir(process.cwd()))?;
    let env = step("environment", || environment(process))?;
    let program = step("find executable", || {
        let args = process.args().as_deref().unwrap_or(&[]);
        exec::lookup(&args[0], &env, exec::is_executable)
    })?;
    step("start check", || gate.check())?;
    step("scheduler and I/O priority", || sched::apply(process))?;
    step("LSM labels", || lsm::apply_exec_labels(process))?;
    // Before a seccomp filter can be in place: profiles need not allow close_range.
    step("close descriptors", || {
        fds::cloexec_beyond_preserved(f.preserve_fds)
    })?;
    // Without no_new_privs only a process with CAP_SYS_ADMIN may load a filter, and a
    // notifying one must reach the runtime before ready: then it goes in here (as runc
    // does), otherwise right before execve.
    let seccomp_late = f
        .seccomp
        .filter(|s| !s.notifies && process.no_new_privileges().unwrap_or(false));
    if let Some(filter) = f.seccomp.filter(|_| seccomp_late.is_none()) {
        step("seccomp", || load_seccomp(f.channel, filter))?;
    }
    step("capabilities bounding set", || {
        match process.capabilities() {
            Some(c) => capabilities::drop_bounding(c),
            None => Ok(()),
        }
    })?;
    step("user", || user::switch(process.user()))?;
    step("capabilities", || match process.capabilities() {
        Some(c) => capabilities::apply(c),
        None => Ok(()),
    })?;
    step("no_new_privs", || set_no_new_privs(process))?;
    step("umask", || {
        umask(Mode::from_bits_truncate(
            process.user().umask().unwrap_or(0o022) as libc::mode_t,
        ));
        Ok(())
    })?;
    let argv = step("arguments", || {
        exec::cstrings(process.args().as_deref().unwrap_or(&[]), "process.args")
    })?;
    let envp = step("encode environment", || exec::cstrings(&env, "process.env"))?;
    step("start", || gate.pass())?;
    if let Some(filter) = seccomp_late {
        step("seccomp", || load_seccomp(f.channel, filter))?;
    }
    let path = CString::new(program.as_os_str().as_bytes()).expect("paths from lookup have no NUL");
    let err = execve(&path, &argv, &envp).unwrap_err();
    Err(Failed {
        step: "execve",
        error: anyhow::anyhow!("{}: {err}", program.display()),
    })
}

/// chdir to process.cwd *after* pivot_root, and verify the kernel agrees it is inside our
/// root: a cwd outside it (a leaked host directory, CVE-2024-21626) reads as "(unreachable)".
fn change_dir(cwd: &Path) -> Result<()> {
    nix::unistd::chdir(cwd).with_context(|| format!("process.cwd {}", cwd.display()))?;
    let now = std::env::current_dir()
        .with_context(|| format!("process.cwd {}: getcwd", cwd.display()))?;
    if !now.is_absolute() || now.starts_with("(unreachable)") {
        bail!(
            "process.cwd {}: resolves outside the container root",
            cwd.display()
        );
    }
    Ok(())
}

fn environment(process: &Process) -> Result<Vec<String>> {
    let mut env = process.env().clone().unwrap_or_default();
    if exec::env_value(&env, "HOME").is_none() {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        env.push(format!(
            "HOME={}",
            user::home_of(&passwd, process.user().uid())
        ));
    }
    Ok(env)
}

fn set_no_new_privs(process: &Process) -> Result<()> {
    if process.no_new_privileges().unwrap_or(false) {
        nix::sys::prctl::set_no_new_privs().context("prctl PR_SET_NO_NEW_PRIVS")?;
    }
    Ok(())
}

/// Install the filter; a notifying one's listener goes to the runtime (and on to
/// listenerPath).
fn load_seccomp(channel: &Channel, filter: &seccomp::Filter) -> Result<()> {
    if let Some(listener) = seccomp::load(filter)? {
        channel.send_with_fds(&Message::SeccompListener, &[listener.as_raw_fd()])?;
    }
    Ok(())
}
