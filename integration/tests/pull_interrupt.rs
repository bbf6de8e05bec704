//! A pull stopped half-way: SIGINT/SIGTERM clean up (DIR absent, no mount, no partial cache
//! entry); after SIGKILL the next pull still works and `prune` clears the debris.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use integration::image::{BuiltImage, Compression, Config, Entry, ImageBuilder};
use integration::pull::{
    PullEnv, assert_cache_consistent, list_tree, mounts_under, plain_dir_args, run,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Incompressible bytes (xorshift), so the pull takes a moment even from loopback.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

const BIG: usize = 32 << 20;

fn big_image() -> BuiltImage {
    ImageBuilder::new()
        .compression(Compression::None)
        .config(Config::default().cmd(&["/x"]))
        .layer(&[Entry::file("big1", noise(BIG, 0x9e3779b97f4a7c15))])
        .compression(Compression::Gzip)
        .layer(&[Entry::file("small", "small\n")])
        .build()
}

fn spawn_pull(env: &PullEnv, image: &str, dir: &std::path::Path, args: &[&str]) -> Child {
    env.cmd()
        .args(args)
        .arg(image)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mocker-pull")
}

/// Waits until the pull has work in progress (something in the cache's tmp/).
fn wait_in_progress(env: &PullEnv, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while list_tree(&env.cache().join("tmp")).is_empty() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the pull ended ({st}) before any work was seen in the cache's tmp/");
        }
        assert!(Instant::now() < deadline, "no pull progress within 30 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Pulls the big image in each mode, stops each one with `sig` while it works, and expects
/// a failed exit with nothing left behind.
fn stop_midway(sig: Signal) {
    let env = PullEnv::new();
    let img = big_image();
    let image = env.push("big", "t", &img);
    let layers: Vec<&str> = img.layers.iter().map(|l| l.diff_id.as_str()).collect();
    for (i, args) in [vec![], plain_dir_args()].into_iter().enumerate() {
        let dir = env.dir(&format!("bundle{i}"));
        let mut child = spawn_pull(&env, &image, &dir, &args);
        wait_in_progress(&env, &mut child);
        kill(Pid::from_raw(child.id() as i32), sig).unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{sig} {args:?}: the pull finished before the signal (make the image bigger): {err}"
        );
        env.assert_nothing_left(&dir, &layers);
    }
}

#[test]
fn sigint_midway_leaves_nothing() {
    stop_midway(Signal::SIGINT);
}

/// SIGTERM is what `kill`, systemd and container engines send first.
#[test]
fn sigterm_midway_leaves_nothing() {
    stop_midway(Signal::SIGTERM);
}

#[test]
fn pull_after_sigkill_works_and_prune_clears_the_debris() {
    let env = PullEnv::new();
    let img = big_image();
    let image = env.push("big", "t", &img);
    let dir = env.dir("killed");
    let mut child = spawn_pull(&env, &image, &dir, &[]);
    wait_in_progress(&env, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dir.exists(), "a killed pull left {}", dir.display());
    assert!(mounts_under(&dir).is_empty());

    let dir2 = env.dir("again");
    env.pull(&image, &dir2, &[]).ok();
    assert_eq!(std::fs::read(dir2.join("rootfs/big1")).unwrap().len(), BIG);
    run(env.cmd().args(integration::pull::remove_bundle_args(&dir2))).ok();
    run(env.cmd().arg("prune")).ok();
    assert_cache_consistent(env.cache());
    assert!(list_tree(&env.cache().join("tmp")).is_empty());
    let leftovers: Vec<String> = list_tree(env.work.path())
        .into_iter()
        .filter(|p| !p.contains('/'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the killed pull's temp bundle is still next to DIR: {leftovers:?}"
    );
}
