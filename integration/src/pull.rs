//! Running the project's binaries (`mocker-pull`, `mocker-runtime`) from the tests.
//!
//! Binaries are found next to the test executable's profile directory (`target/<profile>/`,
//! as `cargo build --workspace` leaves them), or in `$MOCKER_BIN_DIR`. A missing binary or a
//! missing privilege is a test failure, never a silent pass.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `$MOCKER_BIN_DIR`, else `target/<profile>/` (the test binary lives in `target/<profile>/deps/`).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MOCKER_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("exe dir");
    if dir.file_name() == Some(OsStr::new("deps")) {
        dir.parent().expect("profile dir").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The path of a project binary; panics (fails the test) if it was not built.
pub fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} not found: run `cargo build --workspace` first (or set MOCKER_BIN_DIR)",
        p.display()
    );
    p
}

/// Fails the test unless it runs as root (the tests chown, mknod and mount).
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this end-to-end test needs root (chown, mknod, mounts); run it as root"
    );
}

/// A finished command, with helpers that print everything when an expectation fails.
#[derive(Debug)]
pub struct Run {
    pub what: String,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn success(&self) -> bool {
        self.output.status.success()
    }
    /// Panics with the command's output unless it exited 0.
    pub fn ok(self) -> Run {
        assert!(
            self.success(),
            "`{}` failed ({}):\nstdout: {}\nstderr: {}",
            self.what,
            self.output.status,
            self.stdout(),
            self.stderr()
        );
        self
    }
    /// Panics unless the command failed with a non-empty error on stderr whose last line
    /// contains every one of `needles` (case-insensitive). Returns that line.
    pub fn fails_with(&self, needles: &[&str]) -> String {
        assert!(
            !self.success(),
            "`{}` should have failed:\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout(),
            self.stderr()
        );
        let err = self.stderr();
        let line = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .to_string();
        let lower = line.to_lowercase();
        for n in needles {
            assert!(
                lower.contains(&n.to_lowercase()),
                "`{}`: error line should mention {n:?}, got: {line:?}\nfull stderr: {err}",
                self.what
            );
        }
        assert!(
            !err.contains("panicked at"),
            "`{}` panicked instead of a clean error: {err}",
            self.what
        );
        line
    }
}

/// Runs `cmd` to completion, stdin closed, capturing its output.
pub fn run(cmd: &mut Command) -> Run {
    let what = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    Run { what, output }
}

/// `mocker-pull --cache-dir CACHE` (other arguments follow).
pub fn mocker_pull(cache: &Path) -> Command {
    let mut c = Command::new(binary("mocker-pull"));
    c.arg("--cache-dir").arg(cache);
    // Terse lines, no bars: the tests read stderr.
    c.env_remove("DOCKER_CONFIG")
        .env("HOME", cache.join("no-home"));
    c
}

/// The runtime the end-to-end tests run bundles with: `$MOCKER_TEST_RUNTIME` or
/// `$MOCKER_RUNTIME` (a path or a name in PATH, e.g. `runc`), else the project's
/// `mocker-runtime`.
pub fn runtime() -> PathBuf {
    ["MOCKER_TEST_RUNTIME", "MOCKER_RUNTIME"]
        .iter()
        .filter_map(std::env::var_os)
        .find(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| binary("mocker-runtime"))
}

/// Mount points under `dir` (from /proc/self/mountinfo): what a bundle left mounted.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m == &dir || m.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

/// Every path under `dir`, relative, sorted (empty if `dir` is missing).
pub fn list_tree(dir: &Path) -> Vec<String> {
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                go(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out.sort();
    out
}
