//! Runtime specs: the default `config.json` (like `runc spec`) and the conversion of an
//! image configuration to a runtime spec (image-spec `conversion.md`, containerd's defaults).
//!
//! - [`default_spec`]: what `runc spec` writes (`mocker-runtime spec` uses it).
//! - [`image_default_spec`]: containerd's `WithDefaultSpec` (namespaces incl. network, the
//!   standard mounts, the 14 default capabilities, masked/readonly paths, terminal false).
//! - [`rootless_spec`]: what `runc spec --rootless` writes.
//! - [`image_to_spec`]: image config + rootfs (for `/etc/passwd`) + [`Overrides`] -> spec.
//! - [`to_pretty_json`]: a spec as runc writes it (tabs, capabilities sorted).

use std::collections::HashMap;
use std::path::Path;

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::Spec;

use crate::user::{self, UserError};

/// `PATH` when the image sets none (docker's and containerd's default).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Annotation keys from image-spec `conversion.md`.
pub const ANNOTATION_EXPOSED_PORTS: &str = "org.opencontainers.image.exposedPorts";
pub const ANNOTATION_STOP_SIGNAL: &str = "org.opencontainers.image.stopSignal";
pub const ANNOTATION_OS: &str = "org.opencontainers.image.os";
pub const ANNOTATION_ARCH: &str = "org.opencontainers.image.architecture";
pub const ANNOTATION_VARIANT: &str = "org.opencontainers.image.variant";
pub const ANNOTATION_AUTHOR: &str = "org.opencontainers.image.author";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Volumes have no engine to mount them yet; they are recorded for whoever adds one.
pub const ANNOTATION_VOLUMES: &str = "org.mocker.image.volumes";

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("image config: no command to run (neither Entrypoint nor Cmd, and no override)")]
    NoCommand,
    #[error("env `{0}`: expected KEY=VALUE")]
    Env(String),
    #[error(transparent)]
    User(#[from] UserError),
}

/// What the user asks on top of the image (`mocker-pull --tty --env .. -- CMD`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `process.terminal`; also sets `TERM=xterm` when the image has no `TERM`.
    pub tty: bool,
    /// `KEY=VALUE` entries; a key given here replaces the image's.
    pub env: Vec<String>,
    /// Replaces `WorkingDir`.
    pub workdir: Option<String>,
    /// Replaces `User` (same syntax: `user`, `uid:gid`, ...).
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// Replaces `Cmd` (not `Entrypoint`), like `docker run IMAGE CMD...`.
    pub args: Vec<String>,
}

/// `runc spec`'s output (runc 1.1, spec 1.0.2-dev), key for key.
const RUNC_SPEC: &str = r#"{
  "ociVersion": "1.0.2-dev",
  "process": {
    "terminal": true,
    "user": {"uid": 0, "gid": 0},
    "args": ["sh"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "runc",
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
      {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
    ],
    "maskedPaths": [
      "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
      "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
    ],
    "readonlyPaths": [
      "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
    ]
  }
}"#;

/// containerd's default spec for a container from an image (`oci.WithDefaultSpec` on Linux):
/// no terminal, writable root, the 14 default capabilities, its mounts (with a tmpfs on /run)
/// plus a read-only /sys/fs/cgroup, no cgroupsPath (the runtime picks one), no hostname
/// (the caller may set one).
const CONTAINERD_SPEC: &str = r#"{
  "ociVersion": "1.0.2-dev",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": [],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
        "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
      "effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
        "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
      "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
        "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
    },
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs"},
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc",
     "options": ["nosuid", "noexec", "nodev"]},
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
     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
  ],
  "linux": {
    "resources": {"devices": [{"allow": false, "access": "rwm"}]},
    "namespaces": [
      {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}
    ],
    "maskedPaths": [
      "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
      "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
      "/sys/devices/virtual/powercap", "/proc/scsi"
    ],
    "readonlyPaths": [
      "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
    ]
  }
}"#;

fn parse_builtin(json: &str) -> Spec {
    serde_json::from_str(json).expect("built-in spec is valid")
}

/// What `runc spec` writes: a terminal `sh`, read-only root, hostname `runc`.
pub fn default_spec() -> Spec {
    parse_builtin(RUNC_SPEC)
}

/// What `runc spec --rootless` writes for a user with ids `uid`/`gid`: a user namespace
/// mapping root to them, no network namespace or device cgroup rules, /sys bind-mounted
/// (a user namespace may not mount sysfs), devpts without `gid=5`.
pub fn rootless_spec(uid: u32, gid: u32) -> Spec {
    use serde_json::json;
    let mut v = serde_json::to_value(default_spec()).expect("a Spec always serialises");
    let linux = v["linux"].as_object_mut().expect("default spec has linux");
    linux.remove("resources");
    linux.insert(
        "uidMappings".into(),
        json!([{"containerID": 0, "hostID": uid, "size": 1}]),
    );
    linux.insert(
        "gidMappings".into(),
        json!([{"containerID": 0, "hostID": gid, "size": 1}]),
    );
    let ns = linux["namespaces"].as_array_mut().expect("namespaces");
    ns.retain(|n| n["type"] != "network");
    ns.push(json!({"type": "user"}));
    for m in v["mounts"].as_array_mut().expect("mounts") {
        match m["destination"].as_str() {
            Some("/dev/pts") => {
                if let Some(o) = m["options"].as_array_mut() {
                    o.retain(|o| o != "gid=5");
                }
            }
            Some("/sys") => {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            _ => {}
        }
    }
    serde_json::from_value(v).expect("a rootless spec is a valid spec")
}

/// containerd's default spec for containers made from images.
pub fn image_default_spec() -> Spec {
    parse_builtin(CONTAINERD_SPEC)
}

/// `spec` as JSON the way runc writes it: tab-indented, capability sets sorted (oci-spec
/// keeps them in hash sets, whose order would change from run to run).
pub fn to_pretty_json(spec: &Spec) -> String {
    use serde::Serialize;
    let mut v = serde_json::to_value(spec).expect("a Spec always serialises");
    sort_capabilities(&mut v);
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser)
        .expect("serialising a Value to memory");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

fn sort_capabilities(v: &mut serde_json::Value) {
    if let Some(caps) = v
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    {
        for set in caps.values_mut() {
            if let Some(a) = set.as_array_mut() {
                a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
            }
        }
    }
}

fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// Replace or append `entry` by key.
fn env_set(env: &mut Vec<String>, entry: String) {
    let key = env_key(&entry).to_string();
    match env.iter_mut().find(|e| env_key(e) == key) {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// Convert an image configuration to a runtime spec (image-spec `conversion.md`).
///
/// `rootfs` is the unpacked root filesystem, read for `/etc/passwd` and `/etc/group`;
/// `root.path` stays `rootfs` (relative to the bundle), as in every bundle Mocker writes.
pub fn image_to_spec(
    image: &ImageConfiguration,
    rootfs: &Path,
    overrides: &Overrides,
) -> Result<Spec, SpecError> {
    let mut spec = image_default_spec();
    let empty = oci_spec::image::Config::default();
    let config = image.config().as_ref().unwrap_or(&empty);

    // Entrypoint + Cmd; an override replaces Cmd only.
    let mut args: Vec<String> = config.entrypoint().clone().unwrap_or_default();
    if overrides.args.is_empty() {
        args.extend(config.cmd().clone().unwrap_or_default());
    } else {
        args.extend(overrides.args.iter().cloned());
    }
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }

    // Env: the image's, PATH if it has none, then overrides by key.
    let mut env: Vec<String> = Vec::new();
    for e in config.env().iter().flatten() {
        env_set(&mut env, e.clone());
    }
    if !env.iter().any(|e| env_key(e) == "PATH") {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    for e in &overrides.env {
        if !e.contains('=') || e.starts_with('=') {
            return Err(SpecError::Env(e.escape_debug().to_string()));
        }
        env_set(&mut env, e.clone());
    }
    if overrides.tty && !env.iter().any(|e| env_key(e) == "TERM") {
        env.push("TERM=xterm".to_string());
    }

    // WorkingDir: relative paths are taken from `/`, as docker does. Empty overrides (like
    // `docker run -w "" -u ""`) mean "not given".
    let cwd = overrides
        .workdir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| config.working_dir().clone())
        .unwrap_or_default();
    let cwd = Path::new("/").join(crate::secure_path::clean(Path::new(&cwd)));

    // User through the image's own passwd/group.
    let user_spec = overrides
        .user
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| config.user().clone())
        .unwrap_or_default();
    let resolved = user::resolve(rootfs, &user_spec)?;
    if !env.iter().any(|e| env_key(e) == "HOME") {
        env.push(format!("HOME={}", resolved.home.as_deref().unwrap_or("/")));
    }

    let process = spec
        .process_mut()
        .as_mut()
        .expect("default spec has a process");
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(cwd);
    process.set_terminal(Some(overrides.tty));
    let mut u = process.user().clone();
    u.set_uid(resolved.uid);
    u.set_gid(resolved.gid);
    u.set_additional_gids(
        (!resolved.additional_gids.is_empty()).then_some(resolved.additional_gids),
    );
    process.set_user(u);

    if let Some(h) = &overrides.hostname {
        spec.set_hostname(Some(h.clone()));
    }

    // Annotations: labels first, then the values conversion.md derives (they win).
    let mut ann: HashMap<String, String> = config.labels().clone().unwrap_or_default();
    if let Some(ports) = config.exposed_ports().as_ref().filter(|p| !p.is_empty()) {
        let mut ports = ports.clone();
        ports.sort();
        ann.insert(ANNOTATION_EXPOSED_PORTS.into(), ports.join(","));
    }
    if let Some(sig) = config.stop_signal() {
        ann.insert(ANNOTATION_STOP_SIGNAL.into(), sig.clone());
    }
    if let Some(vols) = config.volumes().as_ref().filter(|v| !v.is_empty()) {
        let mut vols = vols.clone();
        vols.sort();
        ann.insert(ANNOTATION_VOLUMES.into(), vols.join(","));
    }
    ann.insert(ANNOTATION_OS.into(), image.os().to_string());
    ann.insert(ANNOTATION_ARCH.into(), image.architecture().to_string());
    if let Some(v) = image.variant() {
        ann.insert(ANNOTATION_VARIANT.into(), v.clone());
    }
    if let Some(a) = image.author() {
        ann.insert(ANNOTATION_AUTHOR.into(), a.clone());
    }
    if let Some(c) = image.created() {
        ann.insert(ANNOTATION_CREATED.into(), c.clone());
    }
    spec.set_annotations(Some(ann));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn image(config: Value) -> ImageConfiguration {
        serde_json::from_value(json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": config
        }))
        .unwrap()
    }

    fn rootfs() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nweb:x:101:102::/srv:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("etc/group"),
            "root:x:0:\nweb:x:102:\nlog:x:4:web\n",
        )
        .unwrap();
        t
    }

    fn convert(config: Value, o: &Overrides) -> Result<Spec, SpecError> {
        let r = rootfs();
        image_to_spec(&image(config), r.path(), o)
    }

    fn process(s: &Spec) -> &oci_spec::runtime::Process {
        s.process().as_ref().unwrap()
    }

    #[test]
    fn default_spec_matches_runc_spec_output() {
        let ours: Value = serde_json::from_str(&to_pretty_json(&default_spec())).unwrap();
        let expected: Value = serde_json::from_str(RUNC_SPEC).unwrap();
        assert_eq!(ours, expected, "serialisation adds or drops keys");
        // And against the real thing when runc is installed (it is on the dev machines).
        let d = tempfile::tempdir().unwrap();
        if let Ok(st) = std::process::Command::new("runc")
            .arg("spec")
            .current_dir(d.path())
            .status()
        {
            assert!(st.success());
            let runc: Value =
                serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap())
                    .unwrap();
            assert_eq!(ours, runc);
        }
    }

    #[test]
    fn rootless_spec_matches_runc_spec_rootless() {
        let ours: Value =
            serde_json::from_str(&to_pretty_json(&rootless_spec(1000, 1001))).unwrap();
        assert_eq!(ours["linux"]["uidMappings"][0]["hostID"], 1000);
        assert_eq!(ours["linux"]["gidMappings"][0]["hostID"], 1001);
        assert!(ours["linux"].get("resources").is_none());
        // runc maps the caller's own ids; compare with what it writes for us.
        let d = tempfile::tempdir().unwrap();
        if let Ok(st) = std::process::Command::new("runc")
            .args(["spec", "--rootless"])
            .current_dir(d.path())
            .status()
        {
            assert!(st.success());
            let runc: Value =
                serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap())
                    .unwrap();
            let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
            let ours: Value =
                serde_json::from_str(&to_pretty_json(&rootless_spec(uid.as_raw(), gid.as_raw())))
                    .unwrap();
            assert_eq!(ours, runc);
        }
    }

    #[test]
    fn image_default_spec_is_containerds() {
        let s = image_default_spec();
        let p = process(&s);
        assert_eq!(p.terminal(), Some(false));
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(caps.ambient().is_none());
        let l = s.linux().as_ref().unwrap();
        assert!(l.cgroups_path().is_none());
        let ns: Vec<String> = l
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| format!("{:?}", n.typ()))
            .collect();
        assert_eq!(ns, ["Pid", "Ipc", "Uts", "Mount", "Network"]);
        let dests: Vec<_> = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/run"
            ]
        );
        assert!(
            l.masked_paths()
                .as_ref()
                .unwrap()
                .contains(&"/proc/kcore".to_string())
        );
        assert_eq!(l.readonly_paths().as_ref().unwrap().len(), 5);
        let rl = &p.rlimits().as_ref().unwrap()[0];
        assert_eq!((rl.soft(), rl.hard()), (1024, 1024));
        assert_eq!(s.root().as_ref().unwrap().readonly(), None);
    }

    #[test]
    fn args_are_entrypoint_plus_cmd_and_override_replaces_cmd() {
        let c =
            json!({"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx", "-g", "daemon off;"]});
        let s = convert(c.clone(), &Overrides::default()).unwrap();
        assert_eq!(
            process(&s).args().as_ref().unwrap(),
            &["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
        );
        let o = Overrides {
            args: vec!["sh".into()],
            ..Default::default()
        };
        let s = convert(c, &o).unwrap();
        assert_eq!(
            process(&s).args().as_ref().unwrap(),
            &["/docker-entrypoint.sh", "sh"]
        );
        let s = convert(json!({"Cmd": ["ls"]}), &o).unwrap();
        assert_eq!(process(&s).args().as_ref().unwrap(), &["sh"]);
        let e = convert(json!({}), &Overrides::default()).unwrap_err();
        assert!(matches!(e, SpecError::NoCommand));
    }

    #[test]
    fn env_merges_with_override_winning_and_default_path() {
        let o = Overrides {
            env: vec!["A=override".into(), "NEW=1".into()],
            ..Default::default()
        };
        let s = convert(json!({"Cmd": ["x"], "Env": ["A=image", "B=2"]}), &o).unwrap();
        let env = process(&s).env().as_ref().unwrap();
        assert_eq!(
            env,
            &[DEFAULT_PATH, "A=override", "B=2", "NEW=1", "HOME=/root"]
        );
        let s = convert(
            json!({"Cmd": ["x"], "Env": ["PATH=/bin"]}),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(process(&s).env().as_ref().unwrap()[0], "PATH=/bin");
        let bad = Overrides {
            env: vec!["NOVALUE".into()],
            ..Default::default()
        };
        let e = convert(json!({"Cmd": ["x"]}), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NOVALUE"), "{e}");
    }

    #[test]
    fn workdir_defaults_to_root() {
        let s = convert(json!({"Cmd": ["x"]}), &Overrides::default()).unwrap();
        assert_eq!(process(&s).cwd(), Path::new("/"));
        let s = convert(
            json!({"Cmd": ["x"], "WorkingDir": "/srv/app/"}),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(process(&s).cwd(), Path::new("/srv/app"));
        let o = Overrides {
            workdir: Some("/tmp".into()),
            ..Default::default()
        };
        let s = convert(json!({"Cmd": ["x"], "WorkingDir": "/srv"}), &o).unwrap();
        assert_eq!(process(&s).cwd(), Path::new("/tmp"));
        let empty = Overrides {
            workdir: Some(String::new()),
            user: Some(String::new()),
            ..Default::default()
        };
        let s = convert(
            json!({"Cmd": ["x"], "WorkingDir": "srv", "User": "web"}),
            &empty,
        )
        .unwrap();
        assert_eq!(process(&s).cwd(), Path::new("/srv"));
        assert_eq!(process(&s).user().uid(), 101);
    }

    #[test]
    fn user_is_resolved_in_the_rootfs() {
        let s = convert(json!({"Cmd": ["x"], "User": "web"}), &Overrides::default()).unwrap();
        let u = process(&s).user();
        assert_eq!((u.uid(), u.gid()), (101, 102));
        assert_eq!(u.additional_gids().as_ref().unwrap(), &[4]);
        assert!(
            process(&s)
                .env()
                .as_ref()
                .unwrap()
                .contains(&"HOME=/srv".to_string())
        );
        let o = Overrides {
            user: Some("0:4".into()),
            ..Default::default()
        };
        let s = convert(json!({"Cmd": ["x"], "User": "web"}), &o).unwrap();
        assert_eq!((process(&s).user().uid(), process(&s).user().gid()), (0, 4));
        let e = convert(
            json!({"Cmd": ["x"], "User": "ghost"}),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ghost"), "{e}");
    }

    #[test]
    fn labels_ports_signal_volumes_become_annotations() {
        let s = convert(
            json!({"Cmd": ["x"], "Labels": {"maintainer": "me"},
                   "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
                   "StopSignal": "SIGQUIT", "Volumes": {"/data": {}}}),
            &Overrides::default(),
        )
        .unwrap();
        let a = s.annotations().as_ref().unwrap();
        assert_eq!(a["maintainer"], "me");
        assert_eq!(a[ANNOTATION_EXPOSED_PORTS], "443/tcp,80/tcp");
        assert_eq!(a[ANNOTATION_STOP_SIGNAL], "SIGQUIT");
        assert_eq!(a[ANNOTATION_VOLUMES], "/data");
        assert_eq!(a[ANNOTATION_OS], "linux");
        assert_eq!(a[ANNOTATION_ARCH], "amd64");
    }

    #[test]
    fn tty_and_hostname() {
        let o = Overrides {
            tty: true,
            hostname: Some("box".into()),
            ..Default::default()
        };
        let s = convert(json!({"Cmd": ["x"]}), &o).unwrap();
        assert_eq!(process(&s).terminal(), Some(true));
        assert!(
            process(&s)
                .env()
                .as_ref()
                .unwrap()
                .contains(&"TERM=xterm".to_string())
        );
        assert_eq!(s.hostname().as_deref(), Some("box"));
        let s = convert(json!({"Cmd": ["x"]}), &Overrides::default()).unwrap();
        assert_eq!(process(&s).terminal(), Some(false));
        assert!(s.hostname().is_none());
    }
}
