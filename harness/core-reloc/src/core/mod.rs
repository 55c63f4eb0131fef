//! CO-RE relocation: resolving each `bpf_core_relo` of a program against
//! a target BTF and patching its instruction, with libbpf's semantics.

mod calc;
pub(crate) mod compat;
mod kind;
mod spec;

pub use kind::RelocKind;

use crate::btf::Btf;
use crate::btf_ext::CoreRelo;
use spec::{candidate_kinds, parse_spec, spec_match};
use std::collections::HashMap;

/// What happened to one CO-RE relocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreDecision {
    /// Instruction index in the linked program.
    pub insn_index: u32,
    pub kind: RelocKind,
    /// The access in C terms, e.g. "struct task_struct::__state".
    pub access: String,
    /// The raw access string from `.BTF.ext`, e.g. "0:2".
    pub raw_access: String,
    /// Root type id in the object's BTF.
    pub local_type_id: u32,
    pub outcome: CoreOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreOutcome {
    /// The instruction now carries `target` (it carried `local`).
    Value { local: u64, target: u64 },
    /// No usable target: the instruction was replaced by a call to helper
    /// 0xbad2310 so the program still loads if the code is unreachable.
    Poisoned { reason: String },
}

/// A relocation that could not be applied and must fail the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreFailure {
    pub kind: Option<RelocKind>,
    pub access: String,
    pub why: String,
}

/// Resolves relocations for one program against one target BTF, caching
/// candidate lists per local root type and pruning them as libbpf does.
pub(crate) struct CoreEngine<'a> {
    local: &'a Btf,
    target: &'a Btf,
    candidates: HashMap<u32, Vec<u32>>,
}

impl<'a> CoreEngine<'a> {
    pub(crate) fn new(local: &'a Btf, target: &'a Btf) -> Self {
        CoreEngine {
            local,
            target,
            candidates: HashMap::new(),
        }
    }

    fn candidates_for(&mut self, local_id: u32, name: &str) -> Result<Vec<u32>, String> {
        if let Some(c) = self.candidates.get(&local_id) {
            return Ok(c.clone());
        }
        let kind = self.local.kind_of(local_id).map_err(|e| e.to_string())?;
        let found = self
            .target
            .ids_by_essential_name(Some(&candidate_kinds(kind)), name);
        self.candidates.insert(local_id, found.clone());
        Ok(found)
    }

    /// Applies `relo` to the instruction at `insn_index` of `insns`.
    pub(crate) fn apply(
        &mut self,
        insns: &mut [u8],
        insn_index: usize,
        relo: &CoreRelo,
    ) -> Result<CoreDecision, CoreFailure> {
        let kind = RelocKind::from_raw(relo.kind);
        let raw_access = self
            .local
            .string_at(relo.access_str_off)
            .unwrap_or("")
            .to_string();
        let fail = |access: &str, why: String| CoreFailure {
            kind,
            access: access.to_string(),
            why,
        };
        let Some(kind) = kind else {
            return Err(fail(
                &raw_access,
                format!("unknown relocation kind {}", relo.kind),
            ));
        };
        let local_name = self
            .local
            .name_of(relo.type_id)
            .map_err(|e| fail(&raw_access, e.to_string()))?
            .to_string();
        let local_spec =
            parse_spec(self.local, relo.type_id, &raw_access, kind).map_err(|why| {
                let root = self
                    .local
                    .type_by_id(relo.type_id)
                    .map_or_else(|_| format!("type #{}", relo.type_id), |t| t.c_name());
                fail(&format!("{root} (access string {raw_access:?})"), why)
            })?;
        let access = local_spec.describe();
        let fail = |why: String| CoreFailure {
            kind: Some(kind),
            access: access.clone(),
            why,
        };

        let res = if kind == RelocKind::TypeIdLocal {
            // Needs no target: the id is the object's own, as loaded.
            calc::RelocResult {
                orig_val: relo.type_id as u64,
                new_val: relo.type_id as u64,
                poison: None,
                validate: false,
                fail_memsz_adjust: false,
                orig_sz: 0,
                new_sz: 0,
            }
        } else {
            if local_name.is_empty() {
                return Err(fail(
                    "relocations against anonymous types are not supported".into(),
                ));
            }
            let cands = self
                .candidates_for(relo.type_id, &local_name)
                .map_err(fail)?;
            let mut chosen: Option<(calc::RelocResult, u64)> = None;
            let mut kept = Vec::new();
            for &cand in &cands {
                let Some(targ_spec) =
                    spec_match(&local_spec, self.target, cand).map_err(|why| {
                        let name = self
                            .target
                            .type_by_id(cand)
                            .map_or_else(|_| "type".to_string(), |t| t.c_name());
                        fail(format!("matching target candidate {name} (#{cand}): {why}"))
                    })?
                else {
                    continue;
                };
                let res = calc::calc_relo(kind, &local_spec, Some(&targ_spec)).map_err(fail)?;
                match &chosen {
                    None => chosen = Some((res, targ_spec.bit_offset)),
                    Some((first, bit_offset)) => {
                        if targ_spec.bit_offset != *bit_offset {
                            return Err(fail(format!(
                                "ambiguous: candidates resolve to bit offsets {bit_offset} and {}",
                                targ_spec.bit_offset
                            )));
                        }
                        if res.poison.is_some() != first.poison.is_some()
                            || res.new_val != first.new_val
                        {
                            return Err(fail(format!(
                                "ambiguous: candidates resolve to values {} and {}",
                                first.new_val, res.new_val
                            )));
                        }
                    }
                }
                kept.push(cand);
            }
            if !kept.is_empty() {
                self.candidates.insert(relo.type_id, kept);
            }
            match chosen {
                Some((res, _)) => res,
                None => calc::calc_relo(kind, &local_spec, None).map_err(fail)?,
            }
        };

        let poisoned = calc::patch_insn(insns, insn_index, &res).map_err(fail)?;
        let outcome = match poisoned {
            Some(reason) => CoreOutcome::Poisoned { reason },
            None => CoreOutcome::Value {
                local: res.orig_val,
                target: res.new_val,
            },
        };
        Ok(CoreDecision {
            insn_index: insn_index as u32,
            kind,
            access,
            raw_access,
            local_type_id: relo.type_id,
            outcome,
        })
    }
}
