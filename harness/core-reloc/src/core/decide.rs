//! Deciding one relocation: find the target candidates for the local root type (by essential
//! name, cached per root and pruned to those that matched, as libbpf does), match the access
//! against each, require every match to agree, and compute the values. No instruction is read.

use super::calc::{self, RelocResult};
use super::error::CoreError;
use super::kind::RelocKind;
use super::spec::{candidate_kinds, parse_spec, spec_match, Spec};
use super::Fixup;
use crate::btf::Btf;
use crate::btf_ext::CoreRelo;
use std::collections::HashMap;

/// A relocation that could not be decided, with what the error message needs around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreFailure {
    /// The kind, when it is one the engine knows.
    pub kind: Option<RelocKind>,
    /// The access in C terms, or the root type and raw access string when those do not parse.
    pub access: String,
    /// What went wrong.
    pub error: CoreError,
}

/// Decides relocations for one program against one target BTF, caching candidate lists per
/// local root type.
pub struct CoreEngine<'a> {
    local: &'a Btf,
    target: &'a Btf,
    candidates: HashMap<u32, Vec<u32>>,
}

/// Where a relocation's instruction sits: its number in the program and its linked index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelocSite {
    /// The relocation's number in its program.
    pub relo_index: usize,
    /// Instruction index in the linked program.
    pub insn_index: u32,
}

impl<'a> CoreEngine<'a> {
    /// An engine relocating code described by `local` (the object's BTF) against `target`.
    pub fn new(local: &'a Btf, target: &'a Btf) -> Self {
        CoreEngine {
            local,
            target,
            candidates: HashMap::new(),
        }
    }

    fn candidates_for(&mut self, local_id: u32, name: &str) -> Result<Vec<u32>, CoreError> {
        if let Some(c) = self.candidates.get(&local_id) {
            return Ok(c.clone());
        }
        let kind = self.local.kind_of(local_id).map_err(CoreError::LocalType)?;
        let found = self
            .target
            .ids_by_essential_name(Some(&candidate_kinds(kind)), name);
        self.candidates.insert(local_id, found.clone());
        Ok(found)
    }

    /// Decides `relo` (at `site`) without touching any instruction.
    pub fn decide(&mut self, relo: &CoreRelo, site: RelocSite) -> Result<Fixup, CoreFailure> {
        let raw_access = self
            .local
            .string_at(relo.access_str_off)
            .unwrap_or("")
            .to_string();
        let Some(kind) = RelocKind::from_raw(relo.kind) else {
            return Err(CoreFailure {
                kind: None,
                access: raw_access,
                error: CoreError::UnknownKind(relo.kind),
            });
        };
        let fail = |access: String, error: CoreError| CoreFailure {
            kind: Some(kind),
            access,
            error,
        };
        let local_name = self
            .local
            .name_of(relo.type_id)
            .map_err(|e| fail(raw_access.clone(), CoreError::LocalType(e)))?
            .to_string();
        let local_spec = parse_spec(self.local, relo.type_id, &raw_access, kind).map_err(|e| {
            let root = self
                .local
                .type_by_id(relo.type_id)
                .map_or_else(|_| format!("type #{}", relo.type_id), |t| t.c_name());
            let access = format!("{root} (access string {raw_access:?})");
            fail(access, CoreError::LocalSpec(e))
        })?;
        let access = local_spec.describe();
        let (res, candidate) = if kind == RelocKind::TypeIdLocal {
            (type_id_local(relo.type_id), None)
        } else if local_name.is_empty() {
            return Err(fail(access, CoreError::AnonymousType));
        } else {
            self.choose(relo.type_id, &local_name, &local_spec)
                .map_err(|e| fail(access.clone(), e))?
        };
        Ok(Fixup {
            relo_index: site.relo_index,
            insn_index: site.insn_index,
            kind,
            access,
            raw_access,
            local_type_id: relo.type_id,
            candidate,
            local: res.orig_val,
            target: res.new_val,
            local_size: res.orig_sz,
            target_size: res.new_sz,
            poison: res.poison,
            validate: res.validate,
            unsafe_size_change: res.fail_memsz_adjust,
        })
    }

    /// Matches `local_spec` against every candidate; all matches must agree. Keeps only the
    /// matching candidates for the root's later relocations. With none, the values for a
    /// missing target (0, or poison).
    fn choose(
        &mut self,
        local_id: u32,
        local_name: &str,
        local_spec: &Spec<'_>,
    ) -> Result<(RelocResult, Option<u32>), CoreError> {
        let kind = local_spec.kind;
        let cands = self.candidates_for(local_id, local_name)?;
        let mut chosen: Option<(RelocResult, u64, u32)> = None;
        let mut kept = Vec::new();
        for &cand in &cands {
            let matched = spec_match(local_spec, self.target, cand).map_err(|error| {
                let name = self
                    .target
                    .type_by_id(cand)
                    .map_or_else(|_| "type".to_string(), |t| t.c_name());
                CoreError::Candidate {
                    name,
                    id: cand,
                    error: Box::new(error),
                }
            })?;
            let Some(targ_spec) = matched else {
                continue;
            };
            let res = calc::calc_relo(kind, local_spec, Some(&targ_spec))?;
            match &chosen {
                None => chosen = Some((res, targ_spec.bit_offset, cand)),
                Some((first, bit_offset, _)) => {
                    if targ_spec.bit_offset != *bit_offset {
                        return Err(CoreError::AmbiguousOffsets {
                            first: *bit_offset,
                            second: targ_spec.bit_offset,
                        });
                    }
                    if res.poison.is_some() != first.poison.is_some()
                        || res.new_val != first.new_val
                    {
                        return Err(CoreError::AmbiguousValues {
                            first: first.new_val,
                            second: res.new_val,
                        });
                    }
                }
            }
            kept.push(cand);
        }
        if !kept.is_empty() {
            self.candidates.insert(local_id, kept);
        }
        match chosen {
            Some((res, _, cand)) => Ok((res, Some(cand))),
            None => Ok((calc::calc_relo(kind, local_spec, None)?, None)),
        }
    }
}

/// `type_id_local` needs no target: the id is the object's own, as loaded.
fn type_id_local(type_id: u32) -> RelocResult {
    RelocResult {
        orig_val: type_id as u64,
        new_val: type_id as u64,
        poison: None,
        validate: false,
        fail_memsz_adjust: false,
        orig_sz: 0,
        new_sz: 0,
    }
}
