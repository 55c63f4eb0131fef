//! Differential test against libbpf itself: every program of a corpus of
//! objects is relocated against a set of target BTFs by this engine and by
//! libbpf (`bpf_object__open_file` with `btf_custom_path`, then
//! `bpf_object__prepare`, then `bpf_program__insns`), and the final
//! instructions must be identical, instruction by instruction (map
//! `ld_imm64`s aside: libbpf has put real map fds there). A relocation that
//! libbpf refuses must be refused by the engine too, and vice versa.
//!
//! Corpus: `tests/fixtures/differential.c` in four layouts (every local
//! layout against every target layout), `tests/fixtures/core_layouts.c`,
//! `tests/fixtures/kernel_core.c` (kernel types, against kernels only) and
//! the product's `programs/*.bpf.c`; targets: the other layouts' BTF, the
//! matrix kernels' BTF from the image cache (`images/kernels/*/vmlinux.btf`,
//! present after a harness run) and the host's `/sys/kernel/btf/vmlinux`.
//! Counts per relocation kind are written to stderr past libtest's capture
//! (so they show in CI logs) and to `$CARGO_TARGET_TMPDIR/libbpf_differential/report.txt`.
//!
//! Deliberate difference, not a disagreement: libbpf relocates every `.text`
//! subprogram of an object whether or not the program being loaded calls
//! it, so a relocation failing in an unused subprogram fails every program;
//! the engine relocates what the program reaches. The corpus keeps its
//! subprograms' relocations infallible so that the comparison is exact.
//! No libbpf bug was found by this corpus (libbpf 1.7.0, vendored).
//!
//! `bpf_object__prepare` creates maps and loads BTF, so libbpf needs
//! CAP_BPF (root). Without it the test says loudly that it compared nothing
//! and fails if `CORE_RELOC_REQUIRE_LIBBPF=1`.

use core_reloc::{
    predict_program, relocate_program, Btf, CoreError, CoreOutcome, Object, RelocKind,
    RelocateError,
};
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

// ---------------------------------------------------------------- libbpf side

static LIBBPF_LOG: Mutex<String> = Mutex::new(String::new());

extern "C" {
    fn vsnprintf(
        buf: *mut c_char,
        size: usize,
        fmt: *const c_char,
        ap: *mut libbpf_sys::__va_list_tag,
    ) -> c_int;
}

unsafe extern "C" fn capture_log(
    _level: libbpf_sys::libbpf_print_level,
    fmt: *const c_char,
    ap: *mut libbpf_sys::__va_list_tag,
) -> c_int {
    let mut buf = [0 as c_char; 1024];
    // SAFETY: libbpf hands us a printf format and its va_list; the buffer is ours.
    let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, ap) };
    // SAFETY: vsnprintf NUL-terminates within the buffer.
    let line = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    if let Ok(mut log) = LIBBPF_LOG.lock() {
        log.push_str(&line);
    }
    n
}

enum LibbpfResult {
    /// The program's final instructions.
    Insns(Vec<u8>),
    /// `bpf_object__prepare` failed; the log says why.
    Failed(String),
}

/// Opens `object` with `target` as custom BTF, autoloads only `program`,
/// prepares the object and returns the program's final instructions.
fn libbpf_relocate(object: &Path, target: &Path, program: &str) -> LibbpfResult {
    LIBBPF_LOG.lock().unwrap().clear();
    let path = CString::new(object.to_str().unwrap()).unwrap();
    let btf = CString::new(target.to_str().unwrap()).unwrap();
    let opts = libbpf_sys::bpf_object_open_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_object_open_opts>() as _,
        btf_custom_path: btf.as_ptr(),
        ..Default::default()
    };
    // SAFETY: plain libbpf C API use; every pointer outlives the calls.
    unsafe {
        let obj = libbpf_sys::bpf_object__open_file(path.as_ptr(), &opts);
        if obj.is_null() || libbpf_sys::libbpf_get_error(obj as *const _) != 0 {
            return LibbpfResult::Failed(format!("open: {}", take_log()));
        }
        let mut wanted = std::ptr::null_mut();
        let mut prog = libbpf_sys::bpf_object__next_program(obj, std::ptr::null_mut());
        while !prog.is_null() {
            let name = CStr::from_ptr(libbpf_sys::bpf_program__name(prog));
            let this = name.to_bytes() == program.as_bytes();
            libbpf_sys::bpf_program__set_autoload(prog, this);
            if this {
                wanted = prog;
            }
            prog = libbpf_sys::bpf_object__next_program(obj, prog);
        }
        assert!(!wanted.is_null(), "libbpf sees no program {program}");
        let err = libbpf_sys::bpf_object__prepare(obj);
        let result = if err != 0 {
            LibbpfResult::Failed(format!("prepare: error {err}: {}", take_log()))
        } else {
            let insns = libbpf_sys::bpf_program__insns(wanted) as *const u8;
            let count = libbpf_sys::bpf_program__insn_cnt(wanted);
            LibbpfResult::Insns(std::slice::from_raw_parts(insns, count as usize * 8).to_vec())
        };
        libbpf_sys::bpf_object__close(obj);
        result
    }
}

fn take_log() -> String {
    std::mem::take(&mut *LIBBPF_LOG.lock().unwrap())
}

/// libbpf refused the object because of a CO-RE relocation (as opposed to,
/// say, a map it could not create).
fn is_core_failure(log: &str) -> bool {
    log.contains("failed to relocate") || log.contains("failed to patch insn")
}

// ---------------------------------------------------------------- corpus

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libbpf_differential");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn clang(src: &Path, includes: &[PathBuf], defines: &[&str], out: &Path) {
    let status = Command::new("clang-19")
        .args([
            "-g",
            "-O2",
            "-target",
            "bpf",
            "-mcpu=v2",
            "-D__TARGET_ARCH_x86",
        ])
        .arg("-fno-ident")
        .args(includes.iter().flat_map(|i| [Path::new("-I"), i.as_path()]))
        .args(defines)
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run clang-19 (needed to build BPF objects): {e}"));
    assert!(status.success(), "clang-19 failed on {}", src.display());
}

/// Writes the raw `.BTF` section of an ELF object to `out`.
fn extract_btf(elf: &[u8], out: &Path) {
    use object::{Object as _, ObjectSection as _};
    let file = object::File::parse(elf).unwrap();
    let section = file.section_by_name(".BTF").expect("object has .BTF");
    std::fs::write(out, section.data().unwrap()).unwrap();
}

struct LocalObject {
    label: String,
    path: PathBuf,
}

struct Target {
    label: String,
    path: PathBuf,
    btf: Btf,
    kernel: bool,
}

fn load_target(label: String, path: PathBuf, kernel: bool) -> Target {
    let raw = std::fs::read(&path).unwrap();
    let btf = Btf::parse(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Target {
        label,
        path,
        btf,
        kernel,
    }
}

/// The kernels' BTF: the image cache (after a harness run) and the host.
fn kernel_targets(notes: &mut Vec<String>) -> Vec<Target> {
    let images = std::env::var_os("HARNESS_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("images"));
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(images.join("kernels")) {
        for e in entries.flatten() {
            let btf = e.path().join("vmlinux.btf");
            if btf.is_file() {
                let release = std::fs::read_to_string(e.path().join("release"))
                    .map(|r| r.trim().to_string())
                    .unwrap_or_else(|_| e.file_name().to_string_lossy().into_owned());
                found.push(load_target(release, btf, true));
            }
        }
    }
    if found.is_empty() {
        notes.push(format!(
            "SKIPPED the matrix kernels as targets: no {}/kernels/*/vmlinux.btf (run the harness once to fill the image cache)",
            images.display()
        ));
    }
    let host = PathBuf::from("/sys/kernel/btf/vmlinux");
    if host.is_file() {
        found.push(load_target("host".into(), host, true));
    } else {
        notes.push("SKIPPED the host kernel as a target: no /sys/kernel/btf/vmlinux".into());
    }
    found.sort_by(|a, b| a.label.cmp(&b.label));
    found
}

// ---------------------------------------------------------------- comparison

#[derive(Default)]
struct Counts {
    /// Per kind: relocations whose instruction matched libbpf's (value, poison).
    values: BTreeMap<&'static str, usize>,
    poisoned: BTreeMap<&'static str, usize>,
    /// Relocations both refused (the load fails).
    failed_both: BTreeMap<String, usize>,
    programs: usize,
    disagreements: Vec<String>,
    /// Why the engine refused, where libbpf refused the same relocation.
    refusals: Vec<String>,
}

impl Counts {
    fn total(&self) -> usize {
        self.values.values().sum::<usize>()
            + self.poisoned.values().sum::<usize>()
            + self.failed_both.values().sum::<usize>()
    }

    fn kinds_covered(&self) -> usize {
        RelocKind::ALL
            .iter()
            .filter(|k| {
                self.values.contains_key(k.as_str())
                    || self.poisoned.contains_key(k.as_str())
                    || self.failed_both.contains_key(k.as_str())
            })
            .count()
    }

    fn report(&self) -> String {
        let mut out = String::new();
        writeln!(
            out,
            "libbpf differential: {} programs, {} relocations compared, {} disagreements",
            self.programs,
            self.total(),
            self.disagreements.len()
        )
        .unwrap();
        writeln!(
            out,
            "  {:<20} {:>8} {:>9} {:>12}",
            "kind", "value", "poisoned", "both refuse"
        )
        .unwrap();
        for k in RelocKind::ALL {
            let n = k.as_str();
            writeln!(
                out,
                "  {:<20} {:>8} {:>9} {:>12}",
                n,
                self.values.get(n).copied().unwrap_or(0),
                self.poisoned.get(n).copied().unwrap_or(0),
                self.failed_both.get(n).copied().unwrap_or(0)
            )
            .unwrap();
        }
        let mut why: BTreeMap<String, usize> = BTreeMap::new();
        for r in &self.refusals {
            // Group by reason, dropping the per-target prefix.
            let key = r.split_once(": ").map_or(r.as_str(), |(_, rest)| rest);
            let key = key.split_once(": ").map_or(key, |(_, rest)| rest);
            *why.entry(key.to_string()).or_default() += 1;
        }
        for (r, n) in &why {
            writeln!(out, "  both refuse ({n}x): {r}").unwrap();
        }
        for d in &self.disagreements {
            writeln!(out, "  DISAGREEMENT {d}").unwrap();
        }
        out
    }
}

fn compare_program(
    counts: &mut Counts,
    obj: &Object,
    local: &LocalObject,
    target: &Target,
    program: &str,
) {
    counts.programs += 1;
    let here = format!("{} -> {}: {program}", local.label, target.label);
    let ours = relocate_program(obj, program, &target.btf);
    // The decide step alone (the host's predictions) must name the same decisions.
    let predicted = predict_program(obj, program, &target.btf);
    if predicted.as_ref().ok() != ours.as_ref().ok().map(|o| &o.core) {
        counts.disagreements.push(format!(
            "{here}: predict_program differs from relocate_program: {predicted:?}"
        ));
    }
    let theirs = libbpf_relocate(&local.path, &target.path, program);
    match (ours, theirs) {
        (Ok(ours), LibbpfResult::Insns(theirs)) => {
            if ours.insns.len() != theirs.len() {
                counts.disagreements.push(format!(
                    "{here}: {} instructions here, {} in libbpf",
                    ours.insn_count(),
                    theirs.len() / 8
                ));
                return;
            }
            let mut skip = vec![false; ours.insn_count()];
            for m in &ours.map_refs {
                for i in [m.insn_index as usize, m.insn_index as usize + 1] {
                    if let Some(s) = skip.get_mut(i) {
                        *s = true;
                    }
                }
            }
            let mut bad_insns = Vec::new();
            for (i, (a, b)) in ours.insns.chunks(8).zip(theirs.chunks(8)).enumerate() {
                if !skip[i] && a != b {
                    bad_insns.push(i);
                }
            }
            for d in &ours.core {
                let i = d.insn_index as usize;
                let wrong = bad_insns.contains(&i) || bad_insns.contains(&(i + 1));
                if wrong {
                    counts.disagreements.push(format!(
                        "{here}: relocation {} {} at insn #{i}: ours {:?} gives {:02x?}, libbpf {:02x?}",
                        d.kind,
                        d.access,
                        d.outcome,
                        &ours.insns[i * 8..i * 8 + 16.min(ours.insns.len() - i * 8)],
                        &theirs[i * 8..i * 8 + 16.min(theirs.len() - i * 8)],
                    ));
                    continue;
                }
                let map = match d.outcome {
                    CoreOutcome::Value { .. } => &mut counts.values,
                    CoreOutcome::Poisoned { .. } => &mut counts.poisoned,
                };
                *map.entry(d.kind.as_str()).or_default() += 1;
            }
            for i in bad_insns {
                let relocated = ours
                    .core
                    .iter()
                    .any(|d| d.insn_index as usize == i || d.insn_index as usize + 1 == i);
                if !relocated {
                    counts.disagreements.push(format!(
                        "{here}: insn #{i} (no CO-RE relocation) differs: ours {:02x?}, libbpf {:02x?}",
                        &ours.insns[i * 8..i * 8 + 8],
                        &theirs[i * 8..i * 8 + 8]
                    ));
                }
            }
        }
        (
            Err(RelocateError::Core {
                kind,
                raw_kind,
                error: why,
                access,
                ..
            }),
            LibbpfResult::Failed(log),
        ) if is_core_failure(&log) => {
            // The same relocation kind must be the one refused on both sides.
            let kind = kind.map_or_else(|| format!("kind {raw_kind}"), |k| k.to_string());
            match libbpf_failed_kind(&log) {
                Some(theirs)
                    if libbpf_kind_name(&kind) == Some(theirs.as_str())
                        || (theirs == LOCAL_SPEC && matches!(why, CoreError::LocalSpec(_))) =>
                {
                    counts.refusals.push(format!("{here}: {kind} {access}: {why}"));
                    *counts.failed_both.entry(kind).or_default() += 1;
                }
                theirs => counts.disagreements.push(format!(
                    "{here}: refused here for {kind} {access} ({why}), libbpf refused <{theirs:?}>: {}",
                    last_lines(&log)
                )),
            }
        }
        (Ok(_), LibbpfResult::Failed(log)) => counts.disagreements.push(format!(
            "{here}: relocated here, libbpf refused: {}",
            last_lines(&log)
        )),
        (Err(e), LibbpfResult::Insns(_)) => counts
            .disagreements
            .push(format!("{here}: refused here ({e}), libbpf relocated it")),
        (Err(e), LibbpfResult::Failed(log)) => counts.disagreements.push(format!(
            "{here}: refused here ({e}), libbpf failed for another reason: {}",
            last_lines(&log)
        )),
    }
}

/// libbpf's short name of a relocation kind, as in its log.
fn libbpf_kind_name(ours: &str) -> Option<&'static str> {
    Some(match ours {
        "field_byte_offset" => "byte_off",
        "field_byte_size" => "byte_sz",
        "field_exists" => "field_exists",
        "field_signed" => "signed",
        "field_lshift_u64" => "lshift_u64",
        "field_rshift_u64" => "rshift_u64",
        "type_id_local" => "local_type_id",
        "type_id_target" => "target_type_id",
        "type_exists" => "type_exists",
        "type_matches" => "type_matches",
        "type_size" => "type_size",
        "enumval_exists" => "enumval_exists",
        "enumval_value" => "enumval_value",
        _ => return None,
    })
}

/// The kind of the relocation libbpf failed on: "prog 'p': relo #n: failed
/// to ..." preceded by "prog 'p': relo #n: <kind> ...".
fn libbpf_failed_kind(log: &str) -> Option<String> {
    let failed = log
        .lines()
        .find(|l| l.contains("failed to relocate") || l.contains("failed to patch insn"))?;
    let prefix = &failed[..failed.find(": failed")?];
    let prefix = &prefix[prefix.find("prog '")?..];
    log.lines().find_map(|l| {
        let rest = &l[l.find(prefix)? + prefix.len()..];
        if rest.starts_with(": parsing ") && rest.contains(" failed") {
            // The local access string itself was rejected.
            return Some(LOCAL_SPEC.to_string());
        }
        let rest = rest.strip_prefix(": <")?;
        Some(rest[..rest.find('>')?].to_string())
    })
}

/// What `libbpf_failed_kind` reports when libbpf rejected the local spec.
const LOCAL_SPEC: &str = "local spec";

fn last_lines(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(6)..].join(" | ")
}

/// Can libbpf prepare an object here (CAP_BPF for maps and BTF)?
fn libbpf_usable(probe: &LocalObject, target: &Target, program: &str) -> Result<(), String> {
    match libbpf_relocate(&probe.path, &target.path, program) {
        LibbpfResult::Failed(log) if !is_core_failure(&log) => Err(log),
        _ => Ok(()),
    }
}

#[test]
fn engine_makes_libbpfs_decisions() {
    // SAFETY: installs a plain C callback.
    unsafe { libbpf_sys::libbpf_set_print(Some(capture_log)) };
    let dir = out_dir();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut notes = Vec::new();

    // Synthetic layouts: differential.c in four variants, core_layouts.c in two.
    let mut synthetic_locals = Vec::new();
    let mut synthetic_targets = Vec::new();
    let mut layout = |src: &str, label: &str, defines: &[&str], local: bool| {
        let obj_path = dir.join(format!("{label}.bpf.o"));
        clang(
            &fixtures.join(src),
            std::slice::from_ref(&fixtures),
            defines,
            &obj_path,
        );
        let btf_path = dir.join(format!("{label}.btf"));
        extract_btf(&std::fs::read(&obj_path).unwrap(), &btf_path);
        synthetic_targets.push((src.to_string(), load_target(label.into(), btf_path, false)));
        if local {
            synthetic_locals.push((
                src.to_string(),
                LocalObject {
                    label: label.into(),
                    path: obj_path,
                },
            ));
        }
    };
    for v in 0..4 {
        layout(
            "differential.c",
            &format!("differential-v{v}"),
            &[&format!("-DV={v}")],
            v <= 1,
        );
    }
    layout("core_layouts.c", "core_layouts", &[], true);
    layout(
        "core_layouts.c",
        "core_layouts-target",
        &["-DTARGET_LAYOUT"],
        false,
    );

    // Kernel types declared locally (partial, flavored, some wrong on
    // purpose): relocated against the kernels only.
    let kernel_core = dir.join("kernel_core.bpf.o");
    clang(
        &fixtures.join("kernel_core.c"),
        std::slice::from_ref(&fixtures),
        &[],
        &kernel_core,
    );

    // The product's programs.
    let programs_dir = workspace_root().join("programs");
    let mut corpus = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&programs_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    entries.sort();
    for src in entries {
        let name = src
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".bpf.c", "");
        let out = dir.join(format!("{name}.bpf.o"));
        clang(&src, &[programs_dir.join("include")], &[], &out);
        corpus.push(LocalObject {
            label: name,
            path: out,
        });
    }
    assert!(!corpus.is_empty(), "no programs/*.bpf.c");
    corpus.push(LocalObject {
        label: "kernel_core".into(),
        path: kernel_core,
    });

    let kernels = kernel_targets(&mut notes);

    // Is libbpf able to prepare objects here at all?
    let probe = &synthetic_locals[0].1;
    if let Err(log) = libbpf_usable(probe, &synthetic_targets[0].1, "agreeing") {
        let msg = format!(
            "libbpf differential: NOTHING COMPARED: libbpf cannot prepare objects here \
             (bpf_object__prepare needs CAP_BPF to create maps): {}",
            last_lines(&log)
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{msg}\n").as_bytes());
        if std::env::var("CORE_RELOC_REQUIRE_LIBBPF").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        return;
    }

    let mut counts = Counts::default();
    let mut pairs: Vec<(&LocalObject, &Target)> = Vec::new();
    for (src, local) in &synthetic_locals {
        for (tsrc, target) in &synthetic_targets {
            if src == tsrc {
                pairs.push((local, target));
            }
        }
    }
    for k in &kernels {
        for local in &corpus {
            pairs.push((local, k));
        }
        for (_, local) in &synthetic_locals {
            pairs.push((local, k));
        }
    }
    let mut per_target: BTreeMap<String, usize> = BTreeMap::new();
    for (local, target) in pairs {
        let obj = Object::parse(&std::fs::read(&local.path).unwrap()).unwrap();
        let before = counts.total();
        for p in obj.programs() {
            compare_program(&mut counts, &obj, local, target, &p.name);
        }
        let kind = if target.kernel { "kernel" } else { "synthetic" };
        *per_target
            .entry(format!("{kind} {}", target.label))
            .or_default() += counts.total() - before;
    }

    let mut report = counts.report();
    for (t, n) in &per_target {
        writeln!(report, "  target {t}: {n} relocations").unwrap();
    }
    for n in &notes {
        writeln!(report, "  NOTE {n}").unwrap();
    }
    // Straight to fd 2, past libtest's capture: the figures belong in CI logs.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), report.as_bytes());
    let _ = std::fs::write(dir.join("report.txt"), &report);
    assert!(counts.disagreements.is_empty(), "{report}");
    assert!(
        counts.total() >= 300,
        "too few relocations compared:\n{report}"
    );
    assert_eq!(
        counts.kinds_covered(),
        13,
        "every relocation kind must be exercised:\n{report}"
    );
}
