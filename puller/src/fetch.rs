//! Layers from the registry into the cache: bounded parallel downloads, each streamed into a
//! blocking thread that verifies and applies it ([`crate::verify`]), with retries,
//! cancellation, progress and a per-entry lock shared with concurrent pulls.
//!
//! Nothing is trusted before both digests check out: a layer is extracted into a temp
//! directory and renamed into the cache only on success; a blob is written to a temp file and
//! renamed likewise.

use std::error::Error as StdError;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use thiserror::Error;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::cache::{Cache, CacheError, LayerMeta};
use crate::progress::{LayerProgress, Progress, Ticker};
use crate::registry::{LazyRegistry, RegistryError};
use crate::verify::{ChannelReader, copy_verified, extract_verified};

/// What a layer applier reports: entries and bytes written, and the directories the tar
/// listed (the others it made as parents).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub entries: u64,
    pub bytes: u64,
    pub listed_dirs: Vec<PathBuf>,
}

pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Applies one uncompressed tar stream to a directory (bundle-tools' `apply_layer`, in a mode);
/// the slice lists lower layers' dirs, topmost first, for hardlinks into earlier layers.
pub type ApplyFn =
    Arc<dyn Fn(&Path, &mut dyn Read, &[PathBuf]) -> Result<ApplyStats, BoxError> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn from_media_type(mt: &str) -> Option<Self> {
        match mt {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// One layer of the image: its blob, the diffID the config promises and its chainID.
#[derive(Debug, Clone)]
pub struct LayerJob {
    pub digest: String,
    pub size: u64,
    pub compression: Compression,
    pub diff_id: String,
    /// The extracted layer's cache key: its content depends on the layers below (hardlinks).
    pub chain_id: String,
    /// Overlay mode: the cache dirs of the layers below, topmost first.
    pub lowers: Vec<PathBuf>,
    /// `--max-layer-size`: the most uncompressed bytes this layer may unpack to.
    pub max_size: Option<u64>,
}

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("layer {digest}: blob truncated: got {got} of {want} bytes")]
    Truncated { digest: String, got: u64, want: u64 },
    #[error("layer {digest}: blob is larger than the {want} bytes its descriptor says")]
    TooLarge { digest: String, want: u64 },
    #[error("layer {digest}: uncompressed content is larger than --max-layer-size ({limit} bytes)")]
    TooLargeUncompressed { digest: String, limit: u64 },
    #[error("layer {digest}: blob digest mismatch: content is {actual}")]
    DigestMismatch { digest: String, actual: String },
    #[error(
        "layer {digest}: uncompressed content has diffID {actual} but the image config says {expected}"
    )]
    DiffIdMismatch {
        digest: String,
        expected: String,
        actual: String,
    },
    #[error("layer {digest}: download failed")]
    Network {
        digest: String,
        #[source]
        source: io::Error,
    },
    #[error("layer {digest}: cannot decompress {compression:?} stream")]
    Decompress {
        digest: String,
        compression: Compression,
        #[source]
        source: io::Error,
    },
    #[error("layer {digest}: cannot apply")]
    Apply {
        digest: String,
        #[source]
        source: BoxError,
    },
    #[error("layer {digest}: {source}")]
    Io {
        digest: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cancelled")]
    Cancelled,
}

impl FetchError {
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            FetchError::Network { .. } => true,
            FetchError::Registry(r) => r.is_transient(),
            _ => false,
        }
    }
}

/// Downloads layers into the cache, a bounded number at a time.
#[derive(Clone)]
pub struct Fetcher {
    pub registry: Arc<LazyRegistry>,
    pub cache: Cache,
    pub progress: Progress,
    pub jobs: usize,
}

struct Shared {
    sem: Semaphore,
    cancel: AtomicBool,
}

impl Fetcher {
    /// Make sure every layer is extracted in the cache (overlay lower format, via `apply`).
    ///
    /// Layers are extracted in parallel, each into its own directory. A layer whose apply
    /// fails is tried once more after all the others, in image order: a hardlink into an
    /// earlier layer needs that layer on disk (malicious layers simply fail twice).
    pub async fn ensure_layers(
        &self,
        layers: &[LayerJob],
        apply: ApplyFn,
    ) -> Result<(), FetchError> {
        let task = {
            let apply = apply.clone();
            move |this: Fetcher, job: LayerJob, shared: Arc<Shared>| {
                let apply = apply.clone();
                async move { this.ensure_layer(&job, &apply, &shared).await }
            }
        };
        let deferred = self
            .run_all(
                layers,
                |j| &j.chain_id,
                task,
                |e| matches!(e, FetchError::Apply { .. }),
            )
            .await?;
        for job in deferred {
            let shared = Arc::new(Shared {
                sem: Semaphore::new(1),
                cancel: AtomicBool::new(false),
            });
            self.ensure_layer(&job, &apply, &shared).await?;
        }
        Ok(())
    }

    /// Make sure every layer's compressed blob is in the cache (for `--no-overlay`).
    pub async fn ensure_blobs(&self, layers: &[LayerJob]) -> Result<(), FetchError> {
        self.run_all(
            layers,
            |j| &j.digest,
            |this, job, shared| async move { this.ensure_blob(&job, &shared).await },
            |_| false,
        )
        .await
        .map(drop)
    }

    /// Run one task per layer, at most `jobs` at once; on the first failure the others are
    /// told to stop, and all are awaited so no temp entry outlives the pull. Failures that
    /// `defer` accepts do not stop the others; their jobs are returned in image order. Jobs
    /// with the same `key` run once.
    async fn run_all<F, Fut>(
        &self,
        layers: &[LayerJob],
        key: impl Fn(&LayerJob) -> &String,
        task: F,
        defer: impl Fn(&FetchError) -> bool,
    ) -> Result<Vec<LayerJob>, FetchError>
    where
        F: Fn(Fetcher, LayerJob, Arc<Shared>) -> Fut,
        Fut: std::future::Future<Output = Result<(), FetchError>> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            sem: Semaphore::new(self.jobs.max(1)),
            cancel: AtomicBool::new(false),
        });
        let mut set = JoinSet::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, job) in layers.iter().enumerate() {
            // The same layer twice in one image (on the same base) is fetched once.
            if seen.insert(key(job).clone()) {
                let fut = task(self.clone(), job.clone(), shared.clone());
                set.spawn(async move { (i, fut.await) });
            }
        }
        let mut first: Option<FetchError> = None;
        let mut deferred = Vec::new();
        while let Some(r) = set.join_next().await {
            let (i, r) = r.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            match r {
                Ok(()) => {}
                Err(e) if defer(&e) => deferred.push(i),
                Err(e) => {
                    shared.cancel.store(true, Ordering::SeqCst);
                    if first.is_none() || matches!(first, Some(FetchError::Cancelled)) {
                        first = Some(e);
                    }
                }
            }
        }
        if let Some(e) = first {
            return Err(e);
        }
        deferred.sort_unstable();
        Ok(deferred.into_iter().map(|i| layers[i].clone()).collect())
    }

    async fn lock(&self, digest: &str) -> Result<crate::cache::Lock, FetchError> {
        let cache = self.cache.clone();
        let d = digest.to_string();
        Ok(tokio::task::spawn_blocking(move || cache.lock_entry(&d))
            .await
            .expect("lock task")?)
    }

    /// One layer's attempts under the one retry policy, shown on its progress line; a
    /// cancelled pull (another layer failed) makes no further attempt.
    async fn with_retries<T, F, Fut>(
        &self,
        job: &LayerJob,
        shared: &Shared,
        bar: &mut LayerProgress,
        mut once: F,
    ) -> Result<T, FetchError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, FetchError>>,
    {
        let r = crate::retry::retry(
            || {
                let cancelled = shared.cancel.load(Ordering::SeqCst);
                let attempt = (!cancelled).then(&mut once);
                async move {
                    match attempt {
                        Some(f) => f.await,
                        None => Err(FetchError::Cancelled),
                    }
                }
            },
            FetchError::is_transient,
            |attempt, e| {
                tracing::debug!("layer {}: attempt {attempt}: {e:#}", job.digest);
                bar.restart(&e.to_string());
            },
        )
        .await;
        if r.is_err() {
            bar.fail();
        }
        r
    }

    async fn ensure_layer(
        &self,
        job: &LayerJob,
        apply: &ApplyFn,
        shared: &Arc<Shared>,
    ) -> Result<(), FetchError> {
        let present = || self.cache.has_layer(&job.chain_id);
        self.ensure_entry(job, shared, &job.chain_id, present, "extracted", |ticker| {
            self.extract_once(job, apply.clone(), ticker, shared.clone())
        })
        .await
    }

    /// Makes one cache entry (`key`) exist unless `present` says it does: under the entry's
    /// lock, since another pull may be making it (then its result is reused), and under the
    /// retry policy, one layer slot of `shared` held throughout.
    async fn ensure_entry<Fut>(
        &self,
        job: &LayerJob,
        shared: &Arc<Shared>,
        key: &str,
        present: impl Fn() -> bool,
        made: &str,
        once: impl Fn(Ticker) -> Fut,
    ) -> Result<(), FetchError>
    where
        Fut: std::future::Future<Output = Result<(), FetchError>>,
    {
        let _permit = shared.sem.acquire().await.expect("semaphore open");
        let mut bar = self.progress.layer(&job.digest, job.size);
        if present() {
            bar.finish("cached");
            return Ok(());
        }
        let _lock = self.lock(key).await?;
        if present() {
            bar.finish("cached");
            return Ok(());
        }
        let ticker = bar.ticker();
        self.with_retries(job, shared, &mut bar, || once(ticker.clone()))
            .await?;
        bar.finish(made);
        Ok(())
    }

    /// One download + extraction attempt into a temp dir, committed to the cache on success.
    async fn extract_once(
        &self,
        job: &LayerJob,
        apply: ApplyFn,
        ticker: Ticker,
        shared: Arc<Shared>,
    ) -> Result<(), FetchError> {
        ticker.reset();
        let stream = self.registry.get().await?.blob_stream(&job.digest).await?;
        let tmp = self.cache.temp_dir("layer")?;
        let rootfs = tmp.path().join("rootfs");
        fs::create_dir(&rootfs).map_err(|source| FetchError::Io {
            digest: job.digest.clone(),
            source,
        })?;
        let (tx, rx) = mpsc::channel(32);
        let job2 = job.clone();
        let worker = tokio::task::spawn_blocking(move || {
            let r = extract_verified(ChannelReader::new(rx), &job2, &rootfs, &apply).map(|st| {
                let implicit = crate::overlay::implicit_dirs(&rootfs, &st.listed_dirs);
                (st, implicit)
            });
            (r, tmp)
        });
        forward(stream, tx, &ticker, &shared.cancel).await;
        let (r, tmp) = worker.await.expect("extract task");
        let (stats, implicit_dirs) = r?;
        self.cache.commit_layer(
            tmp,
            &LayerMeta {
                chain_id: job.chain_id.clone(),
                diff_id: job.diff_id.clone(),
                blob_digest: job.digest.clone(),
                entries: stats.entries,
                bytes: stats.bytes,
                implicit_dirs,
            },
        )?;
        Ok(())
    }

    async fn ensure_blob(&self, job: &LayerJob, shared: &Arc<Shared>) -> Result<(), FetchError> {
        let present = || self.cache.has_blob(&job.digest);
        self.ensure_entry(job, shared, &job.digest, present, "downloaded", |ticker| {
            self.download_once(job, ticker, shared.clone())
        })
        .await
    }

    async fn download_once(
        &self,
        job: &LayerJob,
        ticker: Ticker,
        shared: Arc<Shared>,
    ) -> Result<(), FetchError> {
        ticker.reset();
        let stream = self.registry.get().await?.blob_stream(&job.digest).await?;
        let tmp = self.cache.temp_file("blob")?;
        let dest = self.cache.blob_path(&job.digest)?;
        let (tx, rx) = mpsc::channel(32);
        let job2 = job.clone();
        let worker = tokio::task::spawn_blocking(move || {
            let io_err = |source| FetchError::Io {
                digest: job2.digest.clone(),
                source,
            };
            let r = File::create(tmp.path()).map_err(io_err).and_then(|f| {
                let mut w = io::BufWriter::with_capacity(256 << 10, f);
                copy_verified(ChannelReader::new(rx), &job2, &mut w)?;
                w.flush().map_err(io_err)
            });
            (r, tmp)
        });
        forward(stream, tx, &ticker, &shared.cancel).await;
        let (r, tmp) = worker.await.expect("download task");
        r?;
        self.cache.persist(tmp, &dest)?;
        Ok(())
    }
}

/// Pump the HTTP body into the extraction thread, which judges count and digest itself
/// (`Registry::blob_stream` has dropped oci-client's own end-of-stream digest verdict).
async fn forward(
    mut stream: futures_util::stream::BoxStream<'static, io::Result<Bytes>>,
    tx: mpsc::Sender<io::Result<Bytes>>,
    ticker: &Ticker,
    cancel: &AtomicBool,
) {
    while let Some(item) = stream.next().await {
        if cancel.load(Ordering::SeqCst) {
            let _ = tx
                .send(Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled")))
                .await;
            return;
        }
        match item {
            Ok(b) => {
                ticker.inc(b.len() as u64);
                if tx.send(Ok(b)).await.is_err() {
                    // The consumer stopped (it failed); it reports why.
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}
