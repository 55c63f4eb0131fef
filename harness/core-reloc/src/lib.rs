//! CO-RE relocation engine: BPF ELF objects, BTF and `.BTF.ext` parsing,
//! CO-RE relocation with libbpf's semantics, and BTF sanitization for older
//! kernels. Pure code: no syscalls and no I/O; callers pass byte slices.
//!
//! Typical use:
//! ```no_run
//! # fn demo(elf: &[u8], vmlinux_btf: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! use core_reloc::{relocate_program, Btf, Object};
//! let obj = Object::parse(elf)?;
//! let target = Btf::parse(vmlinux_btf)?;
//! for prog in obj.programs() {
//!     let relocated = relocate_program(&obj, &prog.name, &target)?;
//!     for d in &relocated.core {
//!         println!("{} {} {:?}", d.kind, d.access, d.outcome);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The same in its three steps, each callable alone ([`relocate`]): link, decide, patch.
//! ```no_run
//! # fn demo(obj: &core_reloc::Object, target: &core_reloc::Btf) -> Result<(), core_reloc::RelocateError> {
//! use core_reloc::{decide_program, link_program};
//! let linked = link_program(obj, "prog")?; // instructions, references, CO-RE sites
//! let fixups = decide_program(obj, "prog", target)?; // values per relocation, nothing written
//! let mut program = linked.program;
//! for fixup in &fixups {
//!     program.apply_fixup(fixup)?; // checks the instruction, writes the value or the poison
//! }
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod btf;
pub mod btf_ext;
mod bytes;
pub mod core;
pub mod externs;
pub mod insn;
pub mod object;
pub mod relocate;
pub mod sanitize;

pub use btf::{render_c_header, Btf, BtfError, CHeaderError, Kind, Type, TypeBody};
pub use btf_ext::{BtfExt, BtfExtError, CoreRelo};
pub use core::{
    CoreDecision, CoreEngine, CoreError, CoreFailure, CoreOutcome, Fixup, PoisonReason, RelocKind,
    RelocSite,
};
pub use externs::{ExternError, ExternResolution, ExternValue, KernelFacts};
pub use object::{MapKind, MapSpec, Object, ObjectError, Program};
pub use relocate::{
    decide_program, link_program, predict_program, relocate_program, CoreSite, ExternRef,
    LinkedProgram, MapRef, MapRefKind, RelocateError, RelocatedProgram,
};
pub use sanitize::{sanitize_btf, BtfFeatures};
