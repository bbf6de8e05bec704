//! Linux security modules and resctrl: `process.apparmorProfile`, `process.selinuxLabel`,
//! `linux.mountLabel`, `linux.intelRdt`.
//!
//! As runc: a value the host cannot honour is an error in `create` (never silently
//! ignored). Where the LSM is enabled, the init asks for the profile or label on its execve
//! by writing its own `attr/.../exec` file, through the container's /proc checked to be
//! procfs and reached without symlinks (a fake /proc from the image would otherwise swallow
//! the write and leave the program unconfined: CVE-2019-16884). mountLabel and intelRdt are
//! not applied yet: asking for them is refused in one line.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{Process, Spec};

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y")
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// In `create`, before any side effect.
pub fn check(spec: &Spec) -> Result<()> {
    if let Some(p) = spec.process() {
        check_process(p)?;
    }
    if let Some(linux) = spec.linux() {
        if let Some(label) = set(linux.mount_label()) {
            bail!("linux.mountLabel {label:?}: SELinux mount labels are not supported yet");
        }
        if linux.intel_rdt().is_some() {
            bail!("linux.intelRdt: resctrl (Intel RDT) is not supported yet");
        }
    }
    Ok(())
}

/// In `create` and `exec`: the process's own labels (`exec --apparmor` sets them too).
pub fn check_process(p: &Process) -> Result<()> {
    if let Some(profile) = set(p.apparmor_profile())
        && !apparmor_enabled()
    {
        bail!("process.apparmorProfile {profile:?}: AppArmor is not enabled on this host");
    }
    if let Some(label) = set(p.selinux_label())
        && !selinux_enabled()
    {
        bail!("process.selinuxLabel {label:?}: SELinux is not enabled on this host");
    }
    Ok(())
}

/// In the init or an exec'd process, inside the container: the labels the program gets at
/// execve.
pub fn apply_exec_labels(p: &Process) -> Result<()> {
    if let Some(profile) = set(p.apparmor_profile()) {
        write_own_attr("apparmor/exec", &format!("exec {profile}"))
            .or_else(|_| write_own_attr("exec", &format!("exec {profile}")))
            .with_context(|| format!("process.apparmorProfile {profile:?}"))?;
    }
    if let Some(label) = set(p.selinux_label()) {
        write_own_attr("exec", label).with_context(|| format!("process.selinuxLabel {label:?}"))?;
    }
    Ok(())
}

/// Write `/proc/<pid>/attr/<name>` of this process in the container's verified procfs.
fn write_own_attr(name: &str, value: &str) -> Result<()> {
    let proc = crate::linux::procfs::open_container_proc("")?;
    let rel = PathBuf::from(format!("{}/attr/{name}", std::process::id()));
    let fd = crate::linux::procfs::open_for_write(&proc, &rel)
        .with_context(|| format!("open /proc/{}", rel.display()))?;
    File::from(fd)
        .write_all(value.as_bytes())
        .with_context(|| format!("write /proc/{}", rel.display()))
}
