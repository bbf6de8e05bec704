//! Real cgroups, as root, on whatever this host has: hybrid here, pure v2 in the VM
//! (`just test-cgroup-v2`). Each test uses its own path and removes it even when it fails.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxHugepageLimitBuilder,
    LinuxMemoryBuilder, LinuxNetworkBuilder, LinuxPidsBuilder, LinuxResources,
    LinuxResourcesBuilder,
};

use super::*;

/// Not root: say so on the real stderr (the test harness captures `eprintln!` of passing
/// tests) and skip.
fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED cgroup test: needs root (cgroups are real here)"
    );
    false
}

fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "/mocker-unit-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Kills and removes the cgroup (and an optional top directory) when the test ends.
struct Cleanup {
    cg: Option<Cgroup>,
    extra: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(cg) = &self.cg {
            let _ = cg.kill_all(Signal::SIGKILL);
            let _ = cg.destroy();
        }
        for p in &self.extra {
            if let Ok(cg) = Cgroup::open(p) {
                let _ = cg.destroy();
            }
        }
    }
}

/// The value of `file` in whichever of the cgroup's directories has it.
fn read(cg: &Cgroup, file: &str) -> Option<String> {
    cg.dirs()
        .iter()
        .find_map(|d| fs::read_to_string(d.join(file)).ok())
        .map(|s| s.trim().to_string())
}

fn v2(cg: &Cgroup) -> bool {
    !cg.layout.is_v1()
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep")
}

fn resources(mem: i64, pids: i64) -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(mem).build().unwrap())
        .pids(LinuxPidsBuilder::default().limit(pids).build().unwrap())
        .cpu(
            LinuxCpuBuilder::default()
                .quota(50_000i64)
                .period(100_000u64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn assert_gone(dirs: &[PathBuf]) {
    for d in dirs {
        assert!(!d.exists(), "{} is left behind", d.display());
    }
}

#[test]
fn default_path_is_under_mocker() {
    assert_eq!(default_path("abc"), "/mocker/abc");
}

#[test]
fn bad_paths_are_refused() {
    if !root() {
        return;
    }
    for p in ["/", "", "/a/../b", "../x", "./x"] {
        let err = Cgroup::create(p, None).expect_err(p).to_string();
        assert!(err.starts_with("cgroup: cgroupsPath"), "{p}: {err}");
    }
}

#[test]
fn create_limits_join_kill_destroy() {
    if !root() {
        return;
    }
    let path = unique("life");
    let res = resources(64 << 20, 20);
    let cg = Cgroup::create(&path, Some(&res)).expect("create");
    let mut guard = Cleanup {
        cg: Some(cg.clone()),
        extra: vec![],
    };
    assert_eq!(cg.path(), path);
    let dirs = cg.dirs();
    for d in &dirs {
        assert!(d.is_dir(), "{} missing", d.display());
    }
    // On v1/hybrid every mounted hierarchy, the unified one included.
    if !v2(&cg) {
        assert!(dirs.iter().any(|d| d.starts_with("/sys/fs/cgroup/memory")));
        assert!(dirs.iter().any(|d| d.starts_with("/sys/fs/cgroup/pids")));
        if Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
            assert!(dirs.iter().any(|d| d.starts_with("/sys/fs/cgroup/unified")));
        }
        assert_eq!(read(&cg, "memory.limit_in_bytes").unwrap(), "67108864");
        assert_eq!(read(&cg, "cpu.cfs_quota_us").unwrap(), "50000");
        assert_eq!(read(&cg, "cpu.cfs_period_us").unwrap(), "100000");
    } else {
        assert_eq!(dirs.len(), 1);
        assert_eq!(read(&cg, "memory.max").unwrap(), "67108864");
        assert_eq!(read(&cg, "cpu.max").unwrap(), "50000 100000");
    }
    assert_eq!(read(&cg, "pids.max").unwrap(), "20");

    let mut child = sleeper();
    let pid = Pid::from_raw(child.id() as i32);
    cg.add_task(pid).expect("add_task");
    assert_eq!(cg.pids(), vec![pid]);
    // The kernel agrees on every hierarchy, the `0::` line of a hybrid host included.
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in own.lines() {
        let (_, rest) = line.split_once(':').unwrap();
        let (ctrls, p) = rest.split_once(':').unwrap();
        let ours = cg.layout.hierarchies.iter().any(|h| match h.kind {
            Kind::V2 => ctrls.is_empty(),
            Kind::V1 => h.controllers.join(",") == ctrls,
        });
        if ours {
            assert_eq!(p, path, "{line}");
        }
    }

    // destroy kills nothing: it refuses while the process lives.
    let err = cg.destroy().expect_err("destroy with a live process");
    assert!(err.to_string().contains("process(es) still in it"), "{err}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "destroy killed the process"
    );

    cg.kill_all(Signal::SIGKILL).expect("kill_all");
    let status = child.wait().unwrap();
    assert!(!status.success());
    cg.destroy().expect("destroy");
    assert_gone(&dirs);
    cg.destroy().expect("destroy is idempotent");
    assert!(cg.pids().is_empty());
    guard.cg = None;
}

#[test]
fn rejected_limit_names_file_and_leaves_nothing() {
    if !root() {
        return;
    }
    let top = unique("bad");
    let path = format!("{top}/leaf");
    let res = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().cpus("999").build().unwrap())
        .build()
        .unwrap();
    let _guard = Cleanup {
        cg: None,
        extra: vec![path.clone(), top.clone()],
    };
    let err = Cgroup::create(&path, Some(&res))
        .expect_err("cpuset 999")
        .to_string();
    assert!(
        err.starts_with("cgroup cpuset: cpuset.cpus=999: "),
        "unexpected error: {err}"
    );
    assert!(!err.contains('\n'));
    let dirs = Cgroup::open(&path).unwrap().dirs();
    assert_gone(&dirs);
    assert_gone(&Cgroup::open(&top).unwrap().dirs());
}

#[test]
fn memory_rejected_after_other_limits_leaves_nothing() {
    if !root() {
        return;
    }
    // swap (memory+swap) below the memory limit: v1 rejects memory.memsw.limit_in_bytes,
    // libcgroups' v2 code refuses before writing memory.swap.max. cpu and pids limits may
    // already be written by then: the rollback must still remove everything.
    let path = unique("swap");
    let _guard = Cleanup {
        cg: None,
        extra: vec![path.clone()],
    };
    let mut res = resources(64 << 20, 10);
    res.set_memory(Some(
        LinuxMemoryBuilder::default()
            .limit(64i64 << 20)
            .swap(32i64 << 20)
            .build()
            .unwrap(),
    ));
    let err = Cgroup::create(&path, Some(&res))
        .expect_err("swap < limit")
        .to_string();
    assert!(err.starts_with("cgroup memory: "), "{err}");
    assert!(!err.contains('\n'), "{err}");
    assert_gone(&Cgroup::open(&path).unwrap().dirs());
}

#[test]
fn systemd_cgroup_driver_is_refused_clearly() {
    let err = check_systemd_cgroup()
        .expect_err("no systemd driver")
        .to_string();
    assert!(err.starts_with("cgroup: --systemd-cgroup: "), "{err}");
    if !Path::new("/run/systemd/system").exists() {
        assert!(err.contains("systemd does not manage cgroups"), "{err}");
    }
}

#[test]
fn missing_controller_is_a_clear_error_unless_empty() {
    if !root() {
        return;
    }
    // No host here has net_cls (v1 hybrid without it; v2 has no such controller).
    let path = unique("netcls");
    let _guard = Cleanup {
        cg: None,
        extra: vec![path.clone()],
    };
    let has_net_cls = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains("net_cls");
    let res = LinuxResourcesBuilder::default()
        .network(
            LinuxNetworkBuilder::default()
                .class_id(7u32)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    if !has_net_cls {
        let err = Cgroup::create(&path, Some(&res))
            .expect_err("net_cls")
            .to_string();
        assert!(
            err.starts_with("cgroup net_cls: resources.network.classID needs"),
            "{err}"
        );
        assert_gone(&Cgroup::open(&path).unwrap().dirs());
    }
    // Empty values ask for nothing and must not need the controller.
    let empty = LinuxResourcesBuilder::default()
        .network(LinuxNetworkBuilder::default().build().unwrap())
        .hugepage_limits(vec![])
        .build()
        .unwrap();
    let cg = Cgroup::create(&path, Some(&empty)).expect("empty values");
    cg.destroy().unwrap();
    assert_gone(&cg.dirs());
}

#[test]
fn pids_limit_is_enforced() {
    if !root() {
        return;
    }
    let path = unique("pids");
    let res = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(5).build().unwrap())
        .build()
        .unwrap();
    let cg = Cgroup::create(&path, Some(&res)).expect("create");
    let _guard = Cleanup {
        cg: Some(cg.clone()),
        extra: vec![],
    };
    // The shell waits on stdin until it is in the cgroup, then starts background sleeps,
    // printing a count after each successful fork; ash exits at the first failed fork.
    let script = "read go; i=0; while [ $i -lt 20 ]; do \
                  sleep 30 </dev/null >/dev/null 2>&1 & i=$((i+1)); echo $i; done";
    let mut sh = Command::new("/bin/busybox")
        .args(["sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("busybox sh");
    cg.add_task(Pid::from_raw(sh.id() as i32))
        .expect("add_task");
    let mut stdin = sh.stdin.take().unwrap();
    writeln!(stdin, "go").unwrap();
    let out = sh.wait_with_output().unwrap();
    let started = String::from_utf8_lossy(&out.stdout).lines().count();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // sh itself + 4 sleeps = 5 = pids.max.
    assert_eq!(started, 4, "stdout {:?}", out.stdout);
    assert!(!out.status.success());
    assert!(stderr.contains("can't fork"), "stderr: {stderr}");
    let pids = cg.pids();
    assert_eq!(pids.len(), 4, "the 4 sleeps should remain: {pids:?}");
    let events = read(&cg, "pids.events").unwrap();
    let refused: u64 = events
        .strip_prefix("max ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(refused >= 1, "pids.events: {events}");

    cg.kill_all(Signal::SIGKILL).unwrap();
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cg.pids().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    cg.destroy().expect("destroy");
    assert_gone(&cg.dirs());
}

#[test]
fn freeze_and_thaw() {
    if !root() {
        return;
    }
    let path = unique("freeze");
    let cg = Cgroup::create(&path, None).expect("create");
    let _guard = Cleanup {
        cg: Some(cg.clone()),
        extra: vec![],
    };
    let mut child = sleeper();
    cg.add_task(Pid::from_raw(child.id() as i32)).unwrap();
    let state = |cg: &Cgroup| -> String {
        if v2(cg) {
            read(cg, "cgroup.events")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("frozen ").map(str::to_string))
                .unwrap()
        } else {
            read(cg, "freezer.state").unwrap()
        }
    };
    cg.freeze().expect("freeze");
    assert!(matches!(state(&cg).as_str(), "1" | "FROZEN"));
    let stat = fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
    let st = stat.rsplit(") ").next().unwrap().chars().next().unwrap();
    assert!(matches!(st, 'D' | 'S'), "frozen task state {st}");
    assert!(cg.is_frozen());
    // Signalling a paused container keeps it paused (a v2 freezer lets a fatal signal
    // through at once, a v1 freezer only on resume).
    cg.kill_all(Signal::SIGTERM).expect("kill_all while frozen");
    assert!(cg.is_frozen());
    cg.thaw().expect("thaw");
    assert!(!cg.is_frozen());
    assert!(matches!(state(&cg).as_str(), "0" | "THAWED"));
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    cg.destroy().unwrap();
    assert_gone(&cg.dirs());
}

#[test]
fn relative_path_is_below_our_own_cgroup_in_each_hierarchy() {
    if !root() {
        return;
    }
    let rel = unique("rel").trim_start_matches('/').to_string();
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let cg = Cgroup::create(&rel, None).unwrap();
    let _guard = Cleanup {
        cg: Some(cg.clone()),
        extra: vec![],
    };
    // Each directory is below this process's own cgroup in that hierarchy (this hybrid host
    // puts shells in memory:/process_api/..., and / elsewhere).
    let places: std::collections::HashSet<&str> = own
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .collect();
    for d in cg.dirs() {
        assert!(d.is_dir(), "{}", d.display());
        assert!(d.ends_with(&rel));
        assert!(
            places.iter().any(|p| d
                .to_str()
                .unwrap()
                .contains(&format!("{}/{rel}", p.trim_end_matches('/')))),
            "{} is not below this process's cgroup",
            d.display()
        );
    }
    // What create records finds the same directories, whoever opens it later.
    let reopened = Cgroup::open_recorded(&cg.path(), &cg.per_hierarchy()).unwrap();
    assert_eq!(reopened.dirs(), cg.dirs());
    assert_eq!(cg.per_hierarchy().is_empty(), places.len() == 1);
    cg.destroy().unwrap();
    assert_gone(&cg.dirs());
}

#[test]
fn parallel_containers_share_the_mocker_parent() {
    if !root() {
        return;
    }
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for n in 0..15 {
                    let p = default_path(&format!("unit-{}-par{t}-{n}", std::process::id()));
                    let cg = Cgroup::create(&p, None).unwrap_or_else(|e| panic!("{p}: {e}"));
                    for d in cg.dirs() {
                        assert!(d.is_dir(), "{}", d.display());
                    }
                    cg.destroy().unwrap_or_else(|e| panic!("{p}: {e}"));
                    assert_gone(&cg.dirs());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn shared_mocker_parent_stays_while_used() {
    if !root() {
        return;
    }
    let a = default_path(&format!("unit-{}-a", std::process::id()));
    let b = default_path(&format!("unit-{}-b", std::process::id()));
    let ca = Cgroup::create(&a, None).expect("a");
    let _ga = Cleanup {
        cg: Some(ca.clone()),
        extra: vec![],
    };
    let cb = Cgroup::create(&b, None).expect("b");
    let _gb = Cleanup {
        cg: Some(cb.clone()),
        extra: vec![],
    };
    ca.destroy().unwrap();
    assert_gone(&ca.dirs());
    for d in cb.dirs() {
        assert!(d.is_dir(), "{} removed with its sibling", d.display());
        assert!(d.parent().unwrap().is_dir());
    }
    cb.destroy().unwrap();
    assert_gone(&cb.dirs());
}

#[test]
fn hugetlb_limit_where_the_host_has_it() {
    if !root() {
        return;
    }
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        let _ = writeln!(std::io::stderr(), "SKIPPED hugetlb test: no 2MB pages");
        return;
    }
    let path = unique("huge");
    let res = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![
            LinuxHugepageLimitBuilder::default()
                .page_size("2MB")
                .limit(4i64 << 20)
                .build()
                .unwrap(),
        ])
        .build()
        .unwrap();
    let _guard = Cleanup {
        cg: None,
        extra: vec![path.clone()],
    };
    let cg = Cgroup::create(&path, Some(&res)).expect("hugetlb");
    let v = read(&cg, "hugetlb.2MB.max").or_else(|| read(&cg, "hugetlb.2MB.limit_in_bytes"));
    assert_eq!(v.as_deref(), Some("4194304"));
    cg.destroy().unwrap();
    assert_gone(&cg.dirs());
}

#[test]
fn device_rules_are_enforced() {
    if !root() {
        return;
    }
    // v1: libcgroups' devices controller; v2: our eBPF filter.
    let script = "true </dev/kmsg && echo kmsg-r; true >/dev/kmsg && echo kmsg-w; \
                  true <>/dev/null && echo null-rw; true </dev/cpu_dma_latency && echo latency-r";
    let run = |cg: Option<&Cgroup>| -> String {
        let mut sh = Command::new("/bin/busybox")
            .args(["sh", "-c", &format!("read go; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("busybox sh");
        if let Some(cg) = cg {
            cg.add_task(Pid::from_raw(sh.id() as i32))
                .expect("add_task");
        }
        writeln!(sh.stdin.take().unwrap(), "go").unwrap();
        String::from_utf8(sh.wait_with_output().unwrap().stdout).unwrap()
    };
    // Control: outside the cgroup root opens all of them.
    assert_eq!(run(None), "kmsg-r\nkmsg-w\nnull-rw\nlatency-r\n");

    let path = unique("dev");
    let rule = |allow: bool, typ, mm: Option<(i64, i64)>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if let Some((major, minor)) = mm {
            b = b.major(major).minor(minor);
        }
        b.build().unwrap()
    };
    let res = LinuxResourcesBuilder::default()
        .devices(vec![
            rule(false, LinuxDeviceType::A, None, "rwm"),
            rule(true, LinuxDeviceType::C, Some((1, 11)), "r"),
        ])
        .build()
        .unwrap();
    let cg = Cgroup::create(&path, Some(&res)).expect("create");
    let _guard = Cleanup {
        cg: Some(cg.clone()),
        extra: vec![],
    };
    // kmsg read-only as configured, /dev/null from the defaults, cpu_dma_latency (misc) denied.
    assert_eq!(run(Some(&cg)), "kmsg-r\nnull-rw\n");
    cg.destroy().unwrap();
    assert_gone(&cg.dirs());
}
