//! The library's raw system calls: the only `unsafe` in bundle-tools. Each block says why it
//! is sound; callers get safe functions over fds and C strings.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Takes ownership of an fd just returned by a successful `open`/`openat` (nix hands out raw
/// fds): it is closed on drop.
pub(crate) fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// All xattrs of an open file except those `skip` names (a copy keeps capabilities,
/// labels...).
pub(crate) fn read_xattrs(
    fd: RawFd,
    skip: fn(&[u8]) -> bool,
) -> io::Result<Vec<(CString, Vec<u8>)>> {
    // SAFETY: the buffers passed are live and their lengths are given.
    let names = sized(|b| unsafe { libc::flistxattr(fd, b.as_mut_ptr().cast(), b.len()) })?;
    let mut out = Vec::new();
    for name in names.split(|&c| c == 0).filter(|n| !n.is_empty()) {
        if skip(name) {
            continue;
        }
        let name = CString::new(name).expect("split on NUL");
        // SAFETY: as above; `name` is NUL-terminated.
        let value = sized(|b| unsafe {
            libc::fgetxattr(fd, name.as_ptr(), b.as_mut_ptr().cast(), b.len())
        })?;
        out.push((name, value));
    }
    Ok(out)
}

/// Calls a size-then-fill xattr syscall until the buffer is large enough.
fn sized(mut call: impl FnMut(&mut [u8]) -> isize) -> io::Result<Vec<u8>> {
    loop {
        let n = call(&mut []);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; n as usize];
        let m = call(&mut buf);
        if m >= 0 {
            buf.truncate(m as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e); // ERANGE: it grew in between, ask again
        }
    }
}

/// Where an xattr goes: an open file, or a symlink by path (which cannot be opened).
pub(crate) enum XattrTarget<'a> {
    Fd(RawFd),
    Path(&'a CString),
}

pub(crate) fn set_xattr(target: &XattrTarget<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: valid NUL-terminated strings and a live buffer of `value.len()` bytes.
    let r = unsafe {
        match target {
            XattrTarget::Fd(fd) => {
                libc::fsetxattr(*fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0)
            }
            XattrTarget::Path(p) => libc::lsetxattr(
                p.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            ),
        }
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
