//! Layer application on real files: tars built in memory, trees checked on disk.
//! Runs as root (chown, mknod, trusted.* xattrs), like the CI.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bundle_tools::layer::{ApplyOptions, LayerError, LayerStats, WhiteoutMode, apply_layer};
use tar::EntryType;

mod common;
use common::{DEF, Layer, Opts};

/// A root with a sentinel directory next to it that no layer may touch.
struct Fixture {
    t: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("rootfs")).unwrap();
        fs::create_dir(t.path().join("sentinel")).unwrap();
        fs::write(t.path().join("sentinel/secret"), "untouched").unwrap();
        Fixture { t }
    }
    fn root(&self) -> PathBuf {
        self.t.path().join("rootfs")
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }
    fn apply(&self, layer: &mut Layer) -> Result<LayerStats, LayerError> {
        apply_layer(&self.root(), &layer.bytes()[..], &ApplyOptions::default())
    }
    fn apply_overlay(&self, layer: &mut Layer) -> Result<LayerStats, LayerError> {
        let opts = ApplyOptions {
            whiteouts: WhiteoutMode::Overlay,
            ..Default::default()
        };
        apply_layer(&self.root(), &layer.bytes()[..], &opts)
    }
    /// Nothing outside the root changed.
    fn assert_sentinel(&self) {
        let mut top: Vec<_> = fs::read_dir(self.t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert_eq!(top, ["rootfs", "sentinel"]);
        let inside: Vec<_> = fs::read_dir(self.t.path().join("sentinel"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(inside, ["secret"]);
        assert_eq!(
            fs::read_to_string(self.t.path().join("sentinel/secret")).unwrap(),
            "untouched"
        );
    }
    fn refused(&self, layer: &mut Layer, entry: &str) {
        let e = self.apply(layer).unwrap_err().to_string();
        assert!(
            e.contains(&format!("`{entry}`")),
            "error should name {entry}: {e}"
        );
        self.assert_sentinel();
    }
}

fn lmeta(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap()
}

fn mode(p: &Path) -> u32 {
    lmeta(p).mode() & 0o7777
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and buffer.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

#[test]
fn files_dirs_modes_owners_and_mtimes() {
    let f = Fixture::new();
    let stats = f
        .apply(
            Layer::new()
                .dir(
                    "usr/",
                    &Opts {
                        mode: 0o750,
                        uid: 12,
                        gid: 34,
                        mtime: 1_000_000_000,
                    },
                )
                .file(
                    "usr/suid",
                    "#!/bin/sh\n",
                    &Opts {
                        mode: 0o4755,
                        uid: 1000,
                        gid: 1001,
                        mtime: 1_234_567_890,
                    },
                )
                .file(
                    "usr/sgid-sticky",
                    "",
                    &Opts {
                        mode: 0o3770,
                        ..DEF
                    },
                )
                .file("deep/implicit/parents/f", "x", &DEF),
        )
        .unwrap();
    assert_eq!((stats.entries, stats.bytes), (4, 11));
    let suid = f.p("usr/suid");
    assert_eq!(fs::read_to_string(&suid).unwrap(), "#!/bin/sh\n");
    assert_eq!(mode(&suid), 0o4755);
    assert_eq!((lmeta(&suid).uid(), lmeta(&suid).gid()), (1000, 1001));
    assert_eq!(lmeta(&suid).mtime(), 1_234_567_890);
    assert_eq!(mode(&f.p("usr/sgid-sticky")), 0o3770);
    let usr = f.p("usr");
    assert_eq!(mode(&usr), 0o750);
    assert_eq!((lmeta(&usr).uid(), lmeta(&usr).gid()), (12, 34));
    // Set after its contents were written.
    assert_eq!(lmeta(&usr).mtime(), 1_000_000_000);
    assert!(f.p("deep/implicit/parents").is_dir());
    assert_eq!(mode(&f.p("deep/implicit")), 0o755);
    f.assert_sentinel();
}

#[test]
fn pax_times_owners_and_xattrs() {
    let f = Fixture::new();
    f.apply(
        Layer::new()
            .pax(&[
                ("mtime", b"1700000000.5"),
                ("uid", b"3000000"),
                ("SCHILY.xattr.user.note", b"hello"),
                ("SCHILY.xattr.trusted.keep", b"t"),
                ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
                ("SCHILY.xattr.security.bogus", b"ignored"),
            ])
            .file("f", "data", &DEF)
            .pax(&[("SCHILY.xattr.user.dir", b"d")])
            .dir("d", &Opts { mode: 0o755, ..DEF }),
    )
    .unwrap();
    let p = f.p("f");
    let m = lmeta(&p);
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_700_000_000, 500_000_000));
    assert_eq!(m.uid(), 3_000_000);
    assert_eq!(xattr(&p, "user.note").as_deref(), Some(&b"hello"[..]));
    assert_eq!(xattr(&p, "trusted.keep").as_deref(), Some(&b"t"[..]));
    // A layer may not steer overlayfs.
    assert_eq!(xattr(&p, "trusted.overlay.opaque"), None);
    assert_eq!(xattr(&f.p("d"), "user.dir").as_deref(), Some(&b"d"[..]));
}

#[test]
fn symlinks_are_stored_verbatim_and_never_written_through() {
    let f = Fixture::new();
    let sentinel = f.t.path().join("sentinel");
    f.apply(
        Layer::new()
            .symlink("abs", "/etc/passwd")
            .symlink("rel", "../../x")
            .symlink("host", sentinel.join("secret").to_str().unwrap()),
    )
    .unwrap();
    assert_eq!(fs::read_link(f.p("abs")).unwrap(), Path::new("/etc/passwd"));
    assert_eq!(fs::read_link(f.p("rel")).unwrap(), Path::new("../../x"));
    assert_eq!(lmeta(&f.p("abs")).mtime(), DEF.mtime as i64);
    // A file entry on the link's name replaces the link, it does not write through it.
    f.apply(Layer::new().file("host", "replaced", &DEF))
        .unwrap();
    assert!(lmeta(&f.p("host")).is_file());
    assert_eq!(fs::read_to_string(f.p("host")).unwrap(), "replaced");
    f.assert_sentinel();
}

#[test]
fn hardlinks_within_and_across_layers() {
    let f = Fixture::new();
    f.apply(Layer::new().file("bin/busybox", "BB", &Opts { mode: 0o755, ..DEF }))
        .unwrap();
    f.apply(
        Layer::new()
            .hardlink("bin/sh", "bin/busybox")
            .file("etc/a", "A", &DEF)
            .hardlink("etc/b", "/etc/a")
            .hardlink("etc/a2", "./etc/../etc/a"),
    )
    .unwrap();
    let ino = |p: &str| lmeta(&f.p(p)).ino();
    assert_eq!(ino("bin/sh"), ino("bin/busybox"));
    assert_eq!(ino("etc/b"), ino("etc/a"));
    assert_eq!(ino("etc/a2"), ino("etc/a"));
    assert_eq!(lmeta(&f.p("etc/a")).nlink(), 3);
    let e = f
        .apply(Layer::new().hardlink("x", "missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`x`") && e.contains("missing"), "{e}");
    f.assert_sentinel();
}

#[test]
fn devices_and_fifos() {
    let f = Fixture::new();
    f.apply(
        Layer::new()
            .node("dev/null", EntryType::Char, 1, 3)
            .node("dev/loop0", EntryType::Block, 7, 0)
            .node("run/fifo", EntryType::Fifo, 0, 0),
    )
    .unwrap();
    let null = lmeta(&f.p("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!((null.mode() & 0o7777, null.gid()), (0o620, 5));
    let lp = lmeta(&f.p("dev/loop0"));
    assert!(lp.file_type().is_block_device());
    assert_eq!(lp.rdev(), nix::sys::stat::makedev(7, 0));
    assert!(lmeta(&f.p("run/fifo")).file_type().is_fifo());
}

#[test]
fn existing_dirs_stay_dirs_and_other_kinds_are_replaced() {
    let f = Fixture::new();
    f.apply(
        Layer::new()
            .file("d/keep", "k", &DEF)
            .file("x/inner", "i", &DEF)
            .file("f", "file", &DEF),
    )
    .unwrap();
    f.apply(
        Layer::new()
            .dir("d", &Opts { mode: 0o700, ..DEF })
            .file("x", "now a file", &DEF)
            .dir("f", &Opts { mode: 0o755, ..DEF }),
    )
    .unwrap();
    assert_eq!(fs::read_to_string(f.p("d/keep")).unwrap(), "k");
    assert_eq!(mode(&f.p("d")), 0o700);
    assert_eq!(fs::read_to_string(f.p("x")).unwrap(), "now a file");
    assert!(f.p("f").is_dir());
}

#[test]
fn whiteouts_delete_lower_entries_only() {
    let f = Fixture::new();
    f.apply(
        Layer::new()
            .file("a/x", "x", &DEF)
            .file("a/y", "y", &DEF)
            .file("b/deep/file", "b", &DEF)
            .file("c", "c", &DEF),
    )
    .unwrap();
    f.apply(
        Layer::new()
            .pax(&[]) // a stray empty PAX header must not matter
            .file("a/.wh.x", "", &DEF)
            .file(".wh.b", "", &DEF)
            .file(".wh.nothing-there", "", &DEF)
            .file("new", "n", &DEF)
            .file(".wh.new", "", &DEF) // same layer: spared
            .file("c", "c2", &DEF)
            .file(".wh.c", "", &DEF), // hides only the lower c, which c2 replaced
    )
    .unwrap();
    assert!(!f.p("a/x").exists());
    assert!(f.p("a/y").exists());
    assert!(!f.p("b").exists());
    assert_eq!(fs::read_to_string(f.p("new")).unwrap(), "n");
    assert_eq!(fs::read_to_string(f.p("c")).unwrap(), "c2");
    assert!(!f.p(".wh.b").exists() && !f.p("a/.wh.x").exists());
}

#[test]
fn opaque_dirs_hide_lower_contents_but_keep_their_own_layer() {
    let f = Fixture::new();
    f.apply(
        Layer::new()
            .file("d/old", "o", &DEF)
            .file("d/sub/old2", "o", &DEF)
            .file("d/sub/old3", "o", &DEF)
            .file("other/keep", "k", &DEF),
    )
    .unwrap();
    f.apply(
        Layer::new()
            .dir("d", &Opts { mode: 0o755, ..DEF })
            .file("d/before", "b", &DEF)
            .file("d/sub/mine", "m", &DEF)
            .file("d/.wh..wh..opq", "", &DEF)
            .file("d/after", "a", &DEF),
    )
    .unwrap();
    let mut names: Vec<_> = fs::read_dir(f.p("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["after", "before", "sub"]);
    let sub: Vec<_> = fs::read_dir(f.p("d/sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(sub, ["mine"]);
    assert!(f.p("other/keep").exists());
}

#[test]
fn overlay_mode_writes_overlay_whiteouts() {
    let f = Fixture::new();
    f.apply_overlay(
        Layer::new()
            .file("etc/.wh.gone", "", &DEF)
            .file("var/.wh..wh..opq", "", &DEF)
            .file("var/new", "n", &DEF)
            .dir("mine", &Opts { mode: 0o755, ..DEF })
            .file(".wh.mine", "", &DEF),
    )
    .unwrap();
    let w = lmeta(&f.p("etc/gone"));
    assert!(w.file_type().is_char_device());
    assert_eq!(w.rdev(), 0);
    assert_eq!(
        xattr(&f.p("var"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(f.p("var/new").exists());
    // Its own dir survives a same-layer whiteout, made opaque to hide the lower one.
    assert!(f.p("mine").is_dir());
    assert_eq!(
        xattr(&f.p("mine"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!f.p("etc/.wh.gone").exists());
}

#[test]
fn overlay_mode_copies_hardlink_targets_from_lower_layers() {
    let lower = Fixture::new();
    lower
        .apply_overlay(
            Layer::new()
                .pax(&[
                    ("SCHILY.xattr.user.keep", b"me"),
                    ("SCHILY.xattr.trusted.x", b"t"),
                ])
                .file(
                    "bin/busybox",
                    "BB",
                    &Opts {
                        mode: 0o755,
                        uid: 7,
                        ..DEF
                    },
                ),
        )
        .unwrap();
    let upper = Fixture::new();
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        lowers: vec![lower.root()],
        ..Default::default()
    };
    let stats = apply_layer(
        &upper.root(),
        &Layer::new().hardlink("bin/sh", "bin/busybox").bytes()[..],
        &opts,
    )
    .unwrap();
    assert_eq!(stats.bytes, 2);
    assert_eq!(fs::read_to_string(upper.p("bin/sh")).unwrap(), "BB");
    assert_eq!(
        (mode(&upper.p("bin/sh")), lmeta(&upper.p("bin/sh")).uid()),
        (0o755, 7)
    );
    assert_eq!(
        xattr(&upper.p("bin/sh"), "user.keep").as_deref(),
        Some(&b"me"[..])
    );
    assert_eq!(
        xattr(&upper.p("bin/sh"), "trusted.x").as_deref(),
        Some(&b"t"[..])
    );
}

#[test]
fn root_entry_sets_root_metadata() {
    let f = Fixture::new();
    f.apply(
        Layer::new()
            .dir(
                "./",
                &Opts {
                    mode: 0o711,
                    mtime: 42,
                    ..DEF
                },
            )
            .file("./a", "a", &DEF),
    )
    .unwrap();
    assert_eq!(mode(&f.root()), 0o711);
    assert_eq!(lmeta(&f.root()).mtime(), 42);
}

// ---- malicious layers ---------------------------------------------------------------

#[test]
fn dotdot_traversal_is_refused() {
    let f = Fixture::new();
    f.refused(
        Layer::new().file("../sentinel/evil", "x", &DEF),
        "../sentinel/evil",
    );
    f.refused(Layer::new().file("a/../../evil", "x", &DEF), "a/../../evil");
    f.refused(
        Layer::new().dir("../../../../tmp/evil", &DEF),
        "../../../../tmp/evil",
    );
}

#[test]
fn relative_symlink_escape_is_refused() {
    let f = Fixture::new();
    f.refused(
        Layer::new()
            .symlink("up", "../../../../../..")
            .file("up/sentinel/evil", "x", &DEF),
        "up/sentinel/evil",
    );
    f.refused(
        Layer::new()
            .symlink("dir/link", "../../sentinel")
            .file("dir/link/evil", "x", &DEF),
        "dir/link/evil",
    );
}

#[test]
fn absolute_symlinks_resolve_inside_the_root() {
    let f = Fixture::new();
    let sentinel = f.t.path().join("sentinel");
    f.apply(
        Layer::new()
            .dir("etc", &DEF)
            .symlink("slash", "/")
            .file("slash/etc/through-slash", "in", &DEF)
            .symlink("host", sentinel.to_str().unwrap()),
    )
    .unwrap();
    assert_eq!(fs::read_to_string(f.p("etc/through-slash")).unwrap(), "in");
    // The host path read inside the root names nothing: refused, not followed, not created.
    let e = f
        .apply(Layer::new().file("host/evil", "x", &DEF))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`host/evil`") && e.contains("refused"), "{e}");
    assert!(!f.root().join("tmp").exists());
    f.assert_sentinel();
    // Links to what the image has are fine: the usual /var/run -> /run.
    f.apply(
        Layer::new()
            .dir("run", &DEF)
            .symlink("var-run", "/run")
            .file("var-run/pid", "1", &DEF),
    )
    .unwrap();
    assert_eq!(fs::read_to_string(f.p("run/pid")).unwrap(), "1");
}

#[test]
fn hardlinks_out_of_the_root_are_refused() {
    let f = Fixture::new();
    f.refused(
        Layer::new().hardlink("steal", "../sentinel/secret"),
        "steal",
    );
    // Through a symlink: resolved inside the root, where there is no such file.
    let sentinel = f.t.path().join("sentinel");
    let e = f
        .apply(
            Layer::new()
                .symlink("s", sentinel.to_str().unwrap())
                .hardlink("steal2", "s/secret"),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("`steal2`"), "{e}");
    f.refused(
        Layer::new()
            .symlink("up", "../..")
            .hardlink("steal3", "up/sentinel/secret"),
        "steal3",
    );
    f.assert_sentinel();
    assert!(!f.p("steal").exists() && !f.p("steal3").exists());
}

#[test]
fn whiteouts_of_dot_and_dotdot_are_refused() {
    let f = Fixture::new();
    f.apply(Layer::new().file("a/keep", "k", &DEF)).unwrap();
    f.refused(Layer::new().file("a/.wh..", "", &DEF), "a/.wh..");
    f.refused(Layer::new().file(".wh.", "", &DEF), ".wh.");
    f.refused(Layer::new().file("a/.wh...", "", &DEF), "a/.wh...");
    assert!(f.p("a/keep").exists());
}

#[test]
fn replacing_the_root_is_refused() {
    let f = Fixture::new();
    let sentinel = f.t.path().join("sentinel");
    f.refused(Layer::new().symlink(".", sentinel.to_str().unwrap()), ".");
    f.refused(Layer::new().symlink("./", "/"), "./");
    f.refused(Layer::new().file("/", "x", &DEF), "/");
    assert!(f.root().is_dir() && !lmeta(&f.root()).file_type().is_symlink());
}

#[test]
fn a_symlinked_rootfs_is_refused() {
    // CVE-2021-29136: the rootfs dir itself is a symlink to somewhere else.
    let f = Fixture::new();
    let link = f.t.path().join("link");
    std::os::unix::fs::symlink(f.t.path().join("sentinel"), &link).unwrap();
    let e = apply_layer(
        &link,
        &Layer::new().file("evil", "x", &DEF).bytes()[..],
        &ApplyOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("symlink"), "{e}");
    fs::remove_file(&link).unwrap();
    f.assert_sentinel();
}

#[test]
fn truncated_tar_is_an_error() {
    let f = Fixture::new();
    let mut bytes = Layer::new().file("big", &"x".repeat(5000), &DEF).bytes();
    bytes.truncate(2048);
    let e = apply_layer(&f.root(), &bytes[..], &ApplyOptions::default()).unwrap_err();
    assert!(matches!(e, LayerError::Tar(_)), "{e}");
}

#[test]
fn permissions_survive_for_unwritable_dirs() {
    // A read-only dir listed before its contents must still receive them (root bypasses
    // DAC, but the mode must be the tar's in the end).
    let f = Fixture::new();
    f.apply(Layer::new().dir("ro", &Opts { mode: 0o555, ..DEF }).file(
        "ro/f",
        "x",
        &Opts { mode: 0o444, ..DEF },
    ))
    .unwrap();
    assert_eq!(mode(&f.p("ro")), 0o555);
    assert_eq!(
        fs::metadata(f.p("ro")).unwrap().permissions().mode() & 0o777,
        0o555
    );
}

#[test]
fn setgid_dirs_do_not_leak_their_group_or_bit() {
    let f = Fixture::new();
    f.apply(
        Layer::new()
            .dir(
                "shared",
                &Opts {
                    mode: 0o2775,
                    gid: 50,
                    ..DEF
                },
            )
            .file("shared/f", "x", &DEF)
            .dir("shared/sub", &Opts { mode: 0o755, ..DEF })
            .symlink("shared/l", "f"),
    )
    .unwrap();
    assert_eq!(mode(&f.p("shared")), 0o2775);
    assert_eq!(lmeta(&f.p("shared/f")).gid(), 0);
    assert_eq!(lmeta(&f.p("shared/l")).gid(), 0);
    assert_eq!(mode(&f.p("shared/sub")), 0o755);
    assert_eq!(lmeta(&f.p("shared/sub")).gid(), 0);
}

#[test]
fn a_directory_replaced_mid_layer_is_not_written_to_after() {
    let f = Fixture::new();
    f.apply(
        Layer::new()
            .dir("e", &DEF)
            .file("d/f1", "1", &DEF)
            .symlink("d", "e")
            .file("d/f2", "2", &DEF),
    )
    .unwrap();
    assert!(lmeta(&f.p("d")).file_type().is_symlink());
    assert_eq!(fs::read_to_string(f.p("e/f2")).unwrap(), "2");
    assert!(!f.p("e/f1").exists());
}

#[test]
fn hardlink_to_a_symlink_links_the_symlink() {
    let f = Fixture::new();
    f.apply(
        Layer::new()
            .file("x", "x", &DEF)
            .symlink("s", "x")
            .hardlink("h", "s"),
    )
    .unwrap();
    assert!(lmeta(&f.p("h")).file_type().is_symlink());
    assert_eq!(lmeta(&f.p("h")).ino(), lmeta(&f.p("s")).ino());
}

fn header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h
}

#[test]
fn long_names_and_link_targets() {
    let f = Fixture::new();
    let dir = "d".repeat(120);
    let name = format!("{dir}/{}", "n".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header();
    h.set_size(4);
    b.append_data(&mut h, &name, &b"long"[..]).unwrap();
    let mut h = header();
    h.set_entry_type(EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "link", format!("/{name}")).unwrap();
    let mut h = header();
    h.set_entry_type(EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "hard", &name).unwrap();
    let bytes = b.into_inner().unwrap();
    apply_layer(&f.root(), &bytes[..], &ApplyOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(f.p(&name)).unwrap(), "long");
    assert_eq!(
        fs::read_link(f.p("link")).unwrap(),
        Path::new(&format!("/{name}"))
    );
    assert_eq!(lmeta(&f.p("hard")).ino(), lmeta(&f.p(&name)).ino());
}

/// This whole file again with the userspace walk instead of openat2.
#[test]
fn everything_again_under_the_userspace_walk() {
    if std::env::var_os("MOCKER_NO_OPENAT2").is_some() {
        return; // we are the re-run
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--skip",
            "everything_again_under_the_userspace_walk",
            "--test-threads=2",
        ])
        .env("MOCKER_NO_OPENAT2", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" passed; 0 failed"), "{text}");
}

#[test]
fn file_capabilities_survive_the_chown() {
    // VFS_CAP_REVISION_2, effective, permitted = CAP_NET_RAW (13): what `setcap
    // cap_net_raw+ep` writes, as iputils' ping ships it.
    let mut cap = Vec::new();
    for word in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        cap.extend_from_slice(&word.to_le_bytes());
    }
    let f = Fixture::new();
    f.apply(
        Layer::new()
            .pax(&[("SCHILY.xattr.security.capability", &cap)])
            .file(
                "bin/ping",
                "elf",
                &Opts {
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    ..DEF
                },
            )
            .pax(&[("SCHILY.xattr.security.capability", &cap)])
            .file(
                "bin/owned",
                "elf",
                &Opts {
                    mode: 0o755,
                    uid: 1000,
                    gid: 1000,
                    ..DEF
                },
            ),
    )
    .unwrap();
    assert_eq!(
        xattr(&f.p("bin/ping"), "security.capability"),
        Some(cap.clone())
    );
    assert_eq!(xattr(&f.p("bin/owned"), "security.capability"), Some(cap));
}

/// Hundreds of random layers made of hostile names and link targets: whatever each one does
/// (applied or refused), nothing outside the root may change and nothing may panic.
#[test]
fn random_hostile_layers_never_touch_the_outside() {
    let f = Fixture::new();
    let sentinel = f.t.path().join("sentinel");
    let names = [
        "..",
        ".",
        "a",
        "b",
        "up",
        "abs",
        "host",
        "sentinel",
        ".wh..",
        ".wh.a",
        ".wh.sentinel",
        ".wh..wh..opq",
        "secret",
        "",
    ];
    let host = sentinel.display().to_string();
    let host_secret = format!("{host}/secret");
    let targets = [
        "..",
        "../..",
        "../../..",
        "/",
        "/..",
        "../sentinel",
        "../../sentinel/secret",
        host.as_str(),
        host_secret.as_str(),
        "a",
        "/a/../..",
        "up/..",
        ".",
        "up",
    ];
    // xorshift: deterministic, no extra crate.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let (mut applied, mut refused) = (0, 0);
    for round in 0..300 {
        let mut layer = Layer::new();
        for _ in 0..6 {
            let depth = 1 + next(3);
            let path: Vec<&str> = (0..depth).map(|_| names[next(names.len())]).collect();
            let path = path.join("/");
            if path.is_empty() || path.len() > 99 {
                continue;
            }
            let target = targets[next(targets.len())];
            match next(5) {
                0 => layer.file(&path, "evil", &DEF),
                1 => layer.dir(&path, &DEF),
                2 => layer.symlink(&path, target),
                3 => layer.hardlink(&path, target),
                _ => layer.file(&format!("{path}/.wh.secret"), "", &DEF),
            };
        }
        match f.apply(&mut layer) {
            Ok(_) => applied += 1,
            Err(_) => refused += 1,
        }
        f.assert_sentinel();
        assert!(lmeta(&f.root()).is_dir(), "the root itself was replaced");
        if round % 50 == 49 {
            fs::remove_dir_all(f.root()).unwrap();
            fs::create_dir(f.root()).unwrap();
        }
    }
    eprintln!("hostile layers: {applied} applied, {refused} refused");
    assert!(
        applied > 10 && refused > 10,
        "applied {applied}, refused {refused}"
    );
}

#[test]
fn nul_bytes_in_pax_names_are_errors_not_crashes() {
    let f = Fixture::new();
    for mut layer in [
        {
            let mut l = Layer::new();
            l.pax(&[("path", b"a\0b")]).file("x", "x", &DEF);
            l
        },
        {
            let mut l = Layer::new();
            l.pax(&[("path", b"l\0nk"), ("SCHILY.xattr.user.a", b"1")])
                .symlink("x", "y");
            l
        },
        {
            let mut l = Layer::new();
            l.pax(&[("linkpath", b"t\0")]).symlink("s", "y");
            l
        },
        {
            let mut l = Layer::new();
            l.file("../new\nline", "x", &DEF);
            l
        },
    ] {
        let e = f.apply(&mut layer).unwrap_err().to_string();
        eprintln!("{e}");
        assert!(e.starts_with("layer entry"), "{e}");
        assert!(!e.contains('\0') && !e.contains('\n'), "{e}");
        f.assert_sentinel();
    }
}

#[test]
fn whiteouts_through_a_symlinked_dir_still_spare_this_layer() {
    let f = Fixture::new();
    f.apply(
        Layer::new()
            .file("usr/lib/x", "lower", &DEF)
            .file("a/old", "lower", &DEF)
            .symlink("lib", "usr/lib"),
    )
    .unwrap();
    f.apply(
        Layer::new()
            .file("usr/lib/new", "mine", &DEF)
            .file("lib/.wh.new", "", &DEF)
            .file("lib/.wh.x", "", &DEF)
            .file("a/b/f", "mine", &DEF)
            .file(".wh.a", "", &DEF),
    )
    .unwrap();
    assert_eq!(fs::read_to_string(f.p("usr/lib/new")).unwrap(), "mine");
    assert!(!f.p("usr/lib/x").exists());
    // `a` is whited out, but its entries from this layer (and their dirs) stay.
    assert_eq!(fs::read_to_string(f.p("a/b/f")).unwrap(), "mine");
    assert!(!f.p("a/old").exists());
}
