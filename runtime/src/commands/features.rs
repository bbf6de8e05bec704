//! `features`: the runtime-spec features document (features.md), in runc's shape, listing
//! exactly what this runtime does: nothing it would refuse or ignore.

use anyhow::Result;
use serde_json::json;

use crate::linux::hooks::Phase;
use crate::linux::rootfs::options;
use crate::linux::seccomp;

pub fn run() -> Result<()> {
    let mut caps: Vec<caps::Capability> = caps::all().into_iter().collect();
    caps.sort_by_key(|c| c.index());
    let mut mount_options: Vec<&str> = options::known_names().collect();
    mount_options.sort_unstable();
    let doc = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::container::OCI_VERSION,
        "hooks": Phase::ALL.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "mountOptions": mount_options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": seccomp::features(),
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}},
        },
        "annotations": {
            "io.github.seccomp.libseccomp.version": libseccomp_version(),
            "org.opencontainers.runtime-spec.features": "mocker-runtime",
            "io.mocker.runtime.version": env!("CARGO_PKG_VERSION"),
        },
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

fn libseccomp_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default()
}
