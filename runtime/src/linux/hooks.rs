//! OCI hooks (runtime-spec config.md, "POSIX-platform Hooks"): one function runs a phase.
//!
//! Where each phase runs (the caller's seam):
//! - `prestart`, `createRuntime`: in `create`, in the runtime's namespaces, once the init has
//!   mounted the rootfs and waits (before pivot_root) - `linux::process`;
//! - `createContainer`: in the init, in the container's namespaces, before pivot_root;
//! - `startContainer`: in the init once `start` opened the exec fifo, just before execve
//!   (paths resolve in the container);
//! - `poststart`: in `start` after the container program runs; `poststop`: when the
//!   container is destroyed (`delete`, or `run` at its end).
//!
//! A hook gets the container state on stdin, exactly its `args` (the first is argv[0]) and
//! `env` (nothing inherited), and is killed after `timeout` seconds. Its stdin and its
//! output are memfds, not pipes: no writer can block or take SIGPIPE (the init runs with
//! default signal dispositions), and a failure's message quotes what the hook printed.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{Hook, Hooks};
use serde::Serialize;

use crate::linux::memfd;

/// The six phases, in lifecycle order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Prestart,
        Phase::CreateRuntime,
        Phase::CreateContainer,
        Phase::StartContainer,
        Phase::Poststart,
        Phase::Poststop,
    ];

    /// The field name in config.json.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prestart => "prestart",
            Phase::CreateRuntime => "createRuntime",
            Phase::CreateContainer => "createContainer",
            Phase::StartContainer => "startContainer",
            Phase::Poststart => "poststart",
            Phase::Poststop => "poststop",
        }
    }

    /// The container status a hook of this phase sees in its state.
    pub fn status(self) -> &'static str {
        match self {
            // prestart is the legacy hook "called after the start operation": crun and the
            // runtime-tools suite say `created`.
            Phase::CreateRuntime | Phase::CreateContainer => "creating",
            Phase::Prestart | Phase::StartContainer => "created",
            Phase::Poststart => "running",
            Phase::Poststop => "stopped",
        }
    }

    #[allow(deprecated)] // prestart: deprecated by the spec, still sent by docker
    pub fn hooks(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            Phase::Prestart => hooks.prestart(),
            Phase::CreateRuntime => hooks.create_runtime(),
            Phase::CreateContainer => hooks.create_container(),
            Phase::StartContainer => hooks.start_container(),
            Phase::Poststart => hooks.poststart(),
            Phase::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }
}

/// What a hook reads on stdin: the runtime-spec's state.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: &'static str,
    pub pid: i32,
    pub bundle: &'a std::path::Path,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub annotations: &'a std::collections::HashMap<String, String>,
}

/// Refuse hooks the spec forbids before anything is made: a relative path, a timeout that is
/// not positive.
pub fn check(hooks: Option<&Hooks>) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    for phase in Phase::ALL {
        for (i, h) in phase.hooks(hooks).iter().enumerate() {
            let field = || format!("hooks.{}[{i}]", phase.name());
            if !h.path().is_absolute() {
                bail!("{}.path: {:?} must be absolute", field(), h.path());
            }
            if h.timeout().is_some_and(|t| t <= 0) {
                bail!("{}.timeout: must be a positive number of seconds", field());
            }
            for (j, e) in h.env().iter().flatten().enumerate() {
                if !e.contains('=') {
                    bail!("{}.env[{j}]: {e:?} is not KEY=value", field());
                }
            }
        }
    }
    Ok(())
}

/// Does `phase` have any hook?
pub fn any(hooks: Option<&Hooks>, phase: Phase) -> bool {
    hooks.is_some_and(|h| !phase.hooks(h).is_empty())
}

/// Run every hook of `phase` in order; the first failure stops the phase and is returned as
/// one line naming the hook (`hooks.createRuntime[1] /path: ...`).
pub fn run(phase: Phase, hooks: Option<&Hooks>, state: &HookState<'_>) -> Result<()> {
    each(phase, hooks, state, Err)
}

/// Run every hook of `phase`; `failed` decides whether an error stops the phase.
fn each(
    phase: Phase,
    hooks: Option<&Hooks>,
    state: &HookState<'_>,
    mut failed: impl FnMut(anyhow::Error) -> Result<()>,
) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    let list = phase.hooks(hooks);
    if list.is_empty() {
        return Ok(());
    }
    let state = HookState {
        status: phase.status(),
        ..state.clone()
    };
    let json = serde_json::to_vec(&state).expect("the state always serializes");
    for (i, hook) in list.iter().enumerate() {
        if let Err(e) = run_one(hook, &json) {
            failed(e.context(format!(
                "hooks.{}[{i}] {}",
                phase.name(),
                hook.path().display()
            )))?;
        }
    }
    Ok(())
}

/// poststart and poststop: the hooks recorded at `create`, for a container that exists (or
/// just did). A failure is a warning and the remaining hooks still run (runtime-spec).
pub fn run_recorded(phase: Phase, c: &crate::container::state::State) {
    let state = state_for(&c.id, c.pid, &c.bundle, &c.annotations);
    let _ = each(phase, c.hooks.as_ref(), &state, |e| {
        crate::log::warn(format_args!("{e:#}"));
        Ok(())
    });
}

fn run_one(hook: &Hook, state: &[u8]) -> Result<()> {
    let mut stdin = memfd::create(c"hook-state")?;
    stdin.write_all(state).context("write the state")?;
    stdin.seek(SeekFrom::Start(0))?;
    let mut output = memfd::create(c"hook-output")?;
    let mut cmd = Command::new(hook.path());
    if let Some((argv0, rest)) = hook.args().as_deref().and_then(|a| a.split_first()) {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for e in hook.env().iter().flatten() {
        let (k, v) = e.split_once('=').expect("checked by hooks::check");
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::from(stdin))
        .stdout(Stdio::from(output.try_clone()?))
        .stderr(Stdio::from(output.try_clone()?));
    let mut child = cmd.spawn().context("start")?;
    let status = match hook.timeout() {
        None => child.wait().context("wait")?,
        Some(secs) => match wait_until(&mut child, Duration::from_secs(secs as u64))? {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("timed out after {secs}s (killed)");
            }
        },
    };
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    output.seek(SeekFrom::Start(0))?;
    let _ = output.take(4096).read_to_string(&mut text);
    let said = one_line(&text);
    if said.is_empty() {
        bail!("{}", describe(status));
    }
    bail!("{}: {said}", describe(status))
}

fn wait_until(child: &mut std::process::Child, limit: Duration) -> Result<Option<ExitStatus>> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        if let Some(status) = child.try_wait().context("wait")? {
            return Ok(Some(status));
        }
        if start.elapsed() >= limit {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// A hook's output as one line: its lines joined with "; ", trimmed.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The hook state of a container as the runtime's parent side knows it.
pub fn state_for<'a>(
    id: &'a str,
    pid: i32,
    bundle: &'a std::path::Path,
    annotations: &'a std::collections::HashMap<String, String>,
) -> HookState<'a> {
    HookState {
        oci_version: crate::container::OCI_VERSION,
        id,
        status: "",
        pid,
        bundle,
        annotations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(json: &str) -> Hooks {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn bad_hooks_are_named() {
        for (json, want) in [
            (
                r#"{"createRuntime":[{"path":"rel/hook"}]}"#,
                "hooks.createRuntime[0].path",
            ),
            (
                r#"{"poststop":[{"path":"/bin/true"},{"path":"/bin/true","timeout":0}]}"#,
                "hooks.poststop[1].timeout",
            ),
            (
                r#"{"prestart":[{"path":"/bin/true","env":["NOEQUALS"]}]}"#,
                "hooks.prestart[0].env[0]",
            ),
        ] {
            let e = check(Some(&hooks(json))).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
        }
        check(Some(&hooks("{}"))).unwrap();
        check(None).unwrap();
    }

    #[test]
    fn output_becomes_one_line() {
        assert_eq!(one_line("a\n\n  b \nc\n"), "a; b; c");
        assert_eq!(one_line(""), "");
    }
}
