//! `linux.resources` written as cgroup v1 files into one hierarchy's directory.
//!
//! Used where the container's cgroup path differs between hierarchies (a relative
//! cgroupsPath and a runtime that sits in different cgroups per hierarchy): libcgroups' v1
//! manager takes one path for every hierarchy and always writes device rules, so there each
//! hierarchy gets only its controllers' files, from here. The files and their order follow
//! runc's fs driver (memory: the limit before memsw, retried the other way round when
//! lowering).

use std::fs;
use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::CgroupError;
use super::resources::describe_io;

/// Write the part of `res` served by `controllers` into `dir`.
pub(super) fn apply(
    dir: &Path,
    controllers: &[String],
    res: &LinuxResources,
) -> Result<(), CgroupError> {
    let has = |c: &str| controllers.iter().any(|x| x == c);
    let w = |file: &str, value: String| write(dir, file, &value);
    if has("memory") {
        if let Some(m) = res.memory() {
            if let Some(r) = m.reservation() {
                w("memory.soft_limit_in_bytes", r.to_string())?;
            }
            match (m.limit(), m.swap()) {
                (Some(limit), Some(swap)) => {
                    // Raising: limit first; lowering: memsw first. Try one, then the other.
                    if w("memory.limit_in_bytes", limit.to_string()).is_err() {
                        w("memory.memsw.limit_in_bytes", swap.to_string())?;
                        w("memory.limit_in_bytes", limit.to_string())?;
                    } else {
                        w("memory.memsw.limit_in_bytes", swap.to_string())?;
                    }
                }
                (Some(limit), None) => w("memory.limit_in_bytes", limit.to_string())?,
                (None, Some(swap)) => w("memory.memsw.limit_in_bytes", swap.to_string())?,
                (None, None) => {}
            }
            // Kernels since 5.16 accept and ignore memory.kmem.limit_in_bytes.
            if let Some(k) = m.kernel() {
                w("memory.kmem.limit_in_bytes", k.to_string())?;
            }
            if let Some(k) = m.kernel_tcp() {
                w("memory.kmem.tcp.limit_in_bytes", k.to_string())?;
            }
            if let Some(s) = m.swappiness() {
                w("memory.swappiness", s.to_string())?;
            }
            if m.disable_oom_killer() == Some(true) {
                w("memory.oom_control", "1".into())?;
            }
        }
    }
    if let Some(cpu) = res.cpu() {
        if has("cpu") {
            if let Some(v) = cpu.shares() {
                w("cpu.shares", v.to_string())?;
            }
            if let Some(v) = cpu.period() {
                w("cpu.cfs_period_us", v.to_string())?;
            }
            if let Some(v) = cpu.quota() {
                w("cpu.cfs_quota_us", v.to_string())?;
            }
            if let Some(v) = cpu.realtime_period() {
                w("cpu.rt_period_us", v.to_string())?;
            }
            if let Some(v) = cpu.realtime_runtime() {
                w("cpu.rt_runtime_us", v.to_string())?;
            }
        }
        if has("cpuset") {
            if let Some(v) = cpu.cpus().as_deref().filter(|v| !v.is_empty()) {
                w("cpuset.cpus", v.to_string())?;
            }
            if let Some(v) = cpu.mems().as_deref().filter(|v| !v.is_empty()) {
                w("cpuset.mems", v.to_string())?;
            }
        }
    }
    if has("pids") {
        if let Some(p) = res.pids() {
            let limit = p.limit();
            w(
                "pids.max",
                if limit > 0 {
                    limit.to_string()
                } else {
                    "max".into()
                },
            )?;
        }
    }
    if has("blkio") {
        if let Some(b) = res.block_io() {
            if let Some(v) = b.weight() {
                w("blkio.weight", v.to_string())?;
            }
            if let Some(v) = b.leaf_weight() {
                w("blkio.leaf_weight", v.to_string())?;
            }
            for d in b.weight_device().iter().flatten() {
                if let Some(v) = d.weight() {
                    w(
                        "blkio.weight_device",
                        format!("{}:{} {v}", d.major(), d.minor()),
                    )?;
                }
                if let Some(v) = d.leaf_weight() {
                    w(
                        "blkio.leaf_weight_device",
                        format!("{}:{} {v}", d.major(), d.minor()),
                    )?;
                }
            }
            for (file, list) in [
                (
                    "blkio.throttle.read_bps_device",
                    b.throttle_read_bps_device(),
                ),
                (
                    "blkio.throttle.write_bps_device",
                    b.throttle_write_bps_device(),
                ),
                (
                    "blkio.throttle.read_iops_device",
                    b.throttle_read_iops_device(),
                ),
                (
                    "blkio.throttle.write_iops_device",
                    b.throttle_write_iops_device(),
                ),
            ] {
                for d in list.iter().flatten() {
                    w(file, format!("{}:{} {}", d.major(), d.minor(), d.rate()))?;
                }
            }
        }
    }
    if has("hugetlb") {
        for h in res.hugepage_limits().iter().flatten() {
            w(
                &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
                h.limit().to_string(),
            )?;
        }
    }
    if let Some(n) = res.network() {
        if has("net_cls") {
            if let Some(id) = n.class_id() {
                w("net_cls.classid", id.to_string())?;
            }
        }
        if has("net_prio") {
            for p in n.priorities().iter().flatten() {
                w(
                    "net_prio.ifpriomap",
                    format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
    }
    Ok(())
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    fs::write(dir.join(file), value).map_err(|e| CgroupError::Controller {
        controller: super::resources::controller_of(file),
        detail: format!("{file}={value}: {}", describe_io(&e)),
    })
}
