//! The guest agent this harness was built with: a static binary embedded at build time (see
//! `build.rs`), so an installed `harness` needs no checkout, cargo or Rust target to run.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The agent's bytes: `/init` of every guest, and a plain process for the host entry.
pub static AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/guest-agent"));

/// The aarch64 agent, `/init` of arm64 guests; empty when the harness was built with
/// `HARNESS_AGENT_AARCH64_BIN=none`.
pub static AGENT_AARCH64: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/guest-agent-aarch64"));

/// The agent for guests of `arch`.
pub fn for_arch(arch: crate::matrix::config::Arch) -> Result<&'static [u8], String> {
    match arch {
        crate::matrix::config::Arch::X86_64 => Ok(AGENT),
        crate::matrix::config::Arch::Aarch64 if AGENT_AARCH64.is_empty() => Err(
            "this harness was built without the aarch64 guest agent (HARNESS_AGENT_AARCH64_BIN=none): \
             rebuild it without that setting to run arm64 kernels"
                .into(),
        ),
        crate::matrix::config::Arch::Aarch64 => Ok(AGENT_AARCH64),
    }
}

/// SHA-256 of [`AGENT`], lower-case hex: part of what identifies a bundle.
pub fn sha256() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hex::encode(Sha256::digest(AGENT)))
}

/// Writes the agent as an executable file under `dir`, named by its hash so that runs of
/// different harness builds sharing `dir` never run each other's agent; returns its path.
pub fn install_in(dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("guest-agent-{}", &sha256()[..16]));
    let up_to_date = std::fs::read(&path).is_ok_and(|bytes| bytes == AGENT);
    if !up_to_date {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::fsutil::write_atomic(&path, AGENT)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_agent_is_a_static_elf_executable() {
        // Copied: the ELF reader wants aligned data, and included bytes have no alignment.
        let agent = super::AGENT.to_vec();
        assert_eq!(&agent[..4], b"\x7fELF", "not an ELF file");
        // ET_EXEC or ET_DYN (static-pie), and no PT_INTERP: it must run as /init with no loader.
        let e_type = u16::from_le_bytes([agent[16], agent[17]]);
        assert!(matches!(e_type, 2 | 3), "e_type {e_type}");
        let file = object::read::elf::ElfFile64::<object::Endianness>::parse(&*agent).unwrap();
        use object::read::elf::ProgramHeader as _;
        let endian = file.endian();
        let interp = file
            .elf_program_headers()
            .iter()
            .any(|ph| ph.p_type(endian) == object::elf::PT_INTERP);
        assert!(!interp, "the agent needs a dynamic loader");
    }

    #[test]
    fn the_aarch64_agent_is_a_static_arm64_executable() {
        let agent = super::AGENT_AARCH64.to_vec();
        if agent.is_empty() {
            // Built with HARNESS_AGENT_AARCH64_BIN=none: say so instead of passing silently.
            let e = super::for_arch(crate::matrix::config::Arch::Aarch64).unwrap_err();
            assert!(e.contains("without the aarch64 guest agent"), "{e}");
            return;
        }
        let file = object::read::elf::ElfFile64::<object::Endianness>::parse(&*agent).unwrap();
        use object::read::elf::ProgramHeader as _;
        use object::Object as _;
        assert_eq!(file.architecture(), object::Architecture::Aarch64);
        let endian = file.endian();
        let interp = file
            .elf_program_headers()
            .iter()
            .any(|ph| ph.p_type(endian) == object::elf::PT_INTERP);
        assert!(!interp, "the aarch64 agent needs a dynamic loader");
    }

    #[test]
    fn installing_twice_gives_one_file_with_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let a = super::install_in(dir.path()).unwrap();
        let b = super::install_in(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(std::fs::read(&a).unwrap(), super::AGENT);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
