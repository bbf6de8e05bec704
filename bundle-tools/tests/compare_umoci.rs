//! Two layers written by GNU tar from real trees, unpacked by `umoci` and by `apply_layer`:
//! the resulting trees must agree on names, kinds, modes, owners, sizes, contents, link
//! targets, device numbers, hardlink groups, user xattrs and mtimes.
//! Needs root, GNU tar and umoci (installed by `just setup`).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;
use std::process::Command;

use bundle_tools::layer::{ApplyOptions, apply_layer};

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn set_mtime(p: &Path, secs: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, 0);
    nix::sys::stat::utimensat(
        None,
        p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

fn set_user_xattr(p: &Path, name: &str, value: &str) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and buffer.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
}

/// Layer 1: a small distribution-like tree with every kind of entry.
fn lower_tree(d: &Path) {
    for dir in [
        "bin",
        "etc/conf.d",
        "var/cache/app",
        "opt/old/sub",
        "dev",
        "run",
        "home/u",
    ] {
        fs::create_dir_all(d.join(dir)).unwrap();
    }
    fs::write(d.join("bin/busybox"), vec![0x7f; 70_000]).unwrap();
    fs::set_permissions(d.join("bin/busybox"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(d.join("bin/busybox"), d.join("bin/sh")).unwrap();
    fs::hard_link(d.join("bin/busybox"), d.join("bin/ls")).unwrap();
    symlink("busybox", d.join("bin/cat")).unwrap();
    symlink("/etc/conf.d", d.join("etc/abs-link")).unwrap();
    symlink("../../etc/passwd", d.join("var/cache/rel-link")).unwrap();
    fs::write(d.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(d.join("etc/conf.d/a"), "a").unwrap();
    fs::write(d.join("etc/conf.d/b"), "b").unwrap();
    fs::write(d.join("var/cache/app/blob"), "cached").unwrap();
    fs::write(d.join("opt/old/sub/x"), "x").unwrap();
    fs::write(d.join("opt/old/y"), "y").unwrap();
    fs::write(d.join("home/u/.profile"), "export A=1").unwrap();
    nix::unistd::chown(&d.join("home/u"), Some(1000.into()), Some(1000.into())).unwrap();
    nix::unistd::chown(
        &d.join("home/u/.profile"),
        Some(1000.into()),
        Some(100.into()),
    )
    .unwrap();
    fs::set_permissions(d.join("home/u"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(d.join("run"), fs::Permissions::from_mode(0o1777)).unwrap();
    nix::sys::stat::mknod(
        &d.join("dev/null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    nix::unistd::mkfifo(
        &d.join("run/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    set_user_xattr(&d.join("etc/passwd"), "user.origin", "layer1");
    set_user_xattr(&d.join("etc/conf.d/b"), "user.origin", "layer1-b");
    for (i, p) in ["bin/busybox", "etc/passwd", "bin/cat", "etc/conf.d/a"]
        .iter()
        .enumerate()
    {
        set_mtime(&d.join(p), 1_500_000_000 + i as i64);
    }
    for (i, p) in ["etc/conf.d", "etc", "opt/old", "bin"].iter().enumerate() {
        set_mtime(&d.join(p), 1_400_000_000 + i as i64);
    }
}

/// Layer 2: whiteouts, an opaque dir, replacements, a hardlink to a lower file.
fn upper_tree(d: &Path) {
    for dir in ["etc/conf.d", "opt/old", "var/cache", "bin"] {
        fs::create_dir_all(d.join(dir)).unwrap();
    }
    fs::write(d.join("etc/conf.d/.wh.a"), "").unwrap();
    fs::write(d.join("opt/old/.wh..wh..opq"), "").unwrap();
    fs::write(d.join("opt/old/new"), "new").unwrap();
    fs::write(d.join("var/cache/.wh.app"), "").unwrap();
    fs::write(
        d.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n",
    )
    .unwrap();
    fs::create_dir(d.join("var/cache/rel-link")).unwrap(); // a dir replaces a symlink
    fs::write(d.join("bin/cat"), "not a link anymore").unwrap();
    set_mtime(&d.join("opt/old"), 1_300_000_000);
}

use std::os::unix::fs::PermissionsExt;

fn tar_of(src: &Path, out: &Path) {
    sh(Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=user.*",
            "--numeric-owner",
            "--format=pax",
        ])
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(src)
        .arg("."));
}

/// Everything comparable about one tree.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let mut desc = format!("mode={:o} uid={} gid={}", m.mode(), m.uid(), m.gid());
            if ft.is_dir() {
                stack.push(p.clone());
            }
            desc += &format!(" mtime={}", m.mtime());
            if ft.is_file() {
                let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone());
                desc += &format!(
                    " size={} nlink={} first={} data={:x}",
                    m.len(),
                    m.nlink(),
                    first,
                    fs::read(&p)
                        .unwrap()
                        .iter()
                        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(*b as u64))
                );
            }
            if ft.is_symlink() {
                desc += &format!(" -> {}", fs::read_link(&p).unwrap().display());
            }
            if ft.is_char_device() || ft.is_block_device() {
                desc += &format!(" rdev={}", m.rdev());
            }
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
            let mut buf = vec![0u8; 64];
            // SAFETY: valid C strings and buffer.
            let r = unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    c"user.origin".as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if r > 0 {
                desc += &format!(" xattr={}", String::from_utf8_lossy(&buf[..r as usize]));
            }
            out.insert(rel, desc);
        }
    }
    out
}

use std::os::unix::fs::FileTypeExt;

#[test]
fn same_tree_as_umoci_unpack() {
    let t = tempfile::tempdir().unwrap();
    let (l1, l2) = (t.path().join("l1"), t.path().join("l2"));
    fs::create_dir(&l1).unwrap();
    fs::create_dir(&l2).unwrap();
    lower_tree(&l1);
    upper_tree(&l2);
    let (t1, t2) = (t.path().join("l1.tar"), t.path().join("l2.tar"));
    tar_of(&l1, &t1);
    tar_of(&l2, &t2);

    // umoci: an OCI layout with the two layers, unpacked.
    let layout = t.path().join("layout");
    let img = format!("{}:t", layout.display());
    sh(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    sh(Command::new("umoci").args(["new", "--image", &img]));
    for tar in [&t1, &t2] {
        sh(Command::new("umoci")
            .args(["raw", "add-layer", "--image", &img])
            .arg(tar));
    }
    let bundle = t.path().join("bundle");
    sh(Command::new("umoci")
        .args(["unpack", "--image", &img])
        .arg(&bundle));

    // Ours.
    let ours = t.path().join("ours");
    fs::create_dir(&ours).unwrap();
    for tar in [&t1, &t2] {
        apply_layer(
            &ours,
            fs::File::open(tar).unwrap(),
            &ApplyOptions::default(),
        )
        .unwrap();
    }

    let (a, b) = (snapshot(&bundle.join("rootfs")), snapshot(&ours));
    // Spot checks that the layers did what the test means them to.
    assert!(!b.contains_key("etc/conf.d/a") && b.contains_key("etc/conf.d/b"));
    assert!(!b.contains_key("opt/old/y") && !b.contains_key("opt/old/sub"));
    assert!(!b.contains_key("var/cache/app"));
    assert!(b["bin/sh"].contains("nlink=3"), "{}", b["bin/sh"]);
    assert!(
        b["etc/conf.d/b"].contains("xattr=layer1-b"),
        "{}",
        b["etc/conf.d/b"]
    );
    for (k, v) in &a {
        assert_eq!(Some(v), b.get(k), "{k} differs (left umoci, right ours)");
    }
    assert_eq!(a.len(), b.len(), "extra entries in ours: {:?}", {
        b.keys().filter(|k| !a.contains_key(*k)).collect::<Vec<_>>()
    });
}
