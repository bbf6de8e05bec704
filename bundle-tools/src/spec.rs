//! Runtime specs: the default `config.json` (like `runc spec`) and the conversion of an
//! image configuration to a runtime spec (image-spec `conversion.md`, containerd's defaults).
//!
//! CONTRACT (filled by the bundle-tools work):
//! - `pub fn default_spec() -> Spec`: what `runc spec` writes (`mocker-runtime spec` uses it).
//! - `pub fn image_default_spec() -> Spec`: containerd's `WithDefaultSpec` (namespaces incl.
//!   network, standard mounts, 14 default capabilities, masked/readonly paths, terminal false).
//! - `pub struct Overrides { tty, env, workdir, user, hostname, args }`
//! - `pub fn image_to_spec(config: &ImageConfiguration, rootfs: &Path, overrides: &Overrides)
//!   -> Result<Spec, SpecError>`
