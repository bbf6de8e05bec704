//! `ps [--format table|json] ID [PS-ARGS...]`: the container's processes, as runc prints them:
//! a JSON array of host pids, or the host's `ps` (default `-ef`) limited to the lines whose
//! PID column is one of them.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cli::{Global, ListFormat, PsArgs};
use crate::container::Container;
use crate::container::status::Status;

pub fn run(g: &Global, a: &PsArgs) -> Result<()> {
    super::naming(&a.id, ps(g, a))
}

fn ps(g: &Global, a: &PsArgs) -> Result<()> {
    let c = Container::load(&g.root, &a.id)?;
    if c.status() == Status::Stopped {
        bail!("container not running");
    }
    let pids: Vec<i32> = c.cgroup()?.try_pids()?.iter().map(|p| p.as_raw()).collect();
    if a.format == ListFormat::Json {
        if !a.ps_args.is_empty() {
            bail!("ps arguments cannot be used with --format json");
        }
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<&str> = if a.ps_args.is_empty() {
        vec!["-ef"]
    } else {
        a.ps_args.iter().map(String::as_str).collect()
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .context("run ps on the host")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    print!("{}", filter(&String::from_utf8_lossy(&out.stdout), &pids)?);
    Ok(())
}

/// The header and the lines whose PID column is one of `pids`.
fn filter(table: &str, pids: &[i32]) -> Result<String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_containers_lines_are_kept() {
        let table = "UID PID PPID C STIME TTY TIME CMD\n\
                     root 1 0 0 10:00 ? 00:00:01 /sbin/init\n\
                     root 42 1 0 10:00 ? 00:00:00 sleep 100\n\
                     root 43 42 0 10:00 ? 00:00:00 sh\n";
        assert_eq!(
            filter(table, &[42, 43]).unwrap(),
            "UID PID PPID C STIME TTY TIME CMD\n\
             root 42 1 0 10:00 ? 00:00:00 sleep 100\n\
             root 43 42 0 10:00 ? 00:00:00 sh\n"
        );
        assert!(filter("USER COMMAND\nx y\n", &[1]).is_err());
    }
}
