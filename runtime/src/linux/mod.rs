//! Everything that talks to the kernel, one concern per file.

pub mod cgroups;
