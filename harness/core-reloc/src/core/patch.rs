//! Applying a decided [`Fixup`] to its instruction (libbpf's `bpf_core_patch_insn`): check the
//! instruction is the one the decision was made for, then write the target value or poison it.

use super::error::PatchError;
use super::{CoreOutcome, Fixup, PoisonReason};
use crate::insn::{self, Insn};

/// What applying a fixup writes: one instruction, or both halves of a `ld_imm64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch {
    /// The instruction at the fixup's index, as patched.
    pub first: Insn,
    /// The instruction after it, for a `ld_imm64`'s second half.
    pub second: Option<Insn>,
}

impl Fixup {
    /// What applying this fixup to `insns` (at [`Fixup::insn_index`]) would write and the
    /// outcome it reports, without writing. Fails when the instruction is not what the decision
    /// expects (another value than the local one, an instruction that carries no value).
    pub fn plan(&self, insns: &[u8]) -> Result<(Patch, CoreOutcome), PatchError> {
        let index = self.insn_index as usize;
        let ins = insn::read(insns, index).ok_or(PatchError::OutOfRange)?;
        self.plan_insn(ins, insn::read(insns, index + 1))
    }

    /// [`Fixup::plan`] for the instruction `ins`, followed by `next` (if any).
    pub fn plan_insn(
        &self,
        ins: Insn,
        next: Option<Insn>,
    ) -> Result<(Patch, CoreOutcome), PatchError> {
        let index = self.insn_index as usize;
        if let Some(reason) = &self.poison {
            return Ok((poisoned(ins, next), poisoned_outcome(reason)));
        }
        let value = CoreOutcome::Value {
            local: self.local,
            target: self.target,
        };
        match ins.class() {
            insn::CLASS_ALU | insn::CLASS_ALU64 => Ok((self.patch_alu(index, ins)?, value)),
            insn::CLASS_LDX | insn::CLASS_ST | insn::CLASS_STX => {
                match self.patch_memory(index, ins)? {
                    Some(patch) => Ok((patch, value)),
                    None => {
                        let reason = PoisonReason::UnsafeSizeChange {
                            from: self.local_size,
                            to: self.target_size,
                        };
                        Ok((poisoned(ins, next), poisoned_outcome(&reason)))
                    }
                }
            }
            insn::CLASS_LD => Ok((self.patch_ld_imm64(index, ins, next)?, value)),
            _ => Err(PatchError::NotRelocatable {
                index,
                code: ins.code,
            }),
        }
    }

    /// Applies this fixup to `insns` and returns the decision as applied.
    pub fn apply(&self, insns: &mut [u8]) -> Result<super::CoreDecision, PatchError> {
        let (patch, outcome) = self.plan(insns)?;
        let index = self.insn_index as usize;
        if let Some(second) = patch.second {
            // Out of range only for a poisoned ld_imm64 at the very end: the first half suffices.
            insn::write(insns, index + 1, second);
        }
        if !insn::write(insns, index, patch.first) {
            return Err(PatchError::OutOfRange);
        }
        Ok(self.decision(outcome))
    }

    fn patch_alu(&self, index: usize, ins: Insn) -> Result<Patch, PatchError> {
        if ins.code & 0x08 != insn::SRC_K {
            return Err(PatchError::NotImmediate);
        }
        if self.validate && ins.imm as i64 as u64 != self.local {
            return Err(PatchError::UnexpectedImmediate {
                index,
                found: ins.imm,
                expected: self.local,
            });
        }
        let first = Insn {
            imm: self.target as i32,
            ..ins
        };
        Ok(Patch {
            first,
            second: None,
        })
    }

    /// `None`: the access size would change in a way that is not safe; poison instead.
    fn patch_memory(&self, index: usize, ins: Insn) -> Result<Option<Patch>, PatchError> {
        if self.validate && ins.off as i64 as u64 != self.local {
            return Err(PatchError::UnexpectedOffset {
                index,
                found: ins.off,
                expected: self.local,
            });
        }
        if self.target > i16::MAX as u64 {
            return Err(PatchError::OffsetTooLarge {
                index,
                offset: self.target,
            });
        }
        if self.unsafe_size_change {
            return Ok(None);
        }
        let mut first = Insn {
            off: self.target as i16,
            ..ins
        };
        if self.target_size != self.local_size {
            let current = ins.mem_size_bytes().ok_or(PatchError::BadAccessSize)?;
            if current != self.local_size {
                return Err(PatchError::UnexpectedAccessSize {
                    index,
                    found: current,
                    expected: self.local_size,
                });
            }
            let size = insn::size_code_for_bytes(self.target_size).ok_or(
                PatchError::UnsupportedAccessSize {
                    index,
                    size: self.target_size,
                },
            )?;
            first.code = (ins.code & !0x18) | size;
        }
        Ok(Some(Patch {
            first,
            second: None,
        }))
    }

    fn patch_ld_imm64(
        &self,
        index: usize,
        ins: Insn,
        next: Option<Insn>,
    ) -> Result<Patch, PatchError> {
        let next = next.ok_or(PatchError::MissingSecondHalf)?;
        if !ins.is_ld_imm64()
            || ins.src_reg != 0
            || ins.off != 0
            || next.code != 0
            || next.dst_reg != 0
            || next.src_reg != 0
            || next.off != 0
        {
            return Err(PatchError::MalformedLdImm64 { index });
        }
        let imm = ins.imm as u32 as u64 | (next.imm as u32 as u64) << 32;
        if self.validate && imm != self.local {
            return Err(PatchError::UnexpectedImm64 {
                index,
                found: imm,
                expected: self.local,
            });
        }
        Ok(Patch {
            first: Insn {
                imm: self.target as u32 as i32,
                ..ins
            },
            second: Some(Insn {
                imm: (self.target >> 32) as u32 as i32,
                ..next
            }),
        })
    }
}

/// The poison call; a `ld_imm64` loses both halves so the verifier reports the bad call, not
/// an unknown opcode.
fn poisoned(ins: Insn, next: Option<Insn>) -> Patch {
    let second = (ins.is_ld_imm64() && next.is_some()).then(Insn::poison);
    Patch {
        first: Insn::poison(),
        second,
    }
}

fn poisoned_outcome(reason: &PoisonReason) -> CoreOutcome {
    CoreOutcome::Poisoned {
        reason: reason.clone(),
    }
}
