//! Compiles C fixtures with clang-19 into the test target's temporary directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Compiles `tests/fixtures/{name}.c` with extra `defines`, returning the object bytes.
pub fn compile(name: &str, defines: &[&str]) -> Vec<u8> {
    // Installs clang-19 as the harness would, or fails saying what to run.
    host_tools::ensure_bpf_toolchain_for_tests();
    let src = fixtures_dir().join(format!("{name}.c"));
    let tag = defines.join("").replace(['-', '='], "_");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}{tag}.bpf.o"));
    let status = Command::new("clang-19")
        .args(["-g", "-O2", "-target", "bpf", "-c"])
        .arg("-I")
        .arg(fixtures_dir())
        .args(defines)
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run clang-19 (needed to build BPF fixtures): {e}"));
    assert!(status.success(), "clang-19 failed on {}", src.display());
    std::fs::read(&out).unwrap_or_else(|e| panic!("reading {}: {e}", out.display()))
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
