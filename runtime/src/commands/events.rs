//! `events [--stats] [--interval 5s] ID`: runc's event stream on stdout, one JSON object a
//! line: `{"type":"stats","id":..,"data":{cpu,memory,pids,blkio,hugetlb,...}}` every interval
//! (once with `--stats`), and `{"type":"oom","id":..}` when the kernel's OOM killer acts in
//! the container (its memory controller's oom_kill counter grows). Ends when the container
//! stops.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use libcgroups::stats::{BlkioDeviceStat, MemoryData, Stats};
use serde_json::{Value, json};

use crate::cli::{EventsArgs, Global};
use crate::container::Container;
use crate::container::status::Status;

/// How often the OOM counter is read between two stats.
const OOM_POLL: Duration = Duration::from_millis(100);

pub fn run(g: &Global, a: &EventsArgs) -> Result<()> {
    super::naming(&a.id, events(g, a))
}

fn events(g: &Global, a: &EventsArgs) -> Result<()> {
    let c = Container::load(&g.root, &a.id)?;
    if c.status() == Status::Stopped {
        bail!("container not running");
    }
    let cgroup = c.cgroup()?;
    let mut out = std::io::stdout().lock();
    if a.stats {
        writeln!(out, "{}", stats_event(&a.id, &cgroup.stats()?))?;
        return Ok(());
    }
    let interval = parse_interval(&a.interval)?;
    let mut ooms = cgroup.oom_kills();
    let mut next_stats = Instant::now();
    loop {
        if c.status() == Status::Stopped {
            return Ok(());
        }
        let now = cgroup.oom_kills();
        if now > ooms {
            writeln!(out, "{}", json!({"type": "oom", "id": a.id}))?;
            out.flush()?;
        }
        ooms = now;
        if Instant::now() >= next_stats {
            if let Ok(s) = cgroup.stats() {
                writeln!(out, "{}", stats_event(&a.id, &s))?;
                out.flush()?;
            }
            next_stats = Instant::now() + interval;
        }
        std::thread::sleep(OOM_POLL.min(interval));
    }
}

/// `5s`, `500ms`, `1m` (Go durations as runc takes them), or plain seconds.
fn parse_interval(s: &str) -> Result<Duration> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("--interval {s:?}: not a duration"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("--interval {s:?}: unknown unit {unit:?}"),
    };
    if secs <= 0.0 {
        bail!("--interval {s:?}: must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// runc's `types.Event` with `types.Stats` as data.
fn stats_event(id: &str, s: &Stats) -> Value {
    let mem = |m: &MemoryData| json!({"limit": m.limit, "usage": m.usage, "max": m.max_usage, "failcnt": m.fail_count});
    let blkio = |v: &[BlkioDeviceStat]| -> Vec<Value> {
        v.iter()
            .map(|d| json!({"major": d.major, "minor": d.minor, "op": d.op_type.clone().unwrap_or_default(), "value": d.value}))
            .collect()
    };
    let hugetlb: HashMap<&String, Value> = s
        .hugetlb
        .iter()
        .map(|(k, h)| {
            (
                k,
                json!({"usage": h.usage, "max": h.max_usage, "failcnt": h.fail_count}),
            )
        })
        .collect();
    json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": {
                "usage": {
                    "total": s.cpu.usage.usage_total,
                    "percpu": s.cpu.usage.per_core_usage_total,
                    "percpu_kernel": s.cpu.usage.per_core_usage_kernel,
                    "percpu_user": s.cpu.usage.per_core_usage_user,
                    "kernel": s.cpu.usage.usage_kernel,
                    "user": s.cpu.usage.usage_user,
                },
                "throttling": {
                    "periods": s.cpu.throttling.periods,
                    "throttled_periods": s.cpu.throttling.throttled_periods,
                    "throttled_time": s.cpu.throttling.throttled_time,
                },
            },
            "memory": {
                "cache": s.memory.cache,
                "usage": mem(&s.memory.memory),
                "swap": mem(&s.memory.memswap),
                "kernel": mem(&s.memory.kernel),
                "kernelTCP": mem(&s.memory.kernel_tcp),
                "raw": s.memory.stats,
            },
            "pids": {"current": s.pids.current, "limit": s.pids.limit},
            "blkio": {
                "ioServiceBytesRecursive": blkio(&s.blkio.service_bytes),
                "ioServicedRecursive": blkio(&s.blkio.serviced),
                "ioQueueRecursive": blkio(&s.blkio.queued),
                "ioServiceTimeRecursive": blkio(&s.blkio.service_time),
                "ioWaitTimeRecursive": blkio(&s.blkio.wait_time),
                "ioMergedRecursive": blkio(&s.blkio.merged),
                "ioTimeRecursive": blkio(&s.blkio.time),
                "sectorsRecursive": blkio(&s.blkio.sectors),
            },
            "hugetlb": hugetlb,
            "intel_rdt": {},
            "network_interfaces": null,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_like_go_durations() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("5y").is_err());
    }

    #[test]
    fn stats_have_runcs_shape() {
        let v = stats_event("c1", &Stats::default());
        assert_eq!(v["type"], "stats");
        assert_eq!(v["id"], "c1");
        for k in ["cpu", "memory", "pids", "blkio", "hugetlb"] {
            assert!(v["data"].get(k).is_some(), "{k}");
        }
        assert!(v["data"]["cpu"]["usage"]["total"].is_u64());
    }
}
