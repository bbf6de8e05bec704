//! `update [--resources FILE|-] [--memory ...] ID`: new limits for a running container, as
//! runc takes them: a runtime-spec `linux.resources` document, and single-value flags on top.
//! Values the kernel refuses give one line naming the file and value; the container runs on.

use std::io::Read;

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxPids, LinuxResources};

use crate::cli::{Global, UpdateArgs};
use crate::container::Container;
use crate::container::status::Status;

pub fn run(g: &Global, a: &UpdateArgs) -> Result<()> {
    super::naming(&a.id, update(g, a))
}

fn update(g: &Global, a: &UpdateArgs) -> Result<()> {
    let c = Container::lock(&g.root, &a.id)?;
    if matches!(c.status(), Status::Stopped | Status::Creating) {
        bail!("container not running");
    }
    let res = resources(a)?;
    Ok(c.cgroup()?.update(&res)?)
}

/// The document (if any) with the flags applied on top.
fn resources(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut res = match &a.resources {
        None => LinuxResources::default(),
        Some(path) => {
            let mut text = String::new();
            if path.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("--resources -: read standard input")?;
            } else {
                text = std::fs::read_to_string(path)
                    .with_context(|| format!("--resources {}", path.display()))?;
            }
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "--resources {}: not a linux.resources document",
                    path.display()
                )
            })?
        }
    };
    let bytes = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| parse_bytes(s).with_context(|| format!("--{flag} {s:?}")))
            .transpose()
    };
    let (limit, reservation, swap) = (
        bytes("memory", &a.memory)?,
        bytes("memory-reservation", &a.memory_reservation)?,
        bytes("memory-swap", &a.memory_swap)?,
    );
    if limit.is_some() || reservation.is_some() || swap.is_some() {
        let mut m = res.memory().unwrap_or_default();
        if limit.is_some() {
            m.set_limit(limit);
        }
        if reservation.is_some() {
            m.set_reservation(reservation);
        }
        if swap.is_some() {
            m.set_swap(swap);
        }
        res.set_memory(Some(m));
    }
    let cpu_set = a.cpu_share.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_period.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some()
        || a.cpu_idle.is_some();
    if cpu_set {
        let mut cpu = res.cpu().clone().unwrap_or_else(LinuxCpu::default);
        if let Some(v) = a.cpu_share {
            cpu.set_shares(Some(v));
        }
        if let Some(v) = a.cpu_quota {
            cpu.set_quota(Some(v));
        }
        if let Some(v) = a.cpu_period {
            cpu.set_period(Some(v));
        }
        if let Some(v) = a.cpu_rt_period {
            cpu.set_realtime_period(Some(v));
        }
        if let Some(v) = a.cpu_rt_runtime {
            cpu.set_realtime_runtime(Some(v));
        }
        if let Some(v) = &a.cpuset_cpus {
            cpu.set_cpus(Some(v.clone()));
        }
        if let Some(v) = &a.cpuset_mems {
            cpu.set_mems(Some(v.clone()));
        }
        if let Some(v) = a.cpu_idle {
            cpu.set_idle(Some(v));
        }
        res.set_cpu(Some(cpu));
    }
    if let Some(v) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(v);
        res.set_pids(Some(p));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = res.block_io().clone().unwrap_or_else(LinuxBlockIo::default);
        b.set_weight(Some(w));
        res.set_block_io(Some(b));
    }
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        bail!("--l3-cache-schema/--mem-bw-schema: Intel RDT is not supported");
    }
    Ok(res)
}

/// `1024`, `64k`, `64m`, `1g`, `1.5g` (binary units, as docker's and runc's), or `-1`.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| *v >= 0.0)
        .context("not a size")?;
    Ok((v * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_runcs() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("64MB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-5").is_err());
    }
}
