//! Test harness for the end-to-end tests.
pub mod busybox;
pub mod cgroupfs;
pub mod engines;
pub mod fdpass;
pub mod image;
pub mod leftovers;
pub mod pull;
pub mod push;
pub mod registry;
pub mod runtime;
pub mod seccomp;
pub mod terminal;
pub mod token;
pub mod tree;
