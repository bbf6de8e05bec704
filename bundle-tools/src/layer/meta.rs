//! An entry's metadata from its ustar header and PAX records: owner, mode, mtime with
//! nanoseconds, and xattrs (overlayfs' own dropped).

use std::ffi::CString;
use std::io::{self, Read};

use nix::sys::time::TimeSpec;

use super::is_overlay_xattr;

/// Metadata of one entry, from the ustar header and its PAX records.
pub(super) struct Meta {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mode: u32,
    pub(super) mtime: TimeSpec,
    pub(super) xattrs: Vec<(CString, Vec<u8>)>,
}

pub(super) fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = entry.header();
    let mut meta = Meta {
        uid: h.uid()? as u32,
        gid: h.gid()? as u32,
        mode: h.mode()? & 0o7777,
        mtime: TimeSpec::new(h.mtime()? as i64, 0),
        xattrs: Vec::new(),
    };
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            match key {
                "uid" => meta.uid = parse_num(value).unwrap_or(meta.uid),
                "gid" => meta.gid = parse_num(value).unwrap_or(meta.gid),
                "mtime" => {
                    if let Some(ts) = parse_pax_time(value) {
                        meta.mtime = ts;
                    }
                }
                _ => {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        // trusted.overlay.* would steer overlayfs (redirects, opaque dirs):
                        // only this code sets those, from whiteouts.
                        if is_overlay_xattr(name.as_bytes()) {
                            continue;
                        }
                        if let Ok(name) = CString::new(name) {
                            meta.xattrs.push((name, value.to_vec()));
                        }
                    }
                }
            }
        }
    }
    Ok(meta)
}

pub(super) fn parse_num(v: &[u8]) -> Option<u32> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// PAX times are decimal seconds with an optional fraction (`1700000000.123456789`).
pub(super) fn parse_pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nanos: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(TimeSpec::new(secs, nanos))
}
