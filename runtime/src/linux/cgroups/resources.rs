//! `linux.resources` -> cgroup files, through libcgroups, with our checks around it:
//! which controllers a config needs, empty values dropped, and libcgroups' nested errors
//! turned into one line naming the controller, file and value.

use std::error::Error as StdError;
use std::path::Path;

use libcgroups::common::{CgroupManager, ControllerOpt, WrappedIoError};
use libcgroups::v1::manager::V1ManagerError;
use libcgroups::v2::manager::V2ManagerError;
use oci_spec::runtime::{LinuxBlockIo, LinuxMemory, LinuxNetwork, LinuxResources};

use super::CgroupError;

/// A controller a config needs, and the config field that needs it (for the error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Need {
    pub controller: &'static str,
    pub field: &'static str,
}

/// Drops values that ask for nothing, so a host without, say, net_cls still runs a config
/// with `"network": {}` (runc does the same). libcgroups would demand the controller.
pub(super) fn without_empty(res: &LinuxResources) -> LinuxResources {
    let mut r = res.clone();
    if r.memory().as_ref() == Some(&LinuxMemory::default()) {
        r.set_memory(None);
    }
    if r.block_io().as_ref() == Some(&LinuxBlockIo::default()) {
        r.set_block_io(None);
    }
    if let Some(n) = r.network() {
        if n.class_id().is_none() && n.priorities().as_ref().is_none_or(|p| p.is_empty()) {
            r.set_network(None);
        }
    }
    if r.network().as_ref() == Some(&LinuxNetwork::default()) {
        r.set_network(None);
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| h.is_empty()) {
        r.set_hugepage_limits(None);
    }
    if r.rdma().as_ref().is_some_and(|h| h.is_empty()) {
        r.set_rdma(None);
    }
    if r.unified().as_ref().is_some_and(|h| h.is_empty()) {
        r.set_unified(None);
    }
    if let Some(cpu) = r.cpu() {
        let nothing = cpu.shares().is_none()
            && cpu.quota().is_none()
            && cpu.burst().is_none()
            && cpu.period().is_none()
            && cpu.realtime_runtime().is_none()
            && cpu.realtime_period().is_none()
            && cpu.idle().is_none()
            && cpu.cpus().as_deref().is_none_or(str::is_empty)
            && cpu.mems().as_deref().is_none_or(str::is_empty);
        if nothing {
            r.set_cpu(None);
        }
    }
    r
}

/// The controllers `res` (already passed through [`without_empty`]) needs. `v2` selects the
/// v2 names (`io` for block IO).
pub(super) fn needs(res: &LinuxResources, v2: bool) -> Vec<Need> {
    let mut out = Vec::new();
    let mut need = |controller, field| out.push(Need { controller, field });
    if res.memory().is_some() {
        need("memory", "memory");
    }
    if res.pids().is_some() {
        need("pids", "pids");
    }
    if let Some(cpu) = res.cpu() {
        if cpu.shares().is_some()
            || cpu.quota().is_some()
            || cpu.burst().is_some()
            || cpu.period().is_some()
            || cpu.realtime_runtime().is_some()
            || cpu.realtime_period().is_some()
            || cpu.idle().is_some()
        {
            need("cpu", "cpu");
        }
        if cpu.cpus().is_some() || cpu.mems().is_some() {
            need("cpuset", "cpu.cpus/mems");
        }
    }
    if res.block_io().is_some() {
        need(if v2 { "io" } else { "blkio" }, "blockIO");
    }
    if res.hugepage_limits().is_some() {
        need("hugetlb", "hugepageLimits");
    }
    if let Some(n) = res.network() {
        if n.class_id().is_some() {
            need("net_cls", "network.classID");
        }
        if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            need("net_prio", "network.priorities");
        }
    }
    if res.rdma().is_some() {
        need("rdma", "rdma");
    }
    out
}

/// Rejects `unified` keys that are not plain file names (libcgroups joins them to the cgroup
/// directory as they are, so `../x` would write outside it).
pub(super) fn check_unified_keys(res: &LinuxResources) -> Result<(), CgroupError> {
    for key in res.unified().iter().flat_map(|u| u.keys()) {
        if key.is_empty() || key.contains('/') || key.starts_with('.') {
            return Err(CgroupError::Invalid(format!(
                "resources.unified: {key:?} is not a cgroup file name"
            )));
        }
    }
    Ok(())
}

fn opt(res: &LinuxResources) -> ControllerOpt<'_> {
    ControllerOpt {
        resources: res,
        disable_oom_killer: res
            .memory()
            .as_ref()
            .and_then(|m| m.disable_oom_killer())
            .unwrap_or(false),
        oom_score_adj: None,
        freezer_state: None,
    }
}

/// Applies `res` on the v1 hierarchies at `path` (relative to each hierarchy's root).
pub(super) fn apply_v1(path: &Path, res: &LinuxResources) -> Result<(), CgroupError> {
    let m = libcgroups::v1::Manager::new(path).map_err(|e| v1_error(&e))?;
    m.apply(&opt(res)).map_err(|e| v1_error(&e))
}

/// Applies `res` on the v2 hierarchy mounted at `mount`, cgroup `path`.
pub(super) fn apply_v2(mount: &Path, path: &Path, res: &LinuxResources) -> Result<(), CgroupError> {
    let m = libcgroups::v2::manager::Manager::new(mount.to_path_buf(), path.to_path_buf())
        .map_err(|e| v2_error(&e))?;
    m.apply(&opt(res)).map_err(|e| v2_error(&e))
}

/// `cgroup memory: memory.limit_in_bytes=1: Device or resource busy` from a file error.
pub(super) fn wrapped(w: &WrappedIoError) -> CgroupError {
    let (path, what) = match w {
        WrappedIoError::Write { path, data, .. } => (path, format!("={}", data.trim())),
        WrappedIoError::Open { path, .. } => (path, String::new()),
        WrappedIoError::Read { path, .. } => (path, " (read)".to_string()),
        WrappedIoError::CreateDir { path, .. } => (path, " (mkdir)".to_string()),
        WrappedIoError::Other { path, .. } => (path, String::new()),
    };
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    CgroupError::Controller {
        controller: controller_of(&file),
        detail: format!("{file}{what}: {}", describe_io(w.inner())),
    }
}

/// `memory.limit_in_bytes` -> `memory`.
pub(super) fn controller_of(file: &str) -> String {
    file.split('.').next().unwrap_or(file).to_string()
}

/// The errno's text without Rust's ` (os error N)` suffix.
pub(super) fn describe_io(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

fn v1_error(e: &V1ManagerError) -> CgroupError {
    use V1ManagerError as E;
    let controller = match e {
        E::WrappedIo(w)
        | E::BlkioController(w)
        | E::CpuController(w)
        | E::CpuAcctController(w)
        | E::PidsController(w) => return wrapped(w),
        E::CGroupRequired(c) => {
            return CgroupError::Controller {
                controller: c.to_string(),
                detail: "required by the config but not available on this host".to_string(),
            };
        }
        E::MemoryController(_) => "memory",
        E::CpuSetController(_) => "cpuset",
        E::HugeTlbController(_) => "hugetlb",
        E::FreezerController(_) => "freezer",
        _ => "v1",
    };
    from_chain(e, controller)
}

fn v2_error(e: &V2ManagerError) -> CgroupError {
    use V2ManagerError as E;
    let controller = match e {
        E::WrappedIo(w) | E::CpuSetController(w) | E::PidsController(w) => return wrapped(w),
        E::CpuController(_) => "cpu",
        E::HugeTlbController(_) => "hugetlb",
        E::IoController(_) => "io",
        E::MemoryController(_) => "memory",
        E::UnifiedController(_) => "unified",
        E::FreezerController(_) => "freezer",
        _ => "v2",
    };
    from_chain(e, controller)
}

/// The per-controller errors of libcgroups are in private modules; their `WrappedIoError`
/// is reachable through `source()`, otherwise we keep their own message.
fn from_chain(e: &(dyn StdError + 'static), controller: &str) -> CgroupError {
    let mut cur = Some(e);
    while let Some(x) = cur {
        if let Some(w) = x.downcast_ref::<WrappedIoError>() {
            return wrapped(w);
        }
        cur = x.source();
    }
    CgroupError::Controller {
        controller: controller.to_string(),
        detail: e.to_string(),
    }
}
