//! `linux.seccomp`, enforced: observed from inside real containers (the status line, the
//! errno a denied syscall returns, argument comparisons), podman's default profile, the notify
//! listener, and profiles refused in one line.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;

use integration::busybox::Bundle;
use integration::runtime::Container;
use integration::seccomp::podman_default;
use serde_json::{Value, json};

fn run_with_profile(name: &str, profile: Value, nnp: bool, script: &str) -> String {
    let mut b = Bundle::new().unwrap();
    b.edit(|s| {
        s["linux"]["seccomp"] = profile;
        s["process"]["noNewPrivileges"] = json!(nnp);
    })
    .sh(script);
    let mut c = Container::new(name, &b);
    let out = c.run().ok();
    c.assert_no_leftovers();
    out.stdout
}

#[test]
fn a_denied_syscall_returns_the_profiles_errno_with_and_without_no_new_privs() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["a_syscall_nobody_has"], "action": "SCMP_ACT_KILL"},
            // The runtime's own last steps must not need it (an early filter sees them).
            {"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}
        ]
    });
    // Without noNewPrivileges the filter goes in before the capabilities are dropped.
    for nnp in [true, false] {
        let out = run_with_profile(
            "seccomp",
            profile.clone(),
            nnp,
            "grep Seccomp: /proc/self/status; mkdir /tmp/x 2>&1; rmdir /tmp 2>&1; echo done",
        );
        assert!(out.contains("Seccomp:\t2"), "nnp={nnp}: {out}");
        assert!(out.contains("Permission denied"), "nnp={nnp}: {out}");
        // errnoRet unset: EPERM.
        assert!(out.contains("Operation not permitted"), "nnp={nnp}: {out}");
        assert!(out.ends_with("done\n"), "nnp={nnp}: {out}");
    }
}

#[test]
fn argument_comparisons_and_or_semantics_match_runc() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            // Two conditions on one argument: either matches (runc adds one rule each).
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [
                {"index": 1, "value": 0o711, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 0o722, "op": "SCMP_CMP_EQ"}
            ]},
            // Masked: a umask with all of the "other" bits set.
            {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [
                {"index": 0, "value": 0o7, "valueTwo": 0o7, "op": "SCMP_CMP_MASKED_EQ"}
            ]}
        ]
    });
    let out = run_with_profile(
        "seccompargs",
        profile,
        true,
        "cd /tmp; touch f; for m in 711 722 700; do chmod $m f 2>/dev/null && echo chmod-$m || echo denied-$m; done; \
         umask 022; umask 027; umask; umask 075; umask",
    );
    assert_eq!(
        out, "denied-711\ndenied-722\nchmod-700\n0022\n0075\n",
        "{out}"
    );
}

#[test]
fn podmans_default_profile_is_applied() {
    // As `podman run --cap-add SYS_ADMIN`: the profile is computed for the container's caps.
    let caps = [
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_ADMIN",
    ];
    let run = |profile: Option<Value>| {
        let mut b = Bundle::new().unwrap();
        b.edit(|s| {
            for set in ["bounding", "effective", "permitted"] {
                s["process"]["capabilities"][set] = json!(caps);
            }
            if let Some(p) = profile {
                s["linux"]["seccomp"] = p;
            }
        })
        .sh(
            "grep Seccomp: /proc/self/status; ls / >/dev/null && echo ls-ok; \
             head -c 4096 /dev/zero > /tmp/f; swapon /tmp/f 2>&1; echo end",
        );
        let mut c = Container::new("seccomppodman", &b);
        let out = c.run().ok();
        c.assert_no_leftovers();
        out.stdout
    };
    let with = run(Some(podman_default(&caps)));
    assert!(with.contains("Seccomp:\t2"), "{with}");
    assert!(with.contains("ls-ok"), "{with}");
    // swapon(2) is denied by the profile for everyone (EPERM); the kernel itself, to a
    // process with CAP_SYS_ADMIN, only objects to the file (EINVAL).
    assert!(with.contains("Operation not permitted"), "{with}");
    let without = run(None);
    assert!(without.contains("Seccomp:\t0"), "{without}");
    assert!(!without.contains("Operation not permitted"), "{without}");
}

#[test]
fn a_notify_listener_receives_the_descriptor_and_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("listener.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let agent = std::thread::spawn(move || {
        let (body, fd) = integration::fdpass::receive(&listener);
        let body: Value = serde_json::from_slice(&body).unwrap();
        let kind = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        (body, kind)
    });
    let mut b = Bundle::new().unwrap();
    b.edit(|s| {
        s["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "listenerMetadata": "hello-agent",
            "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        })
    })
    .args(&["true"]);
    let mut c = Container::new("seccompnotify", &b);
    c.run().ok();
    let (body, kind) = agent.join().unwrap();
    assert_eq!(kind.to_str().unwrap(), "anon_inode:seccomp notify");
    assert_eq!(body["metadata"], "hello-agent", "{body}");
    assert_eq!(body["fds"], json!(["seccompFd"]), "{body}");
    assert_eq!(body["state"]["id"], json!(c.id), "{body}");
    assert!(body["pid"].as_i64().unwrap() > 0, "{body}");
    c.assert_no_leftovers();
}

#[test]
fn bad_profiles_are_refused_in_one_line_and_leave_nothing() {
    let cases = [
        (json!({"defaultAction": "SCMP_ACT_BOGUS"}), "defaultAction"),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NOPE"]}),
            "architectures",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.listenerPath",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                   "args": [{"index": 9, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].index",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "listenerPath": "/nonexistent/listener.sock",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.listenerPath /nonexistent/listener.sock",
        ),
    ];
    for (profile, want) in cases {
        let mut b = Bundle::new().unwrap();
        b.edit(|s| s["linux"]["seccomp"] = profile.clone())
            .args(&["true"]);
        let mut c = Container::new("seccompbad", &b);
        let out = c.create().failed();
        assert_eq!(out.error_lines().len(), 1, "{out}");
        assert!(out.stderr.contains(want), "{want}: {out}");
        c.assert_no_leftovers();
    }
}
