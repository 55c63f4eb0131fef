//! Table-style tests over hand-built BTF: the text each rule produces, and (with clang-19, in
//! the separate `headers_compile_with_the_same_layout`) that the header compiles and lays every
//! named struct out as the BTF says.

use super::*;
use crate::btf::{BtfBuilder, INT_BOOL};

fn render(b: &BtfBuilder) -> String {
    render_c_header(&b.build().unwrap()).unwrap()
}

fn render_err(b: &BtfBuilder) -> CHeaderError {
    render_c_header(&b.build().unwrap()).unwrap_err()
}

/// The header without prelude and epilogue.
fn body(b: &BtfBuilder) -> String {
    let text = render(b);
    let start = text.find(PRELUDE).unwrap() + PRELUDE.len();
    let end = text.find("\n/* BPF kfuncs */").unwrap();
    text[start..end].to_string()
}

fn assert_contains(text: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(text.contains(w), "missing {w:?} in:\n{text}");
    }
}

/// Position of `needle` in `text`, for order checks.
fn at(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("missing {needle:?} in:\n{text}"))
}

// ------------------------------------------------------------------ compile round trip

thread_local! {
    /// Set by [`headers_compile_with_the_same_layout`], which reruns the shape tests with their
    /// clang-19 half: only then does a shape test compile the header it rendered.
    static WITH_CLANG: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn with_clang() -> bool {
    WITH_CLANG.with(std::cell::Cell::get)
}

/// The clang-19 half of the shape tests, apart so that `cargo test -p core-reloc` needs no
/// compiler: every header they render compiles, and clang's BTF of it has their layout.
/// `.ci/run` runs it (`cargo test -p core-reloc --lib -- --ignored`).
#[test]
#[ignore = "needs clang-19; .ci/run runs it with --ignored"]
fn headers_compile_with_the_same_layout() {
    WITH_CLANG.with(|c| c.set(true));
    let shape_tests: [fn(); 19] = [
        a_type_used_by_value_is_defined_first,
        a_pointer_needs_only_a_forward_declaration,
        a_typedef_of_a_struct_that_points_back_at_the_typedef,
        every_named_type_is_written_once,
        anonymous_structs_and_unions_are_inlined,
        an_unnamed_member_of_a_named_struct_type_is_inlined,
        bitfields_keep_their_widths_and_offsets,
        arrays_multi_dimensional_flexible_and_through_pointers,
        function_pointers_and_prototype_typedefs,
        qualifiers_go_left_of_a_base_type_and_right_of_a_star,
        enums_signed_unsigned_64_bit_and_sized,
        packed_structs_are_marked_and_natural_ones_are_not,
        gaps_and_over_alignment_get_explicit_padding,
        type_tags_become_attributes_and_decl_tags_are_dropped,
        floats_and_ints_spelled_in_c,
        a_struct_and_a_typedef_may_share_a_name,
        keywords_and_invalid_identifiers_are_renamed,
        builtin_va_list_keeps_the_kernels_layout,
        unions_get_their_btf_size,
    ];
    for test in shape_tests {
        test();
    }
}

/// With [`with_clang`]: compiles the header with clang-19 (`-g -target bpf`), one pointer
/// global per named struct and union, and checks clang's BTF gives each the BTF's size, member
/// names, bit offsets and bitfield widths.
fn assert_compiles_with_same_layout(b: &BtfBuilder) {
    if !with_clang() {
        return;
    }
    host_tools::ensure_bpf_toolchain_for_tests();
    let btf = b.build().unwrap();
    let header = render_c_header(&btf).unwrap();
    let dir = tempfile_dir();
    std::fs::write(dir.join("vmlinux.h"), &header).unwrap();
    let mut src = String::from("#include \"vmlinux.h\"\n");
    let mut checked = Vec::new();
    for id in 1..btf.type_count() {
        let t = btf.type_by_id(id).unwrap();
        if t.kind.is_composite() && !t.name.is_empty() {
            let name = c_identifier(t.name);
            let _ = writeln!(src, "{} {name} *__check_{id};", t.kind.c_word());
            checked.push((id, name));
        }
        if let TypeBody::Enum { size, .. } = t.body {
            if !t.name.is_empty() && t.vlen() > 0 {
                let name = c_identifier(t.name);
                let _ = writeln!(
                    src,
                    "_Static_assert(sizeof(enum {name}) == {size}, \"{name}\");"
                );
            }
        }
    }
    std::fs::write(dir.join("check.c"), src).unwrap();
    let out = std::process::Command::new("clang-19")
        .args([
            "-g", "-O0", "-target", "bpf", "-Wall", "-c", "check.c", "-o", "check.o",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("warning"),
        "clang: {stderr}\n{header}"
    );
    let elf = std::fs::read(dir.join("check.o")).unwrap();
    let object = crate::Object::parse(&elf).unwrap();
    let compiled = object.btf().unwrap();
    for (id, name) in checked {
        let kind = btf.kind_of(id).unwrap();
        let ids = compiled.ids_by_name(kind, &name);
        assert_eq!(ids.len(), 1, "{name} in clang's BTF\n{header}");
        same_layout(&btf, id, compiled, ids[0], 0).unwrap_or_else(|e| panic!("{e}\n{header}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "c-header-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn same_layout(a: &Btf, ia: u32, b: &Btf, ib: u32, depth: usize) -> Result<(), String> {
    let (ta, tb) = (a.type_by_id(ia).unwrap(), b.type_by_id(ib).unwrap());
    let (TypeBody::Composite { size: sa, .. }, TypeBody::Composite { size: sb, .. }) =
        (&ta.body, &tb.body)
    else {
        return Err(format!("{} is no struct in C", ta.c_name()));
    };
    if sa != sb {
        return Err(format!("{}: size {sa} in BTF, {sb} in C", ta.c_name()));
    }
    if ta.members().len() != tb.members().len() {
        return Err(format!("{}: member count differs", ta.c_name()));
    }
    for (x, y) in ta.members().iter().zip(tb.members()) {
        if c_identifier(x.name) != y.name
            || x.bit_offset != y.bit_offset
            || x.bitfield_size != y.bitfield_size
        {
            return Err(format!("{}: member {x:?} is {y:?} in C", ta.c_name()));
        }
        if x.name.is_empty() && depth < 16 {
            let xa = a.skip_mods_and_typedefs(x.ty).unwrap();
            let yb = b.skip_mods_and_typedefs(y.ty).unwrap();
            same_layout(a, xa, b, yb, depth + 1)?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ frame

#[test]
fn guard_pragma_and_kfunc_section_frame_the_types() {
    let mut b = BtfBuilder::new();
    b.int("int", 4, true);
    let text = render(&b);
    assert!(text.starts_with("#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n\n"));
    assert_contains(
        &text,
        &[
            "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute push \
             (__attribute__((preserve_access_index)), apply_to = record)\n#endif\n",
            "#ifndef BPF_NO_KFUNC_PROTOTYPES\n#endif\n",
        ],
    );
    assert!(text.ends_with(
        "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n\n\
         #endif /* __VMLINUX_H__ */\n"
    ));
}

// ------------------------------------------------------------------ order

#[test]
fn a_type_used_by_value_is_defined_first() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    // outer (id 2) embeds inner (id 3), defined later in id order.
    b.struct_("outer", 8, &[("in", 3, 0, 0), ("y", int, 32, 0)]);
    b.struct_("inner", 4, &[("x", int, 0, 0)]);
    let text = body(&b);
    assert!(at(&text, "struct inner {") < at(&text, "struct outer {"));
    assert_eq!(text.matches("struct inner {").count(), 1);
    assert_compiles_with_same_layout(&b);
}

#[test]
fn a_pointer_needs_only_a_forward_declaration() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    // a { struct b *p; }  b { struct a x; }: a first (b needs it whole), b declared before.
    let pb = b.ptr(4);
    b.struct_("a", 8, &[("p", pb, 0, 0)]);
    b.struct_("b", 16, &[("x", 3, 0, 0), ("n", int, 64, 0)]);
    let text = body(&b);
    assert!(at(&text, "struct b;\n\nstruct a {") < at(&text, "struct b {"));
    assert_contains(&text, &["\tstruct b *p;", "\tstruct a x;"]);
    assert_compiles_with_same_layout(&b);
}

#[test]
fn a_self_referencing_struct_needs_no_forward_declaration() {
    let mut b = BtfBuilder::new();
    let p = b.ptr(2);
    b.struct_("list_head", 16, &[("next", p, 0, 0), ("prev", p, 64, 0)]);
    let text = body(&b);
    assert_eq!(
        text,
        "struct list_head {\n\tstruct list_head *next;\n\tstruct list_head *prev;\n};\n\n"
    );
}

#[test]
fn a_typedef_of_a_struct_that_points_back_at_the_typedef() {
    // typedef struct transaction_s transaction_t; struct transaction_s { transaction_t *next; }
    let mut b = BtfBuilder::new();
    let td = b.typedef("transaction_t", 3);
    let p = b.ptr(td);
    b.struct_("transaction_s", 8, &[("next", p, 0, 0)]);
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "typedef struct transaction_s transaction_t;",
            "\ttransaction_t *next;",
        ],
    );
    assert_compiles_with_same_layout(&b);
}

#[test]
fn every_named_type_is_written_once() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let s = b.struct_("s", 4, &[("x", int, 0, 0)]);
    let p = b.ptr(s);
    let td = b.typedef("s_t", s);
    b.struct_("user1", 16, &[("a", s, 0, 0), ("b", p, 64, 0)]);
    b.struct_("user2", 8, &[("a", td, 0, 0), ("b", td, 32, 0)]);
    let text = body(&b);
    assert_eq!(text.matches("struct s {").count(), 1);
    assert_eq!(text.matches("typedef struct s s_t;").count(), 1);
    assert_compiles_with_same_layout(&b);
}

// ------------------------------------------------------------------ shapes

#[test]
fn anonymous_structs_and_unions_are_inlined() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let ch = b.int("char", 1, true);
    let u = b.union_("", 4, &[("a", int, 0, 0), ("b", ch, 0, 0)]);
    let s = b.struct_("", 4, &[("x", int, 0, 0)]);
    b.struct_("outer", 8, &[("", u, 0, 0), ("named", s, 32, 0)]);
    let text = body(&b);
    assert_eq!(
        text,
        "struct outer {\n\tunion {\n\t\tint a;\n\t\tchar b;\n\t};\n\tstruct {\n\t\tint x;\n\t} \
         named;\n};\n\n"
    );
    assert_compiles_with_same_layout(&b);
}

#[test]
fn an_unnamed_member_of_a_named_struct_type_is_inlined() {
    // `-fms-extensions` C: union { struct ns_tree; struct rcu rcu; }
    let mut b = BtfBuilder::new();
    let long = b.int("long", 8, true);
    let tree = b.struct_("ns_tree", 16, &[("id", long, 0, 0), ("ref", long, 64, 0)]);
    let rcu = b.struct_("rcu", 8, &[("f", long, 0, 0)]);
    let u = b.union_("", 16, &[("", tree, 0, 0), ("rcu", rcu, 0, 0)]);
    b.struct_("ns_common", 24, &[("inum", long, 0, 0), ("", u, 64, 0)]);
    let text = body(&b);
    assert_contains(
        &text,
        &["\tunion {\n\t\tstruct {\n\t\t\tlong id;\n\t\t\tlong ref;\n\t\t};\n\t\tstruct rcu rcu;"],
    );
    assert!(!text.contains("struct ns_tree;"));
    assert_compiles_with_same_layout(&b);
}

#[test]
fn bitfields_keep_their_widths_and_offsets() {
    let mut b = BtfBuilder::new();
    let uint = b.int("unsigned int", 4, false);
    let uchar = b.int("unsigned char", 1, false);
    b.struct_(
        "flags",
        12,
        &[
            ("a", uint, 0, 3),
            ("b", uint, 3, 5),
            // A gap inside the same unit, then a unit boundary the compiler would not choose.
            ("c", uint, 12, 4),
            ("d", uchar, 32, 2),
            ("e", uint, 64, 1),
        ],
    );
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "\tunsigned int a: 3;",
            "\tunsigned int b: 5;",
            "\tunsigned int c: 4;",
        ],
    );
    assert_compiles_with_same_layout(&b);
}

#[test]
fn arrays_multi_dimensional_flexible_and_through_pointers() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let ch = b.int("char", 1, true);
    let row = b.array(int, int, 3);
    let matrix = b.array(row, int, 2);
    let flex = b.array(ch, int, 0);
    let pint = b.ptr(int);
    let ptrs = b.array(pint, int, 4);
    let prow = b.ptr(row);
    b.struct_(
        "arrays",
        64,
        &[
            ("m", matrix, 0, 0),
            ("ptrs", ptrs, 192, 0),
            ("prow", prow, 448, 0),
            ("data", flex, 512, 0),
        ],
    );
    b.typedef("row_t", row);
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "\tint m[2][3];",
            "\tint *ptrs[4];",
            "\tint (*prow)[3];",
            "\tchar data[0];",
            "typedef int row_t[3];",
        ],
    );
    assert_compiles_with_same_layout(&b);
}

#[test]
fn function_pointers_and_prototype_typedefs() {
    let mut b = BtfBuilder::new();
    b.int("int", 4, true); // 1
    b.int("long", 8, true); // 2
    b.ptr(0); // 3: void *
    b.func_proto(1, &[("", 3), ("", 2)]); // 4: int (void *, long)
    b.ptr(4); // 5
    b.typedef("handler_t", 5); // 6
    b.func_proto(0, &[("fmt", 3), ("", 0)]); // 7: void (void *fmt, ...)
    b.typedef("log_fn", 7); // 8
    b.struct_("ctx", 16, &[("cb", 11, 0, 0), ("ret_fn", 13, 64, 0)]); // 9
    b.ptr(9); // 10
    b.ptr(12); // 11
    b.func_proto(0, &[("c", 10)]); // 12: void (struct ctx *c)
    b.ptr(14); // 13
    b.func_proto(5, &[]); // 14: returns int (*)(void *, long)
    b.typedef("ret_fn_t", 13); // 15
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "typedef int (*handler_t)(void *, long);",
            "typedef void log_fn(void *fmt, ...);",
            "\tvoid (*cb)(struct ctx *c);",
            "\tint (*(*ret_fn)(void))(void *, long);",
            "typedef int (*(*ret_fn_t)(void))(void *, long);",
        ],
    );
    assert_compiles_with_same_layout(&b);
}

#[test]
fn qualifiers_go_left_of_a_base_type_and_right_of_a_star() {
    let mut b = BtfBuilder::new();
    let ch = b.int("char", 1, true);
    let cch = b.modifier(Kind::Const, ch);
    let pcch = b.ptr(cch); // const char *
    let cp = b.modifier(Kind::Const, pcch); // const char * const
    let int = b.int("int", 4, true);
    let vint = b.modifier(Kind::Volatile, int);
    let pint = b.ptr(int);
    let rp = b.modifier(Kind::Restrict, pint);
    b.struct_(
        "quals",
        32,
        &[
            ("s", pcch, 0, 0),
            ("cs", cp, 64, 0),
            ("v", vint, 128, 0),
            ("r", rp, 192, 0),
        ],
    );
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "\tconst char *s;",
            "\tconst char * const cs;",
            "\tvolatile int v;",
            "\tint * restrict r;",
        ],
    );
    assert_compiles_with_same_layout(&b);
}

#[test]
fn enums_signed_unsigned_64_bit_and_sized() {
    let mut b = BtfBuilder::new();
    b.enum32("sign", 4, true, &[("NEG", -5), ("POS", 7)]);
    b.enum32("big", 4, false, &[("ALL", 0xffff_ffff)]);
    b.enum64("wide", 8, false, &[("W", 1 << 40), ("MAX", u64::MAX)]);
    b.enum64(
        "swide",
        8,
        true,
        &[("S", i64::MIN as u64), ("T", -1i64 as u64)],
    );
    b.enum64("small64", 8, false, &[("ONE", 1)]);
    b.enum32("byte", 1, false, &[("B", 1)]);
    b.enum32("word", 8, false, &[("WW", 2)]);
    b.enum32("", 4, false, &[("TOP_LEVEL_CONST", 3)]);
    let int = b.int("int", 4, true);
    let anon = b.enum32("", 4, false, &[("INLINE", 1)]);
    b.struct_(
        "holder",
        16,
        &[("e", anon, 0, 0), ("x", int, 32, 0), ("b", 6, 64, 0)],
    );
    b.enum32("fwd_enum", 4, false, &[]);
    b.enum32("half", 2, false, &[("H", 1)]);
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "enum sign {\n\tNEG = -5,\n\tPOS = 7,\n};",
            "enum big {\n\tALL = 4294967295,\n};",
            "enum wide {\n\tW = 1099511627776ULL,\n\tMAX = 18446744073709551615ULL,\n};",
            "enum swide {\n\tS = (-9223372036854775807LL - 1),\n\tT = -1LL,\n};",
            "enum small64 {\n\tONE = 1ULL,\n} __attribute__((mode(word)));",
            "enum byte {\n\tB = 1,\n} __attribute__((mode(byte)));",
            "enum word {\n\tWW = 2,\n} __attribute__((mode(word)));",
            "enum {\n\tTOP_LEVEL_CONST = 3,\n};",
            "\tenum {\n\t\tINLINE = 1,\n\t} e;",
            "enum fwd_enum;",
            "enum half {\n\tH = 1,\n} __attribute__((mode(HI)));",
        ],
    );
    // swide holds -1 too: without mode(word) the compiler would make it 8 bytes anyway.
    assert!(!text.contains("T = -1LL,\n} __attribute__"));
    assert_compiles_with_same_layout(&b);
}

#[test]
fn packed_structs_are_marked_and_natural_ones_are_not() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let ch = b.int("char", 1, true);
    b.struct_("misplaced", 5, &[("c", ch, 0, 0), ("i", int, 8, 0)]);
    b.struct_("odd_size", 5, &[("i", int, 0, 0), ("c", ch, 32, 0)]);
    b.struct_("natural", 8, &[("c", ch, 0, 0), ("i", int, 32, 0)]);
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "struct misplaced {\n\tchar c;\n\tint i;\n} __attribute__((packed));",
            "struct odd_size {\n\tint i;\n\tchar c;\n} __attribute__((packed));",
            "struct natural {\n\tchar c;\n\tint i;\n};",
        ],
    );
    assert_compiles_with_same_layout(&b);
}

#[test]
fn gaps_and_over_alignment_get_explicit_padding() {
    let mut b = BtfBuilder::new();
    let long = b.int("long", 8, true);
    let ch = b.int("char", 1, true);
    // A long at byte 16 after a char (natural: byte 8), and a tail up to 64 bytes (aligned(64)).
    b.struct_("gappy", 64, &[("c", ch, 0, 0), ("l", long, 128, 0)]);
    // A char at byte 3 after a char at 0: compiler would put it at byte 1.
    b.struct_("chars", 4, &[("a", ch, 0, 0), ("b", ch, 24, 0)]);
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "struct gappy {\n\tchar c;\n\tlong: 64;\n\tlong l;\n\tlong: 64;",
            // `short: 0` aligns to byte 2, `char: 8` takes byte 2: b lands on byte 3.
            "struct chars {\n\tchar a;\n\tshort: 0;\n\tchar: 8;\n\tchar b;\n};",
        ],
    );
    assert_compiles_with_same_layout(&b);
}

#[test]
fn type_tags_become_attributes_and_decl_tags_are_dropped() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let user = b.type_tag("user", int, false);
    let puser = b.ptr(user);
    let vd = b.type_tag("address_space(1)", 0, true);
    let pvd = b.ptr(vd);
    // An attribute that would break out of its parentheses stays a (quoted) type tag.
    let evil = b.type_tag("x))); int injected; char *((\"", int, true);
    let pevil = b.ptr(evil);
    let s = b.struct_(
        "tagged",
        24,
        &[("u", puser, 0, 0), ("p", pvd, 64, 0), ("e", pevil, 128, 0)],
    );
    b.decl_tag("some_tag", s, 0);
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "\tint __attribute__((btf_type_tag(\"user\"))) *u;",
            "\tvoid __attribute__((address_space(1))) *p;",
            "\tint __attribute__((btf_type_tag(\"x))); int injected; char *((\\\"\"))) *e;",
        ],
    );
    assert!(!text.contains("some_tag"));
    assert_compiles_with_same_layout(&b);
}

#[test]
fn kfuncs_get_extern_prototypes() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let s = b.struct_("task_struct", 4, &[("pid", int, 0, 0)]);
    let ps = b.ptr(s);
    let proto = b.func_proto(ps, &[("pid", int)]);
    let f = b.func("bpf_task_from_pid", proto);
    b.decl_tag("bpf_kfunc", f, -1);
    let g = b.func("not_a_kfunc", proto);
    b.decl_tag("other", g, -1);
    let text = render(&b);
    assert_contains(
        &text,
        &["#ifndef BPF_NO_KFUNC_PROTOTYPES\nextern struct task_struct *bpf_task_from_pid(int pid) \
           __weak __ksym;\n#endif"],
    );
    assert!(!text.contains("not_a_kfunc"));
}

#[test]
fn floats_and_ints_spelled_in_c() {
    let mut b = BtfBuilder::new();
    let d = b.float("double", 8);
    let f = b.float("f32", 4);
    let u8_ = b.int("u8", 1, false);
    let i32_ = b.int("i32", 4, true);
    let boolean = b.raw(
        "bool",
        Kind::Int,
        false,
        0,
        1,
        &[(INT_BOOL as u32) << 24 | 8],
    );
    b.struct_(
        "numbers",
        24,
        &[
            ("d", d, 0, 0),
            ("f", f, 64, 0),
            ("b", u8_, 96, 0),
            ("i", i32_, 128, 0),
            ("t", boolean, 160, 0),
        ],
    );
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "\tdouble d;",
            "\tfloat f;",
            "\tunsigned char b;",
            "\tsigned int i;",
            "\t_Bool t;",
        ],
    );
    assert_compiles_with_same_layout(&b);
}

// ------------------------------------------------------------------ names

#[test]
fn a_struct_and_a_typedef_may_share_a_name() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let s = b.struct_("foo", 4, &[("x", int, 0, 0)]);
    b.typedef("foo", s);
    let text = body(&b);
    assert_contains(&text, &["struct foo {", "typedef struct foo foo;"]);
    assert!(!text.contains("___2"));
    assert_compiles_with_same_layout(&b);
}

#[test]
fn distinct_types_of_one_name_get_flavor_suffixes() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let long = b.int("long", 8, true);
    b.struct_("dup", 4, &[("x", int, 0, 0)]);
    b.struct_("dup", 8, &[("y", long, 0, 0)]);
    b.enum32("dup", 4, false, &[("dup_t", 1)]);
    b.typedef("dup_t", int);
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "struct dup {\n\tint x;\n};",
            "struct dup___2 {\n\tlong y;\n};",
            "enum dup___3 {\n\tdup_t = 1,\n};",
            "typedef int dup_t___2;",
        ],
    );
}

#[test]
fn keywords_and_invalid_identifiers_are_renamed() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    b.struct_(
        "default",
        12,
        &[("int", int, 0, 0), ("a.b", int, 32, 0), ("1st", int, 64, 0)],
    );
    b.enum32("e", 4, false, &[("for", 1)]);
    b.typedef("bool", int);
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "struct default_ {\n\tint int_;\n\tint a_b;\n\tint _1st;\n};",
            "\tfor_ = 1,",
            // C23's bool is the kernel's own typedef: left alone.
            "typedef int bool;",
        ],
    );
    assert_compiles_with_same_layout(&b);
}

#[test]
fn builtin_va_list_keeps_the_kernels_layout() {
    let mut b = BtfBuilder::new();
    let uint = b.int("unsigned int", 4, false);
    let vp = b.ptr(0);
    let tag = b.struct_(
        "__va_list_tag",
        24,
        &[
            ("gp_offset", uint, 0, 0),
            ("fp_offset", uint, 32, 0),
            ("overflow_arg_area", vp, 64, 0),
            ("reg_save_area", vp, 128, 0),
        ],
    );
    let arr = b.array(tag, uint, 1);
    let builtin = b.typedef("__builtin_va_list", arr);
    let va = b.typedef("va_list", builtin);
    b.struct_("warn_args", 32, &[("fmt", vp, 0, 0), ("args", va, 64, 0)]);
    b.typedef("__gnuc_va_list", 0);
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "typedef struct __va_list_tag __builtin_va_list___btf[1];",
            "typedef __builtin_va_list___btf va_list;",
            "typedef __builtin_va_list __gnuc_va_list;",
        ],
    );
    assert_compiles_with_same_layout(&b);
}

// ------------------------------------------------------------------ bounds and errors

#[test]
fn a_long_chain_of_types_by_value_renders_without_recursion() {
    // 20,000 structs each embedding the previous one, in reverse id order: the ordering walks
    // the whole chain from the first id.
    const N: u32 = 20_000;
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    for i in 0..N {
        // struct s_i (id i + 2) embeds s_{i+1}; the last one holds an int.
        let inner = if i + 1 == N { int } else { i + 3 };
        b.struct_(&format!("s_{i}"), 4, &[("x", inner, 0, 0)]);
    }
    let text = body(&b);
    assert!(at(&text, &format!("struct s_{} {{", N - 1)) < at(&text, "struct s_0 {"));
    // And a chain of 5,000 pointers.
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let mut p = int;
    for _ in 0..5_000 {
        p = b.ptr(p);
    }
    b.struct_("deep", 8, &[("p", p, 0, 0)]);
    let text = body(&b);
    assert!(text.contains(&format!("\tint {}p;", "*".repeat(5_000))));
}

#[test]
fn nesting_past_the_limit_is_a_clear_error() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let mut inner = int;
    for _ in 0..(MAX_NESTING + 10) {
        inner = b.struct_("", 4, &[("x", inner, 0, 0)]);
    }
    b.struct_("top", 4, &[("x", inner, 0, 0)]);
    assert!(matches!(render_err(&b), CHeaderError::TooDeep { .. }));
}

#[test]
fn cycles_c_cannot_express_are_errors() {
    // A struct containing itself by value.
    let mut b = BtfBuilder::new();
    b.struct_("me", 4, &[("me", 1, 0, 0)]);
    assert!(matches!(render_err(&b), CHeaderError::Cycle { .. }));
    // A pointer to itself.
    let mut b = BtfBuilder::new();
    b.ptr(1);
    b.typedef("loop_t", 1);
    assert!(matches!(render_err(&b), CHeaderError::Cycle { .. }));
    // Typedefs in a loop.
    let mut b = BtfBuilder::new();
    b.typedef("a", 2);
    b.typedef("b", 1);
    assert!(matches!(render_err(&b), CHeaderError::Cycle { .. }));
    // An anonymous struct reaching itself through a pointer.
    let mut b = BtfBuilder::new();
    let p = b.ptr(2);
    b.struct_("", 8, &[("p", p, 0, 0)]);
    b.typedef("anon_t", 2);
    assert!(matches!(render_err(&b), CHeaderError::Cycle { .. }));
}

#[test]
fn references_past_the_last_type_are_errors() {
    let mut b = BtfBuilder::new();
    b.struct_("s", 4, &[("x", 99, 0, 0)]);
    assert_eq!(
        render_err(&b),
        CHeaderError::BadReference {
            id: 1,
            target: 99,
            last: 1
        }
    );
}

#[test]
fn a_function_as_a_member_type_is_an_error() {
    let mut b = BtfBuilder::new();
    let proto = b.func_proto(0, &[]);
    let f = b.func("f", proto);
    b.struct_("s", 8, &[("x", f, 0, 0)]);
    assert!(matches!(
        render_err(&b),
        CHeaderError::Unexpected {
            kind: Kind::Func,
            ..
        }
    ));
}

#[test]
fn huge_gaps_are_refused_not_padded_forever() {
    let mut b = BtfBuilder::new();
    let ch = b.int("char", 1, true);
    b.struct_("huge", u32::MAX, &[("c", ch, 0, 0)]);
    assert!(matches!(render_err(&b), CHeaderError::GapTooLarge { .. }));
}

#[test]
fn unions_get_their_btf_size() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let ch = b.int("char", 1, true);
    let twelve = b.array(ch, int, 12);
    let ten = b.array(ch, int, 10);
    b.union_("natural", 12, &[("a", int, 0, 0), ("b", twelve, 0, 0)]);
    // __aligned(8) or more in the kernel: the smallest alignment that gives the size.
    b.union_("over_aligned", 16, &[("a", int, 0, 0), ("b", twelve, 0, 0)]);
    // __packed: 10 bytes though an int member would round it to 12.
    b.union_("packed_u", 10, &[("a", int, 0, 0), ("b", ten, 0, 0)]);
    // 20 bytes: no alignment rounds 12 up to 20.
    b.union_("padded", 20, &[("a", int, 0, 0), ("b", twelve, 0, 0)]);
    // 13 bytes: padding and packed.
    b.union_("odd", 13, &[("a", int, 0, 0), ("b", twelve, 0, 0)]);
    let text = body(&b);
    assert_contains(
        &text,
        &[
            "union natural {\n\tint a;\n\tchar b[12];\n};",
            "union over_aligned {\n\tint a;\n\tchar b[12];\n} __attribute__((aligned(8)));",
            "union packed_u {\n\tint a;\n\tchar b[10];\n} __attribute__((packed));",
            "union padded {\n\tint a;\n\tchar b[12];\n\tstruct {\n\t\tlong: 64;\n\t\tlong: 64;\n\t\tint: 32;\n\t};\n};",
        ],
    );
    assert!(text.contains("union odd {") && text.contains("} __attribute__((packed));"));
    // The padding struct is a member in C only: compare sizes, not member lists.
    if !with_clang() {
        return;
    }
    host_tools::ensure_bpf_toolchain_for_tests();
    let dir = tempfile_dir();
    std::fs::write(dir.join("vmlinux.h"), render(&b)).unwrap();
    let asserts: String = [
        ("natural", 12),
        ("over_aligned", 16),
        ("packed_u", 10),
        ("padded", 20),
        ("odd", 13),
    ]
    .iter()
    .map(|(n, s)| format!("_Static_assert(sizeof(union {n}) == {s}, \"{n}\");\n"))
    .collect();
    std::fs::write(
        dir.join("u.c"),
        format!("#include \"vmlinux.h\"\n{asserts}"),
    )
    .unwrap();
    let out = std::process::Command::new("clang-19")
        .args(["-target", "bpf", "-Wall", "-fsyntax-only", "u.c"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mutated_btf_renders_or_fails_but_never_panics() {
    // A BTF with most shapes (pointers, arrays, protos, bitfields, enums, typedefs, tags).
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let ch = b.int("char", 1, true);
    let arr = b.array(ch, int, 8);
    let vp = b.ptr(0);
    let proto = b.func_proto(int, &[("a", vp), ("", 0)]);
    let pproto = b.ptr(proto);
    let cint = b.modifier(Kind::Const, int);
    let tag = b.type_tag("user", cint, false);
    let ptag = b.ptr(tag);
    let e = b.enum32("e", 4, true, &[("A", -1), ("B", 2)]);
    let u = b.union_("", 8, &[("x", int, 0, 0), ("y", vp, 0, 0)]);
    let s = b.struct_(
        "s",
        48,
        &[
            ("bits", int, 0, 3),
            ("arr", arr, 8, 0),
            ("fn", pproto, 128, 0),
            ("t", ptag, 192, 0),
            ("e", e, 256, 0),
            ("", u, 320, 0),
        ],
    );
    let ps = b.ptr(s);
    b.typedef("s_t", ps);
    let f = b.func("kf", proto);
    b.decl_tag("bpf_kfunc", f, -1);
    let blob = b.to_bytes();
    // Mutate only the type section (24-byte header first): kinds, ids, sizes, offsets.
    let types_len = u32::from_le_bytes(blob[12..16].try_into().unwrap()) as usize;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut rendered, mut refused) = (0, 0);
    for _ in 0..3000 {
        let mut m = blob.clone();
        for _ in 0..1 + next() % 3 {
            let at = 24 + (next() as usize % types_len);
            m[at] = next() as u8;
        }
        let Ok(btf) = Btf::parse(&m) else {
            refused += 1;
            continue;
        };
        match render_c_header(&btf) {
            Ok(_) => rendered += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        rendered > 100 && refused > 100,
        "{rendered} rendered, {refused} refused"
    );
}
