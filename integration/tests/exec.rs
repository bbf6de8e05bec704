//! `exec`: a process in a running container, observed from inside it. It shares every
//! namespace, the cgroup and the seccomp profile of the container's init; runc's flags shape
//! it; its exit status is the command's, 255 when it cannot start; and no descriptor of the
//! host reaches it (CVE-2024-21626 through exec's cwd and program).

use std::fs;
use std::path::Path;

use integration::busybox::{Bundle, busybox_binary};
use integration::runtime::{Container, Out, hold_host_dir};
use serde_json::json;

/// A running container (`sleep 600`) with a seccomp profile denying mkdir with EACCES.
fn running(name: &str) -> (Bundle, Container) {
    let mut b = Bundle::new().unwrap();
    b.hostname("exechost")
        .edit(|s| {
            s["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
            })
        })
        .args(&["sleep", "600"]);
    let mut c = Container::new(name, &b);
    c.create().ok();
    c.start().ok();
    (b, c)
}

fn exec(c: &Container, args: &[&str]) -> Out {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    c.exec(&all)
}

#[test]
fn exec_joins_the_containers_namespaces_cgroup_and_seccomp_profile() {
    let (_b, c) = running("execjoin");
    let out = exec(
        &c,
        &[
            &c.id,
            "sh",
            "-c",
            "echo $$; hostname; \
             [ $(readlink /proc/self/ns/mnt) = $(readlink /proc/1/ns/mnt) ] && echo same-mnt; \
             [ $(readlink /proc/self/ns/net) = $(readlink /proc/1/ns/net) ] && echo same-net; \
             [ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/1/cgroup)\" ] && echo same-cgroup; \
             grep Seccomp: /proc/self/status; mkdir /tmp/x 2>&1; exit 7",
        ],
    );
    assert_eq!(out.code(), 7, "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_ne!(lines[0], "1", "{out}");
    assert_eq!(
        lines[1..6],
        [
            "exechost",
            "same-mnt",
            "same-net",
            "same-cgroup",
            "Seccomp:\t2"
        ],
        "{out}"
    );
    assert!(out.stdout.contains("Permission denied"), "{out}");
    c.delete_force().ok();
    c.assert_no_leftovers();
}

#[test]
fn exec_flags_shape_the_process() {
    let (b, c) = running("execflags");
    fs::create_dir_all(b.rootfs().join("work")).unwrap();
    let out = exec(
        &c,
        &[
            "-e",
            "FOO=bar",
            "--cwd",
            "/work",
            "-u",
            "65534:65534",
            "-g",
            "100",
            "--no-new-privs",
            "--cap",
            "CAP_NET_RAW",
            &c.id,
            "sh",
            "-c",
            "echo $FOO; pwd; id -u; id -g; id -G; grep -E 'NoNewPrivs|CapBnd' /proc/self/status",
        ],
    )
    .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..4], ["bar", "/work", "65534", "65534"], "{out}");
    assert!(lines[4].split(' ').any(|g| g == "100"), "{out}");
    assert!(out.stdout.contains("NoNewPrivs:\t1"), "{out}");
    let bnd = lines
        .iter()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    assert_ne!(bnd & (1 << 13), 0, "CAP_NET_RAW not added: {out}");
    // A process.json replaces the command line.
    let process = c.scratch().join("process.json");
    fs::write(
        &process,
        json!({"args": ["sh", "-c", "echo from-json $X"], "env": ["X=1"], "cwd": "/",
               "user": {"uid": 0, "gid": 0}})
        .to_string(),
    )
    .unwrap();
    let out = exec(&c, &["-p", process.to_str().unwrap(), &c.id]).ok();
    assert_eq!(out.stdout, "from-json 1\n", "{out}");
    c.delete_force().ok();
    c.assert_no_leftovers();
}

#[test]
fn a_detached_exec_runs_in_the_container_and_writes_its_pid() {
    let (_b, c) = running("execdetach");
    let pidfile = c.scratch().join("exec.pid");
    exec(
        &c,
        &[
            "-d",
            "--pid-file",
            pidfile.to_str().unwrap(),
            &c.id,
            "sleep",
            "600",
        ],
    )
    .ok();
    let pid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with("sleep\x00600"), "{cmdline:?}");
    let init_cgroup = fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).unwrap();
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        init_cgroup
    );
    // kill --all reaches it; delete --force leaves nothing.
    c.delete_force().ok();
    assert!(
        !Path::new(&format!("/proc/{pid}/cmdline")).exists() || {
            let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            s.contains(") Z ")
        }
    );
    c.assert_no_leftovers();
}

#[test]
fn exec_failures_exit_255_with_one_line() {
    let (_b, c) = running("execfail");
    let cases: [(&[&str], &[&str], &str); 5] = [
        (&[], &["/no/such/program"], "no such executable file"),
        (
            &["--cwd", "/no/such/dir"],
            &["true"],
            "process.cwd /no/such/dir",
        ),
        (&["-u", "root"], &["true"], "the uid must be a number"),
        (&["--cap", "CAP_NOPE"], &["true"], "--cap CAP_NOPE"),
        (&[], &[], "a command is required"),
    ];
    for (flags, command, want) in cases {
        let mut all = vec!["exec"];
        all.extend_from_slice(flags);
        all.push(&c.id);
        all.extend_from_slice(command);
        let out = c.exec(&all);
        assert_eq!(out.code(), 255, "{all:?}: {out}");
        assert_eq!(out.error_lines().len(), 1, "{all:?}: {out}");
        assert!(out.stderr.contains(want), "{want}: {out}");
    }
    // Nothing of the failed attempts is left in the container: only its init.
    let procs = fs::read_to_string(
        integration::cgroupfs::cgroup_dir(c.pid(), "pids")
            .unwrap()
            .join("cgroup.procs"),
    )
    .unwrap();
    assert_eq!(procs.lines().count(), 1, "{procs}");
    c.delete_force().ok();
    // Stopped (gone) and never-started containers are refused too.
    let out = c.exec(&["exec", &c.id, "true"]);
    assert_eq!(out.code(), 255, "{out}");
    assert!(out.stderr.contains("does not exist"), "{out}");
    let mut b = Bundle::new().unwrap();
    b.args(&["sleep", "600"]);
    let mut created = Container::new("execcreated", &b);
    created.create().ok();
    let out = created.exec(&["exec", &created.id, "true"]);
    assert_eq!(out.code(), 255, "{out}");
    assert!(out.stderr.contains("has not started"), "{out}");
    created.delete_force().ok();
    created.assert_no_leftovers();
    c.assert_no_leftovers();
}

#[test]
fn exec_never_reaches_the_host_through_a_descriptor() {
    let (_b, c) = running("execfds");
    let host = tempfile::tempdir().unwrap();
    let host_sh = host.path().join("sh");
    fs::copy(busybox_binary(), &host_sh).unwrap();
    fs::write(host.path().join("HOST-SECRET"), "host secret\n").unwrap();
    let before = fs::read(&host_sh).unwrap();
    for holding in [false, true] {
        for fd in 3..=40 {
            // The program through a descriptor.
            let program = format!(
                "/proc/self/fd/{fd}/../../../../../../../..{}",
                host_sh.display()
            );
            let mut cmd = c.command();
            cmd.args(["exec", &c.id, &program, "-c", "echo ESCAPED"]);
            if holding {
                hold_host_dir(&mut cmd, host.path(), 3..=20);
            }
            let out = c.exec_cmd(cmd);
            assert!(!out.stdout.contains("ESCAPED"), "escaped: {out}");
            // The cwd through a descriptor.
            let mut cmd = c.command();
            let cwd = format!("/proc/self/fd/{fd}");
            cmd.args([
                "exec",
                "--cwd",
                &cwd,
                &c.id,
                "sh",
                "-c",
                "cat HOST-SECRET ../HOST-SECRET 2>/dev/null; ls",
            ]);
            cmd.current_dir(host.path());
            if holding {
                hold_host_dir(&mut cmd, host.path(), 3..=20);
            }
            let out = c.exec_cmd(cmd);
            assert!(
                !out.stdout.contains("host secret") && !out.stdout.contains("HOST-SECRET"),
                "escaped: {out}"
            );
        }
    }
    assert!(
        fs::read(&host_sh).unwrap() == before,
        "the host file was written"
    );
    c.delete_force().ok();
    c.assert_no_leftovers();
}
