//! `mocker-pull IMAGE DIR`: reference -> manifest -> config -> layers -> bundle, in that
//! order, each step verified before the next trusts it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use bundle_tools::layer::{ApplyOptions, WhiteoutMode, apply_layer};
use bundle_tools::spec::{Overrides, image_to_spec, to_pretty_json};
use oci_spec::image::ImageConfiguration;

use crate::auth;
use crate::bundle::{self, Marker, TmpBundle};
use crate::cache::{BundleRecord, Cache, ImageRecord, LayerRecord};
use crate::fetch::{ApplyFn, ApplyStats, Compression, Fetcher, LayerJob};
use crate::overlay;
use crate::platform::Platform;
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::registry::{self, LazyRegistry};
use crate::verify::extract_verified;

pub struct PullOptions {
    pub image: String,
    pub dir: PathBuf,
    pub platform: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub plain_http: bool,
    pub insecure: bool,
    pub cert_dir: Option<PathBuf>,
    pub cache_dir: PathBuf,
    pub quiet: bool,
    pub no_overlay: bool,
    pub jobs: usize,
    pub max_layer_size: Option<u64>,
    pub overrides: Overrides,
}

fn applier(mode: WhiteoutMode) -> ApplyFn {
    Arc::new(move |dest: &Path, tar: &mut dyn Read, lowers: &[PathBuf]| {
        let opts = ApplyOptions {
            whiteouts: mode,
            // Lowers not extracted yet are skipped; the retry pass finds them (fetch.rs).
            lowers: lowers.iter().filter(|p| p.is_dir()).cloned().collect(),
            ..ApplyOptions::default()
        };
        let st = apply_layer(dest, tar, &opts)?;
        Ok(ApplyStats {
            entries: st.entries,
            bytes: st.bytes,
            listed_dirs: st.listed_dirs,
        })
    })
}

pub async fn pull(opts: PullOptions) -> Result<PathBuf> {
    let started = Instant::now();
    let image = ImageRef::parse(&opts.image)?;
    let explicit_platform = opts.platform.is_some();
    let want = match &opts.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let credentials = auth::resolve(&image, opts.username.as_deref(), opts.password.as_deref())?;
    // DIR is checked before any network traffic; on failure its temp sibling is dropped.
    let mut tmp = TmpBundle::begin(&opts.dir)?;
    let cache = Cache::open(&opts.cache_dir)?;
    let _bundle_note = cache.note_temp_bundle(tmp.path())?;
    let cache2 = cache.clone();
    let _cache_lock = tokio::task::spawn_blocking(move || cache2.lock_shared()).await??;
    let progress = Progress::new(opts.quiet);

    let reg = Arc::new(LazyRegistry::new(
        image.clone(),
        registry::Options {
            plain_http: opts.plain_http,
            insecure: opts.insecure,
            cert_dir: opts.cert_dir.clone(),
            certs_d: crate::tls::certs_d_roots(),
            credentials,
        },
    ));
    // A digest reference whose manifest is cached needs no registry (unless layers are missing).
    let cached = image
        .digest
        .as_deref()
        .and_then(|d| registry::resolve_cached(d, &want, |d| cache.read_blob(d).ok().flatten()));
    let resolved = match cached {
        Some(r) => r,
        None => reg.get().await?.resolve(&want).await?,
    };
    let manifest = &resolved.manifest;
    let config_raw = match cache.read_blob(&manifest.config.digest)? {
        Some(b) => b,
        None => reg.get().await?.small_blob(&manifest.config).await?,
    };
    let config: ImageConfiguration = serde_json::from_slice(&config_raw)
        .with_context(|| format!("image config {}: invalid", manifest.config.digest))?;
    let platform = Platform {
        os: config.os().to_string(),
        arch: config.architecture().to_string(),
        variant: config.variant().clone(),
    };
    if explicit_platform
        && resolved.index.is_none()
        && !want.matches(&platform.os, &platform.arch, platform.variant.as_deref())
    {
        bail!(
            "image {image} is for {platform}, not the requested {want} (and it is not a multi-platform index)"
        );
    }
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers.len() {
        bail!(
            "image {image}: config {} lists {} diffIDs for {} layers",
            manifest.config.digest,
            diff_ids.len(),
            manifest.layers.len()
        );
    }
    for diff_id in diff_ids {
        crate::cache::digest_parts(diff_id)
            .with_context(|| format!("image config {}: rootfs.diff_ids", manifest.config.digest))?;
    }
    // Extracted layers are cached per chainID: the same diff on another base is another layer.
    let chain_ids = crate::digest::chain_ids(diff_ids);
    let mut jobs: Vec<LayerJob> = Vec::new();
    for ((desc, diff_id), chain_id) in manifest.layers.iter().zip(diff_ids).zip(chain_ids) {
        let compression = Compression::from_media_type(&desc.media_type).ok_or_else(|| {
            anyhow!(
                "layer {}: unsupported media type {:?}",
                desc.digest,
                desc.media_type
            )
        })?;
        let lowers = jobs
            .iter()
            .rev()
            .map(|j| cache.layer_rootfs(&j.chain_id))
            .collect::<Result<Vec<_>, _>>()?;
        jobs.push(LayerJob {
            digest: desc.digest.clone(),
            size: desc.size,
            compression,
            diff_id: diff_id.clone(),
            chain_id,
            lowers,
            max_size: opts.max_layer_size,
        });
    }

    progress.set_layer_order(jobs.iter().map(|j| j.digest.as_str()));
    let fetcher = Fetcher {
        registry: reg.clone(),
        cache: cache.clone(),
        progress: progress.clone(),
        jobs: opts.jobs,
    };
    let is_root = nix::unistd::geteuid().is_root();
    let mut use_overlay = !opts.no_overlay && is_root && overlay::available();
    if use_overlay {
        let done = fetcher
            .ensure_layers(&jobs, applier(WhiteoutMode::Overlay))
            .await;
        progress.layers_done();
        done?;
        let lowers = jobs
            .iter()
            .map(|j| cache.layer_rootfs(&j.chain_id))
            .collect::<Result<Vec<_>, _>>()?;
        let l2 = lowers.clone();
        let shadow = tokio::task::spawn_blocking(move || overlay::find_dir_over_symlink(&l2))
            .await?
            .context("checking the cached layers")?;
        if let Some(p) = shadow {
            progress.message(format!(
                "a layer writes under /{}, a symlink in a lower layer: applying layers in order into a plain rootfs",
                p.display()
            ));
            use_overlay = false;
        } else if let Err(e) = tmp.mount_overlay(
            &jobs
                .iter()
                .zip(&lowers)
                .map(|(j, root)| overlay::LayerDirs {
                    root: root.clone(),
                    implicit: cache
                        .layer_meta(&j.chain_id)
                        .map(|m| m.implicit_dirs)
                        .unwrap_or_default(),
                })
                .collect::<Vec<_>>(),
        ) {
            progress.message(format!(
                "overlay mount failed ({:#}); applying layers into a plain rootfs",
                anyhow::Error::from(e)
            ));
            use_overlay = false;
        }
    }
    if !use_overlay {
        let done = fetcher.ensure_blobs(&jobs).await;
        progress.layers_done();
        done?;
        let apply = applier(WhiteoutMode::Apply);
        for (i, job) in jobs.iter().enumerate() {
            progress.message(format!(
                "applying layer {}/{} {}",
                i + 1,
                jobs.len(),
                job.digest
            ));
            let blob = cache.blob_path(&job.digest)?;
            let rootfs = tmp.rootfs();
            let (job, apply) = (job.clone(), apply.clone());
            tokio::task::spawn_blocking(move || {
                let f =
                    File::open(&blob).with_context(|| format!("cache blob {}", blob.display()))?;
                let mut j = job;
                j.lowers.clear();
                extract_verified(f, &j, &rootfs, &apply).map_err(anyhow::Error::from)
            })
            .await??;
        }
    }

    let spec = image_to_spec(&config, &tmp.rootfs(), &opts.overrides)
        .with_context(|| format!("image {image}: building config.json"))?;
    tmp.write_file("config.json", to_pretty_json(&spec).as_bytes())?;
    let marker = Marker {
        image: image.to_string(),
        digest: resolved.digest.clone(),
        overlay: use_overlay,
        cache_dir: cache.root().to_path_buf(),
    };
    tmp.write_file(
        bundle::MARKER,
        &serde_json::to_vec_pretty(&marker).expect("serialisable"),
    )?;

    // Manifests and config are stored last: only a pull that got this far records an image.
    cache.write_blob(&resolved.digest, &resolved.manifest_raw)?;
    if let Some((raw, d)) = &resolved.index {
        cache.write_blob(d, raw)?;
    }
    cache.write_blob(&manifest.config.digest, &config_raw)?;
    let dest = tmp.commit()?;
    // Registered after the rename (a pull racing for the same DIR must not drop our record);
    // the shared cache lock keeps `prune` out until then.
    if use_overlay {
        let rec = BundleRecord {
            dir: dest.clone(),
            layers: jobs.iter().map(|j| j.chain_id.clone()).collect(),
        };
        if let Err(e) = cache.register_bundle(&rec) {
            let _ = bundle::remove(&dest);
            return Err(e.into());
        }
    }
    cache.save_image(&ImageRecord {
        name: image.name(),
        tag: image.tag.clone(),
        digest: resolved.digest.clone(),
        index_digest: resolved.index.as_ref().map(|(_, d)| d.clone()),
        platform: platform.to_string(),
        config_digest: manifest.config.digest.clone(),
        layers: manifest
            .layers
            .iter()
            .zip(&jobs)
            .map(|(d, j)| LayerRecord {
                digest: d.digest.clone(),
                diff_id: j.diff_id.clone(),
                media_type: d.media_type.clone(),
                size: d.size,
            })
            .collect(),
        pulled: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })?;
    progress.message(format!(
        "pulled {image} ({}, {platform}) into {} in {:.2}s{}",
        resolved.digest,
        dest.display(),
        started.elapsed().as_secs_f64(),
        if use_overlay { "" } else { " (plain rootfs)" }
    ));
    Ok(dest)
}

/// After a failed pull: drop the cache entries no image or mounted bundle uses, but only if
/// no other pull is running (they may be about to use them); `prune` gets the rest.
pub fn rollback_cache(cache_dir: &Path) {
    let Ok(cache) = Cache::open(cache_dir) else {
        return;
    };
    if let Ok(_lock) = cache.try_lock_exclusive() {
        let _ = cache.collect_garbage();
    }
}
