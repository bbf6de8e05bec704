//! cgroup limits applied and enforced, on whatever hierarchy the host has: this hybrid host
//! (v1 controllers) and, through `just test-cgroup-v2`, a pure cgroup v2 guest.

use integration::busybox::Bundle;
use integration::cgroupfs;
use integration::leftovers::{cgroup_dirs, is_pure_v2};
use integration::runtime::{Container, runtime_name};

const MIB: i64 = 1 << 20;

fn bundle_sh(script: &str) -> Bundle {
    let mut b = Bundle::new().expect("bundle");
    b.sh(script);
    b
}

#[test]
fn memory_limit_is_applied() {
    let mut b = bundle_sh("true");
    b.memory_limit(32 * MIB);
    let mut c = Container::new("memset", &b);
    c.create().ok();
    let (file, value) = cgroupfs::read(c.pid(), "memory", &["memory.limit_in_bytes", "memory.max"])
        .expect("container has a memory cgroup");
    assert_eq!(value, (32 * MIB).to_string(), "{}", file.display());
    c.delete_force().ok();
    c.assert_no_leftovers();
}

#[test]
fn memory_limit_is_enforced_by_the_oom_killer() {
    // The child shell builds a 100 MB string in its own memory: far over 32 MiB.
    let mut b = bundle_sh(
        r#"sh -c 'x=$(head -c 100000000 /dev/zero | tr "\0" a); echo survived ${#x}'; echo "child exit $?""#,
    );
    b.memory_limit(32 * MIB);
    let mut c = Container::new("oom", &b);
    let out = c.run().ok();
    assert_eq!(out.stdout.trim(), "child exit 137", "{out}");
    c.assert_no_leftovers();
}

#[test]
fn memory_is_not_limited_without_a_limit() {
    // The same allocation succeeds when no limit is set: the OOM test measures the limit.
    let b = bundle_sh(
        r#"sh -c 'x=$(head -c 100000000 /dev/zero | tr "\0" a); echo survived ${#x}'; echo "child exit $?""#,
    );
    let mut c = Container::new("nooom", &b);
    let out = c.run().ok();
    assert_eq!(out.stdout, "survived 100000000\nchild exit 0\n", "{out}");
}

#[test]
fn pids_limit_is_applied_and_enforced() {
    // 20 background sleeps against pids.max=10: some forks must fail, and never more than
    // 10 processes exist.
    // A failed fork ends busybox sh, so the loop runs in a child shell; the count uses only
    // builtins (an external `ls` could not fork either).
    let mut b = bundle_sh(
        "sh -c 'i=0; while [ $i -lt 20 ]; do sleep 30 & i=$((i+1)); done'; echo loop exit $?; \
         n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n; kill -KILL -1; echo done",
    );
    b.pids_limit(10);
    let mut c = Container::new("pids", &b);
    c.create().ok();
    let (file, value) =
        cgroupfs::read(c.pid(), "pids", &["pids.max"]).expect("container has a pids cgroup");
    assert_eq!(value, "10", "{}", file.display());
    c.start().ok();
    c.wait_stopped();
    let (stdout, stderr) = c.logs();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.last(), Some(&"done"), "{stdout}\n{stderr}");
    assert_ne!(lines[0], "loop exit 0", "every fork succeeded: {stdout}");
    let n: usize = lines[1].trim().parse().expect("process count");
    assert!(n <= 10, "{n} processes despite pids.max=10");
    assert!(
        stderr.contains("fork"),
        "no fork failure reported: {stderr}"
    );
    c.delete().ok();
    c.assert_no_leftovers();
}

#[test]
fn custom_cgroups_path_is_created_and_removed() {
    let id_hint = format!("custom-{}", std::process::id());
    let mut b = bundle_sh("true");
    let path = format!("/mocker/{id_hint}");
    b.cgroups_path(&path).memory_limit(64 * MIB).pids_limit(64);
    let mut c = Container::new("cgpath", &b);
    c.create().ok();
    let dirs = cgroup_dirs(&path);
    assert!(!dirs.is_empty(), "no cgroup dir for {path}");
    let mem = cgroupfs::cgroup_dir(c.pid(), "memory").expect("memory cgroup");
    assert!(
        mem.ends_with(path.trim_start_matches('/')),
        "{}",
        mem.display()
    );
    if is_pure_v2() {
        assert_eq!(dirs.len(), 1, "{dirs:?}");
    } else {
        // v1: at least the memory and pids hierarchies carry the path.
        assert!(dirs.len() >= 2, "{dirs:?}");
    }
    c.delete_force().ok();
    assert!(cgroup_dirs(&path).is_empty(), "{:?}", cgroup_dirs(&path));
    c.assert_no_leftovers();
}

#[test]
fn relative_cgroups_path_is_below_the_runtimes_own_cgroup_in_each_hierarchy() {
    // On this hybrid host the test process sits in memory:/process_api/... but at / in the
    // other hierarchies: the container's cgroup follows it in each (as runc's fs driver).
    let parent = format!("mocker-it-rel-{}", std::process::id());
    let rel = format!("{parent}/c");
    let mut b = bundle_sh("true");
    b.cgroups_path(&rel).memory_limit(48 * MIB).pids_limit(21);
    let mut c = Container::new("cgrel", &b);
    c.create().ok();
    let dirs = cgroup_dirs(&rel);
    assert!(!dirs.is_empty(), "no cgroup dir for {rel}");
    for d in &dirs {
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l == c.pid().to_string()),
            "the init is not in {}",
            d.display()
        );
    }
    let (_, mem) = cgroupfs::read(c.pid(), "memory", &["memory.limit_in_bytes", "memory.max"])
        .expect("memory cgroup");
    assert_eq!(mem, (48 * MIB).to_string());
    let (_, pids) = cgroupfs::read(c.pid(), "pids", &["pids.max"]).expect("pids cgroup");
    assert_eq!(pids, "21");
    c.delete_force().ok();
    assert!(cgroup_dirs(&rel).is_empty(), "{:?}", cgroup_dirs(&rel));
    c.assert_no_leftovers();
    // The parent of a configured path is the caller's (runc leaves it too).
    for d in cgroup_dirs(&parent) {
        let _ = std::fs::remove_dir(d);
    }
}

#[test]
fn default_cgroups_path() {
    let b = bundle_sh("true");
    let mut c = Container::new("cgdefault", &b);
    c.create().ok();
    // runc and crun put a container without cgroupsPath at /<id>; mocker-runtime at
    // /mocker/<id>.
    let want = if runtime_name().starts_with("mocker") {
        format!("/mocker/{}", c.id)
    } else {
        format!("/{}", c.id)
    };
    let dir = cgroupfs::cgroup_dir(c.pid(), "pids").expect("pids cgroup");
    assert!(
        dir.ends_with(want.trim_start_matches('/')),
        "cgroup {} is not at {want}",
        dir.display()
    );
    c.delete_force().ok();
    c.assert_no_leftovers();
}

#[test]
fn a_limit_the_host_rejects_is_one_error_and_leaves_nothing() {
    let mut b = bundle_sh("true");
    b.cpuset_cpus("99");
    let mut c = Container::new("badcpuset", &b);
    let out = c.create().failed();
    let lines = out.error_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains("cpus") || lines[0].contains("cpuset"),
        "{out}"
    );
    c.assert_no_leftovers();
}

/// /dev/kmsg (c 1:11, in every kernel) opens write-only without any capability, so only the
/// device cgroup (v1 files or the v2 eBPF filter) can refuse it; nothing is written to it.
/// The node goes on the container's /dev tmpfs: the bundle may sit on a `nodev` mount. The container may create the node (given CAP_MKNOD,
/// with the default `c *:* m` rule) but not open it, until the config allows it.
#[test]
fn device_rules_refuse_unlisted_devices_and_allow_listed_ones() {
    let script = "mknod /dev/kmsg c 1 11 && if (exec 3>/dev/kmsg) 2>/dev/null; \
                  then echo opened; else echo refused; fi; head -c 3 /dev/zero | wc -c";
    let with_mknod = |b: &mut Bundle| {
        b.edit(|s| {
            for set in s["process"]["capabilities"]
                .as_object_mut()
                .unwrap()
                .values_mut()
            {
                set.as_array_mut().unwrap().push("CAP_MKNOD".into());
            }
        });
    };
    let mut b = bundle_sh(script);
    with_mknod(&mut b);
    let mut c = Container::new("devdeny", &b);
    let out = c.run().ok();
    assert_eq!(out.stdout, "refused\n3\n", "{out}");
    c.assert_no_leftovers();

    let mut b = bundle_sh(script);
    with_mknod(&mut b);
    b.edit(|s| {
        let rules = s["linux"]["resources"]["devices"].as_array_mut().unwrap();
        rules.push(serde_json::json!(
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}
        ));
    });
    let mut c = Container::new("devallow", &b);
    let out = c.run().ok();
    assert_eq!(out.stdout, "opened\n3\n", "{out}");
    c.assert_no_leftovers();
}

/// pause/resume and events --stats on whatever hierarchy the host has: the v1 freezer and
/// memory files here, `cgroup.freeze` and v2 stat files in the pure v2 guest.
#[test]
fn pause_resume_and_stats_on_this_hierarchy() {
    let mut b = bundle_sh("sleep 600");
    b.memory_limit(64 * MIB).pids_limit(40);
    let mut c = Container::new("cgpause", &b);
    c.create().ok();
    c.start().ok();
    c.exec(&["pause", &c.id]).ok();
    let (file, value) =
        cgroupfs::read(c.pid(), "freezer", &["freezer.state", "cgroup.freeze"]).expect("a freezer");
    assert!(
        value == "FROZEN" || value == "1",
        "{}: {value}",
        file.display()
    );
    assert_eq!(c.status(), "paused");
    c.exec(&["resume", &c.id]).ok();
    let (_, value) =
        cgroupfs::read(c.pid(), "freezer", &["freezer.state", "cgroup.freeze"]).unwrap();
    assert!(value == "THAWED" || value == "0", "{value}");
    let out = c.exec(&["events", "--stats", &c.id]).ok();
    let ev: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
    assert!(ev["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{ev}");
    assert_eq!(ev["data"]["pids"]["limit"], 40, "{ev}");
    assert!(
        ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{ev}"
    );
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], 64 * MIB, "{ev}");
    c.delete_force().ok();
    c.assert_no_leftovers();
}
