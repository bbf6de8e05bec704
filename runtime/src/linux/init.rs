//! The container init: a flat list of named steps from clone to execve.
//!
//! Runs in the child created by `linux::process::spawn`, inside the new namespaces. Each step
//! is a function named after what it does; the first failure is sent to the parent as
//! `Message::Error { step, message }` and the child exits.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::fcntl::{OFlag, open};
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::sys::stat::{Mode, fstat, umask};
use nix::unistd::{close, execve, sethostname};
use oci_spec::runtime::{Process, Spec};

use crate::linux::cgroup_join::Join;
use crate::linux::channel::{Channel, Message};
use crate::linux::hooks::{self, Phase};
use crate::linux::namespaces::Namespaces;
use crate::linux::{
    capabilities, exec, fds, lsm, personality, rlimits, rootfs, sched, seccomp, sys, sysctl, tty,
    user,
};

/// What the child gets from the parent (by memory: the child is a copy of the parent).
pub struct InitArgs<'a> {
    pub id: &'a str,
    /// The compiled `linux.seccomp` profile.
    pub seccomp: Option<&'a seccomp::Filter>,
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

struct Failed {
    step: &'static str,
    error: anyhow::Error,
}

fn step<T>(name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T, Failed> {
    f().map_err(|error| Failed { step: name, error })
}

/// Entry point of the child; never returns.
pub fn run(args: InitArgs<'_>) -> ! {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init(&args)));
    let (step, message) = match outcome {
        Ok(Ok(never)) => match never {},
        Ok(Err(Failed { step, error })) => (step, format!("{error:#}")),
        Err(_) => ("init", "panicked".to_string()),
    };
    let sent = args.channel.send(&Message::Error {
        step: step.to_string(),
        message: message.clone(),
    });
    if sent.is_err() {
        // Nobody listens any more (after Ready): leave a trace on the container's stderr.
        let _ = writeln!(std::io::stderr(), "mocker-runtime init: {step}: {message}");
    }
    sys::exit_now(1)
}

fn init(a: &InitArgs<'_>) -> Result<Infallible, Failed> {
    let spec = a.spec;
    let process = spec
        .process()
        .as_ref()
        .expect("create checks that process is set");

    crate::log::detach();
    step("close parent descriptors", || {
        close_parent_fds(&a.close_first)
    })?;
    let keep = fds::Keep::new(a.preserve_fds, &[a.channel.raw_fd(), a.exec_fifo]);
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
    if a.namespaces.new_user() {
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
        rootfs::prepare(spec, a.rootfs, a.bundle, a.namespaces)
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
    step("rlimits", || {
        rlimits::apply(process.rlimits().as_deref().unwrap_or(&[]))
    })?;
    // Whatever setup opened is gone before the cwd and the program are resolved.
    step("close setup descriptors", || keep.close_others())?;
    step("change directory", || change_dir(process.cwd()))?;
    let env = step("environment", || environment(process))?;
    let program = step("find executable", || {
        let args = process.args().as_deref().unwrap_or(&[]);
        exec::lookup(&args[0], &env, exec::is_executable)
    })?;
    step("exec fifo", || check_fifo_reachable(a.exec_fifo))?;
    step("scheduler and I/O priority", || sched::apply(process))?;
    step("LSM labels", || lsm::apply_exec_labels(spec))?;
    // Before a seccomp filter can be in place: profiles need not allow close_range.
    step("close descriptors", || {
        fds::cloexec_beyond_preserved(a.preserve_fds)
    })?;
    // Without no_new_privs only a process with CAP_SYS_ADMIN may load a filter, and a
    // notifying one must reach `create` before ready: then it goes in here (as runc does),
    // otherwise right before execve.
    let seccomp_late = a
        .seccomp
        .filter(|f| !f.notifies && process.no_new_privileges().unwrap_or(false));
    if let Some(filter) = a.seccomp.filter(|_| seccomp_late.is_none()) {
        step("seccomp", || load_seccomp(a, filter))?;
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
    step("report ready", || a.channel.send(&Message::Ready))?;
    step("start", || {
        // `start` opened the fifo: startContainer hooks run now, and their outcome is what
        // `start` reads back.
        let fifo = open_exec_fifo(a.exec_fifo)?;
        let ran = hooks::run(Phase::StartContainer, hooks, &hook_state(a));
        report_start(fifo, ran)
    })?;
    if let Some(filter) = seccomp_late {
        step("seccomp", || load_seccomp(a, filter))?;
    }
    let path = CString::new(program.as_os_str().as_bytes()).expect("paths from lookup have no NUL");
    let err = execve(&path, &argv, &envp).unwrap_err();
    Err(Failed {
        step: "execve",
        error: anyhow::anyhow!("{}: {err}", program.display()),
    })
}

/// Install the filter; a notifying one's listener goes to the parent (and on to listenerPath).
fn load_seccomp(a: &InitArgs<'_>, filter: &seccomp::Filter) -> Result<()> {
    if let Some(listener) = seccomp::load(filter)? {
        a.channel
            .send_with_fds(&Message::SeccompListener, &[listener.as_raw_fd()])?;
    }
    Ok(())
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
fn make_non_dumpable() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).context("prctl PR_SET_DUMPABLE 0")
}

/// Default dispositions and an empty mask: `run` blocks signals it forwards, Rust ignores
/// SIGPIPE, and both would otherwise survive execve.
fn reset_signals() -> Result<()> {
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

fn fifo_path(fd: RawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

/// The fifo is reopened through /proc after pivot_root; fail in `create` if that cannot work,
/// or if the container's /proc would hand back something else than our fifo.
fn check_fifo_reachable(fd: RawFd) -> Result<()> {
    let reopened = open(
        &fifo_path(fd),
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(sys::own_fd)
    .map_err(|_| {
        anyhow::anyhow!(
            "the exec fifo is reopened via /proc/self/fd: the container needs a proc mount at /proc"
        )
    })?;
    same_file(fd, reopened.as_raw_fd())
}

fn same_file(want: RawFd, got: RawFd) -> Result<()> {
    let (a, b) = (fstat(want)?, fstat(got)?);
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
        bail!(
            "/proc/self/fd/{want} in the container is not the exec fifo: /proc is not the container's procfs"
        );
    }
    Ok(())
}

fn set_no_new_privs(process: &Process) -> Result<()> {
    if process.no_new_privileges().unwrap_or(false) {
        nix::sys::prctl::set_no_new_privs().context("prctl PR_SET_NO_NEW_PRIVS")?;
    }
    Ok(())
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

/// Block until `start` opens the fifo for reading (runc's protocol). The reopen goes through
/// the container's /proc: it must yield our fifo and nothing else the rootfs could have put
/// at that path.
fn open_exec_fifo(fd: RawFd) -> Result<std::fs::File> {
    let w = open(
        &fifo_path(fd),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("open exec fifo")?;
    let w = sys::own_fd(w);
    same_file(fd, w.as_raw_fd())?;
    Ok(std::fs::File::from(w))
}

/// Tell `start` we are going ("0"), or why not (the text of `outcome`'s error).
fn report_start(mut fifo: std::fs::File, outcome: Result<()>) -> Result<()> {
    let mut message = match &outcome {
        Ok(()) => "0".to_string(),
        Err(e) => format!("{e:#}"),
    };
    // One write below PIPE_BUF arrives whole.
    let mut end = message.len().min(3072);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    fifo.write_all(message.as_bytes())
        .context("write exec fifo")?;
    outcome
}
