//! `linux.seccomp`: the profile compiled to a BPF program in `create` (libseccomp, before the
//! clone, so the init only makes one `seccomp(2)` call), loaded by the init.
//!
//! runc's semantics, which docker's and podman's profiles are written for:
//! - unknown syscall names are skipped (profiles list syscalls a kernel or libseccomp may
//!   lack); a rule whose action is the default action is skipped;
//! - `errnoRet` defaults to EPERM for `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE`;
//! - several conditions on *different* arguments are ANDed in one rule; several on the *same*
//!   argument become one rule each (ORed), as runc does for docker's `personality` entries;
//! - `SCMP_CMP_MASKED_EQ` takes the mask from `value` and the datum from `valueTwo`.
//!
//! Where the init loads it (`linux::init`): as late as possible, right before execve, when
//! `noNewPrivileges` is set; without it the kernel only accepts a filter from a process with
//! CAP_SYS_ADMIN, so it goes in before the capabilities are dropped (runc does the same). A
//! profile with `SCMP_ACT_NOTIFY` is loaded before the init reports ready, so `create` can
//! hand the listener descriptor to `listenerPath`.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use crate::linux::{memfd, seccomp_cache, sys};

/// A compiled profile, ready for `seccomp(SECCOMP_SET_MODE_FILTER)`.
#[derive(Debug, Clone)]
pub struct Filter {
    /// `struct sock_filter` instructions.
    pub program: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*`, `NEW_LISTENER` included when a rule notifies.
    pub flags: libc::c_ulong,
    /// Some rule uses `SCMP_ACT_NOTIFY`: loading returns a listener descriptor.
    pub notifies: bool,
}

/// Compile `profile` (in `create`, before any side effect: every refusal is one line naming
/// the field). With `cache`, a program compiled before for the same profile on this host is
/// reused (see linux::seccomp_cache).
pub fn compile(profile: &LinuxSeccomp, cache: Option<&Path>) -> Result<Filter> {
    let notifies = profile.default_action() == LinuxSeccompAction::ScmpActNotify
        || profile
            .syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify);
    if notifies && profile.listener_path().is_none() {
        bail!("linux.seccomp.listenerPath: required by SCMP_ACT_NOTIFY");
    }
    let mut flags = 0;
    for f in profile.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
        };
    }
    if notifies {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }
    // The kernel says EFAULT for a NULL program when it knows every flag, EINVAL otherwise.
    if let Err(e) = sys::seccomp_check_flags(flags)
        && e.raw_os_error() == Some(libc::EINVAL)
    {
        bail!(
            "linux.seccomp.flags: not supported by this kernel, or not in this combination \
             (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs an SCMP_ACT_NOTIFY rule)"
        );
    }
    let program = match cache {
        Some(dir) => seccomp_cache::get_or_build(dir, profile, build)?,
        None => build(profile)?,
    };
    Ok(Filter {
        program,
        flags,
        notifies,
    })
}

/// The BPF program of `profile`, by libseccomp.
fn build(profile: &LinuxSeccomp) -> Result<Vec<libc::sock_filter>> {
    let default = action(
        profile.default_action(),
        profile.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    let mut ctx = ScmpFilterContext::new(default).context("linux.seccomp: libseccomp init")?;
    // Loaded by us with seccomp(2): libseccomp must not set no_new_privs on its own.
    ctx.set_ctl_nnp(false)
        .context("linux.seccomp: libseccomp attribute")?;
    for (i, arch) in profile.architectures().iter().flatten().enumerate() {
        let name = serde_json::to_value(arch).expect("enum serializes");
        let name = name.as_str().unwrap_or_default();
        let arch = ScmpArch::from_str(name)
            .map_err(|_| anyhow::anyhow!("linux.seccomp.architectures[{i}]: unknown {name}"))?;
        ctx.add_arch(arch)
            .with_context(|| format!("linux.seccomp.architectures[{i}]: {name}"))?;
    }
    for (i, rule) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(rule.action(), rule.errno_ret(), &format!("{field}.action"))?;
        if act == default {
            continue;
        }
        add_rule(&mut ctx, rule, act, &field)?;
    }
    export(&ctx)
}

fn action(a: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<ScmpAction> {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    let act = match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    };
    if !(0..=u16::MAX as i32).contains(&errno) {
        bail!("{field}: errnoRet {errno} out of range");
    }
    if !sys::seccomp_action_available(kernel_action(a)) {
        bail!("{field}: {a} is not supported by this kernel");
    }
    Ok(act)
}

/// The kernel's `SECCOMP_RET_*` for an action (to ask whether the kernel has it).
fn kernel_action(a: LinuxSeccompAction) -> u32 {
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            libc::SECCOMP_RET_KILL_THREAD
        }
        LinuxSeccompAction::ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => libc::SECCOMP_RET_TRAP,
        LinuxSeccompAction::ScmpActNotify => libc::SECCOMP_RET_USER_NOTIF,
        LinuxSeccompAction::ScmpActErrno => libc::SECCOMP_RET_ERRNO,
        LinuxSeccompAction::ScmpActTrace => libc::SECCOMP_RET_TRACE,
        LinuxSeccompAction::ScmpActLog => libc::SECCOMP_RET_LOG,
        LinuxSeccompAction::ScmpActAllow => libc::SECCOMP_RET_ALLOW,
    }
}

fn add_rule(
    ctx: &mut ScmpFilterContext,
    rule: &LinuxSyscall,
    act: ScmpAction,
    field: &str,
) -> Result<()> {
    let conditions: Vec<ScmpArgCompare> = rule
        .args()
        .iter()
        .flatten()
        .enumerate()
        .map(|(j, a)| condition(a, &format!("{field}.args[{j}]")))
        .collect::<Result<_>>()?;
    let mut per_index = [0usize; 6];
    for a in rule.args().iter().flatten() {
        per_index[a.index()] += 1;
    }
    let same_argument_twice = per_index.iter().any(|&n| n > 1);
    for name in rule.names() {
        let Ok(call) = ScmpSyscall::from_name(name) else {
            // Not known to this libseccomp/kernel: skipped, as runc does.
            continue;
        };
        let added = if conditions.is_empty() {
            ctx.add_rule(act, call).map(drop)
        } else if same_argument_twice {
            conditions
                .iter()
                .try_for_each(|c| ctx.add_rule_conditional(act, call, &[*c]).map(drop))
        } else {
            ctx.add_rule_conditional(act, call, &conditions).map(drop)
        };
        added.with_context(|| format!("{field}: {name}"))?;
    }
    Ok(())
}

fn condition(a: &LinuxSeccompArg, field: &str) -> Result<ScmpArgCompare> {
    if a.index() >= 6 {
        bail!("{field}.index: {} (a syscall has 6 arguments)", a.index());
    }
    let (op, datum) = match a.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, a.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, a.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, a.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, a.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, a.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, a.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(a.value()),
            a.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(a.index() as u32, op, datum))
}

/// The filter as raw `struct sock_filter`s (libseccomp 2.5 exports to a descriptor only).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let mut f = memfd::create(c"seccomp-bpf")?;
    ctx.export_bpf(f.as_fd())
        .context("linux.seccomp: export the filter")?;
    f.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(seccomp_cache::decode(&bytes))
}

/// What `features` reports: every action the kernel knows, every operator, the architectures
/// libseccomp knows, and the filter flags (all known; supported when the kernel takes them).
pub fn features() -> serde_json::Value {
    use LinuxSeccompAction as A;
    let actions: Vec<String> = [
        A::ScmpActAllow,
        A::ScmpActErrno,
        A::ScmpActKill,
        A::ScmpActKillProcess,
        A::ScmpActKillThread,
        A::ScmpActLog,
        A::ScmpActNotify,
        A::ScmpActTrace,
        A::ScmpActTrap,
    ]
    .into_iter()
    .filter(|a| sys::seccomp_action_available(kernel_action(*a)))
    .map(|a| a.to_string())
    .collect();
    // Known to this libseccomp: it accepts the architecture in a filter.
    let archs: Vec<&str> = match ScmpFilterContext::new(ScmpAction::Allow) {
        Ok(mut ctx) => ARCHS
            .iter()
            .copied()
            .filter(|a| ScmpArch::from_str(a).is_ok_and(|arch| ctx.add_arch(arch).is_ok()))
            .collect(),
        Err(_) => Vec::new(),
    };
    let flags = [
        ("SECCOMP_FILTER_FLAG_TSYNC", libc::SECCOMP_FILTER_FLAG_TSYNC),
        ("SECCOMP_FILTER_FLAG_LOG", libc::SECCOMP_FILTER_FLAG_LOG),
        (
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        ),
        (
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
            libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        ),
    ];
    let known: Vec<&str> = flags.iter().map(|(n, _)| *n).collect();
    let supported: Vec<&str> = flags
        .iter()
        .filter(|(_, f)| {
            // WAIT_KILLABLE_RECV is only valid together with a notify listener.
            let with = if *f == libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV {
                *f | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
            } else {
                *f
            };
            !matches!(sys::seccomp_check_flags(with), Err(e) if e.raw_os_error() == Some(libc::EINVAL))
        })
        .map(|(n, _)| *n)
        .collect();
    serde_json::json!({
        "enabled": true,
        "actions": actions,
        "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                      "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
        "archs": archs,
        "knownFlags": known,
        "supportedFlags": supported,
    })
}

/// The architecture names of the runtime spec (those libseccomp knows are reported).
const ARCHS: &[&str] = &[
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];

/// Hand a notification descriptor to the agent at `listenerPath`, with the container
/// process state runc sends (runtime-spec config-linux.md "seccomp").
pub fn hand_listener(
    profile: &LinuxSeccomp,
    state: &crate::linux::hooks::HookState<'_>,
    pid: nix::unistd::Pid,
    listener: &OwnedFd,
) -> Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    let path = profile
        .listener_path()
        .as_ref()
        .context("linux.seccomp.listenerPath")?;
    let message = serde_json::json!({
        "ociVersion": crate::container::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid.as_raw(),
        "metadata": profile.listener_metadata().clone().unwrap_or_default(),
        "state": state,
    });
    let sock = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("linux.seccomp.listenerPath {}", path.display()))?;
    let body = serde_json::to_vec(&message).expect("serializes");
    let fds = [listener.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[std::io::IoSlice::new(&body)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .with_context(|| format!("linux.seccomp.listenerPath {}: send", path.display()))?;
    Ok(())
}

/// In the init: install the filter. Returns the listener descriptor when the profile notifies.
pub fn load(filter: &Filter) -> Result<Option<OwnedFd>> {
    sys::seccomp_set_filter(filter.flags, &filter.program)
        .context("seccomp(SECCOMP_SET_MODE_FILTER)")
        .map(|fd| if filter.notifies { fd } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_profile_compiles_and_unknown_syscalls_are_skipped() {
        let f = compile(
            &profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "syscalls":[{"names":["mkdir","no_such_syscall_anywhere"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                            {"names":["getpid"],"action":"SCMP_ACT_ALLOW"},
                            {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[
                                {"index":0,"value":0,"op":"SCMP_CMP_EQ"},
                                {"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
                            {"names":["mmap"],"action":"SCMP_ACT_LOG","args":[
                                {"index":2,"value":4,"valueTwo":4,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
            ),
            None,
        )
        .unwrap();
        assert!(!f.program.is_empty());
        assert!(!f.notifies);
        assert_eq!(f.flags, 0);
    }

    #[test]
    fn bad_profiles_are_named() {
        for (json, want) in [
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
                "linux.seccomp.listenerPath",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","args":[{"index":7,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
                "linux.seccomp.syscalls[0].args[0].index",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}"#,
                "linux.seccomp.defaultAction: errnoRet",
            ),
        ] {
            let e = format!("{:#}", compile(&profile(json), None).unwrap_err());
            assert!(e.starts_with(want), "{e}");
        }
    }
}
