//! Externs: what a clang-19 object declares (kfuncs, ksyms, kconfig), how they resolve against a
//! hand-built kernel BTF and facts, and how the instructions are patched, as libbpf does it.
mod common;

use std::collections::HashMap;

use common::{fixture_object, insn};
use core_reloc::btf::BtfBuilder;
use core_reloc::externs::{
    kernel_version_code, parse_config_number, resolve, scan_kallsyms, ExternError, ExternValue,
    KernelFacts, POISON_KFUNC_CALL_BASE,
};
use core_reloc::object::{ExternKind, KconfigType};
use core_reloc::{relocate_program, Btf, Kind, MapKind, Object, TypeBody};

fn object() -> Object {
    Object::parse(&fixture_object("externs", &[])).expect("fixture parses")
}

/// A kernel BTF with the two kfuncs, `bpf_prog_active` and `struct task_struct`.
/// `release_params` lets a test give `bpf_task_release` an incompatible prototype.
fn kernel(release_params: usize) -> Btf {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true); // 1
    let task = b.struct_("task_struct", 4, &[("pid", int, 0, 0)]); // 2
    let task_ptr = b.ptr(task); // 3
    let p = b.string("p");
    let acquire_proto = b.raw("", Kind::FuncProto, false, 1, task_ptr, &[p, task_ptr]); // 4
    b.raw("bpf_task_acquire", Kind::Func, false, 1, acquire_proto, &[]); // 5
    let mut params = Vec::new();
    for _ in 0..release_params {
        params.extend_from_slice(&[p, task_ptr]);
    }
    let release_proto = b.raw(
        "",
        Kind::FuncProto,
        false,
        release_params as u32,
        0,
        &params,
    ); // 6
    b.raw("bpf_task_release", Kind::Func, false, 1, release_proto, &[]); // 7
    b.raw("bpf_prog_active", Kind::Var, false, 0, int, &[1]); // 8
    b.build().unwrap()
}

const CONFIG: &str = "\
# comment
CONFIG_BPF_SYSCALL=y
CONFIG_TUN=m
CONFIG_DEFAULT_HOSTNAME=\"(none-longer)\"
CONFIG_HZ=250
# CONFIG_ABSENT_NUMBER is not set
";

fn facts(kconfig: Option<&str>) -> KernelFacts<'_> {
    KernelFacts {
        release: "6.1.0-18-amd64",
        kconfig,
        kallsyms: HashMap::from([("bpf_link_fops".to_string(), vec![0xffff_ffff_8123_4560])]),
        has_bpf_cookie: true,
        has_syscall_wrapper: true,
    }
}

#[test]
fn externs_are_collected_in_libbpf_order() {
    let obj = object();
    let summary: Vec<(&str, bool)> = obj
        .externs()
        .iter()
        .map(|e| (e.name.as_str(), e.weak))
        .collect();
    // kconfig first: alignment descending, size ascending, name; then ksyms by name.
    assert_eq!(
        summary,
        vec![
            ("CONFIG_ABSENT_NUMBER", true),
            ("CONFIG_HZ", false),
            ("CONFIG_TUN", true),
            ("LINUX_KERNEL_VERSION", false),
            ("CONFIG_BPF_SYSCALL", false),
            ("LINUX_HAS_BPF_COOKIE", false),
            ("CONFIG_DEFAULT_HOSTNAME", true),
            ("absent_symbol", true),
            ("bpf_absent_kfunc", true),
            ("bpf_link_fops", false),
            ("bpf_prog_active", false),
            ("bpf_task_acquire", false),
            ("bpf_task_release", false),
        ]
    );
    let kind = |n: &str| {
        obj.externs()
            .iter()
            .find(|e| e.name == n)
            .unwrap()
            .kind
            .clone()
    };
    assert!(matches!(kind("bpf_task_acquire"), ExternKind::Kfunc { .. }));
    assert!(matches!(
        kind("bpf_prog_active"),
        ExternKind::TypedKsym { .. }
    ));
    assert_eq!(kind("bpf_link_fops"), ExternKind::TypelessKsym);
    let offsets: Vec<(KconfigType, u32, u32)> = obj
        .externs()
        .iter()
        .filter_map(|e| match e.kind {
            ExternKind::Kconfig {
                ty, size, offset, ..
            } => Some((ty, size, offset)),
            _ => None,
        })
        .collect();
    assert_eq!(
        offsets,
        vec![
            (KconfigType::Int { signed: false }, 8, 0),
            (KconfigType::Int { signed: true }, 4, 8),
            (KconfigType::Tristate, 4, 12),
            (KconfigType::Int { signed: false }, 4, 16),
            (KconfigType::Bool, 1, 20),
            (KconfigType::Bool, 1, 21),
            (KconfigType::CharArray, 8, 22),
        ]
    );
    let kconfig = &obj.maps()[obj.kconfig_map().unwrap()];
    assert_eq!(kconfig.kind, MapKind::Kconfig);
    assert_eq!((kconfig.value_size, kconfig.max_entries), (30, 1));
    assert!(kconfig.freeze);
    assert_ne!(kconfig.btf_value_type_id, 0);
}

#[test]
fn extern_datasecs_are_rewritten_for_the_kernel() {
    let obj = object();
    let btf = obj.btf().unwrap();
    for sec in [".ksyms", ".kconfig"] {
        let id = btf.ids_by_name(Kind::DataSec, sec)[0];
        let TypeBody::DataSec { vars, size } = btf.type_by_id(id).unwrap().body else {
            panic!()
        };
        let mut last_end = 0;
        for v in &vars {
            let t = btf.type_by_id(v.ty).unwrap();
            // The kernel accepts only allocated variables in a DATASEC, in offset order.
            assert!(
                matches!(t.body, TypeBody::Var { linkage: 1, .. }),
                "{sec}: {t:?}"
            );
            assert!(v.offset >= last_end, "{sec}: {vars:?}");
            last_end = v.offset + v.size;
        }
        assert!(last_end <= size, "{sec}");
    }
    // The kfuncs themselves stay FUNCs, now global, with named parameters.
    let f = btf.ids_by_name(Kind::Func, "bpf_task_release")[0];
    let TypeBody::Func { proto, linkage } = btf.type_by_id(f).unwrap().body else {
        panic!()
    };
    assert_eq!(linkage, 1);
    let TypeBody::FuncProto { params, .. } = btf.type_by_id(proto).unwrap().body else {
        panic!()
    };
    assert!(params.iter().all(|p| !p.name.is_empty()), "{params:?}");
}

#[test]
fn resolution_follows_libbpf() {
    let obj = object();
    let target = kernel(1);
    let res = resolve(&obj, &target, &facts(Some(CONFIG))).unwrap();
    let value = |n: &str| {
        let i = obj.externs().iter().position(|e| e.name == n).unwrap();
        res.values[i]
    };
    assert_eq!(value("bpf_task_acquire"), ExternValue::KernelBtfId(5));
    assert_eq!(value("bpf_task_release"), ExternValue::KernelBtfId(7));
    assert_eq!(value("bpf_prog_active"), ExternValue::KernelBtfId(8));
    assert_eq!(
        value("bpf_link_fops"),
        ExternValue::Address(0xffff_ffff_8123_4560)
    );
    assert_eq!(value("bpf_absent_kfunc"), ExternValue::Unresolved);
    assert_eq!(value("absent_symbol"), ExternValue::Unresolved);
    assert_eq!(value("CONFIG_ABSENT_NUMBER"), ExternValue::Unresolved);
    let image = res.kconfig_image.unwrap();
    let u32_at = |o: usize| u32::from_le_bytes(image[o..o + 4].try_into().unwrap());
    assert_eq!(&image[0..8], &[0; 8], "absent weak number reads 0");
    assert_eq!(u32_at(8), 250, "CONFIG_HZ");
    assert_eq!(u32_at(12), 2, "CONFIG_TUN=m is TRI_MODULE");
    assert_eq!(u32_at(16), (6 << 16) + (1 << 8), "LINUX_KERNEL_VERSION");
    assert_eq!(image[20], 1, "CONFIG_BPF_SYSCALL");
    assert_eq!(image[21], 1, "LINUX_HAS_BPF_COOKIE");
    assert_eq!(&image[22..30], b"(none-l\0", "string cut to N-1 bytes");
}

#[test]
fn instructions_are_patched_as_libbpf_patches_them() {
    let obj = object();
    let target = kernel(1);
    let res = resolve(&obj, &target, &facts(Some(CONFIG))).unwrap();
    let mut prog = relocate_program(&obj, "use_externs", &target).unwrap();
    let fds: Vec<i32> = (0..obj.maps().len() as i32).map(|i| 100 + i).collect();
    prog.patch_map_fds(&fds).unwrap();
    prog.patch_externs(&res).unwrap();
    let ext_index = |n: &str| obj.externs().iter().position(|e| e.name == n).unwrap();
    let mut kfunc_calls = Vec::new();
    let mut poisoned = Vec::new();
    let mut btf_ids = Vec::new();
    let mut kconfig_loads = 0;
    let kconfig_fd = fds[obj.kconfig_map().unwrap()];
    for i in 0..prog.insn_count() {
        let (code, _, src, off, imm) = insn(&prog.insns, i);
        if code == 0x85 && src == 2 {
            assert_eq!(off, 0);
            kfunc_calls.push(imm);
        }
        if code == 0x85 && src == 0 && imm >= POISON_KFUNC_CALL_BASE {
            poisoned.push(imm - POISON_KFUNC_CALL_BASE);
        }
        if code == 0x18 && src == 3 {
            btf_ids.push(imm);
        }
        if code == 0x18 && src == 2 && imm == kconfig_fd {
            kconfig_loads += 1;
        }
        if code == 0x18 && src == 0 && imm as u32 == 0x8123_4560 {
            let (_, _, _, _, hi) = insn(&prog.insns, i + 1);
            assert_eq!(hi as u32, 0xffff_ffff);
        }
    }
    assert_eq!(kfunc_calls, vec![5, 7]);
    assert_eq!(poisoned, vec![ext_index("bpf_absent_kfunc") as i32]);
    assert_eq!(
        btf_ids,
        vec![8],
        "only the typed ksym becomes BPF_PSEUDO_BTF_ID"
    );
    assert_eq!(
        kconfig_loads, 7,
        "every kconfig read points into the .kconfig map"
    );
}

#[test]
fn what_libbpf_refuses_is_refused_with_the_extern_named() {
    let obj = object();
    // A strong kfunc the kernel lacks.
    let mut b = BtfBuilder::new();
    b.int("int", 4, true);
    let bare = b.build().unwrap();
    let err = resolve(&obj, &bare, &facts(Some(CONFIG))).unwrap_err();
    assert!(
        matches!(&err, ExternError::NotFound { name, .. } if name == "bpf_prog_active" || name == "bpf_task_acquire"),
        "{err}"
    );
    // A prototype that does not match (two parameters instead of one).
    let err = resolve(&obj, &kernel(2), &facts(Some(CONFIG))).unwrap_err();
    assert!(
        matches!(&err, ExternError::Incompatible { name, .. } if name == "bpf_task_release"),
        "{err}"
    );
    // No config to read CONFIG_* from.
    let err = resolve(&obj, &kernel(1), &facts(None)).unwrap_err();
    assert!(matches!(err, ExternError::NoKconfig { .. }), "{err}");
    // A strong CONFIG_ the config lacks.
    let err = resolve(&obj, &kernel(1), &facts(Some("CONFIG_BPF_SYSCALL=y\n"))).unwrap_err();
    assert!(
        matches!(&err, ExternError::NotFound { name, .. } if name == "CONFIG_HZ"),
        "{err}"
    );
    // `m` cannot be a bool.
    let err = resolve(
        &obj,
        &kernel(1),
        &facts(Some("CONFIG_BPF_SYSCALL=m\nCONFIG_HZ=100\n")),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ExternError::BadKconfig { name, .. } if name == "CONFIG_BPF_SYSCALL"),
        "{err}"
    );
    // A strong typeless ksym kallsyms lacks.
    let mut no_syms = facts(Some(CONFIG));
    no_syms.kallsyms.clear();
    let err = resolve(&obj, &kernel(1), &no_syms).unwrap_err();
    assert!(
        matches!(&err, ExternError::NotFound { name, .. } if name == "bpf_link_fops"),
        "{err}"
    );
}

#[test]
fn kernel_version_codes() {
    for (release, code) in [
        ("6.1.0-18-amd64", Some(0x060100)),
        ("6.12.57+deb13-amd64", Some(0x060c39)),
        ("5.10.300", Some(0x050aff)),
        ("7.2", None),
        ("x", None),
    ] {
        assert_eq!(kernel_version_code(release), code, "{release}");
    }
}

#[test]
fn config_numbers_parse_like_strtoull() {
    for (text, value) in [
        ("250", Some(250)),
        ("0x1f", Some(31)),
        ("017", Some(15)),
        ("0", Some(0)),
        ("-1", Some(u64::MAX)),
        ("12abc", None),
        ("", None),
    ] {
        assert_eq!(parse_config_number(text), value, "{text:?}");
    }
}

#[test]
fn kallsyms_lines_are_scanned_for_wanted_names_only() {
    let text = "ffffffff81000000 T _text\n\
                ffffffff82000010 d bpf_link_fops.llvm.123\n\
                ffffffff82000020 D other\n\
                ffffffffc0000000 t bpf_link_fops [some_module]\n";
    let found = scan_kallsyms(text.lines(), &["bpf_link_fops"]);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found["bpf_link_fops"],
        vec![0xffff_ffff_8200_0010, 0xffff_ffff_c000_0000]
    );
    assert!(scan_kallsyms(text.lines(), &[]).is_empty());
}
