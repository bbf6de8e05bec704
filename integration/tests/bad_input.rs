//! Bad input: each case is a non-zero exit, ONE clear stderr line naming the culprit, and no
//! leftovers (state dir, cgroup, mount, process).

use std::fs;

use integration::busybox::Bundle;
use integration::runtime::{Container, Out};

/// Failed, with exactly one error line that contains every one of `needles`.
#[track_caller]
fn assert_one_error(out: Out, needles: &[&str]) {
    let out = out.failed();
    let lines = out.error_lines();
    assert_eq!(lines.len(), 1, "want one error line: {out}");
    for n in needles {
        assert!(
            lines[0].contains(n),
            "error line does not name {n:?}: {out}"
        );
    }
}

/// Like [`assert_one_error`], but runc's message does not name the culprit here (e.g.
/// "container does not exist"); mocker-runtime's must, so the names are checked for every
/// other runtime.
#[track_caller]
fn assert_one_error_naming(out: Out, needles: &[&str]) {
    if integration::runtime::is_runc() {
        assert_one_error(out, &[]);
    } else {
        assert_one_error(out, needles);
    }
}

fn bundle_sh(script: &str) -> Bundle {
    let mut b = Bundle::new().expect("bundle");
    b.sh(script);
    b
}

#[test]
fn missing_bundle_dir() {
    let b = Bundle::empty().unwrap();
    let mut c = Container::new("nobundle", &b);
    c.bundle = b.path().join("does-not-exist");
    let out = c.create();
    assert_one_error(out, &["does-not-exist"]);
    c.assert_no_leftovers();
}

#[test]
fn missing_config_json() {
    let b = Bundle::empty().unwrap();
    integration::busybox::make_rootfs(&b.rootfs()).unwrap();
    let mut c = Container::new("noconfig", &b);
    assert_one_error(c.create(), &["config.json"]);
    c.assert_no_leftovers();
}

#[test]
fn args_given_as_a_string_names_the_field() {
    let mut b = Bundle::new().unwrap();
    b.edit(|s| s["process"]["args"] = serde_json::json!("sh -c true"));
    let mut c = Container::new("badargs", &b);
    assert_one_error(c.create(), &["args"]);
    c.assert_no_leftovers();
}

#[test]
fn truncated_json() {
    let b = Bundle::new().unwrap();
    let text = fs::read_to_string(b.config_path()).unwrap();
    b.write_raw_config(&text[..text.len() / 2]).unwrap();
    let mut c = Container::new("truncated", &b);
    assert_one_error_naming(c.create(), &["config.json"]);
    c.assert_no_leftovers();
}

#[test]
fn missing_rootfs() {
    let b = bundle_sh("true");
    fs::remove_dir_all(b.rootfs()).unwrap();
    let mut c = Container::new("norootfs", &b);
    assert_one_error(c.create(), &["rootfs"]);
    c.assert_no_leftovers();
}

#[test]
fn duplicate_id_is_refused_and_the_first_container_survives() {
    let b = bundle_sh("true");
    let mut c = Container::new("dup", &b);
    c.create().ok();
    let pid = c.pid();
    let id = c.id.clone();
    assert_one_error_naming(c.create(), &[&id]);
    let st = c.state();
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(c.pid(), pid);
    c.delete_force().ok();
    c.assert_no_leftovers();
}

#[test]
fn unknown_id_for_state_start_kill_delete() {
    let b = Bundle::empty().unwrap();
    let c = Container::new("unknown", &b);
    for args in [
        vec!["state", &c.id],
        vec!["start", &c.id],
        vec!["kill", &c.id, "KILL"],
        vec!["delete", &c.id],
    ] {
        let out = c.exec(&args);
        assert_one_error_naming(out, &[&c.id]);
    }
    c.assert_no_leftovers();
}

#[test]
fn start_on_a_running_or_stopped_container() {
    let b = bundle_sh("echo ready; sleep 100");
    let mut c = Container::new("restart", &b);
    c.create().ok();
    c.start().ok();
    c.wait_output("ready");
    assert_one_error_naming(c.start(), &[&c.id]);
    assert_eq!(c.status(), "running");
    c.kill("KILL").ok();
    c.wait_stopped();
    assert_one_error_naming(c.start(), &[&c.id]);
    assert_eq!(c.status(), "stopped");
    c.delete().ok();
    c.assert_no_leftovers();
}

#[test]
fn delete_of_a_running_container_needs_force() {
    let mut b = bundle_sh("echo ready; sleep 100");
    b.pids_limit(20);
    let mut c = Container::new("delrun", &b);
    c.create().ok();
    c.start().ok();
    c.wait_output("ready");
    assert_one_error(c.delete(), &[&c.id]);
    assert_eq!(c.status(), "running");
    c.delete_force().ok();
    c.assert_no_leftovers();
}

#[test]
fn delete_force_of_a_created_container() {
    let b = bundle_sh("true");
    let mut c = Container::new("delcreated", &b);
    c.create().ok();
    c.delete_force().ok();
    c.assert_no_leftovers();
}

#[test]
fn nonexistent_program() {
    let mut b = Bundle::new().unwrap();
    b.args(&["/no/such-program"]);
    let mut c = Container::new("noprog", &b);
    let out = c.run();
    assert_one_error(out, &["/no/such-program"]);
    c.assert_no_leftovers();
}

#[test]
fn nonexistent_program_at_create() {
    let mut b = Bundle::new().unwrap();
    b.args(&["no-such-program-in-path"]);
    let mut c = Container::new("noprog2", &b);
    let out = c.create();
    // runc refuses at create (the init looks the program up before blocking on the exec fifo).
    assert_one_error(out, &["no-such-program-in-path"]);
    c.assert_no_leftovers();
}

#[test]
fn log_file_gets_the_error_in_json() {
    let b = Bundle::empty().unwrap();
    let c = Container::new("logjson", &b);
    let log = c.scratch().join("runtime.log");
    let out = c.exec(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        &c.id,
    ]);
    assert_one_error_naming(out, &[&c.id]);
    let text = fs::read_to_string(&log).expect("log file written");
    let errors: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .filter(|v: &serde_json::Value| v["level"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(
        errors[0]["msg"].is_string() && errors[0]["time"].is_string(),
        "{text}"
    );
}

/// Failures inside the container's init and inside an exec'd process reach the JSON log
/// as one error line each, naming the step, as engines read them.
#[test]
fn failures_inside_the_init_and_exec_are_one_json_error_line() {
    let json_errors = |log: &std::path::Path| -> Vec<serde_json::Value> {
        fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .filter(|v: &serde_json::Value| v["level"] == "error")
            .collect()
    };
    // In the init: a cwd that cannot be entered.
    let mut b = bundle_sh("true");
    b.edit(|s| s["process"]["cwd"] = serde_json::json!("/bin/busybox/not-a-dir"));
    let c = Container::new("initlog", &b);
    let log = c.scratch().join("init.log");
    let mut cmd = c.command();
    cmd.args([
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
    ])
    .arg(&c.bundle)
    .arg(&c.id);
    let out = c.exec_cmd(cmd);
    assert!(!out.success(), "{out}");
    let errors = json_errors(&log);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]["msg"].as_str().unwrap().contains("process.cwd"),
        "{errors:?}"
    );
    c.assert_no_leftovers();
    // In an exec'd process: a program that does not exist.
    let mut b = Bundle::new().unwrap();
    b.args(&["sleep", "600"]);
    let mut c = Container::new("execlog", &b);
    c.create().ok();
    c.start().ok();
    let log = c.scratch().join("exec.log");
    let out = c.exec(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "exec",
        &c.id,
        "/no/such/program",
    ]);
    assert_eq!(out.code(), 255, "{out}");
    let errors = json_errors(&log);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]["msg"]
            .as_str()
            .unwrap()
            .contains("find executable"),
        "{errors:?}"
    );
    c.delete_force().ok();
    c.assert_no_leftovers();
}

/// A sysctl outside the container's namespaces would change the host: refused before
/// anything exists (runc refuses it too).
#[test]
fn a_host_wide_sysctl_is_refused() {
    for (key, ns_less) in [("vm.swappiness", false), ("net.ipv4.ip_forward", true)] {
        let mut b = bundle_sh("true");
        b.edit(|s| {
            s["linux"]["sysctl"] = serde_json::json!({ key: "1" });
            if ns_less {
                let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
                ns.retain(|n| n["type"] != "network");
            }
        });
        let mut c = Container::new("sysctlhost", &b);
        assert_one_error_naming(c.create(), &["linux.sysctl", key]);
        c.assert_no_leftovers();
    }
}
