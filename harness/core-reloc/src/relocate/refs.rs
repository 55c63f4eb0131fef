//! Patching what the loader learns after linking into a linked program: map fds, and what
//! each kfunc and ksym extern resolved to.

use super::{MapRefKind, RelocateError, RelocatedProgram};
use super::{PSEUDO_BTF_ID, PSEUDO_KFUNC_CALL};
use crate::externs::{ExternResolution, ExternValue, POISON_KFUNC_CALL_BASE};
use crate::insn::{self, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE};

impl RelocatedProgram {
    /// Writes map fds into the map references: `fds[i]` is the fd of `Object::maps()[i]`.
    pub fn patch_map_fds(&mut self, fds: &[i32]) -> Result<(), RelocateError> {
        for r in &self.map_refs {
            let fd = *fds.get(r.map_index).ok_or_else(|| RelocateError::Link {
                program: self.name.clone(),
                why: format!("no fd for map #{}", r.map_index),
            })?;
            let index = r.insn_index as usize;
            let (Some(mut first), Some(mut second)) = (
                insn::read(&self.insns, index),
                insn::read(&self.insns, index + 1),
            ) else {
                return Err(RelocateError::Link {
                    program: self.name.clone(),
                    why: format!("map reference at #{index} out of range"),
                });
            };
            first.imm = fd;
            match r.kind {
                MapRefKind::Fd => {
                    first.src_reg = PSEUDO_MAP_FD;
                    second.imm = 0;
                }
                MapRefKind::Value { offset } => {
                    first.src_reg = PSEUDO_MAP_VALUE;
                    second.imm = offset as i32;
                }
            }
            insn::write(&mut self.insns, index, first);
            insn::write(&mut self.insns, index + 1, second);
        }
        Ok(())
    }

    /// Writes what each extern resolved to into its kfunc calls and ksym loads, as libbpf does:
    /// a kfunc call becomes `BPF_PSEUDO_KFUNC_CALL` with the kernel's BTF id (an unresolved weak
    /// one a poisoned call the verifier must find dead), a typed ksym a `BPF_PSEUDO_BTF_ID` load,
    /// a typeless ksym its address, an unresolved weak ksym 0.
    pub fn patch_externs(&mut self, resolution: &ExternResolution) -> Result<(), RelocateError> {
        for r in &self.extern_refs {
            let link = |why: String| RelocateError::Link {
                program: self.name.clone(),
                why,
            };
            let value = *resolution
                .values
                .get(r.extern_index)
                .ok_or_else(|| link(format!("extern #{} was not resolved", r.extern_index)))?;
            let index = r.insn_index as usize;
            let mut first = insn::read(&self.insns, index)
                .ok_or_else(|| link(format!("extern reference at #{index} out of range")))?;
            if r.is_call {
                first.dst_reg = 0;
                first.off = 0;
                match value {
                    ExternValue::KernelBtfId(id) => {
                        first.src_reg = PSEUDO_KFUNC_CALL;
                        first.imm = id as i32;
                    }
                    ExternValue::Unresolved => {
                        first.src_reg = 0;
                        first.imm = POISON_KFUNC_CALL_BASE.saturating_add(r.extern_index as i32);
                    }
                    other => {
                        return Err(link(format!(
                            "call at #{index} to an extern that resolved to {other:?}"
                        )))
                    }
                }
                insn::write(&mut self.insns, index, first);
                continue;
            }
            let mut second = insn::read(&self.insns, index + 1)
                .ok_or_else(|| link(format!("extern reference at #{index} out of range")))?;
            let (src_reg, lo, hi) = match value {
                ExternValue::KernelBtfId(id) => (PSEUDO_BTF_ID, id as i32, 0),
                ExternValue::Address(addr) => (0, addr as u32 as i32, (addr >> 32) as u32 as i32),
                ExternValue::Unresolved => (0, 0, 0),
                ExternValue::Kconfig => {
                    return Err(link(format!(
                        "ld_imm64 at #{index} of a kconfig extern is a map reference"
                    )))
                }
            };
            first.src_reg = src_reg;
            first.imm = lo;
            second.imm = hi;
            insn::write(&mut self.insns, index, first);
            insn::write(&mut self.insns, index + 1, second);
        }
        Ok(())
    }
}
