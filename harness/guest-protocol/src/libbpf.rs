//! libbpf as a second loader in the guest: what it made of an object, beside the harness's own
//! load, and the kernel's translated instructions of both, compared up to map ids.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where the runner puts the static libbpf loader inside the bundle.
pub const LIBBPF_LOADER_PATH: &str = "harness/libbpf-loader";

/// One object as libbpf loaded it in the same guest, right after the harness's own load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibbpfObject {
    /// The object's name, as in the manifest.
    pub object: String,
    /// `libbpf_version_string()` of the loader, for example `v1.1`.
    #[serde(default)]
    pub libbpf_version: String,
    /// Wall time of the libbpf loader process for this object, in microseconds.
    pub libbpf_us: u64,
    /// Wall time of the harness's own load of the same object, in microseconds.
    pub ours_us: u64,
    /// libbpf's verdict on each program, in the loader's order.
    pub programs: Vec<LibbpfProgram>,
    /// The translated instructions of each program the harness loaded, by program name.
    #[serde(default)]
    pub ours_xlated: BTreeMap<String, Xlated>,
    /// The loader could not give a verdict (did not start, crashed, timed out): every program
    /// it did not report counts as a disagreement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// libbpf refused the object as a whole (it did not open): then no program may load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_object: Option<String>,
}

/// libbpf's verdict on one program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibbpfProgram {
    /// The program (function) name.
    pub program: String,
    /// Its ELF section.
    pub section: String,
    /// libbpf loaded it.
    pub loaded: bool,
    /// Why libbpf refused it: its first warning and the verifier's last line.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Its translated instructions, when it loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xlated: Option<Xlated>,
}

/// A loaded program's translated instructions, normalised by [`normalise`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xlated {
    /// Number of translated instructions.
    pub insns: u32,
    /// SHA-256 of the normalised instructions, lower-case hex.
    pub sha256: String,
    /// The first [`MAX_SHOWN_XLATED_BYTES`] normalised bytes, carried only when the two loaders'
    /// hashes differ, so the runner can show where.
    #[serde(
        default,
        with = "crate::hexbytes::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub bytes: Option<Vec<u8>>,
}

/// Bytes of each side's instructions carried for a difference (1024 instructions).
pub const MAX_SHOWN_XLATED_BYTES: usize = 1024 * INSN;

const INSN: usize = 8;
const LD_IMM64: u8 = 0x18;
/// `src_reg` values of an `ld_imm64` whose `imm` names a map (as the kernel dumps it: its id).
const MAP_REFERENCES: [u8; 4] = [
    1, // BPF_PSEUDO_MAP_FD
    2, // BPF_PSEUDO_MAP_VALUE
    5, // BPF_PSEUDO_MAP_IDX
    6, // BPF_PSEUDO_MAP_IDX_VALUE
];

impl Xlated {
    /// From the raw `xlated_prog_insns` the kernel returned.
    pub fn from_raw(raw: &[u8]) -> Xlated {
        let normalised = normalise(raw);
        Xlated {
            insns: (normalised.len() / INSN) as u32,
            sha256: hex::encode(Sha256::digest(&normalised)),
            bytes: None,
        }
    }

    /// The same, carrying the bytes a difference is shown from.
    pub fn with_bytes(raw: &[u8]) -> Xlated {
        let mut normalised = normalise(raw);
        normalised.truncate(MAX_SHOWN_XLATED_BYTES);
        Xlated {
            bytes: Some(normalised),
            ..Xlated::from_raw(raw)
        }
    }
}

/// Where x86-64 kernel addresses start (the direct map and above).
const KERNEL_ADDRESSES: u64 = 0xffff_8000_0000_0000;
/// What a kernel address compares as: `ld_imm64 rX, 0xffffffffffffffff`.
const KERNEL_ADDRESS_MARK: u32 = u32::MAX;

/// The instructions up to map ids and kernel addresses: each map id an `ld_imm64` names becomes its order of first
/// appearance in the program (1, 2, ...), so two loads of one program compare equal whatever
/// ids the kernel gave their maps, yet a program that swaps two maps still differs. A 64-bit
/// constant that is a kernel address reads as one mark (a constant 0 where the other has an
/// address still differs). A trailing partial instruction is dropped.
pub fn normalise(raw: &[u8]) -> Vec<u8> {
    let mut out = raw[..raw.len() - raw.len() % INSN].to_vec();
    let mut ordinals: Vec<u32> = Vec::new();
    let mut i = 0;
    let len = out.len();
    while i + INSN <= len {
        let insn = &mut out[i..i + INSN];
        let src = insn[1] >> 4;
        let code = insn[0];
        if code == LD_IMM64 && MAP_REFERENCES.contains(&src) {
            let id = u32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
            let ordinal = match ordinals.iter().position(|&seen| seen == id) {
                Some(at) => at + 1,
                None => {
                    ordinals.push(id);
                    ordinals.len()
                }
            };
            insn[4..8].copy_from_slice(&(ordinal as u32).to_le_bytes());
            // The second half of an ld_imm64 (a value offset, or zero) stays as it is.
            i += 2 * INSN;
        } else if code == LD_IMM64 && src == 0 && i + 2 * INSN <= len {
            let lo = u32::from_le_bytes([out[i + 4], out[i + 5], out[i + 6], out[i + 7]]);
            let hi = u32::from_le_bytes([out[i + 12], out[i + 13], out[i + 14], out[i + 15]]);
            let value = (u64::from(hi) << 32) | u64::from(lo);
            // A kernel address the verifier wrote in (per-load metadata such as a btf_struct_meta
            // record, or a ksym): two loads of one program get different ones.
            if value >= KERNEL_ADDRESSES {
                out[i + 4..i + 8].copy_from_slice(&KERNEL_ADDRESS_MARK.to_le_bytes());
                out[i + 12..i + 16].copy_from_slice(&KERNEL_ADDRESS_MARK.to_le_bytes());
            }
            i += 2 * INSN;
        } else if code == LD_IMM64 {
            i += 2 * INSN;
        } else {
            i += INSN;
        }
    }
    out
}

/// One instruction in words: `code 0x18 dst r1 src 1 off 0 imm 1`.
pub fn describe_insn(insn: &[u8]) -> String {
    if insn.len() < INSN {
        return format!("(partial: {})", hex::encode(insn));
    }
    format!(
        "code {:#04x} dst r{} src {} off {} imm {}",
        insn[0],
        insn[1] & 0xf,
        insn[1] >> 4,
        i16::from_le_bytes([insn[2], insn[3]]),
        i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]])
    )
}

/// Where two normalised programs first differ, with a few instructions of each side around it;
/// None when the bytes shown are equal (the difference lies beyond them, or there is none).
pub fn describe_difference(ours: &[u8], theirs: &[u8]) -> Option<String> {
    let at = ours
        .chunks(INSN)
        .zip(theirs.chunks(INSN))
        .position(|(a, b)| a != b)
        .or_else(|| (ours.len() != theirs.len()).then_some(ours.len().min(theirs.len()) / INSN))?;
    let from = at.saturating_sub(2);
    let mut text = format!("first difference at instruction {at}:\n");
    for (label, side) in [("ours  ", ours), ("libbpf", theirs)] {
        for index in from..at + 3 {
            let Some(insn) = side.get(index * INSN..(index + 1) * INSN) else {
                break;
            };
            let mark = if index == at { '>' } else { ' ' };
            text.push_str(&format!(
                "  {mark} {label} {index:5}: {}\n",
                describe_insn(insn)
            ));
        }
    }
    Some(text.trim_end().to_string())
}

/// One program line of the libbpf loader (see `harness/runner/libbpf-loader/loader.c`):
/// `program \t section \t loaded|refused \t reason \t xlated-hex-or-dash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderLine {
    /// The program (function) name.
    pub program: String,
    /// Its ELF section.
    pub section: String,
    /// libbpf loaded it.
    pub loaded: bool,
    /// Why not, when it did not.
    pub reason: String,
    /// Raw translated instructions, for loaded programs the kernel described.
    pub xlated: Option<Vec<u8>>,
}

/// Parses the loader's output: its version line and one [`LoaderLine`] per program. Lines it
/// cannot read are returned as errors in the third value, never dropped silently.
pub fn parse_loader_output(text: &str) -> (String, Vec<LoaderLine>, Vec<String>) {
    let mut version = String::new();
    let mut lines = Vec::new();
    let mut unreadable = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(v) = line.strip_prefix("# libbpf ") {
            version = v.trim().to_string();
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let parsed = match fields.as_slice() {
            [program, section, status @ ("loaded" | "refused"), reason, xlated] => {
                let xlated = match *xlated {
                    "-" | "" => Ok(None),
                    hex_text => hex::decode(hex_text).map(Some),
                };
                xlated.ok().map(|xlated| LoaderLine {
                    program: program.to_string(),
                    section: section.to_string(),
                    loaded: *status == "loaded",
                    reason: reason.to_string(),
                    xlated,
                })
            }
            _ => None,
        };
        match parsed {
            Some(l) => lines.push(l),
            None => unreadable.push(line.chars().take(200).collect()),
        }
    }
    (version, lines, unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Vec<u8> {
        let mut v = vec![code, dst | (src << 4)];
        v.extend(off.to_le_bytes());
        v.extend(imm.to_le_bytes());
        v
    }

    fn program(map_ids: &[u32]) -> Vec<u8> {
        let mut p = Vec::new();
        for &id in map_ids {
            p.extend(insn(LD_IMM64, 1, 1, 0, id as i32));
            p.extend(insn(0, 0, 0, 0, 0));
            p.extend(insn(0x85, 0, 0, 0, 1));
        }
        p.extend(insn(0xb7, 0, 0, 0, 0));
        p.extend(insn(0x95, 0, 0, 0, 0));
        p
    }

    #[test]
    fn map_ids_do_not_count_but_their_order_does() {
        assert_eq!(
            normalise(&program(&[7, 9, 7])),
            normalise(&program(&[3, 4, 3]))
        );
        assert_ne!(normalise(&program(&[7, 9])), normalise(&program(&[7, 7])));
        assert_ne!(
            normalise(&program(&[7, 9])),
            normalise(&program(&[9, 7, 9]))
        );
        assert_eq!(
            Xlated::from_raw(&program(&[11])).sha256,
            Xlated::from_raw(&program(&[12])).sha256
        );
    }

    #[test]
    fn map_value_offsets_and_plain_constants_stay() {
        let mut a = insn(LD_IMM64, 1, 2, 0, 5);
        a.extend(insn(0, 0, 0, 0, 16));
        let mut b = insn(LD_IMM64, 1, 2, 0, 6);
        b.extend(insn(0, 0, 0, 0, 24));
        assert_ne!(normalise(&a), normalise(&b), "offset 16 vs 24");
        let mut c = insn(LD_IMM64, 1, 0, 0, 5);
        c.extend(insn(0, 0, 0, 0, 0));
        let mut d = insn(LD_IMM64, 1, 0, 0, 6);
        d.extend(insn(0, 0, 0, 0, 0));
        assert_ne!(normalise(&c), normalise(&d), "a constant is not a map id");
        let address = |lo: u32| {
            let mut v = insn(LD_IMM64, 2, 0, 0, lo as i32);
            v.extend(insn(0, 0, 0, 0, 0xffff_8881_u32 as i32));
            v
        };
        assert_eq!(
            normalise(&address(0x9000_0008)),
            normalise(&address(0x9a00_1068))
        );
        let mut zero = insn(LD_IMM64, 2, 0, 0, 0);
        zero.extend(insn(0, 0, 0, 0, 0));
        assert_ne!(
            normalise(&address(8)),
            normalise(&zero),
            "an address is not 0"
        );
        assert_eq!(normalise(&[1, 2, 3]), Vec::<u8>::new());
    }

    #[test]
    fn a_difference_is_located_and_shown_for_both_sides() {
        let ours = program(&[1]);
        let mut theirs = ours.clone();
        theirs[3 * INSN + 4] = 1; // r0 = 1 instead of r0 = 0
        let text = describe_difference(&ours, &theirs).unwrap();
        assert!(
            text.starts_with("first difference at instruction 3"),
            "{text}"
        );
        assert!(
            text.contains("> ours       3: code 0xb7 dst r0 src 0 off 0 imm 0"),
            "{text}"
        );
        assert!(
            text.contains("> libbpf     3: code 0xb7 dst r0 src 0 off 0 imm 1"),
            "{text}"
        );
        assert!(describe_difference(&ours, &ours).is_none());
        let longer = [ours.clone(), insn(0x95, 0, 0, 0, 0)].concat();
        assert!(describe_difference(&ours, &longer)
            .unwrap()
            .contains("instruction 5"));
    }

    #[test]
    fn loader_lines_parse_and_bad_ones_are_kept() {
        let text = "# libbpf v1.1\n\
                    prog_a\txdp\tloaded\t\tb400000002000000\n\
                    prog_b\tkprobe/x\trefused\tlibbpf: failed | R1 invalid mem access\t-\n\
                    -\t-\trefused\topen: error -2 (No such file or directory)\t-\n\
                    garbage\n\
                    prog_c\txdp\tloaded\t\tnothex\n";
        let (version, lines, bad) = parse_loader_output(text);
        assert_eq!(version, "v1.1");
        assert_eq!(lines.len(), 3);
        assert!(lines[0].loaded);
        assert_eq!(
            lines[0].xlated.as_deref(),
            Some(&[0xb4, 0, 0, 0, 2, 0, 0, 0][..])
        );
        assert!(!lines[1].loaded);
        assert_eq!(lines[1].reason, "libbpf: failed | R1 invalid mem access");
        assert_eq!(lines[2].program, "-");
        assert_eq!(bad, ["garbage", "prog_c\txdp\tloaded\t\tnothex"]);
    }
}
