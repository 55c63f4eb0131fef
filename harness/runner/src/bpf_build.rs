//! Building the BPF program corpus: `programs/*.bpf.c` → `<out>/<stem>.bpf.o`.
//!
//! Every object is compiled by one pinned compiler (`clang-19`, or the one
//! named by `HARNESS_CLANG`) with fixed flags ([`CLANG_FLAGS`]), from inside
//! the programs directory with `-fdebug-prefix-map=<programs dir>=programs`,
//! so the bytes do not depend on where the repository is checked out: the
//! same sources give the same object, byte for byte (checked by
//! `scripts/build-programs.sh --check` and this module's tests).
//!
//! Objects are cached: next to each object a `.stamp` file records a SHA-256
//! over the compiler's `--version`, the flags, the source, every header under
//! `programs/include` and every other file the last compilation read (from
//! clang's dependency output, e.g. libbpf's headers). An object whose stamp
//! still matches is not rebuilt. Objects and stamps are written atomically
//! (temporary file in the output directory, then rename).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The compiler used unless `HARNESS_CLANG` names another.
pub const DEFAULT_CLANG: &str = "clang-19";
/// Environment variable overriding the compiler.
pub const CLANG_ENV: &str = "HARNESS_CLANG";
/// Fixed compilation flags (the source, `-I include`, the prefix map and the
/// output are added per object). `-mcpu=v2`: the oldest kernel in the matrix
/// (5.10) accepts v2 (v3's 32-bit jumps and ALU32 are fine there too, but v2
/// keeps the instruction set minimal); `-fno-ident`: no compiler version
/// string in the object.
pub const CLANG_FLAGS: &[&str] = &[
    "-g",
    "-O2",
    "-target",
    "bpf",
    "-mcpu=v2",
    "-D__TARGET_ARCH_x86",
    "-fno-ident",
    "-Wall",
    "-Wno-unused-function",
];
/// Suffix of sources in the programs directory.
pub const SOURCE_SUFFIX: &str = ".bpf.c";

/// One compiled object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltObject {
    /// The file stem without `.bpf`: `packet_counter` for `packet_counter.bpf.c`.
    pub name: String,
    /// `<out_dir>/<name>.bpf.o`.
    pub path: PathBuf,
    /// SHA-256 of the object's bytes, lower-case hex.
    pub sha256: String,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("BPF compiler `{clang}` not found ({source}); install it with `apt-get install clang-19` or set {CLANG_ENV}")]
    ClangMissing {
        clang: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{clang} --version` failed: {detail}")]
    ClangBroken { clang: String, detail: String },
    #[error("compiling {file} failed:\n{stderr}")]
    Compile { file: PathBuf, stderr: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no {SOURCE_SUFFIX} sources in {0}")]
    NoSources(PathBuf),
}

pub type Result<T> = std::result::Result<T, BuildError>;

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BuildError + 'a {
    move |source| BuildError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The compiler to run: `$HARNESS_CLANG` or [`DEFAULT_CLANG`].
pub fn clang_command() -> String {
    std::env::var(CLANG_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_CLANG.to_string())
}

/// `clang --version`, which is part of every cache key.
pub fn clang_version(clang: &str) -> Result<String> {
    let out = Command::new(clang)
        .arg("--version")
        .output()
        .map_err(|source| BuildError::ClangMissing {
            clang: clang.to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(BuildError::ClangBroken {
            clang: clang.to_string(),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The sources to build: `programs_dir/*.bpf.c`, sorted.
pub fn sources(programs_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(programs_dir).map_err(io("cannot list", programs_dir))? {
        let e = e.map_err(io("cannot list", programs_dir))?;
        let p = e.path();
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(SOURCE_SUFFIX) && n.len() > SOURCE_SUFFIX.len())
            && p.is_file()
        {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// Compile every `programs_dir/*.bpf.c` into `out_dir` (created if needed),
/// reusing cached objects whose inputs are unchanged.
pub fn build_all(programs_dir: &Path, out_dir: &Path) -> Result<Vec<BuiltObject>> {
    let programs_dir = programs_dir
        .canonicalize()
        .map_err(io("cannot open programs directory", programs_dir))?;
    let srcs = sources(&programs_dir)?;
    if srcs.is_empty() {
        return Err(BuildError::NoSources(programs_dir));
    }
    std::fs::create_dir_all(out_dir).map_err(io("cannot create", out_dir))?;
    let clang = clang_command();
    let version = clang_version(&clang)?;
    let include_hash = hash_tree(&programs_dir.join("include"))?;
    srcs.iter()
        .map(|src| build_one(&clang, &version, &include_hash, &programs_dir, src, out_dir))
        .collect()
}

/// Build one source (cached). `programs_dir` must be canonical.
fn build_one(
    clang: &str,
    version: &str,
    include_hash: &str,
    programs_dir: &Path,
    src: &Path,
    out_dir: &Path,
) -> Result<BuiltObject> {
    let file_name = src.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let name = file_name.trim_end_matches(SOURCE_SUFFIX).to_string();
    let obj = out_dir.join(format!("{name}.bpf.o"));
    let stamp = out_dir.join(format!("{name}.bpf.o.stamp"));
    let source_bytes = std::fs::read(src).map_err(io("cannot read", src))?;

    // A stamp is: line 1 the key, then one dependency path per line.
    if let (Ok(stamp_text), Ok(obj_bytes)) = (std::fs::read_to_string(&stamp), std::fs::read(&obj))
    {
        let mut lines = stamp_text.lines();
        let recorded = lines.next().unwrap_or_default();
        let deps: Vec<PathBuf> = lines.map(PathBuf::from).collect();
        if let Some(key) = cache_key(version, include_hash, &source_bytes, &deps) {
            if key == recorded {
                return Ok(BuiltObject {
                    name,
                    path: obj,
                    sha256: hex::encode(Sha256::digest(&obj_bytes)),
                });
            }
        }
    }

    let tmp_obj = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".o.tmp")
        .tempfile_in(out_dir)
        .map_err(io("cannot create a temporary file in", out_dir))?;
    let tmp_dep = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".d.tmp")
        .tempfile_in(out_dir)
        .map_err(io("cannot create a temporary file in", out_dir))?;
    let prefix_map = format!("-fdebug-prefix-map={}=programs", programs_dir.display());
    let out = Command::new(clang)
        .current_dir(programs_dir)
        .env("PWD", programs_dir)
        .args(CLANG_FLAGS)
        .arg(&prefix_map)
        .args(["-I", "include", "-MD", "-MF"])
        .arg(tmp_dep.path())
        .args(["-c", file_name, "-o"])
        .arg(tmp_obj.path())
        .output()
        .map_err(|source| BuildError::ClangMissing {
            clang: clang.to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(BuildError::Compile {
            file: src.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let deps = parse_depfile(
        &std::fs::read_to_string(tmp_dep.path()).map_err(io("cannot read", tmp_dep.path()))?,
        programs_dir,
    );
    let key =
        cache_key(version, include_hash, &source_bytes, &deps).ok_or_else(|| BuildError::Io {
            what: "a dependency vanished while building",
            path: src.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
    let obj_bytes = std::fs::read(tmp_obj.path()).map_err(io("cannot read", tmp_obj.path()))?;
    tmp_obj.persist(&obj).map_err(|e| BuildError::Io {
        what: "cannot write",
        path: obj.clone(),
        source: e.error,
    })?;
    let mut stamp_text = key;
    for d in &deps {
        stamp_text.push('\n');
        stamp_text.push_str(&d.to_string_lossy());
    }
    stamp_text.push('\n');
    write_atomic(&stamp, stamp_text.as_bytes())?;
    Ok(BuiltObject {
        name,
        path: obj,
        sha256: hex::encode(Sha256::digest(&obj_bytes)),
    })
}

/// The cache key, or None if a recorded dependency cannot be read any more.
fn cache_key(version: &str, include_hash: &str, source: &[u8], deps: &[PathBuf]) -> Option<String> {
    let mut h = Sha256::new();
    let mut field = |label: &str, bytes: &[u8]| {
        h.update(label.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field("clang", version.as_bytes());
    field("flags", CLANG_FLAGS.join(" ").as_bytes());
    field("source", source);
    field("include", include_hash.as_bytes());
    for d in deps {
        let bytes = std::fs::read(d).ok()?;
        field("dep", d.to_string_lossy().as_bytes());
        field("dep-content", &bytes);
    }
    Some(hex::encode(h.finalize()))
}

/// Files listed in a make-style dependency file, resolved against
/// `programs_dir` (clang ran there), without the target.
fn parse_depfile(text: &str, programs_dir: &Path) -> Vec<PathBuf> {
    let joined = text.replace("\\\n", " ");
    let after_colon = match joined.find(": ") {
        Some(i) => &joined[i + 2..],
        None => return Vec::new(),
    };
    let mut deps = Vec::new();
    let mut cur = String::new();
    let mut chars = after_colon.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                cur.push(' ');
                chars.next();
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    deps.push(programs_dir.join(std::mem::take(&mut cur)));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        deps.push(programs_dir.join(cur));
    }
    deps.sort();
    deps.dedup();
    deps
}

/// SHA-256 over every file under `dir` (relative names and contents, sorted);
/// a missing directory hashes as empty.
fn hash_tree(dir: &Path) -> Result<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d == dir => break,
            Err(e) => return Err(io("cannot list", &d)(e)),
        };
        for e in rd {
            let p = e.map_err(io("cannot list", &d))?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f);
        let bytes = std::fs::read(&f).map_err(io("cannot read", &f))?;
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(hex::encode(h.finalize()))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fsutil::write_atomic(path, bytes).map_err(io("cannot write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn have_clang() -> bool {
        // Installs clang-19 the way the harness does, or fails: a missing compiler is never a pass.
        host_tools::ensure_bpf_toolchain_for_tests();
        true
    }

    fn corpus() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../programs")
    }

    #[test]
    fn depfile_parsing() {
        let d = parse_depfile(
            "x.o: x.bpf.c include/a.h \\\n  /usr/include/bpf/bpf_helpers.h my\\ file.h\n",
            Path::new("/p"),
        );
        assert_eq!(
            d,
            vec![
                PathBuf::from("/p/include/a.h"),
                PathBuf::from("/p/my file.h"),
                PathBuf::from("/p/x.bpf.c"),
                PathBuf::from("/usr/include/bpf/bpf_helpers.h"),
            ]
        );
    }

    #[test]
    fn missing_clang_says_how_to_install() {
        let e = clang_version("/nonexistent/clang-19")
            .unwrap_err()
            .to_string();
        assert!(e.contains("apt-get install clang-19"), "{e}");
    }

    #[test]
    fn build_is_reproducible_across_checkouts_and_cached() {
        if !have_clang() {
            eprintln!("skipped: no {}", clang_command());
            return;
        }
        // Two copies of the corpus at different paths must give equal bytes.
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let copy = |to: &Path| {
            let dst = to.join("some/checkout/programs");
            copy_tree(&corpus(), &dst);
            dst
        };
        let (pa, pb) = (copy(a.path()), copy(b.path()));
        let oa = build_all(&pa, &a.path().join("out")).unwrap();
        let ob = build_all(&pb, &b.path().join("out")).unwrap();
        assert!(!oa.is_empty());
        assert_eq!(oa.len(), ob.len());
        for (x, y) in oa.iter().zip(&ob) {
            assert_eq!(x.name, y.name);
            assert_eq!(
                std::fs::read(&x.path).unwrap(),
                std::fs::read(&y.path).unwrap(),
                "{}",
                x.name
            );
            assert_eq!(x.sha256, y.sha256);
        }
        // Cached: a second build does not rewrite the object.
        let before = std::fs::metadata(&oa[0].path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let again = build_all(&pa, &a.path().join("out")).unwrap();
        assert_eq!(again, oa);
        assert_eq!(
            std::fs::metadata(&oa[0].path).unwrap().modified().unwrap(),
            before
        );
        // A header change invalidates the cache (the object is rewritten).
        let h = pa.join("include/harness_uapi.h");
        let mut t = std::fs::read_to_string(&h).unwrap();
        t.push_str("\n/* touched */\n");
        std::fs::write(&h, t).unwrap();
        build_all(&pa, &a.path().join("out")).unwrap();
        assert_ne!(
            std::fs::metadata(&oa[0].path).unwrap().modified().unwrap(),
            before
        );
    }

    #[test]
    fn syntax_error_reports_clang_message_and_file() {
        if !have_clang() {
            eprintln!("skipped: no {}", clang_command());
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("programs");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("broken.bpf.c"), "int f(void) { return 0 }\n").unwrap();
        let e = build_all(&p, &d.path().join("out"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("broken.bpf.c"), "{e}");
        assert!(e.contains("expected ';'"), "{e}");
        // nothing half-written is left behind
        let left: Vec<_> = std::fs::read_dir(d.path().join("out")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn shell_script_uses_the_same_flags() {
        let script = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-programs.sh"),
        )
        .unwrap();
        let flags = CLANG_FLAGS.join(" ");
        assert!(
            script.contains(&format!("FLAGS=\"{flags}\"")),
            "scripts/build-programs.sh must set FLAGS=\"{flags}\""
        );
    }

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let dst = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy_tree(&p, &dst);
            } else {
                std::fs::copy(&p, &dst).unwrap();
            }
        }
    }
}
