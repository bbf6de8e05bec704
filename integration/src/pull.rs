//! Running the project's binaries (`mocker-pull`, `mocker-runtime`) from the tests.
//!
//! Binaries are found next to the test executable's profile directory (`target/<profile>/`,
//! as `cargo build --workspace` leaves them), or in `$MOCKER_BIN_DIR`. A missing binary or a
//! missing privilege is a test failure, never a silent pass.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `$MOCKER_BIN_DIR`, else `target/<profile>/` (the test binary lives in `target/<profile>/deps/`).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MOCKER_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("exe dir");
    if dir.file_name() == Some(OsStr::new("deps")) {
        dir.parent().expect("profile dir").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The path of a project binary; panics (fails the test) if it was not built.
pub fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} not found: run `cargo build --workspace` first (or set MOCKER_BIN_DIR)",
        p.display()
    );
    p
}

/// Fails the test unless it runs as root (the tests chown, mknod and mount).
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this end-to-end test needs root (chown, mknod, mounts); run it as root"
    );
}

/// A finished command, with helpers that print everything when an expectation fails.
#[derive(Debug)]
pub struct Run {
    pub what: String,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn success(&self) -> bool {
        self.output.status.success()
    }
    /// Panics with the command's output unless it exited 0.
    pub fn ok(self) -> Run {
        assert!(
            self.success(),
            "`{}` failed ({}):\nstdout: {}\nstderr: {}",
            self.what,
            self.output.status,
            self.stdout(),
            self.stderr()
        );
        self
    }
    /// Panics unless the command failed with a non-empty error on stderr whose last line
    /// contains every one of `needles` (case-insensitive). Returns that line.
    pub fn fails_with(&self, needles: &[&str]) -> String {
        assert!(
            !self.success(),
            "`{}` should have failed:\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout(),
            self.stderr()
        );
        let err = self.stderr();
        let line = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .to_string();
        // Shown with --nocapture: the error messages are part of what is reviewed.
        eprintln!("[{}] error line: {line}", self.what);
        let lower = line.to_lowercase();
        for n in needles {
            assert!(
                lower.contains(&n.to_lowercase()),
                "`{}`: error line should mention {n:?}, got: {line:?}\nfull stderr: {err}",
                self.what
            );
        }
        assert!(
            !err.contains("panicked at"),
            "`{}` panicked instead of a clean error: {err}",
            self.what
        );
        line
    }
}

/// Runs `cmd` to completion, stdin closed, capturing its output.
pub fn run(cmd: &mut Command) -> Run {
    let what = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    Run { what, output }
}

/// `mocker-pull --cache-dir CACHE` (other arguments follow).
pub fn mocker_pull(cache: &Path) -> Command {
    let mut c = Command::new(binary("mocker-pull"));
    c.arg("--cache-dir").arg(cache);
    // No credentials from the host: tests pass them explicitly (flags or their own files).
    c.env_remove("DOCKER_CONFIG")
        .env_remove("MOCKER_CACHE_DIR")
        .env_remove("MOCKER_PULL_PASSWORD")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_CONFIG_HOME")
        .env("XDG_RUNTIME_DIR", cache.join("no-run"))
        .env("HOME", cache.join("no-home"));
    c
}

/// The runtime the end-to-end tests run bundles with: `$MOCKER_TEST_RUNTIME` or
/// `$MOCKER_RUNTIME` (a path or a name in PATH, e.g. `runc`), else the project's
/// `mocker-runtime`.
pub fn runtime() -> PathBuf {
    ["MOCKER_TEST_RUNTIME", "MOCKER_RUNTIME"]
        .iter()
        .filter_map(std::env::var_os)
        .find(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| binary("mocker-runtime"))
}

/// Mount points under `dir` (from /proc/self/mountinfo): what a bundle left mounted.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m == &dir || m.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

/// Every path under `dir`, relative, sorted (empty if `dir` is missing).
pub fn list_tree(dir: &Path) -> Vec<String> {
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                go(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out.sort();
    out
}

/// One test's world: a registry, a push client, a private cache and a scratch directory
/// where bundles go (all removed on drop; bundles still mounted are unmounted first).
pub struct PullEnv {
    pub registry: crate::registry::Registry,
    pub client: crate::push::Client,
    pub cache: tempfile::TempDir,
    pub work: tempfile::TempDir,
}

impl Default for PullEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl PullEnv {
    /// An anonymous registry.
    pub fn new() -> PullEnv {
        require_root();
        Self::with(crate::registry::Registry::start().expect("start docker-registry"))
    }

    /// A registry requiring basic auth as `user`/`password`.
    pub fn with_auth(user: &str, password: &str) -> PullEnv {
        require_root();
        Self::with(
            crate::registry::Registry::start_with_auth(user, password)
                .expect("start docker-registry with htpasswd"),
        )
    }

    /// Around an already started registry (e.g. [`crate::registry::Registry::start_with_token`]).
    pub fn with(registry: crate::registry::Registry) -> PullEnv {
        require_root();
        let client = crate::push::Client::for_registry(&registry);
        let mk = |p: &str| {
            tempfile::Builder::new()
                .prefix(p)
                .tempdir()
                .expect("tempdir")
        };
        PullEnv {
            registry,
            client,
            cache: mk("mocker-pull-cache-"),
            work: mk("mocker-pull-work-"),
        }
    }

    pub fn cache(&self) -> &Path {
        self.cache.path()
    }

    /// A path for a bundle (not created).
    pub fn dir(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// `ADDR/repo:tag` (or `@digest`).
    pub fn image_ref(&self, repo: &str, reference: &str) -> String {
        self.registry.image_ref(repo, reference)
    }

    /// Pushes `image` as `repo:tag`, returning its reference.
    pub fn push(&self, repo: &str, tag: &str, image: &crate::image::BuiltImage) -> String {
        self.client
            .push_image(repo, tag, image)
            .unwrap_or_else(|e| panic!("push {repo}:{tag}: {e}"));
        self.image_ref(repo, tag)
    }

    /// Pushes an index and its images as `repo:tag`, returning its reference.
    pub fn push_index(&self, repo: &str, tag: &str, index: &crate::image::BuiltIndex) -> String {
        self.client
            .push_index(repo, tag, index)
            .unwrap_or_else(|e| panic!("push index {repo}:{tag}: {e}"));
        self.image_ref(repo, tag)
    }

    /// `mocker-pull --cache-dir CACHE` with no credentials from the environment.
    pub fn cmd(&self) -> Command {
        mocker_pull(self.cache())
    }

    /// `mocker-pull [extra...] IMAGE DIR [-- cmd...]`, run to completion.
    pub fn pull(&self, image: &str, dir: &Path, extra: &[&str]) -> Run {
        let (opts, cmd) = match extra.iter().position(|a| *a == "--") {
            Some(i) => (&extra[..i], &extra[i..]),
            None => (extra, &[][..]),
        };
        run(self.cmd().args(opts).arg(image).arg(dir).args(cmd))
    }

    /// The bundle's config.json.
    pub fn config(&self, dir: &Path) -> serde_json::Value {
        let text = fs::read_to_string(dir.join("config.json"))
            .unwrap_or_else(|e| panic!("read {}/config.json: {e}", dir.display()));
        serde_json::from_str(&text).expect("config.json is JSON")
    }

    /// Asserts that a failed pull left nothing: DIR absent, no mount under it, nothing new
    /// next to it, and the cache holds no temp entry, no image or bundle record, no layer
    /// among `layer_diff_ids`, and only blobs whose content matches their name.
    pub fn assert_nothing_left(&self, dir: &Path, layer_diff_ids: &[&str]) {
        assert!(
            fs::symlink_metadata(dir).is_err(),
            "{} exists after a failed pull: {:?}",
            dir.display(),
            list_tree(dir)
        );
        assert_eq!(mounts_under(dir), Vec::<String>::new(), "mounts left");
        let siblings: Vec<String> = list_tree(self.work.path())
            .into_iter()
            .filter(|p| !p.contains('/'))
            .collect();
        let known: Vec<String> = siblings
            .iter()
            .filter(|p| {
                // Directories a test made on purpose (other bundles) start with "keep".
                p.starts_with("keep")
            })
            .cloned()
            .collect();
        assert_eq!(siblings, known, "files left next to {}", dir.display());
        assert_cache_clean(self.cache(), layer_diff_ids);
    }
}

/// The cache holds no temp entry, no image/bundle record, none of `layer_diff_ids` as an
/// extracted layer, and every blob's content matches its digest name.
pub fn assert_cache_clean(cache: &Path, layer_diff_ids: &[&str]) {
    let tmp = list_tree(&cache.join("tmp"));
    assert!(tmp.is_empty(), "cache tmp/ not empty: {tmp:?}");
    for sub in ["images", "bundles"] {
        let v = list_tree(&cache.join(sub));
        assert!(
            v.is_empty(),
            "cache {sub}/ has records after a failure: {v:?}"
        );
    }
    // Layers are keyed by chainID: look for the diffIDs in what every cached layer records
    // (an incomplete layer, without `layer.json`, fails here too).
    let cached = cached_layers(cache);
    for d in layer_diff_ids {
        assert!(
            !cached.iter().any(|c| c == d),
            "cache keeps layer {d} of a failed pull: {cached:?}"
        );
    }
    assert_eq!(
        corrupt_blobs(cache),
        Vec::<String>::new(),
        "corrupt cache blobs"
    );
}

/// After successful pulls: no temp entry, every blob matches its name, every extracted
/// layer is complete (has its `layer.json`).
pub fn assert_cache_consistent(cache: &Path) {
    let tmp = list_tree(&cache.join("tmp"));
    assert!(tmp.is_empty(), "cache tmp/ not empty: {tmp:?}");
    assert_eq!(
        corrupt_blobs(cache),
        Vec::<String>::new(),
        "corrupt cache blobs"
    );
    for l in cached_layer_keys(cache) {
        let meta = cache
            .join("layers/sha256")
            .join(l.trim_start_matches("sha256:"))
            .join("layer.json");
        assert!(meta.is_file(), "incomplete cached layer {l}");
    }
}

/// Blobs in the cache whose content does not hash to their name.
pub fn corrupt_blobs(cache: &Path) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let dir = cache.join("blobs/sha256");
    let Ok(rd) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let data = fs::read(e.path()).ok()?;
            (hex::encode(Sha256::digest(&data)) != name).then_some(name)
        })
        .collect()
}

/// The diffIDs of the extracted layers in the cache (from each one's `layer.json`), sorted; a
/// diffID shows up once per chain (base layers below it) it was extracted on.
pub fn cached_layers(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = cached_layer_keys(cache)
        .iter()
        .map(|k| {
            let meta = cache
                .join("layers/sha256")
                .join(k.trim_start_matches("sha256:"))
                .join("layer.json");
            let text = fs::read_to_string(&meta)
                .unwrap_or_else(|e| panic!("incomplete cached layer {k}: {e}"));
            let v: serde_json::Value = serde_json::from_str(&text).expect("layer.json is JSON");
            v["diff_id"]
                .as_str()
                .expect("layer.json diff_id")
                .to_string()
        })
        .collect();
    v.sort();
    v
}

/// The keys (chainIDs) of the extracted layers in the cache (`layers/sha256/<hex>`), sorted.
pub fn cached_layer_keys(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(cache.join("layers/sha256"))
        .map(|rd| {
            rd.flatten()
                .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// OCI image-spec ChainIDs of a layer stack, bottom first: ChainID(L0) = DiffID(L0),
/// ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
pub fn chain_ids(diff_ids: &[&str]) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let mut out: Vec<String> = Vec::new();
    for d in diff_ids {
        let next = match out.last() {
            None => d.to_string(),
            Some(below) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{below} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

impl Drop for PullEnv {
    fn drop(&mut self) {
        // A test that failed mid-way may leave overlay mounts: undo them so the temp dirs go.
        for base in [
            self.work.path().to_path_buf(),
            self.cache.path().to_path_buf(),
        ] {
            let mut m = mounts_under(&base);
            m.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in m {
                let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

/// Options for a plain-directory rootfs instead of the default overlay mount.
pub fn plain_dir_args() -> Vec<&'static str> {
    vec!["--no-overlay"]
}

/// `mocker-pull` arguments that remove a bundle and undo what its pull mounted.
pub fn remove_bundle_args(dir: &Path) -> Vec<String> {
    vec!["rm-bundle".into(), dir.to_string_lossy().into_owned()]
}

/// `umoci unpack` of `image` (written as an OCI layout under `work`): the reference rootfs
/// the puller's output is compared with.
pub fn umoci_rootfs(image: &crate::image::BuiltImage, work: &Path) -> PathBuf {
    let layout = work.join("layout");
    crate::image::write_oci_layout(&layout, "t", image).unwrap();
    let bundle = work.join("umoci-bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:t", layout.display()))
        .arg(&bundle))
    .ok();
    bundle.join("rootfs")
}
