//! Extracted layers are cached per chainID (the layer *and* everything below it), not per
//! diffID: in overlay mode a hardlink to a file of a lower layer is materialised from that
//! lower layer, so the same layer diff on two different bases extracts to two different
//! directories. Checked end to end against the registry and `umoci unpack`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use integration::image::{
    BuiltImage, BuiltLayer, Compression, Config, Entry, Format, ImageBuilder, build_layer,
};
use integration::pull::{
    PullEnv, assert_cache_consistent, cached_layer_keys, cached_layers, chain_ids, plain_dir_args,
    remove_bundle_args, run, umoci_rootfs,
};
use integration::tree;

fn base(content: &str, mode: u32, owner: u64) -> BuiltLayer {
    build_layer(
        &[
            Entry::dir("etc"),
            Entry::file("etc/data", content)
                .mode(mode)
                .owner(owner, owner),
        ],
        Compression::Gzip,
        Format::Oci,
    )
}

/// The shared top layer: a hardlink whose target only exists in the layer below.
fn top() -> BuiltLayer {
    build_layer(
        &[
            Entry::dir("etc"),
            Entry::hardlink("etc/link", "etc/data"),
            Entry::file("top", "top\n"),
        ],
        Compression::Gzip,
        Format::Oci,
    )
}

fn image(base: &BuiltLayer, top: &BuiltLayer) -> BuiltImage {
    ImageBuilder::new()
        .config(Config::default().cmd(&["/bin/sh"]))
        .built_layer(base.clone())
        .built_layer(top.clone())
        .build()
}

/// Overlay mode turns a cross-layer hardlink into a copy (overlayfs cannot link across lower
/// dirs), so there link identity is not compared; content, mode, owner, xattrs and mtime are.
fn assert_matches_umoci(image: &BuiltImage, rootfs: &Path, overlay: bool) {
    let scratch = tempfile::tempdir().unwrap();
    let strip = |mut t: tree::Tree| {
        if overlay {
            t.values_mut().for_each(|n| n.hardlink_of = None);
        }
        t
    };
    let theirs = strip(tree::snapshot(&umoci_rootfs(image, scratch.path())).unwrap());
    let ours = strip(tree::snapshot(rootfs).unwrap());
    let d = tree::diff(&theirs, &ours, true);
    assert!(
        d.is_empty(),
        "{}: differs from umoci (first = umoci, second = mocker-pull):\n{}",
        rootfs.display(),
        d.join("\n")
    );
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn same_layer_on_different_bases_keeps_each_bases_hardlink_target() {
    let env = PullEnv::new();
    let (base_a, base_b, top) = (
        base("from base A\n", 0o644, 0),
        base("from base B, which is longer\n", 0o600, 1000),
        top(),
    );
    let (img_a, img_b) = (image(&base_a, &top), image(&base_b, &top));
    let ra = env.push("chain/a", "v1", &img_a);
    let rb = env.push("chain/b", "v1", &img_b);
    let (dir_a, dir_b) = (env.dir("a"), env.dir("b"));
    env.pull(&ra, &dir_a, &[]).ok();
    env.pull(&rb, &dir_b, &[]).ok();

    for (dir, want, mode, uid) in [
        (&dir_a, "from base A\n", 0o644, 0),
        (&dir_b, "from base B, which is longer\n", 0o600, 1000),
    ] {
        let r = dir.join("rootfs");
        assert_eq!(read(&r.join("etc/data")), want);
        assert_eq!(
            read(&r.join("etc/link")),
            want,
            "{}: the hardlink shows another image's base",
            dir.display()
        );
        let m = fs::symlink_metadata(r.join("etc/link")).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid()), (mode, uid));
        assert_eq!(read(&r.join("top")), "top\n");
    }
    assert_matches_umoci(&img_a, &dir_a.join("rootfs"), true);
    assert_matches_umoci(&img_b, &dir_b.join("rootfs"), true);
    // A plain rootfs (layers applied in order from the cached blobs) keeps the real hardlink.
    for (img, r, name) in [(&img_b, &rb, "b-plain"), (&img_a, &ra, "a-plain")] {
        let plain = env.dir(name);
        env.pull(r, &plain, &plain_dir_args()).ok();
        assert_matches_umoci(img, &plain.join("rootfs"), false);
        let m = fs::metadata(plain.join("rootfs/etc/link")).unwrap();
        assert_eq!(
            m.nlink(),
            2,
            "{name}: etc/link is not a hardlink of etc/data"
        );
    }

    // The cache holds the top layer twice, once per base, under its chainIDs; the base
    // layers' chainIDs are their diffIDs.
    let ids = |i: &BuiltImage| {
        chain_ids(
            &i.layers
                .iter()
                .map(|l| l.diff_id.as_str())
                .collect::<Vec<_>>(),
        )
    };
    let (ca, cb) = (ids(&img_a), ids(&img_b));
    assert_eq!(ca[0], base_a.diff_id);
    assert_ne!(ca[1], cb[1]);
    let mut want_keys = [ca.clone(), cb.clone()].concat();
    want_keys.sort();
    assert_eq!(cached_layer_keys(env.cache()), want_keys);
    let mut want_diffs = vec![
        base_a.diff_id.clone(),
        base_b.diff_id.clone(),
        top.diff_id.clone(),
        top.diff_id.clone(),
    ];
    want_diffs.sort();
    assert_eq!(cached_layers(env.cache()), want_diffs);
    assert_cache_consistent(env.cache());

    // Warm re-pulls (bundles mounted from the cache) stay correct, in either order.
    let (dir_b2, dir_a2) = (env.dir("b2"), env.dir("a2"));
    env.pull(&rb, &dir_b2, &[]).ok();
    env.pull(&ra, &dir_a2, &[]).ok();
    assert_eq!(read(&dir_a2.join("rootfs/etc/link")), "from base A\n");
    assert_eq!(
        read(&dir_b2.join("rootfs/etc/link")),
        "from base B, which is longer\n"
    );

    // `rm` of one image keeps the other's chain (and the mounted bundles' layers).
    run(env.cmd().args(["rm", &ra])).ok();
    for d in [&dir_a, &dir_a2] {
        run(env.cmd().args(remove_bundle_args(d))).ok();
    }
    let keys = cached_layer_keys(env.cache());
    assert_eq!(keys.len(), 4, "bundles of b still mounted: {keys:?}");
    run(env.cmd().arg("prune")).ok();
    let mut b_keys = cb.clone();
    b_keys.sort();
    assert_eq!(
        cached_layer_keys(env.cache()),
        b_keys,
        "prune keeps exactly the mounted bundles' chain"
    );
    assert_eq!(
        read(&dir_b.join("rootfs/etc/link")),
        "from base B, which is longer\n"
    );
}

/// A cache written before chainIDs keyed a non-base layer by its diffID. Such an entry is
/// never used (its content may come from another base) and garbage collection removes it.
#[test]
fn old_diff_id_keyed_layers_are_ignored_and_pruned() {
    let env = PullEnv::new();
    let (base_a, base_b, top) = (
        base("from base A\n", 0o644, 0),
        base("from base B\n", 0o644, 0),
        top(),
    );
    let (img_a, img_b) = (image(&base_a, &top), image(&base_b, &top));
    let ra = env.push("old/a", "v1", &img_a);
    let rb = env.push("old/b", "v1", &img_b);
    let dir_a = env.dir("a");
    env.pull(&ra, &dir_a, &[]).ok();
    // What the old code left: A's top layer (hardlink materialised from base A) under the
    // top layer's diffID, with a layer.json of the old format.
    let layers = env.cache().join("layers/sha256");
    let ca = chain_ids(&[&base_a.diff_id, &top.diff_id]);
    let old = layers.join(top.diff_id.trim_start_matches("sha256:"));
    run(Command::new("cp")
        .arg("-a")
        .arg(layers.join(ca[1].trim_start_matches("sha256:")))
        .arg(&old))
    .ok();
    fs::write(
        old.join("layer.json"),
        format!(
            r#"{{"diff_id":"{}","blob_digest":"{}","entries":3,"bytes":4,"implicit_dirs":[]}}"#,
            top.diff_id, top.blob.digest
        ),
    )
    .unwrap();

    let dir_b = env.dir("b");
    env.pull(&rb, &dir_b, &[]).ok();
    assert_eq!(read(&dir_b.join("rootfs/etc/link")), "from base B\n");
    assert!(old.is_dir(), "a pull does not collect garbage");
    for d in [&dir_a, &dir_b] {
        run(env.cmd().args(remove_bundle_args(d))).ok();
    }
    run(env.cmd().args(["rm", &rb])).ok();
    assert!(!old.exists(), "rm left the old diffID-keyed layer");
    let mut a_keys = ca.clone();
    a_keys.sort();
    assert_eq!(cached_layer_keys(env.cache()), a_keys);
    run(env.cmd().arg("prune")).ok();
    assert_eq!(cached_layer_keys(env.cache()), Vec::<String>::new());
}
