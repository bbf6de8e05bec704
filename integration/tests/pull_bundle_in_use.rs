//! `mocker-pull rm-bundle DIR` refuses, changing nothing, while a container runs on the
//! bundle (created or running, with the runtime under test: mocker-runtime, or runc/crun via
//! `$MOCKER_TEST_RUNTIME`), or while a process works inside its rootfs; once they are gone it
//! removes everything.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::image::{Compression, Format, busybox_image};
use integration::pull::{PullEnv, list_tree, mounts_under, remove_bundle_args, run, runtime};
use integration::runtime::{Out, run_captured, unique_id};

/// A container on a pulled bundle, driven through the runtime's CLI with a private `--root`;
/// force-deleted on drop whatever happened.
struct Ctr {
    id: String,
    work: tempfile::TempDir,
    bundle: PathBuf,
}

impl Ctr {
    fn new(bundle: &Path) -> Ctr {
        let work = tempfile::Builder::new()
            .prefix("mocker-inuse-")
            .tempdir()
            .unwrap();
        fs::create_dir(work.path().join("root")).unwrap();
        fs::create_dir(work.path().join("io")).unwrap();
        Ctr {
            id: unique_id("inuse"),
            work,
            bundle: bundle.to_path_buf(),
        }
    }

    fn rt(&self, args: &[&str]) -> Out {
        let mut c = Command::new(runtime());
        c.arg("--root")
            .arg(self.work.path().join("root"))
            .args(args);
        let out = run_captured(c, &self.work.path().join("io"), Duration::from_secs(60))
            .unwrap()
            .0;
        assert!(!out.timed_out, "{out}");
        out
    }

    fn create(&self) {
        let b = self.bundle.to_string_lossy().into_owned();
        self.rt(&["create", "--bundle", &b, &self.id]).ok();
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_str(&self.rt(&["state", &self.id]).ok().stdout).unwrap()
    }

    fn wait_status(&self, want: &str) {
        let t = Instant::now();
        while self.state()["status"] != want {
            assert!(t.elapsed() < Duration::from_secs(30), "never {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> i64 {
        self.state()["pid"].as_i64().unwrap()
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = self.rt(&["delete", "--force", &self.id]);
    }
}

/// `rm-bundle` must fail naming DIR and `pid`, and leave the bundle exactly as it was.
fn assert_refused(env: &PullEnv, dir: &Path, pid: i64, needle: &str) {
    let tree = list_tree(dir);
    let mounts = mounts_under(dir);
    let records = list_tree(&env.cache().join("bundles"));
    run(env.cmd().args(remove_bundle_args(dir))).fails_with(&[
        &dir.to_string_lossy(),
        &format!("pid {pid}"),
        needle,
    ]);
    assert_eq!(list_tree(dir), tree, "rm-bundle changed the bundle");
    assert_eq!(mounts_under(dir), mounts, "rm-bundle changed the mounts");
    assert_eq!(list_tree(&env.cache().join("bundles")), records);
    assert!(dir.join("rootfs/bin/busybox").is_file());
}

fn assert_removed(env: &PullEnv, dir: &Path) {
    run(env.cmd().args(remove_bundle_args(dir))).ok();
    assert!(fs::symlink_metadata(dir).is_err(), "{:?}", list_tree(dir));
    assert_eq!(mounts_under(dir), Vec::<String>::new());
    assert_eq!(
        list_tree(&env.cache().join("bundles")),
        Vec::<String>::new()
    );
}

fn refuses_while_a_container_uses_the_bundle(extra: &[&str], overlay: bool) {
    let env = PullEnv::new();
    let img = busybox_image(Format::Oci, Compression::Gzip).unwrap();
    let image = env.push("bb", "latest", &img);
    let dir = env.dir("bundle");
    let mut args = extra.to_vec();
    args.extend(["--", "sleep", "1000"]);
    env.pull(&image, &dir, &args).ok();
    let dir = dir.canonicalize().unwrap();
    assert_eq!(
        mounts_under(&dir).len(),
        usize::from(overlay),
        "overlay mount"
    );
    let ctr = Ctr::new(&dir);

    // Created: the init process already sits in the rootfs, waiting to exec.
    ctr.create();
    ctr.wait_status("created");
    assert_refused(&env, &dir, ctr.pid(), "in use by a running container");

    ctr.rt(&["start", &ctr.id]).ok();
    ctr.wait_status("running");
    let pid = ctr.pid();
    assert_refused(&env, &dir, pid, "stop it first");
    // The container still sees its files: nothing was unmounted under it.
    assert!(Path::new(&format!("/proc/{pid}/root/bin/busybox")).is_file());

    ctr.rt(&["kill", &ctr.id, "KILL"]).ok();
    ctr.wait_status("stopped");
    ctr.rt(&["delete", &ctr.id]).ok();
    assert_removed(&env, &dir);
}

#[test]
fn rm_bundle_refuses_while_a_container_runs_on_the_overlay() {
    refuses_while_a_container_uses_the_bundle(&[], true);
}

#[test]
fn rm_bundle_refuses_while_a_container_runs_on_a_plain_rootfs() {
    refuses_while_a_container_uses_the_bundle(&["--no-overlay"], false);
}

/// A child process killed and reaped on drop, even when the test fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A host process whose working directory is inside the rootfs (a shell `cd`'d into it).
#[test]
fn rm_bundle_refuses_while_a_process_works_inside_the_rootfs() {
    let env = PullEnv::new();
    let img = busybox_image(Format::Oci, Compression::Gzip).unwrap();
    let image = env.push("bb", "latest", &img);
    for (name, extra) in [("ov", &[][..]), ("plain", &["--no-overlay"][..])] {
        let dir = env.dir(name);
        env.pull(&image, &dir, extra).ok();
        let dir = dir.canonicalize().unwrap();
        let child = Killed(
            Command::new("sleep")
                .arg("1000")
                .current_dir(dir.join("rootfs/bin"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pid = i64::from(child.0.id());
        assert_refused(&env, &dir, pid, "works inside its rootfs");
        drop(child);
        assert_removed(&env, &dir);
    }
}
