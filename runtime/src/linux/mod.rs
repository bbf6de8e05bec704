//! Everything that talks to the kernel, one concern per file.

pub mod capabilities;
pub mod cgroup_join;
pub mod cgroups;
pub mod channel;
pub mod exe_seal;
pub mod exec;
pub mod fds;
pub mod hooks;
pub mod idmap;
pub mod init;
pub mod lsm;
pub mod memfd;
pub mod namespaces;
pub mod personality;
pub mod process;
pub mod procfs;
pub mod rlimits;
pub mod rootfs;
pub mod sched;
pub mod seccomp;
pub mod seccomp_cache;
pub mod sys;
pub mod sysctl;
pub mod timens;
pub mod tty;
pub mod user;
