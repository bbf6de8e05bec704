//! `linux.resources.devices` on cgroup v2: an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program
//! attached to the container's cgroup.
//!
//! cgroup v2 has no devices.allow/deny files; the kernel asks a BPF program instead. Without
//! one, a container holding CAP_MKNOD could create and open any host device node.
//! libcgroups only does this behind its `cgroupsv2_devices` feature, which builds libbpf
//! from C sources; the program is a few dozen instructions, so we assemble it here.
//! (v1 hosts get the same rules as lines in devices.allow/deny: `devices_v1`.)
//!
//! Rule semantics follow the v1 devices controller closely enough for OCI configs: the last
//! matching rule wins; an allow rule matches when the requested access is a subset of its
//! access, a deny rule when they overlap; with no match, access is allowed unless the
//! config starts from a deny-all rule (as every generated config does).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;
use crate::linux::sys::{self, BpfInsn as Insn};

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// access_type = (access << 16) | type
pub(super) const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

// Opcodes (include/uapi/linux/bpf_common.h, bpf.h).
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV32_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// The rules libcgroups' v1 devices controller appends after the config's own, so that
/// v1 and v2 containers see the same devices: mknod of anything, and the standard nodes.
pub(super) fn default_rules() -> Vec<(i32, Option<i64>, Option<i64>, i32)> {
    let rwm = ACC_ALL;
    vec![
        (DEV_CHAR, None, None, ACC_MKNOD),
        (DEV_BLOCK, None, None, ACC_MKNOD),
        (DEV_CHAR, Some(1), Some(3), rwm),    // null
        (DEV_CHAR, Some(1), Some(5), rwm),    // zero
        (DEV_CHAR, Some(1), Some(7), rwm),    // full
        (DEV_CHAR, Some(1), Some(8), rwm),    // random
        (DEV_CHAR, Some(1), Some(9), rwm),    // urandom
        (DEV_CHAR, Some(5), Some(0), rwm),    // tty
        (DEV_CHAR, Some(5), Some(1), rwm),    // console
        (DEV_CHAR, Some(5), Some(2), rwm),    // ptmx
        (DEV_CHAR, Some(136), None, rwm),     // pts
        (DEV_CHAR, Some(10), Some(200), rwm), // net/tun
    ]
}

fn access_bits(access: Option<&str>) -> Result<i32, CgroupError> {
    let Some(access) = access.filter(|a| !a.is_empty()) else {
        return Ok(ACC_ALL);
    };
    access.chars().try_fold(0, |bits, c| match c {
        'r' => Ok(bits | ACC_READ),
        'w' => Ok(bits | ACC_WRITE),
        'm' => Ok(bits | ACC_MKNOD),
        other => Err(CgroupError::Invalid(format!(
            "resources.devices: access {access:?}: unknown {other:?}"
        ))),
    })
}

/// Assembles the filter for `rules` (config order).
fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, CgroupError> {
    // (allow, type or 0 for all, major, minor, access)
    let mut all = Vec::new();
    for r in rules {
        let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 0,
            LinuxDeviceType::B => DEV_BLOCK,
            LinuxDeviceType::C | LinuxDeviceType::U => DEV_CHAR,
            LinuxDeviceType::P => continue, // FIFOs are not subject to the device cgroup
        };
        let wild = |n: Option<i64>| n.filter(|&n| n >= 0);
        all.push((
            r.allow(),
            typ,
            wild(r.major()),
            wild(r.minor()),
            access_bits(r.access().as_deref())?,
        ));
    }
    for (typ, major, minor, acc) in default_rules() {
        all.push((true, typ, major, minor, acc));
    }
    let deny_by_default = all.first().is_some_and(|&(allow, typ, major, minor, acc)| {
        !allow && typ == 0 && major.is_none() && minor.is_none() && acc == ACC_ALL
    });

    let mut prog = vec![
        insn(LDX_W, 2, 1, 0, 0), // r2 = access_type
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0), // r3 = access
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0), // r4 = major
        insn(LDX_W, 5, 1, 8, 0), // r5 = minor
    ];
    // Last rule first: the first block that matches decides.
    for &(allow, typ, major, minor, acc) in all.iter().rev() {
        // Each test jumps past the block (offset patched below) when it does not match.
        let mut block = Vec::new();
        if typ != 0 {
            block.push(insn(JNE_K, 2, 0, 0, typ));
        }
        if allow && acc != ACC_ALL {
            block.push(insn(MOV32_X, 1, 3, 0, 0));
            block.push(insn(AND32_K, 1, 0, 0, !acc & ACC_ALL));
            block.push(insn(JNE_K, 1, 0, 0, 0));
        } else if !allow && acc != ACC_ALL {
            block.push(insn(MOV32_X, 1, 3, 0, 0));
            block.push(insn(AND32_K, 1, 0, 0, acc));
            block.push(insn(JEQ_K, 1, 0, 0, 0));
        }
        if let Some(major) = major {
            block.push(insn(JNE_K, 4, 0, 0, clamp(major)));
        }
        if let Some(minor) = minor {
            block.push(insn(JNE_K, 5, 0, 0, clamp(minor)));
        }
        block.push(insn(MOV32_K, 0, 0, 0, allow as i32));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K || ins.code == JEQ_K {
                ins.off = (len - i - 1) as i16;
            }
        }
        prog.extend(block);
        // A rule that matches everything ends the program: the verifier refuses
        // unreachable instructions after it.
        if len == 2 {
            return Ok(prog);
        }
    }
    prog.push(insn(MOV32_K, 0, 0, 0, (!deny_by_default) as i32));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    Ok(prog)
}

fn clamp(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Loads the filter for `rules` and attaches it to the cgroup directory `dir`.
pub(super) fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let prog = program(rules)?;
    let fail = |what: &str, e: std::io::Error| CgroupError::Controller {
        controller: "devices".into(),
        detail: format!("{what}: {}", super::resources::describe_io(&e)),
    };
    let prog_fd = sys::bpf_load_device_filter(&prog, c"Apache", "mocker").map_err(|e| {
        fail(
            &format!("load the eBPF device filter ({})", e.verifier_last_line),
            e.error,
        )
    })?;
    let cgroup = File::open(dir).map_err(|e| fail("open the cgroup", e))?;
    sys::bpf_attach_device_filter(cgroup.as_fd(), prog_fd.as_fd())
        .map_err(|e| fail("attach the eBPF device filter", e))?;
    // The cgroup holds the program now; our fds can go.
    Ok(())
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    use super::*;

    /// Runs the program in a tiny interpreter of the opcodes it uses: enough to check the
    /// rule logic here; the kernel check is the real test in `tests.rs`.
    fn run(prog: &[Insn], typ: i32, major: u32, minor: u32, acc: i32) -> bool {
        let ctx = [((acc as u32) << 16) | typ as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0x0f) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = ctx[i.off as usize / 4] as u64,
                AND32_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                RSH32_K => r[dst] = (r[dst] as u32 >> i.imm) as u64,
                MOV32_K => r[dst] = i.imm as u32 as u64,
                MOV32_X => r[dst] = r[src] as u32 as u64,
                JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                JEQ_K if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
                JNE_K | JEQ_K => {}
                EXIT => return r[0] == 1,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        mm: Option<(i64, i64)>,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(acc);
        if let Some((major, minor)) = mm {
            b = b.major(major).minor(minor);
        }
        b.build().unwrap()
    }

    #[test]
    fn last_matching_rule_wins() {
        let rules = vec![
            rule(false, LinuxDeviceType::A, None, "rwm"),
            rule(true, LinuxDeviceType::C, Some((1, 11)), "r"),
            rule(false, LinuxDeviceType::C, Some((1, 3)), "w"),
        ];
        let p = program(&rules).unwrap();
        let (r, w, m) = (ACC_READ, ACC_WRITE, ACC_MKNOD);
        assert!(run(&p, DEV_CHAR, 1, 11, r), "kmsg read allowed");
        assert!(!run(&p, DEV_CHAR, 1, 11, r | w), "kmsg write denied");
        assert!(!run(&p, DEV_BLOCK, 8, 0, r), "disk denied");
        assert!(run(&p, DEV_BLOCK, 8, 0, m), "mknod allowed by default");
        assert!(
            run(&p, DEV_CHAR, 1, 3, r | w),
            "defaults come after the config"
        );
        assert!(run(&p, DEV_CHAR, 136, 7, r | w), "any pts");
        assert!(!run(&p, DEV_CHAR, 10, 229, r), "fuse denied");
        // Without a deny-all start, unmatched access is allowed, as in a v1 child cgroup.
        let open = program(&[rule(false, LinuxDeviceType::C, Some((1, 11)), "r")]).unwrap();
        assert!(!run(&open, DEV_CHAR, 1, 11, r | w));
        assert!(run(&open, DEV_BLOCK, 8, 0, r));
    }

    #[test]
    fn bad_access_is_refused() {
        let err = program(&[rule(true, LinuxDeviceType::C, None, "rx")]).unwrap_err();
        assert!(err.to_string().contains("resources.devices"), "{err}");
    }
}
