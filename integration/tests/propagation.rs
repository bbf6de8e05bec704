//! Mount propagation: `linux.rootfsPropagation` on the container's own `/` and propagation
//! options of a mount, read back from the container's /proc/self/mountinfo.

use integration::busybox::Bundle;
use integration::runtime::Container;
use serde_json::json;

/// The optional fields (propagation tags) of the mountinfo line for `mount_point`.
fn tags(mountinfo: &str, mount_point: &str) -> String {
    mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(mount_point))
        .map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let end = fields.iter().position(|f| *f == "-").unwrap();
            fields[6..end].join(" ")
        })
        .unwrap_or_else(|| panic!("{mount_point} not in {mountinfo}"))
}

#[test]
fn root_propagation_is_applied_to_the_containers_root() {
    for (value, check) in [
        ("shared", "shared:"),
        ("private", ""),
        ("unbindable", "unbindable"),
    ] {
        let mut b = Bundle::new().unwrap();
        b.edit(|s| s["linux"]["rootfsPropagation"] = json!(value))
            .args(&["cat", "/proc/self/mountinfo"]);
        let mut c = Container::new("rootprop", &b);
        let out = c.run().ok();
        let t = tags(&out.stdout, "/");
        if check.is_empty() {
            assert!(t.is_empty(), "{value}: / has {t:?}");
        } else {
            assert!(t.contains(check), "{value}: / has {t:?}");
        }
        c.assert_no_leftovers();
    }
}

#[test]
fn a_mounts_propagation_option_is_applied() {
    let host = tempfile::tempdir().unwrap();
    let mut b = Bundle::new().unwrap();
    b.edit(|s| s["linux"]["rootfsPropagation"] = json!("private"))
        .mount(
            "/shared-here",
            "bind",
            host.path().to_str().unwrap(),
            &["rbind", "rshared"],
        )
        .mount("/unbindable-here", "tmpfs", "tmpfs", &["unbindable"])
        .args(&["cat", "/proc/self/mountinfo"]);
    let mut c = Container::new("mountprop", &b);
    let out = c.run().ok();
    assert!(
        tags(&out.stdout, "/shared-here").contains("shared:"),
        "{out}"
    );
    assert!(
        tags(&out.stdout, "/unbindable-here").contains("unbindable"),
        "{out}"
    );
    c.assert_no_leftovers();
}
