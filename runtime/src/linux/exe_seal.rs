//! CVE-2019-5736: the host's runtime binary must never be writable from a container.
//!
//! The container init is a clone of the runtime process (never a re-exec), so until it
//! execve's the user program its /proc/<pid>/exe *is* our binary. `linux::init` makes it
//! non-dumpable, which stops other container processes from opening that link, but not the
//! init itself: an entrypoint like `#!/proc/self/exe` is resolved by the kernel while the
//! init still runs our image, and would start the host binary inside the container, where it
//! can be reopened for writing once it exits.
//!
//! So `create` and `run` make sure the image they run (and their init inherits) is not a
//! writable file: if /proc/self/exe is neither on a read-only mount nor a sealed memfd, they
//! re-execute themselves once through a *read-only bind mount* of their own binary (the same
//! inode, so no copy and a warm page cache; runc 1.1's `try_bindfd`, without its named mount
//! point): a detached clone of /proc/self/exe's mount (`open_tree`), made read-only
//! (`mount_setattr`), execveat'ed by descriptor. The detached mount lives as long as our
//! image; opening /proc/<pid>/exe for writing then fails with EROFS. If mounting is impossible a sealed
//! memfd copy is used instead (slower: the binary is copied). Installing the binary on a
//! read-only mount skips all of this. Other commands never run container code and skip it.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use nix::fcntl::{AtFlags, FcntlArg, OFlag, SealFlag, fcntl, open};
use nix::sys::memfd::{MemFdCreateFlag, memfd_create};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{FsFlags, fstatvfs};
use nix::unistd::execveat;

use crate::linux::sys;
use crate::log;

/// `MFD_EXEC` (Linux 6.3): ask for an executable memfd explicitly, so a
/// `vm.memfd_noexec=1` default does not make it non-executable.
const MFD_EXEC: libc::c_uint = 0x0010;

/// Return if our executable is already safe, else re-exec from a read-only view of it (no
/// return).
pub fn ensure_sealed() -> Result<()> {
    let exe = File::open("/proc/self/exe").context("open /proc/self/exe")?;
    if is_safe(&exe) {
        return Ok(());
    }
    let image: OwnedFd = match readonly_view() {
        Ok(fd) => fd,
        Err(e) => {
            log::debug(format_args!(
                "read-only bind of the runtime binary failed ({e:#}); using a sealed memfd copy"
            ));
            sealed_copy(exe)?.into()
        }
    };
    let argv: Vec<CString> = std::env::args_os().map(|a| cstring(a.as_bytes())).collect();
    let envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring(&kv)
        })
        .collect();
    log::debug("re-executing from a read-only view of the runtime binary");
    let empty: &CStr = c"";
    let err = execveat(
        Some(image.as_raw_fd()),
        empty,
        &argv,
        &envp,
        AtFlags::AT_EMPTY_PATH,
    )
    .unwrap_err();
    Err(err).context("execveat of the sealed runtime copy")
}

/// A sealed memfd (it cannot be written) or a file on a read-only mount.
fn is_safe(exe: &File) -> bool {
    let sealed = fcntl(exe.as_raw_fd(), FcntlArg::F_GET_SEALS)
        .map(|s| SealFlag::from_bits_truncate(s).contains(SealFlag::F_SEAL_WRITE))
        .unwrap_or(false);
    sealed || fstatvfs(exe).is_ok_and(|v| v.flags().contains(FsFlags::ST_RDONLY))
}

/// A detached, read-only bind of our own binary: `open_tree` clones the mount of
/// /proc/self/exe's file, `mount_setattr` makes the clone read-only, and the descriptor is
/// the file on that mount, ready for execveat. No mount point exists anywhere, so a runtime
/// killed at any moment leaves nothing behind (a named bind point used to).
fn readonly_view() -> Result<OwnedFd> {
    let exe = open(
        "/proc/self/exe",
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(sys::own_fd)
    .context("open /proc/self/exe")?;
    let view = sys::clone_mount(exe.as_fd(), false).context("open_tree of the runtime binary")?;
    sys::set_mount_readonly(view.as_fd(), false).context("make the view read-only")?;
    Ok(view)
}

fn sealed_copy(mut exe: File) -> Result<File> {
    let flags = MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING;
    let fd = memfd_create(
        c"mocker-runtime",
        flags | MemFdCreateFlag::from_bits_retain(MFD_EXEC),
    )
    .or_else(|_| memfd_create(c"mocker-runtime", flags))
    .context("memfd_create")?;
    let mut copy = File::from(fd);
    std::io::copy(&mut exe, &mut copy).context("copy the runtime binary into a memfd")?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(copy.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).context("seal the memfd")?;
    Ok(copy)
}

fn cstring(b: &[u8]) -> CString {
    // Arguments and environment strings from the kernel never contain NUL.
    CString::new(b).unwrap_or_default()
}
