//! `mocker-bundle`: inspect and build OCI bundles with the bundle-tools library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bundle_tools::layer::{self, ApplyOptions, WhiteoutMode};
use bundle_tools::spec::{self, Overrides};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mocker-bundle",
    version,
    about = "Inspect and build OCI bundles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check DIR/config.json and its rootfs; prints OK or the one-line error.
    Validate { dir: PathBuf },
    /// Print a runtime spec: `runc spec`'s default, or the conversion of an image config.
    Spec {
        /// An image configuration JSON (application/vnd.oci.image.config.v1+json).
        #[arg(long, requires = "rootfs")]
        image_config: Option<PathBuf>,
        /// The unpacked rootfs, read for /etc/passwd and /etc/group.
        #[arg(long, requires = "image_config")]
        rootfs: Option<PathBuf>,
        /// `runc spec --rootless`: map root to the caller's ids in a user namespace.
        #[arg(long, conflicts_with = "image_config")]
        rootless: bool,
        /// Allocate a terminal.
        #[arg(long)]
        tty: bool,
        /// Environment override KEY=VALUE (repeatable).
        #[arg(long = "env", short = 'e')]
        env: Vec<String>,
        #[arg(long)]
        workdir: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        hostname: Option<String>,
        /// Replaces the image's Cmd.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Apply an uncompressed layer tar read from stdin onto ROOTFS.
    ApplyLayer {
        rootfs: PathBuf,
        /// Extract as an overlayfs lower dir (whiteouts become overlay whiteouts).
        #[arg(long)]
        overlay: bool,
        /// Do not chown entries to the tar's owners.
        #[arg(long)]
        no_chown: bool,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Validate { dir } => {
            bundle_tools::validate::load(&dir)?;
            println!("OK");
        }
        Command::Spec {
            image_config,
            rootfs,
            rootless,
            tty,
            env,
            workdir,
            user,
            hostname,
            args,
        } => {
            let s = match (image_config, rootfs) {
                (Some(cfg), Some(rootfs)) => {
                    let bytes =
                        std::fs::read(&cfg).with_context(|| format!("{}", cfg.display()))?;
                    let mut de = serde_json::Deserializer::from_slice(&bytes);
                    let image: oci_spec::image::ImageConfiguration =
                        serde_path_to_error::deserialize(&mut de).map_err(|e| {
                            anyhow::anyhow!(
                                "{}: field `{}`: {}",
                                cfg.display(),
                                e.path(),
                                e.inner()
                            )
                        })?;
                    let o = Overrides {
                        tty,
                        env,
                        workdir,
                        user,
                        hostname,
                        args,
                    };
                    spec::image_to_spec(&image, &rootfs, &o)?
                }
                _ if rootless => spec::rootless_spec(
                    nix::unistd::geteuid().as_raw(),
                    nix::unistd::getegid().as_raw(),
                ),
                _ => spec::default_spec(),
            };
            println!("{}", spec::to_pretty_json(&s));
        }
        Command::ApplyLayer {
            rootfs,
            overlay,
            no_chown,
        } => {
            let opts = ApplyOptions {
                whiteouts: if overlay {
                    WhiteoutMode::Overlay
                } else {
                    WhiteoutMode::Apply
                },
                chown: !no_chown,
                ..Default::default()
            };
            let stdin = std::io::stdin().lock();
            let stats = layer::apply_layer(&rootfs, std::io::BufReader::new(stdin), &opts)?;
            eprintln!("{} entries, {} bytes", stats.entries, stats.bytes);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mocker-bundle: {e:#}");
            ExitCode::FAILURE
        }
    }
}
