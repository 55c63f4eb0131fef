//! Times parsing and indexing a BTF blob: `parse_btf [path] [type name]`.
use core_reloc::{Btf, Kind};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "/sys/kernel/btf/vmlinux".into());
    let name = args.next().unwrap_or_else(|| "task_struct".into());
    let raw = match std::fs::read(&path) {
        Ok(raw) => raw,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(1);
        }
    };
    let start = Instant::now();
    let btf = match Btf::parse(&raw) {
        Ok(btf) => btf,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let parsed = start.elapsed();
    let ids = btf.ids_by_essential_name(Some(&[Kind::Struct]), &name);
    let indexed = start.elapsed();
    // Warm runs: what a second parse costs once allocator and caches are primed.
    let warm = Instant::now();
    for _ in 0..10 {
        let b = Btf::parse(&raw).map(|b| {
            b.build_name_index();
            b.type_count()
        });
        std::hint::black_box(b.ok());
    }
    println!("warm parse+index: {:?} per run", warm.elapsed() / 10);
    println!(
        "{path}: {} bytes, {} types; parse {:?}, parse+index+lookup {:?}; struct {name}: {ids:?}",
        raw.len(),
        btf.type_count(),
        parsed,
        indexed
    );
}
