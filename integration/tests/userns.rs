//! User and time namespaces, observed from inside real containers: the id maps, file
//! ownership seen through them, devices bound from the host, clocks shifted by the offsets;
//! and maps or offsets the runtime refuses in one line.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use integration::busybox::Bundle;
use integration::runtime::Container;
use serde_json::{Value, json};

const HOST_ROOT: u32 = 100_000;

/// `ioctl(NS_GET_USERNS)`: the user namespace owning a namespace (linux/nsfs.h).
const NS_GET_USERNS: libc::c_ulong = 0xb701;

/// A bundle whose container root is host uid/gid 100000 (the rootfs owned by it, as engines
/// prepare it for a user namespace).
fn mapped_bundle() -> Bundle {
    let mut b = Bundle::new().unwrap();
    let status = Command::new("chown")
        .args(["-R", &format!("{HOST_ROOT}:{HOST_ROOT}")])
        .arg(b.rootfs())
        .status()
        .unwrap();
    assert!(status.success());
    let map = json!([{"containerID": 0, "hostID": HOST_ROOT, "size": 65536}]);
    b.add_namespace("user", None).edit(|s| {
        s["linux"]["uidMappings"] = map.clone();
        s["linux"]["gidMappings"] = map.clone();
    });
    b
}

#[test]
fn a_user_namespace_maps_ids_and_files_are_seen_through_the_map() {
    let mut b = mapped_bundle();
    // A file the map does not cover (host root's) shows as the overflow id.
    std::fs::write(b.rootfs().join("host-root-file"), "x").unwrap();
    std::os::unix::fs::chown(b.rootfs().join("host-root-file"), Some(0), Some(0)).unwrap();
    b.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; \
         stat -c '%u:%g' /bin/busybox /host-root-file; touch /tmp/made-inside; \
         echo x > /dev/null && head -c 3 /dev/zero | wc -c");
    let mut c = Container::new("userns", &b);
    let out = c.run().ok();
    let lines: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[1], ["0", "100000", "65536"], "{out}");
    assert_eq!(
        lines[2..6],
        [["0"], ["0"], ["0:0"], ["65534:65534"]],
        "{out}"
    );
    // /dev/null and /dev/zero are the host's nodes, bound (mknod is not allowed there).
    assert_eq!(lines[6], ["3"], "{out}");
    let made = std::fs::metadata(b.rootfs().join("tmp/made-inside")).unwrap();
    assert_eq!((made.uid(), made.gid()), (HOST_ROOT, HOST_ROOT));
    c.assert_no_leftovers();
}

#[test]
fn a_user_namespace_given_by_path_is_joined_and_owns_the_new_namespaces() {
    // A pod-like pair: the first container holds a mapped user namespace, the second joins
    // it by path and creates its other namespaces inside it.
    let mut holder_bundle = mapped_bundle();
    holder_bundle.args(&["sleep", "60"]);
    let mut holder = Container::new("usernsholder", &holder_bundle);
    holder.create().ok();
    let userns = format!("/proc/{}/ns/user", holder.pid());
    let mut b = mapped_bundle();
    b.edit(|s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "user");
        ns.push(json!({"type": "user", "path": userns}));
        s["linux"]["uidMappings"] = Value::Null;
        s["linux"]["gidMappings"] = Value::Null;
    })
    .sh(
        "readlink /proc/self/ns/user; cat /proc/self/uid_map; stat -c '%u' /bin/busybox; \
         echo x > /dev/null && echo devnull-ok",
    );
    let mut c = Container::new("usernsjoin", &b);
    c.create().ok();
    // The network namespace the init made is owned by the joined user namespace.
    let net = std::fs::File::open(format!("/proc/{}/ns/net", c.pid())).unwrap();
    // SAFETY: NS_GET_USERNS takes no argument and returns a new descriptor.
    let owner = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&net), NS_GET_USERNS) };
    assert!(
        owner >= 0,
        "NS_GET_USERNS: {}",
        std::io::Error::last_os_error()
    );
    let owner_ino = std::fs::metadata(format!("/proc/self/fd/{owner}"))
        .unwrap()
        .ino();
    // SAFETY: closing the descriptor the ioctl returned.
    unsafe { libc::close(owner) };
    assert_eq!(owner_ino, std::fs::metadata(&userns).unwrap().ino());
    c.start().ok();
    c.wait_stopped();
    c.delete().ok();
    let out = c.stdout();
    let want = std::fs::read_link(&userns).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], want.to_str().unwrap(), "{out}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "{out}"
    );
    assert_eq!(lines[2..], ["0", "devnull-ok"], "{out}");
    c.assert_no_leftovers();
    holder.delete_force().ok();
    holder.assert_no_leftovers();
}

#[test]
fn a_time_namespace_shifts_the_containers_clocks() {
    let mut b = Bundle::new().unwrap();
    b.add_namespace("time", None)
        .edit(|s| {
            s["linux"]["timeOffsets"] = json!({
                "boottime": {"secs": 86400 * 10},
                "monotonic": {"secs": 86400 * 5, "nanosecs": 5}
            })
        })
        .sh("cat /proc/uptime");
    let host_before = uptime(&std::fs::read_to_string("/proc/uptime").unwrap());
    let mut c = Container::new("timens", &b);
    let out = c.run().ok();
    let host_after = uptime(&std::fs::read_to_string("/proc/uptime").unwrap());
    let inside = uptime(&out.stdout);
    // /proc/uptime is CLOCK_BOOTTIME: ten days ahead of the host's.
    assert!(
        inside >= host_before + 864_000.0 && inside <= host_after + 864_000.0,
        "{host_before} {inside} {host_after}"
    );
    c.assert_no_leftovers();
    // The runtime's own children (here: the next container without a time namespace) are
    // back in the host's time namespace.
    let mut b2 = Bundle::new().unwrap();
    b2.sh("cat /proc/uptime");
    let mut c2 = Container::new("timens2", &b2);
    let plain = uptime(&c2.run().ok().stdout);
    assert!(plain < host_after + 60.0, "{plain}");
}

fn uptime(text: &str) -> f64 {
    text.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn bad_maps_and_offsets_are_refused_in_one_line_and_leave_nothing() {
    let overlapping = json!([
        {"containerID": 0, "hostID": 100000, "size": 1000},
        {"containerID": 500, "hostID": 300000, "size": 10}
    ]);
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "linux.uidMappings[1]: its containerID range overlaps linux.uidMappings[0]",
            Box::new(move |s: &mut Value| {
                s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "user"}));
                s["linux"]["uidMappings"] = overlapping.clone();
                s["linux"]["gidMappings"] =
                    json!([{"containerID": 0, "hostID": 100000, "size": 1}]);
            }),
        ),
        (
            "linux.uidMappings: a new user namespace needs at least one mapping",
            Box::new(|s: &mut Value| {
                s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "user"}));
            }),
        ),
        (
            "linux.uidMappings: id mappings need a new user namespace",
            Box::new(|s: &mut Value| {
                s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1, "size": 1}]);
            }),
        ),
        (
            "linux.timeOffsets: needs a new time namespace",
            Box::new(|s: &mut Value| {
                s["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1}});
            }),
        ),
        (
            "linux.timeOffsets.realtime: only monotonic and boottime",
            Box::new(|s: &mut Value| {
                s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "time"}));
                s["linux"]["timeOffsets"] = json!({"realtime": {"secs": 1}});
            }),
        ),
        (
            "/proc/self/ns/net: is a network namespace, not user",
            Box::new(|s: &mut Value| {
                s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "user", "path": "/proc/self/ns/net"}));
            }),
        ),
    ];
    for (want, edit) in cases {
        let mut b = Bundle::new().unwrap();
        b.edit(|s| edit(s)).args(&["true"]);
        let mut c = Container::new("usernsbad", &b);
        let out = c.create().failed();
        assert_eq!(out.error_lines().len(), 1, "{out}");
        assert!(out.stderr.contains(want), "{want}: {out}");
        c.assert_no_leftovers();
    }
}

/// A host directory with a file owned by root and one by uid 1000, and a tmpfs mounted
/// below it (for ridmap), unmounted on drop.
struct Source {
    dir: tempfile::TempDir,
}

impl Source {
    fn new() -> Source {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("rootfile"), "a").unwrap();
        std::fs::write(p.join("userfile"), "b").unwrap();
        std::os::unix::fs::chown(p.join("userfile"), Some(1000), Some(1000)).unwrap();
        std::fs::create_dir(p.join("sub")).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &p.join("sub"),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("mode=755"),
        )
        .unwrap();
        std::fs::write(p.join("sub/subfile"), "c").unwrap();
        Source { dir }
    }
    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(
            &self.dir.path().join("sub"),
            nix::mount::MntFlags::MNT_DETACH,
        );
    }
}

fn idmapped_mount(src: &std::path::Path, options: &[&str], maps: bool) -> Value {
    let mut m = json!({"destination": "/data", "type": "bind",
                       "source": src, "options": options});
    if maps {
        let map = json!([{"containerID": 0, "hostID": HOST_ROOT, "size": 65536}]);
        m["uidMappings"] = map.clone();
        m["gidMappings"] = map;
    }
    m
}

#[test]
fn an_idmapped_mount_shows_its_files_through_its_own_maps() {
    let src = Source::new();
    for (options, sub_owner) in [
        (vec!["rbind", "idmap"], "0"),
        // ridmap maps the mounts below the source too.
        (vec!["rbind", "ridmap"], "100000"),
    ] {
        let mut b = Bundle::new().unwrap();
        let m = idmapped_mount(src.path(), &options, true);
        b.edit(|s| s["mounts"].as_array_mut().unwrap().push(m))
            .sh("stat -c '%u:%g' /data/rootfile /data/userfile; stat -c '%u' /data/sub/subfile");
        let mut c = Container::new("idmapped", &b);
        let out = c.run().ok();
        assert_eq!(
            out.stdout,
            format!("100000:100000\n101000:101000\n{sub_owner}\n"),
            "{options:?}: {out}"
        );
        c.assert_no_leftovers();
    }
}

#[test]
fn an_idmapped_mount_without_maps_uses_the_containers_user_namespace() {
    let src = Source::new();
    let mut b = mapped_bundle();
    let m = idmapped_mount(src.path(), &["rbind", "idmap"], false);
    b.edit(|s| s["mounts"].as_array_mut().unwrap().push(m))
        .sh("stat -c '%u' /data/rootfile /data/userfile; touch /data/made-inside");
    let mut c = Container::new("idmappedns", &b);
    let out = c.run().ok();
    // The container's root (host 100000) sees the host's files with their own owners, and
    // what it creates is owned by root on the host.
    assert_eq!(out.stdout, "0\n1000\n", "{out}");
    let made = std::fs::metadata(src.path().join("made-inside")).unwrap();
    assert_eq!(made.uid(), 0);
    c.assert_no_leftovers();
}

#[test]
fn bad_idmapped_mounts_are_refused_in_one_line() {
    let src = Source::new();
    let cases = [
        (
            json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}),
            "idmap and ridmap are only for bind mounts",
        ),
        (
            idmapped_mount(src.path(), &["rbind", "idmap"], false),
            "idmap needs uidMappings and gidMappings",
        ),
        (
            {
                let mut m = idmapped_mount(src.path(), &["rbind", "idmap"], true);
                m["gidMappings"] = Value::Null;
                m
            },
            "uidMappings and gidMappings go together",
        ),
    ];
    for (mount, want) in cases {
        let mut b = Bundle::new().unwrap();
        b.edit(|s| s["mounts"].as_array_mut().unwrap().push(mount.clone()))
            .args(&["true"]);
        let mut c = Container::new("idmappedbad", &b);
        let out = c.create().failed();
        assert_eq!(out.error_lines().len(), 1, "{out}");
        assert!(out.stderr.contains(want), "{want}: {out}");
        c.assert_no_leftovers();
    }
}
