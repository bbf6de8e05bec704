//! The content-addressed cache shared by all pulls.
//!
//! ```text
//! <cache>/blobs/sha256/<hex>          manifests, indexes, configs; compressed layers (--no-overlay)
//! <cache>/layers/sha256/<hex>/rootfs  one extracted layer per chainID, overlayfs lower-dir format
//! <cache>/layers/sha256/<hex>/layer.json   what the layer came from (diffID, blob) and its size
//! <cache>/images/<key>.json           one record per pulled name+tag/digest+platform (`images`)
//! <cache>/bundles/<key>.json          bundles whose rootfs overlay uses cached layers
//! <cache>/locks/<hex>.lock            flock serialising the fetch of one blob or layer
//! <cache>/lock                        shared by pulls, exclusive for `rm`/`prune`
//! <cache>/tmp/<kind>-<pid>-<n>        work in progress; renamed into place only once verified
//! ```
//!
//! Every entry appears by `rename(2)` of a complete, verified temp file or directory, so a reader
//! never sees a partial entry. Concurrent pulls of the same content serialise on the entry's
//! flock; if a rename still finds the target present, the other copy is identical (same digest)
//! and ours is dropped.
//!
//! Extracted layers are keyed by chainID (OCI image-spec: the layer and every layer below it),
//! not diffID, as containerd keys its snapshots: in the overlay lower-dir format a hardlink to
//! a file of a lower layer is a copy of that file, so the same diff extracts differently on
//! different bases. A base layer's chainID is its diffID.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::digest::{chain_ids, sha256_digest};
use crate::reference::validate_digest;

#[derive(Debug, Error)]
pub enum CacheError {
    #[error("cache {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid digest {digest:?}: {reason}")]
    BadDigest { digest: String, reason: String },
    #[error("blob {expected}: content has digest {actual}")]
    Mismatch { expected: String, actual: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A checked `sha256:<hex>` (or sha512) digest, safe to use as a path component.
pub fn digest_parts(digest: &str) -> Result<(&str, &str), CacheError> {
    validate_digest(digest).map_err(|reason| CacheError::BadDigest {
        digest: digest.to_string(),
        reason,
    })?;
    Ok(digest.split_once(':').expect("validated"))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRecord {
    pub digest: String,
    pub diff_id: String,
    pub media_type: String,
    pub size: u64,
}

/// What `images` lists; also the roots of garbage collection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// `registry/repository`.
    pub name: String,
    pub tag: Option<String>,
    /// Digest of the platform's image manifest.
    pub digest: String,
    /// Digest of the index / manifest list the manifest was chosen from, if any.
    pub index_digest: Option<String>,
    pub platform: String,
    pub config_digest: String,
    pub layers: Vec<LayerRecord>,
    /// Seconds since the epoch.
    pub pulled: u64,
}

impl ImageRecord {
    /// Compressed size: config plus layers, as a registry would transfer it.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }

    /// The cache keys of the image's extracted layers, bottom first.
    pub fn chain_ids(&self) -> Vec<String> {
        chain_ids(&self.layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>())
    }

    fn key(&self) -> String {
        let what = format!(
            "{}\n{}\n{}",
            self.name,
            self.tag.as_deref().unwrap_or(&self.digest),
            self.platform
        );
        hex::encode(&Sha256::digest(what.as_bytes())[..16])
    }
}

/// A bundle whose rootfs is an overlay of cached layers: they must outlive it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BundleRecord {
    pub dir: PathBuf,
    /// Cache keys (chainIDs) of the layers the overlay mounts. Records written before layers
    /// were keyed by chainID name the diffIDs they mounted, which were their keys then.
    #[serde(alias = "diff_ids")]
    pub layers: Vec<String>,
}

impl BundleRecord {
    /// Whether the bundle's rootfs is still mounted (a different device than its parent).
    pub fn is_live(&self) -> bool {
        match (
            fs::symlink_metadata(&self.dir),
            fs::symlink_metadata(self.dir.join("rootfs")),
        ) {
            (Ok(d), Ok(r)) => d.dev() != r.dev(),
            _ => false,
        }
    }
}

/// Metadata stored next to an extracted layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerMeta {
    /// The cache key: the layer on top of the layers it was extracted on.
    #[serde(default)]
    pub chain_id: String,
    /// Checked during extraction: what the layer itself is.
    pub diff_id: String,
    pub blob_digest: String,
    pub entries: u64,
    pub bytes: u64,
    /// Directories the tar did not list (made as parents of its entries), relative, `""` for
    /// the root: in the overlay they must show the attributes of the layers below.
    #[serde(default)]
    pub implicit_dirs: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// A held flock; released on drop.
pub struct Lock(#[allow(dead_code)] Flock<File>);

/// A temp file or directory under `<cache>/tmp`, removed on drop unless persisted.
#[derive(Debug)]
pub struct TempEntry {
    path: PathBuf,
    keep: bool,
}

impl TempEntry {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempEntry {
    fn drop(&mut self) {
        if !self.keep {
            remove_any(&self.path);
        }
    }
}

fn remove_any(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Name prefix of the notes that point at in-progress temp bundles.
const BUNDLE_NOTE: &str = "bundle";

/// Remove the temp bundle a dead pull (`pid`) noted, returning the bytes freed. Only a
/// directory named like that pull's own temp bundle is touched, never a mounted rootfs.
fn remove_dead_temp_bundle(note: &Path, pid: i32) -> u64 {
    let Ok(target) = fs::read_link(note) else {
        return 0;
    };
    let ours = target
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .contains(&format!(".mocker-pull-{pid}-"))
        })
        .unwrap_or(false);
    let is_dir = fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir());
    if !ours || !is_dir || crate::overlay::is_mounted(&target.join("rootfs")) {
        return 0;
    }
    let bytes = du(&target);
    let _ = fs::remove_dir_all(&target);
    bytes
}

impl Cache {
    /// Open (creating) the cache at `root`. Directories are 0700: layers hold setuid files and
    /// device nodes that only root should reach.
    pub fn open(root: &Path) -> Result<Self, CacheError> {
        let mut b = fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        for sub in [
            "",
            "blobs/sha256",
            "layers/sha256",
            "images",
            "bundles",
            "locks",
            "tmp",
        ] {
            let p = root.join(sub);
            b.create(&p).map_err(io_err(&p))?;
        }
        let cache = Cache {
            root: root.to_path_buf(),
        };
        cache.sweep_dead_temps();
        Ok(cache)
    }

    /// Temp entries of processes that died (SIGKILL) are garbage; a live pid's are in use.
    fn sweep_dead_temps(&self) -> GcStats {
        let mut stats = GcStats::default();
        let Ok(rd) = fs::read_dir(self.root.join("tmp")) else {
            return stats;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid: Option<i32> = name.split('-').nth(1).and_then(|p| p.parse().ok());
            if !pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists()) {
                if let Some(pid) = pid.filter(|_| name.starts_with(BUNDLE_NOTE)) {
                    stats.bytes += remove_dead_temp_bundle(&e.path(), pid);
                }
                stats.bytes += du(&e.path());
                remove_any(&e.path());
                stats.entries += 1;
            }
        }
        stats
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock_file(&self, path: &Path, arg: FlockArg) -> Result<Lock, CacheError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err(path))?;
        Flock::lock(f, arg)
            .map(Lock)
            .map_err(|(_, e)| io_err(path)(e.into()))
    }

    /// Held by every pull for its whole duration: garbage collection waits for it.
    pub fn lock_shared(&self) -> Result<Lock, CacheError> {
        self.lock_file(&self.root.join("lock"), FlockArg::LockShared)
    }

    /// Held by `rm` and `prune`.
    pub fn lock_exclusive(&self) -> Result<Lock, CacheError> {
        self.lock_file(&self.root.join("lock"), FlockArg::LockExclusive)
    }

    /// The exclusive lock if nobody holds the cache (no pull running).
    pub fn try_lock_exclusive(&self) -> Result<Lock, CacheError> {
        self.lock_file(&self.root.join("lock"), FlockArg::LockExclusiveNonblock)
    }

    /// Serialises the fetch of one blob or layer across processes (blocks).
    pub fn lock_entry(&self, digest: &str) -> Result<Lock, CacheError> {
        let (alg, hex) = digest_parts(digest)?;
        self.lock_file(
            &self.root.join("locks").join(format!("{alg}-{hex}.lock")),
            FlockArg::LockExclusive,
        )
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, CacheError> {
        let (alg, hex) = digest_parts(digest)?;
        Ok(self.root.join("blobs").join(alg).join(hex))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// A small blob (manifest, config), verified against its digest on read.
    pub fn read_blob(&self, digest: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let p = self.blob_path(digest)?;
        match fs::read(&p) {
            Ok(data) => {
                if !digest.starts_with("sha256:") || sha256_digest(&data) == digest {
                    Ok(Some(data))
                } else {
                    // Corrupted on disk: forget it, the caller fetches it again.
                    let _ = fs::remove_file(&p);
                    Ok(None)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Store a small blob after checking its digest.
    pub fn write_blob(&self, digest: &str, data: &[u8]) -> Result<(), CacheError> {
        let dest = self.blob_path(digest)?;
        if digest.starts_with("sha256:") {
            let actual = sha256_digest(data);
            if actual != digest {
                return Err(CacheError::Mismatch {
                    expected: digest.into(),
                    actual,
                });
            }
        }
        let tmp = self.temp_file("blob")?;
        {
            let mut f = OpenOptions::new()
                .write(true)
                .open(tmp.path())
                .map_err(io_err(tmp.path()))?;
            f.write_all(data).map_err(io_err(tmp.path()))?;
        }
        self.persist(tmp, &dest)
    }

    /// Records a pull's temp bundle (which lives next to its DIR, outside the cache) as a
    /// symlink under `tmp/`: if the pull is SIGKILLed, the next pull or `prune` finds the
    /// debris through it, whatever DIR was. Dropping the entry removes only the note.
    pub fn note_temp_bundle(&self, bundle: &Path) -> Result<TempEntry, CacheError> {
        let path = self.temp_name(BUNDLE_NOTE);
        std::os::unix::fs::symlink(bundle, &path).map_err(io_err(&path))?;
        Ok(TempEntry { path, keep: false })
    }

    /// A fresh empty directory under `tmp/`, on the cache's filesystem so it can be renamed.
    pub fn temp_dir(&self, kind: &str) -> Result<TempEntry, CacheError> {
        let path = self.temp_name(kind);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(io_err(&path))?;
        Ok(TempEntry { path, keep: false })
    }

    /// A fresh empty file under `tmp/`.
    pub fn temp_file(&self, kind: &str) -> Result<TempEntry, CacheError> {
        let path = self.temp_name(kind);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(TempEntry { path, keep: false })
    }

    fn temp_name(&self, kind: &str) -> PathBuf {
        let n = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{kind}-{}-{n}", std::process::id()))
    }

    /// Move a finished temp entry to `dest`. If `dest` appeared meanwhile (another process won
    /// the race with the same verified content), keep theirs and drop ours.
    pub fn persist(&self, mut tmp: TempEntry, dest: &Path) -> Result<(), CacheError> {
        if tmp.path.is_dir() {
            // rename(2) of a directory onto an existing non-empty one fails: that is the race.
            match fs::rename(&tmp.path, dest) {
                Ok(()) => tmp.keep = true,
                Err(_) if dest.is_dir() => {}
                Err(e) => return Err(io_err(dest)(e)),
            }
        } else {
            // Files: rename replaces atomically, and the content is identical by digest.
            fs::rename(&tmp.path, dest).map_err(io_err(dest))?;
            tmp.keep = true;
        }
        Ok(())
    }

    /// The directory of an extracted layer, by chainID.
    pub fn layer_dir(&self, chain_id: &str) -> Result<PathBuf, CacheError> {
        let (alg, hex) = digest_parts(chain_id)?;
        Ok(self.root.join("layers").join(alg).join(hex))
    }

    /// The overlay lower directory of a cached layer.
    pub fn layer_rootfs(&self, chain_id: &str) -> Result<PathBuf, CacheError> {
        Ok(self.layer_dir(chain_id)?.join("rootfs"))
    }

    pub fn has_layer(&self, chain_id: &str) -> bool {
        self.layer_dir(chain_id)
            .is_ok_and(|p| p.join("layer.json").is_file())
    }

    pub fn layer_meta(&self, chain_id: &str) -> Option<LayerMeta> {
        let p = self.layer_dir(chain_id).ok()?.join("layer.json");
        serde_json::from_slice(&fs::read(p).ok()?).ok()
    }

    /// Publish an extracted layer: `tmp` holds `rootfs/`; `layer.json` is written last, then
    /// the directory is renamed into place in one step.
    pub fn commit_layer(&self, tmp: TempEntry, meta: &LayerMeta) -> Result<(), CacheError> {
        let dest = self.layer_dir(&meta.chain_id)?;
        let mp = tmp.path().join("layer.json");
        fs::write(&mp, serde_json::to_vec_pretty(meta).expect("serialisable"))
            .map_err(io_err(&mp))?;
        self.persist(tmp, &dest)
    }

    fn write_json<T: Serialize>(&self, dest: &Path, value: &T) -> Result<(), CacheError> {
        let tmp = self.temp_file("record")?;
        fs::write(
            tmp.path(),
            serde_json::to_vec_pretty(value).expect("serialisable"),
        )
        .map_err(io_err(tmp.path()))?;
        self.persist(tmp, dest)
    }

    fn read_dir_json<T: for<'de> Deserialize<'de>>(&self, sub: &str) -> Vec<(PathBuf, T)> {
        let dir = self.root.join(sub);
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(&dir) else {
            return out;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                // A record that does not parse is ignored rather than failing every command.
                if let Ok(v) = fs::read(&p)
                    .map_err(|e| e.to_string())
                    .and_then(|d| serde_json::from_slice(&d).map_err(|e| e.to_string()))
                {
                    out.push((p, v));
                }
            }
        }
        out
    }

    pub fn save_image(&self, rec: &ImageRecord) -> Result<(), CacheError> {
        let dest = self.root.join("images").join(format!("{}.json", rec.key()));
        self.write_json(&dest, rec)
    }

    pub fn images(&self) -> Vec<ImageRecord> {
        let mut v: Vec<ImageRecord> = self
            .read_dir_json("images")
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        v.sort_by(|a, b| (&a.name, &a.tag, &a.platform).cmp(&(&b.name, &b.tag, &b.platform)));
        v
    }

    /// Remove the image records for which `pred` holds; returns them.
    pub fn remove_images(
        &self,
        pred: impl Fn(&ImageRecord) -> bool,
    ) -> Result<Vec<ImageRecord>, CacheError> {
        let mut removed = Vec::new();
        for (path, rec) in self.read_dir_json::<ImageRecord>("images") {
            if pred(&rec) {
                fs::remove_file(&path).map_err(io_err(&path))?;
                removed.push(rec);
            }
        }
        Ok(removed)
    }

    fn bundle_key(dir: &Path) -> String {
        hex::encode(&Sha256::digest(dir.as_os_str().as_encoded_bytes())[..16])
    }

    pub fn register_bundle(&self, rec: &BundleRecord) -> Result<(), CacheError> {
        let dest = self
            .root
            .join("bundles")
            .join(format!("{}.json", Self::bundle_key(&rec.dir)));
        self.write_json(&dest, rec)
    }

    pub fn unregister_bundle(&self, dir: &Path) {
        let _ = fs::remove_file(
            self.root
                .join("bundles")
                .join(format!("{}.json", Self::bundle_key(dir))),
        );
    }

    /// Bundles whose overlay is still mounted; stale records are dropped on the way.
    pub fn live_bundles(&self) -> Vec<BundleRecord> {
        let mut live = Vec::new();
        for (path, rec) in self.read_dir_json::<BundleRecord>("bundles") {
            if rec.is_live() {
                live.push(rec);
            } else {
                let _ = fs::remove_file(path);
            }
        }
        live
    }

    /// Delete every blob and layer that no image record and no mounted bundle needs, and temp
    /// entries of dead processes. Call with [`Cache::lock_exclusive`] held.
    ///
    /// Layers are kept by chainID, computed from the records: a layer a cache written before
    /// chainIDs holds under the diffID of a non-base layer is unreferenced and goes, unless a
    /// mounted bundle's (old) record names it.
    pub fn collect_garbage(&self) -> Result<GcStats, CacheError> {
        let mut keep_blobs = BTreeSet::new();
        let mut keep_layers = BTreeSet::new();
        for rec in self.images() {
            keep_blobs.insert(rec.digest.clone());
            keep_blobs.extend(rec.index_digest.clone());
            keep_blobs.insert(rec.config_digest.clone());
            keep_blobs.extend(rec.layers.iter().map(|l| l.digest.clone()));
            keep_layers.extend(rec.chain_ids());
        }
        for b in self.live_bundles() {
            keep_layers.extend(b.layers);
        }
        let mut stats = GcStats::default();
        for (sub, keep) in [("blobs", &keep_blobs), ("layers", &keep_layers)] {
            let base = self.root.join(sub);
            for alg in fs::read_dir(&base).map_err(io_err(&base))?.flatten() {
                let alg_name = alg.file_name().to_string_lossy().into_owned();
                for e in fs::read_dir(alg.path())
                    .map_err(io_err(&alg.path()))?
                    .flatten()
                {
                    let digest = format!("{alg_name}:{}", e.file_name().to_string_lossy());
                    if keep.contains(&digest) {
                        continue;
                    }
                    stats.bytes += du(&e.path());
                    // Rename away first so the entry vanishes atomically, then delete.
                    let grave = self.temp_name("gc");
                    fs::rename(e.path(), &grave).map_err(io_err(&e.path()))?;
                    remove_any(&grave);
                    stats.entries += 1;
                }
            }
        }
        let swept = self.sweep_dead_temps();
        stats.bytes += swept.bytes;
        stats.entries += swept.entries;
        let locks = self.root.join("locks");
        for e in fs::read_dir(&locks).map_err(io_err(&locks))?.flatten() {
            // Safe while we hold the exclusive cache lock: no pull is between lock and use.
            let _ = fs::remove_file(e.path());
        }
        Ok(stats)
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    pub entries: u64,
    pub bytes: u64,
}

/// Disk usage of a tree (apparent sizes of regular files), without following symlinks.
pub fn du(path: &Path) -> u64 {
    let Ok(m) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !m.is_dir() {
        return if m.is_file() { m.len() } else { 0 };
    }
    fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, tag: &str, layers: &[(&str, &str)]) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            tag: Some(tag.into()),
            digest: sha256_digest(format!("m-{name}-{tag}").as_bytes()),
            index_digest: None,
            platform: "linux/amd64".into(),
            config_digest: sha256_digest(format!("c-{name}-{tag}").as_bytes()),
            layers: layers
                .iter()
                .map(|(d, diff)| LayerRecord {
                    digest: sha256_digest(d.as_bytes()),
                    diff_id: sha256_digest(diff.as_bytes()),
                    media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                    size: 10,
                })
                .collect(),
            pulled: 0,
        }
    }

    /// A base layer: its chainID is its diffID.
    fn add_layer(c: &Cache, diff: &str) {
        let id = sha256_digest(diff.as_bytes());
        add_layer_at(c, diff, &id, &id);
    }

    fn add_layer_at(c: &Cache, content: &str, diff_id: &str, chain_id: &str) {
        let t = c.temp_dir("layer").unwrap();
        fs::create_dir(t.path().join("rootfs")).unwrap();
        fs::write(t.path().join("rootfs/f"), content).unwrap();
        c.commit_layer(
            t,
            &LayerMeta {
                chain_id: chain_id.into(),
                diff_id: diff_id.into(),
                blob_digest: sha256_digest(b"x"),
                entries: 1,
                bytes: 1,
                implicit_dirs: Vec::new(),
            },
        )
        .unwrap();
    }

    #[test]
    fn bundle_records_from_before_chain_ids_still_name_their_layers() {
        let r: BundleRecord =
            serde_json::from_str(r#"{"dir":"/b","diff_ids":["sha256:aa","sha256:bb"]}"#).unwrap();
        assert_eq!(r.layers, ["sha256:aa", "sha256:bb"]);
        let old: LayerMeta = serde_json::from_str(
            r#"{"diff_id":"sha256:aa","blob_digest":"sha256:bb","entries":1,"bytes":2}"#,
        )
        .unwrap();
        assert_eq!(
            (old.chain_id.as_str(), old.diff_id.as_str()),
            ("", "sha256:aa")
        );
    }

    #[test]
    fn blobs_are_verified_and_written_atomically() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path()).unwrap();
        let data = b"{\"config\":1}";
        let dg = sha256_digest(data);
        let e = c.write_blob(&dg, b"other").unwrap_err().to_string();
        assert!(e.contains(&dg), "{e}");
        assert!(!c.has_blob(&dg), "a mismatched blob must not be stored");
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
        c.write_blob(&dg, data).unwrap();
        assert_eq!(c.read_blob(&dg).unwrap().unwrap(), data);
        // Corruption on disk is detected on read and the entry dropped.
        fs::write(c.blob_path(&dg).unwrap(), b"rot").unwrap();
        assert_eq!(c.read_blob(&dg).unwrap(), None);
        assert!(!c.has_blob(&dg));
        // Digests are validated before they become paths.
        assert!(c.blob_path("sha256:../../etc/passwd").is_err());
        assert!(c.layer_dir("sha256:abc/../../x").is_err());
    }

    #[test]
    fn noted_temp_bundles_of_dead_pulls_are_swept() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(&d.path().join("cache")).unwrap();
        // A live pull's note: the bundle stays; dropping the note keeps the bundle.
        let live = d
            .path()
            .join(format!(".a.mocker-pull-{}-0", std::process::id()));
        fs::create_dir_all(live.join("rootfs")).unwrap();
        drop(c.note_temp_bundle(&live).unwrap());
        assert!(live.exists());
        // A dead pull (no such pid) noted its temp bundle for another DIR.
        let dead = d.path().join(".b.mocker-pull-999999999-3");
        fs::create_dir_all(dead.join("rootfs/etc")).unwrap();
        fs::write(dead.join("rootfs/etc/f"), b"x").unwrap();
        let unrelated = d.path().join("not-a-temp-bundle");
        fs::create_dir(&unrelated).unwrap();
        let tmp = d.path().join("cache/tmp");
        std::os::unix::fs::symlink(&dead, tmp.join("bundle-999999999-3")).unwrap();
        std::os::unix::fs::symlink(&unrelated, tmp.join("bundle-999999999-4")).unwrap();
        let stats = c.sweep_dead_temps();
        assert!(!dead.exists(), "the dead pull's temp bundle was not swept");
        assert!(
            unrelated.exists(),
            "a note must not delete what is not a temp bundle"
        );
        assert!(live.exists());
        assert_eq!(stats.bytes, 1);
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }

    #[test]
    fn temp_entries_vanish_unless_persisted() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path()).unwrap();
        {
            let t = c.temp_dir("layer").unwrap();
            fs::create_dir_all(t.path().join("rootfs/a/b")).unwrap();
            fs::write(t.path().join("rootfs/a/b/c"), "x").unwrap();
        }
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
        add_layer(&c, "L1");
        let id = sha256_digest(b"L1");
        assert!(c.has_layer(&id));
        assert_eq!(c.layer_meta(&id).unwrap().diff_id, id);
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn racing_commits_of_the_same_layer_keep_one_complete_copy() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path()).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        add_layer(&c, "same");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let id = sha256_digest(b"same");
        let dir = c.layer_dir(&id).unwrap();
        let names: BTreeSet<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["layer.json".into(), "rootfs".into()])
        );
        assert_eq!(fs::read_to_string(dir.join("rootfs/f")).unwrap(), "same");
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(
            fs::read_dir(d.path().join("layers/sha256"))
                .unwrap()
                .count(),
            1
        );
    }

    #[test]
    fn entry_locks_exclude_each_other() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path()).unwrap();
        let id = sha256_digest(b"x");
        let held = c.lock_entry(&id).unwrap();
        let c2 = c.clone();
        let id2 = id.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _l = c2.lock_entry(&id2).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err()
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        t.join().unwrap();
    }

    #[test]
    fn gc_keeps_what_records_use_and_drops_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path()).unwrap();
        let a = rec("r/a", "1", &[("bs", "shared"), ("ba", "only-a")]);
        let b = rec("r/b", "1", &[("bs", "shared"), ("bb", "only-b")]);
        for r in [&a, &b] {
            for (l, chain) in r.layers.iter().zip(r.chain_ids()) {
                add_layer_at(&c, &l.diff_id, &l.diff_id, &chain);
            }
        }
        // What a cache from before chainIDs holds: an upper layer under its diffID.
        add_layer_at(&c, "old", &b.layers[1].diff_id, &b.layers[1].diff_id);
        c.save_image(&a).unwrap();
        c.save_image(&b).unwrap();
        c.write_blob(&a.config_digest, b"c-r/a-1").unwrap();
        c.write_blob(&b.config_digest, b"c-r/b-1").unwrap();
        assert_eq!(c.images().len(), 2);
        // A stale temp entry of a dead process.
        fs::create_dir(d.path().join("tmp/layer-999999999-0")).unwrap();
        let _lock = c.lock_exclusive().unwrap();
        assert_eq!(
            c.collect_garbage().unwrap().entries,
            2,
            "the temp entry and the diffID-keyed upper layer"
        );
        assert!(!c.has_layer(&b.layers[1].diff_id));
        let removed = c.remove_images(|r| r.name == "r/a").unwrap();
        assert_eq!(removed, vec![a.clone()]);
        let st = c.collect_garbage().unwrap();
        assert_eq!(st.entries, 2, "only-a layer and a's config");
        assert!(c.has_layer(&sha256_digest(b"shared")));
        assert!(c.has_layer(&b.chain_ids()[1]));
        assert!(!c.has_layer(&a.chain_ids()[1]));
        assert!(!c.has_blob(&a.config_digest));
        assert!(c.has_blob(&b.config_digest));
        c.remove_images(|_| true).unwrap();
        c.collect_garbage().unwrap();
        assert_eq!(
            fs::read_dir(d.path().join("layers/sha256"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            fs::read_dir(d.path().join("blobs/sha256")).unwrap().count(),
            0
        );
    }
}
