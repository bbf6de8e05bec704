//! A runtime killed at any moment leaves nothing that `delete --force` cannot remove: `create`
//! is SIGKILLed after delays spread over its whole run, then the container is deleted, and no
//! mount, cgroup, process or file of it (nor of the CVE-2019-5736 re-exec) may remain.

use std::time::Instant;

use integration::busybox::Bundle;
use integration::runtime::Container;

/// Entries of the state root that are not containers' own (the seccomp program cache is
/// shared by design).
fn stray_entries(root: &std::path::Path, id: &str) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != id && n != "@seccomp")
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn create_killed_at_any_point_leaves_nothing_after_delete_force() {
    let mut b = Bundle::new().unwrap();
    b.args(&["sleep", "600"]);
    // Measure one create to spread the kill points over it.
    let probe_time = {
        let mut c = Container::new("crashprobe", &b);
        let t0 = Instant::now();
        c.create().ok();
        let t = t0.elapsed();
        c.delete_force().ok();
        c.assert_no_leftovers();
        t
    };
    let points = 120u32;
    let step = probe_time.mul_f64(2.0) / points;
    let mut killed_early = 0;
    for i in 0..points {
        let c = Container::new("crash", &b);
        let mut cmd = c.command();
        cmd.arg("create")
            .arg("--bundle")
            .arg(&c.bundle)
            .arg(&c.id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().expect("spawn create");
        std::thread::sleep(step * i);
        if child.try_wait().unwrap().is_none() {
            killed_early += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        c.delete_force().ok();
        c.assert_no_leftovers();
        assert_eq!(
            stray_entries(&c.root(), &c.id),
            Vec::<String>::new(),
            "kill point {i} ({:?}) left files in the state root",
            step * i
        );
        assert!(!c.state_dir().exists(), "kill point {i}: state dir left");
    }
    // Many points really fell inside create's run (the lean runtime creates in a few ms, so
    // spawning and sleeping take a share of each interval).
    assert!(killed_early >= points / 10, "{killed_early} of {points}");
}
