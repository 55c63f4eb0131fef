//! CO-RE relocation with libbpf's semantics, in two steps callable apart:
//! - decide ([`CoreEngine::decide`], `decide.rs`): match one `bpf_core_relo` against the
//!   target BTF's candidates and compute the local and target values, touching no instruction
//!   (libbpf's `bpf_core_calc_relo_insn`, cilium/ebpf's `CORERelocate`);
//! - patch ([`Fixup::apply`], `patch.rs`): check the instruction is what the decision expects
//!   and write the target value or the poison call (libbpf's `bpf_core_patch_insn`).
//!
//! `spec.rs` parses and matches access strings, `compat.rs` holds the type relations,
//! `calc.rs` the value of each kind; failures are the typed errors of `error.rs`.

mod calc;
pub(crate) mod compat;
mod decide;
mod error;
mod kind;
mod patch;
mod spec;

#[cfg(test)]
mod tests;

pub use decide::{CoreEngine, CoreFailure, RelocSite};
pub use error::{CalcError, CompatError, CoreError, PatchError, SpecError};
pub use kind::RelocKind;
pub use patch::Patch;

use std::fmt;

/// What one CO-RE relocation did to its instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreDecision {
    /// Instruction index in the linked program.
    pub insn_index: u32,
    /// The relocation kind.
    pub kind: RelocKind,
    /// The access in C terms, e.g. "struct task_struct::__state".
    pub access: String,
    /// The raw access string from `.BTF.ext`, e.g. "0:2".
    pub raw_access: String,
    /// Root type id in the object's BTF.
    pub local_type_id: u32,
    /// The value written, or why the instruction was poisoned.
    pub outcome: CoreOutcome,
}

/// The result of one relocation on its instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreOutcome {
    /// The instruction now carries `target` (it carried `local`).
    Value {
        /// What the compiler wrote for the object's own layout.
        local: u64,
        /// What the target kernel's layout needs.
        target: u64,
    },
    /// No usable target: the instruction was replaced by a call to helper
    /// 0xbad2310 so the program still loads if the code is unreachable.
    Poisoned {
        /// Why.
        reason: PoisonReason,
    },
}

/// The words a report and a diff both read: `value 24`, `poisoned (field not found in target)`.
impl fmt::Display for CoreOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreOutcome::Value { target, .. } => write!(f, "value {target}"),
            CoreOutcome::Poisoned { reason } => write!(f, "poisoned ({reason})"),
        }
    }
}

/// Why a relocation poisons its instruction instead of failing the load (as libbpf does: the
/// program still loads if the verifier finds that code dead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoisonReason {
    /// The field is in no matching target type.
    #[error("field not found in target")]
    FieldMissing,
    /// The enumerator is in no matching target enum.
    #[error("enumerator not found in target")]
    EnumeratorMissing,
    /// A load or store would change size for a field that is not a pointer or unsigned integer.
    #[error(
        "field size changes from {from} to {to} bytes and is not a pointer or unsigned integer"
    )]
    UnsafeSizeChange {
        /// The local field's size.
        from: u32,
        /// The target field's size.
        to: u32,
    },
}

/// The decision for one CO-RE relocation, before any instruction is touched: what to write
/// where, and what the instruction must hold now. [`Fixup::apply`] writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixup {
    /// The relocation's number in its program (in the linked program's order).
    pub relo_index: usize,
    /// Instruction index in the linked program.
    pub insn_index: u32,
    /// The relocation kind.
    pub kind: RelocKind,
    /// The access in C terms, e.g. "struct task_struct::__state".
    pub access: String,
    /// The raw access string from `.BTF.ext`, e.g. "0:2".
    pub raw_access: String,
    /// Root type id in the object's BTF.
    pub local_type_id: u32,
    /// The target type that decided (the first matching candidate); `None` when none matched
    /// or none was needed (`type_id_local`).
    pub candidate: Option<u32>,
    /// The value the compiler wrote (checked before patching when `validate`).
    pub local: u64,
    /// The value to write.
    pub target: u64,
    /// Size of the local field, for loads and stores of a field (0 otherwise).
    pub local_size: u32,
    /// Size of the target field, for loads and stores of a field (0 otherwise).
    pub target_size: u32,
    /// `Some`: poison the instruction instead of writing `target`.
    pub poison: Option<PoisonReason>,
    /// Check the instruction holds `local` before patching.
    pub validate: bool,
    /// The access size changes and the field is neither a pointer nor unsigned: a load or
    /// store of it is poisoned.
    pub unsafe_size_change: bool,
}

impl Fixup {
    /// The decision as reported once applied with `outcome`.
    pub fn decision(&self, outcome: CoreOutcome) -> CoreDecision {
        CoreDecision {
            insn_index: self.insn_index,
            kind: self.kind,
            access: self.access.clone(),
            raw_access: self.raw_access.clone(),
            local_type_id: self.local_type_id,
            outcome,
        }
    }
}
