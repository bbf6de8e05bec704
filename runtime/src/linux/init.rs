//! The container init: a flat list of named steps that set the container up (namespaces,
//! hostname, rootfs, hooks, pivot_root, sysctl, masks), then `linux::finish` for the steps
//! every container process shares, up to execve.
//!
//! Runs in the child created by `linux::process::spawn`, inside the new namespaces. Each step
//! is a function named after what it does; the first failure is sent to the parent as
//! `Message::Error { step, message }` and the child exits.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::sys::stat::{Mode, umask};
use nix::unistd::{close, sethostname};
use oci_spec::runtime::{Process, Spec};

use crate::linux::cgroup_join::Join;
use crate::linux::channel::{Channel, Message};
use crate::linux::finish::{self, Finish, Gate};
use crate::linux::hooks::{self, Phase};
use crate::linux::idmapped::Prepared;
use crate::linux::namespaces::Namespaces;
use crate::linux::steps::{self, Failed, step};
use crate::linux::{exec_fifo, fds, personality, rootfs, seccomp, sys, sysctl, tty, user};

/// What the child gets from the parent (by memory: the child is a copy of the parent).
pub struct InitArgs<'a> {
    pub id: &'a str,
    /// The compiled `linux.seccomp` profile.
    pub seccomp: Option<&'a seccomp::Filter>,
    /// ID-mapped mounts `create` prepared, attached while the rootfs is set up.
    pub idmapped: &'a [Prepared],
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub namespaces: &'a Namespaces,
    pub channel: Channel,
    /// `O_PATH` descriptor of the exec fifo, reopened for writing through /proc at the end.
    pub exec_fifo: RawFd,
    pub preserve_fds: u32,
    /// Allocate a pty and send its master to the parent.
    pub console: bool,
    /// Cgroups the child joins itself (None: the parent migrated it).
    pub cgroup_join: Option<&'a Join>,
    /// Parent-only descriptors to close first.
    pub close_first: Vec<RawFd>,
}

/// Entry point of the child; never returns.
pub fn run(args: InitArgs<'_>) -> ! {
    steps::run_child(&args.channel, "init", || init(&args))
}

fn init(a: &InitArgs<'_>) -> Result<Infallible, Failed> {
    let process = a
        .spec
        .process()
        .as_ref()
        .expect("create checks that process is set");
    crate::log::detach();
    let own = [a.channel.raw_fd(), a.exec_fifo];
    let keep = fds::Keep::new(a.preserve_fds, &own);
    // While the rootfs is set up the prepared mounts are kept too.
    let mut setup_fds = own.to_vec();
    setup_fds.extend(a.idmapped.iter().map(|p| p.mount.as_raw_fd()));
    setup_container(a, process, &fds::Keep::new(a.preserve_fds, &setup_fds))?;
    finish::finish(
        &Finish {
            process,
            seccomp: a.seccomp,
            preserve_fds: a.preserve_fds,
            keep: &keep,
            channel: &a.channel,
        },
        &StartGate { a },
    )
}

/// The first half, the init's alone: from clone to a container whose root is its rootfs.
fn setup_container(a: &InitArgs<'_>, process: &Process, keep: &fds::Keep) -> Result<(), Failed> {
    let spec = a.spec;
    step("close parent descriptors", || {
        close_parent_fds(&a.close_first)
    })?;
    step("make non-dumpable", make_non_dumpable)?;
    step("join cgroup", || {
        a.cgroup_join.map_or(Ok(()), |j| j.join_v1_self())
    })?;
    step("reset signals", reset_signals)?;
    step("oom score", || {
        sysctl::set_oom_score_adj(process.oom_score_adj())
    })?;
    step("wait for the parent", || {
        a.channel.expect(&Message::Continue)
    })?;
    if a.namespaces.in_user_namespace() {
        step("user namespace", user::become_namespace_root)?;
    }
    let rootfs_here = if a.namespaces.joins_mount() {
        Some(step("find rootfs", || rootfs::Identity::of(a.rootfs))?)
    } else {
        None
    };
    step("join namespaces", || a.namespaces.join_paths())?;
    if let Some(id) = rootfs_here {
        step("find rootfs in the joined mount namespace", || {
            id.check_joined(a.rootfs)
        })?;
    }
    step("create cgroup namespace", || a.namespaces.unshare_cgroup())?;
    // Before the first path inside the rootfs is looked up (CVE-2024-21626).
    step("close inherited descriptors", || keep.close_others())?;
    step("set hostname", || set_hostname(spec, a.namespaces))?;
    step("mount rootfs", || {
        umask(Mode::empty()); // device and directory modes exactly as configured
        rootfs::prepare(spec, a.rootfs, a.bundle, a.namespaces, a.idmapped)
    })?;
    let hooks = spec.hooks().as_ref();
    if hooks::any(hooks, Phase::Prestart) || hooks::any(hooks, Phase::CreateRuntime) {
        step("createRuntime hooks", || {
            a.channel.send(&Message::RunHooks)?;
            a.channel.expect(&Message::Continue)
        })?;
    }
    step("createContainer hooks", || {
        hooks::run(Phase::CreateContainer, hooks, &hook_state(a))
    })?;
    if a.namespaces.private_mount() {
        step("pivot_root", || rootfs::pivot(a.rootfs))?;
    } else {
        step("chroot", || rootfs::chroot(a.rootfs))?;
    }
    if a.console {
        step("console", || open_console(a, process))?;
    }
    step("sysctl", || {
        let none = Default::default();
        let linux = spec.linux().as_ref();
        sysctl::apply(linux.and_then(|l| l.sysctl().as_ref()).unwrap_or(&none))
    })?;
    step("masked and read-only paths", || rootfs::finalize(spec))?;
    if a.namespaces.private_mount() {
        step("root propagation", || rootfs::apply_root_propagation(spec))?;
    }
    step("personality", || {
        personality::apply(spec.linux().as_ref().and_then(|l| l.personality().as_ref()))
    })?;
    Ok(())
}

/// The init's gate: ready once set up, then blocked until `start` opens the exec fifo; the
/// startContainer hooks run then, and their outcome is what `start` reads back.
struct StartGate<'a, 'b> {
    a: &'a InitArgs<'b>,
}

impl Gate for StartGate<'_, '_> {
    fn check(&self) -> Result<()> {
        exec_fifo::check_reachable(self.a.exec_fifo)
    }

    fn pass(&self) -> Result<()> {
        self.a.channel.send(&Message::Ready)?;
        let fifo = exec_fifo::open_for_start(self.a.exec_fifo)?;
        let ran = hooks::run(
            Phase::StartContainer,
            self.a.spec.hooks().as_ref(),
            &hook_state(self.a),
        );
        exec_fifo::report(fifo, ran)
    }
}

fn close_parent_fds(fds: &[RawFd]) -> Result<()> {
    for fd in fds {
        close(*fd).with_context(|| format!("close {fd}"))?;
    }
    Ok(())
}

/// CVE-2019-5736. Until execve this process *is* the runtime binary (a clone, never a
/// re-exec), so /proc/<init>/exe names the host's mocker-runtime file. Non-dumpable means
/// processes in the container (a later `exec` joins them) cannot open /proc/<init>/exe, its
/// fds or memory: those accesses need ptrace rights, which non-dumpable denies to
/// everyone without CAP_SYS_PTRACE in the init user namespace. execve resets it for the
/// container program. This does not cover the init *itself* exec'ing `/proc/self/exe`
/// (e.g. a `#!/proc/self/exe` entrypoint): for that `main` re-executes create/run from a
/// sealed memfd copy unless the binary already sits on a read-only mount (`linux::exe_seal`).
pub fn make_non_dumpable() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).context("prctl PR_SET_DUMPABLE 0")
}

/// Default dispositions and an empty mask: `run` blocks signals it forwards, Rust ignores
/// SIGPIPE, and both would otherwise survive execve.
pub fn reset_signals() -> Result<()> {
    sys::reset_signal_dispositions();
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).context("sigprocmask")
}

fn set_hostname(spec: &Spec, ns: &Namespaces) -> Result<()> {
    let Some(name) = spec.hostname().as_deref() else {
        return Ok(());
    };
    if !ns.own_uts() {
        bail!("hostname: setting a hostname needs a uts namespace in linux.namespaces");
    }
    sethostname(name).with_context(|| format!("sethostname {name:?}"))?;
    if let Some(domain) = spec.domainname().as_deref() {
        std::fs::write("/proc/sys/kernel/domainname", domain)
            .with_context(|| format!("set domainname {domain:?}"))?;
    }
    Ok(())
}

fn open_console(a: &InitArgs<'_>, process: &Process) -> Result<()> {
    let size = process
        .console_size()
        .as_ref()
        .map(|b| (b.height() as u16, b.width() as u16));
    let master = tty::open_console(size)?;
    a.channel.send_with_fds(
        &Message::ConsoleMaster,
        &[std::os::fd::AsRawFd::as_raw_fd(&master)],
    )
}

/// The state a hook run by the init reads: its pid as seen in the container, like runc.
fn hook_state<'a>(a: &'a InitArgs<'_>) -> hooks::HookState<'a> {
    static NONE: std::sync::OnceLock<std::collections::HashMap<String, String>> =
        std::sync::OnceLock::new();
    let annotations = a.spec.annotations().as_ref();
    hooks::state_for(
        a.id,
        nix::unistd::getpid().as_raw(),
        a.bundle,
        annotations.unwrap_or_else(|| NONE.get_or_init(Default::default)),
    )
}
