//! Access specifications: the parsed form of a CO-RE access string
//! ("0:1:2") against a root type, and matching a local spec to a target
//! candidate type.
//!
//! `raw` keeps every step of the access string, including steps through
//! anonymous struct/union members; `accessors` keeps only the steps that
//! mean something across kernels: the root index, named members and
//! array indices.

use super::compat::{fields_are_compat, types_are_compat, types_match};
use super::error::SpecError;
use super::kind::RelocKind;
use crate::btf::{essential_name, Btf, Kind, TypeBody};

/// Longest access path accepted, as libbpf.
pub(crate) const MAX_SPEC_LEN: usize = 64;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Accessor<'a> {
    /// For a named member: the enclosing composite; for an array index (and
    /// the root): the element type; for an enumerator: the enum.
    pub type_id: u32,
    pub idx: u32,
    pub name: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub(crate) struct Spec<'a> {
    pub btf: &'a Btf,
    pub root_type_id: u32,
    pub kind: RelocKind,
    pub raw: Vec<u32>,
    pub accessors: Vec<Accessor<'a>>,
    pub bit_offset: u64,
}

type SpecResult<T> = Result<T, SpecError>;

pub(crate) fn parse_access_string(access: &str) -> SpecResult<Vec<u32>> {
    if access.is_empty() || access.starts_with(':') {
        return Err(SpecError::Malformed(access.to_string()));
    }
    let mut raw = Vec::new();
    for part in access.split(':') {
        if raw.len() == MAX_SPEC_LEN {
            return Err(SpecError::TooLong);
        }
        let idx: u32 = part
            .parse()
            .map_err(|_| SpecError::Malformed(access.to_string()))?;
        if idx > i32::MAX as u32 {
            return Err(SpecError::IndexOutOfRange);
        }
        raw.push(idx);
    }
    Ok(raw)
}

fn is_flex_array(btf: &Btf, previous: Option<&Accessor<'_>>, array_len: u32) -> bool {
    let Some(prev) = previous else { return false };
    if prev.name.is_none() || array_len > 0 {
        return false;
    }
    btf.type_by_id(prev.type_id)
        .is_ok_and(|t| prev.idx as usize + 1 == t.vlen())
}

fn add_bits(bit_offset: &mut u64, idx: u32, size: u32) -> SpecResult<()> {
    let add = (idx as u64)
        .checked_mul(size as u64)
        .and_then(|v| v.checked_mul(8))
        .ok_or(SpecError::OffsetOverflow)?;
    *bit_offset = bit_offset
        .checked_add(add)
        .ok_or(SpecError::OffsetOverflow)?;
    Ok(())
}

/// Parses a relocation's access string against its local root type.
pub(crate) fn parse_spec<'a>(
    btf: &'a Btf,
    root_type_id: u32,
    access: &str,
    kind: RelocKind,
) -> SpecResult<Spec<'a>> {
    let mut spec = Spec {
        btf,
        root_type_id,
        kind,
        raw: Vec::new(),
        accessors: Vec::new(),
        bit_offset: 0,
    };
    if access.is_empty() || access.starts_with(':') {
        return Err(SpecError::Malformed(access.to_string()));
    }
    if kind.is_type_based() {
        if access != "0" {
            return Err(SpecError::NotTypeAccess(access.to_string()));
        }
        return Ok(spec);
    }
    spec.raw = parse_access_string(access)?;
    let first = spec.raw[0];
    let mut id = btf.skip_mods_and_typedefs(root_type_id)?;
    let root = btf.type_by_id(id)?;

    if kind.is_enumval_based() {
        if !root.kind.is_any_enum() || spec.raw.len() > 1 || first as usize >= root.vlen() {
            return Err(SpecError::NotEnumerator);
        }
        let name = root.enum_values()[first as usize].name;
        spec.accessors.push(Accessor {
            type_id: id,
            idx: first,
            name: Some(name),
        });
        return Ok(spec);
    }
    if !kind.is_field_based() {
        return Err(SpecError::UnknownKind);
    }
    spec.accessors.push(Accessor {
        type_id: id,
        idx: first,
        name: None,
    });
    let size = btf.resolve_size(id)?;
    add_bits(&mut spec.bit_offset, first, size)?;

    for (step, &idx) in spec.raw.clone().iter().enumerate().skip(1) {
        id = btf.skip_mods_and_typedefs(id)?;
        let t = btf.type_by_id(id)?;
        match &t.body {
            TypeBody::Composite { members, .. } => {
                let member = members
                    .get(idx as usize)
                    .ok_or(SpecError::MemberOutOfRange { idx, step })?;
                spec.bit_offset += member.bit_offset as u64;
                if !member.name.is_empty() {
                    spec.accessors.push(Accessor {
                        type_id: id,
                        idx,
                        name: Some(member.name),
                    });
                }
                id = member.ty;
            }
            TypeBody::Array(array) => {
                let elem = btf.skip_mods_and_typedefs(array.elem)?;
                let flex = is_flex_array(btf, spec.accessors.last(), array.len);
                if !flex && idx >= array.len {
                    return Err(SpecError::ArrayIndexOutOfRange { idx, step });
                }
                spec.accessors.push(Accessor {
                    type_id: elem,
                    idx,
                    name: None,
                });
                let size = btf.resolve_size(elem)?;
                add_bits(&mut spec.bit_offset, idx, size)?;
                id = elem;
            }
            _ => {
                return Err(SpecError::NotComposite {
                    step,
                    id,
                    kind: t.kind,
                })
            }
        }
    }
    Ok(spec)
}

/// Tries to match `local` against candidate `targ_id` in `targ_btf`.
/// `Ok(None)` means "not a match"; `Err` means the BTF is unusable.
pub(crate) fn spec_match<'a>(
    local: &Spec<'a>,
    targ_btf: &'a Btf,
    targ_id: u32,
) -> SpecResult<Option<Spec<'a>>> {
    let mut targ = Spec {
        btf: targ_btf,
        root_type_id: targ_id,
        kind: local.kind,
        raw: Vec::new(),
        accessors: Vec::new(),
        bit_offset: 0,
    };
    if local.kind.is_type_based() {
        let matched = if local.kind == RelocKind::TypeMatches {
            types_match(local.btf, local.root_type_id, targ_btf, targ_id)?
        } else {
            types_are_compat(local.btf, local.root_type_id, targ_btf, targ_id)?
        };
        return Ok(matched.then_some(targ));
    }
    let Some(local_first) = local.accessors.first() else {
        return Err(SpecError::Empty);
    };

    if local.kind.is_enumval_based() {
        let id = targ_btf.skip_mods_and_typedefs(targ_id)?;
        let t = targ_btf.type_by_id(id)?;
        if !t.kind.is_any_enum() {
            return Ok(None);
        }
        let wanted = essential_name(local_first.name.unwrap_or(""));
        for (i, value) in t.enum_values().iter().enumerate() {
            if essential_name(value.name) == wanted {
                targ.accessors.push(Accessor {
                    type_id: id,
                    idx: i as u32,
                    name: Some(value.name),
                });
                targ.raw.push(i as u32);
                return Ok(Some(targ));
            }
        }
        return Ok(None);
    }

    let mut targ_id = targ_id;
    for (i, local_acc) in local.accessors.iter().enumerate() {
        targ_id = targ_btf.skip_mods_and_typedefs(targ_id)?;
        if local_acc.name.is_some() {
            let mut next = targ_id;
            if !match_member(
                local.btf, local_acc, targ_btf, targ_id, &mut targ, &mut next,
            )? {
                return Ok(None);
            }
            targ_id = next;
        } else {
            if i > 0 {
                let t = targ_btf.type_by_id(targ_id)?;
                let TypeBody::Array(array) = t.body else {
                    return Ok(None);
                };
                let flex = is_flex_array(targ_btf, targ.accessors.last(), array.len);
                if !flex && local_acc.idx >= array.len {
                    return Ok(None);
                }
                targ_id = targ_btf.skip_mods_and_typedefs(array.elem)?;
            }
            if targ.raw.len() == MAX_SPEC_LEN {
                return Err(SpecError::TooDeep);
            }
            targ.accessors.push(Accessor {
                type_id: targ_id,
                idx: local_acc.idx,
                name: None,
            });
            targ.raw.push(local_acc.idx);
            let size = targ_btf.resolve_size(targ_id)?;
            add_bits(&mut targ.bit_offset, local_acc.idx, size)?;
        }
    }
    Ok(Some(targ))
}

/// Finds the target member matching a named local accessor, descending
/// into anonymous members; extends `spec` along the way.
fn match_member<'a>(
    local_btf: &'a Btf,
    local_acc: &Accessor<'a>,
    targ_btf: &'a Btf,
    targ_id: u32,
    spec: &mut Spec<'a>,
    next_targ_id: &mut u32,
) -> SpecResult<bool> {
    let targ_id = targ_btf.skip_mods_and_typedefs(targ_id)?;
    let targ_type = targ_btf.type_by_id(targ_id)?;
    if !targ_type.kind.is_composite() {
        return Ok(false);
    }
    let local_type = local_btf.type_by_id(local_acc.type_id)?;
    let local_member = *local_type
        .members()
        .get(local_acc.idx as usize)
        .ok_or(SpecError::LocalMemberOutOfRange)?;

    for (i, member) in targ_type.members().iter().enumerate() {
        if spec.raw.len() == MAX_SPEC_LEN {
            return Err(SpecError::TooDeep);
        }
        spec.bit_offset += member.bit_offset as u64;
        spec.raw.push(i as u32);
        if member.name.is_empty() {
            if match_member(
                local_btf,
                local_acc,
                targ_btf,
                member.ty,
                spec,
                next_targ_id,
            )? {
                return Ok(true);
            }
        } else if member.name == local_member.name {
            spec.accessors.push(Accessor {
                type_id: targ_id,
                idx: i as u32,
                name: Some(member.name),
            });
            *next_targ_id = member.ty;
            let compatible = fields_are_compat(local_btf, local_member.ty, targ_btf, member.ty)?;
            if !compatible {
                spec.accessors.pop();
            }
            return Ok(compatible);
        }
        spec.bit_offset -= member.bit_offset as u64;
        spec.raw.pop();
    }
    Ok(false)
}

impl Spec<'_> {
    /// The access in C terms: "struct task_struct::se.vruntime",
    /// "enum e::VALUE", "struct sk_buff".
    pub(crate) fn describe(&self) -> String {
        let root = match self.btf.type_by_id(self.root_type_id) {
            Ok(t) => t.c_name(),
            Err(_) => format!("type #{}", self.root_type_id),
        };
        if self.kind.is_type_based() {
            return root;
        }
        if self.kind.is_enumval_based() {
            let name = self.accessors.first().and_then(|a| a.name).unwrap_or("?");
            return format!("{root}::{name}");
        }
        let mut out = root;
        let mut first_named = true;
        for (i, acc) in self.accessors.iter().enumerate() {
            match acc.name {
                Some(name) => {
                    out.push_str(if first_named { "::" } else { "." });
                    out.push_str(name);
                    first_named = false;
                }
                None if i == 0 && acc.idx == 0 => {}
                None => out.push_str(&format!("[{}]", acc.idx)),
            }
        }
        out
    }

    /// Last accessor; field-based specs always have one.
    pub(crate) fn last(&self) -> Option<&Accessor<'_>> {
        self.accessors.last()
    }
}

/// Kinds a target type may have to be a candidate for a local root of `kind`.
pub(crate) fn candidate_kinds(kind: Kind) -> Vec<Kind> {
    if kind.is_any_enum() {
        vec![Kind::Enum, Kind::Enum64]
    } else {
        vec![kind]
    }
}
