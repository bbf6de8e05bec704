//! The clone sequence, parent side: one clone straight into the new namespaces, then a short
//! conversation over [`channel`](crate::linux::channel) until the init is ready.
//!
//! The child enters its cgroups without a migration (`linux::cgroup_join`).
//!
//! No intermediate process and no re-exec: clone(CLONE_NEWPID|...) puts the child directly
//! into the new PID namespace as its PID 1, and the child already holds the parsed config (it
//! is a copy of us), so nothing has to be serialised to it. A PID namespace given by path is
//! entered by the parent before clone (setns on a PID namespace only affects children).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::linux::cgroup_join::Join;
use crate::linux::cgroups::Cgroup;
use crate::linux::channel::{self, Channel, Message};
use crate::linux::hooks::{self, Phase};
use crate::linux::idmap::IdMaps;
use crate::linux::idmapped::Prepared;
use crate::linux::init::{self, InitArgs};
use crate::linux::namespaces::Namespaces;
use crate::linux::seccomp;
use crate::linux::sys::{self, Cloned};
use crate::linux::timens::NewTimeNs;
use crate::linux::tty;

/// Everything needed to start one container init.
pub struct Spawn<'a> {
    pub id: &'a str,
    pub seccomp: Option<&'a seccomp::Filter>,
    /// A new user namespace's maps, written here while the init waits.
    pub id_maps: Option<&'a IdMaps>,
    /// A new time namespace, entered by the init at birth.
    pub time: Option<&'a NewTimeNs>,
    /// ID-mapped mounts prepared for the init to attach.
    pub idmapped: &'a [Prepared],
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub namespaces: &'a Namespaces,
    pub cgroup: &'a Cgroup,
    /// `O_PATH` descriptor of `<root>/<id>/exec.fifo`.
    pub exec_fifo: &'a OwnedFd,
    pub preserve_fds: u32,
    pub console_socket: Option<&'a UnixStream>,
    /// Descriptors only the parent may hold (the container lock above all: a copy in the
    /// child would keep the lock until execve and dead-lock `start`).
    pub parent_only_fds: Vec<RawFd>,
}

/// Clone the init, put it in its cgroup, call `on_cloned` (records the pid in state.json),
/// release it and wait until it reports ready. On any error the child is killed and reaped.
pub fn spawn(s: Spawn<'_>, on_cloned: impl FnOnce(Pid) -> Result<()>) -> Result<Pid> {
    let (parent_end, child_end) = channel::pair()?;
    s.namespaces.join_pid_for_children()?;
    let mut close_in_child = s.parent_only_fds.clone();
    close_in_child.push(parent_end.raw_fd());
    if let Some(sock) = s.console_socket {
        close_in_child.push(sock.as_raw_fd());
    }
    // Born in the cgroup2 directory (if any) and moving itself into the v1 ones: no costly
    // migration (see linux::cgroup_join). Without clone3, the parent migrates it instead.
    let join = Join::plan(s.cgroup)?;
    let flags = s.namespaces.clone_flags();
    if let Some(t) = s.time {
        t.prepare_for_child()?;
    }
    let cloned = (|| -> Result<(Cloned, bool)> {
        if s.namespaces.joins_user() {
            return clone_via_intermediate(&s, flags, &parent_end, &child_end).map(|c| (c, false));
        }
        Ok(
            match join
                .v2_dir()
                .map(|dir| sys::clone_process_into_cgroup(flags, dir))
            {
                Some(Ok(c)) => (c, true),
                None => (
                    sys::clone_process(flags).map_err(|e| s.namespaces.clone_error(e))?,
                    true,
                ),
                Some(Err(e)) => {
                    crate::log::debug(format_args!(
                        "clone3 into the cgroup failed ({e}); migrating the init instead"
                    ));
                    (
                        sys::clone_process(flags).map_err(|e| s.namespaces.clone_error(e))?,
                        false,
                    )
                }
            },
        )
    })();
    if let Some(t) = s.time
        && !matches!(cloned, Ok((Cloned::Child, _)))
    {
        t.restore()?;
    }
    let (cloned, self_join) = cloned?;
    let pid = match cloned {
        Cloned::Child => init::run(InitArgs {
            id: s.id,
            seccomp: s.seccomp,
            idmapped: s.idmapped,
            cgroup_join: self_join.then_some(&join),
            spec: s.spec,
            rootfs: s.rootfs,
            bundle: s.bundle,
            namespaces: s.namespaces,
            channel: child_end,
            exec_fifo: s.exec_fifo.as_raw_fd(),
            preserve_fds: s.preserve_fds,
            console: s.console_socket.is_some(),
            close_first: close_in_child,
        }),
        Cloned::Parent(pid) => pid,
    };
    drop(child_end);
    let result = (|| {
        if !self_join {
            s.cgroup
                .add_task(pid)
                .context("add the init to its cgroup")?;
        }
        if let Some(maps) = s.id_maps {
            maps.write(pid)?;
        }
        on_cloned(pid)?;
        parent_end.send(&Message::Continue)?;
        loop {
            match parent_end.recv()? {
                Some((Message::Ready, _)) => return Ok(()),
                Some((Message::SeccompListener, fds)) => {
                    let Some(listener) = fds.first() else {
                        bail!("init sent no seccomp listener descriptor");
                    };
                    send_seccomp_listener(&s, pid, listener)?;
                }
                Some((Message::RunHooks, _)) => {
                    run_create_hooks(&s, pid)?;
                    parent_end.send(&Message::Continue)?;
                }
                Some((Message::ConsoleMaster, fds)) => {
                    let (Some(sock), Some(master)) = (s.console_socket, fds.first()) else {
                        bail!("init sent a console without a console socket");
                    };
                    tty::send_to_console_socket(sock, master)?;
                }
                Some((Message::Error { step, message }, _)) => bail!("{step}: {message}"),
                Some((other, _)) => bail!("unexpected message from the init: {other:?}"),
                None => {
                    return Err(anyhow!(
                        "the container init exited before it was ready ({})",
                        reap(pid)
                    ));
                }
            }
        }
    })();
    if let Err(e) = result {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        return Err(e);
    }
    Ok(pid)
}

/// A user namespace given by path: an intermediate process enters it and clones the init
/// with CLONE_PARENT, so the init is still our child while every namespace it creates is
/// owned by that user namespace (the kernel gives a new namespace the creator's user
/// namespace; a process cannot enter one and stay privileged on the host). The
/// intermediate reports the init's pid and exits; the caller then migrates the init into
/// its cgroups.
fn clone_via_intermediate(
    s: &Spawn<'_>,
    flags: CloneFlags,
    parent_end: &Channel,
    child_end: &Channel,
) -> Result<Cloned> {
    let helper =
        match sys::clone_process(CloneFlags::empty()).context("clone the intermediate process")? {
            Cloned::Parent(helper) => helper,
            Cloned::Child => {
                let cloned = s.namespaces.enter_user().and_then(|()| {
                    sys::clone_process(flags | CloneFlags::CLONE_PARENT)
                        .map_err(|e| s.namespaces.clone_error(e))
                });
                let (msg, code) = match cloned {
                    Ok(Cloned::Child) => return Ok(Cloned::Child),
                    Ok(Cloned::Parent(pid)) => (Message::InitPid { pid: pid.as_raw() }, 0),
                    Err(e) => (
                        Message::Error {
                            step: "intermediate process".into(),
                            message: format!("{e:#}"),
                        },
                        1,
                    ),
                };
                let _ = child_end.send(&msg);
                sys::exit_now(code)
            }
        };
    let reply = parent_end.recv();
    let _ = waitpid(helper, None);
    match reply? {
        Some((Message::InitPid { pid }, _)) => Ok(Cloned::Parent(Pid::from_raw(pid))),
        Some((Message::Error { step, message }, _)) => bail!("{step}: {message}"),
        other => bail!("the intermediate process sent {other:?}"),
    }
}

/// The seccomp notification descriptor, to `listenerPath` (see seccomp::hand_listener).
fn send_seccomp_listener(s: &Spawn<'_>, pid: Pid, listener: &OwnedFd) -> Result<()> {
    let profile = s
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .context("a seccomp listener without a profile")?;
    let none = Default::default();
    let mut state = hooks::state_for(
        s.id,
        pid.as_raw(),
        s.bundle,
        s.spec.annotations().as_ref().unwrap_or(&none),
    );
    state.status = "creating";
    seccomp::hand_listener(profile, &state, pid, listener)
}

/// prestart (deprecated, still docker's) then createRuntime, in the runtime's namespaces.
fn run_create_hooks(s: &Spawn<'_>, pid: Pid) -> Result<()> {
    let none = Default::default();
    let state = hooks::state_for(
        s.id,
        pid.as_raw(),
        s.bundle,
        s.spec.annotations().as_ref().unwrap_or(&none),
    );
    let all = s.spec.hooks().as_ref();
    hooks::run(Phase::Prestart, all, &state)?;
    hooks::run(Phase::CreateRuntime, all, &state)
}

fn reap(pid: Pid) -> String {
    match waitpid(pid, None) {
        Ok(WaitStatus::Exited(_, code)) => format!("exit status {code}"),
        Ok(WaitStatus::Signaled(_, sig, _)) => format!("killed by {sig}"),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("wait: {e}"),
    }
}
