//! Layer application: every OCI whiteout/opaque/link/device/owner/mode/xattr rule, checked
//! explicitly and against `umoci unpack` of the same image; malicious layers refused with
//! nothing written outside the rootfs and nothing left behind.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use integration::image::{
    BuiltImage, Compression, Config, Entry, Format, ImageBuilder, Kind, busybox_entries,
};
use integration::pull::{PullEnv, run, umoci_rootfs};
use integration::tree;

fn layer1() -> Vec<Entry> {
    vec![
        Entry::dir("etc"),
        Entry::file("etc/hostname", "one\n"),
        Entry::dir("a"),
        Entry::file("a/keep", "k"),
        Entry::file("a/gone", "g"),
        Entry::dir("a/sub"),
        Entry::file("a/sub/x", "x"),
        Entry::dir("opq"),
        Entry::file("opq/old1", "old"),
        Entry::dir("opq/olddir"),
        Entry::file("opq/olddir/f", "old"),
        Entry::dir("todelete"),
        Entry::dir("todelete/deep"),
        Entry::file("todelete/deep/f", "f"),
        Entry::file("hl_src", "shared content\n")
            .mode(0o640)
            .owner(7, 8)
            .xattr("user.hl", "kept"),
        Entry::file("replace_me_file", "file"),
        Entry::dir("replace_me_dir"),
        Entry::file("replace_me_dir/child", "c"),
        Entry::dir("dev"),
        Entry::char_dev("dev/null", 1, 3),
        Entry::block_dev("dev/loop9", 7, 9),
        Entry::fifo("dev/fifo"),
        Entry::dir("bin"),
        Entry::file("bin/su", "setuid").mode(0o4755),
        Entry::file("bin/sg", "setgid").mode(0o2755),
        Entry::dir("shared").mode(0o1777),
        Entry::dir("sgid").mode(0o2775).owner(0, 50),
        Entry::file("owned", "mine").mode(0o600).owner(1000, 1001),
        Entry::dir("owned_dir").mode(0o700).owner(1000, 1001),
        Entry::file("xattr_file", "x")
            .xattr("user.mocker", "yes")
            .xattr("user.binary", b"\x00\x01\xff"),
        Entry::symlink("abs_link", "/etc/hostname"),
        Entry::symlink("rel_link", "etc/hostname"),
        Entry::symlink("dangling", "/nonexistent/target"),
        Entry::symlink("dir_link", "a"),
        Entry::file("mtime_file", "t").mtime(1_234_567_890),
        Entry::file("within", "within one layer"),
        Entry::hardlink("within_link", "within"),
        Entry::file(&format!("long/{}/file", "d".repeat(150)), "long path"),
    ]
}

fn layer2() -> Vec<Entry> {
    vec![
        Entry::whiteout("a/gone"),
        Entry::dir("a").mode(0o750),
        Entry::file("a/sub/y", "y"),
        Entry::opaque("opq"),
        Entry::file("opq/new", "new"),
        Entry::whiteout("todelete"),
        Entry::hardlink("hl_dst", "hl_src"),
        Entry::dir("replace_me_file"),
        Entry::file("replace_me_file/inner", "inner"),
        Entry::file("replace_me_dir", "now a file"),
        Entry::file("etc/hostname", "two\n"),
    ]
}

fn layer3() -> Vec<Entry> {
    vec![
        // A whiteout only hides lower layers: x3 of this same layer stays.
        Entry::file("x3", "3"),
        Entry::whiteout("x3"),
        // Remove one name of a cross-layer hardlink pair: the other keeps the content.
        Entry::whiteout("hl_src"),
        // Re-create a whited-out directory: it comes back empty but for the new entry.
        Entry::dir("todelete"),
        Entry::file("todelete/again", "again"),
    ]
}

fn rules_image(c: Compression) -> BuiltImage {
    ImageBuilder::new()
        .compression(c)
        .config(Config::default().cmd(&["/bin/sh"]))
        .layer(&layer1())
        .layer(&layer2())
        .layer(&layer3())
        .build()
}

fn lmeta(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn assert_rules(r: &Path) {
    let read = |p: &str| fs::read_to_string(r.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let absent = |p: &str| {
        assert!(
            fs::symlink_metadata(r.join(p)).is_err(),
            "{p} should be absent"
        )
    };
    let mode = |p: &str| lmeta(&r.join(p)).mode() & 0o7777;

    // Whiteouts and opaque directories.
    assert_eq!(read("a/keep"), "k");
    absent("a/gone");
    absent("a/.wh.gone");
    assert_eq!(read("a/sub/x"), "x");
    assert_eq!(read("a/sub/y"), "y");
    assert_eq!(mode("a"), 0o750, "a re-declared with a new mode");
    let mut opq: Vec<String> = fs::read_dir(r.join("opq"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    opq.sort();
    assert_eq!(opq, ["new"], "opaque dir shows only the upper layer");
    let mut td: Vec<String> = fs::read_dir(r.join("todelete"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    td.sort();
    assert_eq!(td, ["again"], "whited-out dir re-created empty");
    assert_eq!(read("x3"), "3", "same-layer whiteout must not hide x3");
    absent(".wh.x3");

    // Replacements between kinds.
    assert_eq!(read("replace_me_file/inner"), "inner");
    assert_eq!(read("replace_me_dir"), "now a file");
    assert_eq!(read("etc/hostname"), "two\n");

    // Hardlinks: across layers (then one name whited out), and within one layer.
    absent("hl_src");
    assert_eq!(read("hl_dst"), "shared content\n");
    let hd = lmeta(&r.join("hl_dst"));
    assert_eq!((hd.mode() & 0o7777, hd.uid(), hd.gid()), (0o640, 7, 8));
    assert_eq!(
        tree::xattr_get(&r.join("hl_dst"), "user.hl").unwrap(),
        b"kept"
    );
    let (w, wl) = (lmeta(&r.join("within")), lmeta(&r.join("within_link")));
    assert_eq!(w.ino(), wl.ino(), "within_link is a hardlink of within");
    assert!(w.nlink() >= 2);

    // Devices.
    let m = lmeta(&r.join("dev/null"));
    assert!(m.file_type().is_char_device());
    assert_eq!((libc::major(m.rdev()), libc::minor(m.rdev())), (1, 3));
    let m = lmeta(&r.join("dev/loop9"));
    assert!(m.file_type().is_block_device());
    assert_eq!((libc::major(m.rdev()), libc::minor(m.rdev())), (7, 9));
    assert!(lmeta(&r.join("dev/fifo")).file_type().is_fifo());

    // Modes and owners.
    assert_eq!(mode("bin/su"), 0o4755);
    assert_eq!(mode("bin/sg"), 0o2755);
    assert_eq!(mode("shared"), 0o1777);
    assert_eq!(mode("sgid"), 0o2775);
    assert_eq!(lmeta(&r.join("sgid")).gid(), 50);
    let o = lmeta(&r.join("owned"));
    assert_eq!((o.mode() & 0o7777, o.uid(), o.gid()), (0o600, 1000, 1001));
    let o = lmeta(&r.join("owned_dir"));
    assert_eq!((o.mode() & 0o7777, o.uid(), o.gid()), (0o700, 1000, 1001));

    // Xattrs.
    assert_eq!(
        tree::xattr_get(&r.join("xattr_file"), "user.mocker").unwrap(),
        b"yes"
    );
    assert_eq!(
        tree::xattr_get(&r.join("xattr_file"), "user.binary").unwrap(),
        b"\x00\x01\xff"
    );

    // Symlinks are kept verbatim, never resolved.
    for (l, t) in [
        ("abs_link", "/etc/hostname"),
        ("rel_link", "etc/hostname"),
        ("dangling", "/nonexistent/target"),
        ("dir_link", "a"),
    ] {
        assert_eq!(fs::read_link(r.join(l)).unwrap(), Path::new(t), "{l}");
    }

    // Mtimes and long names.
    assert_eq!(lmeta(&r.join("mtime_file")).mtime(), 1_234_567_890);
    assert_eq!(read(&format!("long/{}/file", "d".repeat(150))), "long path");
}

/// Pull options that give a plain-directory rootfs (no overlay), when the puller has one.
fn plain_dir_args() -> Vec<&'static str> {
    integration::pull::plain_dir_args()
}

#[test]
fn every_layer_rule_applies() {
    let env = PullEnv::new();
    let mixed = ImageBuilder::new()
        .format(Format::Docker)
        .config(Config::default().cmd(&["/bin/sh"]))
        .compression(Compression::Zstd)
        .layer(&layer1())
        .compression(Compression::None)
        .layer(&layer2())
        .compression(Compression::Gzip)
        .layer(&layer3())
        .build();
    for (tag, img) in [
        ("gzip", rules_image(Compression::Gzip)),
        ("zstd", rules_image(Compression::Zstd)),
        ("docker-mixed", mixed),
    ] {
        let image = env.push("rules", tag, &img);
        // Overlay (default) and plain-directory modes must show the same tree.
        let dir = env.dir(&format!("{tag}-default"));
        env.pull(&image, &dir, &[]).ok();
        assert_rules(&dir.join("rootfs"));
        let plain = env.dir(&format!("{tag}-plain"));
        env.pull(&image, &plain, &plain_dir_args()).ok();
        assert_rules(&plain.join("rootfs"));
        let d = tree::diff(
            &tree::snapshot(&dir.join("rootfs")).unwrap(),
            &tree::snapshot(&plain.join("rootfs")).unwrap(),
            true,
        );
        assert!(
            d.is_empty(),
            "{tag}: overlay and plain rootfs differ:\n{}",
            d.join("\n")
        );
    }
}

fn compare_with_umoci(image: BuiltImage) {
    let env = PullEnv::new();
    let image_ref = env.push("cmp", "t", &image);
    let dir = env.dir("bundle");
    env.pull(&image_ref, &dir, &plain_dir_args()).ok();
    let scratch = tempfile::tempdir().unwrap();
    let theirs = tree::snapshot(&umoci_rootfs(&image, scratch.path())).unwrap();
    let ours = tree::snapshot(&dir.join("rootfs")).unwrap();
    let d = tree::diff(&theirs, &ours, true);
    assert!(
        d.is_empty(),
        "rootfs differs from umoci's (first = umoci, second = mocker-pull):\n{}",
        d.join("\n")
    );
}

/// The reference implementation agrees with the expectations of `assert_rules`.
#[test]
fn umoci_agrees_with_the_rule_expectations() {
    integration::pull::require_root();
    let scratch = tempfile::tempdir().unwrap();
    assert_rules(&umoci_rootfs(
        &rules_image(Compression::Gzip),
        scratch.path(),
    ));
}

#[test]
fn multi_layer_rootfs_matches_umoci() {
    compare_with_umoci(rules_image(Compression::Gzip));
}

#[test]
fn busybox_rootfs_matches_umoci() {
    compare_with_umoci(
        ImageBuilder::new()
            .config(Config::default().cmd(&["sh"]))
            .layer(&busybox_entries().unwrap())
            .build(),
    );
}

// ---- malicious layers -------------------------------------------------------------------

/// A directory outside any rootfs that a malicious layer aims at, with one file in it.
struct Victim {
    dir: std::path::PathBuf,
    before: tree::Tree,
}

impl Victim {
    fn new(env: &PullEnv) -> Victim {
        let dir = env.dir("keep-victim");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("target_file"), "original\n").unwrap();
        let before = tree::snapshot(&dir).unwrap();
        Victim { dir, before }
    }
    fn path(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }
    /// `../` enough times to reach `/`, then the victim's absolute path.
    fn relative_from_anywhere(&self) -> String {
        format!(
            "{}{}",
            "../".repeat(30),
            self.path().trim_start_matches('/')
        )
    }
    fn assert_untouched(&self) {
        let after = tree::snapshot(&self.dir).unwrap();
        let d = tree::diff(&self.before, &after, true);
        assert!(d.is_empty(), "victim changed:\n{}", d.join("\n"));
        assert_eq!(
            lmeta(&self.dir.join("target_file")).nlink(),
            1,
            "a hardlink to the victim was made"
        );
    }
}

/// Pulls an image made of a harmless layer then `layers` (`@VICTIM@` and `@UP@` replaced by
/// the victim's absolute path and a `../`-climb to it) and expects, in overlay and in plain
/// mode (each with a fresh registry and cache): the victim untouched, then a clean refusal
/// naming one of `needles` and nothing left behind.
fn refuse(layers: &[Vec<Entry>], needles: &[&str]) {
    let mut failures = Vec::new();
    for args in [vec![], plain_dir_args()] {
        let mode = if args.is_empty() { "overlay" } else { "plain" };
        let env = PullEnv::new();
        let victim = Victim::new(&env);
        let fix = |t: &str| {
            t.replace("@VICTIM@", &victim.path())
                .replace("@UP@", &victim.relative_from_anywhere())
        };
        let mut b = ImageBuilder::new()
            .config(Config::default().cmd(&["/x"]))
            .layer(&[
                Entry::dir("a"),
                Entry::dir("a/b"),
                Entry::file("a/b/f", "ok"),
            ]);
        for l in layers {
            let l: Vec<Entry> = l
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    e.path = fix(&e.path);
                    e.kind = match e.kind {
                        Kind::Symlink(t) => Kind::Symlink(fix(&t)),
                        Kind::Hardlink(t) => Kind::Hardlink(fix(&t)),
                        k => k,
                    };
                    e
                })
                .collect();
            b = b.layer(&l);
        }
        let image = b.build();
        let bad: Vec<&str> = image.layers[1..]
            .iter()
            .map(|l| l.diff_id.as_str())
            .collect();
        let image_ref = env.push("evil", "t", &image);
        let dir = env.dir("bundle");
        let out = env.pull(&image_ref, &dir, &args);
        // First the worst: nothing written outside. Then a one-line error (the last stderr
        // line) naming the culprit; progress lines may precede it.
        victim.assert_untouched();
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            out.fails_with(needles);
            env.assert_nothing_left(&dir, &bad);
        }));
        if let Err(e) = checked {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{mode} mode: {msg}"));
            let _ = run(env.cmd().args(integration::pull::remove_bundle_args(&dir)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn malicious_dotdot_traversal_is_refused() {
    refuse(&[vec![Entry::file("@UP@/pwned", "x")]], &[".."]);
}

#[test]
fn malicious_dotdot_inside_path_is_refused() {
    refuse(
        &[vec![Entry::file(
            "a/../../../../../../../../../../../../tmp/mocker-pwned",
            "x",
        )]],
        &[".."],
    );
}

#[test]
fn malicious_write_through_absolute_symlink_is_refused() {
    refuse(
        &[vec![
            Entry::symlink("evil", "@VICTIM@"),
            Entry::file("evil/pwned", "x"),
        ]],
        &["evil"],
    );
}

#[test]
fn malicious_write_through_relative_symlink_is_refused() {
    refuse(
        &[vec![
            Entry::symlink("a/evil", "@UP@"),
            Entry::file("a/evil/pwned", "x"),
        ]],
        &["evil"],
    );
}

#[test]
fn malicious_write_through_symlink_from_a_lower_layer_is_refused() {
    refuse(
        &[
            vec![Entry::symlink("evil", "@UP@")],
            vec![Entry::file("evil/target_file", "pwned\n")],
        ],
        &["evil"],
    );
}

#[test]
fn malicious_hardlink_through_symlink_from_a_lower_layer_is_refused() {
    refuse(
        &[
            vec![Entry::symlink("evil", "@UP@")],
            vec![Entry::hardlink("h", "evil/target_file")],
        ],
        &["h"],
    );
}

#[test]
fn malicious_whiteout_through_symlink_from_a_lower_layer_is_refused() {
    refuse(
        &[
            vec![Entry::symlink("evil", "@UP@")],
            vec![Entry::whiteout("evil/target_file")],
        ],
        &["evil"],
    );
}

#[test]
fn malicious_opaque_dir_through_symlink_from_a_lower_layer_is_refused() {
    refuse(
        &[
            vec![Entry::symlink("evil", "@UP@")],
            vec![Entry::opaque("evil")],
        ],
        &["evil"],
    );
}

#[test]
fn malicious_hardlink_to_outside_is_refused() {
    refuse(&[vec![Entry::hardlink("h", "@UP@/target_file")]], &["h"]);
}

#[test]
fn malicious_hardlink_to_absolute_outside_is_refused() {
    refuse(
        &[vec![Entry::hardlink("h", "@VICTIM@/target_file")]],
        &["h"],
    );
}

#[test]
fn malicious_hardlink_through_symlink_is_refused() {
    refuse(
        &[vec![
            Entry::symlink("evil", "@VICTIM@"),
            Entry::hardlink("h", "evil/target_file"),
        ]],
        &["h"],
    );
}

#[test]
fn malicious_whiteout_of_dotdot_is_refused() {
    refuse(&[vec![Entry::file("a/b/.wh..", "")]], &[".wh.."]);
}

#[test]
fn malicious_top_level_whiteout_of_dotdot_is_refused() {
    refuse(&[vec![Entry::file(".wh..", "")]], &[".wh.."]);
}

#[test]
fn malicious_symlinked_root_is_refused() {
    // CVE-2021-29136: "." itself replaced by a symlink, then written through.
    refuse(
        &[vec![
            Entry::symlink(".", "@VICTIM@"),
            Entry::file("pwned", "x"),
        ]],
        &[],
    );
}

/// Absolute entry names are not listed as malicious by the issue: they may be refused or
/// placed inside the rootfs, but never outside it.
#[test]
fn absolute_entry_paths_stay_inside_the_rootfs() {
    let env = PullEnv::new();
    let victim = Victim::new(&env);
    let image = ImageBuilder::new()
        .config(Config::default().cmd(&["/x"]))
        .layer(&[Entry::file(&format!("{}/pwned", victim.path()), "x")])
        .build();
    let image_ref = env.push("abs", "t", &image);
    let dir = env.dir("bundle");
    let out = env.pull(&image_ref, &dir, &plain_dir_args());
    victim.assert_untouched();
    if out.success() {
        let inside = dir
            .join("rootfs")
            .join(victim.path().trim_start_matches('/'))
            .join("pwned");
        assert!(
            inside.is_file(),
            "absolute entry neither refused nor inside the rootfs"
        );
    } else {
        out.fails_with(&[]);
        env.assert_nothing_left(&dir, &[image.layers[0].diff_id.as_str()]);
    }
}

/// More layers than one page of `lowerdir=` options holds: every layer, in order.
#[test]
fn seventy_layers_stack_in_order() {
    let env = PullEnv::new();
    let mut b = ImageBuilder::new().config(Config::default().cmd(&["/x"]));
    for i in 0..70 {
        b = b.layer(&[
            Entry::file(&format!("layer{i:02}"), format!("{i}")),
            Entry::file("top", format!("{i}")),
        ]);
    }
    let image = env.push("many", "t", &b.build());
    for (name, args) in [("overlay", vec![]), ("plain", plain_dir_args())] {
        let dir = env.dir(name);
        env.pull(&image, &dir, &args).ok();
        let r = dir.join("rootfs");
        assert_eq!(fs::read_to_string(r.join("top")).unwrap(), "69", "{name}");
        for i in 0..70 {
            assert_eq!(
                fs::read_to_string(r.join(format!("layer{i:02}"))).unwrap(),
                i.to_string(),
                "{name}"
            );
        }
    }
}

/// A directory a layer lists with a current (or future) mtime is still the layer's own: the
/// overlay must show its attributes, not the lower layer's, exactly as a plain rootfs does.
/// (Which directories a layer made implicitly is reported by layer application, not guessed
/// from timestamps.)
#[test]
fn a_listed_directory_with_a_fresh_mtime_keeps_its_own_attributes_in_the_overlay() {
    let env = PullEnv::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let img = ImageBuilder::new()
        .config(Config::default().cmd(&["/bin/sh"]))
        .layer(&[Entry::dir("opt").mode(0o755).mtime(1_000_000)])
        .layer(&[
            Entry::dir("opt").mode(0o700).mtime(now + 3600),
            Entry::file("opt/f", "x").mtime(now),
        ])
        .build();
    let image = env.push("fresh", "t", &img);
    let dir = env.dir("overlay");
    env.pull(&image, &dir, &[]).ok();
    let plain = env.dir("plain");
    env.pull(&image, &plain, &plain_dir_args()).ok();
    for root in [&dir, &plain] {
        let m = lmeta(&root.join("rootfs/opt"));
        assert_eq!(m.mode() & 0o7777, 0o700, "{}", root.display());
        assert_eq!(m.mtime() as u64, now + 3600, "{}", root.display());
    }
}
