//! Busybox root filesystems and OCI bundles for end-to-end tests.
//!
//! The rootfs is built from Debian's `busybox-static` (`/bin/busybox`, or `$MOCKER_BUSYBOX`):
//! `bin/busybox` plus one symlink per applet, `etc/passwd` and `etc/group` (root, nobody, a
//! spare `users` group), and empty `proc sys dev tmp root` directories. The bundle's
//! `config.json` starts from `runc spec`'s defaults (without a terminal, root writable) and is
//! rewritten by every setter, so the bundle on disk always matches the builder.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

/// Where the static busybox comes from.
pub fn busybox_binary() -> PathBuf {
    std::env::var_os("MOCKER_BUSYBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin/busybox"))
}

/// Applets linked even when `busybox --list` cannot be run.
const CORE_APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "ps", "hostname", "sleep", "mount", "id", "true", "false", "kill",
    "grep", "wc", "head", "cut", "readlink", "stat", "touch", "mkdir", "rm", "tr", "dd", "env",
    "pwd", "test", "[", "umask", "printf", "seq", "tail", "sort", "uname", "whoami", "ln",
];

/// Users of the test rootfs; `users` (100) is there for additionalGids tests.
pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub const GROUP: &str = "root:x:0:\nusers:x:100:\nnobody:x:65534:\n";

/// Fills `root` (created if missing) with a busybox userland.
pub fn make_rootfs(root: &Path) -> io::Result<()> {
    let bin = root.join("bin");
    fs::create_dir_all(&bin)?;
    fs::set_permissions(root, fs::Permissions::from_mode(0o755))?;
    let busybox = busybox_binary();
    fs::copy(&busybox, bin.join("busybox")).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("copy {} (install busybox-static): {e}", busybox.display()),
        )
    })?;
    fs::set_permissions(bin.join("busybox"), fs::Permissions::from_mode(0o755))?;
    let mut applets: Vec<String> = CORE_APPLETS.iter().map(|s| s.to_string()).collect();
    if let Ok(out) = Command::new(&busybox).arg("--list").output() {
        applets.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim().to_string()),
        );
    }
    applets.sort();
    applets.dedup();
    for applet in applets
        .iter()
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
    {
        let link = bin.join(applet);
        if fs::symlink_metadata(&link).is_err() {
            symlink("busybox", &link)?;
        }
    }
    // Some programs look in /usr/bin or /sbin; point them at /bin.
    fs::create_dir_all(root.join("usr"))?;
    for alias in ["sbin", "usr/bin", "usr/sbin"] {
        let link = root.join(alias);
        if fs::symlink_metadata(&link).is_err() {
            symlink(if alias == "sbin" { "bin" } else { "../bin" }, &link)?;
        }
    }
    let etc = root.join("etc");
    fs::create_dir_all(&etc)?;
    fs::write(etc.join("passwd"), PASSWD)?;
    fs::write(etc.join("group"), GROUP)?;
    fs::write(etc.join("mocker-rootfs"), "busybox test rootfs\n")?;
    for (dir, mode) in [
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
    ] {
        let p = root.join(dir);
        fs::create_dir_all(&p)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// The top-level entries [`make_rootfs`] creates, sorted like `ls /` prints them.
pub fn rootfs_entries() -> Vec<&'static str> {
    vec![
        "bin", "dev", "etc", "proc", "root", "sbin", "sys", "tmp", "usr",
    ]
}

/// `runc spec`'s default config, adapted for tests: no terminal, writable root, `sh` as args.
pub fn default_spec() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "mocker",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// An OCI bundle in a temporary directory (removed on drop): `rootfs/` + `config.json`.
pub struct Bundle {
    dir: tempfile::TempDir,
    spec: Value,
}

impl Bundle {
    /// A busybox bundle under the system temp dir with [`default_spec`] written.
    pub fn new() -> io::Result<Bundle> {
        Self::new_in(std::env::temp_dir())
    }

    /// Like [`Bundle::new`] but under `parent`.
    pub fn new_in(parent: impl AsRef<Path>) -> io::Result<Bundle> {
        let dir = tempfile::Builder::new()
            .prefix("mocker-bundle-")
            .tempdir_in(parent)?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        make_rootfs(&dir.path().join("rootfs"))?;
        let b = Bundle {
            dir,
            spec: default_spec(),
        };
        b.save()?;
        Ok(b)
    }

    /// A bundle directory with no config.json and no rootfs: for bad-input tests.
    pub fn empty() -> io::Result<Bundle> {
        let dir = tempfile::Builder::new()
            .prefix("mocker-bundle-")
            .tempdir()?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        Ok(Bundle {
            dir,
            spec: default_spec(),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }
    /// The spec as it is on disk.
    pub fn spec(&self) -> &Value {
        &self.spec
    }

    /// Writes config.json (the setters already do).
    pub fn save(&self) -> io::Result<()> {
        let text = serde_json::to_string_pretty(&self.spec).map_err(io::Error::other)?;
        fs::write(self.config_path(), text)
    }

    /// Arbitrary edit of the JSON spec, then save; panics on I/O errors (tests only).
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.spec);
        self.save().expect("write config.json");
        self
    }

    /// Overwrites config.json with raw text, e.g. invalid JSON (the builder's spec is kept).
    pub fn write_raw_config(&self, text: &str) -> io::Result<()> {
        fs::write(self.config_path(), text)
    }

    pub fn args<S: AsRef<str>>(&mut self, args: &[S]) -> &mut Self {
        let v: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
        self.edit(|s| s["process"]["args"] = json!(v))
    }
    /// `sh -c SCRIPT`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }
    pub fn hostname(&mut self, name: &str) -> &mut Self {
        self.edit(|s| s["hostname"] = json!(name))
    }
    /// Replaces the whole environment.
    pub fn env<S: AsRef<str>>(&mut self, env: &[S]) -> &mut Self {
        let v: Vec<&str> = env.iter().map(|s| s.as_ref()).collect();
        self.edit(|s| s["process"]["env"] = json!(v))
    }
    /// Adds one `NAME=VALUE` to the environment.
    pub fn add_env(&mut self, kv: &str) -> &mut Self {
        self.edit(|s| {
            s["process"]["env"]
                .as_array_mut()
                .expect("env array")
                .push(json!(kv))
        })
    }
    pub fn cwd(&mut self, cwd: &str) -> &mut Self {
        self.edit(|s| s["process"]["cwd"] = json!(cwd))
    }
    pub fn user(&mut self, uid: u32, gid: u32, additional_gids: &[u32]) -> &mut Self {
        self.edit(|s| {
            s["process"]["user"] = json!({"uid": uid, "gid": gid});
            if !additional_gids.is_empty() {
                s["process"]["user"]["additionalGids"] = json!(additional_gids);
            }
        })
    }
    pub fn umask(&mut self, umask: u32) -> &mut Self {
        self.edit(|s| s["process"]["user"]["umask"] = json!(umask))
    }
    pub fn terminal(&mut self, on: bool) -> &mut Self {
        self.edit(|s| s["process"]["terminal"] = json!(on))
    }
    pub fn readonly_root(&mut self, ro: bool) -> &mut Self {
        self.edit(|s| s["root"]["readonly"] = json!(ro))
    }
    pub fn cgroups_path(&mut self, path: &str) -> &mut Self {
        self.edit(|s| s["linux"]["cgroupsPath"] = json!(path))
    }
    pub fn memory_limit(&mut self, bytes: i64) -> &mut Self {
        self.edit(|s| s["linux"]["resources"]["memory"] = json!({"limit": bytes}))
    }
    /// Memory limit with swap equal to it (no swap use), as engines set it.
    pub fn memory_limit_no_swap(&mut self, bytes: i64) -> &mut Self {
        self.edit(|s| s["linux"]["resources"]["memory"] = json!({"limit": bytes, "swap": bytes}))
    }
    pub fn pids_limit(&mut self, max: i64) -> &mut Self {
        self.edit(|s| s["linux"]["resources"]["pids"] = json!({"limit": max}))
    }
    pub fn cpuset_cpus(&mut self, cpus: &str) -> &mut Self {
        self.edit(|s| s["linux"]["resources"]["cpu"] = json!({"cpus": cpus}))
    }
    /// Replaces the namespace list, e.g. `&["pid", "mount"]`.
    pub fn namespaces(&mut self, kinds: &[&str]) -> &mut Self {
        let v: Vec<Value> = kinds.iter().map(|k| json!({"type": k})).collect();
        self.edit(|s| s["linux"]["namespaces"] = json!(v))
    }
    /// Adds a namespace (joined by `path` if given).
    pub fn add_namespace(&mut self, kind: &str, path: Option<&str>) -> &mut Self {
        self.edit(|s| {
            let mut ns = json!({"type": kind});
            if let Some(p) = path {
                ns["path"] = json!(p);
            }
            s["linux"]["namespaces"]
                .as_array_mut()
                .expect("namespaces array")
                .push(ns)
        })
    }
    /// Appends a mount.
    pub fn mount(&mut self, dest: &str, kind: &str, source: &str, options: &[&str]) -> &mut Self {
        self.edit(|s| {
            s["mounts"]
                .as_array_mut()
                .expect("mounts array")
                .push(json!({
                    "destination": dest, "type": kind, "source": source, "options": options
                }))
        })
    }
    /// Appends a bind mount of a host path (`ro` adds the read-only option).
    pub fn bind(&mut self, host: &Path, dest: &str, ro: bool) -> &mut Self {
        let mut opts = vec!["rbind"];
        if ro {
            opts.push("ro");
        }
        self.mount(dest, "bind", host.to_str().expect("utf-8 path"), &opts)
    }
    pub fn masked_paths(&mut self, paths: &[&str]) -> &mut Self {
        self.edit(|s| s["linux"]["maskedPaths"] = json!(paths))
    }
    pub fn readonly_paths(&mut self, paths: &[&str]) -> &mut Self {
        self.edit(|s| s["linux"]["readonlyPaths"] = json!(paths))
    }
    /// Drops the `/sys/fs/cgroup` mount (some hosts or runtimes cannot do it for every case).
    pub fn without_mount(&mut self, dest: &str) -> &mut Self {
        self.edit(|s| {
            s["mounts"]
                .as_array_mut()
                .expect("mounts array")
                .retain(|m| m["destination"] != json!(dest))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_has_rootfs_and_config() {
        let mut b = Bundle::new().unwrap();
        b.sh("echo hi").hostname("box").memory_limit(1 << 25);
        let text = fs::read_to_string(b.config_path()).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["process"]["args"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(v["hostname"], "box");
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 1 << 25);
        assert!(b.rootfs().join("bin/busybox").is_file());
        assert_eq!(
            fs::read_link(b.rootfs().join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        let mut entries: Vec<String> = fs::read_dir(b.rootfs())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        entries.sort();
        assert_eq!(entries, rootfs_entries());
        let out = Command::new(b.rootfs().join("bin/sh"))
            .args(["-c", "echo $((6*7))"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "42\n");
    }
}
