//! Runs the engine over a directory of precompiled objects, as a user would hand them over:
//! every `*.o` is parsed and every program relocated against one target BTF (default the
//! host's). Prints one tab-separated line per program (or per object that does not parse):
//!
//! `object  program  section  status  error`
//!
//! with status `relocated`, `refused` (relocation failed) or `unparsed`, then a summary.
//! `corpus_reloc DIR [TARGET_BTF]`; scripts/libbpf-reference.sh prints libbpf's side.
use core_reloc::{relocate_program, Btf, Object};
use std::path::{Path, PathBuf};

/// Objects larger than this are not BPF programs anyone ships; refuse before reading.
const MAX_OBJECT_BYTES: u64 = 64 << 20;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: corpus_reloc DIR [TARGET_BTF]");
        std::process::exit(2);
    };
    let btf_path = args
        .next()
        .unwrap_or_else(|| "/sys/kernel/btf/vmlinux".into());
    if let Err(e) = run(Path::new(&dir), Path::new(&btf_path)) {
        eprintln!("corpus_reloc: {e}");
        std::process::exit(1);
    }
}

fn run(dir: &Path, btf_path: &Path) -> Result<(), String> {
    let raw = std::fs::read(btf_path).map_err(|e| format!("{}: {e}", btf_path.display()))?;
    let target = Btf::parse(&raw).map_err(|e| format!("{}: {e}", btf_path.display()))?;
    let objects = object_files(dir)?;
    if objects.is_empty() {
        return Err(format!("no *.o files in {}", dir.display()));
    }
    let (mut parsed, mut programs, mut relocated) = (0usize, 0usize, 0usize);
    for path in &objects {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let obj = match read_object(path) {
            Ok(obj) => obj,
            Err(e) => {
                println!("{name}\t-\t-\tunparsed\t{}", one_line(&e));
                continue;
            }
        };
        parsed += 1;
        if obj.programs().is_empty() {
            println!("{name}\t-\t-\tno-programs\t");
        }
        for p in obj.programs() {
            programs += 1;
            match relocate_program(&obj, &p.name, &target) {
                Ok(_) => {
                    relocated += 1;
                    println!("{name}\t{}\t{}\trelocated\t", p.name, p.section);
                }
                Err(e) => println!(
                    "{name}\t{}\t{}\trefused\t{}",
                    p.name,
                    p.section,
                    one_line(&e.to_string())
                ),
            }
        }
    }
    println!(
        "# {} objects, {parsed} parsed; {programs} programs, {relocated} relocated against {}",
        objects.len(),
        btf_path.display()
    );
    Ok(())
}

fn object_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_some_and(|x| x == "o") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_object(path: &Path) -> Result<Object, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_OBJECT_BYTES {
        return Err(format!("{len} bytes, more than {MAX_OBJECT_BYTES}"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    Object::parse(&bytes).map_err(|e| e.to_string())
}

/// Errors may quote multi-line verifier or parser text; the table wants one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
