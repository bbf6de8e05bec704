//! mocker-pull against a real docker-registry: the bundle it makes from an image.
//!
//! Rootfs content, config.json per the image-spec conversion rules, user resolution, the
//! command-line overrides, media types and compressions, multi-platform indexes.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use integration::image::{
    BuiltImage, Compression, Config, Entry, Format, ImageBuilder, OS_RELEASE, Platform,
    build_index, busybox_entries, busybox_image,
};
use integration::pull::PullEnv;
use integration::tree;
use serde_json::{Value, json};

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// The image of most tests here: busybox with a full config and an app user.
fn app_image(format: Format) -> BuiltImage {
    let mut entries = busybox_entries().expect("busybox entries");
    // Replace passwd/group with ones that have an app user in extra groups.
    entries.retain(|e| e.path != "etc/passwd" && e.path != "etc/group");
    entries.push(Entry::file(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
    ));
    entries.push(Entry::file(
        "etc/group",
        "root:x:0:\napp:x:2345:\nwheel:x:10:root,app\naudio:x:29:app\nnobody:x:65534:\n",
    ));
    entries.push(Entry::dir("home"));
    entries.push(Entry::dir("home/app").owner(1234, 2345));
    entries.push(Entry::dir("srv").mode(0o755));
    ImageBuilder::new()
        .format(format)
        .config(
            Config::default()
                .entrypoint(&["/bin/sh", "-c"])
                .cmd(&["echo image-cmd"])
                .env("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                .env("GREETING=hello world")
                .working_dir("/srv")
                .user("app")
                .label("org.example.team", "mocker")
                .label("version", "1.2.3")
                .expose("80/tcp")
                .expose("53/udp")
                .stop_signal("SIGQUIT")
                .volume("/data"),
        )
        .layer(&entries)
        .build()
}

#[test]
fn pull_busybox_gives_its_rootfs_and_a_private_bundle_dir() {
    let env = PullEnv::new();
    let img = busybox_image(Format::Oci, Compression::Gzip).unwrap();
    let image = env.push("library/busybox", "latest", &img);
    let dir = env.dir("bundle");
    let out = env.pull(&image, &dir, &[]).ok();
    assert!(
        !out.stderr().contains("panicked"),
        "stderr: {}",
        out.stderr()
    );

    let md = fs::metadata(&dir).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o700, "bundle dir must be 0700");
    let rootfs = dir.join("rootfs");
    assert_eq!(
        fs::read(rootfs.join("bin/busybox")).unwrap(),
        fs::read(integration::busybox::busybox_binary()).unwrap(),
        "bin/busybox content"
    );
    let bb = fs::metadata(rootfs.join("bin/busybox")).unwrap();
    assert_eq!(bb.mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read_link(rootfs.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/os-release")).unwrap(),
        OS_RELEASE
    );
    assert_eq!(
        fs::metadata(rootfs.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    let cfg = env.config(&dir);
    assert_eq!(cfg["root"]["path"], "rootfs");
    assert_eq!(strings(&cfg["process"]["args"]), ["sh"]);
    assert_eq!(cfg["process"]["terminal"], json!(false));
    assert_eq!(cfg["process"]["user"]["uid"], 0);
    assert_eq!(cfg["process"]["cwd"], "/");
}

#[test]
fn config_json_follows_the_image_config() {
    let env = PullEnv::new();
    let image = env.push("app", "v1", &app_image(Format::Oci));
    let dir = env.dir("bundle");
    env.pull(&image, &dir, &[]).ok();
    let cfg = env.config(&dir);
    let p = &cfg["process"];

    // Entrypoint + Cmd.
    assert_eq!(strings(&p["args"]), ["/bin/sh", "-c", "echo image-cmd"]);
    // Env kept in order, PATH from the image.
    let envs = strings(&p["env"]);
    assert!(
        envs.contains(&"GREETING=hello world".to_string()),
        "{envs:?}"
    );
    assert!(
        envs.contains(
            &"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()
        ),
        "{envs:?}"
    );
    assert_eq!(p["cwd"], "/srv");
    // User "app" resolved through the image's /etc/passwd and /etc/group.
    assert_eq!(p["user"]["uid"], 1234, "{}", p["user"]);
    assert_eq!(p["user"]["gid"], 2345, "{}", p["user"]);
    if let Some(extra) = p["user"]["additionalGids"].as_array() {
        let mut gids: Vec<u64> = extra.iter().filter_map(Value::as_u64).collect();
        gids.sort();
        gids.dedup();
        gids.retain(|g| *g != 2345);
        assert_eq!(gids, [10, 29], "supplementary groups of app");
    }
    assert_eq!(p["terminal"], json!(false));

    // Labels, exposed ports and stop signal as annotations (image-spec conversion.md).
    let a = &cfg["annotations"];
    assert_eq!(a["org.example.team"], "mocker", "annotations: {a}");
    assert_eq!(a["version"], "1.2.3", "annotations: {a}");
    let ports = a["org.opencontainers.image.exposedPorts"]
        .as_str()
        .unwrap_or_else(|| panic!("no exposedPorts annotation: {a}"));
    let mut ports: Vec<&str> = ports.split(',').collect();
    ports.sort();
    assert_eq!(ports, ["53/udp", "80/tcp"]);
    assert_eq!(a["org.opencontainers.image.stopSignal"], "SIGQUIT", "{a}");

    // Volumes: a mount (or at least a directory) at /data.
    let text = cfg.to_string();
    assert!(
        text.contains("\"/data\"") || dir.join("rootfs/data").is_dir(),
        "volume /data neither mounted nor created: {text}"
    );

    // containerd-like defaults.
    let ns: Vec<String> = cfg["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect();
    for want in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&want.to_string()), "namespace {want}: {ns:?}");
    }
    let caps = strings(&p["capabilities"]["bounding"]);
    let mut want = vec![
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ];
    want.sort();
    let mut caps = caps;
    caps.sort();
    assert_eq!(caps, want, "the 14 default capabilities");
    let mounts: Vec<String> = cfg["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ] {
        assert!(
            mounts.contains(&want.to_string()),
            "mount {want}: {mounts:?}"
        );
    }
    assert!(
        !cfg["linux"]["maskedPaths"]
            .as_array()
            .unwrap_or(&vec![])
            .is_empty()
    );
    assert!(
        !cfg["linux"]["readonlyPaths"]
            .as_array()
            .unwrap_or(&vec![])
            .is_empty()
    );
}

#[test]
fn command_line_overrides_the_image() {
    let env = PullEnv::new();
    let image = env.push("app", "v1", &app_image(Format::Oci));
    let dir = env.dir("bundle");
    env.pull(
        &image,
        &dir,
        &[
            "--tty",
            "--env",
            "GREETING=bonjour",
            "--env",
            "EXTRA=1",
            "--workdir",
            "/tmp",
            "--user",
            "nobody",
            "--hostname",
            "box1",
            "--",
            "echo",
            "a b",
            "c",
        ],
    )
    .ok();
    let cfg = env.config(&dir);
    let p = &cfg["process"];
    // `-- CMD` replaces Cmd; the Entrypoint stays, as `docker run IMAGE CMD` does.
    assert_eq!(strings(&p["args"]), ["/bin/sh", "-c", "echo", "a b", "c"]);
    let envs = strings(&p["env"]);
    assert!(envs.contains(&"GREETING=bonjour".into()), "{envs:?}");
    assert!(
        !envs.contains(&"GREETING=hello world".into()),
        "override keeps the old value: {envs:?}"
    );
    assert!(envs.contains(&"EXTRA=1".into()), "{envs:?}");
    assert_eq!(p["cwd"], "/tmp");
    assert_eq!(p["user"]["uid"], 65534);
    assert_eq!(p["user"]["gid"], 65534);
    assert_eq!(p["terminal"], json!(true));
    assert_eq!(cfg["hostname"], "box1");
}

#[test]
fn numeric_and_group_users_resolve() {
    let env = PullEnv::new();
    let image = env.push("app", "v1", &app_image(Format::Oci));
    for (user, uid, gid) in [
        ("4242", 4242, 0),
        ("4242:77", 4242, 77),
        ("app:wheel", 1234, 10),
        ("1234:audio", 1234, 29),
        ("root", 0, 0),
    ] {
        let dir = env.dir(&format!("bundle-{}", user.replace(':', "_")));
        env.pull(&image, &dir, &["--user", user]).ok();
        let u = &env.config(&dir)["process"]["user"];
        assert_eq!(
            (u["uid"].as_u64(), u["gid"].as_u64()),
            (Some(uid), Some(gid)),
            "user {user}: {u}"
        );
    }
}

#[test]
fn unknown_user_is_an_error_and_leaves_nothing() {
    let env = PullEnv::new();
    let image = env.push("app", "v1", &app_image(Format::Oci));
    let dir = env.dir("bundle");
    let out = env.pull(&image, &dir, &["--user", "ghost"]);
    out.fails_with(&["ghost"]);
    assert!(!dir.exists(), "bundle dir left after an unknown user");
    let dir2 = env.dir("bundle2");
    env.pull(&image, &dir2, &["--user", "app:nogroup"])
        .fails_with(&["nogroup"]);
    assert!(!dir2.exists());
}

/// The same busybox tree through every media type family and compression: same rootfs.
#[test]
fn oci_and_docker_with_gzip_zstd_and_uncompressed_layers() {
    let env = PullEnv::new();
    let mut reference: Option<tree::Tree> = None;
    for format in [Format::Oci, Format::Docker] {
        for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let name = format!("{format:?}-{compression:?}").to_lowercase();
            let img = busybox_image(format, compression).unwrap();
            assert_eq!(
                img.layers[0].blob.media_type,
                format.layer_type(compression)
            );
            let image = env.push("bb", &name, &img);
            let dir = env.dir(&name);
            env.pull(&image, &dir, &[]).ok();
            assert_eq!(
                strings(&env.config(&dir)["process"]["args"]),
                ["sh"],
                "{name}"
            );
            let snap = tree::snapshot(&dir.join("rootfs")).unwrap();
            match &reference {
                None => reference = Some(snap),
                Some(r) => {
                    let d = tree::diff(r, &snap, true);
                    assert!(
                        d.is_empty(),
                        "{name} differs from oci-gzip:\n{}",
                        d.join("\n")
                    );
                }
            }
        }
    }
}

fn arch_image(format: Format, p: Platform) -> BuiltImage {
    let arch = p.architecture.clone();
    ImageBuilder::new()
        .format(format)
        .platform(p)
        .config(
            Config::default()
                .cmd(&["/arch"])
                .env(&format!("ARCH={arch}")),
        )
        .layer(&[Entry::file("arch", format!("{arch}\n"))])
        .build()
}

#[test]
fn multi_arch_index_picks_the_platform() {
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "this test assumes an amd64 host (default platform)"
    );
    let env = PullEnv::new();
    for format in [Format::Oci, Format::Docker] {
        let idx = build_index(
            format,
            vec![
                arch_image(format, Platform::arm64()),
                arch_image(format, Platform::amd64()),
                arch_image(format, Platform::parse("linux/arm/v7")),
            ],
        );
        let tag = format!("{format:?}").to_lowercase();
        let image = env.push_index("multi", &tag, &idx);
        let cases: [(&[&str], &str); 5] = [
            (&[], "amd64"),
            (&["--platform", "linux/amd64"], "amd64"),
            (&["--platform", "linux/arm64"], "arm64"),
            (&["--platform", "linux/arm64/v8"], "arm64"),
            (&["--platform", "linux/arm/v7"], "arm"),
        ];
        for (i, (args, want)) in cases.iter().enumerate() {
            let dir = env.dir(&format!("{tag}-{i}"));
            env.pull(&image, &dir, args).ok();
            assert_eq!(
                fs::read_to_string(dir.join("rootfs/arch")).unwrap(),
                format!("{want}\n"),
                "{tag} {args:?}"
            );
            let envs = strings(&env.config(&dir)["process"]["env"]);
            assert!(envs.contains(&format!("ARCH={want}")), "{envs:?}");
        }
        let dir = env.dir(&format!("{tag}-s390x"));
        env.pull(&image, &dir, &["--platform", "linux/s390x"])
            .fails_with(&["s390x"]);
        assert!(!dir.exists());

        // An index without this host's platform: the default pull says what it looked for.
        let arm_only = build_index(format, vec![arch_image(format, Platform::arm64())]);
        let image = env.push_index("armonly", &tag, &arm_only);
        let dir = env.dir(&format!("{tag}-armonly"));
        env.pull(&image, &dir, &[]).fails_with(&["amd64"]);
        assert!(!dir.exists());
    }
}

#[test]
fn pull_by_digest() {
    let env = PullEnv::new();
    let img = busybox_image(Format::Oci, Compression::Gzip).unwrap();
    env.push("bb", "latest", &img);
    let image = env.image_ref("bb", img.digest());
    let dir = env.dir("bundle");
    env.pull(&image, &dir, &[]).ok();
    assert!(dir.join("rootfs/bin/busybox").is_file());
    // A digest that is not the image's is refused.
    let other = format!("sha256:{}", "ab".repeat(32));
    let dir2 = env.dir("bundle2");
    env.pull(&env.image_ref("bb", &other), &dir2, &[])
        .fails_with(&[]);
    assert!(!dir2.exists());
}

#[test]
fn output_is_terse_without_a_terminal_and_silent_with_quiet() {
    let env = PullEnv::new();
    let image = env.push(
        "bb",
        "latest",
        &busybox_image(Format::Oci, Compression::Gzip).unwrap(),
    );
    let out = env.pull(&image, &env.dir("one"), &[]).ok();
    let err = out.stderr();
    assert!(
        !err.contains('\r') && !err.contains('\x1b'),
        "progress bars or escapes without a terminal: {err:?}"
    );
    assert!(err.lines().count() <= 10, "too chatty for one layer: {err}");
    let out = env.pull(&image, &env.dir("two"), &["--quiet"]).ok();
    assert_eq!(out.stderr(), "", "--quiet still printed on stderr");
}

/// Loopback registries are plain HTTP without any flag, also when named `localhost`.
#[test]
fn localhost_registry_needs_no_flag() {
    let env = PullEnv::new();
    let img = busybox_image(Format::Oci, Compression::Gzip).unwrap();
    env.push("bb", "latest", &img);
    let dir = env.dir("bundle");
    env.pull(
        &format!("localhost:{}/bb:latest", env.registry.port()),
        &dir,
        &[],
    )
    .ok();
    assert!(dir.join("rootfs/bin/busybox").is_file());
}

#[test]
fn unknown_user_in_the_image_config_is_an_error() {
    let env = PullEnv::new();
    let img = ImageBuilder::new()
        .config(Config::default().cmd(&["sh"]).user("ghost"))
        .layer(&busybox_entries().unwrap())
        .build();
    let image = env.push("bb", "ghost", &img);
    let dir = env.dir("bundle");
    env.pull(&image, &dir, &[]).fails_with(&["ghost"]);
    env.assert_nothing_left(&dir, &[]);
    // Overriding the user makes the same image usable.
    env.pull(&image, &dir, &["--user", "root"]).ok();
}
