//! cgroups: the runtime's adapter over `libcgroups`, for v1, hybrid and v2 hosts.
//!
//! CONTRACT (filled by the cgroups work; the lifecycle code calls only this):
//! - `pub fn default_path(id: &str) -> String` -> `/mocker/<id>`
//! - `pub struct Cgroup` (its `path()` is what state.json records)
//! - `Cgroup::create(path: &str, resources: Option<&LinuxResources>) -> Result<Cgroup, CgroupError>`
//!   creates the cgroup on every available hierarchy and applies the limits; on error it
//!   removes whatever it created.
//! - `Cgroup::open(path: &str) -> Result<Cgroup, CgroupError>` for later commands.
//! - `add_task(&self, pid: Pid)`, `pids(&self) -> Vec<Pid>`, `destroy(&self)` (kills nothing,
//!   removes the directories; idempotent), `freeze()/thaw()` for pause/resume later.
