//! Building BPF sources: `<dir>/<name>.bpf.c` → a cached `<name>.bpf.o`.
//!
//! Only sources are built; a precompiled object is shipped as the user gave it (see
//! [`super::discover`]). Every source is compiled by one compiler (`clang-19`, `$HARNESS_CLANG` or
//! `--clang`) with [`CLANG_FLAGS`], then `-I <dir>/include`, the user's `-I` directories,
//! `-idirafter` the compiler's own system include directories (as libbpf-bootstrap does, so
//! `<asm/types.h>` resolves), `-idirafter` a shim directory that supplies the `gnu/stubs-32.h`
//! glibc asks for under `-target bpf`, then the user's `--cflags` (last, so they win). It runs
//! from inside the source's directory with `-fdebug-prefix-map=<dir>=programs`, so the bytes do
//! not depend on where the tree is checked out (checked by `scripts/build-programs.sh --check`).
//!
//! Objects are cached in `<cache>/<hash of the source directory>/`, so two trees with a source of
//! the same name never share an entry. Next to each object a `.stamp` records a SHA-256 over the
//! compiler's `--version`, every flag, the source, every header under `<dir>/include` and every
//! other file the last compilation read (clang's dependency output), and the SHA-256 of the
//! object itself: an entry is reused only when the inputs match and the object still has the
//! bytes it was written with. The bytes a build returns are the ones it compiled or verified,
//! never re-read later, so a concurrent rebuild cannot swap them.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The compiler used unless `HARNESS_CLANG` or `--clang` names another.
pub const DEFAULT_CLANG: &str = "clang-19";
/// Environment variable overriding the compiler.
pub const CLANG_ENV: &str = "HARNESS_CLANG";
/// Fixed compilation flags (includes, the prefix map and the output are added per object).
/// `-mcpu=v2`: the oldest kernel in the matrix (5.10) accepts v2 (pass `--cflags -mcpu=v3` for
/// v3); `-fno-ident`: no compiler version string in the object.
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
/// Suffix of sources.
pub const SOURCE_SUFFIX: &str = ".bpf.c";

/// How sources are compiled, beyond the fixed flags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildOptions {
    /// The compiler; `None`: `$HARNESS_CLANG` or [`DEFAULT_CLANG`].
    pub clang: Option<String>,
    /// Extra include directories (`-I`), after `<dir>/include`.
    pub include_dirs: Vec<PathBuf>,
    /// Extra flags, appended last.
    pub cflags: Vec<String>,
}

impl BuildOptions {
    pub fn clang(&self) -> String {
        self.clang
            .clone()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(clang_command)
    }
}

/// One compiled object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltObject {
    /// The file stem without `.bpf.c`: `packet_counter` for `packet_counter.bpf.c`.
    pub name: String,
    /// The cached object.
    pub path: PathBuf,
    /// SHA-256 of the object's bytes, lower-case hex.
    pub sha256: String,
    /// The object's bytes, exactly as built or verified.
    pub bytes: Vec<u8>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("BPF compiler `{clang}` not found ({source}); install it with `apt-get install clang-19`, set {CLANG_ENV} or pass --clang")]
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

/// The compiler to run by default: `$HARNESS_CLANG` or [`DEFAULT_CLANG`].
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

/// The compiler's own `#include <...>` search list (from `clang -v -E`), which `-target bpf`
/// does not search by itself: passed as `-idirafter`, libbpf-bootstrap's way.
pub fn system_include_dirs(clang: &str) -> Vec<PathBuf> {
    let Ok(out) = Command::new(clang)
        .args(["-v", "-E", "-x", "c", "/dev/null", "-o", "/dev/null"])
        .output()
    else {
        return Vec::new();
    };
    parse_include_search_list(&String::from_utf8_lossy(&out.stderr))
}

fn parse_include_search_list(text: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("#include <...> search starts here:") {
            inside = true;
        } else if line.starts_with("End of search list.") {
            break;
        } else if inside {
            let dir = line.trim().trim_end_matches(" (framework directory)");
            if !dir.is_empty() {
                dirs.push(PathBuf::from(dir));
            }
        }
    }
    dirs
}

/// Under `-target bpf` glibc's headers take the 32-bit branch and ask for `gnu/stubs-32.h`,
/// which amd64 systems lack; it only lists unimplemented functions, so an empty one is right.
fn stubs_shim_dir(cache_root: &Path) -> Result<PathBuf> {
    let dir = cache_root.join("include-shim");
    let header = dir.join("gnu/stubs-32.h");
    let text = "/* Supplied by the harness: glibc asks for this under -target bpf. */\n";
    if std::fs::read_to_string(&header).ok().as_deref() != Some(text) {
        crate::fsutil::write_atomic(&header, text.as_bytes())
            .map_err(io("cannot write", &header))?;
    }
    Ok(dir)
}

/// The sources to build: `dir/*.bpf.c`, sorted.
pub fn sources(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io("cannot list", dir))? {
        let e = e.map_err(io("cannot list", dir))?;
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

/// A compiler session: what every source of one run is built with.
pub struct Builder {
    clang: String,
    version: String,
    flags: Vec<String>,
    cache_root: PathBuf,
}

impl Builder {
    /// Checks the compiler once and fixes the flags.
    pub fn new(options: &BuildOptions, cache_root: &Path) -> Result<Builder> {
        let clang = options.clang();
        // Two compiler runs of ~40 ms each before anything boots: side by side.
        let (version, system_dirs) = std::thread::scope(|scope| {
            let dirs = scope.spawn(|| system_include_dirs(&clang));
            let version = clang_version(&clang);
            (version, dirs.join().unwrap_or_default())
        });
        let version = version?;
        std::fs::create_dir_all(cache_root).map_err(io("cannot create", cache_root))?;
        let mut flags: Vec<String> = CLANG_FLAGS.iter().map(|s| s.to_string()).collect();
        flags.extend(["-I".to_string(), "include".to_string()]);
        for dir in &options.include_dirs {
            let dir = dir
                .canonicalize()
                .map_err(io("cannot open include directory", dir))?;
            flags.push("-I".into());
            flags.push(dir.display().to_string());
        }
        for dir in system_dirs {
            flags.push("-idirafter".into());
            flags.push(dir.display().to_string());
        }
        flags.push("-idirafter".into());
        flags.push(stubs_shim_dir(cache_root)?.display().to_string());
        flags.extend(options.cflags.iter().cloned());
        Ok(Builder {
            clang,
            version,
            flags,
            cache_root: cache_root.to_path_buf(),
        })
    }

    /// Every flag but the per-source ones: what README documents.
    pub fn flags(&self) -> &[String] {
        &self.flags
    }

    /// Builds (or finds cached and intact) one source.
    pub fn build(&self, src: &Path) -> Result<BuiltObject> {
        let src = src.canonicalize().map_err(io("cannot open", src))?;
        let dir = src.parent().unwrap_or(Path::new("/")).to_path_buf();
        let out_dir = self
            .cache_root
            .join(&hex::encode(Sha256::digest(dir.as_os_str().as_encoded_bytes()))[..16]);
        std::fs::create_dir_all(&out_dir).map_err(io("cannot create", &out_dir))?;
        let include_hash = hash_tree(&dir.join("include"))?;
        build_one(self, &include_hash, &dir, &src, &out_dir)
    }
}

/// Compile every `dir/*.bpf.c` into `cache_root`, reusing intact cached objects.
pub fn build_all(
    options: &BuildOptions,
    dir: &Path,
    cache_root: &Path,
) -> Result<Vec<BuiltObject>> {
    let srcs = sources(dir)?;
    if srcs.is_empty() {
        return Err(BuildError::NoSources(dir.to_path_buf()));
    }
    let builder = Builder::new(options, cache_root)?;
    srcs.iter().map(|src| builder.build(src)).collect()
}

/// Build one source (cached). `dir` is the source's canonical directory.
fn build_one(
    builder: &Builder,
    include_hash: &str,
    dir: &Path,
    src: &Path,
    out_dir: &Path,
) -> Result<BuiltObject> {
    let file_name = src.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let name = file_name.trim_end_matches(SOURCE_SUFFIX).to_string();
    let obj = out_dir.join(format!("{name}.bpf.o"));
    let stamp = out_dir.join(format!("{name}.bpf.o.stamp"));
    let source_bytes = std::fs::read(src).map_err(io("cannot read", src))?;
    let key_of = |deps: &[PathBuf]| {
        cache_key(
            &builder.version,
            &builder.flags,
            include_hash,
            &source_bytes,
            deps,
        )
    };

    // A stamp is: line 1 the key, line 2 the object's sha256, then one dependency per line.
    if let (Ok(stamp_text), Ok(obj_bytes)) = (std::fs::read_to_string(&stamp), std::fs::read(&obj))
    {
        let mut lines = stamp_text.lines();
        let recorded = lines.next().unwrap_or_default();
        let recorded_sha = lines.next().unwrap_or_default();
        let deps: Vec<PathBuf> = lines.map(PathBuf::from).collect();
        let sha256 = hex::encode(Sha256::digest(&obj_bytes));
        if key_of(&deps).is_some_and(|key| key == recorded) && sha256 == recorded_sha {
            return Ok(BuiltObject {
                name,
                path: obj,
                sha256,
                bytes: obj_bytes,
            });
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
    let prefix_map = format!("-fdebug-prefix-map={}=programs", dir.display());
    let out = Command::new(&builder.clang)
        .current_dir(dir)
        .env("PWD", dir)
        .args(&builder.flags)
        .arg(&prefix_map)
        .args(["-MD", "-MF"])
        .arg(tmp_dep.path())
        .args(["-c", file_name, "-o"])
        .arg(tmp_obj.path())
        .output()
        .map_err(|source| BuildError::ClangMissing {
            clang: builder.clang.clone(),
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
        dir,
    );
    let key = key_of(&deps).ok_or_else(|| BuildError::Io {
        what: "a dependency vanished while building",
        path: src.to_path_buf(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let obj_bytes = std::fs::read(tmp_obj.path()).map_err(io("cannot read", tmp_obj.path()))?;
    let sha256 = hex::encode(Sha256::digest(&obj_bytes));
    tmp_obj.persist(&obj).map_err(|e| BuildError::Io {
        what: "cannot write",
        path: obj.clone(),
        source: e.error,
    })?;
    let mut stamp_text = format!("{key}\n{sha256}");
    for d in &deps {
        stamp_text.push('\n');
        stamp_text.push_str(&d.to_string_lossy());
    }
    stamp_text.push('\n');
    write_atomic(&stamp, stamp_text.as_bytes())?;
    Ok(BuiltObject {
        name,
        path: obj,
        sha256,
        bytes: obj_bytes,
    })
}

/// The cache key, or None if a recorded dependency cannot be read any more.
fn cache_key(
    version: &str,
    flags: &[String],
    include_hash: &str,
    source: &[u8],
    deps: &[PathBuf],
) -> Option<String> {
    let mut h = Sha256::new();
    let mut field = |label: &str, bytes: &[u8]| {
        h.update(label.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field("clang", version.as_bytes());
    field("flags", flags.join("\0").as_bytes());
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
        let oa = build_all(&BuildOptions::default(), &pa, &a.path().join("out")).unwrap();
        let ob = build_all(&BuildOptions::default(), &pb, &b.path().join("out")).unwrap();
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
        let again = build_all(&BuildOptions::default(), &pa, &a.path().join("out")).unwrap();
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
        build_all(&BuildOptions::default(), &pa, &a.path().join("out")).unwrap();
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
        let e = build_all(&BuildOptions::default(), &p, &d.path().join("out"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("broken.bpf.c"), "{e}");
        assert!(e.contains("expected ';'"), "{e}");
        // nothing half-written is left behind (the shim directory is the cache's own)
        let left: Vec<_> = walk(&d.path().join("out"))
            .into_iter()
            .filter(|p| !p.to_string_lossy().contains("include-shim"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files.extend(walk(&p));
            } else {
                files.push(p);
            }
        }
        files
    }

    fn one_source(dir: &Path, name: &str, body: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let src = dir.join(format!("{name}.bpf.c"));
        std::fs::write(&src, body).unwrap();
        src
    }

    #[test]
    fn a_damaged_cached_object_is_rebuilt_not_shipped() {
        host_tools::ensure_bpf_toolchain_for_tests();
        let d = tempfile::tempdir().unwrap();
        let src = one_source(&d.path().join("p"), "x", "int x(void *c) { return 1; }\n");
        let builder = Builder::new(&BuildOptions::default(), &d.path().join("cache")).unwrap();
        let first = builder.build(&src).unwrap();
        // Truncate the cached object behind the cache's back.
        std::fs::write(&first.path, &first.bytes[..first.bytes.len() / 2]).unwrap();
        let again = builder.build(&src).unwrap();
        assert_eq!(again.bytes, first.bytes, "the damaged object was shipped");
        assert_eq!(std::fs::read(&again.path).unwrap(), first.bytes);
    }

    #[test]
    fn two_trees_with_a_source_of_the_same_name_never_share_an_object() {
        host_tools::ensure_bpf_toolchain_for_tests();
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("cache");
        let x = one_source(
            &d.path().join("race/X"),
            "same",
            "int p(void *c) { return 1; }\n",
        );
        let y = one_source(
            &d.path().join("race/Y"),
            "same",
            "int p(void *c) { return 2; }\n",
        );
        let builder = Builder::new(&BuildOptions::default(), &cache).unwrap();
        let (bx, by) = (builder.build(&x).unwrap(), builder.build(&y).unwrap());
        assert_ne!(bx.path, by.path);
        assert_ne!(bx.sha256, by.sha256);
        // Interleaved rebuilds still give each tree its own bytes.
        assert_eq!(builder.build(&x).unwrap().bytes, bx.bytes);
        assert_eq!(builder.build(&y).unwrap().bytes, by.bytes);
    }

    #[test]
    fn user_flags_come_last_and_change_the_key() {
        host_tools::ensure_bpf_toolchain_for_tests();
        let d = tempfile::tempdir().unwrap();
        let src = one_source(&d.path().join("p"), "v", "int v(void *c) { return 3; }\n");
        let cache = d.path().join("cache");
        let plain = Builder::new(&BuildOptions::default(), &cache).unwrap();
        let options = BuildOptions {
            cflags: vec!["-mcpu=v3".into()],
            ..Default::default()
        };
        let v3 = Builder::new(&options, &cache).unwrap();
        assert_eq!(v3.flags().last().map(String::as_str), Some("-mcpu=v3"));
        assert!(v3.flags().iter().any(|f| f == "-idirafter"));
        let (a, b) = (plain.build(&src).unwrap(), v3.build(&src).unwrap());
        // Same path (same tree), rebuilt for the new flags, not served from the old stamp.
        assert_eq!(a.path, b.path);
        let stamp = std::fs::read_to_string(b.path.with_extension("o.stamp")).unwrap();
        assert!(stamp.contains(&b.sha256), "{stamp}");
    }

    #[test]
    fn include_search_list_is_read_from_clang_v() {
        let text = "clang version 19\n#include \"...\" search starts here:\n#include <...> search starts here:\n /usr/lib/llvm-19/lib/clang/19/include\n /usr/local/include\n /usr/include/x86_64-linux-gnu\n /usr/include\nEnd of search list.\n";
        assert_eq!(
            parse_include_search_list(text),
            [
                "/usr/lib/llvm-19/lib/clang/19/include",
                "/usr/local/include",
                "/usr/include/x86_64-linux-gnu",
                "/usr/include"
            ]
            .map(PathBuf::from)
        );
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
