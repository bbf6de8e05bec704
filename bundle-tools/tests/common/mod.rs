//! Shared by the integration tests: layer tars built in memory.
#![allow(dead_code)]

use tar::{EntryType, Header};

/// A layer tar under construction. Names are written raw, so hostile ones (`../x`) are
/// possible, which the `tar` crate's safe setters would refuse.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

pub struct Opts {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

pub const DEF: Opts = Opts {
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 1_600_000_000,
};

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // "LEN key=value\n" where LEN counts itself.
    let body = key.len() + value.len() + 3;
    let mut len = body + body.to_string().len();
    if len.to_string().len() != body.to_string().len() {
        len += 1;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

impl Layer {
    pub fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub fn raw(&mut self, kind: EntryType, name: &str, link: &str, o: &Opts, data: &[u8]) {
        let mut h = Header::new_gnu();
        let g = h.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        g.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(o.mode);
        h.set_uid(o.uid);
        h.set_gid(o.gid);
        h.set_mtime(o.mtime);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
    }

    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let data: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        self.raw(EntryType::XHeader, "PaxHeader", "", &DEF, &data);
        self
    }

    pub fn dir(&mut self, name: &str, o: &Opts) -> &mut Self {
        self.raw(EntryType::Directory, name, "", o, b"");
        self
    }
    pub fn file(&mut self, name: &str, data: &str, o: &Opts) -> &mut Self {
        self.raw(EntryType::Regular, name, "", o, data.as_bytes());
        self
    }
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Symlink, name, target, &DEF, b"");
        self
    }
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Link, name, target, &DEF, b"");
        self
    }
    pub fn node(&mut self, name: &str, kind: EntryType, major: u32, minor: u32) -> &mut Self {
        let mut h = Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o620);
        h.set_uid(0);
        h.set_gid(5);
        h.set_mtime(DEF.mtime);
        h.set_size(0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &b""[..]).unwrap();
        self
    }
    pub fn bytes(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}
