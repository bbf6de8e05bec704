//! The runtime under real engines (their own roots, config and socket in a temp dir, never
//! the host's networking): podman with its default seccomp profile, docker through
//! `--add-runtime`, which puts a prestart hook (libnetwork-setkey) in every bundle.

use integration::engines::{Dockerd, Podman, text};

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
