//! `linux.resources.devices` on a cgroup v1 host: lines written to the devices controller's
//! `devices.deny` / `devices.allow`, the config's rules first, then the same defaults the v2
//! eBPF filter appends (see `devices::default_rules`).
//!
//! Written here rather than through libcgroups' v1 manager: building that manager re-reads
//! the mount table twice per controller through a fresh procfs mount (about 1 ms for
//! every container), and device rules are the only resource every config carries.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use oci_spec::runtime::LinuxDeviceCgroup;

use super::CgroupError;
use super::devices::{DEV_BLOCK, default_rules};

/// One rule line (`c 1:3 rwm`) and whether it goes to `devices.allow`.
fn lines(rules: &[LinuxDeviceCgroup]) -> Vec<(bool, String)> {
    let star = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
    let mut out: Vec<(bool, String)> = rules.iter().map(|r| (r.allow(), r.to_string())).collect();
    for (typ, major, minor, access) in default_rules() {
        let t = if typ == DEV_BLOCK { 'b' } else { 'c' };
        let acc: String = [(2, 'r'), (4, 'w'), (1, 'm')]
            .iter()
            .filter(|(bit, _)| access & bit != 0)
            .map(|(_, c)| *c)
            .collect();
        out.push((true, format!("{t} {}:{} {acc}", star(major), star(minor))));
    }
    out
}

/// Writes the rules into the devices cgroup directory `dir` (one write per line, as the
/// kernel parses one rule per write).
pub(super) fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    for (allow, line) in lines(rules) {
        let file = if allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        OpenOptions::new()
            .write(true)
            .open(dir.join(file))
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| CgroupError::Controller {
                controller: "devices".into(),
                detail: format!("{file}={line}: {}", super::resources::describe_io(&e)),
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};

    use super::*;

    #[test]
    fn config_rules_come_first_then_the_defaults() {
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap();
        let fuse = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(10)
            .minor(229)
            .access("rw")
            .build()
            .unwrap();
        let l = lines(&[deny_all, fuse]);
        assert_eq!(l[0], (false, "a *:* rwm".to_string()));
        assert_eq!(l[1], (true, "c 10:229 rw".to_string()));
        assert!(l.contains(&(true, "c *:* m".to_string())));
        assert!(l.contains(&(true, "b *:* m".to_string())));
        assert!(l.contains(&(true, "c 1:3 rwm".to_string())));
        assert!(l.contains(&(true, "c 136:* rwm".to_string())));
    }
}
