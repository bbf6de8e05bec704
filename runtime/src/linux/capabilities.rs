//! `process.capabilities`: the five sets, applied in the only order the kernel accepts.
//!
//! - [`drop_bounding`] runs before the uid switch (it needs CAP_SETPCAP);
//! - the uid switch keeps the permitted set thanks to PR_SET_KEEPCAPS (see `linux::user`);
//! - [`apply`] then sets inheritable first (it may only grow within the current permitted),
//!   effective, permitted, and finally ambient (which needs each cap in permitted and
//!   inheritable).

use std::collections::HashSet;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

/// Convert one set from the spec; `set` names the field for errors.
pub fn to_caps(set: &str, caps: &Capabilities) -> Result<CapsHashSet> {
    caps.iter()
        .map(|c| {
            let name = format!("CAP_{c}");
            Capability::from_str(&name).map_err(|_| {
                anyhow::anyhow!("process.capabilities.{set}: unknown capability {name}")
            })
        })
        .collect()
}

/// Remove from the bounding set everything not listed in `capabilities.bounding`.
pub fn drop_bounding(c: &LinuxCapabilities) -> Result<()> {
    let keep = to_caps("bounding", c.bounding().as_ref().unwrap_or(&HashSet::new()))?;
    for cap in caps::runtime::thread_all_supported() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .with_context(|| format!("drop {cap} from the bounding set"))?;
        }
    }
    Ok(())
}

/// Set inheritable, effective, permitted and ambient exactly as configured.
pub fn apply(c: &LinuxCapabilities) -> Result<()> {
    let empty = HashSet::new();
    let inheritable = to_caps("inheritable", c.inheritable().as_ref().unwrap_or(&empty))?;
    let effective = to_caps("effective", c.effective().as_ref().unwrap_or(&empty))?;
    let permitted = to_caps("permitted", c.permitted().as_ref().unwrap_or(&empty))?;
    let ambient = to_caps("ambient", c.ambient().as_ref().unwrap_or(&empty))?;
    if let Some(cap) = effective.difference(&permitted).next() {
        bail!("process.capabilities.effective: {cap} is not in the permitted set");
    }
    caps::set(None, CapSet::Inheritable, &inheritable).context("set inheritable capabilities")?;
    caps::set(None, CapSet::Effective, &effective).context("set effective capabilities")?;
    caps::set(None, CapSet::Permitted, &permitted).context("set permitted capabilities")?;
    caps::clear(None, CapSet::Ambient).context("clear ambient capabilities")?;
    for cap in ambient {
        if permitted.contains(&cap) && inheritable.contains(&cap) {
            caps::raise(None, CapSet::Ambient, cap)
                .with_context(|| format!("raise ambient {cap}"))?;
        }
        // Like runc: an ambient cap the other sets do not allow is silently not raised.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_names_map_to_caps() {
        let set: Capabilities =
            serde_json::from_str(r#"["CAP_KILL","CAP_NET_BIND_SERVICE"]"#).unwrap();
        let caps = to_caps("bounding", &set).unwrap();
        assert!(caps.contains(&Capability::CAP_KILL));
        assert!(caps.contains(&Capability::CAP_NET_BIND_SERVICE));
        assert_eq!(caps.len(), 2);
    }
}
