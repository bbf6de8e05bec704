//! `pause ID`: freeze every process of a running container (v1 freezer, v2 `cgroup.freeze`);
//! its status is `paused` until `resume`.

use anyhow::{Context, Result, bail};

use crate::cli::{Global, IdArg};
use crate::container::Container;
use crate::container::status::Status;

pub fn run(g: &Global, a: &IdArg) -> Result<()> {
    super::naming(&a.id, pause(g, a))
}

fn pause(g: &Global, a: &IdArg) -> Result<()> {
    let mut c = Container::lock(&g.root, &a.id)?;
    match c.status() {
        Status::Running => {}
        Status::Paused => bail!("container already paused"),
        _ => bail!("container not running"),
    }
    c.cgroup()?.freeze().context("pause")?;
    c.state.paused = true;
    c.state.save(&c.dir)
}
