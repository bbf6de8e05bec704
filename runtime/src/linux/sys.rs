//! The only home of `unsafe`: raw syscalls that nix 0.29 lacks or exposes only unsafely.
//!
//! Every function here is a thin, documented wrapper; the safety argument sits next to it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// Result of [`clone_process`]: like `fork`, it returns twice.
pub enum Cloned {
    Parent(Pid),
    Child,
}

/// `clone(2)` with `flags` (new namespaces) and no new stack: it behaves like `fork`, so the
/// child continues here with a copy of the address space and SIGCHLD is sent on its exit.
///
/// Only call this from a single-threaded process (the runtime is): as with `fork`, no other
/// thread can hold a lock (allocator, stdio) that the child would inherit locked.
pub fn clone_process(flags: CloneFlags) -> io::Result<Cloned> {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: a NULL stack makes clone fork-like (the child gets a copy-on-write copy of our
    // stack); all pointer arguments are NULL, so argument order differences between
    // architectures do not matter. The process is single-threaded (see above).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
            0usize,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent(Pid::from_raw(pid as i32))),
    }
}

/// `struct clone_args` of clone3(2), up to the `cgroup` field (Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Like [`clone_process`], but the child is born inside the cgroup2 directory `cgroup`
/// (`clone3` with `CLONE_INTO_CGROUP`), which avoids migrating it afterwards.
pub fn clone_process_into_cgroup(flags: CloneFlags, cgroup: BorrowedFd<'_>) -> io::Result<Cloned> {
    let args = CloneArgs {
        flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: as for clone_process: no stack (fork-like), single-threaded caller; `args`
    // outlives the call and its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent(Pid::from_raw(pid as i32))),
    }
}

/// `openat2(dirfd, path, flags, resolve)`: the kernel resolves `path` with `resolve`
/// restrictions (e.g. `RESOLVE_IN_ROOT` makes `dirfd` the root for `..` and absolute symlinks).
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: open_how is a plain C struct; zeroed is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // With RESOLVE_IN_ROOT/BENEATH the kernel answers EAGAIN when a rename or a mount
    // anywhere raced with a `..` in the path (it cannot prove the walk stayed inside): ask
    // again, as openat2(2) says to. Mounts are frequent on a busy host.
    let mut attempts = 0;
    loop {
        // SAFETY: cpath and how outlive the call; the size passed matches the struct.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                cpath.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if ret >= 0 {
            // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) });
        }
        let err = io::Error::last_os_error();
        attempts += 1;
        if err.raw_os_error() != Some(libc::EAGAIN) || attempts >= 128 {
            return Err(err);
        }
    }
}

/// The namespace type (`CLONE_NEW*`) of a namespace file (`ioctl NS_GET_NSTYPE`, Linux 4.11);
/// `ENOTTY` when `fd` is not a namespace file.
pub fn namespace_type(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns an integer.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

/// Mark every descriptor from `first` upwards close-on-exec (`close_range` with
/// `CLOSE_RANGE_CLOEXEC`), so nothing of the host leaks through `execve` (CVE-2024-21626).
pub fn cloexec_from(first: RawFd) -> io::Result<()> {
    // SAFETY: close_range only changes descriptor flags; no memory is involved.
    let ret =
        unsafe { libc::close_range(first as u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Close every descriptor in `first..=last` (`close_range`, no flags).
pub fn close_range(first: RawFd, last: RawFd) -> io::Result<()> {
    if first > last {
        return Ok(());
    }
    // SAFETY: close_range only closes descriptors; callers pass ranges that hold no
    // descriptor owned by live Rust objects they still use (see linux::fds).
    let ret = unsafe { libc::close_range(first as u32, last as u32, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `open_tree(fd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH [| AT_RECURSIVE])`: a detached copy of
/// the mount (tree) at the object `fd` refers to, as a bind mount not yet attached anywhere.
pub fn clone_mount(fd: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: the path is a static empty C string; the fd is borrowed for the call.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    owned_or_error(ret)
}

/// `fsopen` + `fsconfig` + `fsmount` of a read-only, empty tmpfs: a detached mount.
pub fn new_readonly_tmpfs() -> io::Result<OwnedFd> {
    // SAFETY: static C strings; the returned descriptor is owned below.
    let fs = owned_or_error(unsafe {
        libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), libc::FSOPEN_CLOEXEC)
    })?;
    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain integer arguments.
    owned_or_error(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            libc::MOUNT_ATTR_RDONLY as libc::c_uint,
        )
    })
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], {attr_set: MOUNT_ATTR_RDONLY})`.
pub fn set_mount_readonly(mnt: BorrowedFd<'_>, recursive: bool) -> io::Result<()> {
    set_mount_attr(mnt, libc::MOUNT_ATTR_RDONLY, None, recursive)
}

/// `mount_setattr` with `MOUNT_ATTR_IDMAP`: the detached mount `mnt` shows its files' owners
/// through the id maps of the user namespace `userns`.
pub fn set_mount_idmap(
    mnt: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> io::Result<()> {
    set_mount_attr(mnt, libc::MOUNT_ATTR_IDMAP, Some(userns), recursive)
}

fn set_mount_attr(
    mnt: BorrowedFd<'_>,
    set: u64,
    userns: Option<BorrowedFd<'_>>,
    recursive: bool,
) -> io::Result<()> {
    // SAFETY: mount_attr is a plain C struct; zeroed is a valid value.
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    attr.attr_set = set;
    if let Some(u) = userns {
        attr.userns_fd = u.as_raw_fd() as u64;
    }
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `attr` outlives the call and its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `move_mount(mnt, "", target, "", F_EMPTY_PATH | T_EMPTY_PATH)`: attach the detached mount
/// `mnt` on the object `target` refers to. Neither side is a path, so nothing can be swapped.
pub fn attach_mount(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: static empty C strings; both descriptors are borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The slave of the pty master `master` (`TIOCGPTPEER`, Linux 4.13), opened without a path
/// lookup in the container's /dev/pts.
pub fn open_pty_peer(master: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags as an integer argument.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    owned_or_error(ret as libc::c_long)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, NULL)`: the kernel checks `flags` before the
/// program, so EFAULT means every flag is known and EINVAL that one is not.
pub fn seccomp_check_flags(flags: libc::c_ulong) -> io::Result<()> {
    // SAFETY: a NULL program is never dereferenced once the flags are rejected or accepted
    // (the kernel returns EFAULT copying it).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `seccomp(SECCOMP_GET_ACTION_AVAIL)`: does the kernel know this `SECCOMP_RET_*` action?
pub fn seccomp_action_available(action: u32) -> bool {
    // SAFETY: `action` lives across the call; the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        )
    };
    ret == 0
}

/// Install a seccomp filter on this thread (`SECCOMP_SET_MODE_FILTER`). With
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER` the kernel returns the notification descriptor.
pub fn seccomp_set_filter(
    flags: libc::c_ulong,
    program: &[libc::sock_filter],
) -> io::Result<Option<OwnedFd>> {
    let prog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` and the instructions it points to outlive the call; the kernel copies them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
        return owned_or_error(ret).map(Some);
    }
    Ok(None)
}

/// `struct sched_attr`, its first version (SCHED_ATTR_SIZE_VER0, 48 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// `sched_setattr(0, attr, 0)`: this thread's scheduling policy and parameters.
pub fn sched_setattr(attr: &SchedAttr) -> io::Result<()> {
    let mut attr = *attr;
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `attr` is a live #[repr(C)] sched_attr whose size field says how much to read.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level)`: this process's I/O priority.
pub fn ioprio_set(class: u32, level: u32) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    // SAFETY: plain integer arguments.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            (class << 13 | level) as libc::c_int,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn owned_or_error(ret: libc::c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// Reset every catchable signal to its default action. The Rust runtime ignores SIGPIPE and
/// ignored dispositions survive `execve`, so the container process would inherit it.
pub fn reset_signal_dispositions() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL involves no handler code; errors (invalid numbers in the
        // glibc-reserved range) are harmless and ignored.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// `kill(pid, signo)` for any signal number, including real-time ones nix cannot name.
pub fn send_signal(pid: Pid, signo: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers.
    let ret = unsafe { libc::kill(pid.as_raw(), signo) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Make `fd` (a terminal) the controlling terminal of this session (`TIOCSCTTY`).
pub fn set_controlling_terminal(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument, no pointers.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A terminal's window size (`TIOCGWINSZ`) as (rows, cols), if `fd` is a terminal.
pub fn window_size(fd: RawFd) -> Option<(u16, u16)> {
    // SAFETY: zeroed is a valid winsize; TIOCGWINSZ fills it and reads nothing else.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: `ws` lives across the call and has the layout TIOCGWINSZ expects.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws as *mut libc::winsize) };
    (ret == 0).then_some((ws.ws_row, ws.ws_col))
}

/// Set a terminal's window size (`TIOCSWINSZ`).
pub fn set_window_size(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: ws lives across the call and has the layout TIOCSWINSZ expects.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws as *const libc::winsize) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Take ownership of a descriptor the kernel just installed (e.g. received via SCM_RIGHTS).
pub fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass only descriptors freshly created for this process that no other
    // owner refers to.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `_exit(2)`: leave the cloned child without running the parent's exit handlers or flushing
/// buffers it inherited.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    /// dst register in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// union bpf_attr, the BPF_PROG_LOAD part we use.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// union bpf_attr, the BPF_PROG_ATTACH part.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised #[repr(C)] prefix of union bpf_attr and
    // the size passed is its exact size; the kernel zero-extends the rest. Pointers inside
    // it (instructions, license, log) point to memory the caller keeps alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A failed program load: the errno and the verifier's last log line (why it refused).
pub struct BpfLoadError {
    pub error: io::Error,
    pub verifier_last_line: String,
}

/// `bpf(BPF_PROG_LOAD)` of a `BPF_PROG_TYPE_CGROUP_DEVICE` program.
pub fn bpf_load_device_filter(
    prog: &[BpfInsn],
    license: &std::ffi::CStr,
    name: &str,
) -> Result<OwnedFd, BpfLoadError> {
    let mut prog_name = [0u8; 16];
    let n = name.len().min(15);
    prog_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let mut load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut load) {
        // SAFETY: a successful BPF_PROG_LOAD returns a new fd that we alone own.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
        Err(error) => {
            // Load again with the verifier's log, to say why.
            let mut log = vec![0u8; 1 << 16];
            load.log_level = 1;
            load.log_size = log.len() as u32;
            load.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut load);
            let text = String::from_utf8_lossy(&log);
            let last = text.trim_end_matches('\0').lines().last().unwrap_or("");
            Err(BpfLoadError {
                error,
                verifier_last_line: last.trim().to_string(),
            })
        }
    }
}

/// `bpf(BPF_PROG_ATTACH)` of a device filter to a cgroup directory, alongside any others
/// (`BPF_F_ALLOW_MULTI`: all attached programs must allow an access).
pub fn bpf_attach_device_filter(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attach = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attach).map(drop)
}
