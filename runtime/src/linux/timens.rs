//! A new time namespace and `linux.timeOffsets`.
//!
//! Offsets can only be written while no process is in the namespace, and a process cannot
//! move itself into a new one: `unshare(CLONE_NEWTIME)` places the caller's *children* there.
//! So the runtime itself unshares one for its next child, writes the offsets, clones the init
//! into it (its first process), and at once puts its own children back in its time namespace
//! (hooks it runs later must not see the container's clocks). No intermediate process.

use std::fs::File;
use std::os::fd::OwnedFd;

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, setns, unshare};
use oci_spec::runtime::Spec;

const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

/// What the parent does around the clone.
#[derive(Debug)]
pub struct NewTimeNs {
    /// The runtime's own time namespace, to return to.
    own: OwnedFd,
    /// `/proc/self/timens_offsets` text.
    offsets: String,
}

/// In `create`: a plan when the config asks for a new time namespace; offsets without one are
/// refused, as are clocks other than monotonic and boottime.
pub fn plan(spec: &Spec, new_timens: bool) -> Result<Option<NewTimeNs>> {
    let offsets = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref());
    if !new_timens {
        if offsets.is_some_and(|o| !o.is_empty()) {
            bail!("linux.timeOffsets: needs a new time namespace in linux.namespaces");
        }
        return Ok(None);
    }
    let mut text = String::new();
    let mut clocks: Vec<_> = offsets.into_iter().flatten().collect();
    clocks.sort_by(|a, b| a.0.cmp(b.0));
    for (clock, off) in clocks {
        if clock != "monotonic" && clock != "boottime" {
            bail!("linux.timeOffsets.{clock}: only monotonic and boottime have offsets");
        }
        let nanos = off.nanosecs().unwrap_or(0);
        if nanos >= 1_000_000_000 {
            bail!("linux.timeOffsets.{clock}.nanosecs: must be below 1000000000");
        }
        text.push_str(&format!("{clock} {} {nanos}\n", off.secs().unwrap_or(0)));
    }
    let own = File::open("/proc/self/ns/time")
        .context("linux.namespaces: time namespaces are not supported by this kernel")?
        .into();
    Ok(Some(NewTimeNs { own, offsets: text }))
}

impl NewTimeNs {
    /// Parent, just before the clone: the next child is born in a new time namespace.
    pub fn prepare_for_child(&self) -> Result<()> {
        unshare(CLONE_NEWTIME).context("unshare time namespace")?;
        if !self.offsets.is_empty() {
            std::fs::write("/proc/self/timens_offsets", &self.offsets)
                .context("linux.timeOffsets: write timens_offsets")?;
        }
        Ok(())
    }

    /// Parent, just after the clone (or its failure): back to our own time namespace.
    pub fn restore(&self) -> Result<()> {
        setns(&self.own, CLONE_NEWTIME).context("return to the runtime's time namespace")
    }
}
