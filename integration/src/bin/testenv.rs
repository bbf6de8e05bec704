//! `testenv`: the test harness as a command, for the demo and for manual testing.
//!
//! ```text
//! testenv registry DIR [--port N] [--addr-file FILE]
//!     start docker-registry with its state in DIR, print 127.0.0.1:PORT, run until killed
//! testenv push-busybox REGISTRY REPO:TAG [--format oci|docker] [--compression gzip|zstd|none]
//!     build a busybox image from /bin/busybox and push it (plain HTTP)
//! testenv oci-layout-busybox DIR TAG
//!     write the same busybox image as an OCI image layout (for skopeo/umoci)
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use integration::image::{Compression, Format, busybox_image, write_oci_layout};
use integration::push::Client;
use integration::registry::Registry;

const USAGE: &str = "usage:
  testenv registry DIR [--port N] [--addr-file FILE]
  testenv push-busybox REGISTRY REPO:TAG [--format oci|docker] [--compression gzip|zstd|none]
  testenv oci-layout-busybox DIR TAG
  testenv push-large REGISTRY REPO:TAG [--mb 240] [--files 12000]   (4 layers, gzip)";

fn main() {
    if let Err(e) = run() {
        eprintln!("testenv: {e:#}");
        std::process::exit(1);
    }
}

type Opts = Vec<(String, String)>;

/// Splits `--name value` options from positional arguments.
fn parse(args: &[String]) -> Result<(Vec<String>, Opts)> {
    let mut pos = Vec::new();
    let mut opts = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(name) = a.strip_prefix("--") {
            let v = it
                .next()
                .with_context(|| format!("option --{name} needs a value"))?;
            opts.push((name.to_string(), v.clone()));
        } else {
            pos.push(a.clone());
        }
    }
    Ok((pos, opts))
}

fn opt<'a>(opts: &'a [(String, String)], name: &str) -> Option<&'a str> {
    opts.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        bail!("missing command\n{USAGE}");
    };
    let (pos, opts) = parse(rest)?;
    match (cmd.as_str(), pos.as_slice()) {
        ("registry", [dir]) => serve(dir.into(), &opts),
        ("push-busybox", [registry, reference]) => push_busybox(registry, reference, &opts),
        ("push-large", [registry, reference]) => push_large(registry, reference, &opts),
        ("oci-layout-busybox", [dir, tag]) => {
            let img = busybox_image(Format::Oci, Compression::Gzip)?;
            write_oci_layout(&PathBuf::from(dir), tag, &img)
                .with_context(|| format!("write OCI layout {dir}"))?;
            println!("{}", img.digest());
            Ok(())
        }
        ("-h" | "--help" | "help", _) => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("bad arguments\n{USAGE}"),
    }
}

fn serve(dir: PathBuf, opts: &[(String, String)]) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    // Block the stop signals before the registry starts so none is lost; the child gets an
    // empty mask from std::process.
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().context("block signals")?;
    let port = match opt(opts, "port") {
        Some(p) => p.parse().with_context(|| format!("bad --port {p}"))?,
        None => 0,
    };
    let registry = Registry::start_in(&dir, port)
        .with_context(|| format!("start docker-registry in {}", dir.display()))?;
    if let Some(f) = opt(opts, "addr-file") {
        // Written atomically: scripts poll for it.
        let tmp = format!("{f}.tmp");
        std::fs::write(&tmp, format!("{}\n", registry.addr()))?;
        std::fs::rename(&tmp, f)?;
    }
    println!("{}", registry.addr());
    let sig = set.wait().context("wait for a signal")?;
    eprintln!("testenv: {sig}, stopping the registry");
    drop(registry);
    Ok(())
}

/// `repo:tag` -> (repo, tag), `latest` by default.
fn split_reference(reference: &str) -> (&str, &str) {
    reference
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .unwrap_or((reference, "latest"))
}

fn push_large(registry: &str, reference: &str, opts: &[(String, String)]) -> Result<()> {
    let (repo, tag) = split_reference(reference);
    let num = |name: &str, default: usize| -> Result<usize> {
        opt(opts, name).map_or(Ok(default), |v| {
            v.parse().with_context(|| format!("bad --{name} {v}"))
        })
    };
    let img = integration::image::large_image(num("mb", 240)?, num("files", 12000)?)
        .context("build the large image")?;
    Client::new(registry)
        .push_image(repo, tag, &img)
        .with_context(|| format!("push {registry}/{repo}:{tag}"))?;
    println!("{registry}/{repo}:{tag}@{}", img.digest());
    Ok(())
}

fn push_busybox(registry: &str, reference: &str, opts: &[(String, String)]) -> Result<()> {
    let (repo, tag) = split_reference(reference);
    let format = match opt(opts, "format").unwrap_or("oci") {
        "oci" => Format::Oci,
        "docker" => Format::Docker,
        f => bail!("bad --format {f} (oci or docker)"),
    };
    let compression = match opt(opts, "compression").unwrap_or("gzip") {
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        "none" => Compression::None,
        c => bail!("bad --compression {c} (gzip, zstd or none)"),
    };
    let img = busybox_image(format, compression).context("build the busybox image")?;
    Client::new(registry)
        .push_image(repo, tag, &img)
        .with_context(|| format!("push {registry}/{repo}:{tag}"))?;
    println!("{registry}/{repo}:{tag}@{}", img.digest());
    Ok(())
}
