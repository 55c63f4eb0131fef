//! Prints an object's programs and maps, and relocates every program
//! against a target BTF: `inspect file.bpf.o [btf path]`.
use core_reloc::{relocate_program, Btf, Object};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: inspect OBJECT [TARGET_BTF]");
        std::process::exit(2);
    };
    let btf_path = args
        .next()
        .unwrap_or_else(|| "/sys/kernel/btf/vmlinux".into());
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let obj = Object::parse(&std::fs::read(&path)?)?;
        let raw = std::fs::read(&btf_path)?;
        // Accept either a raw BTF blob or an ELF (vmlinux) carrying .BTF.
        let target = if raw.starts_with(b"\x7fELF") {
            use object::{Object as _, ObjectSection};
            let file = object::File::parse(&*raw)?;
            let section = file.section_by_name(".BTF").ok_or("no .BTF section")?;
            Btf::parse(section.data()?)?
        } else {
            Btf::parse(&raw)?
        };
        println!(
            "license {:?}, version {}",
            obj.license(),
            obj.kernel_version()
        );
        for (i, m) in obj.maps().iter().enumerate() {
            println!(
                "map #{i} {:?} ({}) {:?} type {} key {} value {} max {} flags {:#x}",
                m.name,
                m.kernel_name(),
                m.kind,
                m.map_type,
                m.key_size,
                m.value_size,
                m.max_entries,
                m.map_flags
            );
        }
        for p in obj.programs() {
            println!(
                "program {} in {:?}: type {} attach {:?} to {:?}",
                p.name, p.section, p.program_type, p.expected_attach_type, p.attach_to
            );
            match relocate_program(&obj, &p.name, &target) {
                Ok(r) => {
                    println!(
                        "  {} insns, {} map refs, {} func_info bytes, {} line_info bytes",
                        r.insn_count(),
                        r.map_refs.len(),
                        r.func_info.len(),
                        r.line_info.len()
                    );
                    for m in &r.map_refs {
                        println!("  map ref {m:?}");
                    }
                    for d in &r.core {
                        println!(
                            "  #{} {} {} ({}) -> {:?}",
                            d.insn_index, d.kind, d.access, d.raw_access, d.outcome
                        );
                    }
                }
                Err(e) => println!("  error: {e}"),
            }
        }
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("{path}: {e}");
        std::process::exit(1);
    }
}
