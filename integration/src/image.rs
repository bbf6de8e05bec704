//! Container images built inside the tests, byte for byte, with no internet.
//!
//! Layers are tar streams written entry by entry from [`Entry`] lists (files, dirs, symlinks,
//! hardlinks, whiteouts, opaque dirs, devices, owners, modes, xattrs), with no path
//! sanitising so that malicious layers (`../x`, `/etc/x`) can be built too. Images come in
//! OCI or Docker schema2 media types, layers gzip, zstd or uncompressed, and can be grouped
//! in a multi-platform index. [`write_oci_layout`] writes an image for `umoci unpack`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `sha256:HEX` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// What a tar entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    /// A hardlink to another path of the archive (or of a lower layer).
    Hardlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// One tar entry. Paths are written verbatim (no `./` prefix added, nothing cleaned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// 2021-01-01T00:00:00Z: a fixed mtime so builds are reproducible.
pub const MTIME: u64 = 1_609_459_200;

impl Entry {
    fn new(path: &str, kind: Kind, mode: u32) -> Entry {
        Entry {
            path: path.to_string(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: MTIME,
            xattrs: Vec::new(),
        }
    }
    /// A regular file, mode 0644.
    pub fn file(path: &str, content: impl AsRef<[u8]>) -> Entry {
        Self::new(path, Kind::File(content.as_ref().to_vec()), 0o644)
    }
    /// A directory, mode 0755.
    pub fn dir(path: &str) -> Entry {
        Self::new(path, Kind::Dir, 0o755)
    }
    pub fn symlink(path: &str, target: &str) -> Entry {
        Self::new(path, Kind::Symlink(target.to_string()), 0o777)
    }
    pub fn hardlink(path: &str, target: &str) -> Entry {
        Self::new(path, Kind::Hardlink(target.to_string()), 0o644)
    }
    pub fn char_dev(path: &str, major: u32, minor: u32) -> Entry {
        Self::new(path, Kind::Char(major, minor), 0o666)
    }
    pub fn block_dev(path: &str, major: u32, minor: u32) -> Entry {
        Self::new(path, Kind::Block(major, minor), 0o660)
    }
    pub fn fifo(path: &str) -> Entry {
        Self::new(path, Kind::Fifo, 0o644)
    }
    /// The whiteout deleting `path` from lower layers: `dir/.wh.name`.
    pub fn whiteout(path: &str) -> Entry {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), path),
        };
        Self::file(&format!("{dir}.wh.{name}"), b"")
    }
    /// The opaque marker hiding everything lower layers put in `dir`.
    pub fn opaque(dir: &str) -> Entry {
        Self::file(&format!("{}/.wh..wh..opq", dir.trim_end_matches('/')), b"")
    }
    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mtime(mut self, mtime: u64) -> Entry {
        self.mtime = mtime;
        self
    }
    /// An extended attribute (PAX `SCHILY.xattr.NAME`), e.g. `user.comment`.
    pub fn xattr(mut self, name: &str, value: impl AsRef<[u8]>) -> Entry {
        self.xattrs
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }
}

/// The entries of a directory tree (sorted, parents first), as `tar -C root .` would list
/// them but without the root itself. Owners, modes, symlinks and mtimes are kept.
pub fn entries_from_dir(root: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    walk(root, "", &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<Entry>) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let name = name.to_string_lossy().into_owned();
        let path = dir.join(&name);
        let rel = format!("{prefix}{name}");
        let md = fs::symlink_metadata(&path)?;
        let ft = md.file_type();
        let kind = if ft.is_symlink() {
            Kind::Symlink(fs::read_link(&path)?.to_string_lossy().into_owned())
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File(fs::read(&path)?)
        } else {
            return Err(io::Error::other(format!(
                "entries_from_dir: unsupported file type at {}",
                path.display()
            )));
        };
        let is_dir = kind == Kind::Dir;
        out.push(Entry {
            path: rel.clone(),
            kind,
            mode: md.permissions().mode() & 0o7777,
            uid: md.uid().into(),
            gid: md.gid().into(),
            mtime: md.mtime().max(0) as u64,
            xattrs: Vec::new(),
        });
        if is_dir {
            walk(&path, &format!("{rel}/"), out)?;
        }
    }
    Ok(())
}

/// One PAX record `LEN key=value\n` (LEN counts itself).
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

fn put_bytes(slot: &mut [u8], value: &[u8]) {
    let n = value.len().min(slot.len());
    slot.fill(0);
    slot[..n].copy_from_slice(&value[..n]);
}

/// An uncompressed tar stream of `entries`, in order, exactly as given.
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let name = match (&e.kind, e.path.ends_with('/')) {
            (Kind::Dir, false) => format!("{}/", e.path),
            _ => e.path.clone(),
        };
        let link = match &e.kind {
            Kind::Symlink(t) | Kind::Hardlink(t) => Some(t.as_str()),
            _ => None,
        };
        let mut pax = Vec::new();
        if name.len() > 100 {
            pax.extend(pax_record("path", name.as_bytes()));
        }
        if let Some(l) = link.filter(|l| l.len() > 100) {
            pax.extend(pax_record("linkpath", l.as_bytes()));
        }
        for (k, v) in &e.xattrs {
            pax.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
        }
        if !pax.is_empty() {
            let mut h = tar::Header::new_ustar();
            put_bytes(&mut h.as_old_mut().name, b"PaxHeaders/entry");
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_size(pax.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(e.mtime);
            h.set_cksum();
            b.append(&h, pax.as_slice()).expect("tar to memory");
        }
        let mut h = tar::Header::new_ustar();
        put_bytes(&mut h.as_old_mut().name, name.as_bytes());
        if let Some(l) = link {
            put_bytes(&mut h.as_old_mut().linkname, l.as_bytes());
        }
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        let mut data: &[u8] = &[];
        let (ty, size) = match &e.kind {
            Kind::File(c) => {
                data = c;
                (tar::EntryType::Regular, c.len())
            }
            Kind::Dir => (tar::EntryType::Directory, 0),
            Kind::Symlink(_) => (tar::EntryType::Symlink, 0),
            Kind::Hardlink(_) => (tar::EntryType::Link, 0),
            Kind::Char(..) => (tar::EntryType::Char, 0),
            Kind::Block(..) => (tar::EntryType::Block, 0),
            Kind::Fifo => (tar::EntryType::Fifo, 0),
        };
        h.set_entry_type(ty);
        h.set_size(size as u64);
        if let Kind::Char(ma, mi) | Kind::Block(ma, mi) = e.kind {
            h.set_device_major(ma).expect("ustar device");
            h.set_device_minor(mi).expect("ustar device");
        }
        h.set_cksum();
        b.append(&h, data).expect("tar to memory");
    }
    b.into_inner().expect("tar to memory")
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn compress(data: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).expect("gzip to memory");
            e.finish().expect("gzip to memory")
        }
        Compression::Zstd => zstd::encode_all(data, 3).expect("zstd to memory"),
    }
}

/// Media type family of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Oci,
    /// Docker image manifest v2 schema 2 (and manifest list).
    Docker,
}

impl Format {
    pub fn manifest_type(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.manifest.v1+json",
            Format::Docker => "application/vnd.docker.distribution.manifest.v2+json",
        }
    }
    pub fn index_type(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.index.v1+json",
            Format::Docker => "application/vnd.docker.distribution.manifest.list.v2+json",
        }
    }
    pub fn config_type(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.config.v1+json",
            Format::Docker => "application/vnd.docker.container.image.v1+json",
        }
    }
    pub fn layer_type(self, c: Compression) -> &'static str {
        match (self, c) {
            (Format::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (Format::Oci, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (Format::Oci, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (Format::Docker, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
            (Format::Docker, Compression::Gzip) => {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            }
            // Docker has no zstd type of its own; engines use the OCI one in schema2 too.
            (Format::Docker, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// Content with its media type and digest.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub data: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_string(),
            digest: sha256_digest(&data),
            data,
        }
    }
    pub fn json(media_type: &str, v: &Value) -> Blob {
        Self::new(media_type, serde_json::to_vec(v).expect("json"))
    }
    pub fn size(&self) -> usize {
        self.data.len()
    }
    /// `{mediaType, digest, size}`.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size()})
    }
    /// The hex part of the digest.
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

/// A layer blob and the digest of its uncompressed tar (the diffID).
#[derive(Clone, Debug)]
pub struct BuiltLayer {
    pub blob: Blob,
    pub diff_id: String,
    pub entries: Vec<Entry>,
}

pub fn build_layer(entries: &[Entry], c: Compression, f: Format) -> BuiltLayer {
    let tar = tar(entries);
    BuiltLayer {
        diff_id: sha256_digest(&tar),
        blob: Blob::new(f.layer_type(c), compress(&tar, c)),
        entries: entries.to_vec(),
    }
}

/// `os/architecture[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(s: &str) -> Platform {
        let mut it = s.split('/');
        Platform {
            os: it.next().unwrap_or("linux").to_string(),
            architecture: it.next().unwrap_or("amd64").to_string(),
            variant: it.next().map(str::to_string),
        }
    }
    pub fn amd64() -> Platform {
        Self::parse("linux/amd64")
    }
    pub fn arm64() -> Platform {
        Self::parse("linux/arm64/v8")
    }
    pub fn to_json(&self) -> Value {
        let mut v = json!({"os": self.os, "architecture": self.architecture});
        if let Some(var) = &self.variant {
            v["variant"] = json!(var);
        }
        v
    }
}

/// The `config` part of an image config, in the image-spec's names.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `80/tcp`, `53/udp`.
    pub exposed_ports: Vec<String>,
    pub stop_signal: Option<String>,
    pub volumes: Vec<String>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Config {
    pub fn entrypoint(mut self, v: &[&str]) -> Self {
        self.entrypoint = Some(strings(v));
        self
    }
    pub fn cmd(mut self, v: &[&str]) -> Self {
        self.cmd = Some(strings(v));
        self
    }
    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.to_string());
        self
    }
    pub fn working_dir(mut self, d: &str) -> Self {
        self.working_dir = Some(d.to_string());
        self
    }
    pub fn user(mut self, u: &str) -> Self {
        self.user = Some(u.to_string());
        self
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.to_string(), v.to_string());
        self
    }
    pub fn expose(mut self, port: &str) -> Self {
        self.exposed_ports.push(port.to_string());
        self
    }
    pub fn stop_signal(mut self, s: &str) -> Self {
        self.stop_signal = Some(s.to_string());
        self
    }
    pub fn volume(mut self, v: &str) -> Self {
        self.volumes.push(v.to_string());
        self
    }

    pub fn to_json(&self) -> Value {
        let mut c = serde_json::Map::new();
        if let Some(v) = &self.entrypoint {
            c.insert("Entrypoint".into(), json!(v));
        }
        if let Some(v) = &self.cmd {
            c.insert("Cmd".into(), json!(v));
        }
        if !self.env.is_empty() {
            c.insert("Env".into(), json!(self.env));
        }
        if let Some(v) = &self.working_dir {
            c.insert("WorkingDir".into(), json!(v));
        }
        if let Some(v) = &self.user {
            c.insert("User".into(), json!(v));
        }
        if !self.labels.is_empty() {
            c.insert("Labels".into(), json!(self.labels));
        }
        let set = |items: &[String]| -> Value {
            Value::Object(items.iter().map(|p| (p.clone(), json!({}))).collect())
        };
        if !self.exposed_ports.is_empty() {
            c.insert("ExposedPorts".into(), set(&self.exposed_ports));
        }
        if let Some(v) = &self.stop_signal {
            c.insert("StopSignal".into(), json!(v));
        }
        if !self.volumes.is_empty() {
            c.insert("Volumes".into(), set(&self.volumes));
        }
        Value::Object(c)
    }
}

/// Builds one image: `ImageBuilder::new().layer(...).config(...).build()`.
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    format: Format,
    compression: Compression,
    platform: Platform,
    config: Config,
    layers: Vec<BuiltLayer>,
    edit: Option<fn(&mut Value)>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    /// OCI, gzip, linux/amd64, empty config.
    pub fn new() -> ImageBuilder {
        ImageBuilder {
            format: Format::Oci,
            compression: Compression::Gzip,
            platform: Platform::amd64(),
            config: Config::default(),
            layers: Vec::new(),
            edit: None,
        }
    }
    /// Media types of the manifest, config and the layers added after this call.
    pub fn format(mut self, f: Format) -> Self {
        self.format = f;
        self
    }
    /// Compression of the layers added after this call.
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }
    pub fn platform(mut self, p: Platform) -> Self {
        self.platform = p;
        self
    }
    pub fn config(mut self, c: Config) -> Self {
        self.config = c;
        self
    }
    /// Appends a layer made of `entries`.
    pub fn layer(mut self, entries: &[Entry]) -> Self {
        self.layers
            .push(build_layer(entries, self.compression, self.format));
        self
    }
    /// Appends an already built layer (e.g. one shared with another image).
    pub fn built_layer(mut self, l: BuiltLayer) -> Self {
        self.layers.push(l);
        self
    }
    /// A last edit of the config JSON (after diff_ids are filled in), for malformed images.
    pub fn edit_config(mut self, f: fn(&mut Value)) -> Self {
        self.edit = Some(f);
        self
    }

    pub fn build(self) -> BuiltImage {
        let diff_ids: Vec<&str> = self.layers.iter().map(|l| l.diff_id.as_str()).collect();
        let mut cfg = json!({
            "created": "2021-01-01T00:00:00Z",
            "architecture": self.platform.architecture,
            "os": self.platform.os,
            "config": self.config.to_json(),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": self.layers.iter().map(|_| json!({
                "created": "2021-01-01T00:00:00Z", "created_by": "mocker integration test"
            })).collect::<Vec<_>>(),
        });
        if let Some(v) = &self.platform.variant {
            cfg["variant"] = json!(v);
        }
        if let Some(f) = self.edit {
            f(&mut cfg);
        }
        let config = Blob::json(self.format.config_type(), &cfg);
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": self.format.manifest_type(),
            "config": config.descriptor(),
            "layers": self.layers.iter().map(|l| l.blob.descriptor()).collect::<Vec<_>>(),
        });
        if self.format == Format::Oci {
            // OCI allows omitting mediaType; keep it: registries use it to validate.
            manifest["mediaType"] = json!(self.format.manifest_type());
        }
        BuiltImage {
            manifest: Blob::json(self.format.manifest_type(), &manifest),
            config,
            layers: self.layers,
            platform: self.platform,
        }
    }
}

/// A built image: manifest, config and layer blobs.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<BuiltLayer>,
    pub platform: Platform,
}

impl BuiltImage {
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }
    pub fn config_json(&self) -> Value {
        serde_json::from_slice(&self.config.data).expect("config json")
    }
    /// Every blob (layers, config, manifest).
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut v: Vec<&Blob> = self.layers.iter().map(|l| &l.blob).collect();
        v.push(&self.config);
        v.push(&self.manifest);
        v
    }
}

/// An image index (OCI) or manifest list (Docker) over per-platform images.
#[derive(Clone, Debug)]
pub struct BuiltIndex {
    pub index: Blob,
    pub images: Vec<(Platform, BuiltImage)>,
}

impl BuiltIndex {
    pub fn digest(&self) -> &str {
        &self.index.digest
    }
    pub fn image(&self, p: &Platform) -> &BuiltImage {
        &self
            .images
            .iter()
            .find(|(q, _)| q == p)
            .expect("platform in index")
            .1
    }
}

pub fn build_index(format: Format, images: Vec<BuiltImage>) -> BuiltIndex {
    let manifests: Vec<Value> = images
        .iter()
        .map(|i| {
            let mut d = i.manifest.descriptor();
            d["platform"] = i.platform.to_json();
            d
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": format.index_type(),
        "manifests": manifests,
    });
    BuiltIndex {
        index: Blob::json(format.index_type(), &index),
        images: images
            .into_iter()
            .map(|i| (i.platform.clone(), i))
            .collect(),
    }
}

/// Writes `image` as an OCI image layout in `dir` with `tag` as its ref name
/// (`umoci unpack --image DIR:TAG`).
pub fn write_oci_layout(dir: &Path, tag: &str, image: &BuiltImage) -> io::Result<()> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    for b in image.blobs() {
        fs::write(blobs.join(b.hex()), &b.data)?;
    }
    let mut d = image.manifest.descriptor();
    d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let index =
        json!({"schemaVersion": 2, "mediaType": Format::Oci.index_type(), "manifests": [d]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)
}

/// The text of the image's `/etc/os-release`, so demos show where they run.
pub const OS_RELEASE: &str = "NAME=\"Mocker busybox\"\nID=mocker-busybox\nPRETTY_NAME=\"Mocker test image (busybox-static)\"\n";

/// The entries of a busybox userland (`integration::busybox::make_rootfs`) plus
/// `/etc/os-release`, ready to be one layer (reproducible: every mtime is [`MTIME`]).
pub fn busybox_entries() -> io::Result<Vec<Entry>> {
    let tmp = tempfile::Builder::new()
        .prefix("mocker-busybox-layer-")
        .tempdir()?;
    crate::busybox::make_rootfs(tmp.path())?;
    fs::write(tmp.path().join("etc/os-release"), OS_RELEASE)?;
    // Fixed mtimes: the same busybox gives the same image, whenever it is built.
    Ok(entries_from_dir(tmp.path())?
        .into_iter()
        .map(|e| e.mtime(MTIME))
        .collect())
}

/// A one-layer busybox image with `Cmd ["sh"]` and the usual PATH, in `format`/`compression`.
pub fn busybox_image(format: Format, compression: Compression) -> io::Result<BuiltImage> {
    Ok(ImageBuilder::new()
        .format(format)
        .compression(compression)
        .config(
            Config::default()
                .cmd(&["sh"])
                .env("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        )
        .layer(&busybox_entries()?)
        .build())
}

/// A deterministic image shaped like the issue's reference (a 4-layer image of 244 MB and
/// 12k files, 91 MB gzip): `total_mb` MB in `files` files over four layers of 40/30/20/10%,
/// busybox in the first. Each file is part xorshift noise, part text, so gzip ends near
/// 0.4 of the size, like binaries and libraries do.
pub fn large_image(total_mb: usize, files: usize) -> io::Result<BuiltImage> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let file_size = (total_mb << 20) / files.max(1);
    let mut b = ImageBuilder::new().config(
        Config::default()
            .cmd(&["sh"])
            .env("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    );
    let mut made = 0;
    for (layer, share) in [40, 30, 20, 10].into_iter().enumerate() {
        let n = if layer == 3 {
            files - made
        } else {
            files * share / 100
        };
        let mut entries = if layer == 0 {
            busybox_entries()?
        } else {
            Vec::new()
        };
        let dir = format!("usr/lib/layer{layer}");
        entries.push(Entry::dir("usr"));
        entries.push(Entry::dir("usr/lib"));
        entries.push(Entry::dir(&dir));
        for i in 0..n {
            if i % 100 == 0 {
                entries.push(Entry::dir(&format!("{dir}/d{}", i / 100)));
            }
            let mut data = Vec::with_capacity(file_size + 8);
            while data.len() < file_size * 3 / 10 {
                data.extend_from_slice(&next().to_le_bytes());
            }
            let words: &[u8; 64] =
                b"lorem ipsum dolor sit amet consectetur adipiscing elit, sed do \n";
            while data.len() < file_size {
                let w = (next() % 8) as usize * 8;
                data.extend_from_slice(&words[w..w + 8]);
            }
            data.truncate(file_size);
            entries.push(Entry::file(&format!("{dir}/d{}/f{i}", i / 100), data));
        }
        made += n;
        b = b.layer(&entries);
    }
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let r = pax_record("path", b"a");
        assert_eq!(r, b"9 path=a\n");
        let long = vec![b'x'; 95];
        let r = pax_record("path", &long);
        assert_eq!(r.len().to_string(), String::from_utf8_lossy(&r[..3]));
    }

    #[test]
    fn tar_roundtrip_keeps_every_kind() {
        let entries = vec![
            Entry::dir("d").mode(0o700).owner(1000, 1001),
            Entry::file("d/f", "hello").mode(0o4755),
            Entry::symlink("d/s", "../etc/passwd"),
            Entry::hardlink("d/h", "d/f"),
            Entry::char_dev("d/null", 1, 3),
            Entry::whiteout("d/gone"),
            Entry::opaque("d"),
            Entry::file(&format!("{}/long", "x".repeat(120)), "L").xattr("user.k", "v"),
            Entry::file("../escape", "bad"),
        ];
        let data = tar(&entries);
        let mut a = tar::Archive::new(data.as_slice());
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let xattr = e
                .pax_extensions()
                .unwrap()
                .map(|exts| exts.count())
                .unwrap_or(0);
            seen.push((path, e.header().mode().unwrap(), xattr));
        }
        assert_eq!(seen[0], ("d/".into(), 0o700, 0));
        assert_eq!(seen[1].1, 0o4755);
        assert_eq!(seen[5].0, "d/.wh.gone");
        assert_eq!(seen[6].0, "d/.wh..wh..opq");
        assert_eq!(seen[7].0, format!("{}/long", "x".repeat(120)));
        assert_eq!(seen[7].2, 2);
        assert_eq!(seen[8].0, "../escape");
    }

    #[test]
    fn image_manifest_describes_its_blobs() {
        let img = ImageBuilder::new()
            .format(Format::Docker)
            .compression(Compression::Zstd)
            .config(Config::default().cmd(&["sh"]).expose("80/tcp"))
            .layer(&[Entry::file("a", "1")])
            .build();
        let m: Value = serde_json::from_slice(&img.manifest.data).unwrap();
        assert_eq!(m["config"]["digest"], json!(img.config.digest));
        assert_eq!(m["layers"][0]["size"], json!(img.layers[0].blob.size()));
        let c = img.config_json();
        assert_eq!(c["rootfs"]["diff_ids"][0], json!(img.layers[0].diff_id));
        assert_eq!(c["config"]["ExposedPorts"], json!({"80/tcp": {}}));
        let idx = build_index(Format::Oci, vec![img.clone()]);
        let i: Value = serde_json::from_slice(&idx.index.data).unwrap();
        assert_eq!(i["manifests"][0]["platform"]["architecture"], "amd64");
    }
}
