//! Feature probes: each asks the running kernel to accept a minimal object that needs the
//! feature. Nothing here looks at the version number.

use crate::asm::{call, exit, mov64_imm, to_bytes};
use crate::btf::{btf_info, BtfBuilder};
use crate::consts::*;
use crate::error::BpfError;
use crate::prog::{load_program, test_run, ProgramLoad, TestRun};

/// Which BTF kinds and flags `BPF_BTF_LOAD` accepts. Each field is decided by loading a tiny
/// hand-built blob that uses the feature (and nothing newer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BtfFeatures {
    /// Any BTF at all (an `INT`).
    pub base: bool,
    /// `FUNC` + `FUNC_PROTO` (4.20/5.0).
    pub func: bool,
    /// `FUNC` with global linkage (5.6).
    pub func_global: bool,
    /// `VAR` + `DATASEC` (5.2).
    pub datasec: bool,
    /// `FLOAT` (5.13).
    pub float: bool,
    /// `DECL_TAG` (5.16).
    pub decl_tag: bool,
    /// `TYPE_TAG` (5.17).
    pub type_tag: bool,
    /// `ENUM64` (6.0).
    pub enum64: bool,
    /// `kind_flag` on `ENUM` for signed enumerators (6.0).
    pub enum_signed: bool,
    /// `/sys/kernel/btf/vmlinux` exists (kernel's own BTF exported, 5.5+ with
    /// `CONFIG_DEBUG_INFO_BTF`).
    pub vmlinux_btf: bool,
}

/// The blob for one probe; public so tests and other crates can look at or reuse them.
pub fn btf_probe_blob(feature: &str) -> Option<Vec<u8>> {
    let mut b = BtfBuilder::new();
    match feature {
        "base" => {
            b.int("int", 4, true);
        }
        "func" | "func_global" => {
            let int = b.int("int", 4, true);
            let proto = b.func_proto(int, &[]);
            let linkage = if feature == "func" {
                BTF_FUNC_STATIC
            } else {
                BTF_FUNC_GLOBAL
            };
            b.func("probe_fn", proto, linkage);
        }
        "datasec" => {
            let int = b.int("int", 4, true);
            let var = b.add_type(
                "probe_var",
                btf_info(BTF_KIND_VAR, 0, false),
                int,
                &[BTF_VAR_GLOBAL_ALLOCATED],
            );
            b.add_type(
                ".data",
                btf_info(BTF_KIND_DATASEC, 1, false),
                4,
                &[var, 0, 4],
            );
        }
        "float" => {
            b.add_type("float", btf_info(BTF_KIND_FLOAT, 0, false), 4, &[]);
        }
        "decl_tag" => {
            let int = b.int("int", 4, true);
            let var = b.add_type(
                "probe_var",
                btf_info(BTF_KIND_VAR, 0, false),
                int,
                &[BTF_VAR_GLOBAL_ALLOCATED],
            );
            b.add_type(
                "probe_tag",
                btf_info(BTF_KIND_DECL_TAG, 0, false),
                var,
                &[u32::MAX], // component_idx -1: the variable itself
            );
        }
        "type_tag" => {
            let int = b.int("int", 4, true);
            let tag = b.add_type("probe_tag", btf_info(BTF_KIND_TYPE_TAG, 0, false), int, &[]);
            b.ptr(tag);
        }
        "enum64" => {
            let name = b.add_str("PROBE_VAL");
            b.add_type(
                "probe_enum64",
                btf_info(BTF_KIND_ENUM64, 1, false),
                8,
                &[name, 1, 1], // value 0x1_0000_0001
            );
        }
        "enum_signed" => {
            let name = b.add_str("PROBE_NEG");
            b.add_type(
                "probe_enum",
                btf_info(BTF_KIND_ENUM, 1, true),
                4,
                &[name, u32::MAX], // -1
            );
        }
        _ => return None,
    }
    Some(b.finish())
}

fn btf_accepted(feature: &str) -> Result<bool, BpfError> {
    let blob = btf_probe_blob(feature).expect("known probe");
    match crate::btf::load_btf(&blob) {
        Ok(_fd) => Ok(true),
        Err(e) if e.is_permission_denied() => Err(e),
        Err(_) => Ok(false),
    }
}

/// [`btf_features`], but an `EPERM` (no privilege) is an error instead of "all false".
pub fn try_btf_features() -> Result<BtfFeatures, BpfError> {
    Ok(BtfFeatures {
        base: btf_accepted("base")?,
        func: btf_accepted("func")?,
        func_global: btf_accepted("func_global")?,
        datasec: btf_accepted("datasec")?,
        float: btf_accepted("float")?,
        decl_tag: btf_accepted("decl_tag")?,
        type_tag: btf_accepted("type_tag")?,
        enum64: btf_accepted("enum64")?,
        enum_signed: btf_accepted("enum_signed")?,
        vmlinux_btf: std::path::Path::new("/sys/kernel/btf/vmlinux").exists(),
    })
}

/// What BTF the running kernel accepts. Without the privilege to load BTF everything but
/// `vmlinux_btf` reads false; use [`try_btf_features`] to tell that apart.
pub fn btf_features() -> BtfFeatures {
    try_btf_features().unwrap_or_else(|_| BtfFeatures {
        vmlinux_btf: std::path::Path::new("/sys/kernel/btf/vmlinux").exists(),
        ..Default::default()
    })
}

/// What a minimal program of a type needs at load time, as [`program_type_supported`] fills it
/// in for `r0 = 0; exit` (the rows of [`crate::prog_types::PROGRAM_TYPES`]). For the types
/// with a BTF target the probe gives `attach_btf_id = 1`, which no kernel accepts as a target:
/// reaching the verifier's complaint about it proves the type exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadRequirements {
    pub expected_attach_type: Option<u32>,
    pub needs_btf_target: bool,
    pub prog_flags: u32,
}

/// See [`LoadRequirements`]; read from [`crate::prog_types`].
pub fn load_requirements(program_type: u32) -> LoadRequirements {
    let t = crate::prog_types::program_type(program_type);
    LoadRequirements {
        expected_attach_type: t.probe_attach_type,
        needs_btf_target: t.needs_btf_target,
        prog_flags: t.probe_flags,
    }
}

/// The answer of [`program_type_support`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgTypeSupport {
    /// The minimal program loaded, or (types needing a BTF target) reached the verifier.
    Supported,
    /// The kernel does not know the type (`EINVAL` before the verifier): too old, or not built in.
    Unsupported,
    /// The kernel knows the type but refuses this process with `EPERM` although it may load
    /// other programs (an LSM or a sandbox policy; seen on the development host for `fentry`,
    /// `LSM` and `EXT`).
    Denied,
}

/// Like [`program_type_supported`], telling "unknown" from "known but denied".
pub fn program_type_support(program_type: u32) -> Result<ProgTypeSupport, BpfError> {
    let r = load_requirements(program_type);
    let insns = to_bytes(&[mov64_imm(0, 0), exit()]);
    let req = ProgramLoad {
        name: "probe_prog_type",
        program_type,
        expected_attach_type: r.expected_attach_type,
        insns: &insns,
        license: "GPL",
        attach_btf_id: r.needs_btf_target.then_some(1),
        prog_flags: r.prog_flags,
        ..Default::default()
    };
    match load_program(&req) {
        Ok(_) => Ok(ProgTypeSupport::Supported),
        Err(e) => {
            let errno = e.errno();
            if let Some(log) = e.log() {
                if !log.trim().is_empty() {
                    return Ok(ProgTypeSupport::Supported);
                }
            }
            if errno == Some(libc::EINVAL) {
                return Ok(ProgTypeSupport::Unsupported);
            }
            // EPERM is only "denied" if this process may load programs at all; otherwise
            // it is the caller's missing privilege and an error.
            if errno == Some(libc::EPERM)
                && program_type != BPF_PROG_TYPE_SOCKET_FILTER
                && program_type_support(BPF_PROG_TYPE_SOCKET_FILTER)? == ProgTypeSupport::Supported
            {
                return Ok(ProgTypeSupport::Denied);
            }
            Err(e)
        }
    }
}

/// Whether the running kernel knows `program_type`, by loading `r0 = 0; exit` of that type
/// with what [`load_requirements`] says it needs.
///
/// * loads, or is rejected with a verifier log (the type reached the verifier) → `true`;
/// * `EINVAL` without a log → `false` (unknown type, or not built into this kernel);
/// * `EPERM` while other programs load → `true` (the kernel knows the type; a policy denies
///   it: see [`program_type_support`] to tell);
/// * anything else, notably `EPERM` for everything (no privilege) → the error.
pub fn program_type_supported(program_type: u32) -> Result<bool, BpfError> {
    Ok(program_type_support(program_type)? != ProgTypeSupport::Unsupported)
}

/// `BPF_FUNC_get_attach_cookie` (5.15).
pub const HELPER_GET_ATTACH_COOKIE: i32 = 174;

/// Whether programs of `program_type` may call helper `helper` on this kernel, by loading
/// `call helper; exit` (libbpf's probe for `LINUX_HAS_BPF_COOKIE` does the same with a
/// tracepoint program).
pub fn helper_supported(program_type: u32, helper: i32) -> bool {
    let r = load_requirements(program_type);
    let insns = to_bytes(&[call(helper), exit()]);
    load_program(&ProgramLoad {
        name: "probe_helper",
        program_type,
        expected_attach_type: r.expected_attach_type,
        prog_flags: r.prog_flags,
        insns: &insns,
        ..Default::default()
    })
    .is_ok()
}

/// Program types whose test run takes a packet in `data_in`.
fn takes_packet(program_type: u32) -> bool {
    crate::prog_types::program_type(program_type).test_run
        == crate::prog_types::TestRunShape::Packet
}

/// A 64-byte Ethernet + IPv4 + UDP frame, for probes.
pub(crate) fn probe_packet() -> [u8; 64] {
    let mut p = [0u8; 64];
    p[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    p[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    p[14] = 0x45; // IPv4, IHL 5
    p[16..18].copy_from_slice(&50u16.to_be_bytes()); // total length
    p[22] = 64; // TTL
    p[23] = 17; // UDP
    p[26..30].copy_from_slice(&[10, 0, 0, 1]);
    p[30..34].copy_from_slice(&[10, 0, 0, 2]);
    p[34..36].copy_from_slice(&1234u16.to_be_bytes());
    p[36..38].copy_from_slice(&5678u16.to_be_bytes());
    p[38..40].copy_from_slice(&30u16.to_be_bytes());
    p
}

/// Whether `BPF_PROG_TEST_RUN` exists for `program_type` on this kernel: loads `r0 = 0; exit`
/// and runs it once (with a 64-byte frame for packet types, nothing otherwise). `false` if the
/// type does not load or the run says `ENOTSUPP`/`EOPNOTSUPP`; `true` if it runs or refuses the
/// generic input with `EINVAL` (a test-run handler exists but wants a specific context, e.g.
/// `SK_LOOKUP`). Types that need a BTF attach target are reported `false`.
pub fn test_run_supported(program_type: u32) -> Result<bool, BpfError> {
    let r = load_requirements(program_type);
    if r.needs_btf_target || program_type_support(program_type)? != ProgTypeSupport::Supported {
        return Ok(false);
    }
    let insns = to_bytes(&[mov64_imm(0, 0), exit()]);
    let fd = load_program(&ProgramLoad {
        name: "probe_test_run",
        program_type,
        expected_attach_type: r.expected_attach_type,
        prog_flags: r.prog_flags,
        insns: &insns,
        ..Default::default()
    })?;
    let packet = probe_packet();
    let run = TestRun {
        data_in: if takes_packet(program_type) {
            &packet
        } else {
            &[]
        },
        ..Default::default()
    };
    match test_run(&fd, &run) {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_supported() => Ok(false),
        Err(e) if e.is_invalid_argument() => Ok(true),
        Err(e) => Err(e),
    }
}

/// Whether XDP test runs accept an `xdp_md` context in and out (5.15+).
pub fn test_run_xdp_ctx_supported() -> Result<bool, BpfError> {
    let insns = to_bytes(&[mov64_imm(0, XDP_PASS as i32), exit()]);
    let fd = load_program(&ProgramLoad {
        name: "probe_xdp_ctx",
        program_type: BPF_PROG_TYPE_XDP,
        expected_attach_type: Some(BPF_XDP),
        insns: &insns,
        ..Default::default()
    })?;
    let packet = probe_packet();
    // struct xdp_md { data, data_end, data_meta, ingress_ifindex, rx_queue_index,
    // egress_ifindex }: data_end must equal the packet size.
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(packet.len() as u32).to_ne_bytes());
    let run = TestRun {
        data_in: &packet,
        ctx_in: Some(&ctx),
        ctx_size_out: ctx.len() as u32,
        ..Default::default()
    };
    match test_run(&fd, &run) {
        Ok(_) => Ok(true),
        Err(e) if e.is_invalid_argument() => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_has_a_blob() {
        for f in [
            "base",
            "func",
            "func_global",
            "datasec",
            "float",
            "decl_tag",
            "type_tag",
            "enum64",
            "enum_signed",
        ] {
            let blob = btf_probe_blob(f).unwrap();
            assert_eq!(&blob[..2], &BTF_MAGIC.to_ne_bytes(), "{f}");
        }
        assert!(btf_probe_blob("nope").is_none());
    }
}
