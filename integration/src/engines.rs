//! Real container engines driving the runtime under test, each with its own roots, config
//! and socket under a temp dir, never touching the host's networking, and stopped and removed
//! when dropped: podman (with conmon), dockerd (with its own managed containerd), and
//! containerd driven through `ctr`.
//!
//! The image is imported from a busybox rootfs tarball (no registry needed): every applet
//! linked, so `grep`, `sleep`... exist.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::busybox::make_rootfs;
use crate::runtime::runtime_binary;

/// The runtime under test as an absolute path (engines resolve it themselves).
pub fn runtime_path() -> PathBuf {
    let bin = runtime_binary();
    let bin = if bin.components().count() == 1 {
        which(&bin)
    } else {
        bin
    };
    fs::canonicalize(&bin).unwrap_or(bin)
}

fn which(name: &Path) -> PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| name.to_path_buf())
}

/// A tarball of a busybox rootfs, for `podman import` / `docker import`.
pub fn busybox_tarball(dir: &Path) -> PathBuf {
    let root = dir.join("image-rootfs");
    make_rootfs(&root).expect("busybox rootfs");
    let tar = dir.join("busybox.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("run tar")
        .success();
    assert!(ok, "tar of the busybox rootfs");
    tar
}

fn require(bin: &str) {
    assert!(
        which(Path::new(bin)).is_file(),
        "{bin} is missing: `just setup` installs it"
    );
}

/// The engine's parent cgroup (`docker`, `libpod_parent`) in every hierarchy where it does
/// not exist yet: removed again (when empty) as the engine goes.
pub struct ParentCgroups(Vec<PathBuf>);

impl ParentCgroups {
    pub fn new(name: &str) -> ParentCgroups {
        let mut fresh = Vec::new();
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                let p = h.path().join(name);
                if h.path().is_dir() && !p.exists() {
                    fresh.push(p);
                }
            }
        }
        let top = Path::new("/sys/fs/cgroup").join(name);
        if !top.exists() && !fresh.contains(&top) {
            fresh.push(top);
        }
        ParentCgroups(fresh)
    }
}

impl Drop for ParentCgroups {
    fn drop(&mut self) {
        // The engine's helpers (conmon, shims) may take a moment to leave them.
        let t0 = Instant::now();
        loop {
            for p in &self.0 {
                remove_empty_cgroups(p);
            }
            if self.0.iter().all(|p| !p.exists()) || t0.elapsed() > Duration::from_secs(5) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// rmdir `dir` and the cgroups below it, deepest first (a cgroup with processes stays).
fn remove_empty_cgroups(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_cgroups(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// podman with its own storage (vfs), run root and containers.conf naming the runtime.
pub struct Podman {
    dir: tempfile::TempDir,
    _cgroups: ParentCgroups,
}

impl Podman {
    pub fn start() -> Podman {
        require("podman");
        let dir = tempfile::Builder::new()
            .prefix("mocker-podman-")
            .tempdir()
            .expect("temp dir");
        // No CAP_SYS_RESOURCE here: podman's default nofile/nproc ulimits could not be set.
        let conf = format!(
            "[containers]\ndefault_ulimits = []\nnetns = \"none\"\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             runtime = \"mocker\"\n[engine.runtimes]\nmocker = [\"{}\"]\n",
            runtime_path().display()
        );
        fs::write(dir.path().join("containers.conf"), conf).expect("containers.conf");
        let p = Podman {
            dir,
            _cgroups: ParentCgroups::new("libpod_parent"),
        };
        let tar = busybox_tarball(p.dir.path());
        let out = p.run(&["import", tar.to_str().unwrap(), "localhost/busybox:test"]);
        assert!(out.status.success(), "podman import: {}", text(&out));
        p
    }

    /// `podman ARGS` with this instance's roots and config.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run podman")
    }

    /// The `podman ARGS` command, to run with other stdio.
    pub fn command(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        cmd
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "--all", "--force"]);
    }
}

/// dockerd with its own data and exec roots, socket, pidfile, config naming the runtime
/// `mocker`, and no networking of its own (`--bridge=none --iptables=false ...`).
pub struct Dockerd {
    dir: tempfile::TempDir,
    daemon: Child,
    _cgroups: ParentCgroups,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        require("dockerd");
        let dir = tempfile::Builder::new()
            .prefix("mocker-docker-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let config = serde_json::json!({
            "runtimes": {"mocker": {"path": runtime_path()}},
            // No CAP_SYS_RESOURCE here: docker's default nofile limit cannot be raised to.
            "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 1024, "Soft": 1024}},
        });
        fs::write(d.join("daemon.json"), config.to_string()).expect("daemon.json");
        let log = fs::File::create(d.join("dockerd.log")).expect("dockerd.log");
        let daemon = Command::new("dockerd")
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--containerd-namespace",
                "mocker-it",
                "--containerd-plugins-namespace",
                "mocker-it-plugins",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let mut me = Dockerd {
            dir,
            daemon,
            _cgroups: ParentCgroups::new("docker"),
        };
        let t0 = Instant::now();
        while !me.docker(&["version"]).status.success() {
            if let Ok(Some(status)) = me.daemon.try_wait() {
                panic!("dockerd exited ({status}): {}", me.log());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "dockerd did not come up: {}",
                me.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let tar = busybox_tarball(me.dir.path());
        let out = me.docker(&["import", tar.to_str().unwrap(), "busybox:test"]);
        assert!(out.status.success(), "docker import: {}", text(&out));
        me
    }

    /// `docker ARGS` against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("docker.sock").display()
            ))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "--force", id]);
        }
        // SIGTERM: dockerd stops its managed containerd and unmounts its roots.
        stop_daemon(&mut self.daemon);
    }
}

/// containerd with its own root, state, sockets and config (the CRI plugin off: no pod
/// networking), driven through `ctr` in the namespace `mocker-it`, the runtime given to the
/// runc shim with `--runc-binary`.
pub struct Containerd {
    dir: tempfile::TempDir,
    daemon: Child,
    _cgroups: ParentCgroups,
}

impl Containerd {
    pub fn start() -> Containerd {
        require("containerd");
        require("ctr");
        let dir = tempfile::Builder::new()
            .prefix("mocker-containerd-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{0}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{0}/containerd.sock.ttrpc\"\n",
            d.display()
        );
        fs::write(d.join("config.toml"), config).expect("config.toml");
        let log = fs::File::create(d.join("containerd.log")).expect("containerd.log");
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let mut me = Containerd {
            dir,
            daemon,
            _cgroups: ParentCgroups::new("mocker-it"),
        };
        let t0 = Instant::now();
        while !me.ctr(&["version"]).status.success() {
            if let Ok(Some(status)) = me.daemon.try_wait() {
                panic!("containerd exited ({status}): {}", me.log());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "containerd did not come up: {}",
                me.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        me
    }

    /// `ctr ARGS` against this daemon, in the namespace `mocker-it`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(["--namespace", "mocker-it"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }

    /// A busybox rootfs for `ctr run --rootfs` (no image needed).
    pub fn rootfs(&self) -> PathBuf {
        let root = self.dir.path().join("rootfs");
        if !root.exists() {
            make_rootfs(&root).expect("busybox rootfs");
        }
        root
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        stop_daemon(&mut self.daemon);
    }
}

/// Stops a daemon a test started: SIGTERM, so it takes down its children and mounts, then
/// SIGKILL if it is still there after 30 s.
pub fn stop_daemon(daemon: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(_)) = daemon.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// stdout and stderr of an engine command, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
