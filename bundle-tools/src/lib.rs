//! bundle-tools: what `mocker-pull` and `mocker-runtime` share about OCI bundles.
//!
//! - [`validate`]: load a bundle's `config.json` with errors that name the field.
//! - [`spec`]: the default runtime spec and image-config to runtime-spec conversion.
//! - [`layer`]: apply one uncompressed layer tar to a rootfs (OCI image-spec semantics).
//! - [`secure_path`]: resolve untrusted paths inside a root, never escaping it.
//! - [`user`]: `/etc/passwd` and `/etc/group` lookup inside a rootfs.
//!
//! Every `unsafe` block lives in the private `sys` module.

pub mod layer;
pub mod secure_path;
pub mod spec;
mod sys;
pub mod user;
pub mod validate;
