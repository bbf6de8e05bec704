//! Test harness for the end-to-end tests.
pub mod busybox;
