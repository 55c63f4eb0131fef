#![no_main]
//! Input: a BPF object; it is relocated against its own BTF (the richest
//! target a mutated object brings along).
use core_reloc::{relocate_program, Btf, Object};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(obj) = Object::parse(data) else { return };
    let empty = core_reloc::btf::BtfBuilder::new().build().ok();
    let target: Option<&Btf> = obj.btf().or(empty.as_ref());
    let Some(target) = target else { return };
    for p in obj.programs() {
        let _ = relocate_program(&obj, &p.name, target);
    }
});
