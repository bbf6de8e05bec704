//! Compiled seccomp programs kept under the state root, so that a profile is compiled once
//! per host rather than once per container: engines pass the same default profile every
//! time, and libseccomp needs about 15 ms for podman's (more than the rest of `create`).
//!
//! The key is the SHA-256 of everything the program depends on: the profile as JSON, the
//! libseccomp version, the kernel release and the machine (a kernel without an action or a
//! syscall compiles differently). A cryptographic hash, because a colliding profile would
//! hand one container another's filter. Files are written whole (temp + rename) in a
//! root-only directory; a file that is not a whole number of instructions is rebuilt.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::Result;
use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

/// The cache's directory name under the state root: `@` is not allowed in container ids.
pub const DIR: &str = "@seccomp";

const INSN: usize = std::mem::size_of::<libc::sock_filter>();

/// The program for `profile` from `root/@seccomp`, or `build` it and keep it there. The cache
/// never turns a success into a failure: an unwritable cache only costs the compile.
pub fn get_or_build(
    root: &Path,
    profile: &LinuxSeccomp,
    build: impl FnOnce(&LinuxSeccomp) -> Result<Vec<libc::sock_filter>>,
) -> Result<Vec<libc::sock_filter>> {
    let dir = root.join(DIR);
    let file = dir.join(key(profile));
    if let Ok(bytes) = fs::read(&file)
        && !bytes.is_empty()
        && bytes.len() % INSN == 0
    {
        return Ok(decode(&bytes));
    }
    let program = build(profile)?;
    let _ = store(&dir, &file, &encode(&program));
    Ok(program)
}

fn key(profile: &LinuxSeccomp) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(profile).expect("a profile serializes"));
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        h.update(format!("\0libseccomp {}.{}.{}", v.major, v.minor, v.micro));
    }
    let uts = nix::sys::utsname::uname().ok();
    if let Some(u) = &uts {
        h.update(b"\0");
        h.update(u.release().as_encoded_bytes());
        h.update(b"\0");
        h.update(u.machine().as_encoded_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn store(dir: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    fs::rename(&tmp, file)
}

fn encode(program: &[libc::sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(program.len() * INSN);
    for i in program {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

/// Raw `struct sock_filter` bytes (what libseccomp exports and the cache stores).
pub fn decode(bytes: &[u8]) -> Vec<libc::sock_filter> {
    bytes
        .chunks_exact(INSN)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_program_is_built_once_and_read_back_the_same() {
        let root = tempfile::tempdir().unwrap();
        let p = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
        let prog = vec![libc::sock_filter {
            code: 6,
            jt: 1,
            jf: 2,
            k: 0x7fff0000,
        }];
        let mut builds = 0;
        for _ in 0..3 {
            let got = get_or_build(root.path(), &p, |_| {
                builds += 1;
                Ok(prog.clone())
            })
            .unwrap();
            assert_eq!(encode(&got), encode(&prog));
        }
        assert_eq!(builds, 1);
        // Another profile is another program; a truncated file is rebuilt.
        let other = profile(r#"{"defaultAction":"SCMP_ACT_LOG"}"#);
        assert_ne!(key(&p), key(&other));
        let file = root.path().join(DIR).join(key(&p));
        fs::write(&file, [1, 2, 3]).unwrap();
        get_or_build(root.path(), &p, |_| {
            builds += 1;
            Ok(prog.clone())
        })
        .unwrap();
        assert_eq!(builds, 2);
    }
}
