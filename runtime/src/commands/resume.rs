//! `resume ID`: thaw a paused container.

use anyhow::{Context, Result, bail};

use crate::cli::{Global, IdArg};
use crate::container::Container;
use crate::container::status::Status;

pub fn run(g: &Global, a: &IdArg) -> Result<()> {
    super::naming(&a.id, resume(g, a))
}

fn resume(g: &Global, a: &IdArg) -> Result<()> {
    let mut c = Container::lock(&g.root, &a.id)?;
    if c.status() != Status::Paused {
        bail!("container not paused");
    }
    c.cgroup()?.thaw().context("resume")?;
    c.state.paused = false;
    c.state.save(&c.dir)
}
