//! Builds the guest agent as a static binary, with the same cargo that runs the harness.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use host_tools::AGENT_TARGET;

/// The workspace this harness was built from (the agent's sources live there).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

pub fn target_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
}

/// Builds (or finds up to date) the static agent and returns its path.
///
/// It gets a target directory of its own: the cargo that runs the harness (or its tests) may
/// still hold the lock on the main one, and the agent's musl build shares nothing with it anyway.
pub fn build_agent(workspace: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let agent_target_dir = target_dir(workspace).join("harness").join("agent-build");
    let output = Command::new(&cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "guest-agent",
            "--target",
            AGENT_TARGET,
        ])
        .arg("--target-dir")
        .arg(&agent_target_dir)
        .output()
        .with_context(|| format!("cannot run {}", PathBuf::from(&cargo).display()))?;
    if !output.status.success() {
        bail!(
            "building the guest agent failed:\n{}\n(is the target installed? rustup target add {AGENT_TARGET})",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let path = agent_target_dir
        .join(AGENT_TARGET)
        .join("release")
        .join("guest-agent");
    if !path.is_file() {
        bail!(
            "the agent build succeeded but {} is not there",
            path.display()
        );
    }
    Ok(path)
}
