//! cgroups: the runtime's adapter over `libcgroups`, for v1, hybrid and v2 hosts.
//!
//! CONTRACT (the lifecycle code calls only this; additions are fine, renames are not):
//! - `default_path(id) -> String`: `/mocker/<id>`.
//! - `check_systemd_cgroup() -> Result<(), CgroupError>`: `--systemd-cgroup`; always an error
//!   for now (no systemd driver), saying whether systemd manages cgroups here at all.
//! - `Cgroup::create(path, Option<&LinuxResources>) -> Result<Cgroup, CgroupError>`: creates
//!   the cgroup on every hierarchy of the host and applies the limits; on error removes what
//!   it created. Absolute paths are per hierarchy root, relative ones below the runtime's
//!   own cgroup; `..` and the root itself are refused. Refuses a cgroup with processes.
//! - `Cgroup::open(path)` for later commands; `path()` is the absolute path to record in
//!   state.json; `dirs()` the directory on each hierarchy.
//! - `add_task(pid)`; `pids()` / `try_pids()`: every process, descendants' cgroups too.
//! - `kill_all(signal)`: signals them all (SIGKILL via cgroup.kill where a cgroup2 exists,
//!   else frozen while signalled; a paused container stays paused).
//! - `destroy()`: removes the directories (and child cgroups) and an empty `/mocker`
//!   parent; kills nothing, fails while processes remain; idempotent.
//! - `freeze()`, `thaw()`, `is_frozen()`; `update(&LinuxResources)`; `stats()`.
//!
//! Errors are one line naming the controller, file and value:
//! `cgroup cpuset: cpuset.cpus=999: Invalid argument`.
//!
//! Layout: `hierarchy` finds the mounted hierarchies and where the cgroup lives in each,
//! `resources` turns `linux.resources` into files through libcgroups, `devices` enforces
//! device rules on cgroup v2 with eBPF and `devices_v1` writes them on v1; this file creates,
//! joins and removes directories itself, because it must know exactly which directories it
//! made (to remove only those on error) and must never kill on removal.
//!
//! Hybrid hosts (v1 controllers plus a cgroup2 at /sys/fs/cgroup/unified): libcgroups picks
//! its v1 manager and ignores the cgroup2. We still create and join the cgroup there (a
//! cgroup namespace and `/proc/<pid>/cgroup` then look like runc's), and apply there the
//! limits whose controller only the cgroup2 offers (hugetlb on this machine), which
//! libcgroups' v1 manager would refuse as "not supported by this system".

mod devices;
mod devices_v1;
mod hierarchy;
mod resources;
mod v1_files;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use libcgroups::common::{CgroupManager, FreezerState};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use hierarchy::{Hierarchy, Kind, Layout};
use resources::describe_io;

/// Prefix of the default cgroup path; its empty parent directory is ours to remove.
const MOCKER_PARENT: &str = "/mocker";

/// One line that names the controller, file and value, e.g.
/// `cgroup memory: memory.limit_in_bytes=1: Device or resource busy`.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A path, value or setup that cannot work on this host.
    #[error("cgroup: {0}")]
    Invalid(String),
    /// A controller rejected something or is missing.
    #[error("cgroup {controller}: {detail}")]
    Controller { controller: String, detail: String },
    /// A directory operation failed.
    #[error("cgroup: {op} {path}: {reason}")]
    Fs {
        op: &'static str,
        path: PathBuf,
        reason: String,
    },
}

impl CgroupError {
    fn fs(op: &'static str, path: &Path, e: &io::Error) -> Self {
        CgroupError::Fs {
            op,
            path: path.to_path_buf(),
            reason: describe_io(e),
        }
    }
}

/// The cgroup path a container gets when its config names none.
pub fn default_path(id: &str) -> String {
    format!("{MOCKER_PARENT}/{id}")
}

/// `--systemd-cgroup`: we have no systemd driver yet, so this always fails, saying why.
pub fn check_systemd_cgroup() -> Result<(), CgroupError> {
    if !Path::new("/run/systemd/system").exists() {
        return Err(CgroupError::Invalid(
            "--systemd-cgroup: systemd does not manage cgroups on this host \
             (/run/systemd/system is missing); run without --systemd-cgroup"
                .to_string(),
        ));
    }
    Err(CgroupError::Invalid(
        "--systemd-cgroup: the systemd cgroup driver is not supported yet; \
         run without --systemd-cgroup"
            .to_string(),
    ))
}

/// A container's cgroup on every hierarchy of the host.
#[derive(Debug, Clone)]
pub struct Cgroup {
    layout: Layout,
}

impl Cgroup {
    /// Creates the cgroup on every hierarchy and applies `resources`. On error nothing this
    /// call created is left behind.
    pub fn create(path: &str, resources: Option<&LinuxResources>) -> Result<Cgroup, CgroupError> {
        let cg = Cgroup::open(path)?;
        cg.make(resources)?;
        Ok(cg)
    }

    /// Creates this (resolved) cgroup on every hierarchy and applies `resources`; on error
    /// nothing this call created is left behind.
    pub fn make(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let res = resources.map(resources::without_empty).unwrap_or_default();
        resources::check_unified_keys(&res)?;
        let plan = self.plan(&res)?;
        let mut created = Vec::new();
        let result = self.build(&plan, &res, &mut created);
        if result.is_err() {
            // Deepest first; a directory someone else started using meanwhile stays.
            for dir in created.iter().rev() {
                let _ = remove_cgroup_dir(dir, Duration::from_millis(200));
            }
        }
        result
    }

    /// The cgroup at `path` (resolved now; nothing is created): for `create` before it
    /// records the result, and for later commands given the recorded path.
    pub fn open(path: &str) -> Result<Cgroup, CgroupError> {
        Ok(Cgroup {
            layout: Layout::resolve(path)?,
        })
    }

    /// The cgroup as `create` recorded it: [`Cgroup::path`], and [`Cgroup::per_hierarchy`]
    /// when that is not empty.
    pub fn open_recorded(
        path: &str,
        per_hierarchy: &BTreeMap<String, String>,
    ) -> Result<Cgroup, CgroupError> {
        if per_hierarchy.is_empty() {
            return Cgroup::open(path);
        }
        Ok(Cgroup {
            layout: Layout::recorded(per_hierarchy)?,
        })
    }

    /// The resolved, absolute cgroup path (what state.json records; `open` takes it back).
    /// Where it differs between hierarchies, the main hierarchy's path (for messages), and
    /// [`Cgroup::per_hierarchy`] has them all.
    pub fn path(&self) -> String {
        match &self.layout.path {
            Some(p) => p.display().to_string(),
            None => self.primary().path.display().to_string(),
        }
    }

    /// Hierarchy label -> path, when the path differs between hierarchies (else empty).
    pub fn per_hierarchy(&self) -> BTreeMap<String, String> {
        self.layout.per_hierarchy()
    }

    /// The directories of this cgroup, one per hierarchy.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.layout
            .hierarchies
            .iter()
            .map(|h| h.dir.clone())
            .collect()
    }

    /// Moves `pid` into the cgroup on every hierarchy.
    pub fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        for h in &self.layout.hierarchies {
            let procs = h.dir.join("cgroup.procs");
            fs::write(&procs, pid.to_string()).map_err(|e| CgroupError::Controller {
                controller: h.label(),
                detail: format!("cgroup.procs={pid}: {}", describe_io(&e)),
            })?;
        }
        Ok(())
    }

    /// Every process in the cgroup and its descendants; empty once the cgroup is gone.
    pub fn pids(&self) -> Vec<Pid> {
        self.try_pids().unwrap_or_default()
    }

    /// Like [`Cgroup::pids`], reporting read errors.
    pub fn try_pids(&self) -> Result<Vec<Pid>, CgroupError> {
        let dir = &self.primary().dir;
        if !dir.exists() {
            return Ok(Vec::new());
        }
        libcgroups::common::get_all_pids(dir).map_err(|w| resources::wrapped(&w))
    }

    /// Sends `signal` to every process in the cgroup. On v2 SIGKILL goes through
    /// `cgroup.kill` (no fork race); otherwise the cgroup is frozen while signalling when a
    /// freezer exists, so a forking process cannot slip out.
    pub fn kill_all(&self, signal: Signal) -> Result<(), CgroupError> {
        let primary = self.primary();
        if !primary.dir.exists() {
            return Ok(());
        }
        // SIGKILL through cgroup.kill (5.14+) reaches every process without a fork race; on
        // a hybrid host the cgroup2 holds all of them too, as `add_task` joins it.
        if signal == Signal::SIGKILL {
            let f = self
                .layout
                .hierarchies
                .iter()
                .filter(|h| h.kind == Kind::V2)
                .map(|h| h.dir.join("cgroup.kill"))
                .find(|f| f.exists());
            if let Some(f) = f {
                return fs::write(&f, "1").map_err(|e| CgroupError::Controller {
                    controller: "cgroup".into(),
                    detail: format!("cgroup.kill=1: {}", describe_io(&e)),
                });
            }
        }
        // Freeze so nothing forks while we signal; a paused container stays paused.
        let was_frozen = self.is_frozen();
        let froze = !was_frozen && self.freeze().is_ok();
        let result = self.try_pids().and_then(|pids| {
            for pid in pids {
                match kill(pid, signal) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => {
                        return Err(CgroupError::Invalid(format!(
                            "kill {pid} with {signal}: {}",
                            e.desc()
                        )));
                    }
                }
            }
            Ok(())
        });
        if froze {
            self.thaw()?;
        }
        result
    }

    /// Whether the cgroup is frozen (paused): v1 `freezer.state`, v2 `cgroup.freeze`.
    pub fn is_frozen(&self) -> bool {
        self.layout.hierarchies.iter().any(|h| match h.kind {
            Kind::V1 if h.has("freezer") => {
                fs::read_to_string(h.dir.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
            }
            Kind::V2 if !self.layout.is_v1() => {
                fs::read_to_string(h.dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
            }
            _ => false,
        })
    }

    /// Removes the cgroup directories (and child cgroups the container made) on every
    /// hierarchy, then the shared `/mocker` parent if it became empty. Kills nothing: if
    /// processes remain (after a short grace for ones already dying) it fails and leaves
    /// every directory in place. Removing a cgroup that is already gone succeeds.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        self.wait_empty(Duration::from_secs(1))?;
        let mut first_err = None;
        for h in &self.layout.hierarchies {
            if let Err(e) = remove_tree(&h.dir) {
                first_err.get_or_insert(e);
                continue;
            }
            // Parents under /mocker are shared by containers: rmdir fails (EBUSY) while any
            // other container's cgroup is inside, which is exactly when it must stay.
            let mut parent = h.path.parent();
            while let Some(p) = parent {
                if !p.starts_with(MOCKER_PARENT) {
                    break;
                }
                let dir = h.mount.join(p.strip_prefix("/").unwrap_or(p));
                if fs::remove_dir(&dir).is_err() {
                    break;
                }
                parent = p.parent();
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Waits up to `grace` for the cgroup to have no process: a process killed a moment ago
    /// leaves `cgroup.procs` only once the kernel has finished its exit.
    fn wait_empty(&self, grace: Duration) -> Result<(), CgroupError> {
        let start = Instant::now();
        loop {
            let pids = self.try_pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= grace {
                return Err(CgroupError::Fs {
                    op: "remove",
                    path: self.primary().dir.clone(),
                    reason: format!("{} process(es) still in it", pids.len()),
                });
            }
            sleep(Duration::from_millis(5));
        }
    }

    /// New limits for a live cgroup (runc `update`). Device rules stay as created (as in
    /// runc). Values the kernel rejects give the same one-line errors as `create`; limits
    /// written before the failing one stay.
    pub fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        let mut res = resources::without_empty(resources);
        res.set_devices(None);
        resources::check_unified_keys(&res)?;
        let plan = self.plan(&res)?;
        for h in &self.layout.hierarchies {
            if !h.dir.is_dir() {
                return Err(CgroupError::Invalid(format!(
                    "{} does not exist",
                    h.dir.display()
                )));
            }
            // Enables controllers a new limit may need (hugetlb on a hybrid host).
            make_dirs(h, &plan.unified_controllers, &mut Vec::new())?;
        }
        self.apply(&plan, &res)
    }

    /// Freezes every process in the cgroup (v1 freezer or v2 `cgroup.freeze`).
    pub fn freeze(&self) -> Result<(), CgroupError> {
        self.set_freezer(FreezerState::Frozen)
    }

    /// Resumes the processes frozen by [`Cgroup::freeze`].
    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.set_freezer(FreezerState::Thawed)
    }

    /// How many processes the OOM killer has killed in this cgroup: `oom_kill` of v2
    /// `memory.events`, or of v1 `memory.oom_control` (0 where neither is readable).
    pub fn oom_kills(&self) -> u64 {
        let count = |file: PathBuf| {
            fs::read_to_string(file).ok().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse().ok())
            })
        };
        self.layout
            .hierarchies
            .iter()
            .find_map(|h| match h.kind {
                Kind::V2 if !self.layout.is_v1() => count(h.dir.join("memory.events")),
                Kind::V1 if h.has("memory") => count(h.dir.join("memory.oom_control")),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// Usage and limits as libcgroups reads them.
    pub fn stats(&self) -> Result<libcgroups::stats::Stats, CgroupError> {
        let Some(path) = &self.layout.path else {
            return Err(CgroupError::Invalid(
                "stats of a cgroup whose path differs between hierarchies are not supported yet"
                    .into(),
            ));
        };
        if self.layout.is_v1() {
            let m = libcgroups::v1::Manager::new(path)
                .map_err(|e| CgroupError::Invalid(e.to_string()))?;
            m.stats()
                .map_err(|e| CgroupError::Invalid(format!("stats: {e}")))
        } else {
            let h = self.primary();
            let m = libcgroups::v2::manager::Manager::new(h.mount.clone(), path.clone())
                .map_err(|e| CgroupError::Invalid(e.to_string()))?;
            m.stats()
                .map_err(|e| CgroupError::Invalid(format!("stats: {e}")))
        }
    }

    fn set_freezer(&self, state: FreezerState) -> Result<(), CgroupError> {
        if self.layout.is_v1() {
            let Some(h) = self.layout.hierarchies.iter().find(|h| h.has("freezer")) else {
                return Err(CgroupError::Controller {
                    controller: "freezer".into(),
                    detail: "not available on this host".into(),
                });
            };
            // The manager only touches the freezer hierarchy here: its path is the one.
            let m = libcgroups::v1::Manager::new(&h.path)
                .map_err(|e| CgroupError::Invalid(e.to_string()))?;
            m.freeze(state)
                .map_err(|e| CgroupError::Invalid(format!("freezer: {e}")))
        } else {
            let h = self.primary();
            let m = libcgroups::v2::manager::Manager::new(h.mount.clone(), h.path.clone())
                .map_err(|e| CgroupError::Invalid(e.to_string()))?;
            m.freeze(state)
                .map_err(|e| CgroupError::Invalid(format!("freezer: {e}")))
        }
    }

    /// The hierarchy whose `cgroup.procs` we read: v2 when pure, else pids, freezer, any.
    fn primary(&self) -> &Hierarchy {
        let hs = &self.layout.hierarchies;
        if !self.layout.is_v1() {
            return &hs[0];
        }
        ["pids", "freezer", "memory"]
            .iter()
            .find_map(|c| hs.iter().find(|h| h.has(c)))
            .or_else(|| hs.iter().find(|h| h.kind == Kind::V1))
            .unwrap_or(&hs[0])
    }

    /// Decides where each needed controller is served and fails early, with the config
    /// field, when the host lacks one.
    fn plan(&self, res: &LinuxResources) -> Result<Plan, CgroupError> {
        let mut plan = Plan::default();
        if self.layout.is_v1() {
            if res.unified().is_some() && !self.has_unified() {
                return Err(CgroupError::Invalid(
                    "resources.unified needs cgroup v2, which this host does not have".into(),
                ));
            }
            for need in resources::needs(res, false) {
                let v1 = self
                    .layout
                    .hierarchies
                    .iter()
                    .any(|h| h.kind == Kind::V1 && h.has(need.controller));
                if v1 {
                    continue;
                }
                let on_unified = self.layout.hierarchies.iter().any(|h| {
                    h.kind == Kind::V2
                        && hierarchy::available_v2_controllers(&h.mount)
                            .iter()
                            .any(|c| c == need.controller)
                });
                if on_unified && need.controller == "hugetlb" {
                    plan.unified_controllers.push(need.controller.to_string());
                    continue;
                }
                return Err(missing(&need));
            }
            // `unified` keys go to the cgroup2 of a hybrid host, as they name v2 files.
            if res.unified().is_some() {
                for key in res.unified().iter().flat_map(|u| u.keys()) {
                    let c = resources::controller_of(key);
                    if c != "cgroup" && !plan.unified_controllers.contains(&c) {
                        plan.unified_controllers.push(c);
                    }
                }
            }
        } else {
            let root = &self.layout.hierarchies[0].mount;
            let available = hierarchy::available_v2_controllers(root);
            for need in resources::needs(res, true) {
                if !available.iter().any(|c| c == need.controller) {
                    return Err(missing(&need));
                }
            }
            // Enable everything the root offers, as runc does, so stats and later updates
            // work for controllers the config does not limit yet.
            plan.unified_controllers = available;
        }
        Ok(plan)
    }

    fn has_unified(&self) -> bool {
        self.layout.hierarchies.iter().any(|h| h.kind == Kind::V2)
    }

    /// Creates the directories (recording them in `created`) and applies the limits.
    fn build(
        &self,
        plan: &Plan,
        res: &LinuxResources,
        created: &mut Vec<PathBuf>,
    ) -> Result<(), CgroupError> {
        for h in &self.layout.hierarchies {
            make_dirs(h, &plan.unified_controllers, created)?;
            if let Ok(procs) = fs::read_to_string(h.dir.join("cgroup.procs")) {
                if !procs.trim().is_empty() {
                    return Err(CgroupError::Invalid(format!(
                        "{} already has processes in it",
                        h.dir.display()
                    )));
                }
            }
        }
        self.apply(plan, res)
    }

    /// Writes the limits (the directories exist).
    fn apply(&self, plan: &Plan, res: &LinuxResources) -> Result<(), CgroupError> {
        if self.layout.is_v1() {
            let mut v1_res = res.clone();
            let mut v2_res = LinuxResources::default();
            if plan.unified_controllers.iter().any(|c| c == "hugetlb") {
                v2_res.set_hugepage_limits(v1_res.hugepage_limits().clone());
                v1_res.set_hugepage_limits(None);
            }
            v2_res.set_unified(v1_res.unified().clone());
            v1_res.set_unified(None);
            if let Some(rules) = v1_res.devices().as_ref().filter(|r| !r.is_empty()) {
                let h = self.layout.hierarchies.iter().find(|h| h.has("devices"));
                let h = h.ok_or_else(|| CgroupError::Controller {
                    controller: "devices".into(),
                    detail: "required by the config but not available on this host".into(),
                })?;
                devices_v1::apply(&h.dir, rules)?;
            }
            v1_res.set_devices(None);
            // Nothing left to apply costs nothing (libcgroups' v1 manager re-reads the
            // mount table for every controller: about 1 ms).
            if v1_res != LinuxResources::default() {
                match &self.layout.path {
                    Some(path) => resources::apply_v1(path, &v1_res)?,
                    // libcgroups' v1 manager takes one path for all hierarchies.
                    None => {
                        for h in self
                            .layout
                            .hierarchies
                            .iter()
                            .filter(|h| h.kind == Kind::V1)
                        {
                            v1_files::apply(&h.dir, &h.controllers, &v1_res)?;
                        }
                    }
                }
            }
            if v2_res != LinuxResources::default() {
                if let Some(h) = self.layout.hierarchies.iter().find(|h| h.kind == Kind::V2) {
                    check_enabled(h, &plan.unified_controllers)?;
                    resources::apply_v2(&h.mount, &h.path, &v2_res)?;
                }
            }
        } else {
            let h = &self.layout.hierarchies[0];
            let needed: Vec<String> = resources::needs(res, true)
                .into_iter()
                .map(|n| n.controller.to_string())
                .collect();
            check_enabled(h, &needed)?;
            resources::apply_v2(&h.mount, &h.path, res)?;
            if let Some(rules) = res.devices().as_ref().filter(|r| !r.is_empty()) {
                devices::apply(&h.dir, rules)?;
            }
        }
        Ok(())
    }
}

/// Which controllers go to the cgroup2 (all of them on a v2 host; on a hybrid host the
/// ones only it offers) and must be enabled along the path.
#[derive(Debug, Default)]
struct Plan {
    unified_controllers: Vec<String>,
}

fn missing(need: &resources::Need) -> CgroupError {
    CgroupError::Controller {
        controller: need.controller.to_string(),
        detail: format!(
            "resources.{} needs this controller, which this host does not offer",
            need.field
        ),
    }
}

/// Fails clearly when a needed controller did not get enabled for the cgroup (its parent
/// holds processes, or the host delegates less than it advertises).
fn check_enabled(h: &Hierarchy, needed: &[String]) -> Result<(), CgroupError> {
    let have = hierarchy::available_v2_controllers(&h.dir);
    for c in needed {
        if !have.contains(c) {
            return Err(CgroupError::Controller {
                controller: c.clone(),
                detail: format!(
                    "not enabled for {} (see cgroup.subtree_control of its parents)",
                    h.dir.display()
                ),
            });
        }
    }
    Ok(())
}

/// Creates `rel` below `h.mount` one level at a time, recording what it made. A racing
/// `destroy` of a sibling may remove a shared parent between our mkdirs (ENOENT): then we
/// start over. Only once our leaf exists are its parents pinned (a cgroup with children
/// cannot be removed), so the per-level setup runs after the walk, top-down:
/// v2: enable `controllers` in each parent's `cgroup.subtree_control` (a parent recreated
///     by someone else in between would otherwise leave our leaf without them);
/// v1 cpuset: a new cpuset starts with no cpus/mems and refuses tasks, so it inherits them.
fn make_dirs(
    h: &Hierarchy,
    controllers: &[String],
    created: &mut Vec<PathBuf>,
) -> Result<(), CgroupError> {
    let rel = h.relative_path();
    let mut attempts = 0;
    'again: loop {
        attempts += 1;
        let mut cur = h.mount.clone();
        for comp in rel.components() {
            cur.push(comp);
            match fs::create_dir(&cur) {
                Ok(()) => created.push(cur.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 10 => continue 'again,
                Err(e) => return Err(CgroupError::fs("mkdir", &cur, &e)),
            }
        }
        break;
    }
    let cpuset = h.kind == Kind::V1 && h.has("cpuset");
    let mut cur = h.mount.clone();
    for comp in rel.components() {
        if h.kind == Kind::V2 {
            enable_controllers(&cur, controllers);
        }
        let parent = cur.clone();
        cur.push(comp);
        if cpuset {
            inherit_cpuset(&parent, &cur)?;
        }
    }
    Ok(())
}

fn enable_controllers(dir: &Path, controllers: &[String]) {
    if controllers.is_empty() {
        return;
    }
    let file = dir.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&file).unwrap_or_default();
    for c in controllers {
        if enabled.split_whitespace().any(|e| e == c) {
            continue;
        }
        // Best effort: a failure shows up as a clear error in `check_enabled` if the
        // controller is actually needed.
        let _ = fs::write(&file, format!("+{c}"));
    }
}

fn inherit_cpuset(parent: &Path, child: &Path) -> Result<(), CgroupError> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mine = fs::read_to_string(child.join(f)).unwrap_or_default();
        if !mine.trim().is_empty() {
            continue;
        }
        let theirs = fs::read_to_string(parent.join(f)).unwrap_or_default();
        fs::write(child.join(f), theirs.trim()).map_err(|e| CgroupError::Controller {
            controller: "cpuset".into(),
            detail: format!("{f}={}: {}", theirs.trim(), describe_io(&e)),
        })?;
    }
    Ok(())
}

/// Removes `dir` and the child cgroups below it, deepest first. Missing is fine.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CgroupError::fs("read", dir, &e)),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    remove_cgroup_dir(dir, Duration::from_secs(1))
}

/// rmdir of a cgroup; EBUSY right after its last process left is common (the kernel
/// releases the cgroup asynchronously), so retry briefly.
fn remove_cgroup_dir(dir: &Path, patience: Duration) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(1);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < patience => {
                sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(CgroupError::fs("rmdir", dir, &e)),
        }
    }
}

#[cfg(test)]
mod tests;
