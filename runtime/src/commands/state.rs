//! `state ID`: the OCI state JSON, indented and without trailing newline, exactly like runc.

use anyhow::Result;

use crate::cli::{Global, IdArg};
use crate::container::Container;

pub fn run(g: &Global, a: &IdArg) -> Result<()> {
    super::naming(&a.id, state(g, a))
}

fn state(g: &Global, a: &IdArg) -> Result<()> {
    let c = Container::load(&g.root, &a.id)?;
    let text = serde_json::to_string_pretty(&c.oci_state())?;
    print!("{text}");
    Ok(())
}
