//! `kill [--all] ID [SIGNAL]`: signal the init, or every process of the container's cgroup.

use std::str::FromStr;

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;

use crate::cli::{Global, KillArgs};
use crate::container::Container;
use crate::container::status::Status;
use crate::linux::sys;

pub fn run(g: &Global, a: &KillArgs) -> Result<()> {
    super::naming(&a.id, kill(g, a))
}

fn kill(g: &Global, a: &KillArgs) -> Result<()> {
    let c = Container::lock(&g.root, &a.id)?;
    let signo = parse_signal(a.signal.as_deref().unwrap_or("SIGTERM"))?;
    if a.all {
        let sig = Signal::try_from(signo)
            .map_err(|_| anyhow::anyhow!("kill --all: signal {signo} is not supported"))?;
        return c.cgroup()?.kill_all(sig).context("kill --all");
    }
    if c.status() == Status::Stopped {
        bail!("container not running");
    }
    sys::send_signal(c.pid(), signo)
        .with_context(|| format!("kill {} with signal {signo}", c.pid()))
}

/// `KILL`, `SIGKILL`, `kill`, `9`, `RTMIN+3` -> signal number (runc accepts the same forms).
pub fn parse_signal(s: &str) -> Result<i32> {
    let unknown = || anyhow::anyhow!("unknown signal {s:?}");
    if let Ok(n) = s.parse::<i32>() {
        if n < 1 || n > libc::SIGRTMAX() {
            return Err(unknown());
        }
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if let Ok(sig) = Signal::from_str(&name) {
        return Ok(sig as i32);
    }
    let rt = |base: i32, off: &str, sign: i32| -> Option<i32> {
        let n = if off.is_empty() {
            0
        } else {
            off.parse::<i32>().ok()?
        };
        let v = base + sign * n;
        (libc::SIGRTMIN()..=libc::SIGRTMAX())
            .contains(&v)
            .then_some(v)
    };
    let v = if let Some(rest) = name.strip_prefix("SIGRTMIN") {
        rt(libc::SIGRTMIN(), rest.trim_start_matches('+'), 1)
    } else if let Some(rest) = name.strip_prefix("SIGRTMAX") {
        rt(libc::SIGRTMAX(), rest.trim_start_matches('-'), -1)
    } else {
        None
    };
    v.ok_or_else(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_signal("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("kill").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("term").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert_eq!(parse_signal("SIGRTMAX").unwrap(), libc::SIGRTMAX());
    }

    #[test]
    fn bad_signals_are_named() {
        for bad in ["FOO", "9x", "0", "-1", "65", "", "RTMIN+99"] {
            let e = parse_signal(bad).unwrap_err().to_string();
            assert_eq!(e, format!("unknown signal {bad:?}"));
        }
    }
}
