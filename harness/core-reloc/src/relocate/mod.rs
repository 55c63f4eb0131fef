//! Turning one program of an object into a loadable instruction stream, in three steps that
//! can be called apart:
//! 1. link ([`link_program`], `link.rs`): the program and every subprogram it calls in one
//!    stream, its map and extern references recorded, func/line info rebased, and where each
//!    CO-RE relocation applies ([`CoreSite`]);
//! 2. decide ([`CoreEngine::decide`], or [`decide_program`] for a whole program without
//!    linking it): a [`Fixup`] per relocation, touching no instruction;
//! 3. patch ([`RelocatedProgram::apply_fixup`]): the fixup written into its instruction.
//!
//! [`relocate_program`] runs all three; [`predict_program`] decides and checks each fixup
//! against the object's own instruction, writing nothing.

mod link;
mod refs;

pub use link::CoreSite;

use crate::btf::Btf;
use crate::core::{CoreDecision, CoreEngine, CoreError, CoreFailure, Fixup, PatchError, RelocKind};
use crate::insn::INSN_SIZE;
use crate::object::Object;
use link::Layout;

/// How a `ld_imm64` refers to a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapRefKind {
    /// The map itself (`BPF_PSEUDO_MAP_FD`).
    Fd,
    /// An address inside the map's single value (`BPF_PSEUDO_MAP_VALUE`).
    Value {
        /// Byte offset of the variable in the map's value.
        offset: u32,
    },
}

/// An instruction that refers to a ksym or a kfunc: patched once the extern is resolved
/// ([`RelocatedProgram::patch_externs`]). Kconfig externs become [`MapRef`]s instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternRef {
    /// Instruction index in the linked program.
    pub insn_index: u32,
    /// Index into `Object::externs()`.
    pub extern_index: usize,
    /// A `call` (kfunc) rather than a `ld_imm64`.
    pub is_call: bool,
}

/// A `ld_imm64` the loader must patch with a map fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRef {
    /// Instruction index in the linked program.
    pub insn_index: u32,
    /// Index into `Object::maps()`.
    pub map_index: usize,
    /// The map itself or an address in its value.
    pub kind: MapRefKind,
}

/// One program, linked, ready for its map fds and externs (and relocated once its fixups
/// are applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelocatedProgram {
    /// The program's (entry function's) name.
    pub name: String,
    /// Its ELF section, e.g. `tc` or `kprobe/do_sys_open`.
    pub section: String,
    /// `BPF_PROG_TYPE_*` its section implies.
    pub program_type: u32,
    /// `BPF_*` attach type its section implies, if any.
    pub expected_attach_type: Option<u32>,
    /// The kernel object the section names to attach to (a function, a tracepoint).
    pub attach_to: Option<String>,
    /// `BPF_F_*` load flags its section implies (e.g. sleepable).
    pub prog_flags: u32,
    /// Raw 8-byte instructions: the entry function, then every subprogram it reaches.
    pub insns: Vec<u8>,
    /// Map and global data references, patched by [`RelocatedProgram::patch_map_fds`].
    pub map_refs: Vec<MapRef>,
    /// Kfunc calls and ksym loads, patched by [`RelocatedProgram::patch_externs`].
    pub extern_refs: Vec<ExternRef>,
    /// `bpf_func_info` records, instruction offsets in instruction units.
    pub func_info: Vec<u8>,
    /// Size of one `bpf_func_info` record.
    pub func_info_rec_size: u32,
    /// `bpf_line_info` records, instruction offsets in instruction units.
    pub line_info: Vec<u8>,
    /// Size of one `bpf_line_info` record.
    pub line_info_rec_size: u32,
    /// Every CO-RE relocation applied, in instruction order per function.
    pub core: Vec<CoreDecision>,
}

/// A linked program and the CO-RE relocations still to decide and apply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedProgram {
    /// The linked program; its `core` is empty until fixups are applied.
    pub program: RelocatedProgram,
    /// Every CO-RE relocation, in linked order.
    pub core_sites: Vec<CoreSite>,
}

/// `BPF_PSEUDO_KFUNC_CALL`: a call's imm is a kernel BTF id of a FUNC.
pub const PSEUDO_KFUNC_CALL: u8 = 2;
/// `BPF_PSEUDO_BTF_ID`: a ld_imm64's imm is a kernel BTF id of a VAR (or FUNC).
pub const PSEUDO_BTF_ID: u8 = 3;

/// Why a program could not be linked or relocated.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum RelocateError {
    /// The object has no program of that name.
    #[error("no program named {0:?} in the object")]
    NoSuchProgram(String),
    /// Linking (or patching map fds and externs) failed.
    #[error("program {program}: {why}")]
    Link {
        /// The program.
        program: String,
        /// What is wrong with the object.
        why: String,
    },
    /// One CO-RE relocation could not be decided or applied.
    #[error("program {program}: CO-RE relocation #{index} ({}) at insn #{insn_index} for {access}: {error}", kind_label(.kind, .raw_kind))]
    Core {
        /// The program.
        program: String,
        /// The relocation's number in the program.
        index: usize,
        /// Its kind, when known.
        kind: Option<RelocKind>,
        /// Its kind as the object encodes it.
        raw_kind: u32,
        /// Instruction index in the linked program.
        insn_index: u32,
        /// The access in C terms (or the root type and raw access string).
        access: String,
        /// What went wrong.
        #[source]
        error: CoreError,
    },
}

fn kind_label(kind: &Option<RelocKind>, raw: &u32) -> String {
    kind.map_or_else(|| format!("kind {raw}"), |k| k.to_string())
}

impl RelocateError {
    fn patch(program: &str, fixup: &Fixup, error: PatchError) -> RelocateError {
        RelocateError::Core {
            program: program.to_string(),
            index: fixup.relo_index,
            kind: Some(fixup.kind),
            raw_kind: fixup.kind as u32,
            insn_index: fixup.insn_index,
            access: fixup.access.clone(),
            error: CoreError::Patch(error),
        }
    }

    fn core(program: &str, site: &CoreSite, failure: CoreFailure) -> RelocateError {
        RelocateError::Core {
            program: program.to_string(),
            index: site.site.relo_index,
            kind: failure.kind,
            raw_kind: site.relo.kind,
            insn_index: site.site.insn_index,
            access: failure.access,
            error: failure.error,
        }
    }
}

impl RelocatedProgram {
    /// Number of instructions.
    pub fn insn_count(&self) -> usize {
        self.insns.len() / INSN_SIZE
    }

    /// Patch step: writes `fixup` into its instruction (checking the instruction is the one it
    /// was decided for) and records the decision in `core`.
    pub fn apply_fixup(&mut self, fixup: &Fixup) -> Result<(), RelocateError> {
        let decision = fixup
            .apply(&mut self.insns)
            .map_err(|e| RelocateError::patch(&self.name, fixup, e))?;
        self.core.push(decision);
        Ok(())
    }
}

/// Link step: `program` with its subprograms, its references recorded and its CO-RE
/// relocations located but not applied.
pub fn link_program(obj: &Object, program: &str) -> Result<LinkedProgram, RelocateError> {
    let layout = Layout::of(obj, program)?;
    let insns = layout.instructions(obj)?;
    let (mut func_info_rec_size, mut line_info_rec_size) = (0, 0);
    let (mut func_info, mut line_info) = (Vec::new(), Vec::new());
    let mut core_sites = Vec::new();
    if let Some(ext) = obj.btf_ext() {
        let btf = layout.object_btf(obj)?;
        func_info_rec_size = ext.func_info_rec_size;
        line_info_rec_size = ext.line_info_rec_size;
        (func_info, line_info) = layout.ext_info(obj, btf);
        core_sites = layout.core_sites(obj)?;
    }
    let prog = layout.program;
    let program = RelocatedProgram {
        name: prog.name.clone(),
        section: prog.section.clone(),
        program_type: prog.program_type,
        expected_attach_type: prog.expected_attach_type,
        attach_to: prog.attach_to.clone(),
        prog_flags: prog.prog_flags,
        insns,
        map_refs: layout.map_refs,
        extern_refs: layout.extern_refs,
        func_info,
        func_info_rec_size,
        line_info,
        line_info_rec_size,
        core: Vec::new(),
    };
    Ok(LinkedProgram {
        program,
        core_sites,
    })
}

/// Decides every site in order with one engine (candidates cached across them), handing each
/// fixup to `each`; stops at the first failure of either.
fn decide_sites(
    obj: &Object,
    program: &str,
    sites: &[CoreSite],
    target: &Btf,
    mut each: impl FnMut(&CoreSite, Fixup) -> Result<(), RelocateError>,
) -> Result<(), RelocateError> {
    let Some(local) = obj.btf() else {
        // No `.BTF` means no `.BTF.ext`, so no sites (linking refused the other case).
        return Ok(());
    };
    let mut engine = CoreEngine::new(local, target);
    for site in sites {
        let fixup = engine
            .decide(&site.relo, site.site)
            .map_err(|f| RelocateError::core(program, site, f))?;
        each(site, fixup)?;
    }
    Ok(())
}

/// Decide step for a whole program, without linking it: every relocation's fixup, in linked
/// order (instruction indices are the linked program's).
pub fn decide_program(
    obj: &Object,
    program: &str,
    target: &Btf,
) -> Result<Vec<Fixup>, RelocateError> {
    let layout = Layout::of(obj, program)?;
    let sites = layout.core_sites(obj)?;
    let mut fixups = Vec::with_capacity(sites.len());
    decide_sites(obj, program, &sites, target, |_, fixup| {
        fixups.push(fixup);
        Ok(())
    })?;
    Ok(fixups)
}

/// What relocating `program` against `target` would decide, without linking or patching: each
/// fixup checked against the object's own instruction (whose class decides whether a size
/// change poisons it). Equal to [`relocate_program`]'s `core` whenever that succeeds.
pub fn predict_program(
    obj: &Object,
    program: &str,
    target: &Btf,
) -> Result<Vec<CoreDecision>, RelocateError> {
    let layout = Layout::of(obj, program)?;
    let sites = layout.core_sites(obj)?;
    let mut decisions = Vec::with_capacity(sites.len());
    decide_sites(obj, program, &sites, target, |site, fixup| {
        let (ins, next) = site.original_insns(obj);
        let ins = ins.ok_or(PatchError::OutOfRange);
        let (_, outcome) = ins
            .and_then(|ins| fixup.plan_insn(ins, next))
            .map_err(|e| RelocateError::patch(program, &fixup, e))?;
        decisions.push(fixup.decision(outcome));
        Ok(())
    })?;
    Ok(decisions)
}

/// Links `program`, resolves its map and global data references and applies
/// its CO-RE relocations against `target`: link, then decide and patch each relocation.
pub fn relocate_program(
    obj: &Object,
    program: &str,
    target: &Btf,
) -> Result<RelocatedProgram, RelocateError> {
    let LinkedProgram {
        program: mut linked,
        core_sites,
    } = link_program(obj, program)?;
    decide_sites(obj, program, &core_sites, target, |_, fixup| {
        linked.apply_fixup(&fixup)
    })?;
    Ok(linked)
}
