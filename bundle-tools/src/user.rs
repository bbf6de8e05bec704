//! `/etc/passwd` and `/etc/group` lookups inside a rootfs.
