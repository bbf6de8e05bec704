//! Test harness for the end-to-end tests.
pub mod busybox;
pub mod cgroupfs;
pub mod leftovers;
pub mod runtime;
