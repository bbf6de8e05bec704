//! `features`: the document runc prints, and what it claims holds for a real container.

use integration::busybox::Bundle;
use integration::runtime::{Container, runtime_binary};
use serde_json::{Value, json};

fn features() -> Value {
    let out = std::process::Command::new(runtime_binary())
        .arg("features")
        .output()
        .expect("run features");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("features prints JSON")
}

#[test]
fn features_lists_hooks_namespaces_and_seccomp_in_runcs_shape() {
    let f = features();
    assert_eq!(
        f["hooks"],
        json!([
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ])
    );
    for ns in [
        "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
    ] {
        assert!(
            f["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .contains(&json!(ns)),
            "{ns}"
        );
    }
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(
        f["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_SYS_ADMIN"))
    );
    assert!(
        f["mountOptions"]
            .as_array()
            .unwrap()
            .contains(&json!("rbind"))
    );
    assert!(f["ociVersionMax"].is_string() && f["ociVersionMin"].is_string());
    // Nothing claimed that the runtime refuses.
    assert_eq!(f["linux"]["apparmor"]["enabled"], false);
    assert_eq!(f["linux"]["cgroup"]["systemd"], false);
}

#[test]
fn every_seccomp_action_and_operator_listed_is_accepted_by_create() {
    let f = features();
    let sc = &f["linux"]["seccomp"];
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut rules = Vec::new();
    // One syscall per rule, none the container's `true` needs.
    let calls = [
        "acct",
        "swapon",
        "swapoff",
        "reboot",
        "syslog",
        "vhangup",
        "pivot_root",
        "iopl",
        "ioperm",
        "quotactl",
        "nfsservctl",
        "uselib",
    ];
    let mut next = calls.iter();
    for a in sc["actions"].as_array().unwrap() {
        if a == "SCMP_ACT_ALLOW" {
            continue;
        }
        rules.push(json!({"names": [next.next().unwrap()], "action": a}));
    }
    for op in sc["operators"].as_array().unwrap() {
        rules.push(json!({"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 0, "value": 0x4242, "valueTwo": 0x4242, "op": op}]}));
    }
    let mut b = Bundle::new().unwrap();
    b.edit(|s| {
        s["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": sc["archs"],
            "listenerPath": sock,
            "syscalls": rules,
        })
    })
    .args(&["true"]);
    let mut c = Container::new("features", &b);
    c.create().ok();
    c.delete_force().ok();
    c.assert_no_leftovers();
}
