//! `kernels.lock` as the run sees it: pinned where it can be, resolved where it must be.
//!
//! Like `Cargo.lock`, a kernel without a pin (new in kernels.toml, or changed there) is resolved
//! and written on first use; a pinned one is never moved except by `harness lock --update`.

use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::CommonArgs;
use crate::images::{Images, IndicatifProgress};
use crate::matrix::config::{KernelEntry, KernelSource, Matrix};
use crate::matrix::lockfile::Lockfile;

/// The lockfile with every selected Debian kernel pinned, resolving (and saving) what is not.
pub fn ensure_locked(
    images: &Images,
    matrix: &Matrix,
    kernels: &[&KernelEntry],
    path: &Path,
) -> Result<Lockfile> {
    let existing =
        Lockfile::load_if_exists(path).with_context(|| format!("reading {}", path.display()))?;
    let unpinned: Vec<&KernelEntry> = kernels
        .iter()
        .copied()
        .filter(|k| match &k.source {
            KernelSource::Debian(source) => match existing.as_ref().and_then(|l| l.kernel(&k.name))
            {
                None => true,
                Some(locked) => locked.stale_reason(source, k.arch.debian()).is_some(),
            },
            _ => false,
        })
        .collect();
    if unpinned.is_empty() {
        return Ok(existing.unwrap_or_default());
    }
    let names: Vec<&str> = unpinned.iter().map(|k| k.name.as_str()).collect();
    eprintln!(
        "resolving {} in the Debian archive (not pinned in {} yet)",
        names.join(", "),
        path.display()
    );
    let lock = images.resolve(matrix, &unpinned, existing.as_ref())?;
    lock.save(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(lock)
}

/// `harness lock [--update [NAME...]]`.
pub fn lock_command(common: &CommonArgs, update: Option<&[String]>) -> Result<()> {
    let matrix = Matrix::load(&common.matrix)?;
    let layout = crate::layout::Layout::new(common, None);
    let path = layout.lockfile;
    let images = Images::new(&layout.images, &matrix);
    let lock = match update {
        None => {
            let all: Vec<&KernelEntry> = matrix.kernels.iter().collect();
            ensure_locked(&images, &matrix, &all, &path)?
        }
        Some(names) => {
            let selected: Vec<&KernelEntry> = if names.is_empty() {
                matrix.kernels.iter().collect()
            } else {
                matrix.select(names)?
            };
            let existing = Lockfile::load_if_exists(&path)?;
            eprintln!(
                "resolving {} in the Debian archive",
                selected
                    .iter()
                    .map(|k| k.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let lock = images.resolve(&matrix, &selected, existing.as_ref())?;
            lock.save(&path)?;
            lock
        }
    };
    for kernel in &lock.kernels {
        for package in &kernel.packages {
            println!(
                "{:6} {:8} {} {}",
                kernel.name, kernel.suite, package.name, package.version
            );
        }
    }
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// `harness fetch`: provision images without booting.
pub fn fetch_command(common: &CommonArgs) -> Result<()> {
    let matrix = Matrix::load(&common.matrix)?;
    let kernels = matrix.select_in(&common.kernels, &common.groups)?;
    let layout = crate::layout::Layout::new(common, None);
    let images = Images::new(&layout.images, &matrix);
    let lock = ensure_locked(&images, &matrix, &kernels, &layout.lockfile)?;
    let progress = IndicatifProgress::new();
    let mut failed = 0;
    for kernel in kernels
        .iter()
        .filter(|k| !matches!(k.source, KernelSource::Host))
    {
        match images.provision(kernel, &lock, &progress) {
            Ok(image) => println!(
                "{:6} {} {}",
                kernel.name,
                image.release,
                image.vmlinux.display()
            ),
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e}", kernel.name);
            }
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} kernel image(s) could not be provisioned"
    );
    // What boots them, too, so that a fetched matrix runs without the network.
    if kernels
        .iter()
        .any(|k| k.backend == crate::matrix::config::Backend::VirtmeNg)
    {
        host_tools::ensure(&host_tools::virtme_ng_requirements(), !common.no_install)?;
        let vng = host_tools::ensure_virtme_ng(&layout.work.join("tools"), !common.no_install)?;
        println!("virtme-ng {}", vng.display());
    }
    Ok(())
}
