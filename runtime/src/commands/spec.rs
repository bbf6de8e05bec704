//! `spec`: write the default config.json (what `runc spec` writes) into the bundle directory.

use std::io::Write;

use anyhow::{Context, Result, bail};

use crate::cli::SpecArgs;

pub fn run(a: &SpecArgs) -> Result<()> {
    if !a.bundle.is_dir() {
        bail!("bundle {}: no such directory", a.bundle.display());
    }
    let path = a.bundle.join("config.json");
    let text = bundle_tools::spec::to_pretty_json(&bundle_tools::spec::default_spec());
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("File {} exists. Remove it first", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
    };
    f.write_all(text.as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
