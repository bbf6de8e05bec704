//! Bad input: each a clear one-line error, a non-zero exit, nothing in DIR or the cache.

use std::fs;
use std::time::{Duration, Instant};

use integration::image::{
    Blob, BuiltImage, Compression, Config, Entry, Format, ImageBuilder, busybox_image,
};
use integration::pull::PullEnv;
use integration::registry::closed_addr;
use serde_json::{Value, json};

fn small_image() -> BuiltImage {
    ImageBuilder::new()
        .config(Config::default().cmd(&["/hello"]))
        .layer(&[Entry::file("hello", "hello\n")])
        .layer(&[Entry::file("second", "2\n")])
        .build()
}

fn diff_ids(img: &BuiltImage) -> Vec<&str> {
    img.layers.iter().map(|l| l.diff_id.as_str()).collect()
}

/// Damages one blob in the registry's storage, expects a clean failure naming exactly that
/// fault (`expect`), restores the blob and expects a successful pull (a failed pull must not
/// poison the cache).
fn damaged_blob(
    digest_of: impl Fn(&BuiltImage) -> String,
    damage: fn(&mut Vec<u8>),
    by_digest: bool,
    expect: &str,
) {
    let env = PullEnv::new();
    let img = busybox_image(Format::Oci, Compression::Gzip).unwrap();
    let mut image = env.push("bb", "latest", &img);
    if by_digest {
        image = env.image_ref("bb", img.digest());
    }
    let path = env.registry.blob_path(&digest_of(&img));
    let original = fs::read(&path).unwrap();
    let mut bad = original.clone();
    damage(&mut bad);
    fs::write(&path, &bad).unwrap();

    let dir = env.dir("bundle");
    let out = env.pull(&image, &dir, &[]);
    out.fails_with(&[expect]);
    // Bad content stays bad: asking the registry again is no cure.
    assert!(!out.stderr().contains("retrying"), "{}", out.stderr());
    env.assert_nothing_left(&dir, &diff_ids(&img));

    fs::write(&path, &original).unwrap();
    env.pull(&image, &dir, &[]).ok();
    assert!(dir.join("rootfs/bin/busybox").is_file());
}

// Same signature as the other damages, which resize.
#[allow(clippy::ptr_arg)]
fn flip_middle_byte(b: &mut Vec<u8>) {
    let i = b.len() / 2;
    b[i] ^= 0x55;
}

fn truncate_half(b: &mut Vec<u8>) {
    b.truncate(b.len() / 2);
}

#[test]
fn corrupted_layer_blob_is_a_digest_mismatch() {
    damaged_blob(
        |i| i.layers[0].blob.digest.clone(),
        flip_middle_byte,
        false,
        "blob digest mismatch",
    );
}

#[test]
fn truncated_layer_blob_is_refused() {
    damaged_blob(
        |i| i.layers[0].blob.digest.clone(),
        truncate_half,
        false,
        "blob truncated",
    );
}

#[test]
fn corrupted_config_blob_is_a_digest_mismatch() {
    damaged_blob(
        |i| i.config.digest.clone(),
        |b| {
            // Still valid JSON, different bytes.
            let mut v: Value = serde_json::from_slice(b).unwrap();
            v["config"]["Cmd"] = json!(["/bin/evil"]);
            *b = serde_json::to_vec(&v).unwrap();
        },
        false,
        "digest mismatch",
    );
}

#[test]
fn corrupted_manifest_pulled_by_digest_is_refused() {
    damaged_blob(
        |i| i.manifest.digest.clone(),
        |b| {
            let mut v: Value = serde_json::from_slice(b).unwrap();
            v["annotations"] = json!({"tampered": "yes"});
            *b = serde_json::to_vec(&v).unwrap();
        },
        true,
        "digest mismatch",
    );
}

#[test]
fn wrong_diff_id_in_config_is_refused() {
    let env = PullEnv::new();
    let img = ImageBuilder::new()
        .config(Config::default().cmd(&["/hello"]))
        .layer(&[Entry::file("hello", "hello\n")])
        .edit_config(|c| {
            c["rootfs"]["diff_ids"][0] = json!(format!("sha256:{}", "0".repeat(64)));
        })
        .build();
    let image = env.push("bad", "diffid", &img);
    let dir = env.dir("bundle");
    // The error names the diffID check.
    env.pull(&image, &dir, &[]).fails_with(&["diff"]);
    env.assert_nothing_left(&dir, &diff_ids(&img));
}

#[test]
fn garbage_layer_with_a_correct_digest_is_refused() {
    let env = PullEnv::new();
    let mut img = small_image();
    // Bytes that are not gzip at all, under their own (correct) digest.
    img.layers[1].blob = Blob::new(
        "application/vnd.oci.image.layer.v1.tar+gzip",
        b"this is not a gzip stream, just bytes".repeat(100),
    );
    let rebuilt = ImageBuilder::new()
        .config(Config::default().cmd(&["/hello"]))
        .built_layer(img.layers[0].clone())
        .built_layer(img.layers[1].clone())
        .build();
    let image = env.push("bad", "garbage", &rebuilt);
    let dir = env.dir("bundle");
    env.pull(&image, &dir, &[]).fails_with(&[]);
    env.assert_nothing_left(&dir, &diff_ids(&rebuilt)[1..]);
}

#[test]
fn unknown_layer_media_type_is_refused() {
    let env = PullEnv::new();
    let mut img = small_image();
    img.layers[1].blob.media_type = "application/vnd.example.not-a-layer".into();
    let rebuilt = ImageBuilder::new()
        .config(Config::default().cmd(&["/hello"]))
        .built_layer(img.layers[0].clone())
        .built_layer(img.layers[1].clone())
        .build();
    let image = env.push("bad", "mediatype", &rebuilt);
    let dir = env.dir("bundle");
    env.pull(&image, &dir, &[])
        .fails_with(&["application/vnd.example.not-a-layer"]);
    env.assert_nothing_left(&dir, &diff_ids(&rebuilt)[1..]);
}

#[test]
fn unknown_tag_is_a_clear_error() {
    let env = PullEnv::new();
    env.push("bb", "latest", &small_image());
    let dir = env.dir("bundle");
    env.pull(&env.image_ref("bb", "nosuchtag"), &dir, &[])
        .fails_with(&["nosuchtag"]);
    env.assert_nothing_left(&dir, &[]);
    env.pull(&env.image_ref("no/such/repo", "latest"), &dir, &[])
        .fails_with(&["no/such/repo"]);
    env.assert_nothing_left(&dir, &[]);
}

#[test]
fn unreachable_registry_fails_fast_and_clean() {
    let env = PullEnv::new();
    let addr = closed_addr().unwrap();
    let dir = env.dir("bundle");
    let t = Instant::now();
    let out = env.pull(&format!("{addr}/bb:latest"), &dir, &[]);
    out.fails_with(&[&addr]);
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "gave up only after {:?}",
        t.elapsed()
    );
    env.assert_nothing_left(&dir, &[]);
}

#[test]
fn bad_reference_is_a_clear_error() {
    let env = PullEnv::new();
    let dir = env.dir("bundle");
    for bad in ["UPPER/Case:tag", "bb::tag", "bb@sha256:1234", ""] {
        env.pull(bad, &dir, &[]).fails_with(&[]);
        env.assert_nothing_left(&dir, &[]);
    }
}

#[test]
fn unknown_platform_is_a_clear_error() {
    let env = PullEnv::new();
    let image = env.push("bb", "latest", &small_image());
    let dir = env.dir("bundle");
    // A single-platform image for amd64 asked as arm64 is refused, not silently used.
    env.pull(&image, &dir, &["--platform", "linux/arm64"])
        .fails_with(&["arm64"]);
    env.assert_nothing_left(&dir, &[]);
}

#[test]
fn existing_non_empty_dir_is_left_untouched() {
    let env = PullEnv::new();
    let image = env.push("bb", "latest", &small_image());
    let dir = env.dir("keep-existing");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("precious"), "do not touch\n").unwrap();
    let out = env.pull(&image, &dir, &[]);
    out.fails_with(&[]);
    assert_eq!(
        integration::pull::list_tree(&dir),
        ["precious"],
        "existing DIR changed"
    );
    assert_eq!(
        fs::read_to_string(dir.join("precious")).unwrap(),
        "do not touch\n"
    );
}
