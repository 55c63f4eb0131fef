//! CO-RE against a second compilation of the same source with other layouts.
//! Oracle: relocating the "target" object against its own BTF gives, as the
//! local values, what clang computed for that layout; relocating the other
//! object against it must produce the same numbers.
mod common;

use common::{fixture_object, insn};
use core_reloc::{
    decide_program, link_program, predict_program, relocate_program, Btf, CoreDecision, CoreError,
    CoreOutcome, Object, RelocKind, RelocateError,
};

fn pair() -> (Object, Object) {
    let local = Object::parse(&fixture_object("core_layouts", &[])).unwrap();
    let target = Object::parse(&fixture_object("core_layouts", &["-DTARGET_LAYOUT"])).unwrap();
    (local, target)
}

fn decisions(obj: &Object, prog: &str, target: &Btf) -> Vec<CoreDecision> {
    relocate_program(obj, prog, target)
        .unwrap_or_else(|e| panic!("{prog}: {e}"))
        .core
}

fn value(ds: &[CoreDecision], kind: RelocKind, access: &str) -> u64 {
    let d = ds
        .iter()
        .find(|d| d.kind == kind && d.access == access)
        .unwrap_or_else(|| panic!("no {kind} {access} in {ds:#?}"));
    match d.outcome {
        CoreOutcome::Value { target, .. } => target,
        ref o => panic!("{kind} {access}: {o:?}"),
    }
}

#[test]
fn matches_what_clang_computed_for_the_target_layout() {
    let (local, target) = pair();
    let tbtf = target.btf().unwrap();
    for prog in ["fields", "direct", "types", "enums"] {
        let moved = decisions(&local, prog, tbtf);
        let native = decisions(&target, prog, tbtf);
        for n in &native {
            // Ids differ between BTFs, and "matches" compares two shapes, not one layout.
            if matches!(
                n.kind,
                RelocKind::TypeIdLocal | RelocKind::TypeIdTarget | RelocKind::TypeMatches
            ) {
                continue;
            }
            let CoreOutcome::Value {
                local: expected,
                target: same,
            } = n.outcome
            else {
                panic!("{n:?}")
            };
            assert_eq!(expected, same, "self-relocation is the identity: {n:?}");
            assert_eq!(
                value(&moved, n.kind, &n.access),
                expected,
                "{prog}: {} {}",
                n.kind,
                n.access
            );
        }
    }
}

#[test]
fn field_values() {
    let (local, target) = pair();
    let ds = decisions(&local, "fields", target.btf().unwrap());
    assert_eq!(
        value(&ds, RelocKind::FieldByteOffset, "struct thing::in.x"),
        24
    );
    assert_eq!(
        value(&ds, RelocKind::FieldByteOffset, "struct thing::arr[2]"),
        52
    );
    assert_eq!(
        value(&ds, RelocKind::FieldByteSize, "struct thing::arr"),
        32
    );
    assert_eq!(value(&ds, RelocKind::FieldExists, "struct thing::gone"), 0);
    assert_eq!(value(&ds, RelocKind::FieldExists, "struct thing::in"), 1);
    assert_eq!(value(&ds, RelocKind::FieldSigned, "struct thing::sign"), 0);
    assert_eq!(
        value(&ds, RelocKind::FieldLshiftU64, "struct thing::flags"),
        59
    );
    assert_eq!(
        value(&ds, RelocKind::FieldRshiftU64, "struct thing::bits"),
        57
    );
    // Into an anonymous union member, and through a ___flavor.
    assert_eq!(
        value(&ds, RelocKind::FieldByteOffset, "struct thing::anon_a"),
        80
    );
    assert_eq!(
        value(
            &ds,
            RelocKind::FieldByteOffset,
            "struct thing___flavored::in.y"
        ),
        16
    );
}

#[test]
fn load_size_shrinks_for_unsigned_and_poisons_for_signed() {
    let (local, target) = pair();
    let tbtf = target.btf().unwrap();
    let p = relocate_program(&local, "direct", tbtf).unwrap();
    let d = &p.core[0];
    let (code, _, _, off, _) = insn(&p.insns, d.insn_index as usize);
    assert_eq!((code, off), (0x69, 32), "ldxh at the new offset"); // BPF_LDX|BPF_MEM|BPF_H
    let p = relocate_program(&local, "narrowed", tbtf).unwrap();
    let d = &p.core[0];
    assert!(matches!(d.outcome, CoreOutcome::Poisoned { .. }), "{d:?}");
    assert_eq!(
        insn(&p.insns, d.insn_index as usize),
        (0x85, 0, 0, 0, 0x0bad2310)
    );
}

#[test]
fn type_relocations() {
    let (local, target) = pair();
    let ds = decisions(&local, "types", target.btf().unwrap());
    assert_eq!(value(&ds, RelocKind::TypeExists, "struct thing"), 1);
    assert_eq!(value(&ds, RelocKind::TypeSize, "struct thing"), 88);
    assert_eq!(value(&ds, RelocKind::TypeMatches, "struct list_like"), 1);
    assert_eq!(
        value(&ds, RelocKind::TypeMatches, "struct shape"),
        0,
        "int a vs long a"
    );
    assert_eq!(value(&ds, RelocKind::TypeExists, "struct shape"), 1);
    let local_id = ds
        .iter()
        .find(|d| d.kind == RelocKind::TypeIdLocal)
        .unwrap();
    assert!(
        matches!(local_id.outcome, CoreOutcome::Value { local, target } if local == target && local == local_id.local_type_id as u64)
    );
    let tid = value(&ds, RelocKind::TypeIdTarget, "struct inner");
    assert_eq!(target.btf().unwrap().name_of(tid as u32).unwrap(), "inner");
}

#[test]
fn enum_relocations_and_poisoning() {
    let (local, target) = pair();
    let p = relocate_program(&local, "enums", target.btf().unwrap()).unwrap();
    let ds = &p.core;
    assert_eq!(value(ds, RelocKind::EnumvalValue, "enum color::GREEN"), 20);
    assert_eq!(value(ds, RelocKind::EnumvalExists, "enum color::PURPLE"), 0);
    assert_eq!(
        value(ds, RelocKind::EnumvalValue, "enum big64::BIG_A"),
        1 << 32
    );
    let poisoned = ds
        .iter()
        .find(|d| d.kind == RelocKind::EnumvalValue && d.access == "enum color::PURPLE")
        .unwrap();
    assert!(matches!(poisoned.outcome, CoreOutcome::Poisoned { .. }));
    let i = poisoned.insn_index as usize;
    let first = insn(&p.insns, i);
    assert_eq!(first, (0x85, 0, 0, 0, 0x0bad2310));
    if first.0 == 0x85 && insn(&local_insns(&local, "enums"), i).0 == 0x18 {
        assert_eq!(
            insn(&p.insns, i + 1),
            first,
            "both ld_imm64 halves poisoned"
        );
    }
    // The 64-bit enum value lands in both halves of its ld_imm64.
    let big = ds.iter().find(|d| d.access == "enum big64::BIG_A").unwrap();
    let (code, _, _, _, lo) = insn(&p.insns, big.insn_index as usize);
    let (_, _, _, _, hi) = insn(&p.insns, big.insn_index as usize + 1);
    assert_eq!((code, lo, hi), (0x18, 0, 1));
}

fn local_insns(obj: &Object, prog: &str) -> Vec<u8> {
    // Relocating against an empty BTF leaves only poison/zero decisions; we need
    // the original opcodes, which the object's own BTF reproduces unchanged.
    relocate_program(obj, prog, obj.btf().unwrap())
        .unwrap()
        .insns
}

#[test]
fn ambiguous_candidates_fail_with_context() {
    let (local, target) = pair();
    let err = relocate_program(&local, "ambiguous", target.btf().unwrap()).unwrap_err();
    let RelocateError::Core {
        program,
        access,
        error,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(program, "ambiguous");
    assert_eq!(access, "struct amb::x");
    assert!(
        matches!(
            error,
            CoreError::AmbiguousValues { .. } | CoreError::AmbiguousOffsets { .. }
        ),
        "{error}"
    );
    assert!(err.to_string().contains("ambiguous"), "{err}");
}

#[test]
fn missing_target_types_resolve_to_zero_or_poison() {
    let (local, _) = pair();
    let empty = core_reloc::btf::BtfBuilder::new().build().unwrap();
    let ds = decisions(&local, "types", &empty);
    assert_eq!(value(&ds, RelocKind::TypeExists, "struct thing"), 0);
    assert_eq!(value(&ds, RelocKind::TypeSize, "struct thing"), 0);
    let ds = decisions(&local, "fields", &empty);
    assert_eq!(value(&ds, RelocKind::FieldExists, "struct thing::gone"), 0);
    assert!(ds
        .iter()
        .filter(|d| d.kind == RelocKind::FieldByteOffset)
        .all(|d| matches!(d.outcome, CoreOutcome::Poisoned { .. })));
}

/// Against the host kernel, when it exposes BTF: task_struct must resolve.
#[test]
fn host_kernel_btf_if_present() {
    let Ok(raw) = std::fs::read("/sys/kernel/btf/vmlinux") else {
        eprintln!("skipping: /sys/kernel/btf/vmlinux not readable");
        return;
    };
    let btf = Btf::parse(&raw).unwrap();
    let ids = btf.ids_by_essential_name(Some(&[core_reloc::Kind::Struct]), "task_struct___flavor");
    assert_eq!(ids.len(), 1);
    assert_eq!(btf.to_bytes().len(), raw.len());
    assert_eq!(Btf::parse(&btf.to_bytes()).unwrap(), btf);
}

/// The three steps called apart give what `relocate_program` gives: link, then every fixup of
/// `decide_program` applied, is the relocated program; `predict_program` (decide only, the
/// original instructions read, none written) names the same decisions.
#[test]
fn link_decide_patch_apart_equal_relocate_program() {
    let (local, target) = pair();
    let empty = core_reloc::btf::BtfBuilder::new().build().unwrap();
    let mut compared = 0;
    for tbtf in [target.btf().unwrap(), local.btf().unwrap(), &empty] {
        for prog in local.programs() {
            let whole = relocate_program(&local, &prog.name, tbtf);
            let predicted = predict_program(&local, &prog.name, tbtf);
            let Ok(whole) = whole else {
                assert_eq!(predicted.unwrap_err(), whole.unwrap_err(), "{}", prog.name);
                continue;
            };
            assert_eq!(predicted.as_ref(), Ok(&whole.core), "{}", prog.name);
            let linked = link_program(&local, &prog.name).unwrap();
            let fixups = decide_program(&local, &prog.name, tbtf).unwrap();
            assert_eq!(fixups.len(), linked.core_sites.len());
            let mut apart = linked.program;
            for fixup in &fixups {
                apart.apply_fixup(fixup).unwrap();
            }
            assert_eq!(apart, whole, "{}", prog.name);
            compared += fixups.len();
        }
    }
    assert!(compared > 50, "only {compared} relocations compared");
}
