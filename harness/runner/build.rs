//! Builds the guest agent (a static musl binary, `/init` of every guest) while the harness is
//! built, so that the harness embeds it and needs no checkout, cargo or rustup target at run time
//! (`cargo install --path harness/runner` gives a self-contained tool).
//!
//! The agent gets a target directory of its own beside the outer one: a nested cargo must not
//! wait on the lock the outer build holds. `HARNESS_AGENT_BIN=PATH` embeds a prebuilt agent
//! instead (packagers, cross builds).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const AGENT_TARGET: &str = "x86_64-unknown-linux-musl";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let embedded = out_dir.join("guest-agent");
    println!("cargo:rerun-if-env-changed=HARNESS_AGENT_BIN");
    if let Some(prebuilt) = env::var_os("HARNESS_AGENT_BIN").filter(|p| !p.is_empty()) {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        std::fs::copy(&prebuilt, &embedded)
            .unwrap_or_else(|e| panic!("HARNESS_AGENT_BIN={}: {e}", prebuilt.display()));
        return;
    }

    let workspace = manifest_dir.join("../..");
    for crate_dir in ["guest-agent", "guest-protocol", "core-reloc", "bpf-loader"] {
        let dir = manifest_dir.join("..").join(crate_dir);
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );

    ensure_target_installed();
    let agent_target_dir = agent_target_dir(&out_dir);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(&workspace)
        .args(["build", "--release", "--locked", "-p", "guest-agent"])
        .args(["--target", AGENT_TARGET])
        .arg("--target-dir")
        .arg(&agent_target_dir);
    // What cargo tells this build script is about the outer build, not the agent's.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        // `cargo clippy` lints through a wrapper: the agent is built here, not linted (the
        // workspace's own clippy run lints its sources).
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", Path::new(&cargo).display()));
    if !status.success() {
        panic!(
            "building the guest agent for {AGENT_TARGET} failed: the compiler's output is above"
        );
    }
    let built = agent_target_dir
        .join(AGENT_TARGET)
        .join("release")
        .join("guest-agent");
    std::fs::copy(&built, &embedded).unwrap_or_else(|e| {
        panic!(
            "copying {} into {}: {e}",
            built.display(),
            out_dir.display()
        )
    });
}

/// `<target dir>/agent-build`: shared by every profile of the outer build, so switching between
/// `cargo build`, `cargo test` and `cargo clippy` does not rebuild the agent.
fn agent_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is <target>/[<triple>/]<profile>/build/<pkg>-<hash>/out.
    let mut dir = out_dir.to_path_buf();
    for _ in 0..4 {
        dir.pop();
    }
    if dir.file_name().is_some_and(|n| n == "build") || !dir.is_dir() {
        return out_dir.join("agent-build");
    }
    dir.join("agent-build")
}

/// The musl target is the one thing the agent needs that a plain Rust install lacks: add it
/// when rustup is there, as the rest of the project provisions what it needs.
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot
        .as_ref()
        .is_some_and(|s| s.join("lib/rustlib").join(AGENT_TARGET).is_dir());
    if installed {
        return;
    }
    println!("cargo:warning=installing the Rust target {AGENT_TARGET} for the guest agent");
    let added = Command::new("rustup")
        .args(["target", "add", AGENT_TARGET])
        .status()
        .is_ok_and(|s| s.success());
    if !added {
        panic!(
            "the guest agent needs the Rust target {AGENT_TARGET}, and `rustup target add {AGENT_TARGET}` \
             did not succeed: install it (or set HARNESS_AGENT_BIN to a prebuilt static agent)"
        );
    }
}
