//! Drives a runc-compatible runtime binary (mocker-runtime, or runc/crun via `$MOCKER_RUNTIME`).
//!
//! Every [`Container`] gets its own temporary `--root` and a unique id, so tests run in
//! parallel. Command output goes to files, not pipes: a created or detached container inherits
//! the runtime's stdout/stderr, and a pipe would then never reach EOF. On drop the container is
//! force-deleted and every trace (process, mount, cgroup, state dir) swept.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::busybox::Bundle;
use crate::leftovers::Traces;

/// The runtime under test: `$MOCKER_RUNTIME` (a path, or a name looked up in PATH), else
/// `mocker-runtime` next to the test executable's directory (target/<profile>/).
pub fn runtime_binary() -> PathBuf {
    if let Some(v) = std::env::var_os("MOCKER_RUNTIME").filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/test-xxx -> target/<profile>/mocker-runtime
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps");
    profile_dir.join("mocker-runtime")
}

/// The runtime's file name (`runc`, `crun`, `mocker-runtime`): some assertions differ by runtime.
pub fn runtime_name() -> String {
    runtime_binary()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn is_runc() -> bool {
    runtime_name() == "runc"
}

/// Seconds a single runtime command may take (scaled by `$MOCKER_TEST_TIMEOUT`, the VM is slow).
pub fn default_timeout() -> Duration {
    let secs = std::env::var("MOCKER_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// The result of one runtime invocation.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub cmdline: String,
    /// Killed after the timeout.
    pub timed_out: bool,
}

impl Out {
    /// The exit code, or 128+signal when killed by a signal.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.status
            .code()
            .unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }
    pub fn success(&self) -> bool {
        self.status.success()
    }
    /// Panics unless the command succeeded; returns self for chaining.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert!(self.success(), "{self}");
        self
    }
    /// Panics unless the command failed; returns self.
    #[track_caller]
    pub fn failed(self) -> Out {
        assert!(!self.success(), "expected failure: {self}");
        self
    }
    /// Non-empty stderr lines, without runc's `level=warning` lines (runc prints warnings
    /// next to its one error line; the error is what the one-line rule is about).
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr_lines()
            .into_iter()
            .filter(|l| !(is_runc() && l.contains("level=warning")))
            .collect()
    }
    /// Non-empty stderr lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` -> {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.cmdline, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr into files under `io_dir`,
/// killing it after `timeout` (then `timed_out` is set). The files outlive the call so that a container that
/// inherited them keeps writing there.
pub fn run_captured(
    mut cmd: Command,
    io_dir: &Path,
    timeout: Duration,
) -> std::io::Result<(Out, PathBuf, PathBuf)> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let out_path = io_dir.join(format!("{n}.out"));
    let err_path = io_dir.join(format!("{n}.err"));
    let cmdline = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?);
    let mut child = cmd.spawn()?;
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let status = child.wait()?;
            let out = Out {
                status,
                stdout: fs::read_to_string(&out_path).unwrap_or_default(),
                stderr: fs::read_to_string(&err_path).unwrap_or_default(),
                cmdline: format!("{cmdline} (TIMED OUT after {timeout:?})"),
                timed_out: true,
            };
            return Ok((out, out_path, err_path));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = Out {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        cmdline,
        timed_out: false,
    };
    Ok((out, out_path, err_path))
}

/// Containers need root (namespaces, mounts, cgroups): fail with a clear message otherwise.
#[track_caller]
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runtime tests need root (namespaces, mounts and cgroups)"
    );
}

/// Unique container ids across threads and test processes.
pub fn unique_id(name: &str) -> String {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    format!(
        "it-{}-{}-{}",
        name,
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// One container under test: its id, its private `--root`, its bundle.
pub struct Container {
    pub id: String,
    pub bin: PathBuf,
    work: tempfile::TempDir,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// cgroupsPath from the config, if any.
    pub cgroups_path: Option<String>,
    /// stdout/stderr files that the container inherited from `create`/`run -d`.
    container_io: Option<(PathBuf, PathBuf)>,
    pub timeout: Duration,
}

impl Container {
    /// A fresh id and `--root` for a container of `bundle`.
    pub fn new(name: &str, bundle: &Bundle) -> Container {
        require_root();
        let bin = runtime_binary();
        assert!(
            bin.components().count() == 1 || bin.is_file(),
            "runtime {} not found: `cargo build -p mocker-runtime` (same target dir and profile), \
             or set MOCKER_RUNTIME (e.g. runc)",
            bin.display()
        );
        let work = tempfile::Builder::new()
            .prefix("mocker-it-")
            .tempdir()
            .expect("temp dir");
        fs::create_dir(work.path().join("root")).expect("root dir");
        fs::create_dir(work.path().join("io")).expect("io dir");
        let cgroups_path = bundle.spec()["linux"]["cgroupsPath"]
            .as_str()
            .map(str::to_string);
        Container {
            id: unique_id(name),
            bin,
            work,
            bundle: bundle.path().to_path_buf(),
            rootfs: bundle.rootfs(),
            cgroups_path,
            container_io: None,
            timeout: default_timeout(),
        }
    }

    /// The `--root` directory given to the runtime.
    pub fn root(&self) -> PathBuf {
        self.work.path().join("root")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.root().join(&self.id)
    }
    /// A scratch dir that lives as long as the container (pid files, logs...).
    pub fn scratch(&self) -> PathBuf {
        self.work.path().to_path_buf()
    }

    /// The runtime with the global flags set, ready for a subcommand.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root());
        c
    }

    /// Runs the runtime with `args` after the global flags.
    pub fn exec<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Out {
        let mut c = self.command();
        c.args(args);
        self.exec_cmd(c)
    }

    /// Runs a prepared command (see [`Container::command`]) with capture and timeout.
    pub fn exec_cmd(&self, c: Command) -> Out {
        let out = run_captured(c, &self.work.path().join("io"), self.timeout)
            .expect("spawn runtime")
            .0;
        assert!(!out.timed_out, "{out}");
        out
    }

    /// `create --bundle B ID` plus `extra` flags; the container's stdout/stderr are recorded
    /// for [`Container::logs`].
    pub fn create_with(&mut self, extra: &[&str]) -> Out {
        self.create_customized(extra, |_| {})
    }
    /// `create` with a hook on the command, e.g. to hand the runtime extra fds.
    pub fn create_customized(&mut self, extra: &[&str], f: impl FnOnce(&mut Command)) -> Out {
        self.lifecycle_cmd("create", extra, f)
    }
    /// `run` with a hook on the command.
    pub fn run_customized(&mut self, extra: &[&str], f: impl FnOnce(&mut Command)) -> Out {
        self.lifecycle_cmd("run", extra, f)
    }
    fn lifecycle_cmd(&mut self, sub: &str, extra: &[&str], f: impl FnOnce(&mut Command)) -> Out {
        let mut c = self.command();
        c.arg(sub).arg("--bundle").arg(&self.bundle);
        c.args(extra).arg(&self.id);
        f(&mut c);
        let (out, o, e) =
            run_captured(c, &self.work.path().join("io"), self.timeout).expect("spawn runtime");
        self.container_io = Some((o, e));
        assert!(!out.timed_out, "{out}");
        out
    }
    pub fn create(&mut self) -> Out {
        self.create_with(&[])
    }
    pub fn start(&self) -> Out {
        self.exec(&["start", &self.id])
    }
    pub fn kill(&self, signal: &str) -> Out {
        self.exec(&["kill", &self.id, signal])
    }
    pub fn kill_all(&self, signal: &str) -> Out {
        self.exec(&["kill", "--all", &self.id, signal])
    }
    pub fn delete(&self) -> Out {
        self.exec(&["delete", &self.id])
    }
    pub fn delete_force(&self) -> Out {
        self.exec(&["delete", "--force", &self.id])
    }
    /// `run --bundle B [extra] ID`: the container's output is in the returned stdout/stderr.
    pub fn run_with(&mut self, extra: &[&str]) -> Out {
        self.run_customized(extra, |_| {})
    }
    pub fn run(&mut self) -> Out {
        self.run_with(&[])
    }

    /// Starts `run --bundle B [extra] ID` in the background (to signal the container while
    /// `run` waits on it); finish with [`Running::wait`].
    pub fn spawn_run(&mut self, extra: &[&str]) -> Running {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let io = self.work.path().join("io");
        let (o, e) = (io.join(format!("bg{n}.out")), io.join(format!("bg{n}.err")));
        let mut c = self.command();
        c.arg("run").arg("--bundle").arg(&self.bundle);
        c.args(extra).arg(&self.id);
        let cmdline = format!("{c:?}");
        c.stdin(Stdio::null())
            .stdout(File::create(&o).expect("out file"))
            .stderr(File::create(&e).expect("err file"));
        let child = c.spawn().expect("spawn runtime");
        self.container_io = Some((o.clone(), e.clone()));
        Running {
            child,
            out: o,
            err: e,
            cmdline,
            timeout: self.timeout,
        }
    }

    /// Waits until the container's stdout contains `needle`.
    #[track_caller]
    pub fn wait_output(&self, needle: &str) {
        let start = Instant::now();
        while !self.stdout().contains(needle) {
            assert!(
                start.elapsed() < self.timeout,
                "container {} never printed {needle:?}; stdout: {:?}",
                self.id,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `state ID`, raw.
    pub fn state_out(&self) -> Out {
        self.exec(&["state", &self.id])
    }
    /// `state ID` parsed; panics if it fails or is not JSON.
    #[track_caller]
    pub fn state(&self) -> Value {
        let out = self.state_out().ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {out}"))
    }
    pub fn status(&self) -> String {
        self.state()["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    pub fn pid(&self) -> i32 {
        self.state()["pid"].as_i64().unwrap_or(0) as i32
    }

    /// Polls `state` until the status is `stopped`.
    #[track_caller]
    pub fn wait_stopped(&self) {
        self.wait_status("stopped")
    }
    #[track_caller]
    pub fn wait_status(&self, want: &str) {
        let start = Instant::now();
        loop {
            let st = self.status();
            if st == want {
                return;
            }
            assert!(
                start.elapsed() < self.timeout,
                "container {} still {st}, wanted {want}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the container wrote so far to the stdout/stderr it inherited at create/run.
    pub fn logs(&self) -> (String, String) {
        match &self.container_io {
            Some((o, e)) => (
                fs::read_to_string(o).unwrap_or_default(),
                fs::read_to_string(e).unwrap_or_default(),
            ),
            None => Default::default(),
        }
    }
    pub fn stdout(&self) -> String {
        self.logs().0
    }

    /// Where this container may leave traces.
    pub fn traces(&self) -> Traces {
        // mocker's default, runc's default (absolute on v2, relative to our cgroup on v1)
        let mut cgroup_paths = vec![
            format!("/mocker/{}", self.id),
            format!("/{}", self.id),
            self.id.clone(),
        ];
        if let Some(p) = &self.cgroups_path {
            cgroup_paths.push(p.clone());
        }
        Traces {
            id: self.id.clone(),
            state_dir: self.state_dir(),
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            cgroup_paths,
        }
    }

    /// Panics if anything of the container remains on the host.
    #[track_caller]
    pub fn assert_no_leftovers(&self) {
        self.traces().assert_clean()
    }
}

/// A runtime process running in the background.
pub struct Running {
    child: std::process::Child,
    out: PathBuf,
    err: PathBuf,
    cmdline: String,
    timeout: Duration,
}

impl Running {
    /// Waits for the runtime to exit (killing it after the timeout, then panicking).
    #[track_caller]
    pub fn wait(mut self) -> Out {
        let start = Instant::now();
        let (status, timed_out) = loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                break (st, false);
            }
            if start.elapsed() > self.timeout {
                let _ = self.child.kill();
                break (self.child.wait().expect("wait"), true);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = Out {
            status,
            stdout: fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: fs::read_to_string(&self.err).unwrap_or_default(),
            cmdline: self.cmdline.clone(),
            timed_out,
        };
        assert!(!timed_out, "timed out: {out}");
        out
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.state_dir().exists() {
            let mut c = self.command();
            c.args(["delete", "--force", &self.id]);
            let _ = run_captured(c, &self.work.path().join("io"), Duration::from_secs(30));
        }
        self.traces().sweep();
    }
}

/// A host file the runtime inherits at `fd` without CLOEXEC. dup2 clears the flag on the
/// new descriptor, except when `src == fd` (then it does nothing), so clear it explicitly.
pub fn inherit_fd(c: &mut Command, file: &fs::File, fd: i32) {
    let src = file.as_raw_fd();
    // SAFETY: dup2 and fcntl are async-signal-safe; runs in the forked child before exec.
    unsafe {
        c.pre_exec(move || {
            if src != fd && libc::dup2(src, fd) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The caller holds a host directory open, without CLOEXEC, at every descriptor in `fds` (and
/// at 200, where the duplicate is made from).
pub fn hold_host_dir(c: &mut Command, dir: &Path, fds: std::ops::RangeInclusive<i32>) {
    let file = fs::File::open(dir).expect("open host dir");
    let src = file.as_raw_fd();
    // SAFETY: fcntl, dup2 and close are async-signal-safe; this runs between fork and exec,
    // and `file` lives until the command is spawned.
    unsafe {
        c.pre_exec(move || {
            let high = libc::fcntl(src, libc::F_DUPFD, 200);
            if high < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for fd in fds.clone() {
                if libc::dup2(high, fd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    std::mem::forget(file);
}
