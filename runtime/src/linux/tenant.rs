//! A process exec'd into a running container (`exec`): the second kind of spawn.
//!
//! The parent opens the namespaces of the container's init that differ from its own and
//! enters the PID one for its next child (setns on a PID namespace only affects children);
//! one clone, into the container's cgroup2 directory where there is one, gives a child that
//! joins the v1 cgroups itself, enters the user namespace first and the mount namespace last
//! (which also makes the container's root its root and cwd), closes everything it inherited,
//! and runs the same `linux::finish` as the init, with a gate that lets it go at once. The
//! channel is close-on-exec: end of file without an error means the program runs.

use std::convert::Infallible;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{Pid, close};
use oci_spec::runtime::{LinuxSeccomp, Process};

use crate::linux::cgroup_join::Join;
use crate::linux::cgroups::Cgroup;
use crate::linux::channel::{self, Channel, Message};
use crate::linux::finish::{self, Finish, Gate};
use crate::linux::hooks::HookState;
use crate::linux::steps::{Failed, run_child, step};
use crate::linux::sys::{self, Cloned};
use crate::linux::{fds, init, seccomp, tty};

/// What an exec'd process needs.
pub struct Tenant<'a> {
    /// The container's init (its namespaces are joined).
    pub init: Pid,
    pub cgroup: &'a Cgroup,
    pub process: &'a Process,
    /// The container's seccomp profile: compiled, and for a notify listener.
    pub seccomp: Option<(&'a LinuxSeccomp, &'a seccomp::Filter)>,
    /// The state a seccomp agent gets with the listener.
    pub state: HookState<'a>,
    pub preserve_fds: u32,
    pub console_socket: Option<&'a UnixStream>,
}

/// The init's namespaces that are not ours, in the order the child enters them.
struct ContainerNamespaces {
    pid: Option<OwnedFd>,
    /// user first (the others are owned by it), mnt last.
    ordered: Vec<(CloneFlags, OwnedFd)>,
}

const KINDS: [(&str, i32); 8] = [
    ("user", libc::CLONE_NEWUSER),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", libc::CLONE_NEWTIME),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
];

impl ContainerNamespaces {
    fn open(init: Pid) -> Result<ContainerNamespaces> {
        let mut out = ContainerNamespaces {
            pid: None,
            ordered: Vec::new(),
        };
        for (name, flag) in KINDS {
            let theirs = format!("/proc/{init}/ns/{name}");
            let ours = format!("/proc/self/ns/{name}");
            let (Ok(t), Ok(o)) = (std::fs::metadata(&theirs), std::fs::metadata(&ours)) else {
                continue; // a namespace type this kernel lacks
            };
            if (t.dev(), t.ino()) == (o.dev(), o.ino()) {
                continue;
            }
            let fd: OwnedFd = File::open(&theirs)
                .with_context(|| format!("open {theirs}"))?
                .into();
            if flag == libc::CLONE_NEWPID {
                out.pid = Some(fd);
            } else {
                out.ordered.push((CloneFlags::from_bits_retain(flag), fd));
            }
        }
        Ok(out)
    }

    fn enter(&self) -> Result<()> {
        for (flag, fd) in &self.ordered {
            setns(fd, *flag).with_context(|| format!("setns {flag:?}"))?;
        }
        Ok(())
    }

    fn raw_fds(&self) -> Vec<RawFd> {
        self.pid
            .iter()
            .chain(self.ordered.iter().map(|(_, fd)| fd))
            .map(|fd| fd.as_raw_fd())
            .collect()
    }
}

/// Start the process; returns its pid once its program runs.
pub fn spawn(t: &Tenant<'_>) -> Result<Pid> {
    let ns = ContainerNamespaces::open(t.init)?;
    let (parent_end, child_end) = channel::pair()?;
    if let Some(pid_ns) = &ns.pid {
        setns(pid_ns, CloneFlags::CLONE_NEWPID).context("enter the container's PID namespace")?;
    }
    let mut close_first = ns.raw_fds();
    close_first.push(parent_end.raw_fd());
    if let Some(sock) = t.console_socket {
        close_first.push(sock.as_raw_fd());
    }
    let join = Join::plan(t.cgroup)?;
    let (cloned, self_join) = match join
        .v2_dir()
        .map(|dir| sys::clone_process_into_cgroup(CloneFlags::empty(), dir))
    {
        Some(Ok(c)) => (c, true),
        None => (sys::clone_process(CloneFlags::empty())?, true),
        Some(Err(_)) => (sys::clone_process(CloneFlags::empty())?, false),
    };
    let pid = match cloned {
        Cloned::Child => child(t, &ns, child_end, self_join.then_some(&join), &close_first),
        Cloned::Parent(pid) => pid,
    };
    drop(child_end);
    let result = (|| {
        if !self_join {
            t.cgroup
                .add_task(pid)
                .context("add the process to the container's cgroup")?;
        }
        parent_end.send(&Message::Continue)?;
        loop {
            match parent_end.recv()? {
                // End of file: the channel closed on execve.
                None => return Ok(()),
                Some((Message::ConsoleMaster, fds)) => {
                    let (Some(sock), Some(master)) = (t.console_socket, fds.first()) else {
                        bail!("the process sent a console without a console socket");
                    };
                    tty::send_to_console_socket(sock, master)?;
                }
                Some((Message::SeccompListener, fds)) => {
                    let (Some((profile, _)), Some(listener)) = (t.seccomp, fds.first()) else {
                        bail!("the process sent a seccomp listener without a profile");
                    };
                    seccomp::hand_listener(profile, &t.state, pid, listener)?;
                }
                Some((Message::Error { step, message }, _)) => bail!("{step}: {message}"),
                Some((other, _)) => bail!("unexpected message from the process: {other:?}"),
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

/// The child; never returns.
fn child(
    t: &Tenant<'_>,
    ns: &ContainerNamespaces,
    channel: Channel,
    join: Option<&Join>,
    close_first: &[RawFd],
) -> ! {
    run_child(&channel, "exec", || {
        steps(t, ns, &channel, join, close_first)
    })
}

fn steps(
    t: &Tenant<'_>,
    ns: &ContainerNamespaces,
    channel: &Channel,
    join: Option<&Join>,
    close_first: &[RawFd],
) -> Result<Infallible, Failed> {
    crate::log::detach();
    step("close parent descriptors", || {
        for fd in close_first {
            if ns.pid.as_ref().is_some_and(|p| p.as_raw_fd() == *fd)
                || ns.ordered.iter().any(|(_, f)| f.as_raw_fd() == *fd)
            {
                continue; // needed below; closed with the rest after joining
            }
            close(*fd).with_context(|| format!("close {fd}"))?;
        }
        Ok(())
    })?;
    step("make non-dumpable", init::make_non_dumpable)?;
    step("join cgroup", || join.map_or(Ok(()), |j| j.join_v1_self()))?;
    step("reset signals", init::reset_signals)?;
    step("wait for the parent", || channel.expect(&Message::Continue))?;
    step("join namespaces", || ns.enter())?;
    let keep = fds::Keep::new(t.preserve_fds, &[channel.raw_fd()]);
    // Before the first path inside the container is looked up (CVE-2024-21626).
    step("close inherited descriptors", || keep.close_others())?;
    if t.process.terminal().unwrap_or(false) {
        step("console", || {
            let size = t
                .process
                .console_size()
                .as_ref()
                .map(|b| (b.height() as u16, b.width() as u16));
            let master = tty::open_console(size)?;
            channel.send_with_fds(&Message::ConsoleMaster, &[master.as_raw_fd()])
        })?;
    }
    finish::finish(
        &Finish {
            process: t.process,
            seccomp: t.seccomp.map(|(_, f)| f),
            preserve_fds: t.preserve_fds,
            keep: &keep,
            channel,
        },
        &Straight,
    )
}

/// An exec'd process waits for nobody: the container is running.
struct Straight;

impl Gate for Straight {
    fn check(&self) -> Result<()> {
        Ok(())
    }
    fn pass(&self) -> Result<()> {
        Ok(())
    }
}
