//! What engines do to a running container: `pause`/`resume`, `ps`, `update`, `events`,
//! observed from the container's cgroup files and from inside it.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use integration::busybox::Bundle;
use integration::cgroupfs;
use integration::runtime::Container;
use serde_json::Value;

const MIB: i64 = 1 << 20;

/// A container counting in /tmp/count every 50 ms.
fn counting(name: &str) -> (Bundle, Container) {
    let mut b = Bundle::new().unwrap();
    b.sh("i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done");
    let mut c = Container::new(name, &b);
    c.create().ok();
    c.start().ok();
    (b, c)
}

fn count(b: &Bundle) -> u64 {
    std::fs::read_to_string(b.rootfs().join("tmp/count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until `f` holds (bounded): no fixed sleeps standing in for a condition.
fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(20), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pause_freezes_every_process_and_resume_thaws_them() {
    let (b, c) = counting("pause");
    wait_for("the counter runs", || count(&b) > 2);
    c.exec(&["pause", &c.id]).ok();
    assert_eq!(c.status(), "paused");
    let list = c.exec(&["list", "--format", "json"]).ok();
    assert!(list.stdout.contains("\"paused\""), "{list}");
    // The cgroup says frozen; the counter does not move (read twice across a few ticks).
    let frozen =
        cgroupfs::read(c.pid(), "freezer", &["freezer.state", "cgroup.freeze"]).expect("freezer");
    assert!(frozen.1 == "FROZEN" || frozen.1 == "1", "{frozen:?}");
    let at_pause = count(&b);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(&b), at_pause, "a paused container kept counting");
    // exec is refused unless asked for; pausing twice is an error.
    let out = c.exec(&["exec", &c.id, "true"]);
    assert_eq!(out.code(), 255, "{out}");
    assert!(out.stderr.contains("--ignore-paused"), "{out}");
    let out = c.exec(&["pause", &c.id]).failed();
    assert_eq!(out.error_lines().len(), 1, "{out}");
    c.exec(&["resume", &c.id]).ok();
    assert_eq!(c.status(), "running");
    wait_for("the counter moves again", || count(&b) > at_pause);
    let out = c.exec(&["resume", &c.id]).failed();
    assert!(out.stderr.contains("not paused"), "{out}");
    // A paused container is deleted by --force (thawed so SIGKILL lands).
    c.exec(&["pause", &c.id]).ok();
    c.delete_force().ok();
    c.assert_no_leftovers();
}

#[test]
fn ps_lists_the_containers_processes() {
    let (_b, c) = counting("ps");
    let out = c.exec(&["ps", "--format", "json", &c.id]).ok();
    let pids: Vec<i32> = serde_json::from_str(out.stdout.trim()).expect("a JSON array");
    assert!(pids.contains(&c.pid()), "{out}");
    let out = c.exec(&["ps", &c.id]).ok();
    let mut lines = out.stdout.lines();
    assert!(lines.next().unwrap().contains("PID"), "{out}");
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty() && rows.len() <= pids.len(), "{out}");
    assert!(
        rows.iter()
            .any(|r| r.split_whitespace().nth(1) == Some(&c.pid().to_string())),
        "{out}"
    );
    let out = c.exec(&["ps", &c.id, "-o", "pid,comm"]).ok();
    assert!(
        out.stdout.lines().next().unwrap().contains("COMMAND"),
        "{out}"
    );
    c.delete_force().ok();
    let out = c.exec(&["ps", &c.id]).failed();
    assert_eq!(out.error_lines().len(), 1, "{out}");
    c.assert_no_leftovers();
}

#[test]
fn update_changes_the_limits_of_a_running_container() {
    let mut b = Bundle::new().unwrap();
    b.memory_limit(128 * MIB).args(&["sleep", "600"]);
    let mut c = Container::new("update", &b);
    c.create().ok();
    c.start().ok();
    let read = |ctl: &str, files: &[&str]| cgroupfs::read(c.pid(), ctl, files).unwrap().1;
    c.exec(&["update", "--memory", "64m", "--pids-limit", "7", &c.id])
        .ok();
    assert_eq!(
        read("memory", &["memory.limit_in_bytes", "memory.max"]),
        (64 * MIB).to_string()
    );
    assert_eq!(read("pids", &["pids.max"]), "7");
    // A linux.resources document, from a file and from standard input.
    let doc = c.scratch().join("resources.json");
    std::fs::write(&doc, r#"{"memory": {"limit": 50331648}}"#).unwrap();
    c.exec(&["update", "--resources", doc.to_str().unwrap(), &c.id])
        .ok();
    assert_eq!(
        read("memory", &["memory.limit_in_bytes", "memory.max"]),
        (48 * MIB).to_string()
    );
    let mut cmd = c.command();
    cmd.args(["update", "-r", "-", &c.id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"pids": {"limit": 9}}"#)
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(read("pids", &["pids.max"]), "9");
    // The new pids limit holds inside: 20 forks cannot all succeed.
    let out = c.exec(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "sh -c 'i=0; while [ $i -lt 20 ]; do sleep 30 & i=$((i+1)); done' 2>/dev/null; echo loop $?; kill -KILL -1 2>/dev/null; true",
    ]);
    assert!(!out.stdout.contains("loop 0"), "{out}");
    // Refused values: one line, the container runs on with its limits.
    for (args, want) in [
        (vec!["--memory", "lots"], "--memory"),
        (vec!["--cpuset-cpus", "999"], "cpuset.cpus=999"),
    ] {
        let mut all = vec!["update"];
        all.extend(args);
        all.push(&c.id);
        let out = c.exec(&all).failed();
        assert_eq!(out.error_lines().len(), 1, "{out}");
        assert!(out.stderr.contains(want), "{want}: {out}");
    }
    assert_eq!(c.status(), "running");
    assert_eq!(read("pids", &["pids.max"]), "9");
    c.delete_force().ok();
    c.assert_no_leftovers();
}

#[test]
fn events_reports_stats_and_an_oom_kill() {
    let mut b = Bundle::new().unwrap();
    b.memory_limit(32 * MIB).args(&["sleep", "600"]);
    let mut c = Container::new("events", &b);
    c.create().ok();
    c.start().ok();
    let out = c.exec(&["events", "--stats", &c.id]).ok();
    let ev: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON event");
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], Value::String(c.id.clone()));
    assert!(ev["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{ev}");
    assert!(
        ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{ev}"
    );
    // The stream: an OOM kill in the container shows up, and it ends with the container.
    let mut cmd = c.command();
    cmd.args(["events", "--interval", "1s", &c.id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let stream = cmd.spawn().unwrap();
    let hog = c.exec(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        r#"x=$(head -c 100000000 /dev/zero | tr "\0" a)"#,
    ]);
    assert_eq!(hog.code(), 137, "the hog was not OOM-killed: {hog}");
    std::thread::sleep(Duration::from_millis(500));
    c.kill("KILL").ok();
    c.wait_stopped();
    let out = stream.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let kinds: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].to_string())
        .collect();
    assert!(kinds.iter().any(|k| k == "\"oom\""), "{text}");
    assert!(kinds.iter().any(|k| k == "\"stats\""), "{text}");
    c.delete().ok();
    c.assert_no_leftovers();
}

#[test]
fn bad_input_to_running_commands_is_one_line_and_changes_nothing() {
    let (_b, c) = counting("runbad");
    let process = c.scratch().join("process.json");
    std::fs::write(&process, "{ not json").unwrap();
    let sock = c.scratch().join("no-such.sock");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["exec", "-p", process.to_str().unwrap(), &c.id],
            "--process",
        ),
        (
            vec![
                "exec",
                "-t",
                "--console-socket",
                sock.to_str().unwrap(),
                &c.id,
                "sh",
            ],
            "--console-socket",
        ),
        (vec!["update", "--memory", "5x", &c.id], "--memory"),
        (vec!["resume", &c.id], "not paused"),
        (vec!["events", "--interval", "0s", &c.id], "--interval"),
        (vec!["ps", "--format", "json", &c.id, "-o", "pid"], "json"),
    ];
    for (args, want) in cases {
        let out = c.exec(&args);
        assert!(!out.success(), "{args:?}: {out}");
        assert_eq!(out.error_lines().len(), 1, "{args:?}: {out}");
        assert!(out.stderr.contains(want), "{want}: {out}");
        assert_eq!(c.status(), "running", "{args:?} changed the container");
    }
    // On a stopped container: refused, nothing made.
    c.kill("KILL").ok();
    c.wait_stopped();
    for args in [
        vec!["pause", &c.id],
        vec!["resume", &c.id],
        vec!["update", "--memory", "64m", &c.id],
        vec!["ps", &c.id],
        vec!["events", "--stats", &c.id],
    ] {
        let out = c.exec(&args);
        assert!(!out.success(), "{args:?}: {out}");
        assert_eq!(out.error_lines().len(), 1, "{args:?}: {out}");
    }
    c.delete().ok();
    c.assert_no_leftovers();
}
