//! Object parsing and program linking on real clang-19 objects.
mod common;

use common::{fixture_object, insn};
use core_reloc::{relocate_program, Btf, MapKind, MapRefKind, Object};

fn object() -> Object {
    Object::parse(&fixture_object("maps_and_calls", &[])).expect("fixture parses")
}

#[test]
fn license_programs_and_types() {
    let obj = object();
    assert_eq!(obj.license(), "Dual BSD/GPL");
    let names: Vec<_> = obj
        .programs()
        .iter()
        .map(|p| (p.name.as_str(), p.section.as_str(), p.program_type))
        .collect();
    assert!(names.contains(&("xdp_main", "xdp", 6)), "{names:?}");
    assert!(names.contains(&("tc_main", "tc", 3)), "{names:?}");
    assert_eq!(
        obj.programs().len(),
        2,
        "subprograms are not entry programs"
    );
    let xdp = obj.program("xdp_main").unwrap();
    assert_eq!(xdp.expected_attach_type, Some(37));
}

#[test]
fn maps_of_every_kind() {
    let obj = object();
    let by_name = |n: &str| {
        obj.maps()
            .iter()
            .find(|m| m.name == n)
            .unwrap_or_else(|| panic!("map {n}: {:?}", obj.maps()))
    };
    let counters = by_name("counters");
    assert_eq!(
        (
            counters.kind,
            counters.map_type,
            counters.key_size,
            counters.value_size,
            counters.max_entries
        ),
        (MapKind::BtfDefined, 2, 4, 8, 4)
    );
    assert_ne!(counters.btf_value_type_id, 0);
    let flows = by_name("flows");
    assert_eq!(
        (
            flows.map_type,
            flows.key_size,
            flows.value_size,
            flows.max_entries,
            flows.map_flags
        ),
        (1, 12, 4, 128, 1)
    );
    let data = by_name(".data");
    assert_eq!(
        (data.kind, data.value_size, data.max_entries),
        (MapKind::Data, 8, 1)
    );
    assert_eq!(
        data.initial_value.as_deref(),
        Some(&[7, 0, 0, 0, 9, 0, 0, 0][..])
    );
    let rodata = by_name(".rodata");
    assert_eq!(rodata.kind, MapKind::Rodata);
    assert!(rodata.freeze);
    assert_eq!(
        rodata.map_flags & core_reloc::object::MAP_F_RDONLY_PROG,
        core_reloc::object::MAP_F_RDONLY_PROG
    );
    let bss = by_name(".bss");
    assert_eq!((bss.kind, bss.value_size), (MapKind::Bss, 72));
    assert_eq!(bss.initial_value.as_deref(), Some(&[0u8; 72][..]));
    assert!(obj.maps().iter().all(|m| m.kernel_name().len() <= 15));
}

#[test]
fn datasec_sizes_and_offsets_are_filled() {
    let obj = object();
    let btf = obj.btf().unwrap();
    let id = btf.ids_by_name(core_reloc::Kind::DataSec, ".data")[0];
    let core_reloc::TypeBody::DataSec { size, vars } = btf.type_by_id(id).unwrap().body else {
        panic!()
    };
    assert_eq!(size, 8);
    let offsets: Vec<_> = vars
        .iter()
        .map(|v| (btf.name_of(v.ty).unwrap().to_string(), v.offset))
        .collect();
    assert_eq!(
        offsets,
        vec![("packets".to_string(), 0), ("second_word".to_string(), 4)]
    );
}

#[test]
fn links_subprograms_and_records_map_refs() {
    let obj = object();
    let target = obj.btf().unwrap().clone();
    let prog = relocate_program(&obj, "xdp_main", &target).unwrap();
    let n = prog.insn_count();
    // Every pseudo call and function-address load lands on a function start inside the program.
    let func_starts: Vec<u32> = prog
        .func_info
        .chunks(prog.func_info_rec_size as usize)
        .map(|r| u32::from_le_bytes(r[0..4].try_into().unwrap()))
        .collect();
    assert_eq!(func_starts[0], 0);
    assert_eq!(
        func_starts.len(),
        4,
        "main, bump, global_helper, loop_cb: {func_starts:?}"
    );
    let mut calls = 0;
    for i in 0..n {
        let (code, _, src, _, imm) = insn(&prog.insns, i);
        if (code == 0x85 && src == 1) || (code == 0x18 && src == 4) {
            let target = (i as i64 + imm as i64 + 1) as u32;
            assert!(
                func_starts.contains(&target),
                "insn {i} jumps to {target}, not a function start {func_starts:?}"
            );
            calls += 1;
        }
    }
    assert_eq!(calls, 3);
    let kinds: Vec<_> = prog
        .map_refs
        .iter()
        .map(|r| (obj.maps()[r.map_index].name.as_str(), r.kind))
        .collect();
    assert!(kinds.contains(&("counters", MapRefKind::Fd)), "{kinds:?}");
    assert!(kinds.contains(&("flows", MapRefKind::Fd)), "{kinds:?}");
    assert!(
        kinds.contains(&(".data", MapRefKind::Value { offset: 4 })),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(".rodata", MapRefKind::Value { offset: 0 })),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(".bss", MapRefKind::Value { offset: 8 })),
        "{kinds:?}"
    );
    // Line info stays inside the program and sorted.
    let lines: Vec<u32> = prog
        .line_info
        .chunks(prog.line_info_rec_size as usize)
        .map(|r| u32::from_le_bytes(r[0..4].try_into().unwrap()))
        .collect();
    assert!(lines.iter().all(|&l| (l as usize) < n));
    assert!(prog.core.is_empty());
}

#[test]
fn patch_map_fds_sets_pseudo_sources() {
    let obj = object();
    let mut prog = relocate_program(&obj, "xdp_main", &obj.btf().unwrap().clone()).unwrap();
    let fds: Vec<i32> = (0..obj.maps().len() as i32).map(|i| 100 + i).collect();
    prog.patch_map_fds(&fds).unwrap();
    for r in &prog.map_refs {
        let (code, _, src, _, imm) = insn(&prog.insns, r.insn_index as usize);
        let (_, _, _, _, imm2) = insn(&prog.insns, r.insn_index as usize + 1);
        assert_eq!(code, 0x18);
        assert_eq!(imm, 100 + r.map_index as i32);
        match r.kind {
            MapRefKind::Fd => assert_eq!((src, imm2), (1, 0)),
            MapRefKind::Value { offset } => assert_eq!((src, imm2), (2, offset as i32)),
        }
    }
    assert!(prog.patch_map_fds(&[]).is_err() || prog.map_refs.is_empty());
}

#[test]
fn second_program_links_its_own_copy() {
    let obj = object();
    let prog = relocate_program(
        &obj,
        "tc_main",
        &Btf::parse(&obj.btf().unwrap().to_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(prog.program_type, 3);
    assert_eq!(prog.func_info.len() / prog.func_info_rec_size as usize, 2);
    assert!(
        relocate_program(&obj, "bump", obj.btf().unwrap()).is_err(),
        "subprograms are not programs"
    );
    assert!(relocate_program(&obj, "nope", obj.btf().unwrap()).is_err());
}

/// Subprograms are laid out as libbpf lays them out: depth first, in the
/// order their first call is met (calls -> sub_mid -> sub_leaf, then sub_other).
#[test]
fn subprograms_are_appended_depth_first_like_libbpf() {
    let obj = Object::parse(&common::fixture_object("differential", &["-DV=0"])).unwrap();
    let p = core_reloc::relocate_program(&obj, "calls", obj.btf().unwrap()).unwrap();
    let btf = obj.btf().unwrap();
    let rec = p.func_info_rec_size as usize;
    let names: Vec<(u32, String)> = p
        .func_info
        .chunks(rec)
        .map(|r| {
            let off = u32::from_le_bytes(r[0..4].try_into().unwrap());
            let ty = u32::from_le_bytes(r[4..8].try_into().unwrap());
            (off, btf.name_of(ty).unwrap().to_string())
        })
        .collect();
    let order: Vec<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(order, ["calls", "sub_mid", "sub_leaf", "sub_other"]);
    assert!(names.windows(2).all(|w| w[0].0 < w[1].0), "{names:?}");
}
