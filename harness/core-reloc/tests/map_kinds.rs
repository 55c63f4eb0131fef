//! BTF-defined map extras on a clang-19 object: inner map definitions, `.values` slots, pinning,
//! map_extra.
mod common;

use common::fixture_object;
use core_reloc::object::{AttachTarget, MAP_TYPE_STRUCT_OPS};
use core_reloc::Object;

#[test]
fn map_in_map_prog_array_and_extras() {
    let obj = Object::parse(&fixture_object("map_kinds", &[])).expect("fixture parses");
    let map = |n: &str| obj.maps().iter().find(|m| m.name == n).unwrap();
    let outer = map("outer");
    assert_eq!(
        (outer.map_type, outer.key_size, outer.value_size),
        (12, 4, 4)
    );
    let inner = outer.inner.as_ref().expect("inner definition");
    assert_eq!(
        (
            inner.name.as_str(),
            inner.map_type,
            inner.key_size,
            inner.value_size,
            inner.max_entries
        ),
        ("outer.inner", 2, 4, 8, 4)
    );
    let mut slots = outer.init_slots.clone();
    slots.sort();
    assert_eq!(
        slots,
        vec![(0, "inner_a".to_string()), (2, "inner_b".to_string())]
    );
    let jumps = map("jumps");
    assert_eq!(
        (jumps.map_type, jumps.key_size, jumps.value_size),
        (3, 4, 4)
    );
    assert!(jumps.inner.is_none());
    assert_eq!(jumps.init_slots, vec![(1, "tail_target".to_string())]);
    let bloom = map("bloom");
    assert_eq!(
        (bloom.map_extra, bloom.pinning, bloom.value_size),
        (3, 1, 4)
    );
    assert!(map("inner_a").init_slots.is_empty());
}

#[test]
fn struct_ops_variables_bind_members_to_programs() {
    let obj = Object::parse(&fixture_object("map_kinds", &[])).expect("fixture parses");
    let ops = obj.maps().iter().find(|m| m.name == "ops").unwrap();
    assert_eq!(ops.map_type, MAP_TYPE_STRUCT_OPS);
    let spec = ops.struct_ops.as_ref().unwrap();
    assert_eq!(spec.type_name, "fake_ops");
    let mut members = spec.members.clone();
    members.sort();
    assert_eq!(
        members,
        vec![
            ("init".to_string(), "fake_init".to_string()),
            ("release".to_string(), "fake_release".to_string())
        ]
    );
    for name in ["fake_init", "fake_release"] {
        assert_eq!(
            obj.program(name).unwrap().attach_target,
            AttachTarget::StructOps
        );
    }
}
