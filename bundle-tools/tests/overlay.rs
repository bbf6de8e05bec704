//! Overlay mode proven by the kernel: layers extracted one per dir, mounted as overlayfs
//! lower dirs, must show the same tree as the same layers applied in order into one dir.
//! Needs root (mount).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bundle_tools::layer::{ApplyOptions, WhiteoutMode, apply_layer};

mod common;
use common::{DEF, Layer, Opts};

/// Unmounts on drop, so a failing assertion leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if m.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_file() {
                format!("file {}", fs::read_to_string(&p).unwrap())
            } else {
                format!("special {}", m.rdev())
            };
            out.push(format!("{rel} {what} mode={:o} uid={}", m.mode(), m.uid()));
        }
    }
    out.sort();
    out
}

fn layers() -> Vec<Vec<u8>> {
    vec![
        Layer::new()
            .file("a/x", "x", &DEF)
            .file("a/y", "y", &DEF)
            .file("b/deep/f", "b", &DEF)
            .file("d/old", "o", &DEF)
            .file("d/sub/old2", "o", &DEF)
            .file("bin/busybox", "BB", &Opts { mode: 0o755, ..DEF })
            .symlink("lnk", "a/y")
            .bytes(),
        Layer::new()
            .file("a/.wh.x", "", &DEF)
            .file(".wh.b", "", &DEF)
            .dir("d", &Opts { mode: 0o755, ..DEF })
            .file("d/.wh..wh..opq", "", &DEF)
            .file("d/new", "n", &DEF)
            .hardlink("bin/sh", "bin/busybox")
            .file(".wh.lnk", "", &DEF)
            .file(
                "c",
                "c",
                &Opts {
                    mode: 0o600,
                    uid: 5,
                    ..DEF
                },
            )
            .bytes(),
        Layer::new()
            .file("b/again", "back", &DEF)
            .file(".wh.c", "", &DEF)
            .bytes(),
    ]
}

#[test]
fn overlay_of_layer_dirs_equals_layers_applied_in_order() {
    let t = tempfile::tempdir().unwrap();
    let layers = layers();

    let flat = t.path().join("flat");
    fs::create_dir(&flat).unwrap();
    for l in &layers {
        apply_layer(&flat, &l[..], &ApplyOptions::default()).unwrap();
    }

    // One dir per layer; lowers listed topmost first, as overlayfs and ApplyOptions want.
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let d = t.path().join(format!("layer{i}"));
        fs::create_dir(&d).unwrap();
        let opts = ApplyOptions {
            whiteouts: WhiteoutMode::Overlay,
            lowers: dirs.iter().rev().cloned().collect(),
            ..Default::default()
        };
        apply_layer(&d, &l[..], &opts).unwrap();
        dirs.push(d);
    }
    let merged = t.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let lowerdir: Vec<String> = dirs.iter().rev().map(|d| d.display().to_string()).collect();
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(format!("lowerdir={}", lowerdir.join(":")).as_str()),
    )
    .expect("mount overlay (needs root)");
    let _guard = Mounted(merged.clone());

    let (want, got) = (tree(&flat), tree(&merged));
    assert!(
        want.iter().any(|l| l.starts_with("b/again file back")),
        "{want:?}"
    );
    assert!(
        !want
            .iter()
            .any(|l| l.starts_with("a/x ") || l.starts_with("d/old"))
    );
    assert_eq!(
        want, got,
        "left: applied in order, right: overlay of layer dirs"
    );
}
