//! BTF parsing error paths, round trips and sanitization.
mod common;

use core_reloc::btf::BtfBuilder;
use core_reloc::{sanitize_btf, Btf, BtfError, BtfExt, BtfFeatures, Kind, Object};

fn sample() -> Btf {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let ptr = b.ptr(int);
    b.struct_(
        "s",
        16,
        &[("a", int, 0, 0), ("p", ptr, 64, 0), ("bits", int, 32, 3)],
    );
    b.enum64("e64", 8, false, &[("BIG", 1 << 40)]);
    b.raw("f", Kind::Float, false, 0, 8, &[]);
    b.raw("", Kind::TypeTag, false, 0, int, &[]);
    b.build().unwrap()
}

#[test]
fn round_trip_is_identity() {
    let btf = sample();
    let again = Btf::parse(&btf.to_bytes()).unwrap();
    assert_eq!(again, btf);
    assert_eq!(again.to_bytes(), btf.to_bytes());
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let raw = sample().to_bytes();
    for len in 0..raw.len() {
        assert!(Btf::parse(&raw[..len]).is_err(), "len {len}");
    }
    assert!(Btf::parse(&raw).is_ok());
}

#[test]
fn header_errors() {
    let raw = sample().to_bytes();
    type Case = (Box<dyn Fn(&mut Vec<u8>)>, fn(&BtfError) -> bool);
    let cases: Vec<Case> = vec![
        (Box::new(|r| r[0] = 0), |e| {
            matches!(e, BtfError::BadMagic(_))
        }),
        (Box::new(|r| r[..2].copy_from_slice(&[0xeb, 0x9f])), |e| {
            matches!(e, BtfError::BigEndian)
        }),
        (Box::new(|r| r[2] = 2), |e| {
            matches!(e, BtfError::BadVersion(2))
        }),
        (Box::new(|r| r[4] = 8), |e| {
            matches!(e, BtfError::BadHeader(_))
        }),
        (Box::new(|r| r[12] = 0xff), |e| {
            matches!(e, BtfError::BadHeader(_))
        }),
        (Box::new(|r| r[20] = 0xff), |e| {
            matches!(e, BtfError::BadHeader(_))
        }),
        // First type's kind byte set to an unknown kind.
        (Box::new(|r| r[24 + 7] = 31), |e| {
            matches!(e, BtfError::UnknownKind { .. })
        }),
    ];
    for (i, (mutate, expected)) in cases.iter().enumerate() {
        let mut r = raw.clone();
        mutate(&mut r);
        let err = Btf::parse(&r).unwrap_err();
        assert!(expected(&err), "case {i}: {err}");
    }
}

#[test]
fn lookups_reject_bad_ids_and_loops() {
    let mut b = BtfBuilder::new();
    // typedef a -> typedef b -> typedef a: a loop.
    b.typedef("a", 2);
    b.typedef("b", 1);
    b.raw("arr", Kind::Array, false, 0, 0, &[4, 0, 2]);
    b.array(3, 0, 2);
    let btf = b.build().unwrap();
    assert!(matches!(
        btf.skip_mods_and_typedefs(1),
        Err(BtfError::TooDeep(_))
    ));
    assert!(btf.resolve_size(1).is_err());
    assert!(btf.resolve_size(3).is_err(), "array element loop");
    assert!(matches!(btf.type_by_id(99), Err(BtfError::BadTypeId(99))));
    let mut b = BtfBuilder::new();
    b.raw("", Kind::Int, false, 0, 4, &[32]);
    let mut raw = b.to_bytes();
    raw[24..28].copy_from_slice(&1000u32.to_le_bytes()); // name offset past the strings
    let btf = Btf::parse(&raw).unwrap();
    assert!(matches!(btf.type_by_id(1), Err(BtfError::BadString(1000))));
}

#[test]
fn essential_names_and_index() {
    use core_reloc::btf::essential_name_len as ess;
    for (name, len) in [
        ("task_struct", 11),
        ("task_struct___old", 11),
        ("a___b", 1),
        ("a___", 4),
        ("___x", 4),
        ("x____y", 6),
        ("s___a___b", 5),
        ("", 0),
    ] {
        assert_eq!(ess(name), len, "{name}");
    }
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let s1 = b.struct_("foo", 4, &[("x", int, 0, 0)]);
    let s2 = b.struct_("foo___v2", 4, &[("x", int, 0, 0)]);
    let u = b.composite(Kind::Union, "foo", 4, &[]);
    let btf = b.build().unwrap();
    assert_eq!(
        btf.ids_by_essential_name(Some(&[Kind::Struct]), "foo___x"),
        vec![s1, s2]
    );
    assert_eq!(btf.ids_by_essential_name(None, "foo"), vec![s1, s2, u]);
    assert_eq!(btf.ids_by_name(Kind::Struct, "foo___v2"), vec![s2]);
    assert!(btf.ids_by_essential_name(None, "nope").is_empty());
}

fn kinds(btf: &Btf) -> Vec<Kind> {
    (1..btf.type_count())
        .map(|id| btf.kind_of(id).unwrap())
        .collect()
}

#[test]
fn sanitize_replaces_unsupported_kinds_keeping_ids() {
    let obj = Object::parse(&common::fixture_object("maps_and_calls", &[])).unwrap();
    let btf = obj.btf().unwrap();
    assert_eq!(sanitize_btf(btf, &BtfFeatures::all()), btf.to_bytes());
    let old = Btf::parse(&sanitize_btf(btf, &BtfFeatures::none())).unwrap();
    assert!(old.type_count() >= btf.type_count());
    for (id, k) in kinds(&old).into_iter().enumerate() {
        assert!(
            !matches!(
                k,
                Kind::Var
                    | Kind::DataSec
                    | Kind::Func
                    | Kind::FuncProto
                    | Kind::Float
                    | Kind::DeclTag
                    | Kind::TypeTag
                    | Kind::Enum64
            ),
            "type {} still {k}",
            id + 1
        );
    }
    // DATASEC .data became a struct "_data" with members at bit offsets.
    let data = old.ids_by_name(Kind::Struct, "_data");
    assert_eq!(data.len(), 1);
    let t = old.type_by_id(data[0]).unwrap();
    assert_eq!(
        t.members()
            .iter()
            .map(|m| (m.name, m.bit_offset))
            .collect::<Vec<_>>(),
        vec![("packets", 0), ("second_word", 32)]
    );

    let sample = sample();
    let s = Btf::parse(&sanitize_btf(
        &sample,
        &BtfFeatures {
            enum64: false,
            float: false,
            type_tag: false,
            ..BtfFeatures::all()
        },
    ))
    .unwrap();
    assert_eq!(s.kind_of(4).unwrap(), Kind::Union);
    assert_eq!(s.resolve_size(4).unwrap(), 8, "enum64 keeps its size");
    assert_eq!(s.kind_of(5).unwrap(), Kind::Struct);
    assert_eq!(s.resolve_size(5).unwrap(), 8, "float keeps its size");
    assert_eq!(s.kind_of(6).unwrap(), Kind::Const);
}

#[test]
fn global_funcs_become_static_without_func_global() {
    let obj = Object::parse(&common::fixture_object("maps_and_calls", &[])).unwrap();
    let btf = obj.btf().unwrap();
    let s = Btf::parse(&sanitize_btf(
        btf,
        &BtfFeatures {
            func_global: false,
            ..BtfFeatures::all()
        },
    ))
    .unwrap();
    for id in 1..s.type_count() {
        if let core_reloc::TypeBody::Func { linkage, .. } = s.type_by_id(id).unwrap().body {
            assert_eq!(linkage, 0);
        }
    }
}

#[test]
fn btf_ext_errors() {
    assert!(BtfExt::parse(&[]).is_err());
    let mut raw = vec![0x9f, 0xeb, 1, 0, 32, 0, 0, 0];
    raw.extend_from_slice(&[0; 24]);
    assert_eq!(
        BtfExt::parse(&raw).unwrap(),
        BtfExt {
            func_info_rec_size: 8,
            line_info_rec_size: 16,
            core_relo_rec_size: 16,
            ..Default::default()
        }
    );
    // func_info claims 4 bytes at offset 0 holding a record size of 4: too small.
    let mut bad = raw.clone();
    bad[12] = 4;
    bad.extend_from_slice(&4u32.to_le_bytes());
    assert!(BtfExt::parse(&bad).is_err());
    // A section claiming more records than there are bytes.
    let mut bad = raw.clone();
    bad[12] = 16;
    for w in [8u32, 1, 1000] {
        bad.extend_from_slice(&w.to_le_bytes());
    }
    assert!(BtfExt::parse(&bad).is_err());
}

#[test]
fn object_parse_rejects_garbage() {
    let obj = common::fixture_object("maps_and_calls", &[]);
    for len in [0, 4, 64, obj.len() / 2] {
        let _ = Object::parse(&obj[..len]); // must not panic
    }
    assert!(Object::parse(b"not an elf").is_err());
    let mut flipped = obj.clone();
    for i in (0..flipped.len()).step_by(97) {
        flipped[i] ^= 0x5a;
        let _ = Object::parse(&flipped);
    }
}

#[test]
fn parse_owned_equals_parse_and_survives_mutation() {
    // A non-standard layout: 8 bytes of padding after the header, strings first.
    let btf = sample();
    let raw = btf.to_bytes();
    let hdr = 24;
    let types_len = u32::from_le_bytes(raw[12..16].try_into().unwrap()) as usize;
    let (types, strings) = raw[hdr..].split_at(types_len);
    let mut odd = raw[..hdr].to_vec();
    odd[4..8].copy_from_slice(&32u32.to_le_bytes()); // hdr_len
    odd.extend_from_slice(&[0; 8]);
    let type_off = strings.len().div_ceil(4) * 4;
    odd[8..12].copy_from_slice(&(type_off as u32).to_le_bytes());
    odd[16..20].copy_from_slice(&0u32.to_le_bytes()); // str_off
    odd.extend_from_slice(strings);
    odd.resize(32 + type_off, 0);
    odd.extend_from_slice(types);
    for blob in [raw.clone(), odd] {
        let owned = Btf::parse_owned(blob.clone()).unwrap();
        assert_eq!(owned, Btf::parse(&blob).unwrap());
        assert_eq!(owned.to_bytes(), raw);
        // Sanitizing adds strings and types: the owned layout must grow correctly.
        let sanitized = sanitize_btf(&owned, &BtfFeatures::none());
        assert_eq!(sanitized, sanitize_btf(&btf, &BtfFeatures::none()));
        let int = owned.ids_by_name(Kind::Int, "int");
        assert_eq!(int.len(), 1);
        // Func lookups use the second index.
        assert!(owned
            .ids_by_essential_name(Some(&[Kind::Func]), "int")
            .is_empty());
    }
    assert!(Btf::parse_owned(raw[..raw.len() - 1].to_vec()).is_err());
}

#[test]
fn overlapping_sections_are_rejected() {
    let mut raw = sample().to_bytes();
    // Strings start inside the type section.
    raw[16..20].copy_from_slice(&4u32.to_le_bytes());
    raw[20..24].copy_from_slice(&8u32.to_le_bytes());
    let e = Btf::parse(&raw).unwrap_err();
    assert_eq!(e, BtfError::BadHeader("type and string sections overlap"));
    assert_eq!(Btf::parse_owned(raw).unwrap_err(), e);
}

/// The first lookup scans, later ones use the index: same answers either way.
#[test]
fn first_lookup_scan_and_index_agree() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    b.struct_("foo", 4, &[("x", int, 0, 0)]);
    b.struct_("foo___v2", 4, &[("x", int, 0, 0)]);
    b.struct_("foo___v2___v3", 4, &[("x", int, 0, 0)]);
    b.struct_("fo", 4, &[]);
    b.struct_("food", 4, &[]);
    b.typedef("foo", int);
    b.raw("foo", Kind::Func, false, 0, 0, &[]);
    let raw = b.build().unwrap().to_bytes();
    let queries: [(Option<&[Kind]>, &str); 6] = [
        (Some(&[Kind::Struct]), "foo"),
        (Some(&[Kind::Struct]), "foo___x"),
        (Some(&[Kind::Struct]), "foo___v2___zz"),
        (Some(&[Kind::Typedef, Kind::Struct]), "foo"),
        (None, "foo"),
        (Some(&[Kind::Struct]), "nope"),
    ];
    let expected: Vec<Vec<u32>> = {
        let btf = Btf::parse(&raw).unwrap();
        btf.build_name_index();
        queries
            .iter()
            .map(|(k, n)| btf.ids_by_essential_name(*k, n))
            .collect()
    };
    assert_eq!(expected[0], vec![2, 3]);
    assert_eq!(expected[2], vec![4]);
    assert_eq!(expected[4], vec![2, 3, 7, 8]);
    for (i, (k, n)) in queries.iter().enumerate() {
        // A fresh BTF: this query is its first lookup (the scan path).
        let btf = Btf::parse_owned(raw.clone()).unwrap();
        assert_eq!(btf.ids_by_essential_name(*k, n), expected[i], "{n}");
    }
}
