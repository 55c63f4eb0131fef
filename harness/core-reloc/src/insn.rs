//! Just enough of the BPF instruction encoding to relocate programs.

/// Bytes per instruction.
pub const INSN_SIZE: usize = 8;

/// `BPF_LD`: immediate loads (`ld_imm64`).
pub const CLASS_LD: u8 = 0x00;
/// `BPF_LDX`: loads from memory.
pub const CLASS_LDX: u8 = 0x01;
/// `BPF_ST`: stores of an immediate.
pub const CLASS_ST: u8 = 0x02;
/// `BPF_STX`: stores of a register.
pub const CLASS_STX: u8 = 0x03;
/// `BPF_ALU`: 32-bit arithmetic.
pub const CLASS_ALU: u8 = 0x04;
/// `BPF_JMP`: jumps, calls, exit.
pub const CLASS_JMP: u8 = 0x05;
/// `BPF_ALU64`: 64-bit arithmetic.
pub const CLASS_ALU64: u8 = 0x07;

/// `BPF_W`: 4-byte access.
pub const SIZE_W: u8 = 0x00;
/// `BPF_H`: 2-byte access.
pub const SIZE_H: u8 = 0x08;
/// `BPF_B`: 1-byte access.
pub const SIZE_B: u8 = 0x10;
/// `BPF_DW`: 8-byte access.
pub const SIZE_DW: u8 = 0x18;

/// `BPF_IMM` mode.
pub const MODE_IMM: u8 = 0x00;
/// `BPF_K`: the source is the immediate.
pub const SRC_K: u8 = 0x00;
/// `BPF_CALL` jump operation.
pub const OP_CALL: u8 = 0x80;

/// `BPF_LD | BPF_IMM | BPF_DW`: the first half of a 64-bit immediate load.
pub const LD_IMM64: u8 = CLASS_LD | MODE_IMM | SIZE_DW;
/// `BPF_JMP | BPF_CALL`.
pub const CALL: u8 = CLASS_JMP | OP_CALL;

/// `BPF_PSEUDO_MAP_FD`: a `ld_imm64` of a map fd.
pub const PSEUDO_MAP_FD: u8 = 1;
/// `BPF_PSEUDO_MAP_VALUE`: a `ld_imm64` of an address in a map's value.
pub const PSEUDO_MAP_VALUE: u8 = 2;
/// `BPF_PSEUDO_CALL`: a call of a BPF subprogram.
pub const PSEUDO_CALL: u8 = 1;
/// `BPF_PSEUDO_FUNC`: a `ld_imm64` of a subprogram's address.
pub const PSEUDO_FUNC: u8 = 4;

/// Helper id libbpf uses to poison an unresolvable CO-RE instruction (0xbad2310).
pub const POISON_HELPER_ID: i32 = 0x0bad_2310;

/// One decoded 8-byte instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Insn {
    /// Opcode: class, size/mode or operation, source.
    pub code: u8,
    /// Destination register.
    pub dst_reg: u8,
    /// Source register (or a pseudo source for `ld_imm64` and calls).
    pub src_reg: u8,
    /// Signed offset (memory accesses, jumps).
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl Insn {
    /// The instruction class (`CLASS_*`).
    pub fn class(&self) -> u8 {
        self.code & 0x07
    }

    /// Decodes one little-endian instruction.
    pub fn decode(bytes: &[u8; 8]) -> Insn {
        Insn {
            code: bytes[0],
            dst_reg: bytes[1] & 0x0f,
            src_reg: bytes[1] >> 4,
            off: i16::from_le_bytes([bytes[2], bytes[3]]),
            imm: i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }
    }

    /// Encodes as little endian.
    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src_reg << 4) | (self.dst_reg & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    /// The first half of a 64-bit immediate load.
    pub fn is_ld_imm64(&self) -> bool {
        self.code == LD_IMM64
    }

    /// A call of a BPF subprogram.
    pub fn is_pseudo_call(&self) -> bool {
        self.code == CALL && self.src_reg == PSEUDO_CALL
    }

    /// The call libbpf writes where a CO-RE relocation cannot be resolved.
    pub fn poison() -> Insn {
        Insn {
            code: CALL,
            dst_reg: 0,
            src_reg: 0,
            off: 0,
            imm: POISON_HELPER_ID,
        }
    }

    /// Memory access size in bytes of a LDX/ST/STX instruction.
    pub fn mem_size_bytes(&self) -> Option<u32> {
        match self.code & 0x18 {
            SIZE_DW => Some(8),
            SIZE_W => Some(4),
            SIZE_H => Some(2),
            SIZE_B => Some(1),
            _ => None,
        }
    }
}

/// The `SIZE_*` code of an access of `bytes` bytes.
pub fn size_code_for_bytes(bytes: u32) -> Option<u8> {
    match bytes {
        8 => Some(SIZE_DW),
        4 => Some(SIZE_W),
        2 => Some(SIZE_H),
        1 => Some(SIZE_B),
        _ => None,
    }
}

/// Reads instruction `index` from a raw stream.
pub fn read(insns: &[u8], index: usize) -> Option<Insn> {
    let start = index.checked_mul(INSN_SIZE)?;
    let bytes: &[u8; 8] = insns
        .get(start..start.checked_add(INSN_SIZE)?)?
        .try_into()
        .ok()?;
    Some(Insn::decode(bytes))
}

/// Overwrites instruction `index`; false when out of range.
pub fn write(insns: &mut [u8], index: usize, insn: Insn) -> bool {
    let Some(range) = index
        .checked_mul(INSN_SIZE)
        .and_then(|start| Some(start..start.checked_add(INSN_SIZE)?))
    else {
        return false;
    };
    match insns.get_mut(range) {
        Some(slot) => {
            slot.copy_from_slice(&insn.encode());
            true
        }
        None => false,
    }
}
