//! The runtime under real engines (their own roots, config and socket in a temp dir, never
//! the host's networking): podman with its default seccomp profile, docker through
//! `--add-runtime`, which puts a prestart hook (libnetwork-setkey) in every bundle.

use integration::engines::{Containerd, Dockerd, Podman, runtime_path, text};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn podman_runs_the_runtime_with_its_default_seccomp_profile() {
    let podman = Podman::start();
    let out = podman.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/busybox:test",
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; echo hello; exit 3",
    ]);
    // The container's exit status is podman's.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let so = stdout(&out);
    assert!(so.contains("Seccomp:\t2"), "{}", text(&out));
    assert!(so.contains("hello"), "{}", text(&out));
}

#[test]
fn docker_runs_the_runtime_with_its_prestart_hook_and_stops_it() {
    let docker = Dockerd::start();
    let out = docker.docker(&[
        "run",
        "--rm",
        "--runtime",
        "mocker",
        "--network",
        "none",
        "busybox:test",
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; echo hello from docker",
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out), docker.log());
    let so = stdout(&out);
    assert!(so.contains("Seccomp:\t2"), "{}", text(&out));
    assert!(so.contains("hello from docker"), "{}", text(&out));
    // Detached with a memory limit, then stopped and removed.
    let out = docker.docker(&[
        "run",
        "-d",
        "--runtime",
        "mocker",
        "--network",
        "none",
        "--memory",
        "64m",
        "busybox:test",
        "sleep",
        "60",
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out), docker.log());
    let id = stdout(&out).trim().to_string();
    let state = docker.docker(&[
        "inspect",
        "-f",
        "{{.State.Running}} {{.HostConfig.Runtime}}",
        &id,
    ]);
    assert_eq!(stdout(&state).trim(), "true mocker", "{}", text(&state));
    let stop = docker.docker(&["stop", "-t", "1", &id]);
    assert!(stop.status.success(), "{}", text(&stop));
    let rm = docker.docker(&["rm", &id]);
    assert!(rm.status.success(), "{}", text(&rm));
}

#[test]
fn podman_exec_into_a_running_container() {
    let podman = Podman::start();
    let out = podman.run(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "execme",
        "localhost/busybox:test",
        "sleep",
        "600",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = podman.run(&[
        "exec",
        "-e",
        "FOO=bar",
        "execme",
        "sh",
        "-c",
        "echo $FOO; grep Seccomp: /proc/self/status; cat /proc/1/cmdline; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let so = stdout(&out);
    assert!(
        so.contains("bar") && so.contains("Seccomp:\t2"),
        "{}",
        text(&out)
    );
    assert!(so.contains("sleep"), "{}", text(&out));
    let out = podman.run(&["rm", "--force", "--time", "1", "execme"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn docker_exec_into_a_running_container() {
    let docker = Dockerd::start();
    let out = docker.docker(&[
        "run",
        "-d",
        "--runtime",
        "mocker",
        "--network",
        "none",
        "busybox:test",
        "sleep",
        "600",
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out), docker.log());
    let id = stdout(&out).trim().to_string();
    let out = docker.docker(&[
        "exec",
        &id,
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline; exit 5",
    ]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}\n{}",
        text(&out),
        docker.log()
    );
    assert!(stdout(&out).contains("sleep"), "{}", text(&out));
    let rm = docker.docker(&["rm", "--force", &id]);
    assert!(rm.status.success(), "{}", text(&rm));
}

#[test]
fn containerd_runs_execs_pauses_and_removes_through_ctr() {
    let ctd = Containerd::start();
    let runtime = runtime_path();
    let runtime = runtime.to_str().unwrap();
    let rootfs = ctd.rootfs();
    let rootfs = rootfs.to_str().unwrap();
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        runtime,
        "--rootfs",
        rootfs,
        "ctr-once",
        "sh",
        "-c",
        "echo hello from ctr; exit 6",
    ]);
    assert_eq!(out.status.code(), Some(6), "{}\n{}", text(&out), ctd.log());
    assert!(stdout(&out).contains("hello from ctr"), "{}", text(&out));
    let out = ctd.ctr(&[
        "run",
        "-d",
        "--runc-binary",
        runtime,
        "--rootfs",
        rootfs,
        "ctr-bg",
        "sleep",
        "600",
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out), ctd.log());
    let out = ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "ctr-bg",
        "sh",
        "-c",
        "cat /proc/1/cmdline; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}\n{}", text(&out), ctd.log());
    assert!(stdout(&out).contains("sleep"), "{}", text(&out));
    let status = |ctd: &Containerd| stdout(&ctd.ctr(&["task", "ls"]));
    assert!(ctd.ctr(&["task", "pause", "ctr-bg"]).status.success());
    assert!(status(&ctd).contains("PAUSED"), "{}", status(&ctd));
    assert!(ctd.ctr(&["task", "resume", "ctr-bg"]).status.success());
    assert!(status(&ctd).contains("RUNNING"), "{}", status(&ctd));
    let metrics = ctd.ctr(&["task", "metrics", "ctr-bg"]);
    assert!(stdout(&metrics).contains("memory"), "{}", text(&metrics));
    assert!(
        ctd.ctr(&["task", "kill", "-s", "KILL", "ctr-bg"])
            .status
            .success()
    );
    let t0 = std::time::Instant::now();
    while !ctd.ctr(&["task", "rm", "ctr-bg"]).status.success() {
        assert!(t0.elapsed() < std::time::Duration::from_secs(20), "task rm");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ctd.ctr(&["container", "rm", "ctr-bg"]).status.success());
}

#[test]
fn podman_pause_top_limits_stop_and_kill() {
    let podman = Podman::start();
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", text(&out));
        stdout(&out)
    };
    ok(podman.run(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "lim",
        "--memory",
        "64m",
        "--pids-limit",
        "33",
        "localhost/busybox:test",
        "sleep",
        "600",
    ]));
    let limits = ok(podman.run(&[
        "exec",
        "lim",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max \
         /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; true",
    ]));
    assert!(limits.contains(&(64 << 20).to_string()), "{limits}");
    assert!(limits.contains("33"), "{limits}");
    ok(podman.run(&["pause", "lim"]));
    let state = ok(podman.run(&["inspect", "-f", "{{.State.Status}}", "lim"]));
    assert_eq!(state.trim(), "paused");
    ok(podman.run(&["unpause", "lim"]));
    let top = ok(podman.run(&["top", "lim"]));
    assert!(top.contains("sleep"), "{top}");
    ok(podman.run(&["stop", "--time", "1", "lim"]));
    let state = ok(podman.run(&["inspect", "-f", "{{.State.Status}}", "lim"]));
    assert_eq!(state.trim(), "exited");
    ok(podman.run(&["rm", "lim"]));
    ok(podman.run(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "killme",
        "localhost/busybox:test",
        "sleep",
        "600",
    ]));
    ok(podman.run(&["kill", "killme"]));
    ok(podman.run(&["rm", "--force", "killme"]));
}

#[test]
fn podman_exec_it_at_a_terminal() {
    let podman = Podman::start();
    let out = podman.run(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "tty",
        "localhost/busybox:test",
        "sleep",
        "600",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let cmd = podman.command(&["exec", "-it", "tty", "sh"]);
    let (shown, code, restored) =
        integration::terminal::at_a_terminal(cmd, "tty; echo typed-$((6*7)); exit 5\n");
    assert_eq!(code, 5, "{shown:?}");
    assert!(
        shown.contains("/dev/pts/") && shown.contains("typed-42"),
        "{shown:?}"
    );
    assert!(restored, "the terminal was left changed");
    let out = podman.run(&["rm", "--force", "--time", "1", "tty"]);
    assert!(out.status.success(), "{}", text(&out));
}
