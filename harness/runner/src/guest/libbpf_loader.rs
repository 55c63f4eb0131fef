//! The static libbpf loader of `harness --libbpf`: built on this host from the C source in
//! `harness/runner/libbpf-loader/` against the system's static libbpf, cached in the work
//! directory by the hash of what went into it, and shipped in every guest's bundle.
//!
//! Built at run time (not when the harness is built) so that an installed harness needs no C
//! toolchain unless the comparison is asked for; when it is, missing pieces are installed like
//! the other host tools, or named.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

pub static SOURCE: &str = include_str!("../../libbpf-loader/loader.c");

/// The compiler: `$CC`, else gcc.
fn compiler() -> String {
    std::env::var("CC")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "gcc".to_string())
}

/// Which libbpf the loader links: the system's, or a build of one's own.
struct Libbpf {
    archive: PathBuf,
    /// The directory holding `bpf/libbpf.h`, when not the system's.
    include: Option<PathBuf>,
}

/// `HARNESS_LIBBPF_DIR=DIR`: a libbpf built elsewhere (`libbpf.a` in DIR, headers in
/// `DIR/include/bpf` or `DIR/inst/usr/include/bpf`, as `make -C tools/lib/bpf` and
/// scripts/libbpf-reference.sh leave them), for example a newer one than the distribution's.
fn chosen_libbpf(cc: &str) -> Result<Libbpf> {
    let Some(dir) = std::env::var_os("HARNESS_LIBBPF_DIR").filter(|d| !d.is_empty()) else {
        return Ok(Libbpf {
            archive: print_file_name(cc, "libbpf.a")?,
            include: None,
        });
    };
    let dir = PathBuf::from(dir);
    let archive = dir.join("libbpf.a");
    let include = ["include", "inst/usr/include"]
        .iter()
        .map(|sub| dir.join(sub))
        .find(|d| d.join("bpf/libbpf.h").is_file());
    match (archive.is_file(), include) {
        (true, Some(include)) => Ok(Libbpf {
            archive,
            include: Some(include),
        }),
        _ => bail!(
            "HARNESS_LIBBPF_DIR={}: expected libbpf.a there and bpf/libbpf.h under include/ or \
             inst/usr/include/",
            dir.display()
        ),
    }
}

/// The loader's bytes, built (or found in `work`) for this host's libbpf.
pub fn build(work: &Path, allow_install: bool) -> Result<Vec<u8>> {
    let cc = compiler();
    host_tools::ensure(&host_tools::libbpf_loader_requirements(&cc), allow_install)
        .context("--libbpf builds a static libbpf loader")?;
    let libbpf = chosen_libbpf(&cc)?;
    let include = libbpf
        .include
        .clone()
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let mut hash = Sha256::new();
    hash.update(SOURCE.as_bytes());
    hash.update(
        std::fs::read(&libbpf.archive)
            .with_context(|| format!("reading {}", libbpf.archive.display()))?,
    );
    hash.update(std::fs::read(include.join("bpf/libbpf_version.h")).unwrap_or_default());
    hash.update(cc.as_bytes());
    let key = hex::encode(hash.finalize());
    let dir = work.join("libbpf-loader");
    let path = dir.join(format!("loader-{}", &key[..16]));
    if let Ok(bytes) = std::fs::read(&path) {
        return Ok(bytes);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let source = dir.join(format!("loader-{}.c", &key[..16]));
    crate::fsutil::write_atomic(&source, SOURCE.as_bytes())?;
    let tmp = dir.join(format!("loader-{}.tmp.{}", &key[..16], std::process::id()));
    let mut command = Command::new(&cc);
    command.args(["-static", "-O2", "-Wall", "-o"]).arg(&tmp);
    if let Some(dir) = &libbpf.include {
        command.arg(format!("-I{}", dir.display()));
    }
    command
        .arg(&source)
        .arg(&libbpf.archive)
        .args(["-lelf", "-lz"]);
    if host_tools::libelf_needs_zstd(&cc, true) {
        command.arg("-lzstd");
    }
    let out = command.output().with_context(|| format!("running {cc}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "building the static libbpf loader with {cc} failed:\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

fn print_file_name(cc: &str, name: &str) -> Result<PathBuf> {
    let out = Command::new(cc)
        .arg(format!("-print-file-name={name}"))
        .output()
        .with_context(|| format!("running {cc}"))?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !path.is_absolute() {
        bail!("{cc} finds no {name} (apt-get install libbpf-dev)");
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    /// Needs gcc and the static libbpf (`libbpf_loader_requirements`); as root they are
    /// installed like the other host tools.
    #[test]
    fn builds_a_static_loader_once_and_reuses_it() {
        let work = tempfile::tempdir().unwrap();
        let first = super::build(work.path(), true).unwrap();
        let file = object::read::elf::ElfFile64::<object::Endianness>::parse(&*first).unwrap();
        use object::read::elf::ProgramHeader as _;
        let endian = file.endian();
        assert!(
            !file
                .elf_program_headers()
                .iter()
                .any(|ph| ph.p_type(endian) == object::elf::PT_INTERP),
            "the loader needs a dynamic loader: it cannot run in a guest"
        );
        let built: Vec<_> = std::fs::read_dir(work.path().join("libbpf-loader"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".c"))
            .collect();
        assert_eq!(built.len(), 1, "{built:?}");
        let again = super::build(work.path(), true).unwrap();
        assert_eq!(first, again);
    }
}
