//! The overlay mount that turns cached layers into a private, writable rootfs.
//!
//! Layers are passed one by one with the new mount API (`fsconfig(lowerdir+)`, Linux 6.8+), so
//! the number of layers is not limited by the one-page option string of mount(2); older
//! kernels get the classic `lowerdir=a:b:c` string when it fits. `index=off` as docker does:
//! the same lower layers are shared by many mounts with different upper dirs.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Is overlayfs usable here (listed in /proc/filesystems or loadable on first use)?
pub fn available() -> bool {
    std::fs::read_to_string("/proc/filesystems").is_ok_and(|s| s.contains("\toverlay\n"))
        || Path::new("/sys/module/overlay").exists()
        || fsopen().is_ok()
}

fn fsopen() -> io::Result<OwnedFd> {
    let name = cstr(b"overlay")?;
    // SAFETY: fsopen(2) with a valid C string; the returned fd is owned by us.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_fsopen,
            name.as_ptr(),
            libc::FSOPEN_CLOEXEC as libc::c_uint,
        )
    })?;
    // SAFETY: a fresh fd from the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn set_string(fs: &OwnedFd, key: &str, value: &[u8]) -> io::Result<()> {
    let k = cstr(key.as_bytes())?;
    let v = cstr(value)?;
    // SAFETY: fsconfig(2) with valid C strings and an fs-context fd we own.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_SET_STRING as libc::c_uint,
            k.as_ptr(),
            v.as_ptr(),
            0 as libc::c_int,
        )
    })
    .map(drop)
    .map_err(|e| with_log(fs, e, key))
}

/// The fs context keeps a log of why a parameter was refused; put it in the error.
fn with_log(fs: &OwnedFd, e: io::Error, what: &str) -> io::Error {
    let mut buf = [0u8; 512];
    let mut msgs = Vec::new();
    loop {
        // SAFETY: reading into a stack buffer of the given length.
        let n = unsafe { libc::read(fs.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        msgs.push(
            String::from_utf8_lossy(&buf[..n as usize])
                .trim()
                .to_string(),
        );
    }
    if msgs.is_empty() {
        io::Error::new(e.kind(), format!("overlay {what}: {e}"))
    } else {
        io::Error::new(
            e.kind(),
            format!("overlay {what}: {e} ({})", msgs.join("; ")),
        )
    }
}

/// Mount an overlay at `target`: `lowers` bottom layer first (image order), `upper` and `work`
/// private to this mount, on the same filesystem.
pub fn mount(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> io::Result<()> {
    match mount_new_api(lowers, upper, work, target) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            mount_legacy(lowers, upper, work, target)
        }
        r => r,
    }
}

fn mount_new_api(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> io::Result<()> {
    let fs = fsopen()?;
    set_string(&fs, "source", b"mocker-pull")?;
    // index=off is unknown to old kernels, where it is off anyway.
    let _ = set_string(&fs, "index", b"off");
    // overlayfs takes the first lower as the top-most: image order reversed.
    for l in lowers.iter().rev() {
        match set_string(&fs, "lowerdir+", l.as_os_str().as_bytes()) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && l == lowers.last().unwrap() => {
                // The first lowerdir+ refused: a kernel without it (before 6.8).
                return mount_legacy(lowers, upper, work, target);
            }
            r => r?,
        }
    }
    set_string(&fs, "upperdir", upper.as_os_str().as_bytes())?;
    set_string(&fs, "workdir", work.as_os_str().as_bytes())?;
    // SAFETY: fsconfig(2) CMD_CREATE takes no key or value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE as libc::c_uint,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0 as libc::c_int,
        )
    })
    .map_err(|e| with_log(&fs, e, "create"))?;
    // SAFETY: fsmount(2) on a created context; the result is a detached mount fd we own.
    let mnt = check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC as libc::c_uint,
            0 as libc::c_uint,
        )
    })?;
    // SAFETY: a fresh fd from the kernel.
    let mnt = unsafe { OwnedFd::from_raw_fd(mnt as i32) };
    let empty = cstr(b"")?;
    let tgt = cstr(target.as_os_str().as_bytes())?;
    // SAFETY: move_mount(2) of our detached mount onto a path given as a C string.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            tgt.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH as libc::c_uint,
        )
    })?;
    Ok(())
}

fn mount_legacy(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> io::Result<()> {
    let esc = |p: &Path| -> io::Result<String> {
        let s = p.to_str().filter(|s| !s.contains([':', ',']));
        s.map(str::to_string).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("overlay path {} has ':' or ','", p.display()),
            )
        })
    };
    let mut l = Vec::new();
    for p in lowers.iter().rev() {
        l.push(esc(p)?);
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},index=off",
        l.join(":"),
        esc(upper)?,
        esc(work)?
    );
    if opts.len() >= 4096 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many layers for a mount(2) option page on this kernel",
        ));
    }
    nix::mount::mount(
        Some("mocker-pull"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(io::Error::from)
}

/// Unmount `target`; `Ok(false)` if nothing was mounted there.
pub fn unmount(target: &Path, detach: bool) -> io::Result<bool> {
    let flags = if detach {
        MntFlags::MNT_DETACH
    } else {
        MntFlags::empty()
    };
    match nix::mount::umount2(target, flags) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether `path` is a mount point distinct from its parent (overlay has its own st_dev).
pub fn is_mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = path.parent().unwrap_or(Path::new("/"));
    match (std::fs::symlink_metadata(path), std::fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}
