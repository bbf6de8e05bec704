//! Process settings the init applies and the program inherits, seen by the program itself:
//! the execution domain (`uname -m`), scheduler and I/O priority; and settings this host
//! cannot honour (LSM labels without the LSM), refused in one line.

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

/// Fields of /proc/self/stat after the `(comm)` field, numbered as in proc(5) (state = 3).
fn stat_field(stat: &str, n: usize) -> i64 {
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(n - 3).unwrap().parse().unwrap()
}

#[test]
fn scheduler_and_io_priority_are_inherited_by_the_program() {
    for (sched, policy, nice, rt) in [
        (json!({"policy": "SCHED_BATCH", "nice": 7}), 3, 7, 0),
        // Real-time policies need an rt_runtime in the container's v1 cpu cgroup; not here.
        (json!({"policy": "SCHED_IDLE"}), 5, 0, 0),
    ] {
        let mut b = Bundle::new().unwrap();
        b.edit(|s| {
            s["process"]["scheduler"] = sched.clone();
            s["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
        })
        .sh("cat /proc/self/stat; ionice -p $$");
        let mut c = Container::new("sched", &b);
        let out = c.run().ok();
        let mut lines = out.stdout.lines();
        let stat = lines.next().unwrap();
        assert_eq!(stat_field(stat, 41), policy, "{sched}: {out}");
        assert_eq!(stat_field(stat, 19), nice, "{sched}: {out}");
        assert_eq!(stat_field(stat, 40), rt, "{sched}: {out}");
        assert_eq!(lines.next(), Some("best-effort: prio 6"), "{out}");
        c.assert_no_leftovers();
    }
}

#[test]
fn settings_this_host_cannot_honour_are_refused_in_one_line() {
    let cases = [
        (
            json!({"process": {"scheduler": {"policy": "SCHED_OTHER", "nice": 40}}}),
            "process.scheduler.nice",
        ),
        (
            json!({"process": {"scheduler": {"policy": "SCHED_RR"}}}),
            "process.scheduler.priority",
        ),
        (
            json!({"process": {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}}}),
            "process.ioPriority.priority",
        ),
        (
            json!({"process": {"apparmorProfile": "docker-default"}}),
            "AppArmor is not enabled on this host",
        ),
        (
            json!({"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}),
            "process.selinuxLabel",
        ),
        (
            json!({"linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}),
            "linux.mountLabel",
        ),
        (
            json!({"linux": {"intelRdt": {"closID": "x"}}}),
            "linux.intelRdt",
        ),
    ];
    for (patch, want) in cases {
        let mut b = Bundle::new().unwrap();
        b.edit(|s| merge(s, &patch)).args(&["true"]);
        let mut c = Container::new("settingsbad", &b);
        let out = c.create().failed();
        assert_eq!(out.error_lines().len(), 1, "{out}");
        assert!(out.stderr.contains(want), "{want}: {out}");
        c.assert_no_leftovers();
    }
}

/// Merge `patch` into `v` (objects recursively, anything else replaced).
fn merge(v: &mut serde_json::Value, patch: &serde_json::Value) {
    match (v, patch) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, pv) in b {
                merge(a.entry(k.clone()).or_insert(serde_json::Value::Null), pv);
            }
        }
        (v, p) => *v = p.clone(),
    }
}
