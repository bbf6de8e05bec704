//! OCI hooks, all six phases, observed for real: each hook is a shell script that records
//! what it saw (its phase, the state on its stdin, its namespace) in a file the test reads.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use integration::busybox::Bundle;
use integration::runtime::Container;
use serde_json::{Value, json};

/// A hook running `/bin/sh -c SCRIPT` (the host's sh, or the container's for startContainer).
fn sh_hook(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

/// A hook appending `PHASE <mount ns> <state JSON>` to `log`.
fn recorder(phase: &str, log: &Path) -> Value {
    sh_hook(&format!(
        "echo \"{phase} $(readlink /proc/self/ns/mnt) $(cat)\" >> {}",
        log.display()
    ))
}

struct Record {
    phase: String,
    mnt_ns: String,
    state: Value,
}

fn records(log: &Path) -> Vec<Record> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let phase = parts.next().unwrap().to_string();
            let mnt_ns = parts.next().unwrap().to_string();
            let state = serde_json::from_str(parts.next().unwrap()).expect(l);
            Record {
                phase,
                mnt_ns,
                state,
            }
        })
        .collect()
}

#[test]
fn every_phase_runs_in_order_in_its_namespace_with_the_state_on_stdin() {
    let host = tempfile::tempdir().unwrap();
    let log = host.path().join("log");
    let mut b = Bundle::new().unwrap();
    // startContainer runs in the container after pivot_root: its path and the log it writes
    // are the container's (the host dir is bind-mounted at /hooklog).
    fs::write(b.rootfs().join("in-container"), "yes\n").unwrap();
    let start_hook = sh_hook(
        "echo \"startContainer $(readlink /proc/self/ns/mnt) $(cat)\" >> /hooklog/log; \
         cat /in-container >> /hooklog/seen",
    );
    b.bind(host.path(), "/hooklog", false)
        .edit(|s| {
            s["annotations"] = json!({"org.example.key": "value"});
            s["hooks"] = json!({
                "prestart": [recorder("prestart", &log)],
                "createRuntime": [recorder("createRuntime", &log)],
                "createContainer": [recorder("createContainer", &log)],
                "startContainer": [start_hook],
                "poststart": [recorder("poststart", &log)],
                "poststop": [recorder("poststop", &log)],
            });
        })
        .args(&["true"]);
    let mut c = Container::new("hooks", &b);
    c.create().ok();
    let pid = c.pid();
    c.start().ok();
    c.wait_stopped();
    c.delete().ok();
    c.assert_no_leftovers();

    let host_mnt = fs::read_link("/proc/self/ns/mnt").unwrap();
    let host_mnt = host_mnt.to_str().unwrap();
    let recs = records(&log);
    let phases: Vec<&str> = recs.iter().map(|r| r.phase.as_str()).collect();
    assert_eq!(
        phases,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    for r in &recs {
        let (status, in_container) = match r.phase.as_str() {
            // prestart: `created`, as crun and the runtime-tools suite have it.
            "prestart" => ("created", false),
            "createRuntime" => ("creating", false),
            "createContainer" => ("creating", true),
            "startContainer" => ("created", true),
            "poststart" => ("running", false),
            _ => ("stopped", false),
        };
        assert_eq!(r.state["status"], status, "{}: {}", r.phase, r.state);
        assert_eq!(r.state["id"], json!(c.id), "{}", r.phase);
        assert_eq!(r.state["bundle"], json!(b.path()), "{}", r.phase);
        assert_eq!(
            r.state["annotations"]["org.example.key"], "value",
            "{}",
            r.phase
        );
        assert!(r.state["ociVersion"].is_string(), "{}", r.phase);
        // Hooks in the container see the init as pid 1 (its PID namespace), as runc does.
        let want_pid = if in_container { 1 } else { pid };
        assert_eq!(r.state["pid"], want_pid, "{}", r.phase);
        assert_eq!(
            r.mnt_ns != host_mnt,
            in_container,
            "{} ran in the wrong mount namespace",
            r.phase
        );
    }
    assert_eq!(
        fs::read_to_string(host.path().join("seen")).unwrap(),
        "yes\n"
    );
}

#[test]
fn a_hook_gets_exactly_its_args_and_env() {
    let host = tempfile::tempdir().unwrap();
    let out = host.path().join("out");
    let mut b = Bundle::new().unwrap();
    b.edit(|s| {
        s["hooks"] = json!({"createRuntime": [{
            "path": "/bin/sh",
            "args": ["custom-argv0", "-c", format!("echo \"$(head -c 12 /proc/$$/cmdline) $0 $FOO\" > {0}; env | grep -v '^PWD=' | sort >> {0}", out.display()), "one"],
            "env": ["FOO=bar", "OTHER=x"]
        }]})
    })
    .args(&["true"]);
    let mut c = Container::new("hookenv", &b);
    c.run().ok();
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        "custom-argv0 one bar\nFOO=bar\nOTHER=x\n"
    );
    c.assert_no_leftovers();
}

#[test]
fn a_failing_create_hook_aborts_create_in_one_line_and_leaves_nothing() {
    for phase in ["prestart", "createRuntime", "createContainer"] {
        let mut b = Bundle::new().unwrap();
        b.edit(|s| {
            s["hooks"] = json!({ phase: [
                sh_hook("exit 0"),
                sh_hook("cat >/dev/null; echo not today >&2; exit 3")
            ]})
        })
        .args(&["true"]);
        let mut c = Container::new("hookfail", &b);
        let out = c.create().failed();
        assert_eq!(out.error_lines().len(), 1, "{phase}: {out}");
        let line = out.error_lines()[0];
        for want in [
            format!("hooks.{phase}[1] /bin/sh"),
            "exit status 3".into(),
            "not today".into(),
        ] {
            assert!(line.contains(&want), "{phase}: {want:?} in {out}");
        }
        c.assert_no_leftovers();
    }
}

#[test]
fn a_failing_start_container_hook_fails_start_and_the_program_never_runs() {
    let host = tempfile::tempdir().unwrap();
    let mut b = Bundle::new().unwrap();
    b.bind(host.path(), "/out", false)
        .edit(|s| s["hooks"] = json!({"startContainer": [sh_hook("echo refused >&2; exit 7")]}))
        .sh("echo ran > /out/ran");
    let mut c = Container::new("startfail", &b);
    c.create().ok();
    let out = c.start().failed();
    assert_eq!(out.error_lines().len(), 1, "{out}");
    assert!(
        out.stderr
            .contains("hooks.startContainer[0] /bin/sh: exit status 7: refused"),
        "{out}"
    );
    c.wait_stopped();
    assert!(!host.path().join("ran").exists(), "the program ran");
    c.delete().ok();
    c.assert_no_leftovers();
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_create_fails() {
    let host = tempfile::tempdir().unwrap();
    let pidfile = host.path().join("pid");
    let mut b = Bundle::new().unwrap();
    let mut hook = sh_hook(&format!("echo $$ > {}; exec sleep 60", pidfile.display()));
    hook["timeout"] = json!(1);
    b.edit(|s| s["hooks"] = json!({"createRuntime": [hook]}))
        .args(&["true"]);
    let mut c = Container::new("hooktimeout", &b);
    let t0 = Instant::now();
    let out = c.create().failed();
    assert!(t0.elapsed() < Duration::from_secs(20), "{out}");
    assert_eq!(out.error_lines().len(), 1, "{out}");
    assert!(
        out.stderr
            .contains("hooks.createRuntime[0] /bin/sh: timed out after 1s"),
        "{out}"
    );
    let hook_pid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !Path::new(&format!("/proc/{hook_pid}")).exists(),
        "the timed-out hook still runs"
    );
    c.assert_no_leftovers();
}

#[test]
fn poststart_runs_once_the_program_is_executed() {
    let host = tempfile::tempdir().unwrap();
    let exe = host.path().join("exe");
    let mut b = Bundle::new().unwrap();
    b.edit(|s| {
        s["hooks"] = json!({"poststart": [sh_hook(&format!(
            "pid=$(sed 's/.*\"pid\":\\([0-9]*\\).*/\\1/'); readlink /proc/$pid/exe > {}",
            exe.display()
        ))]})
    })
    .args(&["sleep", "30"]);
    let mut c = Container::new("poststartexec", &b);
    c.create().ok();
    c.start().ok();
    // The init had become the program, not the runtime still on its way to execve.
    assert_eq!(fs::read_to_string(&exe).unwrap(), "/bin/busybox\n");
    c.delete_force().ok();
    c.assert_no_leftovers();
}

#[test]
fn failing_poststart_and_poststop_hooks_are_warnings() {
    let host = tempfile::tempdir().unwrap();
    let mut b = Bundle::new().unwrap();
    let state_dir_seen = host.path().join("state-dir");
    b.edit(|s| {
        s["hooks"] = json!({
            "poststart": [sh_hook("exit 4"), sh_hook(&format!("echo > {}/poststart-2", host.path().display()))],
            "poststop": [sh_hook("exit 5"), sh_hook(&format!("echo > {}/poststop-2", host.path().display()))],
        })
    })
    .args(&["sleep", "30"]);
    let mut c = Container::new("postfail", &b);
    c.create().ok();
    let out = c.start().ok();
    assert!(
        out.stderr
            .contains("hooks.poststart[0] /bin/sh: exit status 4"),
        "{out}"
    );
    assert_eq!(c.status(), "running");
    // The remaining hooks ran as if the failing one had succeeded.
    assert!(host.path().join("poststart-2").exists(), "{out}");
    // poststop runs once the container is gone: its state directory no longer exists.
    let check = format!(
        "[ -e {} ] && echo present > {1} || echo gone > {1}; exit 5",
        c.state_dir().display(),
        state_dir_seen.display()
    );
    b.edit(|s| s["hooks"]["poststop"] = json!([sh_hook(&check)]));
    let out = c.delete_force().ok();
    // The hooks were recorded at create: the edited config above is not what runs.
    assert!(
        out.stderr
            .contains("hooks.poststop[0] /bin/sh: exit status 5"),
        "{out}"
    );
    assert!(!state_dir_seen.exists(), "the bundle's new config was used");
    assert!(host.path().join("poststop-2").exists(), "{out}");
    c.assert_no_leftovers();
}

#[test]
fn poststop_runs_after_the_container_is_gone() {
    let host = tempfile::tempdir().unwrap();
    let seen = host.path().join("seen");
    let mut b = Bundle::new().unwrap();
    b.args(&["true"]);
    let mut c = Container::new("poststop", &b);
    let check = format!(
        "[ -e {} ] && echo present > {1} || echo gone > {1}",
        c.state_dir().display(),
        seen.display()
    );
    b.edit(|s| s["hooks"] = json!({"poststop": [sh_hook(&check)]}));
    c.run().ok();
    assert_eq!(fs::read_to_string(&seen).unwrap(), "gone\n");
    c.assert_no_leftovers();
}

#[test]
fn empty_hooks_are_accepted_and_bad_ones_refused_in_one_line() {
    for hooks in [json!({}), json!({"prestart": [], "poststop": []})] {
        let mut b = Bundle::new().unwrap();
        b.edit(|s| s["hooks"] = hooks.clone()).args(&["true"]);
        let mut c = Container::new("hooksempty", &b);
        c.run().ok();
        c.assert_no_leftovers();
    }
    for (hooks, want) in [
        (
            json!({"createRuntime": [{"path": "relative/hook"}]}),
            "hooks.createRuntime[0].path",
        ),
        (
            json!({"poststop": [{"path": "/bin/true", "timeout": 0}]}),
            "hooks.poststop[0].timeout",
        ),
        (
            json!({"prestart": [{"path": "/nonexistent/hook"}]}),
            "hooks.prestart[0] /nonexistent/hook",
        ),
    ] {
        let mut b = Bundle::new().unwrap();
        b.edit(|s| s["hooks"] = hooks.clone()).args(&["true"]);
        let mut c = Container::new("hooksbad", &b);
        let out = c.create().failed();
        assert_eq!(out.error_lines().len(), 1, "{out}");
        assert!(out.stderr.contains(want), "{want}: {out}");
        c.assert_no_leftovers();
    }
}
