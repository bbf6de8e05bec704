//! mocker-runtime: a runc-compatible low-level OCI runtime.
//!
//! The binary (`main.rs`) only parses and dispatches; everything lives here so that the
//! syscall sequence can be read from `commands::create` down into `linux::*`:
//! `commands::create` -> `linux::process::spawn` (clone + channel) -> `linux::init` (the
//! ordered steps inside the container) -> execve.

pub mod cli;
pub mod commands;
pub mod container;
pub mod linux;
pub mod log;
