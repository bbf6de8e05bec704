//! The container lifecycle end to end, in real busybox containers (root required).
//! Runtime under test: `mocker-runtime` next to this binary, or `$MOCKER_RUNTIME` (e.g. runc).

use std::fs;
use std::time::Duration;

use integration::busybox::{Bundle, rootfs_entries};
use integration::leftovers::{fd_count, mount_count};
use integration::runtime::Container;

fn bundle_sh(script: &str) -> Bundle {
    let mut b = Bundle::new().expect("bundle");
    b.sh(script);
    b
}

/// `run` of the bundle; asserts the runtime removed everything afterwards.
#[track_caller]
fn run(name: &str, b: &Bundle) -> integration::runtime::Out {
    let mut c = Container::new(name, b);
    let out = c.run();
    c.assert_no_leftovers();
    out
}

#[test]
fn sh_is_pid_1() {
    let b = bundle_sh("echo $$");
    let out = run("pid1", &b).ok();
    assert_eq!(out.stdout, "1\n", "{out}");
}

#[test]
fn hostname_is_configured() {
    let mut b = bundle_sh("hostname");
    b.hostname("box-under-test");
    let out = run("hostname", &b).ok();
    assert_eq!(out.stdout.trim(), "box-under-test", "{out}");
}

/// Namespaces given by path are joined, not created, and a hostname may be set in a joined
/// UTS namespace (as runc does): it changes that namespace, never the host's.
#[test]
fn namespaces_given_by_path_are_joined() {
    let mut holder = std::process::Command::new("unshare")
        .args(["--uts", "--ipc", "--net", "sleep", "60"])
        .spawn()
        .expect("spawn unshare (util-linux)");
    let ns = |kind: &str| format!("/proc/{}/ns/{kind}", holder.id());
    // unshare execs sleep once the namespaces exist.
    let host_uts = fs::read_link("/proc/self/ns/uts").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while fs::read_link(ns("uts")).ok().as_ref() == Some(&host_uts)
        || fs::read_link(format!("/proc/{}/exe", holder.id()))
            .is_ok_and(|e| !e.to_string_lossy().contains("sleep"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "unshare never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut b = bundle_sh("hostname; for n in uts ipc net; do readlink /proc/self/ns/$n; done");
    b.namespaces(&["pid", "mount"])
        .add_namespace("uts", Some(&ns("uts")))
        .add_namespace("ipc", Some(&ns("ipc")))
        .add_namespace("network", Some(&ns("net")))
        .hostname("joined-uts");
    let out = run("nspath", &b).ok();
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("joined-uts"), "{out}");
    for kind in ["uts", "ipc", "net"] {
        let want = fs::read_link(ns(kind)).unwrap();
        assert_eq!(
            lines.next(),
            want.to_str(),
            "{kind} namespace not joined: {out}"
        );
    }
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(
        host_name.trim(),
        "joined-uts",
        "the host's hostname changed"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn only_the_rootfs_is_visible() {
    let host_only = tempfile::NamedTempFile::new().unwrap();
    let host_path = host_only.path().to_str().unwrap().to_string();
    assert!(
        !host_path.starts_with("/tmp/mocker-bundle-"),
        "host file must not be inside the bundle"
    );
    let b = bundle_sh(&format!(
        "ls /; test -e {host_path} && echo HOST-FILE-VISIBLE; cat /etc/mocker-rootfs"
    ));
    let out = run("rootfs", &b).ok();
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.pop(), Some("busybox test rootfs"), "{out}");
    assert_eq!(lines, rootfs_entries(), "{out}");
    assert!(!out.stdout.contains("HOST-FILE-VISIBLE"), "{out}");
}

#[test]
fn proc_shows_only_the_containers_processes() {
    let b = bundle_sh("sleep 5 & ls /proc | grep -E '^[0-9]+$'; kill %1");
    let out = run("proc", &b).ok();
    let pids: Vec<u32> = out.stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert!(pids.contains(&1), "{out}");
    assert!(pids.len() <= 5, "too many processes: {out}");
    assert!(pids.iter().all(|p| *p < 20), "host pids visible: {out}");
}

#[test]
fn env_cwd_user_groups_umask_applied() {
    let mut b =
        bundle_sh("echo $FOO; pwd; id -u; id -g; id -G; umask; touch f 2>&1 || echo touch-failed");
    b.add_env("FOO=bar baz")
        .cwd("/tmp")
        .user(65534, 65534, &[100])
        .umask(0o027);
    let out = run("user", &b).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "bar baz", "{out}");
    assert_eq!(lines[1], "/tmp", "{out}");
    assert_eq!(lines[2], "65534", "{out}");
    assert_eq!(lines[3], "65534", "{out}");
    let mut groups: Vec<&str> = lines[4].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["100", "65534"], "{out}");
    assert_eq!(lines[5], "0027", "{out}");
    // /tmp is 1777: nobody may create files there.
    assert!(!out.stdout.contains("touch-failed"), "{out}");
}

#[test]
fn cwd_is_created_when_missing() {
    let mut b = bundle_sh("pwd");
    b.cwd("/work/dir");
    let out = run("cwdmk", &b).ok();
    assert_eq!(out.stdout, "/work/dir\n", "{out}");
}

#[test]
fn sigterm_reaches_a_trap_and_exit_code_is_passed_through() {
    let b = bundle_sh(r#"trap "echo got; exit 3" TERM; echo ready; while :; do sleep 0.1; done"#);
    let mut c = Container::new("trap", &b);
    let bg = c.spawn_run(&[]);
    c.wait_output("ready");
    c.kill("TERM").ok();
    let out = bg.wait();
    assert_eq!(out.code(), 3, "{out}");
    assert_eq!(out.stdout, "ready\ngot\n", "{out}");
    c.assert_no_leftovers();
}

#[test]
fn kill_by_name_and_number_and_default_term() {
    let b = bundle_sh(
        r#"trap "echo usr1" USR1; trap "echo term; exit 4" 15; echo ready; while :; do sleep 0.05; done"#,
    );
    let mut c = Container::new("killnames", &b);
    c.create().ok();
    c.start().ok();
    c.wait_output("ready");
    let mut expect = String::from("ready\n");
    for sig in ["USR1", "SIGUSR1", "10"] {
        c.kill(sig).ok();
        expect.push_str("usr1\n");
        c.wait_output(&expect);
    }
    // No signal argument: SIGTERM.
    c.exec(&["kill", &c.id]).ok();
    c.wait_stopped();
    assert_eq!(c.stdout(), expect + "term\n");
    c.delete().ok();
    c.assert_no_leftovers();
}

#[test]
fn kill_all_signals_every_process() {
    // The child reports TERM and WINCH. Signals are sent in order and its shell runs pending
    // traps in signal-number order (TERM 15 before WINCH 28), so had the init-only TERM
    // reached it, "child-term" would be printed before "child-winch": an ordering, not a
    // pause, proves it did not.
    let b = bundle_sh(
        r#"sh -c 'trap "echo child-term" TERM; trap "echo child-winch" WINCH; while :; do sleep 0.05; done' &
           trap "echo init-term" TERM; echo ready; while :; do sleep 0.05; done"#,
    );
    let mut c = Container::new("killall", &b);
    c.create().ok();
    c.start().ok();
    c.wait_output("ready");
    // Without --all only init gets the signal.
    c.kill("TERM").ok();
    c.wait_output("init-term");
    c.kill_all("WINCH").ok();
    c.wait_output("child-winch");
    assert!(!c.stdout().contains("child-term"), "{:?}", c.logs());
    c.kill_all("TERM").ok();
    c.wait_output("child-term");
    c.kill_all("KILL").ok();
    c.wait_stopped();
    c.delete().ok();
    c.assert_no_leftovers();
}

#[test]
fn state_goes_created_running_stopped() {
    // Runs until the test says so (a file appears in its rootfs): "running" is not a race.
    let b = bundle_sh("while [ ! -e /stop ]; do sleep 0.02; done");
    let mut c = Container::new("state", &b);
    c.create().ok();
    let st = c.state();
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], c.id.as_str());
    assert_eq!(st["bundle"], b.path().to_str().unwrap(), "{st}");
    assert!(st["ociVersion"].is_string(), "{st}");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0, "{st}");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "init {pid} not alive while created"
    );
    c.start().ok();
    let st = c.state();
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"].as_i64().unwrap(), pid, "{st}");
    std::fs::write(b.rootfs().join("stop"), "").unwrap();
    c.wait_stopped();
    let st = c.state();
    assert_eq!(st["status"], "stopped", "{st}");
    c.delete().ok();
    assert!(!c.state_out().success(), "state after delete must fail");
    c.assert_no_leftovers();
}

#[test]
fn run_passes_exit_codes_through() {
    for code in [0, 1, 42] {
        let b = bundle_sh(&format!("exit {code}"));
        let out = run("exit", &b);
        assert_eq!(out.code(), code, "{out}");
    }
}

#[test]
fn run_exits_137_when_the_container_is_sigkilled() {
    let b = bundle_sh("echo ready; while :; do sleep 0.05; done");
    let mut c = Container::new("sigkill", &b);
    let bg = c.spawn_run(&[]);
    c.wait_output("ready");
    c.kill("KILL").ok();
    let out = bg.wait();
    assert_eq!(out.code(), 137, "{out}");
    c.assert_no_leftovers();
}

#[test]
fn run_detached_returns_while_the_container_runs() {
    let b = bundle_sh("echo ready; exec sleep 100");
    let mut c = Container::new("detach", &b);
    let pid_file = c.scratch().join("pid");
    let out = c.run_with(&["-d", "--pid-file", pid_file.to_str().unwrap()]);
    assert!(out.success(), "{out}");
    assert_eq!(c.status(), "running");
    let pid = c.pid();
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    c.wait_output("ready");
    c.kill("KILL").ok();
    c.wait_stopped();
    c.delete().ok();
    c.assert_no_leftovers();
}

#[test]
fn create_writes_the_pid_file() {
    let b = bundle_sh("true");
    let mut c = Container::new("pidfile", &b);
    let pid_file = c.scratch().join("sub.pid");
    c.create_with(&["--pid-file", pid_file.to_str().unwrap()])
        .ok();
    let text = fs::read_to_string(&pid_file).unwrap();
    assert_eq!(text.trim(), c.pid().to_string());
    c.delete_force().ok();
    c.assert_no_leftovers();
}

/// The pid file is written after the init exists: failing there must still take the init,
/// its cgroup and the state down.
#[test]
fn an_unwritable_pid_file_fails_create_and_leaves_nothing() {
    let b = bundle_sh("true");
    let mut c = Container::new("badpidfile", &b);
    let pid_file = c.scratch().join("no/such/dir/x.pid");
    let out = c
        .create_with(&["--pid-file", pid_file.to_str().unwrap()])
        .failed();
    let lines = out.error_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("x.pid"), "{out}");
    assert!(
        !c.state_out().success(),
        "no container after a failed create"
    );
    c.assert_no_leftovers();
}

#[test]
fn list_table_quiet_and_json() {
    let b = bundle_sh("true");
    let mut c = Container::new("list", &b);
    let empty = c.exec(&["list", "-q"]).ok();
    assert_eq!(empty.stdout.trim(), "", "{empty}");
    c.create().ok();
    let pid = c.pid();
    let table = c.exec(&["list"]).ok();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    for col in ["ID", "PID", "STATUS", "BUNDLE"] {
        assert!(lines[0].contains(col), "{table}");
    }
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], c.id, "{table}");
    assert_eq!(row[1], pid.to_string(), "{table}");
    assert_eq!(row[2], "created", "{table}");
    assert!(lines[1].contains(b.path().to_str().unwrap()), "{table}");
    let quiet = c.exec(&["list", "-q"]).ok();
    assert_eq!(quiet.stdout, format!("{}\n", c.id), "{quiet}");
    let json = c.exec(&["list", "--format", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("list json");
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 1, "{json}");
    assert_eq!(arr[0]["id"], c.id.as_str());
    assert_eq!(arr[0]["status"], "created");
    assert_eq!(arr[0]["pid"].as_i64(), Some(pid as i64));
    assert_eq!(arr[0]["bundle"], b.path().to_str().unwrap());
    c.delete_force().ok();
    c.assert_no_leftovers();
}

#[test]
fn tmpfs_and_readonly_bind_mounts() {
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("hello"), "from host\n").unwrap();
    let mut b = bundle_sh(
        "grep ' /data ' /proc/self/mounts | cut -d' ' -f3; echo x > /data/f && cat /data/f; \
         cat /ro/hello; touch /ro/new 2>/dev/null && echo RO-WRITABLE; echo end",
    );
    b.mount("/data", "tmpfs", "tmpfs", &["nosuid", "size=1m"])
        .bind(host.path(), "/ro", true);
    let out = run("mounts", &b).ok();
    assert_eq!(out.stdout, "tmpfs\nx\nfrom host\nend\n", "{out}");
    assert!(!host.path().join("new").exists());
}

#[test]
fn readonly_root_rejects_writes() {
    let mut b = bundle_sh("touch /newfile 2>/dev/null && echo ROOT-WRITABLE; echo end");
    b.readonly_root(true);
    let out = run("roroot", &b).ok();
    assert_eq!(out.stdout, "end\n", "{out}");
    assert!(!b.rootfs().join("newfile").exists());
}

#[test]
fn masked_and_readonly_paths() {
    // /proc/kcore does not exist on every kernel (not on this host): mask what exists,
    // plus a file and a directory of the rootfs.
    let mut b = bundle_sh(
        "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; wc -c < /etc/secret; ls /secrets | wc -l; \
         grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1; \
         touch /etc/ro-dir/x 2>/dev/null && echo RO-WRITABLE; echo end",
    );
    fs::write(b.rootfs().join("etc/secret"), "password\n").unwrap();
    fs::create_dir(b.rootfs().join("secrets")).unwrap();
    fs::write(b.rootfs().join("secrets/key"), "key\n").unwrap();
    fs::create_dir(b.rootfs().join("etc/ro-dir")).unwrap();
    b.masked_paths(&[
        "/proc/timer_list",
        "/sys/firmware",
        "/etc/secret",
        "/secrets",
    ])
    .readonly_paths(&["/proc/sys", "/etc/ro-dir"]);
    let out = run("masked", &b).ok();
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    assert_eq!(lines, ["0", "0", "0", "0", "ro", "end"], "{out}");
}

#[test]
fn delete_of_a_stopped_container_leaves_nothing() {
    let mut b = bundle_sh("exit 0");
    b.memory_limit(64 << 20).pids_limit(50);
    let mut c = Container::new("delete", &b);
    c.create().ok();
    c.start().ok();
    c.wait_stopped();
    c.delete().ok();
    c.assert_no_leftovers();
}

#[test]
fn many_lifecycles_leak_nothing() {
    const N: usize = 30;
    let mut b = bundle_sh("echo hi");
    b.memory_limit(64 << 20).pids_limit(50);
    // warm-up, so lazily opened fds or mounts of the test process are not counted
    run("loopwarm", &b).ok();
    let (fds0, mounts0) = (fd_count(), mount_count());
    for _ in 0..N {
        let mut c = Container::new("loop", &b);
        c.create().ok();
        c.start().ok();
        c.wait_stopped();
        assert_eq!(c.stdout(), "hi\n");
        c.delete().ok();
        c.assert_no_leftovers();
    }
    let (fds1, mounts1) = (fd_count(), mount_count());
    // Other tests run in parallel threads, so allow noise, not a per-iteration leak.
    assert!(fds1 < fds0 + N / 2, "fds grew from {fds0} to {fds1}");
    assert!(
        mounts1 < mounts0 + N / 2,
        "mounts grew from {mounts0} to {mounts1}"
    );
}

/// The leftover checker itself: it must see a live container's state dir, cgroup and process.
#[test]
fn leftover_checker_sees_a_created_container() {
    let mut b = bundle_sh("true");
    b.pids_limit(20);
    let mut c = Container::new("checker", &b);
    c.create().ok();
    let found = c.traces().scan().join("\n");
    assert!(found.contains("state dir"), "{found}");
    assert!(found.contains("cgroup dir"), "{found}");
    assert!(found.contains("process"), "{found}");
    c.delete_force().ok();
    c.assert_no_leftovers();
}

#[test]
fn spec_writes_a_runnable_default_config() {
    let b = Bundle::new().unwrap();
    fs::remove_file(b.config_path()).unwrap();
    let c = Container::new("spec", &b);
    let mut cmd = c.command();
    cmd.arg("spec").current_dir(b.path());
    c.exec_cmd(cmd).ok();
    let text = fs::read_to_string(b.config_path()).expect("spec wrote config.json");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("config.json is JSON");
    assert!(v["ociVersion"].is_string(), "{v}");
    assert_eq!(v["process"]["args"], serde_json::json!(["sh"]), "{v}");
    assert_eq!(v["root"]["path"], "rootfs", "{v}");
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    for want in ["pid", "mount", "ipc", "uts", "network"] {
        assert!(ns.contains(&want), "{ns:?}");
    }
    // A second `spec` refuses to overwrite.
    let mut again = c.command();
    again.arg("spec").current_dir(b.path());
    assert!(!c.exec_cmd(again).success());
    // Without a terminal, the default config runs the busybox rootfs as is.
    v["process"]["terminal"] = serde_json::json!(false);
    v["process"]["args"] = serde_json::json!(["echo", "spec-ok"]);
    fs::write(b.config_path(), v.to_string()).unwrap();
    drop(c);
    let out = run("specrun", &b).ok();
    assert_eq!(out.stdout, "spec-ok\n", "{out}");
}

/// A `sleep` in namespaces of its own (`unshare ARGS sleep 60`), for tests that join them by
/// path. Killed and reaped on drop.
struct Holder {
    unshare: std::process::Child,
    /// The sleep: `unshare` itself once it has exec'ed, or its child with `--fork`.
    pid: u32,
}

impl Holder {
    /// A holder in a new, private mount namespace, after running `setup` (sh) there.
    fn mount_ns(setup: &str) -> Holder {
        let script = format!("{setup} && exec sleep 60");
        Holder::spawn(&["--mount", "--propagation", "private", "sh", "-c", &script])
    }

    /// Starts `unshare ARGS` (ending in a command that execs `sleep`) and waits until the
    /// sleep runs, i.e. until the namespaces exist and are set up.
    fn spawn(args: &[&str]) -> Holder {
        let mut unshare = std::process::Command::new("unshare")
            .args(args)
            .spawn()
            .expect("spawn unshare (util-linux)");
        let is_sleep = |pid: u32| {
            fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|e| e.file_name().is_some_and(|n| n == "sleep"))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let id = unshare.id();
            let candidates = std::iter::once(id).chain(children_of(id));
            if let Some(pid) = candidates.into_iter().find(|p| is_sleep(*p)) {
                return Holder { unshare, pid };
            }
            if let Ok(Some(st)) = unshare.try_wait() {
                panic!("unshare {args:?} exited: {st}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "unshare {args:?} never started its sleep"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `/proc/PID/ns/KIND` of the sleep.
    fn ns(&self, kind: &str) -> String {
        format!("/proc/{}/ns/{kind}", self.pid)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// Pids whose parent is `parent` (from /proc/PID/stat).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
                // "pid (comm) state ppid ...": comm may contain spaces, so split after ')'.
                st.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

/// A mount namespace given by path is joined and the rootfs is set up *in it*, as runc does:
/// the container sees a mount that exists only in that namespace, and a mount the container
/// makes shows up there, never on the host.
#[test]
fn a_mount_namespace_given_by_path_is_joined() {
    let mut b = bundle_sh(
        "readlink /proc/self/ns/mnt; cat /from-holder/file; grep -c ' /scratch ' /proc/self/mountinfo",
    );
    let tag = integration::runtime::unique_id("nsmnt");
    let from_holder = b.rootfs().join("from-holder");
    fs::create_dir(&from_holder).unwrap();
    // A tmpfs on the rootfs's /from-holder in the holder's private namespace only.
    let holder = Holder::mount_ns(&format!(
        "mount -t tmpfs -o size=1m {tag}-holder {d} && echo holder-mount > {d}/file",
        d = from_holder.display()
    ));
    let target = fs::read_link(holder.ns("mnt")).unwrap();
    assert_ne!(target, fs::read_link("/proc/self/ns/mnt").unwrap());
    b.namespaces(&["pid", "ipc", "uts", "network"])
        .add_namespace("mount", Some(&holder.ns("mnt")))
        .mount(
            "/scratch",
            "tmpfs",
            &format!("{tag}-container"),
            &["size=1m"],
        );
    let mut c = Container::new("nsmnt", &b);
    let out = c.run().ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [target.to_str().unwrap(), "holder-mount", "1"],
        "the container is not in the holder's mount namespace: {out}"
    );
    let holder_mounts = fs::read_to_string(format!("/proc/{}/mountinfo", holder.pid)).unwrap();
    assert!(
        holder_mounts.contains(&format!("{tag}-container")),
        "the container's mount is not in the joined namespace:\n{holder_mounts}"
    );
    let host_mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host_mounts.contains(&tag), "a mount leaked to the host");
    // pivot_root in the joined namespace also moved the holder's root (it was that
    // namespace's root) onto the rootfs: it counts as a process in the rootfs until killed.
    drop(holder);
    c.assert_no_leftovers();
}

/// A PID namespace given by path is joined: the container's init is not PID 1 there, sees the
/// holder's PID 1, and a process of that namespace sees the init in its own /proc.
#[test]
fn a_pid_namespace_given_by_path_is_joined() {
    // --mount-proc: the holder's mount namespace has a /proc of the new PID namespace.
    let holder = Holder::spawn(&[
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "sleep",
        "60",
    ]);
    let mut b =
        bundle_sh("echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; readlink /proc/self/ns/pid");
    b.namespaces(&["mount", "ipc", "uts", "network"])
        .add_namespace("pid", Some(&holder.ns("pid")));
    let target = fs::read_link(holder.ns("pid")).unwrap();
    let mut c = Container::new("nspid", &b);
    c.create().ok();
    let pid = c.pid();
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        target
    );
    // NSpid: the init's pid in each PID namespace from the host's down to the joined one.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid: Vec<&str> = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(nspid.len(), 2, "{status}");
    let inner = nspid[1];
    assert_ne!(
        inner, "1",
        "the container's init became PID 1 of the joined namespace"
    );
    let seen = std::process::Command::new("nsenter")
        .args([
            "--target",
            &holder.pid.to_string(),
            "--mount",
            "--pid",
            "cat",
        ])
        .arg(format!("/proc/{inner}/stat"))
        .output()
        .expect("nsenter");
    let stat = String::from_utf8_lossy(&seen.stdout);
    assert!(
        seen.status.success() && stat.starts_with(&format!("{inner} ")),
        "the holder's namespace does not see the init as {inner}: {stat} {}",
        String::from_utf8_lossy(&seen.stderr)
    );
    c.start().ok();
    c.wait_stopped();
    let stdout = c.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [inner, "sleep 60 ", target.to_str().unwrap()],
        "{:?}",
        c.logs()
    );
    c.delete().ok();
    drop(holder);
    c.assert_no_leftovers();
}

/// A namespace path that is no namespace file, or a namespace of another type, is refused in
/// one line naming the entry, and nothing is left behind.
#[test]
fn bad_namespace_paths_are_refused() {
    let b0 = Bundle::new().unwrap();
    let config = b0.config_path();
    for (kind, path) in [
        ("network", config.to_str().unwrap()),
        ("ipc", "/proc/self/ns/net"),
        ("mount", "/proc/self/ns/uts"),
        ("pid", "/proc/self/ns/mnt"),
    ] {
        let mut b = bundle_sh("true");
        let others: Vec<&str> = ["pid", "mount", "ipc", "uts", "network"]
            .into_iter()
            .filter(|k| *k != kind)
            .collect();
        b.namespaces(&others).add_namespace(kind, Some(path));
        let mut c = Container::new("nsbad", &b);
        let out = c.create().failed();
        if !integration::runtime::is_runc() {
            let lines = out.error_lines();
            assert_eq!(lines.len(), 1, "want one error line: {out}");
            assert!(
                lines[0].contains("linux.namespaces[4].path") && lines[0].contains(path),
                "the error does not name the entry: {out}"
            );
        }
        c.assert_no_leftovers();
    }
}

/// The rootfs is looked up by path in a joined mount namespace (as runc does); when that path
/// names something else there, create fails cleanly instead of running another tree.
#[test]
fn a_joined_mount_namespace_must_show_the_rootfs() {
    let mut b = bundle_sh("true");
    // In the holder's namespace an empty tmpfs hides the rootfs.
    let holder = Holder::mount_ns(&format!(
        "mount -t tmpfs -o size=1m hide {}",
        b.rootfs().display()
    ));
    b.namespaces(&["pid", "ipc", "uts", "network"])
        .add_namespace("mount", Some(&holder.ns("mnt")));
    let mut c = Container::new("nsmnthidden", &b);
    let out = c.create().failed();
    if !integration::runtime::is_runc() {
        let lines = out.error_lines();
        assert_eq!(lines.len(), 1, "want one error line: {out}");
        assert!(
            lines[0].contains("root.path") && lines[0].contains("linux.namespaces"),
            "{out}"
        );
    }
    drop(holder);
    c.assert_no_leftovers();
}

/// A PID namespace kept by a bind-mounted nsfs file after its init exited takes no new
/// process: create fails in one line naming the entry, and leaves nothing.
#[test]
fn a_pid_namespace_without_init_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nsfile = dir.path().join("pidns");
    fs::write(&nsfile, "").unwrap();
    let mut unshare = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "sh", "-c", "read x"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn unshare (util-linux)");
    let for_children = format!("/proc/{}/ns/pid_for_children", unshare.id());
    let own = fs::read_link("/proc/self/ns/pid").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while fs::read_link(&for_children).map_or(true, |l| l == own) {
        assert!(
            std::time::Instant::now() < deadline,
            "unshare never unshared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::mount::mount(
        Some(for_children.as_str()),
        &nsfile,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind the pid namespace file");
    drop(unshare.stdin.take()); // the namespace's init reads EOF and exits
    unshare.wait().unwrap();

    let mut b = bundle_sh("true");
    b.namespaces(&["mount", "ipc", "uts", "network"])
        .add_namespace("pid", nsfile.to_str());
    let mut c = Container::new("nspiddead", &b);
    let out = c.create();
    nix::mount::umount2(&nsfile, nix::mount::MntFlags::MNT_DETACH).unwrap();
    let out = out.failed();
    if !integration::runtime::is_runc() {
        let lines = out.error_lines();
        assert_eq!(lines.len(), 1, "want one error line: {out}");
        assert!(
            lines[0].contains("linux.namespaces[4].path") && lines[0].contains("no init"),
            "{out}"
        );
    }
    c.assert_no_leftovers();
}

/// Without a mount namespace in the config the container inherits the runtime's (the runtime
/// spec's rule, runc's behaviour): it is chroot'ed into the rootfs, its mounts are the host's
/// while it exists, and `delete` removes them (runc leaves them behind).
#[test]
fn without_a_mount_namespace_the_hosts_is_inherited() {
    let mut b = bundle_sh("readlink /proc/self/ns/mnt; ls /; cat /etc/mocker-rootfs");
    b.namespaces(&["pid", "ipc", "uts", "network"])
        .masked_paths(&[])
        .readonly_paths(&[]);
    let mut c = Container::new("nsnomnt", &b);
    c.create().ok();
    // The container's /proc is mounted in the host's namespace, under the rootfs.
    let proc_mount = b.rootfs().join("proc");
    let host_mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        host_mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == proc_mount.to_str()),
        "no {} in the host's mountinfo",
        proc_mount.display()
    );
    c.start().ok();
    c.wait_stopped();
    let stdout = c.stdout();
    let mut lines: Vec<&str> = stdout.lines().collect();
    let host_ns = fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_eq!(lines.first().copied(), host_ns.to_str(), "{:?}", c.logs());
    assert_eq!(lines.pop(), Some("busybox test rootfs"), "{:?}", c.logs());
    assert_eq!(lines[1..], rootfs_entries(), "{:?}", c.logs());
    c.delete().ok();
    if integration::runtime::is_runc() {
        return; // runc leaves the rootfs mounts in the host's namespace (swept on drop)
    }
    c.assert_no_leftovers();
}

/// A failed create without a mount namespace removes the mounts it made in the host's.
#[test]
fn without_a_mount_namespace_a_failed_create_leaves_no_mount() {
    let mut b = Bundle::new().unwrap();
    b.args(&["/no/such/program"])
        .namespaces(&["pid", "ipc", "uts", "network"])
        .masked_paths(&[])
        .readonly_paths(&[]);
    let mut c = Container::new("nsnomntfail", &b);
    let out = c.create().failed();
    if integration::runtime::is_runc() {
        return; // runc leaves the rootfs mounts in the host's namespace (swept on drop)
    }
    assert!(out.stderr.contains("/no/such/program"), "{out}");
    c.assert_no_leftovers();
}

/// Like runc, masked and read-only paths need a mount namespace of the container's own.
#[test]
fn masked_paths_without_a_mount_namespace_are_refused() {
    let mut b = bundle_sh("true");
    b.namespaces(&["pid", "ipc", "uts", "network"]);
    let mut c = Container::new("nsnomntmask", &b);
    let out = c.create().failed();
    if !integration::runtime::is_runc() {
        let lines = out.error_lines();
        assert_eq!(lines.len(), 1, "want one error line: {out}");
        assert!(lines[0].contains("linux.maskedPaths"), "{out}");
    }
    c.assert_no_leftovers();
}

/// `linux.sysctl` is written inside the container's own namespaces: the container sees the
/// values, the host keeps its own.
#[test]
fn sysctls_are_set_in_the_containers_namespaces() {
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_shmmni = std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap();
    let mut b = Bundle::new().unwrap();
    b.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni");
    b.edit(|s| {
        s["linux"]["sysctl"] =
            serde_json::json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
    });
    let mut c = Container::new("sysctl", &b);
    let out = c.run().ok();
    assert_eq!(out.stdout, "1\n1234\n", "{out}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_forward
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap(),
        host_shmmni
    );
    c.assert_no_leftovers();
}

#[test]
fn oom_score_adj_is_applied() {
    let mut b = Bundle::new().unwrap();
    b.sh("cat /proc/self/oom_score_adj");
    b.edit(|s| s["process"]["oomScoreAdj"] = 500.into());
    let mut c = Container::new("oomadj", &b);
    let out = c.run().ok();
    assert_eq!(out.stdout, "500\n", "{out}");
}
