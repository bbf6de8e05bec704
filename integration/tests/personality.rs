//! `linux.personality`: the execution domain, seen by the program itself (`uname -m`).

use integration::busybox::Bundle;
use integration::runtime::Container;
use serde_json::json;

#[test]
fn linux32_makes_uname_report_a_32_bit_machine() {
    for (domain, want) in [("LINUX32", "i686\n"), ("LINUX", "x86_64\n")] {
        let mut b = Bundle::new().unwrap();
        b.edit(|s| s["linux"]["personality"] = json!({"domain": domain}))
            .args(&["uname", "-m"]);
        let mut c = Container::new("persona", &b);
        let out = c.run().ok();
        assert_eq!(out.stdout, want, "{domain}: {out}");
        c.assert_no_leftovers();
    }
}

#[test]
fn personality_flags_are_refused_in_one_line() {
    let mut b = Bundle::new().unwrap();
    b.edit(|s| {
        s["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]})
    })
    .args(&["true"]);
    let mut c = Container::new("personaflags", &b);
    let out = c.create().failed();
    assert_eq!(out.error_lines().len(), 1, "{out}");
    assert!(out.stderr.contains("linux.personality.flags"), "{out}");
    c.assert_no_leftovers();
}
