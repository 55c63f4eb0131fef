//! Turning one program of an object into a loadable instruction stream:
//! linking its subprograms, recording map references, rebasing func/line
//! info and applying CO-RE relocations against a target BTF.

use crate::btf::Btf;
use crate::btf_ext::ExtSection;
use crate::bytes::{put_u32, u32_at};
use crate::core::{CoreDecision, CoreEngine, RelocKind};
use crate::externs::{ExternResolution, ExternValue, POISON_KFUNC_CALL_BASE};
use crate::insn::{self, INSN_SIZE, PSEUDO_FUNC, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE};
use crate::object::{CodeReloc, ExternKind, Object};
use std::collections::HashMap;

/// How a `ld_imm64` refers to a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapRefKind {
    /// The map itself (`BPF_PSEUDO_MAP_FD`).
    Fd,
    /// An address inside the map's single value (`BPF_PSEUDO_MAP_VALUE`).
    Value { offset: u32 },
}

/// An instruction that refers to a ksym or a kfunc: patched once the extern is resolved
/// ([`RelocatedProgram::patch_externs`]). Kconfig externs become [`MapRef`]s instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternRef {
    pub insn_index: u32,
    /// Index into `Object::externs()`.
    pub extern_index: usize,
    /// A `call` (kfunc) rather than a `ld_imm64`.
    pub is_call: bool,
}

/// A `ld_imm64` the loader must patch with a map fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRef {
    pub insn_index: u32,
    /// Index into `Object::maps()`.
    pub map_index: usize,
    pub kind: MapRefKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelocatedProgram {
    pub name: String,
    pub section: String,
    pub program_type: u32,
    pub expected_attach_type: Option<u32>,
    pub attach_to: Option<String>,
    pub prog_flags: u32,
    /// Raw 8-byte instructions: the entry function, then every subprogram it reaches.
    pub insns: Vec<u8>,
    pub map_refs: Vec<MapRef>,
    /// Kfunc calls and ksym loads, patched by [`RelocatedProgram::patch_externs`].
    pub extern_refs: Vec<ExternRef>,
    /// `bpf_func_info` records, instruction offsets in instruction units.
    pub func_info: Vec<u8>,
    pub func_info_rec_size: u32,
    /// `bpf_line_info` records, instruction offsets in instruction units.
    pub line_info: Vec<u8>,
    pub line_info_rec_size: u32,
    /// Every CO-RE relocation applied, in instruction order per function.
    pub core: Vec<CoreDecision>,
    /// The linked instructions before any CO-RE relocation was applied, with
    /// [`RelocatedProgram::kernel_core_relos`]: what a kernel that relocates by itself
    /// (`core_relos` at `BPF_PROG_LOAD`, 5.17+) is given instead of [`RelocatedProgram::insns`].
    pub insns_before_core: Vec<u8>,
    /// The program's CO-RE relocations as the kernel's `struct bpf_core_relo` records (16 bytes:
    /// `insn_off` in bytes from the linked program's start, `type_id`, `access_str_off`, `kind`),
    /// in the order they were applied.
    pub kernel_core_relos: Vec<u8>,
}

/// Size of one `struct bpf_core_relo`.
pub const KERNEL_CORE_RELO_SIZE: u32 = 16;

impl RelocatedProgram {
    pub fn insn_count(&self) -> usize {
        self.insns.len() / INSN_SIZE
    }

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
}

impl RelocatedProgram {
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

/// `BPF_PSEUDO_KFUNC_CALL`: a call's imm is a kernel BTF id of a FUNC.
pub const PSEUDO_KFUNC_CALL: u8 = 2;
/// `BPF_PSEUDO_BTF_ID`: a ld_imm64's imm is a kernel BTF id of a VAR (or FUNC).
pub const PSEUDO_BTF_ID: u8 = 3;

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum RelocateError {
    #[error("no program named {0:?} in the object")]
    NoSuchProgram(String),
    #[error("program {program}: {why}")]
    Link { program: String, why: String },
    #[error("program {program}: CO-RE relocation #{index} ({kind}) at insn #{insn_index} for {access}: {why}")]
    Core {
        program: String,
        index: usize,
        kind: String,
        insn_index: u32,
        access: String,
        why: String,
    },
}

/// A function placed in the linked program.
struct Placed {
    function: usize,
    linked_start: usize,
}

/// Links `program`, resolves its map and global data references and applies
/// its CO-RE relocations against `target`.
pub fn relocate_program(
    obj: &Object,
    program: &str,
    target: &Btf,
) -> Result<RelocatedProgram, RelocateError> {
    let prog = obj
        .program(program)
        .ok_or_else(|| RelocateError::NoSuchProgram(program.to_string()))?;
    let link_err = |why: String| RelocateError::Link {
        program: program.to_string(),
        why,
    };
    if prog.function >= obj.functions.len() {
        return Err(link_err("program has no function".into()));
    }

    let mut placed: Vec<Placed> = vec![Placed {
        function: prog.function,
        linked_start: 0,
    }];
    let mut placed_at: HashMap<usize, usize> = HashMap::from([(prog.function, 0)]);
    let mut insns: Vec<u8> = Vec::new();
    let mut map_refs = Vec::new();
    let mut extern_refs = Vec::new();
    // (linked index of the call/ld_imm64, linked index of its target)
    let mut jumps: Vec<(usize, usize)> = Vec::new();

    // Subprograms are appended depth first, in the order their first call
    // is met, exactly as libbpf lays them out: the linked stream (and thus
    // every call offset and verifier message) is the same as libbpf's.
    let append = |function: usize, insns: &mut Vec<u8>| -> Result<(), RelocateError> {
        let func = &obj.functions[function];
        let start_byte = func.start * INSN_SIZE;
        let bytes = obj.code[func.code]
            .insns
            .get(start_byte..start_byte + func.len * INSN_SIZE)
            .ok_or_else(|| link_err(format!("function {} out of bounds", func.name)))?;
        insns.extend_from_slice(bytes);
        Ok(())
    };
    append(prog.function, &mut insns)?;
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
        let section = &obj.code[func.code];
        let sec_index = func.start + i;
        let linked = linked_start + i;
        let ins = insn::read(&section.insns, sec_index)
            .ok_or_else(|| link_err("instruction out of range".into()))?;
        let callee = match section.relocs.get(&sec_index) {
            Some(CodeReloc::Map { map }) => {
                map_refs.push(MapRef {
                    insn_index: linked as u32,
                    map_index: *map,
                    kind: MapRefKind::Fd,
                });
                None
            }
            Some(CodeReloc::Data { map, sym_off }) => {
                let offset = (ins.imm as i64)
                    .checked_add(*sym_off as i64)
                    .and_then(|o| u32::try_from(o).ok())
                    .ok_or_else(|| link_err(format!("bad global data offset at #{sec_index}")))?;
                map_refs.push(MapRef {
                    insn_index: linked as u32,
                    map_index: *map,
                    kind: MapRefKind::Value { offset },
                });
                None
            }
            Some(CodeReloc::Call { code, sym_off }) => {
                let target_index = (*sym_off as i64 / INSN_SIZE as i64) + ins.imm as i64 + 1;
                Some((*code, target_index))
            }
            Some(CodeReloc::FuncAddr { code, sym_off }) => {
                let target_index = (*sym_off as i64 + ins.imm as i64) / INSN_SIZE as i64;
                Some((*code, target_index))
            }
            Some(CodeReloc::Extern { ext }) => {
                let extern_ = obj
                    .externs()
                    .get(*ext)
                    .ok_or_else(|| link_err(format!("extern #{ext} out of range")))?;
                if let ExternKind::Kconfig { offset, .. } = extern_.kind {
                    let map_index = obj.kconfig_map().ok_or_else(|| {
                        link_err(format!(
                            "kconfig extern {} without a .kconfig map",
                            extern_.name
                        ))
                    })?;
                    map_refs.push(MapRef {
                        insn_index: linked as u32,
                        map_index,
                        kind: MapRefKind::Value { offset },
                    });
                } else {
                    extern_refs.push(ExternRef {
                        insn_index: linked as u32,
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
        };
        let Some((code, target_index)) = callee else {
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
                    link_err(format!(
                        "call at #{sec_index} of {} targets instruction {target_index} of {}, which is in no function",
                        func.name, obj.code[code].name
                    ))
                })?;
        let target_start = match placed_at.get(&target_fn) {
            Some(&start) => start,
            None => {
                let start = insns.len() / INSN_SIZE;
                placed.push(Placed {
                    function: target_fn,
                    linked_start: start,
                });
                placed_at.insert(target_fn, start);
                append(target_fn, &mut insns)?;
                stack.push((target_fn, start, 0));
                start
            }
        };
        let offset_in_fn = target_index as usize - obj.functions[target_fn].start;
        jumps.push((linked, target_start + offset_in_fn));
    }

    for &(at, to) in &jumps {
        let mut ins = insn::read(&insns, at).ok_or_else(|| link_err("bad call site".into()))?;
        let rel = to as i64 - at as i64 - 1;
        ins.imm = i32::try_from(rel).map_err(|_| link_err("call distance too large".into()))?;
        if ins.is_ld_imm64() {
            ins.src_reg = PSEUDO_FUNC;
        }
        insn::write(&mut insns, at, ins);
    }

    let mut func_info = Vec::new();
    let mut line_info = Vec::new();
    let mut func_info_rec_size = 0;
    let mut line_info_rec_size = 0;
    let mut core = Vec::new();
    let insns_before_core = insns.clone();
    let mut kernel_core_relos = Vec::new();
    if let Some(ext) = obj.btf_ext() {
        let btf = obj
            .btf()
            .ok_or_else(|| link_err(".BTF.ext without .BTF".into()))?;
        func_info_rec_size = ext.func_info_rec_size;
        line_info_rec_size = ext.line_info_rec_size;
        let mut engine = CoreEngine::new(btf, target);
        let mut relo_counter = 0usize;
        for p in &placed {
            let func = &obj.functions[p.function];
            let section_name = obj.code[func.code].name.as_str();
            let rebase = |off: u32| -> Option<u32> {
                let index = off as usize / INSN_SIZE;
                ((off as usize).is_multiple_of(INSN_SIZE)
                    && index >= func.start
                    && index < func.start + func.len)
                    .then(|| (p.linked_start + index - func.start) as u32)
            };
            for sec in sections_named(btf, &ext.func_info, section_name) {
                copy_rebased(sec, ext.func_info_rec_size, &rebase, &mut func_info);
            }
            for sec in sections_named(btf, &ext.line_info, section_name) {
                copy_rebased(sec, ext.line_info_rec_size, &rebase, &mut line_info);
            }
            for sec in sections_named(btf, &ext.core_relos, section_name) {
                for relo in ext.core_relos_of(sec) {
                    let Some(linked) = rebase(relo.insn_off) else {
                        continue;
                    };
                    let index = relo_counter;
                    relo_counter += 1;
                    for word in [
                        linked.saturating_mul(INSN_SIZE as u32),
                        relo.type_id,
                        relo.access_str_off,
                        relo.kind,
                    ] {
                        kernel_core_relos.extend_from_slice(&word.to_ne_bytes());
                    }
                    let decision =
                        engine
                            .apply(&mut insns, linked as usize, &relo)
                            .map_err(|f| RelocateError::Core {
                                program: program.to_string(),
                                index,
                                kind: f.kind.map_or_else(
                                    || format!("kind {}", relo.kind),
                                    |k: RelocKind| k.to_string(),
                                ),
                                insn_index: linked,
                                access: f.access,
                                why: f.why,
                            })?;
                    core.push(decision);
                }
            }
        }
    }

    Ok(RelocatedProgram {
        name: prog.name.clone(),
        section: prog.section.clone(),
        program_type: prog.program_type,
        expected_attach_type: prog.expected_attach_type,
        attach_to: prog.attach_to.clone(),
        prog_flags: prog.prog_flags,
        insns,
        map_refs,
        extern_refs,
        func_info,
        func_info_rec_size,
        line_info,
        line_info_rec_size,
        core,
        insns_before_core,
        kernel_core_relos,
    })
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
