//! Relocation values from matched specs (libbpf's `bpf_core_calc_relo`): what the compiler
//! wrote for the local layout and what the target layout needs.

use super::error::CalcError;
use super::kind::RelocKind;
use super::spec::Spec;
use super::PoisonReason;
use crate::btf::{Kind, TypeBody, INT_SIGNED};

/// The decision for one relocation against one candidate (or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelocResult {
    pub orig_val: u64,
    pub new_val: u64,
    /// `Some(reason)`: the instruction must be poisoned.
    pub poison: Option<PoisonReason>,
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
    Poison(PoisonReason),
}

#[derive(Default)]
struct FieldValue {
    val: u64,
    size: u32,
    type_id: u32,
    validate: bool,
}

/// The aligned load (byte offset, byte size) that covers a bitfield of `bit_sz` bits at
/// `bit_off`: its storage type's size, doubled until the bitfield fits, as libbpf does.
fn bitfield_load(bit_off: u64, bit_sz: u64, storage: u64) -> Result<(u64, u64), CalcError> {
    if storage == 0 {
        return Err(CalcError::ZeroSizedBitfield);
    }
    let mut byte_sz = storage;
    let mut byte_off = bit_off / 8 / byte_sz * byte_sz;
    while bit_off + bit_sz - byte_off * 8 > byte_sz * 8 {
        if byte_sz >= 8 {
            return Err(CalcError::BitfieldTooWide);
        }
        byte_sz *= 2;
        byte_off = bit_off / 8 / byte_sz * byte_sz;
    }
    Ok((byte_off, byte_sz))
}

fn field_value(kind: RelocKind, spec: Option<&Spec<'_>>) -> Result<Calc, CalcError> {
    if kind == RelocKind::FieldExists {
        return Ok(Calc::Value(FieldValue {
            val: spec.is_some() as u64,
            validate: true,
            ..Default::default()
        }));
    }
    let Some(spec) = spec else {
        return Ok(Calc::Poison(PoisonReason::FieldMissing));
    };
    let btf = spec.btf;
    let acc = spec.last().ok_or(CalcError::EmptySpec("field"))?;

    if acc.name.is_none() {
        // The access ends at an array element (or the root itself).
        let size = btf.resolve_size(acc.type_id)?;
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
            _ => return Err(CalcError::NotForArrayElement(kind)),
        }
        return Ok(Calc::Value(out));
    }

    let parent = btf.type_by_id(acc.type_id)?;
    let member = *parent
        .members()
        .get(acc.idx as usize)
        .ok_or(CalcError::MemberOutOfRange)?;
    let field_type_id = btf.skip_mods_and_typedefs(member.ty)?;
    let field_type = btf.type_by_id(field_type_id)?;
    let bit_off = spec.bit_offset;
    let mut bit_sz = member.bitfield_size as u64;
    let bitfield = bit_sz > 0;
    let (byte_off, byte_sz) = if bitfield {
        let storage = match field_type.body {
            TypeBody::Int(i) => i.size as u64,
            TypeBody::Enum { size, .. } => size as u64,
            _ => return Err(CalcError::BitfieldType),
        };
        bitfield_load(bit_off, bit_sz, storage)?
    } else {
        let size = btf.resolve_size(field_type_id)? as u64;
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
            out.val = 64u64.checked_sub(shift).ok_or(CalcError::FieldTooWide)?;
        }
        RelocKind::FieldRshiftU64 => {
            out.val = 64u64.checked_sub(bit_sz).ok_or(CalcError::FieldTooWide)?;
            out.validate = true;
        }
        _ => {
            return Err(CalcError::WrongFamily {
                kind,
                family: "a field",
            })
        }
    }
    Ok(Calc::Value(out))
}

fn type_value(kind: RelocKind, spec: Option<&Spec<'_>>) -> Result<(u64, bool), CalcError> {
    let Some(spec) = spec else {
        // Type-based relocations resolve to 0 when the type is missing.
        return Ok((0, true));
    };
    match kind {
        // Type ids shift during linking; checking the old one is pointless.
        RelocKind::TypeIdTarget => Ok((spec.root_type_id as u64, false)),
        RelocKind::TypeExists | RelocKind::TypeMatches => Ok((1, true)),
        RelocKind::TypeSize => Ok((spec.btf.resolve_size(spec.root_type_id)? as u64, true)),
        _ => Err(CalcError::WrongFamily {
            kind,
            family: "a type",
        }),
    }
}

fn enumval_value(kind: RelocKind, spec: Option<&Spec<'_>>) -> Result<Calc, CalcError> {
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
                return Ok(Calc::Poison(PoisonReason::EnumeratorMissing));
            };
            let acc = spec.accessors.first().ok_or(CalcError::EmptySpec("enum"))?;
            let t = spec.btf.type_by_id(acc.type_id)?;
            let v = t
                .enum_values()
                .get(acc.idx as usize)
                .ok_or(CalcError::EnumeratorOutOfRange)?;
            Ok(value(v.value))
        }
        _ => Err(CalcError::WrongFamily {
            kind,
            family: "an enum value",
        }),
    }
}

/// Computes local and target values (libbpf's `bpf_core_calc_relo`).
pub(crate) fn calc_relo(
    kind: RelocKind,
    local: &Spec<'_>,
    targ: Option<&Spec<'_>>,
) -> Result<RelocResult, CalcError> {
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
            let orig_t = local_btf.type_by_id(orig.type_id)?;
            let new_t = targ.btf.type_by_id(new.type_id)?;
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
    } else {
        // Every other kind is an enumerator relocation (enumval_value refuses anything else).
        match enumval_value(kind, Some(local))? {
            Calc::Value(v) => res.orig_val = v.val,
            Calc::Poison(why) => res.poison = Some(why),
        }
        match enumval_value(kind, targ)? {
            Calc::Value(v) => res.new_val = v.val,
            Calc::Poison(why) => res.poison = Some(why),
        }
    }
    Ok(res)
}
