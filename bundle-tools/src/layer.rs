//! Applying one uncompressed layer tar to a rootfs with OCI image-spec semantics.
//!
//! CONTRACT (filled by the bundle-tools work):
//! - `pub struct ApplyOptions { .. }` (Default)
//! - `pub struct LayerStats { pub entries: u64, pub bytes: u64 }`
//! - `pub fn apply_layer<R: Read>(rootfs: &Path, tar: R, opts: &ApplyOptions)
//!   -> Result<LayerStats, LayerError>`
