//! Generated hostile layers: random tar streams (names with `..`, absolute paths, symlink and
//! hardlink chains, whiteouts and opaque markers, devices, fifos), one to three layers
//! stacked, applied to a root inside a temp dir beside a sentinel directory. Whatever the
//! layers hold, layer application returns a value or an error, never panics, and nothing
//! outside the root is created, changed or removed.
//!
//! Bounded for CI (`PROPTEST_CASES`, default 192 here); `just fuzz` runs many more.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bundle_tools::layer::{ApplyOptions, WhiteoutMode, apply_layer};
use proptest::prelude::*;
use tar::EntryType;

mod common;
use common::{DEF, Layer};

/// Path pieces chosen to collide: the same few names, `..`, `.`, and roots.
fn segment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a",
        "b",
        "etc",
        "..",
        ".",
        "sentinel",
        "secret",
        "x",
        ".wh.a",
        ".wh.b",
        ".wh..wh..opq",
    ])
}

fn path() -> impl Strategy<Value = String> {
    (prop::bool::ANY, prop::collection::vec(segment(), 1..5))
        .prop_map(|(abs, segs)| format!("{}{}", if abs { "/" } else { "" }, segs.join("/")))
}

#[derive(Debug, Clone)]
enum Item {
    Dir(String),
    File(String, String),
    Symlink(String, String),
    Hardlink(String, String),
    CharDev(String),
    Fifo(String),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        path().prop_map(Item::Dir),
        (path(), "[a-z]{0,8}").prop_map(|(p, d)| Item::File(p, d)),
        (path(), path()).prop_map(|(p, t)| Item::Symlink(p, t)),
        (path(), path()).prop_map(|(p, t)| Item::Hardlink(p, t)),
        path().prop_map(Item::CharDev),
        path().prop_map(Item::Fifo),
    ]
}

fn tar_of(items: &[Item]) -> Vec<u8> {
    let mut l = Layer::new();
    for it in items {
        // Names longer than a GNU header holds are skipped (the builder writes them raw).
        let fits = |s: &str| s.len() < 100;
        match it {
            Item::Dir(p) if fits(p) => {
                l.dir(p, &DEF);
            }
            Item::File(p, d) if fits(p) => {
                l.file(p, d, &DEF);
            }
            Item::Symlink(p, t) if fits(p) && fits(t) => {
                l.symlink(p, t);
            }
            Item::Hardlink(p, t) if fits(p) && fits(t) => {
                l.hardlink(p, t);
            }
            Item::CharDev(p) if fits(p) => {
                l.node(p, EntryType::Char, 1, 3);
            }
            Item::Fifo(p) if fits(p) => {
                l.node(p, EntryType::Fifo, 0, 0);
            }
            _ => {}
        }
    }
    l.bytes()
}

/// (path relative to `dir`, size, mode, link target) of everything below `dir`.
fn snapshot(dir: &Path) -> Vec<(String, u64, u32, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let link = fs::read_link(&p)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            out.push((
                p.strip_prefix(dir).unwrap().display().to_string(),
                m.size(),
                m.mode(),
                link,
            ));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(192);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_layer_reaches_outside_its_root(
        layers in prop::collection::vec(prop::collection::vec(item(), 1..10), 1..4),
        overlay in prop::bool::ANY,
    ) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootfs");
        fs::create_dir(&root).unwrap();
        fs::create_dir(t.path().join("sentinel")).unwrap();
        fs::write(t.path().join("sentinel/secret"), "untouched").unwrap();
        std::os::unix::fs::symlink("/etc", t.path().join("sentinel/etc-link")).unwrap();
        let before = snapshot(&t.path().join("sentinel"));
        // Names the layers use that the host's /etc lacks must stay absent there.
        let host_etc: Vec<&str> = ["a", "b", "x", "secret", "sentinel"]
            .into_iter()
            .filter(|n| !Path::new("/etc").join(n).exists())
            .collect();
        let opts = ApplyOptions {
            whiteouts: if overlay { WhiteoutMode::Overlay } else { WhiteoutMode::default() },
            ..Default::default()
        };
        for items in &layers {
            // A value or an error; a panic fails the property.
            let _ = apply_layer(&root, &tar_of(items)[..], &opts);
        }
        let mut top: Vec<String> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        prop_assert_eq!(top, vec!["rootfs".to_string(), "sentinel".to_string()]);
        prop_assert_eq!(snapshot(&t.path().join("sentinel")), before);
        prop_assert_eq!(
            fs::read_to_string(t.path().join("sentinel/secret")).unwrap(),
            "untouched"
        );
        for n in host_etc {
            prop_assert!(!Path::new("/etc").join(n).exists(), "/etc/{} appeared", n);
        }
    }
}
