//! Container breakouts from runc's, crun's and youki's advisories, one test per class. Each
//! builds the hostile config or rootfs, runs it, and checks that the container was refused
//! with one line or ran harmlessly, and that the host object it aimed at is unchanged.
//!
//! - CVE-2024-21626 family: a descriptor of the runtime (the cgroup it was cloned into, a
//!   namespace file, a directory the caller left open) reaching the container through
//!   `/proc/self/fd/N` as `process.args[0]` or `process.cwd`.
//! - CVE-2025-31133 family: what the runtime itself binds or writes (the /dev/null of masked
//!   paths, /dev/ptmx, procfs and sysfs, the exec fifo and sysctls reopened through /proc)
//!   redirected by a symlink or a fake file the image planted.

use std::fs;
use std::os::unix::fs::symlink;

use integration::busybox::{Bundle, busybox_binary};
use integration::runtime::{Container, Out, hold_host_dir};
use serde_json::json;

/// Refused in one line, or ran without printing `marker`.
fn refused_or_harmless(out: &Out, marker: &str) {
    if out.success() {
        assert!(!out.stdout.contains(marker), "escaped: {out}");
    } else {
        assert_eq!(out.error_lines().len(), 1, "{out}");
        assert!(!out.stdout.contains(marker), "escaped: {out}");
    }
}

/// Descriptor numbers tried: 3..=20 as the issue asks, and up to 40 when the caller's own
/// descriptors push the runtime's above 20.
fn fd_numbers(holding: bool) -> std::ops::RangeInclusive<i32> {
    if holding { 3..=40 } else { 3..=20 }
}

#[test]
fn program_path_through_a_runtime_descriptor_never_runs_a_host_file() {
    // A host copy of busybox as the file the container must never run or write.
    let host = tempfile::tempdir().unwrap();
    let host_sh = host.path().join("sh");
    fs::copy(busybox_binary(), &host_sh).unwrap();
    let before = fs::read(&host_sh).unwrap();
    let mut b = Bundle::new().unwrap();
    for holding in [false, true] {
        for fd in fd_numbers(holding) {
            let program = format!(
                "/proc/self/fd/{fd}/../../../../../../../..{}",
                host_sh.display()
            );
            b.args(&[
                program.as_str(),
                "-c",
                "echo ESCAPED $(readlink /proc/self/exe); exec 5</proc/self/exe; \
                 exec /bin/sh -c 'echo PWNED >> /proc/self/fd/5'",
            ]);
            let mut c = Container::new("fdexe", &b);
            let out = c.run_customized(&[], |cmd| {
                if holding {
                    hold_host_dir(cmd, host.path(), 3..=20);
                }
            });
            refused_or_harmless(&out, "ESCAPED");
            c.assert_no_leftovers();
        }
    }
    assert!(
        fs::read(&host_sh).unwrap() == before,
        "the host file was written"
    );
}

#[test]
fn cwd_through_a_runtime_descriptor_stays_in_the_container() {
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("HOST-SECRET"), "host secret\n").unwrap();
    let mut b = Bundle::new().unwrap();
    b.sh("pwd; cat HOST-SECRET ../HOST-SECRET ../../HOST-SECRET 2>/dev/null; ls");
    for holding in [false, true] {
        for fd in fd_numbers(holding) {
            b.cwd(&format!("/proc/self/fd/{fd}"));
            let mut c = Container::new("fdcwd", &b);
            let out = c.run_customized(&[], |cmd| {
                cmd.current_dir(host.path());
                if holding {
                    hold_host_dir(cmd, host.path(), 3..=20);
                }
            });
            refused_or_harmless(&out, "host secret");
            refused_or_harmless(&out, "HOST-SECRET");
            c.assert_no_leftovers();
        }
    }
}

/// A bundle whose /dev comes from the rootfs (no /dev tmpfs in the config), so files the
/// image put under /dev are what the runtime finds there.
fn bundle_with_image_dev() -> Bundle {
    let mut b = Bundle::new().unwrap();
    b.without_mount("/dev");
    fs::create_dir_all(b.rootfs().join("dev")).unwrap();
    b
}

#[test]
fn masked_paths_never_bind_what_the_image_put_at_dev_null() {
    let host_hostname = nix::unistd::gethostname().unwrap();
    // Symlinks to a procfs file, absolute, relative and through `..`; and a directory.
    let plants: [(&str, Option<&str>); 4] = [
        ("absolute", Some("/proc/sys/kernel/hostname")),
        ("relative", Some("../proc/sys/kernel/hostname")),
        ("dotdot", Some("../../../../../proc/sys/kernel/hostname")),
        ("directory", None),
    ];
    for (name, target) in plants {
        let mut b = bundle_with_image_dev();
        let null = b.rootfs().join("dev/null");
        match target {
            Some(t) => symlink(t, &null).unwrap(),
            None => fs::create_dir_all(null.join("sub")).unwrap(),
        }
        b.hostname("box")
            .sh("echo pwned > /proc/keys; hostname; cat /proc/keys");
        let mut c = Container::new("devnull", &b);
        let out = c.run();
        eprintln!("{name}: {out}");
        if out.success() {
            // Masking used a real null device: the write vanished, /proc/keys reads empty.
            assert_eq!(out.stdout, "box\n", "{name}: {out}");
        } else {
            assert_eq!(out.error_lines().len(), 1, "{name}: {out}");
            assert!(out.stderr.contains("/dev/null"), "{name}: {out}");
        }
        c.assert_no_leftovers();
    }
    assert_eq!(nix::unistd::gethostname().unwrap(), host_hostname);
}

#[test]
fn a_dev_ptmx_symlink_from_the_image_is_replaced() {
    let mut b = bundle_with_image_dev();
    symlink("/proc/sys/kernel/hostname", b.rootfs().join("dev/ptmx")).unwrap();
    b.hostname("box").sh("readlink /dev/ptmx; hostname");
    let mut c = Container::new("ptmx", &b);
    let out = c.run().ok();
    assert_eq!(out.stdout, "pts/ptmx\nbox\n", "{out}");
    c.assert_no_leftovers();
}

#[test]
fn proc_and_sys_are_never_mounted_through_a_symlink() {
    let cases = [
        ("/proc", "/sys"),
        ("/proc", "etc"),
        ("/proc", "../../../etc"),
        ("/sys", "/proc"),
        ("/sys", "../tmp"),
    ];
    for (dest, link) in cases {
        let mut b = Bundle::new().unwrap();
        let path = b.rootfs().join(dest.trim_start_matches('/'));
        let _ = fs::remove_dir_all(&path);
        symlink(link, &path).unwrap();
        b.args(&["true"]);
        let mut c = Container::new("procsym", &b);
        let out = c.run().failed();
        assert_eq!(out.error_lines().len(), 1, "{dest} -> {link}: {out}");
        assert!(
            out.stderr.contains("symlink") && out.stderr.contains(dest),
            "{dest} -> {link}: {out}"
        );
        c.assert_no_leftovers();
    }
}

#[test]
fn a_mount_through_a_rootfs_symlink_never_covers_the_hosts_proc() {
    // Without a mount namespace the container's mounts are made in the host's: a destination
    // that followed the image's symlink out of the rootfs would cover the host's /proc/sys.
    for link in ["/proc/sys/kernel", "../../../../proc/sys/kernel"] {
        let mut b = Bundle::new().unwrap();
        symlink(link, b.rootfs().join("mnt-evil")).unwrap();
        b.edit(|s| {
            let linux = &mut s["linux"];
            linux["namespaces"] = json!([{"type": "pid"}, {"type": "uts"}, {"type": "ipc"}]);
            linux["maskedPaths"] = json!([]);
            linux["readonlyPaths"] = json!([]);
            s["mounts"] = json!([
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/mnt-evil", "type": "tmpfs", "source": "tmpfs"}
            ]);
        })
        .args(&["sleep", "30"]);
        let mut c = Container::new("mntsym", &b);
        c.create().ok();
        let st = nix::sys::statfs::statfs("/proc/sys/kernel/ostype").unwrap();
        assert_eq!(
            st.filesystem_type(),
            nix::sys::statfs::PROC_SUPER_MAGIC,
            "{link}: the host's /proc/sys/kernel was covered"
        );
        c.delete_force().ok();
        c.assert_no_leftovers();
    }
}

/// Without a proc mount the rootfs's own /proc is what the init would reopen the exec fifo
/// and write sysctls through: fake files there must be refused, not written.
#[test]
fn a_fake_proc_in_the_image_is_never_written_through() {
    let plant = |b: &Bundle| {
        let fd_dir = b.rootfs().join("proc/self/fd");
        fs::create_dir_all(&fd_dir).unwrap();
        for fd in 0..64 {
            fs::write(fd_dir.join(fd.to_string()), "").unwrap();
        }
        let sys = b.rootfs().join("proc/sys/kernel");
        fs::create_dir_all(&sys).unwrap();
        fs::write(sys.join("domainname"), "").unwrap();
    };
    let untouched = |b: &Bundle| {
        let fd_dir = b.rootfs().join("proc/self/fd");
        for fd in 0..64 {
            assert_eq!(fs::read(fd_dir.join(fd.to_string())).unwrap(), b"");
        }
        assert_eq!(
            fs::read(b.rootfs().join("proc/sys/kernel/domainname")).unwrap(),
            b""
        );
    };
    // The exec fifo: `create` must fail instead of taking a fake file for it.
    let mut b = Bundle::new().unwrap();
    b.without_mount("/proc").edit(|s| {
        s["linux"]["maskedPaths"] = json!([]);
        s["linux"]["readonlyPaths"] = json!([]);
    });
    plant(&b);
    b.args(&["true"]);
    let mut c = Container::new("fakeproc", &b);
    let out = c.create().failed();
    assert_eq!(out.error_lines().len(), 1, "{out}");
    assert!(out.stderr.contains("/proc"), "{out}");
    c.assert_no_leftovers();
    untouched(&b);
    // A sysctl: refused, not written into the image's file.
    b.edit(|s| s["linux"]["sysctl"] = json!({"kernel.domainname": "pwned"}));
    let mut c = Container::new("fakeproc", &b);
    let out = c.create().failed();
    assert_eq!(out.error_lines().len(), 1, "{out}");
    assert!(out.stderr.contains("procfs"), "{out}");
    c.assert_no_leftovers();
    untouched(&b);
}
