//! End to end: pull from the registry, then run the bundle unchanged with the runtime
//! (`mocker-runtime`, or `$MOCKER_TEST_RUNTIME`, e.g. `runc`, for comparison).

use std::fs;
use std::path::Path;
use std::process::Command;

use integration::image::{Compression, Config, Entry, Format, ImageBuilder, busybox_entries};
use integration::pull::{PullEnv, Run, mounts_under, remove_bundle_args, run, runtime};

/// `RUNTIME --root STATE run -b DIR ID`, in the foreground, output captured.
fn run_bundle(env: &PullEnv, dir: &Path, id: &str) -> Run {
    let state = env.cache().join("runtime-state");
    fs::create_dir_all(&state).unwrap();
    let id = format!("{id}-{}", std::process::id());
    let out = run(Command::new(runtime())
        .arg("--root")
        .arg(&state)
        .args(["run", "-b"])
        .arg(dir)
        .arg(&id));
    // Whatever happened, do not leave the container behind.
    let _ = Command::new(runtime())
        .arg("--root")
        .arg(&state)
        .args(["delete", "--force", &id])
        .output();
    out
}

fn app_image() -> integration::image::BuiltImage {
    let mut entries = busybox_entries().unwrap();
    entries.retain(|e| e.path != "etc/passwd" && e.path != "etc/group");
    entries.push(Entry::file(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/srv:/bin/sh\n",
    ));
    entries.push(Entry::file("etc/group", "root:x:0:\napp:x:2345:\n"));
    entries.push(Entry::dir("srv").owner(1234, 2345));
    ImageBuilder::new()
        .format(Format::Docker)
        .compression(Compression::Zstd)
        .config(
            Config::default()
                .entrypoint(&["/bin/sh", "-c"])
                .cmd(&["echo \"cmd as $(id -u):$(id -g) in $(pwd) with $GREETING\""])
                .env("PATH=/usr/sbin:/usr/bin:/sbin:/bin")
                .env("GREETING=hi")
                .working_dir("/srv")
                .user("app"),
        )
        .layer(&entries)
        .layer(&[Entry::file("srv/data.txt", "layer two\n").owner(1234, 2345)])
        .build()
}

#[test]
fn pull_then_run_busybox() {
    let env = PullEnv::new();
    let img = integration::image::busybox_image(Format::Oci, Compression::Gzip).unwrap();
    let image = env.push("demo/busybox", "latest", &img);
    let dir = env.dir("bundle");
    env.pull(
        &image,
        &dir,
        &[
            "--hostname",
            "e2e-host",
            "--",
            "sh",
            "-c",
            "echo hello from $(hostname); grep ^ID= /etc/os-release; ls /",
        ],
    )
    .ok();
    let out = run_bundle(&env, &dir, "pull-e2e").ok();
    // The container's / is the bundle's rootfs: the image's entries plus any mount point
    // the default spec needs (e.g. /run).
    let mut top: Vec<String> = fs::read_dir(dir.join("rootfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    for want in integration::busybox::rootfs_entries() {
        assert!(top.iter().any(|t| t == want), "{want} missing from {top:?}");
    }
    assert_eq!(
        out.stdout(),
        format!(
            "hello from e2e-host\nID=mocker-busybox\n{}\n",
            top.join("\n")
        )
    );
    run(env.cmd().args(remove_bundle_args(&dir))).ok();
    assert!(!dir.exists());
    assert!(mounts_under(&dir).is_empty());
}

#[test]
fn image_user_workdir_env_and_entrypoint_reach_the_process() {
    let env = PullEnv::new();
    let image = env.push("app", "v1", &app_image());
    let dir = env.dir("bundle");
    env.pull(&image, &dir, &[]).ok();
    let out = run_bundle(&env, &dir, "pull-app").ok();
    assert_eq!(out.stdout(), "cmd as 1234:2345 in /srv with hi\n");

    // Cmd replaced from the command line, the Entrypoint kept.
    let dir2 = env.dir("bundle2");
    env.pull(&image, &dir2, &["--", "cat /srv/data.txt; id -un"])
        .ok();
    let out = run_bundle(&env, &dir2, "pull-app2").ok();
    assert_eq!(out.stdout(), "layer two\napp\n");
}

#[test]
fn container_writes_stay_in_their_bundle() {
    let env = PullEnv::new();
    let img = integration::image::busybox_image(Format::Oci, Compression::Gzip).unwrap();
    let image = env.push("bb", "latest", &img);
    let (d1, d2) = (env.dir("one"), env.dir("two"));
    env.pull(
        &image,
        &d1,
        &[
            "--",
            "sh",
            "-c",
            "echo pwned > /etc/os-release; rm /bin/ls; echo done",
        ],
    )
    .ok();
    env.pull(
        &image,
        &d2,
        &[
            "--",
            "sh",
            "-c",
            "cat /etc/os-release; ls / >/dev/null && echo ls-ok",
        ],
    )
    .ok();
    assert_eq!(run_bundle(&env, &d1, "writer").ok().stdout(), "done\n");
    let out = run_bundle(&env, &d2, "reader").ok().stdout();
    assert_eq!(out, format!("{}ls-ok\n", integration::image::OS_RELEASE));
    for d in [&d1, &d2] {
        run(env.cmd().args(remove_bundle_args(d))).ok();
        assert!(mounts_under(d).is_empty());
    }
}

/// The README's main job, `scripts/demo.sh` (what `just demo` runs), with this build's
/// binaries: it shows the container's output and leaves nothing behind.
#[test]
fn demo_script_runs_and_cleans_up() {
    integration::pull::require_root();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/demo.sh");
    let before: Vec<String> = demo_dirs();
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .env("MOCKER_BIN_DIR", integration::pull::bin_dir())
        .env("MOCKER_DEMO_RUNTIME", runtime());
    let out = run(&mut cmd).ok();
    let stdout = out.stdout();
    assert!(
        stdout.contains("hello from mocker-demo, pid 1, as root"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Mocker test image (busybox-static)"),
        "{stdout}"
    );
    assert!(out.stderr().contains("cleaned up"), "{}", out.stderr());
    assert_eq!(demo_dirs(), before, "the demo left its work directory");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("/mocker-demo."), "the demo left mounts");
}

fn demo_dirs() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mocker-demo."))
        .collect();
    v.sort();
    v
}
