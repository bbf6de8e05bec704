//! `linux.personality`: the execution domain of the container program (`LINUX32` makes
//! `uname -m` say i686 on x86_64), set by the init before execve. Like runc, only the
//! domain is supported: personality flags are refused, not ignored.

use anyhow::{Context, Result, bail};
use nix::sys::personality::{self, Persona};
use oci_spec::runtime::{LinuxPersonality, LinuxPersonalityDomain};

/// `PER_LINUX` and `PER_LINUX32` (linux/personality.h).
const PER_LINUX: i32 = 0x0000;
const PER_LINUX32: i32 = 0x0008;

/// In `create`, before any side effect.
pub fn check(p: Option<&LinuxPersonality>) -> Result<()> {
    if p.is_some_and(|p| p.flags().as_ref().is_some_and(|f| !f.is_empty())) {
        bail!("linux.personality.flags: not supported (only the domain is)");
    }
    Ok(())
}

/// In the init.
pub fn apply(p: Option<&LinuxPersonality>) -> Result<()> {
    let Some(p) = p else { return Ok(()) };
    let domain = match p.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    };
    personality::set(Persona::from_bits_retain(domain))
        .with_context(|| format!("linux.personality.domain {}", p.domain()))?;
    Ok(())
}
