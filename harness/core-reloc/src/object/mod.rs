//! The BPF ELF object model: programs, functions, maps, relocations and the
//! object's own BTF, as clang and libbpf lay them out.

mod externs;
mod maps;
mod section_types;

pub use externs::{Extern, ExternKind, KconfigType, KCONFIG_SECTION, KSYMS_SECTION};

pub use maps::{
    MapKind, MapSpec, StructOps, MAP_F_LINK, MAP_F_MMAPABLE, MAP_F_RDONLY_PROG, MAP_TYPE_ARRAY,
    MAP_TYPE_STRUCT_OPS,
};
pub use section_types::{
    attach_type, prog_type, section_type, test_run_applies, AttachTarget, KernelBtfTarget,
    SectionType, PROG_FLAG_SLEEPABLE, PROG_FLAG_XDP_HAS_FRAGS,
};

use crate::btf::{Btf, BtfError, Kind, TypeBody};
use crate::btf_ext::{BtfExt, BtfExtError};
use crate::bytes::{cstr_at, u32_at};
use crate::insn::{self, INSN_SIZE};
use object::read::elf::ElfFile64;
use object::{Endianness, Object as _, ObjectSection, ObjectSymbol, SectionFlags, SymbolKind};
use std::collections::{BTreeMap, HashMap};

const EM_BPF: u16 = 247;
const SHF_EXECINSTR: u64 = 0x4;

/// Why an ELF file is not a usable BPF object.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ObjectError {
    /// Not a readable ELF file.
    #[error("ELF: {0}")]
    Elf(String),
    /// An ELF file, but not for BPF.
    #[error("not a BPF object: {0}")]
    NotBpf(&'static str),
    /// Its `.BTF` is unreadable.
    #[error(".BTF: {0}")]
    Btf(#[from] BtfError),
    /// Its `.BTF.ext` is unreadable.
    #[error(".BTF.ext: {0}")]
    BtfExt(#[from] BtfExtError),
    /// Sections, symbols or relocations that contradict each other.
    #[error("{0}")]
    Malformed(String),
}

impl From<object::Error> for ObjectError {
    fn from(e: object::Error) -> Self {
        ObjectError::Elf(e.to_string())
    }
}

/// An entry program (a function in a program section, not `.text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Function symbol name.
    pub name: String,
    /// ELF section name, e.g. "xdp" or "tp_btf/sched_switch".
    pub section: String,
    /// `enum bpf_prog_type`; 0 when the section name follows no convention.
    pub program_type: u32,
    /// `enum bpf_attach_type` the section name implies, if any.
    pub expected_attach_type: Option<u32>,
    /// Attach target for tp_btf/, fentry/, raw_tp/ ... sections.
    pub attach_to: Option<String>,
    /// `BPF_F_*` load flags the section name implies (sleepable, xdp frags).
    pub prog_flags: u32,
    /// How the load-time attach target is found.
    pub attach_target: AttachTarget,
    /// The kernel BTF type to pass as `attach_btf_id` (fentry, tp_btf, lsm, iter...).
    pub kernel_btf_target: Option<KernelBtfTarget>,
    /// `BPF_PROG_TEST_RUN` exists for this kind of program.
    pub test_run: bool,
    pub(crate) function: usize,
}

/// A section holding instructions.
#[derive(Debug, Clone)]
pub(crate) struct CodeSection {
    pub name: String,
    pub insns: Vec<u8>,
    /// Relocations keyed by instruction index within the section.
    pub relocs: BTreeMap<usize, CodeReloc>,
}

impl CodeSection {
    pub fn insn_count(&self) -> usize {
        self.insns.len() / INSN_SIZE
    }
}

/// A function symbol: a range of instructions in a code section.
#[derive(Debug, Clone)]
pub(crate) struct Function {
    pub name: String,
    pub code: usize,
    pub start: usize,
    pub len: usize,
}

/// What an ELF relocation on an instruction asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CodeReloc {
    /// ld_imm64 of a map: becomes a map fd.
    Map { map: usize },
    /// ld_imm64 of a global variable: map value address, offset = imm + sym_off.
    Data { map: usize, sym_off: u64 },
    /// bpf-to-bpf call into code section `code`.
    Call { code: usize, sym_off: u64 },
    /// ld_imm64 of a function address (callbacks).
    FuncAddr { code: usize, sym_off: u64 },
    /// A kfunc call or an ld_imm64 of a ksym/kconfig extern: index into `Object::externs()`.
    Extern { ext: usize },
}

/// A parsed BPF ELF object.
#[derive(Debug, Clone)]
pub struct Object {
    license: String,
    kernel_version: u32,
    btf: Option<Btf>,
    btf_ext: Option<BtfExt>,
    programs: Vec<Program>,
    maps: Vec<MapSpec>,
    externs: Vec<Extern>,
    pub(crate) code: Vec<CodeSection>,
    pub(crate) functions: Vec<Function>,
}

/// A global data section: (ELF index, name, size, bytes unless NOBITS, kind).
type DataSection<'a> = (usize, String, u64, Option<&'a [u8]>, MapKind);

/// What we need of an ELF symbol.
struct Sym {
    name: String,
    section: Option<usize>,
    value: u64,
    size: u64,
    kind: SymbolKind,
    /// Undefined, global or weak, named: a candidate extern.
    undefined_global: bool,
    weak: bool,
    /// ELF visibility `STV_HIDDEN` (`__hidden`).
    hidden: bool,
}

fn data_section_kind(name: &str) -> Option<MapKind> {
    let is = |base: &str| name == base || name.starts_with(&format!("{base}."));
    if is(".data") {
        Some(MapKind::Data)
    } else if is(".rodata") {
        Some(MapKind::Rodata)
    } else if is(".bss") {
        Some(MapKind::Bss)
    } else {
        None
    }
}

impl Object {
    /// Parses a BPF ELF object: programs, maps, externs, BTF and `.BTF.ext`, relocations.
    pub fn parse(elf: &[u8]) -> Result<Object, ObjectError> {
        let file = ElfFile64::<Endianness>::parse(elf)?;
        if !file.is_little_endian() {
            return Err(ObjectError::NotBpf("big-endian objects are not supported"));
        }
        if file.elf_header().e_machine.get(file.endian()) != EM_BPF {
            return Err(ObjectError::NotBpf("e_machine is not EM_BPF"));
        }
        let mut sections = Sections::scan(&file)?;
        let (symbols, symbol_slot) = read_symbols(&file);
        if let Some(btf) = sections.btf.as_mut() {
            fix_datasecs(btf, &sections.sizes, &symbols)?;
            if let Some(&(text, _)) = sections.sizes.get(".text") {
                mark_hidden_subprograms_static(btf, text, &symbols)?;
            }
        }
        let undefined: Vec<externs::UndefinedSymbol<'_>> = symbols
            .iter()
            .filter(|s| s.undefined_global)
            .map(|s| externs::UndefinedSymbol {
                name: &s.name,
                weak: s.weak,
            })
            .collect();
        let (externs, kconfig_size) = externs::collect(sections.btf.as_mut(), &undefined)?;
        let maps = sections.maps(&file, &symbols, &symbol_slot, kconfig_size)?;
        let (functions, programs) = functions_and_programs(&symbols, &sections)?;
        let mut code = std::mem::take(&mut sections.code);
        for section in file.sections() {
            let Some(&code_index) = sections.code_by_elf.get(&section.index().0) else {
                continue;
            };
            for (offset, reloc) in section.relocations() {
                let Some(sym) = reloc_symbol(&reloc, &symbols, &symbol_slot, "relocation")? else {
                    continue;
                };
                let decoded = classify_reloc(
                    &code[code_index],
                    offset,
                    sym,
                    &sections.code_by_elf,
                    &maps,
                    &sections.data,
                    &externs,
                )?;
                if let Some((insn_index, reloc)) = decoded {
                    code[code_index].relocs.insert(insn_index, reloc);
                }
            }
        }
        let btf_ext = match sections.btf_ext_raw {
            Some(raw) => Some(BtfExt::parse(raw)?),
            None => None,
        };
        Ok(Object {
            license: sections.license,
            kernel_version: sections.kernel_version,
            btf: sections.btf,
            btf_ext,
            programs,
            maps,
            externs,
            code,
            functions,
        })
    }

    /// Entry programs, in section then offset order.
    pub fn programs(&self) -> &[Program] {
        &self.programs
    }

    /// The entry program named `name`.
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs.iter().find(|p| p.name == name)
    }

    /// Maps: legacy, then BTF-defined, then global data sections.
    pub fn maps(&self) -> &[MapSpec] {
        &self.maps
    }

    /// The `license` section's string.
    pub fn license(&self) -> &str {
        &self.license
    }

    /// The legacy `version` section's value (0 when absent).
    pub fn kernel_version(&self) -> u32 {
        self.kernel_version
    }

    /// The object's own BTF, with DATASEC sizes and offsets filled in.
    pub fn btf(&self) -> Option<&Btf> {
        self.btf.as_ref()
    }

    /// The object's `.BTF.ext`, if any.
    pub fn btf_ext(&self) -> Option<&BtfExt> {
        self.btf_ext.as_ref()
    }

    /// Extern symbols (kfuncs, ksyms, kconfig values) the object declares, in libbpf's order.
    pub fn externs(&self) -> &[Extern] {
        &self.externs
    }

    /// Index of the `.kconfig` map in [`Object::maps`], if the object has kconfig externs.
    pub fn kconfig_map(&self) -> Option<usize> {
        self.maps.iter().position(|m| m.kind == MapKind::Kconfig)
    }

    /// Names of all function symbols (programs and subprograms).
    pub fn function_names(&self) -> impl Iterator<Item = &str> {
        self.functions.iter().map(|f| f.name.as_str())
    }
}

fn classify_reloc(
    section: &CodeSection,
    offset: u64,
    sym: &Sym,
    code_by_elf: &HashMap<usize, usize>,
    maps: &[MapSpec],
    data_sections: &[DataSection<'_>],
    externs: &[Extern],
) -> Result<Option<(usize, CodeReloc)>, ObjectError> {
    let bad = |why: String| {
        ObjectError::Malformed(format!(
            "section {}: relocation at offset {offset} against {}: {why}",
            section.name, sym.name
        ))
    };
    if !offset.is_multiple_of(INSN_SIZE as u64) {
        return Err(bad("not instruction aligned".into()));
    }
    let insn_index = (offset / INSN_SIZE as u64) as usize;
    let insn = insn::read(&section.insns, insn_index).ok_or_else(|| bad("out of range".into()))?;
    let target_code = sym.section.and_then(|s| code_by_elf.get(&s)).copied();

    if sym.section.is_none() {
        let ext = externs
            .iter()
            .position(|e| e.name == sym.name)
            .ok_or_else(|| bad("undefined symbol that is no extern".into()))?;
        let is_call = insn.code == insn::CALL;
        let is_kfunc = matches!(externs[ext].kind, ExternKind::Kfunc { .. });
        if !(insn.is_ld_imm64() || is_call && is_kfunc) {
            return Err(bad(format!(
                "extern referenced by opcode {:#04x}, expected ld_imm64 or a kfunc call",
                insn.code
            )));
        }
        return Ok(Some((insn_index, CodeReloc::Extern { ext })));
    }
    if insn.is_pseudo_call() {
        let code = target_code.ok_or_else(|| bad("call target is not code".into()))?;
        return Ok(Some((
            insn_index,
            CodeReloc::Call {
                code,
                sym_off: sym.value,
            },
        )));
    }
    if !insn.is_ld_imm64() {
        return Err(bad(format!(
            "relocated instruction has opcode {:#04x}, expected ld_imm64 or call",
            insn.code
        )));
    }
    let Some(sym_section) = sym.section else {
        return Err(bad("undefined symbol".into()));
    };
    if let Some(code) = target_code {
        return Ok(Some((
            insn_index,
            CodeReloc::FuncAddr {
                code,
                sym_off: sym.value,
            },
        )));
    }
    let map_at = maps.iter().position(|m| {
        m.section_index == sym_section
            && match m.kind {
                MapKind::BtfDefined => m.name == sym.name,
                MapKind::Legacy => m.offset == sym.value,
                _ => false,
            }
    });
    if let Some(map) = map_at {
        return Ok(Some((insn_index, CodeReloc::Map { map })));
    }
    if data_sections.iter().any(|d| d.0 == sym_section) {
        let map = maps
            .iter()
            .position(|m| m.section_index == sym_section && m.kind != MapKind::BtfDefined)
            .ok_or_else(|| bad("data section has no map".into()))?;
        let sym_off = if sym.kind == SymbolKind::Section {
            0
        } else {
            sym.value
        };
        return Ok(Some((insn_index, CodeReloc::Data { map, sym_off })));
    }
    Err(bad(
        "target section is neither a map, global data nor code".into()
    ))
}

/// What the section headers of an object say, read in one pass.
#[derive(Default)]
struct Sections<'data> {
    license: String,
    kernel_version: u32,
    btf: Option<Btf>,
    btf_ext_raw: Option<&'data [u8]>,
    code: Vec<CodeSection>,
    /// ELF section index -> index in `code`.
    code_by_elf: HashMap<usize, usize>,
    data: Vec<DataSection<'data>>,
    /// Section name -> (ELF index, size), for DATASEC sizes.
    sizes: HashMap<String, (usize, u64)>,
    maps_section: Option<usize>,
    legacy_maps_section: Option<usize>,
    struct_ops: Vec<(usize, String)>,
}

impl<'data> Sections<'data> {
    fn scan(file: &ElfFile64<'data, Endianness>) -> Result<Sections<'data>, ObjectError> {
        let mut out = Sections::default();
        for section in file.sections() {
            let index = section.index().0;
            let Ok(name) = section.name() else { continue };
            let flags = match section.flags() {
                SectionFlags::Elf { sh_flags } => sh_flags,
                _ => 0,
            };
            out.sizes.insert(name.to_string(), (index, section.size()));
            match name {
                "license" => {
                    let data = section.data()?;
                    out.license = cstr_at(data, 0)
                        .or_else(|| std::str::from_utf8(data).ok())
                        .unwrap_or("")
                        .to_string();
                }
                "version" => out.kernel_version = u32_at(section.data()?, 0).unwrap_or(0),
                ".BTF" => out.btf = Some(Btf::parse(section.data()?)?),
                ".BTF.ext" => out.btf_ext_raw = Some(section.data()?),
                ".maps" => out.maps_section = Some(index),
                ".struct_ops" | ".struct_ops.link" => {
                    out.struct_ops.push((index, name.to_string()))
                }
                "maps" => out.legacy_maps_section = Some(index),
                _ if flags & SHF_EXECINSTR != 0 => {
                    let data = section.data()?;
                    if data.is_empty() {
                        continue;
                    }
                    if data.len() % INSN_SIZE != 0 {
                        return Err(ObjectError::Malformed(format!(
                            "code section {name} is {} bytes, not a multiple of 8",
                            data.len()
                        )));
                    }
                    out.code_by_elf.insert(index, out.code.len());
                    out.code.push(CodeSection {
                        name: name.to_string(),
                        insns: data.to_vec(),
                        relocs: BTreeMap::new(),
                    });
                }
                _ => {
                    let Some(kind) = data_section_kind(name) else {
                        continue;
                    };
                    if section.size() == 0 {
                        continue;
                    }
                    let bytes = if kind == MapKind::Bss {
                        None
                    } else {
                        Some(section.data()?)
                    };
                    out.data
                        .push((index, name.to_string(), section.size(), bytes, kind));
                }
            }
        }
        Ok(out)
    }

    /// Every map: legacy, then BTF-defined (with their `.values` slots), struct_ops, global
    /// data, and the `.kconfig` map when externs need one.
    fn maps(
        &self,
        file: &ElfFile64<'data, Endianness>,
        symbols: &[Sym],
        symbol_slot: &HashMap<usize, usize>,
        kconfig_size: u32,
    ) -> Result<Vec<MapSpec>, ObjectError> {
        let btf = self.btf.as_ref();
        let mut maps = Vec::new();
        if let Some(index) = self.legacy_maps_section {
            legacy_maps(file, index, symbols, &mut maps)?;
        }
        if let Some(index) = self.maps_section {
            let btf =
                btf.ok_or_else(|| ObjectError::Malformed(".maps section without .BTF".into()))?;
            btf_maps(btf, index, symbols, &mut maps)?;
            collect_map_init_slots(file, index, symbols, symbol_slot, &mut maps)?;
        }
        for (index, name) in &self.struct_ops {
            let btf =
                btf.ok_or_else(|| ObjectError::Malformed(format!("{name} section without .BTF")))?;
            struct_ops_maps(file, btf, *index, name, symbols, symbol_slot, &mut maps)?;
        }
        for (index, name, size, bytes, kind) in &self.data {
            maps.push(MapSpec::data(name, *kind, *index, *size, *bytes, btf)?);
        }
        if kconfig_size > 0 {
            maps.push(MapSpec::kconfig(kconfig_size, btf));
        }
        Ok(maps)
    }
}

/// The symbol table, and ELF symbol index -> position in it.
fn read_symbols(file: &ElfFile64<Endianness>) -> (Vec<Sym>, HashMap<usize, usize>) {
    let mut symbols = Vec::new();
    let mut symbol_slot: HashMap<usize, usize> = HashMap::new();
    for sym in file.symbols() {
        symbol_slot.insert(sym.index().0, symbols.len());
        symbols.push(Sym {
            name: sym.name().unwrap_or("").to_string(),
            section: sym.section_index().map(|s| s.0),
            value: sym.address(),
            size: sym.size(),
            kind: sym.kind(),
            undefined_global: sym.is_undefined()
                && (sym.is_global() || sym.is_weak())
                && !matches!(sym.kind(), SymbolKind::Section | SymbolKind::File)
                && !sym.name().unwrap_or("").is_empty(),
            weak: sym.is_weak(),
            hidden: matches!(
                sym.flags(),
                object::SymbolFlags::Elf { st_other, .. } if st_other & 0x3 == object::elf::STV_HIDDEN
            ),
        });
    }
    (symbols, symbol_slot)
}

/// Every function symbol of a code section, sorted by place; those outside `.text` are also
/// entry programs (what their section name says about them included).
fn functions_and_programs(
    symbols: &[Sym],
    sections: &Sections<'_>,
) -> Result<(Vec<Function>, Vec<Program>), ObjectError> {
    let (code, code_by_elf) = (&sections.code, &sections.code_by_elf);
    let mut functions = Vec::new();
    let mut programs = Vec::new();
    for sym in symbols {
        if sym.kind != SymbolKind::Text || sym.size == 0 {
            continue;
        }
        let Some(&code_index) = sym.section.and_then(|s| code_by_elf.get(&s)) else {
            continue;
        };
        let section = &code[code_index];
        if sym.value % INSN_SIZE as u64 != 0 || sym.size % INSN_SIZE as u64 != 0 {
            return Err(ObjectError::Malformed(format!(
                "function {} is not instruction aligned",
                sym.name
            )));
        }
        let start = (sym.value / INSN_SIZE as u64) as usize;
        let len = (sym.size / INSN_SIZE as u64) as usize;
        if start
            .checked_add(len)
            .is_none_or(|end| end > section.insn_count())
        {
            return Err(ObjectError::Malformed(format!(
                "function {} runs past its section {}",
                sym.name, section.name
            )));
        }
        if section.name != ".text" {
            programs.push(program_of(sym, &section.name, functions.len()));
        }
        functions.push(Function {
            name: sym.name.clone(),
            code: code_index,
            start,
            len,
        });
    }
    functions.sort_by_key(|f| (f.code, f.start));
    // Keep program -> function links valid after sorting.
    for program in &mut programs {
        program.function = functions
            .iter()
            .position(|f| f.name == program.name && code[f.code].name == program.section)
            .unwrap_or(usize::MAX);
    }
    programs.sort_by_key(|p| p.function);
    Ok((functions, programs))
}

/// The entry program of function symbol `sym` in section `section`.
fn program_of(sym: &Sym, section: &str, function: usize) -> Program {
    let kind = section_type(section);
    Program {
        name: sym.name.clone(),
        section: section.to_string(),
        program_type: kind.as_ref().map_or(prog_type::UNSPEC, |k| k.program_type),
        expected_attach_type: kind.as_ref().and_then(|k| k.expected_attach_type),
        attach_to: kind.as_ref().and_then(|k| k.attach_to.clone()),
        prog_flags: kind.as_ref().map_or(0, |k| k.prog_flags),
        attach_target: kind
            .as_ref()
            .map_or(AttachTarget::None, |k| k.attach_target),
        kernel_btf_target: kind.as_ref().and_then(|k| k.kernel_btf_target()),
        test_run: kind.as_ref().is_some_and(|k| k.test_run),
        function,
    }
}

/// The symbol an ELF relocation targets (`None`: it targets no symbol); `what` names the
/// relocation in the error when the symbol is not in the table.
fn reloc_symbol<'s>(
    reloc: &object::Relocation,
    symbols: &'s [Sym],
    symbol_slot: &HashMap<usize, usize>,
    what: &str,
) -> Result<Option<&'s Sym>, ObjectError> {
    let object::RelocationTarget::Symbol(sym_index) = reloc.target() else {
        return Ok(None);
    };
    symbol_slot
        .get(&sym_index.0)
        .and_then(|&slot| symbols.get(slot))
        .map(Some)
        .ok_or_else(|| ObjectError::Malformed(format!("{what} symbol missing")))
}

/// `.values = { [i] = &x }` of map-in-map and prog_array definitions: ELF relocations in `.maps`
/// at `values[i]` against the inner map's or the program's symbol.
fn collect_map_init_slots(
    file: &ElfFile64<Endianness>,
    index: usize,
    symbols: &[Sym],
    symbol_slot: &HashMap<usize, usize>,
    maps: &mut [MapSpec],
) -> Result<(), ObjectError> {
    let section = file.section_by_index(object::SectionIndex(index))?;
    for (offset, reloc) in section.relocations() {
        let Some(sym) = reloc_symbol(&reloc, symbols, symbol_slot, ".maps relocation")? else {
            continue;
        };
        let owner = maps
            .iter_mut()
            .filter(|m| m.kind == MapKind::BtfDefined && m.section_index == index)
            .filter(|m| m.values_offset.is_some_and(|v| m.offset + v <= offset))
            .max_by_key(|m| m.offset)
            .ok_or_else(|| {
                ObjectError::Malformed(format!(
                    ".maps relocation at offset {offset} against {} is in no map's values",
                    sym.name
                ))
            })?;
        let rel = offset - owner.offset - owner.values_offset.unwrap_or(0);
        let slot = rel / 8;
        if rel % 8 != 0 || slot >= u64::from(owner.max_entries) {
            return Err(ObjectError::Malformed(format!(
                "map {}: values slot at byte {rel} is not one of its {} entries",
                owner.name, owner.max_entries
            )));
        }
        owner.init_slots.push((slot as u32, sym.name.clone()));
    }
    Ok(())
}

/// The variables of a `.struct_ops` section as maps, with their function members bound to
/// programs by the section's relocations.
fn struct_ops_maps(
    file: &ElfFile64<Endianness>,
    btf: &Btf,
    index: usize,
    name: &str,
    symbols: &[Sym],
    symbol_slot: &HashMap<usize, usize>,
    maps: &mut Vec<MapSpec>,
) -> Result<(), ObjectError> {
    let Some(&datasec) = btf.ids_by_name(Kind::DataSec, name).first() else {
        return Err(ObjectError::Malformed(format!(
            "{name} section without a {name} DATASEC"
        )));
    };
    let TypeBody::DataSec { vars, .. } = btf.type_by_id(datasec)?.body else {
        return Ok(());
    };
    let first = maps.len();
    for var in &vars {
        maps.push(MapSpec::struct_ops(
            btf,
            var.ty,
            index,
            u64::from(var.offset),
            name.ends_with(".link"),
        )?);
    }
    let section = file.section_by_index(object::SectionIndex(index))?;
    for (offset, reloc) in section.relocations() {
        let object::RelocationTarget::Symbol(sym_index) = reloc.target() else {
            continue;
        };
        let sym = symbol_slot
            .get(&sym_index.0)
            .and_then(|&slot| symbols.get(slot))
            .ok_or_else(|| ObjectError::Malformed(format!("{name} relocation symbol missing")))?;
        let Some((var, map)) = vars.iter().zip(maps[first..].iter_mut()).find(|(v, _)| {
            u64::from(v.offset) <= offset && offset < u64::from(v.offset) + u64::from(v.size)
        }) else {
            return Err(ObjectError::Malformed(format!(
                "{name}: relocation at {offset} against {} is in no variable",
                sym.name
            )));
        };
        let within = offset - u64::from(var.offset);
        let st_id = map.btf_value_type_id;
        let member = btf
            .type_by_id(st_id)?
            .members()
            .iter()
            .find(|m| u64::from(m.bit_offset) == within * 8)
            .map(|m| m.name.to_string())
            .ok_or_else(|| {
                ObjectError::Malformed(format!(
                    "{name}: {}: no member at byte {within} for {}",
                    map.name, sym.name
                ))
            })?;
        if let Some(ops) = map.struct_ops.as_mut() {
            ops.members.push((member, sym.name.clone()));
        }
    }
    Ok(())
}

fn legacy_maps(
    file: &ElfFile64<Endianness>,
    index: usize,
    symbols: &[Sym],
    maps: &mut Vec<MapSpec>,
) -> Result<(), ObjectError> {
    let section = file.section_by_index(object::SectionIndex(index))?;
    let data = section.data()?;
    let mut syms: Vec<&Sym> = symbols
        .iter()
        .filter(|s| s.section == Some(index) && s.kind != SymbolKind::Section && !s.name.is_empty())
        .collect();
    if syms.is_empty() {
        return Ok(());
    }
    syms.sort_by_key(|s| s.value);
    let def_size = data.len() / syms.len();
    if def_size < 16 {
        return Err(ObjectError::Malformed(
            "legacy maps section too small".into(),
        ));
    }
    for sym in syms {
        let start = usize::try_from(sym.value).unwrap_or(usize::MAX);
        let def = start
            .checked_add(def_size)
            .and_then(|end| data.get(start..end))
            .ok_or_else(|| {
                ObjectError::Malformed(format!("legacy map {} out of bounds", sym.name))
            })?;
        maps.push(MapSpec::legacy(&sym.name, def, index, sym.value)?);
    }
    Ok(())
}

fn btf_maps(
    btf: &Btf,
    index: usize,
    symbols: &[Sym],
    maps: &mut Vec<MapSpec>,
) -> Result<(), ObjectError> {
    let Some(&datasec) = btf.ids_by_name(Kind::DataSec, ".maps").first() else {
        return Err(ObjectError::Malformed(
            ".maps section without a .maps DATASEC".into(),
        ));
    };
    let TypeBody::DataSec { vars, .. } = btf.type_by_id(datasec)?.body else {
        return Ok(());
    };
    for var in vars {
        let name = btf.name_of(var.ty)?;
        let offset = symbols
            .iter()
            .find(|s| s.section == Some(index) && s.name == name)
            .map_or(var.offset as u64, |s| s.value);
        maps.push(MapSpec::btf_defined(btf, var.ty, index, offset)?);
    }
    Ok(())
}

/// Fills DATASEC sizes and variable offsets from ELF sections and symbols
/// (clang leaves them 0), and sorts variables by offset as the kernel requires.
/// A `__hidden` function in `.text` (a subprogram no other object may link against, as
/// `usdt.bpf.h`'s `bpf_usdt_arg`) is static to the kernel, as libbpf makes it: the verifier
/// checks a global function alone against its BTF prototype (its pointer arguments may be
/// NULL), a static one in the context of each call.
fn mark_hidden_subprograms_static(
    btf: &mut Btf,
    text_section: usize,
    symbols: &[Sym],
) -> Result<(), ObjectError> {
    let hidden: std::collections::HashSet<&str> = symbols
        .iter()
        .filter(|s| s.hidden && s.kind == SymbolKind::Text && s.section == Some(text_section))
        .map(|s| s.name.as_str())
        .collect();
    if hidden.is_empty() {
        return Ok(());
    }
    for id in 1..btf.type_count() {
        if btf.kind_of(id)? != Kind::Func || !hidden.contains(btf.name_of(id)?) {
            continue;
        }
        const BTF_FUNC_STATIC: u32 = 0;
        btf.set_info(id, Kind::Func, false, BTF_FUNC_STATIC);
    }
    Ok(())
}

fn fix_datasecs(
    btf: &mut Btf,
    sections: &HashMap<String, (usize, u64)>,
    symbols: &[Sym],
) -> Result<(), ObjectError> {
    let by_name: HashMap<(usize, &str), u64> = symbols
        .iter()
        .filter(|s| s.kind == SymbolKind::Data)
        .filter_map(|s| Some(((s.section?, s.name.as_str()), s.value)))
        .collect();
    for id in 1..btf.type_count() {
        if btf.kind_of(id)? != Kind::DataSec {
            continue;
        }
        let ty = btf.type_by_id(id)?;
        let Some(&(section_index, section_size)) = sections.get(ty.name) else {
            continue;
        };
        let TypeBody::DataSec { size, mut vars } = ty.body else {
            continue;
        };
        for var in &mut vars {
            let var_name = btf.name_of(var.ty)?;
            if let Some(&value) = by_name.get(&(section_index, var_name)) {
                var.offset = u32::try_from(value).map_err(|_| {
                    ObjectError::Malformed(format!("symbol {var_name} offset too large"))
                })?;
            }
        }
        vars.sort_by_key(|v| v.offset);
        if size == 0 {
            let section_size = u32::try_from(section_size)
                .map_err(|_| ObjectError::Malformed(format!("section {} too large", ty.name)))?;
            btf.patch_word(id, 8, section_size)?;
        }
        for (j, var) in vars.iter().enumerate() {
            let at = 12 + 12 * j;
            btf.patch_word(id, at, var.ty)?;
            btf.patch_word(id, at + 4, var.offset)?;
            btf.patch_word(id, at + 8, var.size)?;
        }
    }
    Ok(())
}
