//! Relocation values from matched specs, and instruction patching.

use super::kind::RelocKind;
use super::spec::Spec;
use crate::btf::{Kind, TypeBody, INT_SIGNED};
use crate::insn::{self, Insn};

/// The decision for one relocation against one candidate (or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelocResult {
    pub orig_val: u64,
    pub new_val: u64,
    /// `Some(reason)`: the instruction must be poisoned.
    pub poison: Option<String>,
    /// Check the instruction holds `orig_val` before patching.
    pub validate: bool,
    /// Memory access size change that cannot be done safely.
    pub fail_memsz_adjust: bool,
    pub orig_sz: u32,
    pub new_sz: u32,
}

/// Outcome of computing one side of a relocation.
enum Calc {
    Value(FieldValue),
    Poison(String),
}

#[derive(Default)]
struct FieldValue {
    val: u64,
    size: u32,
    type_id: u32,
    validate: bool,
}

fn field_value(kind: RelocKind, spec: Option<&Spec<'_>>) -> Result<Calc, String> {
    if kind == RelocKind::FieldExists {
        return Ok(Calc::Value(FieldValue {
            val: spec.is_some() as u64,
            validate: true,
            ..Default::default()
        }));
    }
    let Some(spec) = spec else {
        return Ok(Calc::Poison("field not found in target".into()));
    };
    let btf = spec.btf;
    let acc = spec.last().ok_or("empty field spec")?;
    let e = |err: crate::btf::BtfError| err.to_string();

    if acc.name.is_none() {
        // The access ends at an array element (or the root itself).
        let size = btf.resolve_size(acc.type_id).map_err(e)?;
        let mut out = FieldValue {
            validate: true,
            ..Default::default()
        };
        match kind {
            RelocKind::FieldByteOffset => {
                out.val = spec.bit_offset / 8;
                out.size = size;
                out.type_id = acc.type_id;
            }
            RelocKind::FieldByteSize => out.val = size as u64,
            _ => return Err(format!("{kind} cannot be applied to an array element")),
        }
        return Ok(Calc::Value(out));
    }

    let parent = btf.type_by_id(acc.type_id).map_err(e)?;
    let member = *parent
        .members()
        .get(acc.idx as usize)
        .ok_or("member index out of range")?;
    let field_type_id = btf.skip_mods_and_typedefs(member.ty).map_err(e)?;
    let field_type = btf.type_by_id(field_type_id).map_err(e)?;
    let bit_off = spec.bit_offset;
    let mut bit_sz = member.bitfield_size as u64;
    let bitfield = bit_sz > 0;
    let (byte_off, byte_sz) = if bitfield {
        let mut byte_sz = match field_type.body {
            TypeBody::Int(i) => i.size as u64,
            TypeBody::Enum { size, .. } => size as u64,
            _ => return Err("bitfield of a type that is neither int nor enum".into()),
        };
        if byte_sz == 0 {
            return Err("bitfield of a zero-sized type".into());
        }
        let mut byte_off = bit_off / 8 / byte_sz * byte_sz;
        // Grow the load until it covers the whole bitfield.
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8 {
            if byte_sz >= 8 {
                return Err("bitfield cannot be read with a 64-bit load".into());
            }
            byte_sz *= 2;
            byte_off = bit_off / 8 / byte_sz * byte_sz;
        }
        (byte_off, byte_sz)
    } else {
        let size = btf.resolve_size(field_type_id).map_err(e)? as u64;
        bit_sz = size * 8;
        (bit_off / 8, size)
    };

    let mut out = FieldValue {
        validate: !bitfield,
        ..Default::default()
    };
    match kind {
        RelocKind::FieldByteOffset => {
            out.val = byte_off;
            if !bitfield {
                out.size = byte_sz as u32;
                out.type_id = field_type_id;
            }
        }
        RelocKind::FieldByteSize => out.val = byte_sz,
        RelocKind::FieldSigned => {
            out.val = match field_type.body {
                TypeBody::Enum { signed, .. } => signed as u64,
                TypeBody::Int(i) => (i.encoding & INT_SIGNED != 0) as u64,
                _ => 0,
            };
            out.validate = true;
        }
        RelocKind::FieldLshiftU64 => {
            let shift = bit_off + bit_sz - byte_off * 8;
            out.val = 64u64.checked_sub(shift).ok_or("field wider than 64 bits")?;
        }
        RelocKind::FieldRshiftU64 => {
            out.val = 64u64
                .checked_sub(bit_sz)
                .ok_or("field wider than 64 bits")?;
            out.validate = true;
        }
        _ => return Err(format!("{kind} is not a field relocation")),
    }
    Ok(Calc::Value(out))
}

fn type_value(kind: RelocKind, spec: Option<&Spec<'_>>) -> Result<(u64, bool), String> {
    let Some(spec) = spec else {
        // Type-based relocations resolve to 0 when the type is missing.
        return Ok((0, true));
    };
    match kind {
        // Type ids shift during linking; checking the old one is pointless.
        RelocKind::TypeIdTarget => Ok((spec.root_type_id as u64, false)),
        RelocKind::TypeExists | RelocKind::TypeMatches => Ok((1, true)),
        RelocKind::TypeSize => spec
            .btf
            .resolve_size(spec.root_type_id)
            .map(|s| (s as u64, true))
            .map_err(|e| e.to_string()),
        _ => Err(format!("{kind} is not a type relocation")),
    }
}

fn enumval_value(kind: RelocKind, spec: Option<&Spec<'_>>) -> Result<Calc, String> {
    let value = |val| {
        Calc::Value(FieldValue {
            val,
            validate: true,
            ..Default::default()
        })
    };
    match kind {
        RelocKind::EnumvalExists => Ok(value(spec.is_some() as u64)),
        RelocKind::EnumvalValue => {
            let Some(spec) = spec else {
                return Ok(Calc::Poison("enumerator not found in target".into()));
            };
            let acc = spec.accessors.first().ok_or("empty enum spec")?;
            let t = spec
                .btf
                .type_by_id(acc.type_id)
                .map_err(|e| e.to_string())?;
            let v = t
                .enum_values()
                .get(acc.idx as usize)
                .ok_or("enumerator index out of range")?;
            Ok(value(v.value))
        }
        _ => Err(format!("{kind} is not an enum value relocation")),
    }
}

/// Computes local and target values (libbpf's `bpf_core_calc_relo`).
pub(crate) fn calc_relo(
    kind: RelocKind,
    local: &Spec<'_>,
    targ: Option<&Spec<'_>>,
) -> Result<RelocResult, String> {
    let mut res = RelocResult {
        orig_val: 0,
        new_val: 0,
        poison: None,
        validate: true,
        fail_memsz_adjust: false,
        orig_sz: 0,
        new_sz: 0,
    };
    if kind.is_field_based() {
        let orig = match field_value(kind, Some(local))? {
            Calc::Value(v) => v,
            Calc::Poison(why) => {
                res.poison = Some(why);
                return Ok(res);
            }
        };
        res.orig_val = orig.val;
        res.orig_sz = orig.size;
        res.validate = orig.validate;
        let new = match field_value(kind, targ)? {
            Calc::Value(v) => v,
            Calc::Poison(why) => {
                res.poison = Some(why);
                return Ok(res);
            }
        };
        res.new_val = new.val;
        res.new_sz = new.size;
        if res.orig_sz != res.new_sz {
            let (Some(targ), local_btf) = (targ, local.btf) else {
                return Ok(res);
            };
            let orig_t = local_btf
                .type_by_id(orig.type_id)
                .map_err(|e| e.to_string())?;
            let new_t = targ
                .btf
                .type_by_id(new.type_id)
                .map_err(|e| e.to_string())?;
            let unsigned_int = |t: &crate::btf::Type<'_>| matches!(t.body, TypeBody::Int(i) if i.encoding != INT_SIGNED);
            let safe = (orig_t.kind == Kind::Ptr && new_t.kind == Kind::Ptr)
                || (unsigned_int(&orig_t) && unsigned_int(&new_t));
            res.fail_memsz_adjust = !safe;
        }
    } else if kind.is_type_based() {
        let (orig, validate) = type_value(kind, Some(local))?;
        res.orig_val = orig;
        res.validate = validate;
        res.new_val = type_value(kind, targ)?.0;
    } else if kind.is_enumval_based() {
        match enumval_value(kind, Some(local))? {
            Calc::Value(v) => res.orig_val = v.val,
            Calc::Poison(why) => res.poison = Some(why),
        }
        match enumval_value(kind, targ)? {
            Calc::Value(v) => res.new_val = v.val,
            Calc::Poison(why) => res.poison = Some(why),
        }
    } else {
        return Err(format!("unsupported relocation kind {kind}"));
    }
    Ok(res)
}

/// Patches the instruction at `index` per `res`. Returns the poison reason
/// when the instruction was poisoned instead of patched.
pub(crate) fn patch_insn(
    insns: &mut [u8],
    index: usize,
    res: &RelocResult,
) -> Result<Option<String>, String> {
    let ins = insn::read(insns, index).ok_or("instruction index out of range")?;
    if let Some(why) = &res.poison {
        poison(insns, index, ins)?;
        return Ok(Some(why.clone()));
    }
    let class = ins.class();
    let mut patched = ins;
    match class {
        insn::CLASS_ALU | insn::CLASS_ALU64 => {
            if ins.code & 0x08 != insn::SRC_K {
                return Err("ALU instruction does not use an immediate operand".into());
            }
            if res.validate && ins.imm as i64 as u64 != res.orig_val {
                return Err(format!(
                    "instruction #{index} (ALU) has immediate {}, expected {}",
                    ins.imm, res.orig_val
                ));
            }
            patched.imm = res.new_val as i32;
        }
        insn::CLASS_LDX | insn::CLASS_ST | insn::CLASS_STX => {
            if res.validate && ins.off as i64 as u64 != res.orig_val {
                return Err(format!(
                    "instruction #{index} (LDX/ST/STX) has offset {}, expected {}",
                    ins.off, res.orig_val
                ));
            }
            if res.new_val > i16::MAX as u64 {
                return Err(format!(
                    "instruction #{index} (LDX/ST/STX): offset {} too large",
                    res.new_val
                ));
            }
            if res.fail_memsz_adjust {
                poison(insns, index, ins)?;
                return Ok(Some(format!(
                    "field size changes from {} to {} bytes and is not a pointer or unsigned integer",
                    res.orig_sz, res.new_sz
                )));
            }
            patched.off = res.new_val as i16;
            if res.new_sz != res.orig_sz {
                let current = ins.mem_size_bytes().ok_or("bad memory access size")?;
                if current != res.orig_sz {
                    return Err(format!(
                        "instruction #{index} accesses {current} bytes, expected {}",
                        res.orig_sz
                    ));
                }
                let size = insn::size_code_for_bytes(res.new_sz).ok_or_else(|| {
                    format!(
                        "instruction #{index}: cannot access a {}-byte field",
                        res.new_sz
                    )
                })?;
                patched.code = (ins.code & !0x18) | size;
            }
        }
        insn::CLASS_LD => {
            let next = insn::read(insns, index + 1).ok_or("ld_imm64 without second half")?;
            if !ins.is_ld_imm64()
                || ins.src_reg != 0
                || ins.off != 0
                || next.code != 0
                || next.dst_reg != 0
                || next.src_reg != 0
                || next.off != 0
            {
                return Err(format!(
                    "instruction #{index} (ld_imm64) has unexpected form"
                ));
            }
            let imm = ins.imm as u32 as u64 | (next.imm as u32 as u64) << 32;
            if res.validate && imm != res.orig_val {
                return Err(format!(
                    "instruction #{index} (ld_imm64) has value {imm}, expected {}",
                    res.orig_val
                ));
            }
            patched.imm = res.new_val as u32 as i32;
            let high = Insn {
                imm: (res.new_val >> 32) as u32 as i32,
                ..next
            };
            insn::write(insns, index + 1, high);
        }
        _ => {
            return Err(format!(
                "instruction #{index} (opcode {:#04x}) cannot carry a CO-RE relocation",
                ins.code
            ))
        }
    }
    insn::write(insns, index, patched);
    Ok(None)
}

fn poison(insns: &mut [u8], index: usize, ins: Insn) -> Result<(), String> {
    if ins.is_ld_imm64() {
        // Poison both halves so the verifier reports the bad call, not an unknown opcode.
        insn::write(insns, index + 1, Insn::poison());
    }
    if insn::write(insns, index, Insn::poison()) {
        Ok(())
    } else {
        Err("instruction index out of range".into())
    }
}
