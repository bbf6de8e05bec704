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
