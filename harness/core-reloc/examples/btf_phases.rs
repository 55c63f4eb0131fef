//! Times the phases of parsing a BTF blob: `btf_phases [path]`.
use core_reloc::{Btf, Kind};
use std::time::Instant;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/sys/kernel/btf/vmlinux".into());
    for _ in 0..7 {
        let raw = std::fs::read(&path).unwrap();
        let t = Instant::now();
        let copy = Btf::parse(&raw).unwrap();
        let copied = t.elapsed();
        drop(copy);
        // One lookup, no index (the first lookup scans the named types).
        let raw = std::fs::read(&path).unwrap();
        let t = Instant::now();
        let one = Btf::parse_owned(raw).unwrap();
        let ids = one.ids_by_essential_name(Some(&[Kind::Struct]), "task_struct");
        let one_shot = t.elapsed();
        assert_eq!(ids.len(), 1);
        drop(one);
        let t = Instant::now();
        let raw = std::fs::read(&path).unwrap();
        let read = t.elapsed();
        let btf = Btf::parse_owned(raw).unwrap();
        let parsed = t.elapsed();
        btf.build_name_index();
        let indexed = t.elapsed();
        let ids = btf.ids_by_essential_name(Some(&[Kind::Struct]), "task_struct");
        let looked = t.elapsed();
        println!(
            "parse (copying) {copied:?} | parse_owned+1st lookup {one_shot:?} | read {read:?}, parse_owned {:?}, index {:?}, lookup {:?}: total {looked:?} ({ids:?})",
            parsed - read,
            indexed - parsed,
            looked - indexed
        );
    }
}
