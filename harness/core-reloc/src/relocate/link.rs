//! Linking one program with its subprograms: which functions it reaches and where each lands
//! ([`Layout`], read from the object without copying code), then the linked instruction stream
//! with call offsets fixed and func/line info rebased ([`link_program`]).

use super::{ExternRef, MapRef, MapRefKind, RelocateError};
use crate::btf::Btf;
use crate::btf_ext::{CoreRelo, ExtSection};
use crate::bytes::{put_u32, u32_at};
use crate::core::RelocSite;
use crate::insn::{self, Insn, INSN_SIZE, PSEUDO_FUNC};
use crate::object::{CodeReloc, ExternKind, Object, Program};
use std::collections::HashMap;

/// A function placed in the linked program.
pub(super) struct Placed {
    function: usize,
    linked_start: usize,
}

/// Where every function of a program lands and what its instructions refer to.
pub(super) struct Layout<'o> {
    pub program: &'o Program,
    pub placed: Vec<Placed>,
    /// (linked index of the call/ld_imm64, linked index of its target)
    jumps: Vec<(usize, usize)>,
    pub map_refs: Vec<MapRef>,
    pub extern_refs: Vec<ExternRef>,
}

/// One CO-RE relocation of a linked program: where it applies and the record itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreSite {
    /// Its number and linked instruction index.
    pub site: RelocSite,
    /// The `.BTF.ext` record.
    pub relo: CoreRelo,
    /// (code section, instruction index in it): where the unlinked instruction is.
    origin: (usize, usize),
}

impl CoreSite {
    /// The instruction as the object holds it (before linking and patching), and the one after.
    pub(super) fn original_insns(&self, obj: &Object) -> (Option<Insn>, Option<Insn>) {
        let (code, index) = self.origin;
        let insns = &obj.code[code].insns;
        (insn::read(insns, index), insn::read(insns, index + 1))
    }
}

fn link_err(program: &str, why: String) -> RelocateError {
    RelocateError::Link {
        program: program.to_string(),
        why,
    }
}

impl<'o> Layout<'o> {
    /// Places `program`'s entry function, then every subprogram it reaches, depth first in the
    /// order their first call is met, exactly as libbpf lays them out: the linked stream (and
    /// thus every call offset and verifier message) is the same as libbpf's.
    pub fn of(obj: &'o Object, program: &str) -> Result<Layout<'o>, RelocateError> {
        let prog = obj
            .program(program)
            .ok_or_else(|| RelocateError::NoSuchProgram(program.to_string()))?;
        let err = |why: String| link_err(program, why);
        if prog.function >= obj.functions.len() {
            return Err(err("program has no function".into()));
        }
        let mut layout = Layout {
            program: prog,
            placed: Vec::new(),
            jumps: Vec::new(),
            map_refs: Vec::new(),
            extern_refs: Vec::new(),
        };
        let mut placed_at: HashMap<usize, usize> = HashMap::new();
        let mut next_start = 0;
        layout.place(obj, prog.function, &mut next_start, &mut placed_at)?;
        // (function, its linked start, next instruction to scan)
        let mut stack: Vec<(usize, usize, usize)> = vec![(prog.function, 0, 0)];
        while let Some(top) = stack.last_mut() {
            let (function, linked_start, i) = *top;
            let func = &obj.functions[function];
            if i >= func.len {
                stack.pop();
                continue;
            }
            top.2 += 1;
            let linked = linked_start + i;
            let Some((code, target_index)) = layout.references(obj, function, i, linked)? else {
                continue;
            };
            let target_fn = obj
                .functions
                .iter()
                .position(|f| {
                    f.code == code
                        && target_index >= f.start as i64
                        && target_index < (f.start + f.len) as i64
                })
                .ok_or_else(|| {
                    err(format!(
                        "call at #{} of {} targets instruction {target_index} of {}, which is in no function",
                        func.start + i, func.name, obj.code[code].name
                    ))
                })?;
            let target_start = match placed_at.get(&target_fn) {
                Some(&start) => start,
                None => {
                    let start = layout.place(obj, target_fn, &mut next_start, &mut placed_at)?;
                    stack.push((target_fn, start, 0));
                    start
                }
            };
            let offset_in_fn = target_index as usize - obj.functions[target_fn].start;
            layout.jumps.push((linked, target_start + offset_in_fn));
        }
        Ok(layout)
    }

    /// Appends `function` to the layout; returns its linked start.
    fn place(
        &mut self,
        obj: &Object,
        function: usize,
        next_start: &mut usize,
        placed_at: &mut HashMap<usize, usize>,
    ) -> Result<usize, RelocateError> {
        let func = &obj.functions[function];
        let in_bounds = func
            .start
            .checked_add(func.len)
            .and_then(|end| end.checked_mul(INSN_SIZE))
            .is_some_and(|end| end <= obj.code[func.code].insns.len());
        if !in_bounds {
            return Err(link_err(
                &self.program.name,
                format!("function {} out of bounds", func.name),
            ));
        }
        let start = *next_start;
        *next_start += func.len;
        self.placed.push(Placed {
            function,
            linked_start: start,
        });
        placed_at.insert(function, start);
        Ok(start)
    }

    /// Records what instruction `i` of `function` (linked at `linked`) refers to: a map, global
    /// data or an extern; returns the (code section, instruction) a call or function address
    /// targets.
    fn references(
        &mut self,
        obj: &Object,
        function: usize,
        i: usize,
        linked: usize,
    ) -> Result<Option<(usize, i64)>, RelocateError> {
        let err = |why: String| link_err(&self.program.name, why);
        let func = &obj.functions[function];
        let section = &obj.code[func.code];
        let sec_index = func.start + i;
        let ins = insn::read(&section.insns, sec_index)
            .ok_or_else(|| err("instruction out of range".into()))?;
        let insn_index = linked as u32;
        let mut map_ref = |map_index, kind| {
            self.map_refs.push(MapRef {
                insn_index,
                map_index,
                kind,
            })
        };
        Ok(match section.relocs.get(&sec_index) {
            Some(CodeReloc::Map { map }) => {
                map_ref(*map, MapRefKind::Fd);
                None
            }
            Some(CodeReloc::Data { map, sym_off }) => {
                let offset = (ins.imm as i64)
                    .checked_add(*sym_off as i64)
                    .and_then(|o| u32::try_from(o).ok())
                    .ok_or_else(|| err(format!("bad global data offset at #{sec_index}")))?;
                map_ref(*map, MapRefKind::Value { offset });
                None
            }
            Some(CodeReloc::Call { code, sym_off }) => Some((
                *code,
                (*sym_off as i64 / INSN_SIZE as i64) + ins.imm as i64 + 1,
            )),
            Some(CodeReloc::FuncAddr { code, sym_off }) => {
                Some((*code, (*sym_off as i64 + ins.imm as i64) / INSN_SIZE as i64))
            }
            Some(CodeReloc::Extern { ext }) => {
                let extern_ = obj
                    .externs()
                    .get(*ext)
                    .ok_or_else(|| err(format!("extern #{ext} out of range")))?;
                if let ExternKind::Kconfig { offset, .. } = extern_.kind {
                    let map_index = obj.kconfig_map().ok_or_else(|| {
                        err(format!(
                            "kconfig extern {} without a .kconfig map",
                            extern_.name
                        ))
                    })?;
                    map_ref(map_index, MapRefKind::Value { offset });
                } else {
                    self.extern_refs.push(ExternRef {
                        insn_index,
                        extern_index: *ext,
                        is_call: !ins.is_ld_imm64(),
                    });
                }
                None
            }
            None if ins.is_pseudo_call() => {
                Some((func.code, sec_index as i64 + ins.imm as i64 + 1))
            }
            None => None,
        })
    }

    /// Every CO-RE relocation of the placed functions, numbered in linked order.
    pub fn core_sites(&self, obj: &Object) -> Result<Vec<CoreSite>, RelocateError> {
        let mut sites = Vec::new();
        let Some(ext) = obj.btf_ext() else {
            return Ok(sites);
        };
        let btf = self.object_btf(obj)?;
        for p in &self.placed {
            let func = &obj.functions[p.function];
            let section_name = obj.code[func.code].name.as_str();
            for sec in sections_named(btf, &ext.core_relos, section_name) {
                for relo in ext.core_relos_of(sec) {
                    let Some(linked) = p.rebase(obj, relo.insn_off) else {
                        continue;
                    };
                    let section_index = relo.insn_off as usize / INSN_SIZE;
                    sites.push(CoreSite {
                        site: RelocSite {
                            relo_index: sites.len(),
                            insn_index: linked,
                        },
                        relo,
                        origin: (func.code, section_index),
                    });
                }
            }
        }
        Ok(sites)
    }

    /// The object's BTF, which `.BTF.ext` needs.
    pub fn object_btf<'b>(&self, obj: &'b Object) -> Result<&'b Btf, RelocateError> {
        obj.btf()
            .ok_or_else(|| link_err(&self.program.name, ".BTF.ext without .BTF".into()))
    }

    /// The linked instructions: every placed function's code, calls pointing at their linked
    /// targets.
    pub fn instructions(&self, obj: &Object) -> Result<Vec<u8>, RelocateError> {
        let err = |why: &str| link_err(&self.program.name, why.to_string());
        let mut insns = Vec::new();
        for p in &self.placed {
            let func = &obj.functions[p.function];
            let start = func.start * INSN_SIZE;
            let code = obj.code[func.code]
                .insns
                .get(start..start + func.len * INSN_SIZE)
                .ok_or_else(|| err("function out of bounds"))?;
            insns.extend_from_slice(code);
        }
        for &(at, to) in &self.jumps {
            let mut ins: Insn = insn::read(&insns, at).ok_or_else(|| err("bad call site"))?;
            let rel = to as i64 - at as i64 - 1;
            ins.imm = i32::try_from(rel).map_err(|_| err("call distance too large"))?;
            if ins.is_ld_imm64() {
                ins.src_reg = PSEUDO_FUNC;
            }
            insn::write(&mut insns, at, ins);
        }
        Ok(insns)
    }

    /// `bpf_func_info` and `bpf_line_info` records of the placed functions, their instruction
    /// offsets rebased to the linked program (in instruction units).
    pub fn ext_info(&self, obj: &Object, btf: &Btf) -> (Vec<u8>, Vec<u8>) {
        let (mut func_info, mut line_info) = (Vec::new(), Vec::new());
        let Some(ext) = obj.btf_ext() else {
            return (func_info, line_info);
        };
        for p in &self.placed {
            let section_name = obj.code[obj.functions[p.function].code].name.as_str();
            let rebase = |off: u32| p.rebase(obj, off);
            for sec in sections_named(btf, &ext.func_info, section_name) {
                copy_rebased(sec, ext.func_info_rec_size, &rebase, &mut func_info);
            }
            for sec in sections_named(btf, &ext.line_info, section_name) {
                copy_rebased(sec, ext.line_info_rec_size, &rebase, &mut line_info);
            }
        }
        (func_info, line_info)
    }
}

impl Placed {
    /// The linked index of the instruction at byte offset `off` of the function's section, if
    /// it lies in this function.
    fn rebase(&self, obj: &Object, off: u32) -> Option<u32> {
        let func = &obj.functions[self.function];
        let index = off as usize / INSN_SIZE;
        ((off as usize).is_multiple_of(INSN_SIZE)
            && index >= func.start
            && index < func.start + func.len)
            .then(|| (self.linked_start + index - func.start) as u32)
    }
}

fn sections_named<'e>(
    btf: &'e Btf,
    sections: &'e [ExtSection],
    name: &'e str,
) -> impl Iterator<Item = &'e ExtSection> + 'e {
    sections
        .iter()
        .filter(move |s| btf.string_at(s.sec_name_off) == Ok(name))
}

/// Appends the records of `sec` that fall in the function, with their first
/// word (a byte offset in the section) replaced by the linked instruction index.
fn copy_rebased(
    sec: &ExtSection,
    rec_size: u32,
    rebase: &dyn Fn(u32) -> Option<u32>,
    out: &mut Vec<u8>,
) {
    for i in 0..sec.count {
        let Some(record) = sec.record(rec_size, i) else {
            break;
        };
        let Some(linked) = u32_at(record, 0).and_then(rebase) else {
            continue;
        };
        let at = out.len();
        out.extend_from_slice(record);
        put_u32(out, at, linked);
    }
}
