//! `harness vmlinux-h`: writes `vmlinux.h` from a matrix kernel's cached BTF, the host's, or any
//! BTF file, so a libbpf-bootstrap-style program builds without bpftool. The rendering is the
//! engine's (`core_reloc::render_c_header`); this module only finds and reads the BTF.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::cli::CommonArgs;
use crate::images::{Images, IndicatifProgress};
use crate::matrix::config::{KernelSource, Matrix};

/// Where the running kernel publishes its BTF.
pub const HOST_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, Clone, clap::Args)]
pub struct VmlinuxHArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// A raw BTF file, or an ELF file with a .BTF section (instead of --kernel)
    #[arg(long, value_name = "PATH", conflicts_with = "kernels")]
    pub btf: Option<PathBuf>,
    /// Write the header here [default: stdout]
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
}

/// Which BTF to render, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfSource {
    /// A kernel of the matrix (`host` is the running kernel).
    Kernel(String),
    File(PathBuf),
}

impl VmlinuxHArgs {
    pub fn source(&self) -> Result<BtfSource> {
        match (&self.btf, self.common.kernels.as_slice()) {
            (Some(path), []) => Ok(BtfSource::File(path.clone())),
            (None, [name]) => Ok(BtfSource::Kernel(name.clone())),
            (None, []) => bail!(
                "name the BTF to render: --kernel NAME (a kernel of {}, or host) or --btf PATH",
                self.common.matrix.display()
            ),
            (None, names) => bail!(
                "vmlinux-h renders one kernel at a time, got --kernel {}",
                names.join(", --kernel ")
            ),
            (Some(_), _) => bail!("--btf and --kernel exclude each other"),
        }
    }
}

pub fn vmlinux_h_command(args: &VmlinuxHArgs) -> Result<()> {
    let (label, path) = match args.source()? {
        BtfSource::File(path) => (path.display().to_string(), path),
        BtfSource::Kernel(name) => (format!("kernel {name}"), kernel_btf_path(args, &name)?),
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let raw = raw_btf(bytes).with_context(|| format!("{label}: {}", path.display()))?;
    let btf = core_reloc::Btf::parse_owned(raw)
        .with_context(|| format!("{label}: parsing BTF of {}", path.display()))?;
    let started = std::time::Instant::now();
    let header = core_reloc::render_c_header(&btf)
        .with_context(|| format!("{label}: rendering {} as C", path.display()))?;
    let render_ms = started.elapsed().as_secs_f64() * 1000.0;
    match &args.output {
        Some(out) => {
            crate::fsutil::write_atomic(out, header.as_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
            // A header is for everyone to read (the atomic write creates it 0600).
            std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o644))
                .with_context(|| format!("setting the mode of {}", out.display()))?;
            eprintln!(
                "wrote {} ({} types, {} bytes, rendered in {render_ms:.0} ms) from {label} ({})",
                out.display(),
                btf.type_count() - 1,
                header.len(),
                path.display()
            );
        }
        None => std::io::stdout()
            .lock()
            .write_all(header.as_bytes())
            .context("writing the header to stdout")?,
    }
    Ok(())
}

/// The BTF file of a matrix kernel: the host's sysfs file, or the image cache's `.BTF`
/// (provisioning the image first, as `fetch` does, when it is not cached).
fn kernel_btf_path(args: &VmlinuxHArgs, name: &str) -> Result<PathBuf> {
    // `host` needs no matrix entry (nor a matrix: this works outside a checkout).
    let host_btf = || {
        let path = PathBuf::from(HOST_BTF);
        anyhow::ensure!(
            path.exists(),
            "the running kernel publishes no BTF at {HOST_BTF} (built without \
             CONFIG_DEBUG_INFO_BTF?): name a matrix kernel or a file with --btf"
        );
        Ok(path)
    };
    if name == "host" && !args.common.matrix.exists() {
        return host_btf();
    }
    let matrix = Matrix::load(&args.common.matrix)?;
    if name == "host" && matrix.kernel(name).is_none() {
        return host_btf();
    }
    let kernel = *matrix
        .select(&[name.to_string()])?
        .first()
        .context("no kernel selected")?;
    if matches!(kernel.source, KernelSource::Host) && kernel.btf.is_none() {
        return host_btf();
    }
    if kernel.btf.is_some() {
        return Ok(crate::kernel_btf::btf_path(kernel, None)?);
    }
    let layout = crate::layout::Layout::new(&args.common, None);
    let images = Images::new(&layout.images, &matrix);
    let lock =
        crate::matrix::pinning::ensure_locked(&images, &matrix, &[kernel], &layout.lockfile)?;
    let image = images
        .provision(kernel, &lock, &IndicatifProgress::new())
        .with_context(|| format!("kernel {name}"))?;
    Ok(crate::kernel_btf::btf_path(kernel, Some(&image))?)
}

/// The raw BTF in `bytes`: the file itself, or the `.BTF` section of an ELF file.
pub fn raw_btf(bytes: Vec<u8>) -> Result<Vec<u8>> {
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(bytes);
    }
    match crate::images::elf::btf_section(&bytes)? {
        Some(btf) => Ok(btf),
        None => bail!("an ELF file without a .BTF section"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(argv: &[&str]) -> VmlinuxHArgs {
        match crate::cli::Cli::try_parse_from(
            ["harness", "vmlinux-h"].iter().chain(argv.iter()).copied(),
        )
        .unwrap()
        .command
        {
            Some(crate::cli::Command::VmlinuxH(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_kernel_or_one_file_is_rendered() {
        assert_eq!(
            args(&["--kernel", "5.10"]).source().unwrap(),
            BtfSource::Kernel("5.10".into())
        );
        let a = args(&["--btf", "x.btf", "-o", "out/vmlinux.h"]);
        assert_eq!(a.source().unwrap(), BtfSource::File("x.btf".into()));
        assert_eq!(a.output, Some(PathBuf::from("out/vmlinux.h")));
        let none = args(&[]).source().unwrap_err().to_string();
        assert!(
            none.contains("--kernel NAME") && none.contains("--btf PATH"),
            "{none}"
        );
        let two = args(&["--kernel", "5.10", "--kernel", "7.2"]);
        assert!(two
            .source()
            .unwrap_err()
            .to_string()
            .contains("one kernel at a time"));
        assert!(crate::cli::Cli::try_parse_from([
            "harness",
            "vmlinux-h",
            "--kernel",
            "host",
            "--btf",
            "x"
        ])
        .is_err());
    }

    #[test]
    fn raw_btf_passes_raw_blobs_and_refuses_elf_without_btf() {
        let raw = vec![0x9f, 0xeb, 1, 0];
        assert_eq!(raw_btf(raw.clone()).unwrap(), raw);
        // A minimal ELF header with no sections at all.
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little-endian
        elf[6] = 1; // version
        elf[16] = 1; // ET_REL
        elf[18] = 0xf7; // EM_BPF
        elf[20] = 1;
        elf[52] = 64; // e_ehsize
        let err = raw_btf(elf).unwrap_err().to_string();
        assert!(err.contains("without a .BTF section"), "{err}");
    }
}
