//! mocker-runtime: a runc-compatible low-level OCI runtime.
//!
//! The binary (`main.rs`) only parses and dispatches; everything lives here so that the
//! syscall sequence can be read from `commands::create` down into `linux::*`.

pub mod linux;
