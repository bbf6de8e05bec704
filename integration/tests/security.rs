//! Security properties from day one: no host fd leaks into the container, the runtime's cwd is
//! not the container's, and the runtime binary cannot be reached from a container's namespaces
//! (CVE-2019-5736). Breakouts through the runtime's own descriptors and a hostile rootfs are in
//! `breakouts.rs`.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use integration::busybox::Bundle;
use integration::runtime::{Container, inherit_fd, runtime_binary};

/// `ls -l /proc/self/fd` lines as (fd, target).
fn fd_table(stdout: &str) -> Vec<(i32, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let fd = left.split_whitespace().last()?.parse().ok()?;
            Some((fd, target.to_string()))
        })
        .collect()
}

#[test]
fn no_host_fd_leaks_into_the_container() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    let b = {
        let mut b = Bundle::new().unwrap();
        b.args(&["ls", "-l", "/proc/self/fd"]);
        b
    };
    let mut c = Container::new("fdleak", &b);
    let file = secret.reopen().unwrap();
    let out = c
        .run_customized(&[], |cmd| inherit_fd(cmd, &file, 100))
        .ok();
    let table = fd_table(&out.stdout);
    let fds: Vec<i32> = table.iter().map(|(fd, _)| *fd).collect();
    assert!(fds.starts_with(&[0, 1, 2]), "{out}");
    // Beyond stdio only ls's own handle on /proc/self/fd may be open.
    for (fd, target) in &table {
        assert!(
            *fd <= 2 || (target.starts_with("/proc/") && target.ends_with("/fd")),
            "fd {fd} -> {target} leaked into the container: {out}"
        );
    }
    assert!(
        !out.stdout.contains(secret.path().to_str().unwrap()),
        "{out}"
    );
    c.assert_no_leftovers();
}

#[test]
fn preserve_fds_passes_exactly_the_requested_fds() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    fs::write(secret.path(), "preserved\n").unwrap();
    let mut b = Bundle::new().unwrap();
    b.sh("cat <&3; ls /proc/self/fd | grep -c .");
    let mut c = Container::new("preserve", &b);
    let f3 = secret.reopen().unwrap();
    let f4 = secret.reopen().unwrap();
    c.create_customized(&["--preserve-fds", "1"], |cmd| {
        inherit_fd(cmd, &f3, 3);
        inherit_fd(cmd, &f4, 4);
    })
    .ok();
    c.start().ok();
    c.wait_stopped();
    // fds 0-3 plus ls's directory handle: the unrequested fd 4 is gone.
    assert_eq!(c.stdout(), "preserved\n5\n", "{:?}", c.logs());
    c.delete().ok();
    c.assert_no_leftovers();
}

#[test]
fn runtime_cwd_is_not_the_containers_cwd() {
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("HOST-SECRET"), "host secret\n").unwrap();
    let mut b = Bundle::new().unwrap();
    b.sh("pwd; ls");
    let mut c = Container::new("cwd", &b);
    let out = c
        .run_customized(&[], |cmd| {
            cmd.current_dir(host.path());
        })
        .ok();
    assert!(out.stdout.starts_with("/\n"), "{out}");
    assert!(!out.stdout.contains("HOST-SECRET"), "{out}");
}

const CAP_SYS_PTRACE: u32 = 19;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Runs `sh -c script` (the container's /bin/sh) in `pid`'s mount namespace and, for its
/// children, pid namespace, as root WITHOUT CAP_SYS_PTRACE: a root process that found its way
/// into the container (the CVE-2019-5736 attacker).
fn in_container_without_ptrace(pid: i32, script: &str) -> std::process::Child {
    let mnt = fs::File::open(format!("/proc/{pid}/ns/mnt")).expect("open mnt ns");
    let pidns = fs::File::open(format!("/proc/{pid}/ns/pid")).expect("open pid ns");
    let (mnt_fd, pid_fd) = (mnt.as_raw_fd(), pidns.as_raw_fd());
    // Resolved after setns, so this is the container's busybox sh.
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]);
    // SAFETY: only raw syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let check = |r: libc::c_long| {
                if r < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(())
                }
            };
            check(libc::setns(pid_fd, libc::CLONE_NEWPID) as _)?;
            check(libc::setns(mnt_fd, libc::CLONE_NEWNS) as _)?;
            check(libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0, 0, 0) as _)?;
            check(libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            ) as _)?;
            let mut hdr = CapHeader {
                version: 0x2008_0522,
                pid: 0,
            };
            let mut data = [CapData::default(); 2];
            check(libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()))?;
            let bit = !(1u32 << CAP_SYS_PTRACE);
            data[0].effective &= bit;
            data[0].permitted &= bit;
            data[0].inheritable &= bit;
            check(libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()))?;
            Ok(())
        });
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.spawn()
        .expect("spawn shell in the container's namespaces")
}

#[test]
fn runtime_binary_is_not_reachable_from_a_created_container() {
    let mut b = Bundle::new().unwrap();
    b.args(&["sleep", "100"]);
    let mut c = Container::new("exe", &b);
    // A private copy of the runtime: no other test executes it, so "text file busy" cannot
    // hide a writable binary once this container's init has exec'd the user program.
    let private = c.scratch().join("runtime-copy");
    // Copied by a child process: a writable fd of the copy held here could be inherited by
    // another test thread's fork, and exec of the copy would then fail with ETXTBSY.
    let copied = std::process::Command::new("cp")
        .arg(which(&runtime_binary()))
        .arg(&private)
        .status()
        .expect("spawn cp");
    assert!(copied.success(), "copy the runtime");
    c.bin = private.clone();
    c.create().ok();
    let pid = c.pid();
    // From the host: the init's executable is not the writable runtime binary on disk. It
    // may be a sealed memfd copy (another inode), or, as runc 1.1 does, the same inode
    // through a read-only bind mount.
    let bin = fs::metadata(&private).unwrap();
    let exe_path = format!("/proc/{pid}/exe");
    if let Ok(exe) = fs::metadata(&exe_path) {
        let same_inode = (exe.dev(), exe.ino()) == (bin.dev(), bin.ino());
        let ro = nix::sys::statvfs::statvfs(exe_path.as_str())
            .map(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
            .unwrap_or(false);
        assert!(
            !same_inode || ro,
            "created container's init runs the runtime binary from a writable mount"
        );
    }
    // From inside, as root without CAP_SYS_PTRACE, the CVE-2019-5736 sequence: take a handle
    // on /proc/1/exe while the runtime's init runs, wait until the user program replaced it,
    // then reopen the handle and append a byte: a sealed memfd can be opened for writing,
    // only the write itself fails. It can only hit the private copy. The subshell forks,
    // so it runs in the container's pid namespace.
    let go = b.rootfs().join("tmp/go");
    let attacker = in_container_without_ptrace(
        pid,
        "( grep CapEff /proc/self/status; \
           if ! (exec 5</proc/1/exe) 2>/dev/null; then echo open-denied; : > /tmp/ready; exit 0; fi; \
           exec 5</proc/1/exe; echo opened; : > /tmp/ready; \
           n=0; while [ ! -e /tmp/go ] && [ $n -lt 3000 ]; do sleep 0.02; n=$((n+1)); done; \
           (echo -n X >> /proc/self/fd/5) 2>&1 && echo WRITE-OK || echo write-denied )",
    );
    // start only once the attacker holds its handle (or was refused one)
    let ready = b.rootfs().join("tmp/ready");
    let t0 = std::time::Instant::now();
    while !ready.exists() {
        assert!(
            t0.elapsed() < c.timeout,
            "the attacker shell never got going"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    c.start().ok();
    c.wait_status("running");
    // the init has exec'd sleep once /proc/PID/exe is busybox
    let busybox = fs::metadata(b.rootfs().join("bin/busybox")).unwrap();
    for _ in 0..500 {
        match fs::metadata(&exe_path) {
            Ok(m) if (m.dev(), m.ino()) == (busybox.dev(), busybox.ino()) => break,
            _ => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    fs::write(&go, "").unwrap();
    let out = attacker.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{}: {stdout}{stderr}", integration::runtime::runtime_name());
    assert!(out.status.success(), "{stdout} {stderr}");
    let cap_eff = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .expect("CapEff line");
    assert_eq!(cap_eff & (1 << CAP_SYS_PTRACE), 0, "CAP_SYS_PTRACE kept");
    assert!(
        stdout.contains("open-denied") || stdout.contains("write-denied"),
        "the runtime binary was writable from the container: {stdout}"
    );
    assert!(!stdout.contains("WRITE-OK"), "{stdout}");
    c.delete_force().ok();
    c.assert_no_leftovers();
    let after = fs::metadata(&private).unwrap();
    assert_eq!(after.len(), bin.len(), "runtime binary changed");
}

/// A bare program name resolved through PATH.
fn which(p: &std::path::Path) -> std::path::PathBuf {
    if p.components().count() > 1 {
        return p.to_path_buf();
    }
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| std::path::Path::new(d).join(p))
        .find(|c| c.is_file())
        .unwrap_or_else(|| p.to_path_buf())
}
