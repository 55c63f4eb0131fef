//! The program corpus and its fixtures agree: every fixture file parses, names
//! an object that builds, and every case names a program (a function in a
//! program section) of that object.
//!
//! With `FIXTURES_DUMP=<file>` the resolved cases (hex bytes) are also written
//! as JSON, for checking the corpus by hand on a host kernel.

mod support;

use harness::{corpus, fixtures};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use std::collections::BTreeMap;
use std::path::Path;

use support::*;

#[test]
fn fixtures_match_built_objects() {
    let programs = project_programs();
    let files = fixtures::load_dir(&programs).unwrap_or_else(|e| panic!("{e}"));
    assert!(!files.is_empty());
    host_tools::ensure_bpf_toolchain_for_tests();
    let out = tempfile::tempdir().unwrap();
    let built = corpus::build::build_all(&Default::default(), &programs, out.path()).unwrap();
    let mut dump = Vec::new();
    for f in &files {
        let obj = built
            .iter()
            .find(|b| b.name == f.object)
            .unwrap_or_else(|| panic!("{}: no object {}", f.path.display(), f.object));
        let bytes = obj.bytes.clone();
        let elf = object::File::parse(&*bytes).unwrap();
        // program name -> section name
        let mut progs = BTreeMap::new();
        for sym in elf.symbols() {
            if sym.kind() != SymbolKind::Text {
                continue;
            }
            if let Some(idx) = sym.section_index() {
                let sec = elf.section_by_index(idx).unwrap();
                let sname = sec.name().unwrap_or_default();
                if sname != ".text" {
                    progs.insert(sym.name().unwrap().to_string(), sname.to_string());
                }
            }
        }
        // Every variant names globals the object has, at their sizes.
        for v in &f.variants {
            let overrides = fixtures::variants::resolve(&bytes, v)
                .unwrap_or_else(|e| panic!("{}: {e}", f.path.display()));
            assert_eq!(overrides.len(), v.set.len());
        }
        if f.object == "udp_port_filter" {
            let v = &f.variants[0];
            let o = fixtures::variants::resolve(&bytes, v).unwrap();
            assert_eq!(
                (o[0].section.as_str(), o[0].bytes.as_slice()),
                (".rodata", &[0xe9, 0x14][..])
            );
            let mut wrong = v.clone();
            wrong.set[0].1 = vec![0; 4];
            let e = fixtures::variants::resolve(&bytes, &wrong).unwrap_err();
            assert!(
                e.contains("`udp_port` is 2 bytes, the variant gives 4"),
                "{e}"
            );
            wrong.set[0] = ("no_such_knob".into(), vec![0; 2]);
            let e = fixtures::variants::resolve(&bytes, &wrong).unwrap_err();
            assert!(e.contains("no global variable `no_such_knob`"), "{e}");
        }
        for c in &f.cases {
            let section = progs.get(&c.program).unwrap_or_else(|| {
                panic!(
                    "{}: case `{}`: object {} has no program `{}` (has {:?})",
                    f.path.display(),
                    c.name,
                    f.object,
                    c.program,
                    progs.keys().collect::<Vec<_>>()
                )
            });
            dump.push(serde_json::json!({
                "object": f.object,
                "object_path": obj.path.display().to_string(),
                "section": section,
                "name": c.name,
                "program": c.program,
                "data_in": hex::encode(&c.data_in),
                "ctx_in": c.ctx_in.as_ref().map(hex::encode),
                "repeat": c.repeat,
                "retval": c.expect.retval,
                "data_out": c.expect.data_out.as_ref().map(hex::encode),
                "maps": c.expect.maps.iter().map(|m| serde_json::json!({
                    "map": m.map, "key": hex::encode(&m.key), "value": hex::encode(&m.value)
                })).collect::<Vec<_>>(),
                "maps_exact": c.expect.maps_exact,
            }));
        }
    }
    if let Some(p) = std::env::var_os("FIXTURES_DUMP") {
        // keep the objects next to the dump
        let keep = Path::new(&p).with_extension("objects");
        std::fs::create_dir_all(&keep).unwrap();
        for d in dump.iter_mut() {
            let src = d["object_path"].as_str().unwrap().to_string();
            let dst = keep.join(Path::new(&src).file_name().unwrap());
            std::fs::copy(&src, &dst).unwrap();
            d["object_path"] = serde_json::Value::String(dst.display().to_string());
        }
        std::fs::write(&p, serde_json::to_vec_pretty(&dump).unwrap()).unwrap();
    }
}
