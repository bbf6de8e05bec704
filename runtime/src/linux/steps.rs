//! Named steps: the init and an exec'd process run flat lists of them, and the first failure
//! names its step (`mount rootfs: ...`) in the one line the parent reports.

use anyhow::Result;

/// The step that failed and why.
pub struct Failed {
    pub step: &'static str,
    pub error: anyhow::Error,
}

/// Run one named step.
pub fn step<T>(name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T, Failed> {
    f().map_err(|error| Failed { step: name, error })
}
