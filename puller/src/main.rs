//! mocker-pull: pull an image from an OCI/Docker registry into a runnable OCI bundle.

mod auth;
mod bundle;
mod cache;
mod digest;
mod fetch;
mod in_use;
mod overlay;
mod platform;
mod progress;
mod pull;
mod reference;
mod registry;
mod retry;
mod tls;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::HumanBytes;

use crate::cache::Cache;
use crate::reference::ImageRef;

const AFTER_HELP: &str = "\
The bundle runs with `mocker-runtime run -b DIR ID` (or `runc run -b DIR ID`).

By default DIR/rootfs is an overlay mount: the image's layers, extracted once into the cache,
are the read-only lower layers and DIR/.overlay holds this bundle's private writable layer, so
writes never reach the cache or another bundle. Remove such a bundle with
`mocker-pull rm-bundle DIR` (unmounts DIR/rootfs, then deletes DIR; refused while a container
or any process still uses the rootfs). With --no-overlay (or when overlayfs is unavailable, or
when not root) DIR/rootfs is a plain directory; rm-bundle removes it the same way.

Exit status: 0 on success, 1 on any error (one line on stderr), 2 on bad usage.";

#[derive(Parser, Debug)]
#[command(
    name = "mocker-pull",
    version,
    about = "Pull an image from a registry into a runnable OCI bundle (verified, cached, fast)",
    after_help = AFTER_HELP,
    override_usage = "mocker-pull [OPTIONS] IMAGE DIR [-- CMD [ARG]...]\n       \
                      mocker-pull [OPTIONS] images | rm IMAGE | prune | rm-bundle DIR",
    subcommand_negates_reqs = true,
    subcommand_precedence_over_arg = true
)]
struct Cli {
    #[command(flatten)]
    global: Global,

    #[command(flatten)]
    pull: PullArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Debug)]
struct Global {
    /// Cache directory (default: /var/lib/mocker/cache for root, else ~/.cache/mocker).
    #[arg(long, global = true, env = "MOCKER_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// No progress output.
    #[arg(long, short, global = true)]
    quiet: bool,

    /// Debug logging on stderr.
    #[arg(long, global = true)]
    debug: bool,
}

#[derive(Args, Debug)]
struct PullArgs {
    /// Image reference: nginx, user/app:1.0, host:5000/repo:tag, repo@sha256:...
    #[arg(required = true)]
    image: Option<String>,

    /// Bundle directory to create (must not exist, or be empty).
    #[arg(required = true)]
    dir: Option<PathBuf>,

    /// Command and arguments replacing the image's Cmd (after `--`).
    #[arg(last = true, value_name = "CMD")]
    args: Vec<String>,

    /// Platform to pull from a multi-platform image: os/arch[/variant] (default: this host).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,

    /// Registry user name (else from containers' auth.json or docker's config.json).
    #[arg(long, short = 'u', requires = "password")]
    username: Option<String>,

    /// Registry password or token.
    #[arg(
        long,
        short = 'p',
        env = "MOCKER_PULL_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,

    /// Plain HTTP only (loopback registries get HTTPS, then plain HTTP if they do not speak TLS).
    #[arg(long, conflicts_with_all = ["insecure", "cert_dir"])]
    plain_http: bool,

    /// Accept a registry certificate that does not verify, and fall back to plain HTTP when
    /// the registry does not speak TLS (docker's "insecure registry", skopeo's
    /// --tls-verify=false).
    #[arg(long)]
    insecure: bool,

    /// CA certificates (*.crt) for the registry, instead of looking in
    /// /etc/containers/certs.d/HOST:PORT/ and /etc/docker/certs.d/HOST:PORT/.
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,

    /// Apply all layers into a plain DIR/rootfs instead of an overlay mount of cached layers.
    #[arg(long)]
    no_overlay: bool,

    /// Parallel layer downloads.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,

    /// Refuse a layer that unpacks to more than SIZE (bytes, or with a K/M/G/T suffix):
    /// a guard against decompression bombs.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_layer_size: Option<u64>,

    /// Allocate a terminal for the process (process.terminal = true).
    #[arg(long, short = 't')]
    tty: bool,

    /// Set an environment variable (repeatable).
    #[arg(long, short = 'e', value_name = "KEY=VALUE")]
    env: Vec<String>,

    /// Working directory inside the container.
    #[arg(long, short = 'w')]
    workdir: Option<String>,

    /// User to run as: name, uid, name:group or uid:gid (resolved in the image's /etc/passwd).
    #[arg(long)]
    user: Option<String>,

    /// Container hostname.
    #[arg(long)]
    hostname: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List cached images (name, tag, digest, platform, size).
    Images {
        /// Print digests in full.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Remove an image from the cache, and the layers no other image uses.
    Rm {
        /// Image reference, as given to the pull.
        image: String,
        /// Only the record of this platform.
        #[arg(long)]
        platform: Option<String>,
    },
    /// Remove every cached image, except layers mounted by existing bundles, and leftovers.
    Prune,
    /// Remove a bundle made by mocker-pull (unmount its rootfs, delete DIR); refused while a
    /// container or another process uses it.
    #[command(alias = "umount")]
    RmBundle {
        /// Bundle directory.
        dir: PathBuf,
    },
}

/// `--max-layer-size`: bytes, or a number with a binary K/M/G/T suffix (`512M`, `2g`, `1GiB`).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let shift = match &lower[digits.len()..] {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown unit {other:?} (use K, M, G or T)")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{t:?} is not a size (e.g. 512M)"))?;
    n.checked_mul(1 << shift)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{t:?} is out of range"))
}

fn default_cache_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/mocker/cache");
    }
    match (std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")) {
        (Some(x), _) if !x.is_empty() => PathBuf::from(x).join("mocker"),
        (_, Some(h)) => PathBuf::from(h).join(".cache/mocker"),
        _ => PathBuf::from("/tmp/mocker-cache"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(if cli.global.debug {
            "mocker_pull=debug,oci_client=debug"
        } else {
            "warn"
        })
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mocker-pull: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    // ring, not reqwest's default aws-lc-rs: that one spends ~20 ms of CPU initialising on
    // the first handshake, which a warm pull (~10 ms) would pay for every HTTPS attempt.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cache_dir = cli
        .global
        .cache_dir
        .clone()
        .unwrap_or_else(default_cache_dir);
    match cli.command {
        Some(Command::Images { no_trunc }) => images(&cache_dir, no_trunc),
        Some(Command::Rm { image, platform }) => rm(&cache_dir, &image, platform.as_deref()),
        Some(Command::Prune) => prune(&cache_dir, cli.global.quiet),
        Some(Command::RmBundle { dir }) => rm_bundle(&dir),
        None => {
            let p = cli.pull;
            let opts = pull::PullOptions {
                image: p.image.expect("required"),
                dir: p.dir.expect("required"),
                platform: p.platform,
                username: p.username,
                password: p.password,
                plain_http: p.plain_http,
                insecure: p.insecure,
                cert_dir: p.cert_dir,
                cache_dir: cache_dir.clone(),
                quiet: cli.global.quiet,
                no_overlay: p.no_overlay,
                jobs: p.jobs as usize,
                max_layer_size: p.max_layer_size,
                overrides: bundle_tools::spec::Overrides {
                    tty: p.tty,
                    env: p.env,
                    workdir: p.workdir,
                    user: p.user,
                    hostname: p.hostname,
                    args: p.args,
                },
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            // On SIGINT/SIGTERM the pull is dropped: its temp bundle and cache entries go.
            // The handlers are installed before the pull starts: a signal that arrives before
            // the first await must not take the default action and leave the temp bundle.
            let (mut int, mut term) = {
                use tokio::signal::unix::{SignalKind, signal};
                let _ctx = rt.enter();
                (
                    signal(SignalKind::interrupt()).context("SIGINT handler")?,
                    signal(SignalKind::terminate()).context("SIGTERM handler")?,
                )
            };
            let result = rt.block_on(async {
                tokio::select! {
                    r = pull::pull(opts) => r,
                    _ = int.recv() => Err(anyhow::anyhow!("interrupted")),
                    _ = term.recv() => Err(anyhow::anyhow!("terminated")),
                }
            });
            // Blocking extraction threads finish (and clean up) before the runtime goes.
            drop(rt);
            if result.is_err() {
                pull::rollback_cache(&cache_dir);
            }
            result.map(drop)
        }
    }
}

fn short(d: &str, full: bool) -> String {
    if full {
        return d.to_string();
    }
    let (alg, hex) = d.split_once(':').unwrap_or(("", d));
    format!("{alg}:{}", &hex[..hex.len().min(12)])
}

fn images(cache_dir: &Path, no_trunc: bool) -> Result<()> {
    let rows: Vec<[String; 5]> = if cache_dir.exists() {
        Cache::open(cache_dir)?
            .images()
            .into_iter()
            .map(|r| {
                [
                    r.name.clone(),
                    r.tag.clone().unwrap_or_else(|| "<none>".into()),
                    short(&r.digest, no_trunc),
                    r.platform.clone(),
                    HumanBytes(r.size()).to_string(),
                ]
            })
            .collect()
    } else {
        Vec::new()
    };
    let header = ["REPOSITORY", "TAG", "DIGEST", "PLATFORM", "SIZE"].map(String::from);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(())
}

fn rm(cache_dir: &Path, image: &str, platform: Option<&str>) -> Result<()> {
    let r = ImageRef::parse(image)?;
    let plat = platform.map(platform::Platform::parse).transpose()?;
    let cache = Cache::open(cache_dir)?;
    let _lock = cache.lock_exclusive()?;
    let removed = cache.remove_images(|rec| {
        rec.name == r.name()
            && match (&r.tag, &r.digest) {
                (_, Some(d)) => rec.digest == *d || rec.index_digest.as_deref() == Some(d),
                (Some(t), None) => rec.tag.as_deref() == Some(t),
                (None, None) => false,
            }
            && plat.as_ref().is_none_or(|p| rec.platform == p.to_string())
    })?;
    if removed.is_empty() {
        bail!("image {r} is not in the cache {}", cache_dir.display());
    }
    let st = cache.collect_garbage()?;
    for rec in &removed {
        println!(
            "removed {}:{} ({})",
            rec.name,
            rec.tag.as_deref().unwrap_or("<none>"),
            rec.platform
        );
    }
    eprintln!("freed {} in {} entries", HumanBytes(st.bytes), st.entries);
    Ok(())
}

fn prune(cache_dir: &Path, quiet: bool) -> Result<()> {
    if !cache_dir.exists() {
        return Ok(());
    }
    let cache = Cache::open(cache_dir)?;
    let _lock = cache.lock_exclusive()?;
    let removed = cache.remove_images(|_| true)?;
    let st = cache.collect_garbage()?;
    if !quiet {
        eprintln!(
            "removed {} images; freed {} in {} entries",
            removed.len(),
            HumanBytes(st.bytes),
            st.entries
        );
    }
    Ok(())
}

fn rm_bundle(dir: &Path) -> Result<()> {
    let marker = bundle::remove(dir)?;
    if let Ok(abs) = bundle::absolute(dir) {
        if marker.cache_dir.exists() {
            if let Ok(cache) = Cache::open(&marker.cache_dir) {
                cache.unregister_bundle(&abs);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_take_binary_suffixes_and_refuse_nonsense() {
        use super::parse_size;
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        for bad in ["", "0", "M", "-1", "1.5G", "10X", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn pull_args_and_trailing_command() {
        let c = Cli::try_parse_from([
            "mocker-pull",
            "--platform",
            "linux/arm64",
            "-e",
            "A=1",
            "--env",
            "B=2",
            "--tty",
            "busybox",
            "/tmp/b",
            "--",
            "sh",
            "-c",
            "echo hi",
        ])
        .unwrap();
        assert!(c.command.is_none());
        assert_eq!(c.pull.image.as_deref(), Some("busybox"));
        assert_eq!(c.pull.env, ["A=1", "B=2"]);
        assert_eq!(c.pull.args, ["sh", "-c", "echo hi"]);
        assert!(c.pull.tty);
    }

    #[test]
    fn subcommands_parse() {
        let c = Cli::try_parse_from(["mocker-pull", "images"]).unwrap();
        assert!(matches!(c.command, Some(Command::Images { .. })));
        let c = Cli::try_parse_from(["mocker-pull", "--cache-dir", "/c", "rm", "busybox"]).unwrap();
        assert!(matches!(c.command, Some(Command::Rm { .. })));
        assert_eq!(c.global.cache_dir.as_deref(), Some(Path::new("/c")));
        let c = Cli::try_parse_from(["mocker-pull", "rm-bundle", "/b"]).unwrap();
        assert!(matches!(c.command, Some(Command::RmBundle { .. })));
        assert!(Cli::try_parse_from(["mocker-pull", "busybox"]).is_err());
        assert!(Cli::try_parse_from(["mocker-pull", "-u", "x", "busybox", "/b"]).is_err());
    }
}
