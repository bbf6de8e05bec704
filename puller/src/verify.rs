//! The blocking side of a download: a blob read through its count and digest checks,
//! decompression, the `--max-layer-size` cap and the diffID check, into a layer applier or
//! a file. When a check fails, the *digest* verdict wins over whatever error the decompressor
//! or the tar reader hit first, so a corrupted blob is reported as corrupted.

use std::cell::Cell;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::fetch::{ApplyFn, ApplyStats, Compression, FetchError, LayerJob};

/// Hashes and counts what is read through it.
pub struct DigestingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> DigestingReader<R> {
    pub fn new(inner: R) -> Self {
        DigestingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn finish(self) -> (u64, String) {
        (
            self.count,
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
        )
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Fails a decompressed stream once it passes `--max-layer-size`, and remembers it did: the
/// error reaches the caller wrapped by the tar reader, so the flag is what names the cause.
struct CappedReader<'a, R> {
    inner: R,
    left: u64,
    hit: &'a Cell<bool>,
}

impl<R: Read> Read for CappedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.hit.set(true);
            return Err(io::Error::other("layer is larger than --max-layer-size"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads chunks sent by the async download task. An error is sticky: once the network
/// failed, every later read fails the same way (so draining cannot mistake it for EOF).
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
    failed: Option<(io::ErrorKind, String)>,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        ChannelReader {
            rx,
            cur: Bytes::new(),
            failed: None,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, msg)) = &self.failed {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => {
                    self.failed = Some((e.kind(), e.to_string()));
                    return Err(e);
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// The blob-level verdict: every byte read, right count, right digest. `read_err` is an
/// error met while draining the blob itself (the network, not the decompressor).
fn check_blob(
    job: &LayerJob,
    read_err: Option<io::Error>,
    count: u64,
    actual: String,
) -> Result<(), FetchError> {
    let digest = job.digest.clone();
    if let Some(source) = read_err {
        return Err(FetchError::Network { digest, source });
    }
    if count < job.size {
        return Err(FetchError::Truncated {
            digest,
            got: count,
            want: job.size,
        });
    }
    if count > job.size {
        return Err(FetchError::TooLarge {
            digest,
            want: job.size,
        });
    }
    // Only sha256 is computed; the reference parser admits sha512 digests, which are then
    // refused here rather than trusted unverified.
    if actual != job.digest {
        return Err(FetchError::DigestMismatch { digest, actual });
    }
    Ok(())
}

/// Stream `blob` through digest check, decompression and diffID check into `apply(dest)`.
/// On error the caller throws `dest` away; nothing here is trusted until this returns Ok.
pub fn extract_verified(
    blob: impl Read,
    job: &LayerJob,
    dest: &Path,
    apply: &ApplyFn,
) -> Result<ApplyStats, FetchError> {
    // One byte more than promised, to notice an oversized blob without reading forever.
    let mut blob = DigestingReader::new(blob.take(job.size.saturating_add(1)));
    let capped = Cell::new(false);
    let inner: Result<(ApplyStats, String), FetchError> = {
        let decomp_err = |source| FetchError::Decompress {
            digest: job.digest.clone(),
            compression: job.compression,
            source,
        };
        let mut buffered = BufReader::with_capacity(256 << 10, &mut blob);
        let decoder: Result<Box<dyn Read + '_>, FetchError> = match job.compression {
            Compression::None => Ok(Box::new(&mut buffered)),
            Compression::Gzip => Ok(Box::new(flate2::bufread::MultiGzDecoder::new(
                &mut buffered,
            ))),
            Compression::Zstd => zstd::stream::read::Decoder::with_buffer(&mut buffered)
                .map(|d| Box::new(d) as Box<dyn Read>)
                .map_err(decomp_err),
        };
        match decoder {
            Err(e) => Err(e),
            Ok(dec) => {
                let mut tar = DigestingReader::new(CappedReader {
                    inner: dec,
                    left: job.max_size.unwrap_or(u64::MAX),
                    hit: &capped,
                });
                match apply(dest, &mut tar, &job.lowers) {
                    Err(source) => {
                        // An I/O error under the tar reader is the stream's, not the layer's.
                        match source.downcast::<io::Error>() {
                            Ok(ioe) => Err(decomp_err(*ioe)),
                            Err(source) => Err(FetchError::Apply {
                                digest: job.digest.clone(),
                                source,
                            }),
                        }
                    }
                    Ok(stats) => {
                        // The tar end marker may leave padding unread: it counts for the diffID.
                        match io::copy(&mut tar, &mut io::sink()) {
                            Err(e) => Err(decomp_err(e)),
                            Ok(_) => Ok((stats, tar.finish().1)),
                        }
                    }
                }
            }
        }
    };
    // Always read the blob to its end so the digest covers every byte, whatever happened.
    let drained = io::copy(&mut blob, &mut io::sink()).err();
    let (count, actual) = blob.finish();
    check_blob(job, drained, count, actual)?;
    if let (true, Some(limit)) = (capped.get(), job.max_size) {
        return Err(FetchError::TooLargeUncompressed {
            digest: job.digest.clone(),
            limit,
        });
    }
    let (stats, diff_id) = inner?;
    if diff_id != job.diff_id {
        return Err(FetchError::DiffIdMismatch {
            digest: job.digest.clone(),
            expected: job.diff_id.clone(),
            actual: diff_id,
        });
    }
    Ok(stats)
}

/// Copy `blob` to `out`, verifying size and digest.
pub fn copy_verified(
    blob: impl Read,
    job: &LayerJob,
    out: &mut impl Write,
) -> Result<(), FetchError> {
    let mut blob = DigestingReader::new(blob.take(job.size.saturating_add(1)));
    let mut buf = vec![0u8; 256 << 10];
    let mut read_err = None;
    loop {
        match blob.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.write_all(&buf[..n]).map_err(|source| FetchError::Io {
                digest: job.digest.clone(),
                source,
            })?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                read_err = Some(e);
                break;
            }
        }
    }
    let (count, actual) = blob.finish();
    check_blob(job, read_err, count, actual)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bundle_tools::layer::{ApplyOptions, WhiteoutMode, apply_layer};
    use std::io::Cursor;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000);
            h.set_uid(0);
            h.set_gid(0);
            h.set_entry_type(tar::EntryType::Regular);
            // Raw name bytes: the tar crate refuses to *write* `..`, a hostile layer would not.
            let raw = &mut h.as_old_mut().name;
            raw.fill(0);
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn compress(tar: &[u8], c: Compression) -> Vec<u8> {
        match c {
            Compression::None => tar.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(tar).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(tar, 3).unwrap(),
        }
    }

    fn sha(d: &[u8]) -> String {
        crate::digest::sha256_digest(d)
    }

    fn apply() -> ApplyFn {
        Arc::new(|dest: &Path, tar: &mut dyn Read, _: &[PathBuf]| {
            let opts = ApplyOptions {
                whiteouts: WhiteoutMode::Overlay,
                ..ApplyOptions::default()
            };
            let s = apply_layer(dest, tar, &opts)?;
            Ok(ApplyStats {
                entries: s.entries,
                bytes: s.bytes,
                listed_dirs: s.listed_dirs,
            })
        })
    }

    /// A layer (tar, compressed blob, job) with a file big enough to span many reads.
    fn sample(c: Compression) -> (Vec<u8>, LayerJob) {
        let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let tar = layer_tar(&[("etc/hello", b"hello\n"), ("big.bin", &big)]);
        let blob = compress(&tar, c);
        let job = LayerJob {
            digest: sha(&blob),
            size: blob.len() as u64,
            compression: c,
            diff_id: sha(&tar),
            chain_id: String::new(),
            lowers: Vec::new(),
            max_size: None,
        };
        (blob, job)
    }

    fn extract(blob: &[u8], job: &LayerJob) -> (Result<ApplyStats, FetchError>, tempfile::TempDir) {
        let d = tempfile::tempdir().unwrap();
        let r = extract_verified(Cursor::new(blob.to_vec()), job, d.path(), &apply());
        (r, d)
    }

    #[test]
    fn good_layers_extract_in_every_compression() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (blob, job) = sample(c);
            let (r, d) = extract(&blob, &job);
            let st = r.unwrap_or_else(|e| panic!("{c:?}: {e:#}"));
            assert_eq!(st.entries, 2);
            assert_eq!(
                std::fs::read_to_string(d.path().join("etc/hello")).unwrap(),
                "hello\n"
            );
            assert_eq!(
                std::fs::metadata(d.path().join("big.bin")).unwrap().len(),
                1_200_000
            );
        }
    }

    #[test]
    fn a_flipped_byte_is_a_digest_mismatch_not_a_decompression_error() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (mut blob, job) = sample(c);
            let mid = blob.len() / 2;
            blob[mid] ^= 0x55;
            let (r, _d) = extract(&blob, &job);
            match r {
                Err(FetchError::DigestMismatch { digest, actual }) => {
                    assert_eq!(digest, job.digest);
                    assert_eq!(actual, sha(&blob));
                }
                other => panic!("{c:?}: expected a digest mismatch, got {other:?}"),
            }
        }
    }

    #[test]
    fn truncated_and_oversized_blobs_are_refused() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (blob, job) = sample(c);
            let half = &blob[..blob.len() / 2];
            let (r, _d) = extract(half, &job);
            match r {
                Err(FetchError::Truncated { got, want, .. }) => {
                    assert_eq!((got, want), (half.len() as u64, blob.len() as u64));
                }
                other => panic!("{c:?}: expected truncation, got {other:?}"),
            }
            let mut longer = blob.clone();
            longer.extend_from_slice(b"trailing junk");
            let (r, _d) = extract(&longer, &job);
            assert!(
                matches!(r, Err(FetchError::TooLarge { .. })),
                "{c:?}: {r:?}"
            );
        }
    }

    #[test]
    fn wrong_diff_id_is_refused() {
        let (blob, mut job) = sample(Compression::Gzip);
        job.diff_id = sha(b"something else");
        let (r, _d) = extract(&blob, &job);
        let e = r.unwrap_err();
        assert!(matches!(e, FetchError::DiffIdMismatch { .. }), "{e:?}");
        assert!(e.to_string().contains("diffID"), "{e}");
    }

    #[test]
    fn garbage_with_a_correct_digest_is_a_decompression_or_tar_error() {
        let blob = b"this is not gzip at all".to_vec();
        let job = LayerJob {
            digest: sha(&blob),
            size: blob.len() as u64,
            compression: Compression::Gzip,
            diff_id: sha(b""),
            chain_id: String::new(),
            lowers: Vec::new(),
            max_size: None,
        };
        let (r, _d) = extract(&blob, &job);
        assert!(
            matches!(
                r,
                Err(FetchError::Decompress { .. } | FetchError::Apply { .. })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn malicious_entries_are_refused_after_the_digests_check_out() {
        let tar = layer_tar(&[("../escape", b"x")]);
        let job = LayerJob {
            digest: sha(&tar),
            size: tar.len() as u64,
            compression: Compression::None,
            diff_id: sha(&tar),
            chain_id: String::new(),
            lowers: Vec::new(),
            max_size: None,
        };
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let r = extract_verified(Cursor::new(tar), &job, &root, &apply());
        assert!(matches!(r, Err(FetchError::Apply { .. })), "{r:?}");
        assert!(!d.path().join("escape").exists());
    }

    #[test]
    fn a_network_error_mid_stream_is_transient_and_sticky() {
        let (blob, job) = sample(Compression::Gzip);
        let (tx, rx) = mpsc::channel(4);
        let first = Bytes::copy_from_slice(&blob[..1000]);
        let t = std::thread::spawn(move || {
            tx.blocking_send(Ok(first)).unwrap();
            tx.blocking_send(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset",
            )))
            .unwrap();
        });
        let d = tempfile::tempdir().unwrap();
        let r = extract_verified(ChannelReader::new(rx), &job, d.path(), &apply());
        t.join().unwrap();
        let e = r.unwrap_err();
        assert!(matches!(e, FetchError::Network { .. }), "{e:?}");
        assert!(e.is_transient());
    }

    #[test]
    fn copy_verified_checks_size_and_digest() {
        let (blob, job) = sample(Compression::Zstd);
        let mut out = Vec::new();
        copy_verified(Cursor::new(blob.clone()), &job, &mut out).unwrap();
        assert_eq!(out, blob);
        let mut bad = blob.clone();
        bad[10] ^= 1;
        let r = copy_verified(Cursor::new(bad), &job, &mut Vec::new());
        assert!(matches!(r, Err(FetchError::DigestMismatch { .. })), "{r:?}");
        let r = copy_verified(Cursor::new(blob[..100].to_vec()), &job, &mut Vec::new());
        assert!(matches!(r, Err(FetchError::Truncated { .. })), "{r:?}");
    }

    #[test]
    fn media_types_map_to_compressions() {
        use Compression::*;
        for (mt, c) in [
            ("application/vnd.oci.image.layer.v1.tar", Some(None)),
            ("application/vnd.oci.image.layer.v1.tar+gzip", Some(Gzip)),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Some(Zstd)),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Some(Gzip),
            ),
            ("application/vnd.docker.image.rootfs.diff.tar", Some(None)),
            ("application/vnd.example.not-a-layer", Option::None),
        ] {
            assert_eq!(Compression::from_media_type(mt), c, "{mt}");
        }
    }
}
