//! Mount options from config.json -> mount(2) flags, propagation and filesystem data.
//! Pure logic, mirroring runc's table (`ro`, `nosuid`, `rbind`, `rslave`, ...).

use nix::mount::MsFlags;

/// The parsed `options` of one mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount itself (includes MS_BIND / MS_REC for binds).
    pub flags: MsFlags,
    /// Propagation changes applied after mounting, in order (MS_SHARED, MS_SLAVE|MS_REC...).
    pub propagation: Vec<MsFlags>,
    /// Everything the kernel flags do not cover, passed as the filesystem's data string.
    pub data: String,
    /// `idmap` (false) or `ridmap` (true, recursive): an ID-mapped bind mount.
    pub idmap: Option<bool>,
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// Parse `options` (order matters: a later `rw` clears an earlier `ro`).
pub fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        data: String::new(),
        idmap: None,
    };
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let opt = opt.as_str();
        if let Some((clear, f)) = flag(opt) {
            if clear {
                out.flags.remove(f);
            } else {
                out.flags.insert(f);
            }
        } else if let Some(p) = propagation(opt) {
            out.propagation.push(p);
        } else if opt == "idmap" || opt == "ridmap" {
            out.idmap = Some(opt == "ridmap");
        } else if opt == "tmpcopyup" {
            // runc extension (copy the shadowed content into a tmpfs): not implemented; the
            // tmpfs is simply mounted empty, which is what runc does when the dir is empty.
        } else {
            data.push(opt);
        }
    }
    out.data = data.join(",");
    out
}

/// Option names that map to mount flags: `(name, clears, flag)`.
const FLAGS: &[(&str, bool, MsFlags)] = {
    use MsFlags as F;
    &[
        ("defaults", false, F::empty()),
        ("ro", false, F::MS_RDONLY),
        ("rw", true, F::MS_RDONLY),
        ("nosuid", false, F::MS_NOSUID),
        ("suid", true, F::MS_NOSUID),
        ("nodev", false, F::MS_NODEV),
        ("dev", true, F::MS_NODEV),
        ("noexec", false, F::MS_NOEXEC),
        ("exec", true, F::MS_NOEXEC),
        ("sync", false, F::MS_SYNCHRONOUS),
        ("async", true, F::MS_SYNCHRONOUS),
        ("dirsync", false, F::MS_DIRSYNC),
        ("remount", false, F::MS_REMOUNT),
        ("mand", false, F::MS_MANDLOCK),
        ("nomand", true, F::MS_MANDLOCK),
        ("atime", true, F::MS_NOATIME),
        ("noatime", false, F::MS_NOATIME),
        ("diratime", true, F::MS_NODIRATIME),
        ("nodiratime", false, F::MS_NODIRATIME),
        ("relatime", false, F::MS_RELATIME),
        ("norelatime", true, F::MS_RELATIME),
        ("strictatime", false, F::MS_STRICTATIME),
        ("nostrictatime", true, F::MS_STRICTATIME),
        ("bind", false, F::MS_BIND),
        ("rbind", false, F::MS_BIND.union(F::MS_REC)),
    ]
};

/// Propagation option names.
const PROPAGATION: &[(&str, MsFlags)] = {
    use MsFlags as F;
    &[
        ("private", F::MS_PRIVATE),
        ("rprivate", F::MS_PRIVATE.union(F::MS_REC)),
        ("shared", F::MS_SHARED),
        ("rshared", F::MS_SHARED.union(F::MS_REC)),
        ("slave", F::MS_SLAVE),
        ("rslave", F::MS_SLAVE.union(F::MS_REC)),
        ("unbindable", F::MS_UNBINDABLE),
        ("runbindable", F::MS_UNBINDABLE.union(F::MS_REC)),
    ]
};

/// Every option name understood as a flag or a propagation (what `features` lists).
pub fn known_names() -> impl Iterator<Item = &'static str> {
    FLAGS
        .iter()
        .map(|(n, _, _)| *n)
        .chain(PROPAGATION.iter().map(|(n, _)| *n))
        .chain(["idmap", "ridmap"])
}

/// `(clears, flag)` for option names that map to mount flags.
fn flag(opt: &str) -> Option<(bool, MsFlags)> {
    FLAGS
        .iter()
        .find(|(n, _, _)| *n == opt)
        .map(|(_, clears, f)| (*clears, *f))
}

fn propagation(opt: &str) -> Option<MsFlags> {
    PROPAGATION.iter().find(|(n, _)| *n == opt).map(|(_, f)| *f)
}

/// `linux.rootfsPropagation` -> the flags applied recursively to `/` before anything else.
/// runc's default (empty) is `rslave`: host mounts propagate in, nothing propagates out.
pub fn rootfs_propagation(value: Option<&str>) -> Result<MsFlags, String> {
    match value.unwrap_or("") {
        "" => Ok(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        v => propagation(v)
            .map(|f| f | MsFlags::MS_REC)
            .ok_or_else(|| format!("linux.rootfsPropagation: unknown value {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data_are_split() {
        let o = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(o.propagation.is_empty());
        assert!(!o.is_bind());
    }

    #[test]
    fn later_options_override_earlier_ones() {
        assert_eq!(p(&["ro", "rw"]).flags, MsFlags::empty());
        assert_eq!(p(&["rw", "ro"]).flags, MsFlags::MS_RDONLY);
        assert_eq!(p(&["noexec", "exec", "nodev"]).flags, MsFlags::MS_NODEV);
    }

    #[test]
    fn binds_and_propagation() {
        let o = p(&["rbind", "ro", "rprivate"]);
        assert!(o.is_bind());
        assert_eq!(
            o.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        );
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert_eq!(p(&["bind", "shared"]).propagation, vec![MsFlags::MS_SHARED]);
        assert!(p(&["bind"]).is_bind());
        assert_eq!(p(&["bind"]).data, "");
    }

    #[test]
    fn rootfs_propagation_defaults_to_rslave() {
        assert_eq!(
            rootfs_propagation(None).unwrap(),
            MsFlags::MS_SLAVE | MsFlags::MS_REC
        );
        assert_eq!(
            rootfs_propagation(Some("private")).unwrap(),
            MsFlags::MS_PRIVATE | MsFlags::MS_REC
        );
        assert!(
            rootfs_propagation(Some("bogus"))
                .unwrap_err()
                .contains("rootfsPropagation")
        );
    }
}
