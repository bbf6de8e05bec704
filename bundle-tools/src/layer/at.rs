//! The raw `*at` layer under layer application: every call relative to an open directory,
//! never following the final name, errors as `io::Error`.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use super::DirId;
use crate::sys;

pub(super) fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

pub(super) fn open_at(dir: RawFd, name: &OsStr, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
    nix::fcntl::openat(
        Some(dir),
        name,
        flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(mode),
    )
    .map(sys::own)
    .map_err(errno)
}

pub(super) fn dir_id(dir: RawFd) -> io::Result<DirId> {
    let st = nix::sys::stat::fstat(dir).map_err(errno)?;
    Ok((st.st_dev, st.st_ino))
}

pub(super) fn lstat_at(dir: RawFd, name: &OsStr) -> io::Result<Option<nix::sys::stat::FileStat>> {
    match nix::sys::stat::fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(errno(e)),
    }
}

pub(super) fn is_dir(st: &nix::sys::stat::FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// `rm -rf dir/name` without following symlinks; a missing name is fine.
pub(super) fn remove_all_at(dir: RawFd, name: &OsStr) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if is_dir(&st) {
        let fd = open_at(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)?;
        for child in list_dir(fd.as_raw_fd())? {
            remove_all_at(fd.as_raw_fd(), &child)?;
        }
        nix::unistd::unlinkat(Some(dir), name, nix::unistd::UnlinkatFlags::RemoveDir).map_err(errno)
    } else {
        match nix::unistd::unlinkat(Some(dir), name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }
}

/// Names in a directory (without `.` and `..`), read before anything is changed in it.
pub(super) fn list_dir(dir: RawFd) -> io::Result<Vec<OsString>> {
    let mut d = nix::dir::Dir::openat(
        Some(dir),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e.map_err(errno)?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    Ok(names)
}

pub(super) fn xattr_path(dir: RawFd, name: &OsStr) -> io::Result<CString> {
    // The magic link resolves to the directory itself; the final name is not followed
    // by lsetxattr.
    let mut p = format!("/proc/self/fd/{dir}/").into_bytes();
    p.extend_from_slice(name.as_bytes());
    CString::new(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}
