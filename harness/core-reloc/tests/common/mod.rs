//! The committed ELF fixtures: `tests/fixtures/obj/*.o`, built from the C sources beside them by
//! `scripts/build-engine-fixtures.sh` (which `.ci/run` checks rebuild byte for byte), so these
//! tests need no compiler.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The object built from `tests/fixtures/{name}.c` with `defines` (at most one `-DNAME[=V]`,
/// named as the build script names it: `core_layouts` + `-DTARGET_LAYOUT` is
/// `obj/core_layouts-TARGET_LAYOUT.o`).
pub fn fixture_object(name: &str, defines: &[&str]) -> Vec<u8> {
    let tag: String = defines
        .iter()
        .map(|d| d.trim_start_matches("-D").replace('=', ""))
        .collect::<Vec<_>>()
        .join("-");
    let file = if tag.is_empty() {
        format!("{name}.o")
    } else {
        format!("{name}-{tag}.o")
    };
    let path = fixtures_dir().join("obj").join(file);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e} (add the variant to scripts/build-engine-fixtures.sh and run it)",
            path.display()
        )
    })
}

/// Decodes instruction `i` of a raw stream as (code, dst, src, off, imm).
pub fn insn(insns: &[u8], i: usize) -> (u8, u8, u8, i16, i32) {
    let b = &insns[i * 8..i * 8 + 8];
    (
        b[0],
        b[1] & 0xf,
        b[1] >> 4,
        i16::from_le_bytes([b[2], b[3]]),
        i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    )
}
