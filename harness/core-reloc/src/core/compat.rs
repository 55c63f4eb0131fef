//! Type compatibility relations used by CO-RE:
//! - field compatibility (is a target member usable where the local one was),
//! - type compatibility (type-based relocations other than TYPE_MATCHES),
//! - type matching (TYPE_MATCHES, a stricter, shape-aware relation).
//!
//! All walks are depth-bounded so looping BTF yields an error, not a hang.

use super::error::CompatError;
use crate::btf::{essential_name, Btf, Kind, Type, TypeBody};

const MAX_DEPTH: i32 = 32;

type CompatResult = Result<bool, CompatError>;

/// Same kind, or both any-enum (enum and enum64 are interchangeable).
pub(crate) fn kinds_core_compat(a: Kind, b: Kind) -> bool {
    a == b || (a.is_any_enum() && b.is_any_enum())
}

fn resolved<'a>(btf: &'a Btf, id: u32) -> Result<Type<'a>, CompatError> {
    let id = btf.skip_mods_and_typedefs(id)?;
    Ok(btf.type_by_id(id)?)
}

fn int_bit_offset(t: &Type<'_>) -> u8 {
    match t.body {
        TypeBody::Int(i) => i.bit_offset,
        _ => 0,
    }
}

pub(crate) fn fields_are_compat(
    local_btf: &Btf,
    local_id: u32,
    targ_btf: &Btf,
    targ_id: u32,
) -> CompatResult {
    let (mut local_id, mut targ_id) = (local_id, targ_id);
    for _ in 0..MAX_DEPTH {
        let local = resolved(local_btf, local_id)?;
        let targ = resolved(targ_btf, targ_id)?;
        if local.kind.is_composite() && targ.kind.is_composite() {
            return Ok(true);
        }
        if !kinds_core_compat(local.kind, targ.kind) {
            return Ok(false);
        }
        match (&local.body, &targ.body) {
            (TypeBody::Ptr { .. }, _) | (TypeBody::Float { .. }, _) => return Ok(true),
            (TypeBody::Fwd { .. }, _) | (TypeBody::Enum { .. }, _) => {
                let (l, t) = (essential_name(local.name), essential_name(targ.name));
                return Ok(l.is_empty() || t.is_empty() || l == t);
            }
            (TypeBody::Int(_), _) => {
                return Ok(int_bit_offset(&local) == 0 && int_bit_offset(&targ) == 0)
            }
            (TypeBody::Array(l), TypeBody::Array(t)) => {
                local_id = l.elem;
                targ_id = t.elem;
            }
            _ => return Ok(false),
        }
    }
    Err(CompatError::TooDeep(
        "type chain too deep while checking field compatibility",
    ))
}

pub(crate) fn types_are_compat(
    local_btf: &Btf,
    local_id: u32,
    targ_btf: &Btf,
    targ_id: u32,
) -> CompatResult {
    types_are_compat_at(local_btf, local_id, targ_btf, targ_id, MAX_DEPTH)
}

fn types_are_compat_at(
    local_btf: &Btf,
    local_id: u32,
    targ_btf: &Btf,
    targ_id: u32,
    level: i32,
) -> CompatResult {
    // The unresolved kinds must agree too (a typedef matches only a typedef).
    if !kinds_core_compat(local_btf.kind_of(local_id)?, targ_btf.kind_of(targ_id)?) {
        return Ok(false);
    }
    let (mut local_id, mut targ_id) = (local_id, targ_id);
    for _ in 0..MAX_DEPTH {
        let local = resolved(local_btf, local_id)?;
        let targ = resolved(targ_btf, targ_id)?;
        if !kinds_core_compat(local.kind, targ.kind) {
            return Ok(false);
        }
        match (&local.body, &targ.body) {
            (TypeBody::Void, _)
            | (TypeBody::Composite { .. }, _)
            | (TypeBody::Enum { .. }, _)
            | (TypeBody::Fwd { .. }, _) => return Ok(true),
            (TypeBody::Int(_), _) => {
                return Ok(int_bit_offset(&local) == 0 && int_bit_offset(&targ) == 0)
            }
            (TypeBody::Ptr { target: l }, TypeBody::Ptr { target: t }) => {
                local_id = *l;
                targ_id = *t;
            }
            (TypeBody::Array(l), TypeBody::Array(t)) => {
                local_id = l.elem;
                targ_id = t.elem;
            }
            (
                TypeBody::FuncProto {
                    ret: local_ret,
                    params: local_params,
                },
                TypeBody::FuncProto {
                    ret: targ_ret,
                    params: targ_params,
                },
            ) => {
                if local_params.len() != targ_params.len() {
                    return Ok(false);
                }
                for (lp, tp) in local_params.iter().zip(targ_params) {
                    if level <= 0 {
                        return Err(CompatError::TooDeep("function prototype nesting too deep"));
                    }
                    let l = local_btf.skip_mods_and_typedefs(lp.ty)?;
                    let t = targ_btf.skip_mods_and_typedefs(tp.ty)?;
                    if !types_are_compat_at(local_btf, l, targ_btf, t, level - 1)? {
                        return Ok(false);
                    }
                }
                local_id = local_btf.skip_mods_and_typedefs(*local_ret)?;
                targ_id = targ_btf.skip_mods_and_typedefs(*targ_ret)?;
            }
            _ => return Ok(false),
        }
    }
    Err(CompatError::TooDeep(
        "type chain too deep while checking type compatibility",
    ))
}

/// Name equality modulo flavors; an anonymous target only matches an anonymous local.
fn names_match(local: &str, targ: &str) -> bool {
    if targ.is_empty() {
        return local.is_empty();
    }
    essential_name(local) == essential_name(targ)
}

pub(crate) fn types_match(
    local_btf: &Btf,
    local_id: u32,
    targ_btf: &Btf,
    targ_id: u32,
) -> CompatResult {
    types_match_at(local_btf, local_id, targ_btf, targ_id, false, MAX_DEPTH)
}

fn types_match_at(
    local_btf: &Btf,
    local_id: u32,
    targ_btf: &Btf,
    targ_id: u32,
    mut behind_ptr: bool,
    level: i32,
) -> CompatResult {
    if level <= 0 {
        return Err(CompatError::TooDeep(
            "type nesting too deep while matching types",
        ));
    }
    let (mut local_id, mut targ_id) = (local_id, targ_id);
    for _ in 0..MAX_DEPTH {
        let local = resolved(local_btf, local_id)?;
        let targ = resolved(targ_btf, targ_id)?;
        if !names_match(local.name, targ.name) {
            return Ok(false);
        }
        match &local.body {
            TypeBody::Void => return Ok(targ.kind == Kind::Void),
            TypeBody::Fwd { is_union } => {
                let local_union = *is_union;
                return Ok(match (&targ.body, behind_ptr) {
                    (TypeBody::Fwd { is_union }, _) => local_union == *is_union,
                    (TypeBody::Composite { .. }, true) => (targ.kind == Kind::Union) == local_union,
                    _ => false,
                });
            }
            TypeBody::Enum { .. } => return Ok(enums_match(&local, &targ)),
            TypeBody::Composite { .. } => {
                if behind_ptr {
                    return Ok(match &targ.body {
                        TypeBody::Composite { .. } => local.kind == targ.kind,
                        TypeBody::Fwd { is_union } => (local.kind == Kind::Union) == *is_union,
                        _ => false,
                    });
                }
                if local.kind != targ.kind {
                    return Ok(false);
                }
                return composites_match(local_btf, &local, targ_btf, &targ, behind_ptr, level);
            }
            TypeBody::Int(l) => {
                let TypeBody::Int(t) = &targ.body else {
                    return Ok(false);
                };
                let signed = |enc: u8| enc & crate::btf::INT_SIGNED;
                return Ok(l.size == t.size && signed(l.encoding) == signed(t.encoding));
            }
            TypeBody::Ptr { target } => {
                let TypeBody::Ptr { target: t } = &targ.body else {
                    return Ok(false);
                };
                behind_ptr = true;
                local_id = *target;
                targ_id = *t;
            }
            TypeBody::Array(l) => {
                let TypeBody::Array(t) = &targ.body else {
                    return Ok(false);
                };
                if l.len != t.len {
                    return Ok(false);
                }
                local_id = l.elem;
                targ_id = t.elem;
            }
            TypeBody::FuncProto { ret, params } => {
                let TypeBody::FuncProto {
                    ret: targ_ret,
                    params: targ_params,
                } = &targ.body
                else {
                    return Ok(false);
                };
                if params.len() != targ_params.len() {
                    return Ok(false);
                }
                for (lp, tp) in params.iter().zip(targ_params) {
                    if !types_match_at(local_btf, lp.ty, targ_btf, tp.ty, behind_ptr, level - 1)? {
                        return Ok(false);
                    }
                }
                local_id = *ret;
                targ_id = *targ_ret;
            }
            _ => return Ok(false),
        }
    }
    Err(CompatError::TooDeep(
        "type chain too deep while matching types",
    ))
}

/// Same size, and every local enumerator (by essential name) in the target.
fn enums_match(local: &Type<'_>, targ: &Type<'_>) -> bool {
    let (
        TypeBody::Enum { size, values, .. },
        TypeBody::Enum {
            size: targ_size,
            values: targ_values,
            ..
        },
    ) = (&local.body, &targ.body)
    else {
        return false;
    };
    size == targ_size
        && values.len() <= targ_values.len()
        && values
            .iter()
            .all(|v| targ_values.iter().any(|t| names_match(v.name, t.name)))
}

fn composites_match(
    local_btf: &Btf,
    local: &Type<'_>,
    targ_btf: &Btf,
    targ: &Type<'_>,
    behind_ptr: bool,
    level: i32,
) -> CompatResult {
    let (local_members, targ_members) = (local.members(), targ.members());
    if local_members.len() > targ_members.len() {
        return Ok(false);
    }
    for lm in local_members {
        let mut matched = false;
        for tm in targ_members {
            if !names_match(lm.name, tm.name) {
                continue;
            }
            if types_match_at(local_btf, lm.ty, targ_btf, tm.ty, behind_ptr, level - 1)? {
                matched = true;
                break;
            }
        }
        if !matched {
            return Ok(false);
        }
    }
    Ok(true)
}
