//! `process.scheduler` (sched_setattr) and `process.ioPriority` (ioprio_set), set by the init
//! for itself before it drops its capabilities (real-time policies need CAP_SYS_NICE); the
//! program inherits both across execve. Values are checked in `create` with field names.

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxSchedulerFlag, LinuxSchedulerPolicy, Process, Scheduler,
};

use crate::linux::sys::{self, SchedAttr};

/// In `create`: refuse values the kernel would answer with a bare EINVAL.
pub fn check(process: &Process) -> Result<()> {
    if let Some(s) = process.scheduler() {
        attr(s)?;
    }
    if let Some(io) = process.io_priority() {
        ioprio(io)?;
    }
    Ok(())
}

/// In the init.
pub fn apply(process: &Process) -> Result<()> {
    if let Some(s) = process.scheduler() {
        sys::sched_setattr(&attr(s)?)
            .with_context(|| format!("process.scheduler: sched_setattr {}", s.policy()))?;
    }
    if let Some(io) = process.io_priority() {
        let (class, level) = ioprio(io)?;
        sys::ioprio_set(class, level).context("process.ioPriority: ioprio_set")?;
    }
    Ok(())
}

fn attr(s: &Scheduler) -> Result<SchedAttr> {
    use LinuxSchedulerPolicy as P;
    let policy = match s.policy() {
        P::SchedOther => libc::SCHED_OTHER,
        P::SchedFifo => libc::SCHED_FIFO,
        P::SchedRr => libc::SCHED_RR,
        P::SchedBatch => libc::SCHED_BATCH,
        P::SchedIso => 4,
        P::SchedIdle => libc::SCHED_IDLE,
        P::SchedDeadline => 6,
    } as u32;
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        bail!("process.scheduler.nice: {nice} is not within -20..19");
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(s.policy(), P::SchedFifo | P::SchedRr);
    if realtime && !(1..=99).contains(&priority) {
        bail!(
            "process.scheduler.priority: {} needs a priority within 1..99",
            s.policy()
        );
    }
    if !realtime && priority != 0 {
        bail!("process.scheduler.priority: must be 0 for {}", s.policy());
    }
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    Ok(SchedAttr {
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    })
}

fn ioprio(io: &LinuxIOPriority) -> Result<(u32, u32)> {
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&io.priority()) {
        bail!(
            "process.ioPriority.priority: {} is not within 0..7",
            io.priority()
        );
    }
    Ok((class, io.priority() as u32))
}
