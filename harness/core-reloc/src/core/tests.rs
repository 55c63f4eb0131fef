//! One table per CO-RE rule, over BTF built by hand: the decision (`decide`) and, where the
//! instruction matters, the patch (`Fixup::apply`). Expected values are worked out from the
//! layouts written here, as libbpf computes them.

use super::*;
use crate::btf::{Btf, BtfBuilder};
use crate::btf_ext::CoreRelo;
use crate::insn::{self, Insn};
use RelocKind::*;

/// (local, target) values, or why there are none.
type Values<E> = Result<(u64, u64), E>;

fn empty() -> Btf {
    BtfBuilder::new().build().unwrap()
}

/// Decides one relocation of `kind` with `access` on the local root type `root`.
fn decide(
    local: &BtfBuilder,
    root: u32,
    access: &str,
    kind: u32,
    target: &Btf,
) -> Result<Fixup, CoreFailure> {
    let mut local = local.clone();
    let access_str_off = local.string(access);
    let local = local.build().unwrap();
    let relo = CoreRelo {
        insn_off: 0,
        type_id: root,
        access_str_off,
        kind,
    };
    let site = RelocSite {
        relo_index: 0,
        insn_index: 0,
    };
    CoreEngine::new(&local, target).decide(&relo, site)
}

fn decided(local: &BtfBuilder, root: u32, access: &str, kind: RelocKind, target: &Btf) -> Fixup {
    decide(local, root, access, kind as u32, target)
        .unwrap_or_else(|f| panic!("{kind} {access}: {} ({:?})", f.error, f.access))
}

/// (local, target) values, or the poison reason.
fn values(fixup: &Fixup) -> Values<PoisonReason> {
    match &fixup.poison {
        Some(reason) => Err(reason.clone()),
        None => Ok((fixup.local, fixup.target)),
    }
}

/// The error of a relocation that must fail.
fn failure(local: &BtfBuilder, root: u32, access: &str, kind: u32, target: &Btf) -> CoreFailure {
    match decide(local, root, access, kind, target) {
        Ok(f) => panic!("{access}: decided {f:?}"),
        Err(f) => f,
    }
}

/// `struct foo___v2 { int a; int b; }`: the root is id 2.
fn local_foo() -> BtfBuilder {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    b.struct_("foo___v2", 8, &[("a", int, 0, 0), ("b", int, 32, 0)]);
    b
}

#[test]
fn candidates_are_found_by_essential_name_and_kind() {
    let local = local_foo();
    // (what the target holds, field b's (local, target) offsets or the poison, candidate name)
    type Build = fn(&mut BtfBuilder, u32);
    let cases: [(&str, Build, Values<PoisonReason>, Option<&str>); 4] = [
        (
            "the plain name",
            |b, int| {
                b.struct_("bar", 4, &[("b", int, 0, 0)]);
                b.struct_("foo", 12, &[("a", int, 0, 0), ("b", int, 64, 0)]);
            },
            Ok((4, 8)),
            Some("foo"),
        ),
        (
            "another flavor",
            |b, int| {
                b.struct_("foo___v3", 8, &[("b", int, 0, 0)]);
            },
            Ok((4, 0)),
            Some("foo___v3"),
        ),
        (
            "two flavors that agree: the first decides",
            |b, int| {
                b.struct_("foo", 8, &[("b", int, 32, 0)]);
                b.struct_("foo___x", 16, &[("pad", int, 0, 0), ("b", int, 32, 0)]);
            },
            Ok((4, 4)),
            Some("foo"),
        ),
        (
            "a union or a longer name is no candidate",
            |b, int| {
                b.union_("foo", 4, &[("b", int, 0, 0)]);
                b.struct_("foobar", 4, &[("b", int, 0, 0)]);
            },
            Err(PoisonReason::FieldMissing),
            None,
        ),
    ];
    for (what, build, want, candidate) in cases {
        let mut t = BtfBuilder::new();
        let int = t.int("int", 4, true);
        build(&mut t, int);
        let target = t.build().unwrap();
        let f = decided(&local, 2, "0:1", FieldByteOffset, &target);
        assert_eq!(values(&f), want, "{what}");
        let name = f.candidate.map(|id| target.name_of(id).unwrap());
        assert_eq!(name, candidate, "{what}");
        assert_eq!(f.access, "struct foo___v2::b", "{what}");
    }
}

#[test]
fn candidates_that_disagree_are_an_error() {
    let local = local_foo();
    let mut t = BtfBuilder::new();
    let int = t.int("int", 4, true);
    let long = t.int("long", 8, true);
    t.struct_("foo", 12, &[("a", int, 0, 0), ("b", int, 64, 0)]);
    t.struct_("foo___x", 16, &[("a", long, 0, 0), ("b", int, 32, 0)]);
    let target = t.build().unwrap();
    let cases = [
        (
            "0:1",
            FieldByteOffset,
            CoreError::AmbiguousOffsets {
                first: 64,
                second: 32,
            },
        ),
        (
            "0:0",
            FieldByteSize,
            CoreError::AmbiguousValues {
                first: 4,
                second: 8,
            },
        ),
        (
            "0",
            TypeSize,
            CoreError::AmbiguousValues {
                first: 12,
                second: 16,
            },
        ),
    ];
    for (access, kind, want) in cases {
        let f = failure(&local, 2, access, kind as u32, &target);
        assert_eq!(f.error, want, "{kind} {access}");
        assert_eq!(f.kind, Some(kind));
        assert!(
            f.error.to_string().starts_with("ambiguous: "),
            "{}",
            f.error
        );
    }
}

#[test]
fn candidates_that_matched_are_kept_for_the_roots_next_relocations() {
    // Only `foo` has b, so after b's relocation `foo___x` (a at another offset) is no longer a
    // candidate for a: no ambiguity, as in libbpf.
    let mut local = local_foo();
    let b_off = local.string("0:1");
    let a_off = local.string("0:0");
    let local = local.build().unwrap();
    let mut t = BtfBuilder::new();
    let int = t.int("int", 4, true);
    t.struct_("foo", 12, &[("a", int, 0, 0), ("b", int, 64, 0)]);
    t.struct_("foo___x", 8, &[("pad", int, 0, 0), ("a", int, 32, 0)]);
    let target = t.build().unwrap();
    let relo = |access_str_off| CoreRelo {
        insn_off: 0,
        type_id: 2,
        access_str_off,
        kind: FieldByteOffset as u32,
    };
    let site = |relo_index| RelocSite {
        relo_index,
        insn_index: relo_index as u32,
    };
    let mut engine = CoreEngine::new(&local, &target);
    let b = engine.decide(&relo(b_off), site(0)).unwrap();
    assert_eq!((b.target, b.relo_index, b.insn_index), (8, 0, 0));
    let a = engine.decide(&relo(a_off), site(1)).unwrap();
    assert_eq!((a.target, a.relo_index, a.insn_index), (0, 1, 1));
    // A fresh engine sees both candidates for a and refuses.
    let fresh = CoreEngine::new(&local, &target).decide(&relo(a_off), site(0));
    assert!(matches!(
        fresh.unwrap_err().error,
        CoreError::AmbiguousOffsets { .. }
    ));
}

/// `struct bf { unsigned lo:3; int mid:5; unsigned hi:4 (bit 30); u64 wide:40 (bit 64); }`,
/// its bitfields `shift` bits further (after an int member `pad`).
fn bitfields(shift: u32) -> BtfBuilder {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let uint = b.int("unsigned int", 4, false);
    let u64_ = b.int("unsigned long long", 8, false);
    let mut members = vec![
        ("lo", uint, shift, 3),
        ("mid", int, shift + 3, 5),
        ("hi", uint, shift + 30, 4),
        ("wide", u64_, shift + 64, 40),
    ];
    if shift > 0 {
        members.insert(0, ("pad", int, 0, 0));
    }
    b.struct_("bf", 16 + shift / 8, &members);
    b
}

#[test]
fn bitfield_relocations() {
    let local = bitfields(0);
    // (target shift, member index in the local struct, kind, (local, target) or the failure)
    let cases: [(u32, u32, RelocKind, Values<CalcError>); 15] = [
        (64, 1, FieldByteOffset, Ok((0, 8))),
        (64, 1, FieldByteSize, Ok((4, 4))),
        (64, 1, FieldLshiftU64, Ok((56, 56))),
        (64, 1, FieldRshiftU64, Ok((59, 59))),
        (64, 1, FieldSigned, Ok((1, 1))),
        (64, 0, FieldSigned, Ok((0, 0))),
        (64, 0, FieldLshiftU64, Ok((61, 61))),
        // Crossing a 4-byte boundary: the load doubles to 8 bytes.
        (64, 2, FieldByteSize, Ok((8, 8))),
        (64, 2, FieldByteOffset, Ok((0, 8))),
        (64, 2, FieldLshiftU64, Ok((30, 30))),
        (64, 3, FieldByteOffset, Ok((8, 16))),
        (64, 3, FieldLshiftU64, Ok((24, 24))),
        (64, 3, FieldRshiftU64, Ok((24, 24))),
        // At bit 62, 4 bits need more than one aligned 8-byte load.
        (32, 2, FieldByteOffset, Err(CalcError::BitfieldTooWide)),
        (32, 2, FieldRshiftU64, Err(CalcError::BitfieldTooWide)),
    ];
    let root = 4;
    for (shift, member, kind, want) in cases {
        let target = bitfields(shift).build().unwrap();
        let access = format!("0:{member}");
        let got = match decide(&local, root, &access, kind as u32, &target) {
            Ok(f) => {
                assert!(f.poison.is_none(), "{kind} {access}");
                Ok((f.local, f.target))
            }
            Err(CoreFailure {
                error: CoreError::Calc(e),
                ..
            }) => Err(e),
            Err(f) => panic!("{kind} {access}: {}", f.error),
        };
        assert_eq!(got, want, "{kind} {access}");
    }
}

#[test]
fn enum_value_relocations_across_enum_and_enum64() {
    let mut local = BtfBuilder::new();
    local.enum32("e___v1", 4, false, &[("A", 1), ("B", 2), ("C___old", 7)]);
    let mut t = BtfBuilder::new();
    t.enum64("e", 8, false, &[("B", 1 << 40), ("C", 3)]);
    let target = t.build().unwrap();
    let cases = [
        ("0", EnumvalExists, Ok((1, 0)), "enum e___v1::A"),
        ("1", EnumvalExists, Ok((1, 1)), "enum e___v1::B"),
        ("1", EnumvalValue, Ok((2, 1 << 40)), "enum e___v1::B"),
        ("2", EnumvalValue, Ok((7, 3)), "enum e___v1::C___old"),
        (
            "0",
            EnumvalValue,
            Err(PoisonReason::EnumeratorMissing),
            "enum e___v1::A",
        ),
    ];
    for (access, kind, want, described) in cases {
        let f = decided(&local, 1, access, kind, &target);
        assert_eq!(values(&f), want, "{kind} {access}");
        assert_eq!(f.access, described);
    }
    // An index past the enumerators is refused as libbpf refuses it.
    let f = failure(&local, 1, "3", EnumvalValue as u32, &target);
    assert_eq!(f.error, CoreError::LocalSpec(SpecError::NotEnumerator));
}

#[test]
fn type_relocations() {
    // Local `struct s { int a; }`, id 2.
    let mut local = BtfBuilder::new();
    let int = local.int("int", 4, true);
    local.struct_("s", 4, &[("a", int, 0, 0)]);
    type Build = fn(&mut BtfBuilder) -> Option<u32>;
    // (target, exists, size, matches)
    let cases: [(&str, Build, u64, u64, u64); 4] = [
        (
            "same shape",
            |b| {
                let int = b.int("int", 4, true);
                Some(b.struct_("s", 4, &[("a", int, 0, 0)]))
            },
            1,
            4,
            1,
        ),
        (
            "a wider member: exists, does not match",
            |b| {
                let long = b.int("long", 8, true);
                Some(b.struct_("s", 8, &[("a", long, 0, 0)]))
            },
            1,
            8,
            0,
        ),
        (
            "more members still match",
            |b| {
                let int = b.int("int", 4, true);
                Some(b.struct_("s", 8, &[("b", int, 0, 0), ("a", int, 32, 0)]))
            },
            1,
            8,
            1,
        ),
        ("absent", |_| None, 0, 0, 0),
    ];
    for (what, build, exists, size, matches) in cases {
        let mut t = BtfBuilder::new();
        let id = build(&mut t);
        let target = t.build().unwrap();
        let got = |kind| decided(&local, 2, "0", kind, &target).target;
        assert_eq!(got(TypeExists), exists, "{what}");
        assert_eq!(got(TypeSize), size, "{what}");
        assert_eq!(got(TypeMatches), matches, "{what}");
        assert_eq!(got(TypeIdTarget), id.unwrap_or(0) as u64, "{what}");
        let local_id = decided(&local, 2, "0", TypeIdLocal, &target);
        assert_eq!((local_id.local, local_id.target), (2, 2));
        assert_eq!((local_id.candidate, local_id.validate), (None, false));
    }
}

#[test]
fn field_exists_and_a_missing_field_poisons() {
    let local = local_foo();
    let mut t = BtfBuilder::new();
    let int = t.int("int", 4, true);
    t.struct_("foo", 4, &[("a", int, 0, 0)]);
    let target = t.build().unwrap();
    let cases = [
        ("0:0", FieldExists, Ok((1, 1))),
        ("0:1", FieldExists, Ok((1, 0))),
        ("0:0", FieldByteOffset, Ok((0, 0))),
        ("0:1", FieldByteOffset, Err(PoisonReason::FieldMissing)),
        ("0:1", FieldByteSize, Err(PoisonReason::FieldMissing)),
        ("0:1", FieldLshiftU64, Err(PoisonReason::FieldMissing)),
    ];
    for (access, kind, want) in cases {
        let f = decided(&local, 2, access, kind, &target);
        assert_eq!(values(&f), want, "{kind} {access}");
    }
}

/// `struct arr_s { int pad; int arr[4]; }` locally (id 3); the target's pad is `pad_size` bytes
/// and its array has `len` elements (0: a flexible array member).
fn arrays(pad_size: u32, len: u32) -> BtfBuilder {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let pad = if pad_size == 4 {
        int
    } else {
        b.int("long", pad_size, true)
    };
    let arr = b.array(int, int, len);
    b.struct_(
        "arr_s",
        pad_size + 4 * len,
        &[("pad", pad, 0, 0), ("arr", arr, pad_size * 8, 0)],
    );
    b
}

#[test]
fn array_accesses() {
    let local = arrays(4, 4);
    let cases = [
        ("0:1:2", (8, 4), Ok((12, 16)), "struct arr_s::arr[2]"),
        ("0:1:2", (8, 2), Err(PoisonReason::FieldMissing), ""),
        ("0:1:3", (8, 0), Ok((16, 20)), "flexible array member"),
        ("0:1", (8, 4), Ok((4, 8)), "struct arr_s::arr"),
        // `&p[1].arr`: the root index steps over whole structs.
        ("1:1", (8, 4), Ok((24, 32)), "struct arr_s[1]::arr"),
    ];
    for (access, (pad, len), want, what) in cases {
        let target = arrays(pad, len).build().unwrap();
        let f = decided(&local, 3, access, FieldByteOffset, &target);
        assert_eq!(values(&f), want, "{access} {what}");
        if want.is_ok() && what.starts_with("struct") {
            assert_eq!(f.access, what);
        }
    }
    let size = decided(
        &local,
        3,
        "0:1",
        FieldByteSize,
        &arrays(8, 2).build().unwrap(),
    );
    assert_eq!(values(&size), Ok((16, 8)));
    // Past the local array's end.
    let f = failure(&local, 3, "0:1:4", FieldByteOffset as u32, &empty());
    assert_eq!(
        f.error,
        CoreError::LocalSpec(SpecError::ArrayIndexOutOfRange { idx: 4, step: 2 })
    );
}

#[test]
fn failures_say_which_rule_refused() {
    let mut local = local_foo();
    let int = 1;
    let anon = local.struct_("", 4, &[("x", int, 0, 0)]);
    let target = empty();
    let cases: [(u32, &str, u32, CoreError, &str); 5] = [
        (2, "0:1", 13, CoreError::UnknownKind(13), "0:1"),
        (
            anon,
            "0:0",
            FieldByteOffset as u32,
            CoreError::AnonymousType,
            "struct (anon)::x",
        ),
        (
            2,
            "0:5",
            FieldByteOffset as u32,
            CoreError::LocalSpec(SpecError::MemberOutOfRange { idx: 5, step: 1 }),
            "struct foo___v2 (access string \"0:5\")",
        ),
        (
            2,
            "0:x",
            FieldByteOffset as u32,
            CoreError::LocalSpec(SpecError::Malformed("0:x".into())),
            "struct foo___v2 (access string \"0:x\")",
        ),
        (
            2,
            "0:1",
            TypeSize as u32,
            CoreError::LocalSpec(SpecError::NotTypeAccess("0:1".into())),
            "struct foo___v2 (access string \"0:1\")",
        ),
    ];
    for (root, access, kind, error, described) in cases {
        let f = failure(&local, root, access, kind, &target);
        assert_eq!(f.error, error, "{access}");
        assert_eq!(f.access, described, "{access}");
    }
}

fn ldx(size: u8, off: i16) -> Insn {
    Insn {
        code: insn::CLASS_LDX | 0x60 | size,
        dst_reg: 1,
        src_reg: 2,
        off,
        imm: 0,
    }
}

fn ld_imm64(value: u64) -> [Insn; 2] {
    [
        Insn {
            code: insn::LD_IMM64,
            dst_reg: 1,
            imm: value as u32 as i32,
            ..Insn::default()
        },
        Insn {
            imm: (value >> 32) as u32 as i32,
            ..Insn::default()
        },
    ]
}

fn stream(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.encode()).collect()
}

fn read_back(bytes: &[u8]) -> Vec<Insn> {
    (0..bytes.len() / 8)
        .map(|i| insn::read(bytes, i).unwrap())
        .collect()
}

#[test]
fn patching_writes_the_target_value_into_each_instruction_class() {
    let local = local_foo();
    let mut t = BtfBuilder::new();
    let int = t.int("int", 4, true);
    t.struct_("foo", 16, &[("a", int, 0, 0), ("b", int, 96, 0)]);
    let target = t.build().unwrap();
    let offset = decided(&local, 2, "0:1", FieldByteOffset, &target);
    let mov = Insn {
        code: insn::CLASS_ALU64 | 0xb0,
        dst_reg: 1,
        imm: 4,
        ..Insn::default()
    };
    let cases: [(Vec<Insn>, Vec<Insn>); 3] = [
        (vec![ldx(insn::SIZE_W, 4)], vec![ldx(insn::SIZE_W, 12)]),
        (vec![mov], vec![Insn { imm: 12, ..mov }]),
        (ld_imm64(4).to_vec(), ld_imm64(12).to_vec()),
    ];
    for (before, after) in cases {
        let mut bytes = stream(&before);
        let decision = offset.apply(&mut bytes).unwrap();
        assert_eq!(read_back(&bytes), after, "{before:?}");
        assert_eq!(decision.outcome.to_string(), "value 12");
        assert_eq!(decision.access, "struct foo___v2::b");
    }
}

#[test]
fn a_poisoned_fixup_becomes_the_poison_call() {
    let local = local_foo();
    let target = empty();
    let f = decided(&local, 2, "0:1", FieldByteOffset, &target);
    assert_eq!(f.poison, Some(PoisonReason::FieldMissing));
    let mut bytes = stream(&[ldx(insn::SIZE_W, 4)]);
    let decision = f.apply(&mut bytes).unwrap();
    assert_eq!(read_back(&bytes), vec![Insn::poison()]);
    assert_eq!(
        decision.outcome.to_string(),
        "poisoned (field not found in target)"
    );
    // Both halves of a ld_imm64, so the verifier reports the call, not a broken opcode.
    let mut bytes = stream(&ld_imm64(4));
    f.apply(&mut bytes).unwrap();
    assert_eq!(read_back(&bytes), vec![Insn::poison(), Insn::poison()]);
}

#[test]
fn a_load_of_a_resized_field_shrinks_if_unsigned_and_poisons_if_signed() {
    let mut local = BtfBuilder::new();
    let uint = local.int("unsigned int", 4, false);
    let int = local.int("int", 4, true);
    local.struct_("r", 8, &[("u", uint, 0, 0), ("i", int, 32, 0)]);
    let mut t = BtfBuilder::new();
    let u16_ = t.int("unsigned short", 2, false);
    let long = t.int("long", 8, true);
    t.struct_("r", 16, &[("u", u16_, 0, 0), ("i", long, 64, 0)]);
    let target = t.build().unwrap();

    let u = decided(&local, 3, "0:0", FieldByteOffset, &target);
    let mut bytes = stream(&[ldx(insn::SIZE_W, 0)]);
    u.apply(&mut bytes).unwrap();
    assert_eq!(read_back(&bytes), vec![ldx(insn::SIZE_H, 0)]);

    let i = decided(&local, 3, "0:1", FieldByteOffset, &target);
    assert!(i.unsafe_size_change);
    let mut bytes = stream(&[ldx(insn::SIZE_W, 4)]);
    let decision = i.apply(&mut bytes).unwrap();
    assert_eq!(read_back(&bytes), vec![Insn::poison()]);
    assert_eq!(
        decision.outcome,
        CoreOutcome::Poisoned {
            reason: PoisonReason::UnsafeSizeChange { from: 4, to: 8 }
        }
    );
}

#[test]
fn an_instruction_the_decision_does_not_expect_is_refused_and_left_alone() {
    let local = local_foo();
    let mut t = BtfBuilder::new();
    let int = t.int("int", 4, true);
    t.struct_("foo", 12, &[("b", int, 64, 0)]);
    let target = t.build().unwrap();
    let f = decided(&local, 2, "0:1", FieldByteOffset, &target);
    let jump = Insn {
        code: insn::CLASS_JMP,
        ..Insn::default()
    };
    let cases: [(Vec<Insn>, PatchError); 4] = [
        (
            vec![ldx(insn::SIZE_W, 8)],
            PatchError::UnexpectedOffset {
                index: 0,
                found: 8,
                expected: 4,
            },
        ),
        (
            vec![jump],
            PatchError::NotRelocatable {
                index: 0,
                code: insn::CLASS_JMP,
            },
        ),
        (vec![ld_imm64(4)[0]], PatchError::MissingSecondHalf),
        (vec![], PatchError::OutOfRange),
    ];
    for (before, want) in cases {
        let mut bytes = stream(&before);
        assert_eq!(f.apply(&mut bytes), Err(want.clone()), "{before:?}");
        assert_eq!(read_back(&bytes), before, "untouched");
        assert_eq!(f.plan(&bytes).unwrap_err(), want);
    }
}

#[test]
fn kinds_round_trip_through_their_raw_values() {
    for kind in RelocKind::ALL {
        assert_eq!(RelocKind::from_raw(kind as u32), Some(kind));
    }
    assert_eq!(RelocKind::from_raw(13), None);
    assert_eq!(
        RelocKind::ALL.iter().filter(|k| k.is_field_based()).count()
            + RelocKind::ALL.iter().filter(|k| k.is_type_based()).count()
            + RelocKind::ALL
                .iter()
                .filter(|k| k.is_enumval_based())
                .count(),
        13
    );
}
