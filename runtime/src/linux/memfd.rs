//! Anonymous in-memory files: hook stdin/output and the exported seccomp program pass through
//! them instead of pipes (nothing can block or raise SIGPIPE) or temp files (nothing to leave).

use std::ffi::CStr;
use std::fs::File;

use anyhow::{Context, Result};
use nix::sys::memfd::{MemFdCreateFlag, memfd_create};

/// A new close-on-exec memfd named `name` (the name only shows in /proc).
pub fn create(name: &CStr) -> Result<File> {
    Ok(memfd_create(name, MemFdCreateFlag::MFD_CLOEXEC)
        .context("memfd_create")?
        .into())
}
