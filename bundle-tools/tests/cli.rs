//! The `mocker-bundle` binary: exit codes, one-line errors, and the layer rules under both
//! path resolvers (openat2 and the userspace walk forced by `MOCKER_NO_OPENAT2`).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;
use common::{DEF, Layer};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mocker-bundle"))
}

fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The binary may fail (and exit) before reading all of its input.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One line, prefixed, naming `what`.
fn assert_one_line_error(o: &Output, what: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    let e = stderr(o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("mocker-bundle: ") && e.contains(what), "{e}");
}

#[test]
fn validate_prints_ok_or_one_line() {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir(t.path().join("rootfs")).unwrap();
    fs::write(
        t.path().join("config.json"),
        r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}}}"#,
    )
    .unwrap();
    let o = run(bin().arg("validate").arg(t.path()), b"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "OK\n");

    fs::write(
        t.path().join("config.json"),
        r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":"sh","user":{"uid":0,"gid":0}}}"#,
    )
    .unwrap();
    let o = run(bin().arg("validate").arg(t.path()), b"");
    assert_one_line_error(&o, "process.args");
    assert!(o.stdout.is_empty());
}

#[test]
fn spec_prints_runcs_default() {
    let o = run(bin().arg("spec"), b"");
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.starts_with("{\n\t\"ociVersion\""),
        "tab-indented like runc"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["process"]["args"][0], "sh");
    assert_eq!(v["hostname"], "runc");
    assert_eq!(
        v["process"]["capabilities"]["bounding"],
        serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    );
}

#[test]
fn spec_converts_an_image_config() {
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nnginx:x:101:101::/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\nnginx:x:101:\n").unwrap();
    let cfg = t.path().join("config.json");
    fs::write(
        &cfg,
        r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
            "config":{"User":"nginx","Entrypoint":["/docker-entrypoint.sh"],"Cmd":["nginx"],
            "ExposedPorts":{"80/tcp":{}},"StopSignal":"SIGQUIT","WorkingDir":"/srv"}}"#,
    )
    .unwrap();
    let o = run(
        bin()
            .args(["spec", "--image-config"])
            .arg(&cfg)
            .arg("--rootfs")
            .arg(&rootfs)
            .args(["--tty", "-e", "A=1", "--", "sh", "-c", "true"]),
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["process"]["args"],
        serde_json::json!(["/docker-entrypoint.sh", "sh", "-c", "true"])
    );
    assert_eq!(v["process"]["user"]["uid"], 101);
    assert_eq!(v["process"]["cwd"], "/srv");
    assert_eq!(v["process"]["terminal"], true);
    assert_eq!(
        v["annotations"]["org.opencontainers.image.stopSignal"],
        "SIGQUIT"
    );

    let o = run(
        bin()
            .args(["spec", "--image-config"])
            .arg(&cfg)
            .arg("--rootfs")
            .arg(&rootfs)
            .args(["--user", "ghost"]),
        b"",
    );
    assert_one_line_error(&o, "`ghost`");

    fs::write(&cfg, r#"{"architecture":"amd64","os":"linux","rootfs":7}"#).unwrap();
    let o = run(
        bin()
            .args(["spec", "--image-config"])
            .arg(&cfg)
            .arg("--rootfs")
            .arg(&rootfs),
        b"",
    );
    assert_one_line_error(&o, "rootfs");
}

fn apply(root: &Path, tar: &[u8], walk: bool) -> Output {
    let mut cmd = bin();
    cmd.arg("apply-layer").arg(root);
    if walk {
        cmd.env("MOCKER_NO_OPENAT2", "1");
    } else {
        cmd.env_remove("MOCKER_NO_OPENAT2");
    }
    run(&mut cmd, tar)
}

#[test]
fn apply_layer_under_both_resolvers() {
    for walk in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootfs");
        fs::create_dir(&root).unwrap();
        fs::create_dir(t.path().join("sentinel")).unwrap();
        let sentinel = t.path().join("sentinel");

        let good = Layer::new()
            .dir("etc", &DEF)
            .dir("run", &DEF)
            .dir("usr/lib", &DEF)
            .file("etc/os-release", "ID=test\n", &DEF)
            .symlink("var-run", "/run")
            .file("var-run/pid", "1", &DEF)
            .symlink("lib", "usr/lib")
            .file("lib/libc.so", "elf", &DEF)
            .bytes();
        let o = apply(&root, &good, walk);
        assert!(o.status.success(), "walk={walk}: {}", stderr(&o));
        assert!(stderr(&o).contains("8 entries"), "{}", stderr(&o));
        assert_eq!(fs::read_to_string(root.join("run/pid")).unwrap(), "1");
        assert_eq!(
            fs::read_to_string(root.join("usr/lib/libc.so")).unwrap(),
            "elf"
        );

        let evil: Vec<(Vec<u8>, &str)> = vec![
            (
                Layer::new().file("../escape", "x", &DEF).bytes(),
                "`../escape`",
            ),
            (
                Layer::new()
                    .symlink("up", "../../..")
                    .file("up/sentinel/evil", "x", &DEF)
                    .bytes(),
                "`up/sentinel/evil`",
            ),
            (Layer::new().hardlink("h", "../sentinel/x").bytes(), "`h`"),
            (Layer::new().file("a/.wh..", "", &DEF).bytes(), "`a/.wh..`"),
            (Layer::new().symlink(".", "/").bytes(), "`.`"),
        ];
        for (tar, name) in evil {
            let o = apply(&root, &tar, walk);
            assert_one_line_error(&o, name);
            assert_eq!(fs::read_dir(&sentinel).unwrap().count(), 0, "walk={walk}");
            assert_eq!(fs::read_dir(t.path()).unwrap().count(), 2, "walk={walk}");
        }

        // An absolute symlink to a host path is refused, and nothing is created for it.
        let host = Layer::new()
            .symlink("host", sentinel.to_str().unwrap())
            .file("host/evil", "x", &DEF)
            .bytes();
        let o = apply(&root, &host, walk);
        assert_one_line_error(&o, "`host/evil`");
        assert!(!root.join("tmp").exists());
        assert_eq!(fs::read_dir(&sentinel).unwrap().count(), 0);

        let o = apply(&t.path().join("missing"), &good, walk);
        assert_one_line_error(&o, "missing");
    }
}

#[test]
fn modes_are_the_tars_whatever_the_umask() {
    use std::os::unix::fs::MetadataExt;
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("rootfs");
    fs::create_dir(&root).unwrap();
    let tar = Layer::new()
        .file(
            "implicit/parent/f",
            "x",
            &common::Opts { mode: 0o644, ..DEF },
        )
        .dir("d", &common::Opts { mode: 0o755, ..DEF })
        .file("d/exe", "x", &common::Opts { mode: 0o755, ..DEF })
        .bytes();
    let o = run(
        Command::new("sh")
            .arg("-c")
            .arg("umask 077; exec \"$0\" apply-layer \"$1\"")
            .arg(env!("CARGO_BIN_EXE_mocker-bundle"))
            .arg(&root),
        &tar,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mode = |p: &str| fs::symlink_metadata(root.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("implicit"), 0o755);
    assert_eq!(mode("implicit/parent"), 0o755);
    assert_eq!(mode("implicit/parent/f"), 0o644);
    assert_eq!(mode("d"), 0o755);
    assert_eq!(mode("d/exe"), 0o755);
}
