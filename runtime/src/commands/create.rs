//! `create`: validate the bundle, take the container's directory and lock, create its cgroup,
//! clone the init and wait until it is blocked on the exec fifo. On any error everything is
//! undone: the init killed, host mounts released (rootfs::host_ns), the cgroup removed, the
//! state directory deleted.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::fcntl::{OFlag, open};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{Pid, mkfifo};

use crate::cli::{CreateArgs, Global};
use crate::container::state::{Phase, STATE_VERSION, State};
use crate::container::{self, EXEC_FIFO, Locked};
use crate::linux::cgroups::{self, Cgroup};
use crate::linux::namespaces::Namespaces;
use crate::linux::process::{self, Spawn};
use crate::linux::rootfs;
use crate::linux::sysctl;
use crate::linux::{exe_seal, procfs, sys};
use crate::linux::{hooks, idmap, idmapped, lsm, personality, sched, seccomp, timens};
use crate::log;

pub fn run(g: &Global, a: &CreateArgs) -> Result<()> {
    super::naming(&a.id, create(g, a).map(|_| ()))
}

/// A container that reached `created`; its directory is still locked by this value.
pub struct Created {
    pub locked: Locked,
    pub pid: Pid,
    /// With `bridge_terminal`: our end of the internal console socket (the pty master
    /// arrives there).
    pub console: Option<UnixStream>,
}

pub fn create(g: &Global, a: &CreateArgs) -> Result<Created> {
    create_with(g, a, false)
}

/// `bridge_terminal`: a foreground `run` will make this terminal the container's, so a
/// `process.terminal` without `--console-socket` gets an internal console socket.
pub fn create_with(g: &Global, a: &CreateArgs, bridge_terminal: bool) -> Result<Created> {
    exe_seal::ensure_sealed()?;
    if g.systemd_cgroup {
        cgroups::check_systemd_cgroup()?;
    }
    if g.rootless.as_deref().is_some_and(|v| v == "true") {
        bail!("--rootless=true: rootless containers are not supported yet");
    }
    container::validate_id(&a.id)?;
    let bundle = bundle_tools::validate::load(&a.bundle)?;
    let spec = &bundle.spec;
    let process = spec.process().as_ref().with_context(|| {
        format!(
            "{}: field `process`: is required to create a container",
            bundle.dir.join("config.json").display()
        )
    })?;
    let terminal = process.terminal().unwrap_or(false);
    match (&a.console_socket, terminal) {
        (None, true) if !bridge_terminal => {
            bail!("process.terminal is true: --console-socket is required to receive the pty")
        }
        (Some(_), false) => bail!("--console-socket given but process.terminal is false"),
        _ => {}
    }
    // Everything that can be checked without side effects is checked before the first one.
    let Checked {
        namespaces,
        seccomp,
        id_maps,
        time,
    } = check(spec, Some(&g.root))?;
    if !namespaces.private_mount() {
        // The runtime spec makes an unlisted namespace inherited; runc chroots then too.
        log::warn(
            "linux.namespaces has no mount namespace: the container shares the host's mounts \
             and is chroot'ed (not pivot_root'ed) into root.path",
        );
    }
    let idmapped = idmapped::prepare(spec, &bundle.dir)?;
    let (console, ours) = match &a.console_socket {
        Some(path) => (
            Some(
                UnixStream::connect(path)
                    .with_context(|| format!("--console-socket {}", path.display()))?,
            ),
            None,
        ),
        None if terminal => {
            let (ours, theirs) = super::terminal::console_pair()?;
            (Some(theirs), Some(ours))
        }
        None => (None, None),
    };

    let locked = container::create_dir(&g.root, &a.id)?;
    let mut undo = Undo::new(&locked.dir, &bundle.rootfs);
    let plan = Plan {
        a,
        bundle: &bundle,
        namespaces: &namespaces,
        console: console.as_ref(),
        seccomp: seccomp.as_ref(),
        id_maps: id_maps.as_ref(),
        time: time.as_ref(),
        idmapped: &idmapped,
    };
    let pid = build(&plan, &locked, &mut undo)?;
    undo.disarm();
    Ok(Created {
        locked,
        pid,
        console: ours,
    })
}

/// What the config's checks produce for `create`.
pub struct Checked {
    pub namespaces: Namespaces,
    pub seccomp: Option<seccomp::Filter>,
    pub id_maps: Option<idmap::IdMaps>,
    pub time: Option<timens::NewTimeNs>,
}

/// Every check of a config that needs no side effect (hooks, personality, LSM, scheduler,
/// namespaces, seccomp, id maps, time offsets, sysctls): one line naming the field, or what
/// `create` builds from them. `seccomp_cache`: where compiled programs are kept.
pub fn check(spec: &oci_spec::runtime::Spec, seccomp_cache: Option<&Path>) -> Result<Checked> {
    check_supported(spec)?;
    let namespaces = Namespaces::from_spec(spec)?;
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => Some(seccomp::compile(profile, seccomp_cache)?),
        None => None,
    };
    let id_maps = idmap::plan(spec, namespaces.new_user())?;
    let time = timens::plan(spec, namespaces.new_time())?;
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        sysctl::check(sysctl, &namespaces.entries)?;
    }
    Ok(Checked {
        namespaces,
        seccomp,
        id_maps,
        time,
    })
}

/// What `create` checked and prepared before its first side effect.
struct Plan<'a> {
    a: &'a CreateArgs,
    bundle: &'a bundle_tools::validate::Bundle,
    namespaces: &'a Namespaces,
    console: Option<&'a UnixStream>,
    seccomp: Option<&'a seccomp::Filter>,
    id_maps: Option<&'a idmap::IdMaps>,
    time: Option<&'a timens::NewTimeNs>,
    idmapped: &'a [idmapped::Prepared],
}

/// Creates the container: state, cgroup, init. Each resource is handed to `undo` as it
/// comes into being, so a failure at any step takes down exactly what exists.
fn build(plan: &Plan<'_>, locked: &Locked, undo: &mut Undo) -> Result<Pid> {
    let Plan {
        a,
        bundle,
        namespaces,
        console,
        seccomp,
        id_maps,
        time,
        idmapped,
    } = *plan;
    let spec = &bundle.spec;
    let dir = &locked.dir;
    let fifo = make_exec_fifo(dir)?;

    let linux = spec.linux().as_ref();
    let cgroup_path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| cgroups::default_path(&a.id));
    // Resolved (relative paths are relative to our own cgroup) and recorded *before* anything
    // is created, so `delete --force` finds every resource even if we are killed mid-way.
    let cgroup = Cgroup::open(&cgroup_path)?;
    let cgroup_path = cgroup.path();
    let mut state = State {
        version: STATE_VERSION,
        id: a.id.clone(),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        phase: Phase::Creating,
        pid: 0,
        pid_start_time: 0,
        created: now_rfc3339_nano(),
        cgroup_path: cgroup_path.clone(),
        cgroup_paths: cgroup.per_hierarchy(),
        namespaces: namespaces.entries.clone(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        hooks: spec.hooks().clone(),
        paused: false,
    };
    state.save(dir)?;
    log::debug(format_args!(
        "container {}: bundle {}, cgroup {cgroup_path}",
        a.id,
        bundle.dir.display()
    ));
    cgroup.make(linux.and_then(|l| l.resources().as_ref()))?;
    let cgroup = undo.cgroup.insert(cgroup);
    if !namespaces.private_mount() {
        // The rootfs mounts will be the host's: recorded before they exist (delete removes them).
        rootfs::host_ns::note(dir, &bundle.rootfs)?;
    }

    let pid = process::spawn(
        Spawn {
            id: &a.id,
            seccomp,
            id_maps,
            time,
            idmapped,
            spec,
            rootfs: &bundle.rootfs,
            bundle: &bundle.dir,
            namespaces,
            cgroup,
            exec_fifo: &fifo,
            preserve_fds: a.preserve_fds,
            console_socket: console,
            parent_only_fds: vec![locked.lock_fd()],
        },
        |pid| {
            undo.pid = Some(pid);
            state.pid = pid.as_raw();
            state.pid_start_time = procfs::stat(pid).context("the init vanished")?.start_time;
            state.save(dir)
        },
    )?;
    state.phase = Phase::Created;
    state.save(dir)?;
    if let Some(p) = &a.pid_file {
        super::write_pid_file(p, pid)?;
    }
    log::debug(format_args!("container {} created, init pid {pid}", a.id));
    Ok(pid)
}

/// Refuse what would silently change a container's meaning if ignored, before any side
/// effect.
fn check_supported(spec: &oci_spec::runtime::Spec) -> Result<()> {
    hooks::check(spec.hooks().as_ref())?;
    personality::check(spec.linux().as_ref().and_then(|l| l.personality().as_ref()))?;
    lsm::check(spec)?;
    if let Some(p) = spec.process() {
        sched::check(p)?;
    }
    Ok(())
}

/// `<dir>/exec.fifo`, and an `O_PATH` descriptor the init inherits: after pivot_root it can
/// no longer see the host path and reopens the fifo through /proc/self/fd.
fn make_exec_fifo(dir: &Path) -> Result<OwnedFd> {
    let path = dir.join(EXEC_FIFO);
    mkfifo(&path, Mode::from_bits_truncate(0o622))
        .with_context(|| format!("mkfifo {}", path.display()))?;
    // mkfifo honours the umask; the container user (maybe not root) must be able to write.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o622))?;
    let fd = open(&path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .with_context(|| format!("open {}", path.display()))?;
    Ok(sys::own_fd(fd))
}

/// What a failed create must take down, filled in by `build` as it creates things. Dropped
/// armed (an error, or a panic), it kills the init if `spawn` left one (a later step failed,
/// e.g. the pid file), then removes the rootfs mounts, the cgroup and the state dir.
struct Undo {
    dir: PathBuf,
    rootfs: PathBuf,
    cgroup: Option<Cgroup>,
    pid: Option<Pid>,
    armed: bool,
}

impl Undo {
    fn new(dir: &Path, rootfs: &Path) -> Undo {
        Undo {
            dir: dir.to_path_buf(),
            rootfs: rootfs.to_path_buf(),
            cgroup: None,
            pid: None,
            armed: true,
        }
    }

    /// The container exists: keep everything.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid
            && kill(pid, Signal::SIGKILL).is_ok()
        {
            let _ = waitpid(pid, None);
        }
        if let Err(e) = rootfs::host_ns::release(&self.dir, &self.rootfs) {
            log::warn(format_args!("cleanup: {e:#}"));
        }
        if let Some(cg) = &self.cgroup
            && let Err(e) = cg.destroy()
        {
            log::warn(format_args!("cleanup: {e}"));
        }
        if let Err(e) = container::remove_dir(&self.dir) {
            log::warn(format_args!("cleanup: {e:#}"));
        }
    }
}

/// Go's RFC3339Nano: nanoseconds with trailing zeros trimmed, `Z` for UTC.
pub fn now_rfc3339_nano() -> String {
    let s = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    trim_nanos(&s)
}

fn trim_nanos(s: &str) -> String {
    match s.strip_suffix('Z').and_then(|b| b.split_once('.')) {
        Some((secs, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                format!("{secs}Z")
            } else {
                format!("{secs}.{frac}Z")
            }
        }
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_like_go() {
        assert_eq!(
            trim_nanos("2026-11-23T18:51:20.666992220Z"),
            "2026-11-23T18:51:20.66699222Z"
        );
        assert_eq!(
            trim_nanos("2026-11-23T18:51:20.000000000Z"),
            "2026-11-23T18:51:20Z"
        );
        let now = now_rfc3339_nano();
        assert!(now.ends_with('Z') && now.contains('T'), "{now}");
    }
}
