//! podman's default seccomp profile (`/usr/share/containers/seccomp.json`, moby's format) turned
//! into the OCI `linux.seccomp` an engine writes into a bundle: entries kept when their
//! `includes` (capabilities, architectures) hold and their `excludes` do not, for amd64.

use serde_json::{Value, json};

pub const PODMAN_PROFILE: &str = "/usr/share/containers/seccomp.json";

/// The OCI profile podman would pass for a container holding `caps` on x86_64.
pub fn podman_default(caps: &[&str]) -> Value {
    let text = std::fs::read_to_string(PODMAN_PROFILE)
        .unwrap_or_else(|e| panic!("{PODMAN_PROFILE}: {e} (just setup installs it)"));
    let moby: Value = serde_json::from_str(&text).expect("podman's seccomp.json parses");
    let arch = "amd64";
    let holds = |cond: &Value| {
        let caps_ok = cond["caps"]
            .as_array()
            .is_none_or(|c| c.iter().all(|c| caps.contains(&c.as_str().unwrap_or(""))));
        let arch_ok = cond["arches"]
            .as_array()
            .is_none_or(|a| a.iter().any(|a| a == arch));
        (caps_ok, arch_ok)
    };
    let mut syscalls = Vec::new();
    for s in moby["syscalls"].as_array().expect("syscalls") {
        let (inc_caps, inc_arch) = holds(&s["includes"]);
        if !(inc_caps && inc_arch) {
            continue;
        }
        let exc = &s["excludes"];
        let excluded_cap = exc["caps"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| caps.contains(&c.as_str().unwrap_or(""))));
        let excluded_arch = exc["arches"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a == arch));
        if excluded_cap || excluded_arch {
            continue;
        }
        let mut entry = json!({"names": s["names"], "action": s["action"]});
        if let Some(args) = s["args"].as_array().filter(|a| !a.is_empty()) {
            entry["args"] = json!(args);
        }
        if let Some(e) = s.get("errnoRet") {
            entry["errnoRet"] = e.clone();
        }
        syscalls.push(entry);
    }
    json!({
        "defaultAction": moby["defaultAction"],
        "defaultErrnoRet": moby["defaultErrnoRet"],
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    })
}
