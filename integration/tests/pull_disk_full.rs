//! A layer that decompresses to more than the disk holds (a decompression bomb): one clear
//! line, a non-zero exit, and no partial cache entry or bundle left behind.

use integration::image::{Config, Entry, ImageBuilder};
use integration::pull::{PullEnv, require_root};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

const MIB: usize = 1 << 20;

/// Mounts a 16 MiB tmpfs over `dir`: the disk that fills up.
fn small_disk(dir: &Path) {
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=16m"),
    )
    .expect("mount a small tmpfs");
}

/// A small disk for bundles, unmounted however the test ends.
struct BundleDisk(tempfile::TempDir);

impl BundleDisk {
    fn new() -> BundleDisk {
        let d = tempfile::Builder::new()
            .prefix("mocker-small-disk-")
            .tempdir()
            .unwrap();
        small_disk(d.path());
        BundleDisk(d)
    }
}

impl Drop for BundleDisk {
    fn drop(&mut self) {
        let _ = umount2(self.0.path(), MntFlags::MNT_DETACH);
    }
}

fn bomb() -> integration::image::BuiltImage {
    // 64 MiB of zeros: about 64 KiB once gzipped.
    ImageBuilder::new()
        .config(Config::default().cmd(&["/hello"]))
        .layer(&[Entry::file("hello", "hello\n")])
        .layer(&[Entry::file("zeros", vec![0u8; 64 * MIB])])
        .build()
}

#[test]
fn a_layer_larger_than_the_disk_is_one_line_and_leaves_nothing() {
    require_root();
    let env = PullEnv::new();
    let img = bomb();
    assert!(
        img.layers[1].blob.size() < MIB,
        "the bomb must be small compressed"
    );
    let image = env.push("bomb", "latest", &img);
    // The overlay path unpacks layers in the cache; --no-overlay unpacks into the bundle.
    small_disk(env.cache());
    let bundles = BundleDisk::new();
    for extra in [&[][..], &["--no-overlay"][..]] {
        let dir = bundles.0.path().join("bundle");
        let out = env.pull(&image, &dir, extra);
        let line = out.fails_with(&["no space left on device"]);
        assert!(line.contains(&img.layers[1].blob.digest), "{line}");
        let err = out.stderr();
        let errors = err
            .lines()
            .filter(|l| l.starts_with("mocker-pull:"))
            .count();
        assert_eq!(errors, 1, "{err}");
        // A full disk is not cured by downloading again.
        assert!(!err.contains("retrying"), "{err}");
        let diff_ids: Vec<&str> = img.layers.iter().map(|l| l.diff_id.as_str()).collect();
        env.assert_nothing_left(&dir, &diff_ids[1..]);
    }
}

#[test]
fn max_layer_size_refuses_a_bomb_early_and_admits_what_fits() {
    require_root();
    let env = PullEnv::new();
    let img = bomb();
    let image = env.push("bomb", "latest", &img);
    let diff_ids: Vec<&str> = img.layers.iter().map(|l| l.diff_id.as_str()).collect();
    for extra in [
        &["--max-layer-size", "8M"][..],
        &["--max-layer-size", "8M", "--no-overlay"][..],
    ] {
        let dir = env.dir("bundle");
        let out = env.pull(&image, &dir, extra);
        let line = out.fails_with(&["--max-layer-size (8388608 bytes)"]);
        assert!(line.contains(&img.layers[1].blob.digest), "{line}");
        env.assert_nothing_left(&dir, &diff_ids[1..]);
    }
    // The cap is on uncompressed bytes, per layer: 64 MiB fits under 65M.
    let dir = env.dir("bundle");
    env.pull(&image, &dir, &["--max-layer-size", "65M"]).ok();
    assert_eq!(
        std::fs::metadata(dir.join("rootfs/zeros")).unwrap().len(),
        64 * MIB as u64
    );
}

#[test]
fn max_layer_size_must_be_a_size() {
    let env = PullEnv::new();
    for bad in ["10X", "0", "lots"] {
        let dir = env.dir("bundle");
        let out = env.pull("127.0.0.1:1/x:y", &dir, &["--max-layer-size", bad]);
        assert!(!out.success());
        assert!(
            out.stderr().contains("--max-layer-size"),
            "{}",
            out.stderr()
        );
        assert!(!dir.exists());
    }
}
