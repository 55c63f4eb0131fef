//! Engine vs libbpf, same run: parse + index a kernel BTF, then relocate a
//! corpus of objects against it. Time (median of N) and peak memory.
//!
//!   bench_engine [--iters N] [--btf PATH] OBJECT...
//!
//! Each engine runs in its own child process (this binary, `--mode ours` /
//! `--mode libbpf`) so that peak RSS (VmHWM) is attributable. libbpf's
//! corpus step is `bpf_object__open_file` with `btf_custom_path` +
//! `bpf_object__prepare` (which also creates maps and loads BTF: root only);
//! it is skipped with a note when that fails.
use core_reloc::{relocate_program, Btf, Kind, Object};
use std::ffi::CString;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

struct Args {
    iters: usize,
    btf: String,
    objects: Vec<String>,
    mode: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        iters: 21,
        btf: "/sys/kernel/btf/vmlinux".into(),
        objects: Vec::new(),
        mode: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--iters" => a.iters = it.next().and_then(|v| v.parse().ok()).unwrap_or(21),
            "--btf" => a.btf = it.next().unwrap_or_default(),
            "--mode" => a.mode = it.next(),
            _ => a.objects.push(arg),
        }
    }
    a
}

/// Runs in a child: prints "parse_index_us corpus_us relocations hwm_kib".
fn run_ours(a: &Args) {
    let base = vm_hwm_kib();
    let mut parse = Vec::new();
    let mut corpus = Vec::new();
    let mut relocations = 0;
    let mut hwm = None;
    let objects: Vec<Vec<u8>> = a
        .objects
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    for _ in 0..a.iters {
        let t = Instant::now();
        {
            let btf = Btf::parse_owned(std::fs::read(&a.btf).unwrap()).unwrap();
            let ids = btf.ids_by_essential_name(Some(&[Kind::Struct]), "task_struct");
            assert_eq!(ids.len(), 1);
        }
        parse.push(t.elapsed());

        let t = Instant::now();
        let btf = Btf::parse_owned(std::fs::read(&a.btf).unwrap()).unwrap();
        relocations = 0;
        for o in &objects {
            let obj = Object::parse(o).unwrap();
            for p in obj.programs() {
                if let Ok(r) = relocate_program(&obj, &p.name, &btf) {
                    relocations += r.core.len();
                }
            }
        }
        corpus.push(t.elapsed());
        drop(btf);
        // Peak of one cold run; later runs reuse freed memory unevenly.
        hwm.get_or_insert_with(|| vm_hwm_kib().saturating_sub(base));
    }
    println!(
        "{} {} {} {}",
        median(parse).as_micros(),
        median(corpus).as_micros(),
        relocations,
        hwm.unwrap_or(0)
    );
}

fn run_libbpf(a: &Args) {
    unsafe extern "C" fn quiet(
        _: libbpf_sys::libbpf_print_level,
        _: *const std::ffi::c_char,
        _: *mut libbpf_sys::__va_list_tag,
    ) -> std::ffi::c_int {
        0
    }
    // SAFETY: installs a C callback that prints nothing.
    unsafe { libbpf_sys::libbpf_set_print(Some(quiet)) };
    let base = vm_hwm_kib();
    let path = CString::new(a.btf.clone()).unwrap();
    let name = CString::new("task_struct").unwrap();
    let mut parse = Vec::new();
    let mut corpus = Vec::new();
    let mut prepared = true;
    let mut hwm = None;
    for _ in 0..a.iters {
        let t = Instant::now();
        // SAFETY: plain libbpf API use (btf__parse reads the file, as we do).
        unsafe {
            let btf = libbpf_sys::btf__parse(path.as_ptr(), std::ptr::null_mut());
            assert!(!btf.is_null());
            let id =
                libbpf_sys::btf__find_by_name_kind(btf, name.as_ptr(), libbpf_sys::BTF_KIND_STRUCT);
            assert!(id > 0);
            parse.push(t.elapsed());
            libbpf_sys::btf__free(btf);
        }

        let t = Instant::now();
        for o in &a.objects {
            let obj_path = CString::new(o.clone()).unwrap();
            let opts = libbpf_sys::bpf_object_open_opts {
                sz: std::mem::size_of::<libbpf_sys::bpf_object_open_opts>() as _,
                btf_custom_path: path.as_ptr(),
                ..Default::default()
            };
            // SAFETY: plain libbpf API use.
            unsafe {
                let obj = libbpf_sys::bpf_object__open_file(obj_path.as_ptr(), &opts);
                assert!(!obj.is_null(), "libbpf cannot open {o}");
                if libbpf_sys::bpf_object__prepare(obj) != 0 {
                    prepared = false;
                }
                libbpf_sys::bpf_object__close(obj);
            }
        }
        corpus.push(t.elapsed());
        hwm.get_or_insert_with(|| vm_hwm_kib().saturating_sub(base));
    }
    let corpus_us = if prepared {
        median(corpus).as_micros().to_string()
    } else {
        "-".into()
    };
    println!(
        "{} {} - {}",
        median(parse).as_micros(),
        corpus_us,
        hwm.unwrap_or(0)
    );
}

fn main() {
    let a = args();
    match a.mode.as_deref() {
        Some("ours") => return run_ours(&a),
        Some("libbpf") => return run_libbpf(&a),
        _ => {}
    }
    let me = std::env::current_exe().unwrap();
    let child = |mode: &str| -> Vec<String> {
        let out = std::process::Command::new(&me)
            .args([
                "--mode",
                mode,
                "--iters",
                &a.iters.to_string(),
                "--btf",
                &a.btf,
            ])
            .args(&a.objects)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let ours = child("ours");
    let libbpf = child("libbpf");
    let size = std::fs::metadata(&a.btf).map(|m| m.len()).unwrap_or(0);
    println!(
        "target BTF {} ({:.1} MB), {} objects, median of {} runs",
        a.btf,
        size as f64 / 1e6,
        a.objects.len(),
        a.iters
    );
    println!(
        "{:<8} {:>22} {:>26} {:>12} {:>24}",
        "engine",
        "read+parse+lookup us",
        "corpus (parse+reloc) us",
        "relocations",
        "peak RSS +KiB (1st run)"
    );
    for (label, v) in [("ours", &ours), ("libbpf", &libbpf)] {
        println!(
            "{:<8} {:>22} {:>26} {:>12} {:>24}",
            label, v[0], v[1], v[2], v[3]
        );
    }
    if libbpf[1] == "-" {
        println!("note: libbpf could not prepare the corpus here (bpf_object__prepare needs root)");
    }
}
