//! A tiny eBPF instruction builder, for probes and hand-written test programs.
//!
//! ```
//! use bpf_loader::asm::*;
//! let prog = [mov64_imm(R0, 0), exit()];
//! assert_eq!(to_bytes(&prog).len(), 16);
//! ```

/// One `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The 8 bytes the kernel reads (`dst_reg` in the low nibble on little-endian hosts, the
    /// high nibble on big-endian ones, as the C bitfield lays it out).
    pub fn to_bytes(self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            (self.dst & 0xf) | (self.src << 4)
        } else {
            (self.dst << 4) | (self.src & 0xf)
        };
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = regs;
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

/// Concatenates instructions into the byte form [`crate::ProgramLoad::insns`] takes.
pub fn to_bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

pub const R0: u8 = 0;
pub const R1: u8 = 1;
pub const R2: u8 = 2;
pub const R3: u8 = 3;
pub const R4: u8 = 4;
pub const R5: u8 = 5;
pub const R6: u8 = 6;
pub const R7: u8 = 7;
pub const R8: u8 = 8;
pub const R9: u8 = 9;
/// Frame pointer (read-only).
pub const R10: u8 = 10;

// classes
pub const BPF_LD: u8 = 0x00;
pub const BPF_LDX: u8 = 0x01;
pub const BPF_ST: u8 = 0x02;
pub const BPF_STX: u8 = 0x03;
pub const BPF_ALU: u8 = 0x04;
pub const BPF_JMP: u8 = 0x05;
pub const BPF_JMP32: u8 = 0x06;
pub const BPF_ALU64: u8 = 0x07;
// sizes
pub const BPF_W: u8 = 0x00;
pub const BPF_H: u8 = 0x08;
pub const BPF_B: u8 = 0x10;
pub const BPF_DW: u8 = 0x18;
// modes
pub const BPF_IMM: u8 = 0x00;
pub const BPF_MEM: u8 = 0x60;
pub const BPF_ATOMIC: u8 = 0xc0;
// sources
pub const BPF_K: u8 = 0x00;
pub const BPF_X: u8 = 0x08;
// ALU ops
pub const BPF_ADD: u8 = 0x00;
pub const BPF_SUB: u8 = 0x10;
pub const BPF_MUL: u8 = 0x20;
pub const BPF_DIV: u8 = 0x30;
pub const BPF_OR: u8 = 0x40;
pub const BPF_AND: u8 = 0x50;
pub const BPF_LSH: u8 = 0x60;
pub const BPF_RSH: u8 = 0x70;
pub const BPF_NEG: u8 = 0x80;
pub const BPF_MOD: u8 = 0x90;
pub const BPF_XOR: u8 = 0xa0;
pub const BPF_MOV: u8 = 0xb0;
pub const BPF_ARSH: u8 = 0xc0;
// JMP ops
pub const BPF_JA: u8 = 0x00;
pub const BPF_JEQ: u8 = 0x10;
pub const BPF_JGT: u8 = 0x20;
pub const BPF_JGE: u8 = 0x30;
pub const BPF_JSET: u8 = 0x40;
pub const BPF_JNE: u8 = 0x50;
pub const BPF_JSGT: u8 = 0x60;
pub const BPF_JSGE: u8 = 0x70;
pub const BPF_CALL: u8 = 0x80;
pub const BPF_EXIT: u8 = 0x90;
pub const BPF_JLT: u8 = 0xa0;
pub const BPF_JLE: u8 = 0xb0;
pub const BPF_JSLT: u8 = 0xc0;
pub const BPF_JSLE: u8 = 0xd0;

// helper ids used by tests and probes
pub const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
pub const BPF_FUNC_MAP_UPDATE_ELEM: i32 = 2;
pub const BPF_FUNC_MAP_DELETE_ELEM: i32 = 3;
pub const BPF_FUNC_KTIME_GET_NS: i32 = 5;
pub const BPF_FUNC_GET_SMP_PROCESSOR_ID: i32 = 8;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// `dst = imm` (64-bit, sign-extended).
pub const fn mov64_imm(dst: u8, imm: i32) -> Insn {
    insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
}
/// `dst = src`.
pub const fn mov64_reg(dst: u8, src: u8) -> Insn {
    insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
}
/// `dst op= imm` (64-bit), `op` one of `BPF_ADD`, `BPF_SUB`, ...
pub const fn alu64_imm(op: u8, dst: u8, imm: i32) -> Insn {
    insn(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm)
}
/// `dst op= src` (64-bit).
pub const fn alu64_reg(op: u8, dst: u8, src: u8) -> Insn {
    insn(BPF_ALU64 | op | BPF_X, dst, src, 0, 0)
}
/// `dst = *(size *)(src + off)`, `size` one of `BPF_B`, `BPF_H`, `BPF_W`, `BPF_DW`.
pub const fn ldx_mem(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_LDX | BPF_MEM | size, dst, src, off, 0)
}
/// `*(size *)(dst + off) = src`.
pub const fn stx_mem(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_STX | BPF_MEM | size, dst, src, off, 0)
}
/// `*(size *)(dst + off) = imm`.
pub const fn st_mem(size: u8, dst: u8, off: i16, imm: i32) -> Insn {
    insn(BPF_ST | BPF_MEM | size, dst, 0, off, imm)
}
/// `lock *(size *)(dst + off) += src` (`size` `BPF_W` or `BPF_DW`; the old `BPF_XADD`, so it
/// loads on 5.10).
pub const fn atomic_add(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_STX | BPF_ATOMIC | size, dst, src, off, BPF_ADD as i32)
}
/// `if dst op imm goto +off`.
pub const fn jmp_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    insn(BPF_JMP | op | BPF_K, dst, 0, off, imm)
}
/// `if dst op src goto +off`.
pub const fn jmp_reg(op: u8, dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_JMP | op | BPF_X, dst, src, off, 0)
}
/// `goto +off`.
pub const fn ja(off: i16) -> Insn {
    insn(BPF_JMP | BPF_JA, 0, 0, off, 0)
}
/// Call helper `id`.
pub const fn call(id: i32) -> Insn {
    insn(BPF_JMP | BPF_CALL, 0, 0, 0, id)
}
/// `exit` (return r0).
pub const fn exit() -> Insn {
    insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
}
/// The two-slot `ld_imm64`: `dst = imm64`, with `src` a pseudo source
/// ([`crate::consts::BPF_PSEUDO_MAP_FD`] ...) or 0.
pub const fn ld_imm64(dst: u8, src: u8, imm: u64) -> [Insn; 2] {
    [
        insn(BPF_LD | BPF_DW | BPF_IMM, dst, src, 0, imm as u32 as i32),
        insn(0, 0, 0, 0, (imm >> 32) as u32 as i32),
    ]
}
/// `dst = map` by fd: `ld_imm64` with `src_reg = BPF_PSEUDO_MAP_FD`.
pub const fn ld_map_fd(dst: u8, fd: i32) -> [Insn; 2] {
    ld_imm64(dst, crate::consts::BPF_PSEUDO_MAP_FD, fd as u32 as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(exit().to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(mov64_imm(R0, 1).to_bytes(), [0xb7, 0, 0, 0, 1, 0, 0, 0]);
        if cfg!(target_endian = "little") {
            assert_eq!(mov64_reg(R1, R6).to_bytes()[..2], [0xbf, 0x61]);
            let [a, b] = ld_map_fd(R1, 7);
            assert_eq!(a.to_bytes(), [0x18, 0x11, 0, 0, 7, 0, 0, 0]);
            assert_eq!(b.to_bytes(), [0; 8]);
            assert_eq!(
                atomic_add(BPF_DW, R0, R1, 0).to_bytes(),
                [0xdb, 0x10, 0, 0, 0, 0, 0, 0]
            );
            assert_eq!(
                st_mem(BPF_W, R10, -4, 0).to_bytes(),
                [0x62, 0x0a, 0xfc, 0xff, 0, 0, 0, 0]
            );
        }
    }
}
