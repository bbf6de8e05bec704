//! The content-addressed cache: shared layers fetched once, concurrent pulls, warm and offline
//! re-pulls, private bundles, bundle removal, and `images` / `rm` / `prune`.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use integration::image::{
    BuiltImage, BuiltLayer, Compression, Config, Entry, Format, ImageBuilder, build_layer,
    busybox_entries,
};
use integration::pull::{
    PullEnv, assert_cache_consistent, cached_layers, corrupt_blobs, list_tree, mounts_under,
    plain_dir_args, remove_bundle_args, run,
};
use integration::tree;

fn base_layer() -> BuiltLayer {
    build_layer(&busybox_entries().unwrap(), Compression::Gzip, Format::Oci)
}

fn image_on(base: &BuiltLayer, name: &str) -> BuiltImage {
    ImageBuilder::new()
        .config(Config::default().cmd(&["sh"]))
        .built_layer(base.clone())
        .layer(&[Entry::file(name, format!("{name}\n"))])
        .build()
}

fn snap(p: &Path) -> tree::Tree {
    tree::snapshot(p).unwrap_or_else(|e| panic!("snapshot {}: {e}", p.display()))
}

fn assert_same(a: &tree::Tree, b: &tree::Tree, what: &str) {
    let d = tree::diff(a, b, true);
    assert!(d.is_empty(), "{what}:\n{}", d.join("\n"));
}

#[test]
fn shared_layer_is_fetched_once_and_warm_repull_fetches_nothing() {
    let env = PullEnv::new();
    let base = base_layer();
    let a = image_on(&base, "only-in-a");
    let b = image_on(&base, "only-in-b");
    let ra = env.push("one/a", "v1", &a);
    let rb = env.push("two/b", "v1", &b);

    env.pull(&ra, &env.dir("a1"), &[]).ok();
    env.pull(&rb, &env.dir("b1"), &[]).ok();
    assert_eq!(
        env.registry.blob_get_count(&base.blob.digest),
        1,
        "the shared layer was downloaded more than once:\n{}",
        env.registry.log()
    );
    assert!(env.dir("a1/rootfs/only-in-a").is_file());
    assert!(!env.dir("a1/rootfs/only-in-b").exists());
    assert!(env.dir("b1/rootfs/only-in-b").is_file());
    let layers = cached_layers(env.cache());
    assert!(layers.contains(&base.diff_id), "{layers:?}");

    // Warm: no blob fetched again, same rootfs.
    let t = Instant::now();
    env.pull(&ra, &env.dir("a2"), &[]).ok();
    let warm = t.elapsed();
    for blob in [&a.layers[0].blob, &a.layers[1].blob] {
        assert_eq!(
            env.registry.blob_get_count(&blob.digest),
            1,
            "warm re-pull fetched {} again",
            blob.digest
        );
    }
    assert_same(
        &snap(&env.dir("a1/rootfs")),
        &snap(&env.dir("a2/rootfs")),
        "warm re-pull differs",
    );
    // The benchmark measures the 0.3 s target on a release build; this only catches a warm
    // pull that does the cold work again.
    assert!(warm < Duration::from_secs(3), "warm re-pull took {warm:?}");
    assert_cache_consistent(env.cache());
}

#[test]
fn concurrent_pulls_of_one_image_all_succeed() {
    let env = PullEnv::new();
    let img = image_on(&base_layer(), "concurrent");
    let image = env.push("bb", "latest", &img);
    for mode in [vec![], plain_dir_args()] {
        let tag = if mode.is_empty() { "ov" } else { "plain" };
        let children: Vec<_> = (0..3)
            .map(|i| {
                env.cmd()
                    .args(&mode)
                    .arg(&image)
                    .arg(env.dir(&format!("{tag}{i}")))
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn mocker-pull")
            })
            .collect();
        for (i, c) in children.into_iter().enumerate() {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "concurrent pull {i} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let first = snap(&env.dir(&format!("{tag}0/rootfs")));
        for i in 1..3 {
            assert_same(
                &first,
                &snap(&env.dir(&format!("{tag}{i}/rootfs"))),
                "concurrent bundles differ",
            );
        }
    }
    assert!(
        env.registry.blob_get_count(&img.layers[0].blob.digest) <= 3,
        "fetched the layer more than once per puller"
    );
    assert_eq!(corrupt_blobs(env.cache()), Vec::<String>::new());
    assert!(list_tree(&env.cache().join("tmp")).is_empty());
    // The cache still serves a clean pull.
    env.pull(&image, &env.dir("after"), &[]).ok();
    assert_same(
        &snap(&env.dir("ov0/rootfs")),
        &snap(&env.dir("after/rootfs")),
        "pull after concurrent pulls differs",
    );
}

/// With the registry down a warm pull either works from the cache (same rootfs) or fails
/// cleanly naming the registry; either way the cache stays intact, and once the registry is
/// back the pull fetches no blob again.
#[test]
fn warm_pull_with_the_registry_down() {
    let mut env = PullEnv::new();
    let img = image_on(&base_layer(), "offline");
    let by_tag = env.push("bb", "latest", &img);
    let by_digest = env.image_ref("bb", img.digest());
    env.pull(&by_tag, &env.dir("online"), &[]).ok();
    let addr = env.registry.addr();
    let online = snap(&env.dir("online/rootfs"));
    env.registry.stop();

    for (name, image) in [("digest", &by_digest), ("tag", &by_tag)] {
        let dir = env.dir(&format!("offline-{name}"));
        let out = env.pull(image, &dir, &[]);
        if out.success() {
            assert_same(&online, &snap(&dir.join("rootfs")), "offline pull differs");
        } else {
            out.fails_with(&[&addr]);
            assert!(!dir.exists(), "failed offline pull left {}", dir.display());
            eprintln!("offline pull by {name} is refused: {}", out.stderr().trim());
        }
        assert_cache_consistent(env.cache());
    }

    env.registry.restart().unwrap();
    env.pull(&by_digest, &env.dir("back"), &[]).ok();
    for l in &img.layers {
        assert_eq!(
            env.registry.blob_get_count(&l.blob.digest),
            1,
            "refetched {}",
            l.blob.digest
        );
    }
    assert_same(
        &online,
        &snap(&env.dir("back/rootfs")),
        "pull after restart differs",
    );
}

/// Writes in one bundle's rootfs: change, add, delete, chmod.
fn scribble(rootfs: &Path) {
    fs::write(rootfs.join("etc/os-release"), "tampered\n").unwrap();
    fs::write(rootfs.join("new-file"), "new\n").unwrap();
    fs::remove_file(rootfs.join("bin/ls")).unwrap();
    // In place, through the inode: caught if the puller hardlinks files from the cache.
    use std::io::Write;
    fs::OpenOptions::new()
        .append(true)
        .open(rootfs.join("bin/busybox"))
        .unwrap()
        .write_all(b"appended")
        .unwrap();
    fs::write(rootfs.join("only-in-a"), "changed\n").unwrap();
    std::os::unix::fs::chown(rootfs.join("etc/passwd"), Some(4321), Some(4321)).unwrap();
}

#[test]
fn bundles_are_private() {
    let env = PullEnv::new();
    let img = image_on(&base_layer(), "only-in-a");
    let image = env.push("bb", "latest", &img);
    for mode in [vec![], plain_dir_args()] {
        let tag = if mode.is_empty() { "ov" } else { "plain" };
        let (b1, b2, b3) = (
            env.dir(&format!("{tag}1")),
            env.dir(&format!("{tag}2")),
            env.dir(&format!("{tag}3")),
        );
        env.pull(&image, &b1, &mode).ok();
        env.pull(&image, &b2, &mode).ok();
        let before2 = snap(&b2.join("rootfs"));
        let cache_before = snap(&env.cache().join("layers"));
        scribble(&b1.join("rootfs"));
        assert_eq!(
            fs::read_to_string(b1.join("rootfs/etc/os-release")).unwrap(),
            "tampered\n"
        );
        assert_same(
            &before2,
            &snap(&b2.join("rootfs")),
            "write leaked into another bundle",
        );
        assert_same(
            &cache_before,
            &snap(&env.cache().join("layers")),
            "write leaked into the cache",
        );
        env.pull(&image, &b3, &mode).ok();
        assert_same(
            &before2,
            &snap(&b3.join("rootfs")),
            "write leaked into a new pull",
        );
    }
    assert_eq!(corrupt_blobs(env.cache()), Vec::<String>::new());
}

#[test]
fn removing_a_bundle_leaves_no_mount() {
    let env = PullEnv::new();
    let image = env.push("bb", "latest", &image_on(&base_layer(), "x"));
    for mode in [vec![], plain_dir_args()] {
        let dir = env.dir(if mode.is_empty() { "ov" } else { "plain" });
        env.pull(&image, &dir, &mode).ok();
        assert!(dir.join("rootfs/bin/busybox").is_file());
        run(env.cmd().args(remove_bundle_args(&dir))).ok();
        assert!(!dir.exists(), "bundle dir still there after removal");
        assert_eq!(mounts_under(&dir), Vec::<String>::new());
        assert!(
            list_tree(&env.cache().join("bundles")).is_empty(),
            "bundle record kept after removal"
        );
        assert!(mounts_under(env.cache()).is_empty());
    }
    // Removing something that is not a bundle is an error.
    let stray = env.dir("keep-stray");
    fs::create_dir(&stray).unwrap();
    fs::write(stray.join("file"), "x").unwrap();
    run(env.cmd().args(remove_bundle_args(&stray))).fails_with(&[]);
    assert!(
        stray.join("file").is_file(),
        "removal deleted a non-bundle dir"
    );
}

fn cached_blobs(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = list_tree(&cache.join("blobs/sha256"))
        .into_iter()
        .map(|h| format!("sha256:{h}"))
        .collect();
    v.sort();
    v
}

#[test]
fn images_rm_and_prune_manage_the_cache() {
    let env = PullEnv::new();
    let base = base_layer();
    let a = image_on(&base, "only-in-a");
    let b = image_on(&base, "only-in-b");
    let ra = env.push("one/a", "v1", &a);
    let rb = env.push("two/b", "v2", &b);
    let dir_a = env.dir("a");
    env.pull(&ra, &dir_a, &[]).ok();
    env.pull(&rb, &env.dir("b"), &plain_dir_args()).ok();

    let list = run(env.cmd().arg("images")).ok().stdout();
    for want in ["one/a", "v1", "two/b", "v2", &a.digest()[7..19], "amd64"] {
        assert!(list.contains(want), "`images` lacks {want}:\n{list}");
    }

    // rm: the record goes, the layers of a bundle still mounted stay.
    run(env.cmd().args(["rm", &ra])).ok();
    let list = run(env.cmd().arg("images")).ok().stdout();
    assert!(!list.contains("one/a"), "rm kept the image:\n{list}");
    assert!(list.contains("two/b"), "rm removed another image:\n{list}");
    run(env.cmd().args(["rm", &ra])).fails_with(&["one/a"]);
    assert_eq!(
        fs::read_to_string(dir_a.join("rootfs/only-in-a")).unwrap(),
        "only-in-a\n"
    );

    // prune: every image goes; layers mounted by dir_a stay, two/b's own layer goes.
    run(env.cmd().arg("prune")).ok();
    let list = run(env.cmd().arg("images")).ok().stdout();
    assert!(!list.contains("two/b"), "prune kept an image:\n{list}");
    let layers = cached_layers(env.cache());
    for l in &a.layers {
        assert!(
            layers.contains(&l.diff_id),
            "prune removed mounted layer {}",
            l.diff_id
        );
    }
    assert!(
        !cached_blobs(env.cache()).contains(&b.layers[1].blob.digest),
        "prune kept the blob of two/b's own layer"
    );
    assert!(dir_a.join("rootfs/bin/busybox").is_file());
    assert_eq!(
        fs::read_to_string(dir_a.join("rootfs/only-in-a")).unwrap(),
        "only-in-a\n"
    );

    // Once the bundle is gone, prune frees its layers too.
    run(env.cmd().args(remove_bundle_args(&dir_a))).ok();
    run(env.cmd().arg("prune")).ok();
    assert_eq!(cached_layers(env.cache()), Vec::<String>::new());
    assert_eq!(cached_blobs(env.cache()), Vec::<String>::new());
    assert!(list_tree(&env.cache().join("bundles")).is_empty());

    // And a pull after prune fetches again and works.
    env.pull(&ra, &env.dir("a-again"), &[]).ok();
    assert_eq!(env.registry.blob_get_count(&a.layers[1].blob.digest), 2);
    assert_cache_consistent(env.cache());
}
