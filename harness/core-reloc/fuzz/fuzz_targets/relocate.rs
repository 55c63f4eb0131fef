#![no_main]
//! Input: either a BPF object (relocated against its own BTF, the richest
//! target a mutated object brings along, and against an empty BTF), or
//! `len: u32 LE | object[len] | target BTF` so that the fuzzer mutates the
//! target BTF independently of the object.
use core_reloc::{relocate_program, Btf, Object};
use libfuzzer_sys::fuzz_target;

fn relocate_all(obj: &Object, target: &Btf) {
    for p in obj.programs() {
        let _ = relocate_program(obj, &p.name, target);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"\x7fELF") {
        let Ok(obj) = Object::parse(data) else { return };
        if let Some(own) = obj.btf() {
            relocate_all(&obj, own);
        }
        if let Ok(empty) = core_reloc::btf::BtfBuilder::new().build() {
            relocate_all(&obj, &empty);
        }
        return;
    }
    let Some((len, rest)) = data.split_first_chunk::<4>() else { return };
    let len = u32::from_le_bytes(*len) as usize;
    if len > rest.len() {
        return;
    }
    let (object, target) = rest.split_at(len);
    let (Ok(obj), Ok(target)) = (Object::parse(object), Btf::parse(target)) else {
        return;
    };
    relocate_all(&obj, &target);
});
