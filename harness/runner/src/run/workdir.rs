//! Each run's own directory under the work directory, for console logs and initramfs files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// `<work>/kvm-probe.<pid>.d`: the KVM probe guest's files (see [`crate::leftovers`]).
pub(super) const KVM_PROBE_PREFIX: &str = "kvm-probe.";

/// Runs that share a workspace (parallel tests, two terminals) each get a directory of their
/// own for console logs and initramfs files; the oldest are pruned beyond `KEEP_RUNS`.
pub(super) fn new_run_dir(work: &Path) -> Result<PathBuf> {
    const KEEP_RUNS: usize = 10;
    let runs = work.join("runs");
    std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
    crate::leftovers::reclaim_dead_runs(&runs);
    crate::leftovers::remove_stale(work, KVM_PROBE_PREFIX);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let dir = runs.join(format!("{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut existing: Vec<PathBuf> = std::fs::read_dir(&runs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    existing.sort();
    let excess = existing.len().saturating_sub(KEEP_RUNS);
    for old in existing.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(dir)
}
