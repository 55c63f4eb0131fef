//! Builds the guest agent (a static musl binary, `/init` of every guest) while the harness is
//! built, once per guest architecture (x86_64 and aarch64), so that the harness embeds both and
//! needs no checkout, cargo or rustup target at run time (`cargo install --path harness/runner`
//! gives a self-contained tool).
//!
//! The agents get a target directory of their own beside the outer one: a nested cargo must not
//! wait on the lock the outer build holds. Both are built by one nested cargo, in parallel.
//! `HARNESS_AGENT_BIN=PATH` embeds a prebuilt x86_64 agent instead, `HARNESS_AGENT_AARCH64_BIN=PATH`
//! a prebuilt aarch64 one (packagers, cross builds); `HARNESS_AGENT_AARCH64_BIN=none` embeds no
//! aarch64 agent (a build that saves its cost: arm64 kernels are then reported as not run).
//! The aarch64 agent links with the toolchain's own `rust-lld` and musl's self-contained C
//! runtime, so no cross compiler is needed (`CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER`
//! overrides the linker).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One agent to embed: its target, the file name in OUT_DIR and the variable naming a prebuilt.
struct Agent {
    target: &'static str,
    embedded: &'static str,
    prebuilt_var: &'static str,
}

const AGENTS: [Agent; 2] = [
    Agent {
        target: "x86_64-unknown-linux-musl",
        embedded: "guest-agent",
        prebuilt_var: "HARNESS_AGENT_BIN",
    },
    Agent {
        target: "aarch64-unknown-linux-musl",
        embedded: "guest-agent-aarch64",
        prebuilt_var: "HARNESS_AGENT_AARCH64_BIN",
    },
];

const AARCH64_LINKER_VAR: &str = "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let mut to_build = Vec::new();
    for agent in &AGENTS {
        let embedded = out_dir.join(agent.embedded);
        println!("cargo:rerun-if-env-changed={}", agent.prebuilt_var);
        match env::var_os(agent.prebuilt_var).filter(|p| !p.is_empty()) {
            Some(none) if none == "none" && agent.prebuilt_var != "HARNESS_AGENT_BIN" => {
                std::fs::write(&embedded, b"")
                    .unwrap_or_else(|e| panic!("writing {}: {e}", embedded.display()));
            }
            Some(prebuilt) => {
                let prebuilt = PathBuf::from(prebuilt);
                println!("cargo:rerun-if-changed={}", prebuilt.display());
                std::fs::copy(&prebuilt, &embedded).unwrap_or_else(|e| {
                    panic!("{}={}: {e}", agent.prebuilt_var, prebuilt.display())
                });
            }
            None => to_build.push(agent),
        }
    }
    if to_build.is_empty() {
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

    println!("cargo:rerun-if-env-changed={AARCH64_LINKER_VAR}");
    for agent in &to_build {
        ensure_target_installed(agent.target);
    }
    let agent_target_dir = agent_target_dir(&out_dir);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(&workspace)
        .args(["build", "--release", "--locked", "-p", "guest-agent"]);
    for agent in &to_build {
        command.args(["--target", agent.target]);
    }
    command.arg("--target-dir").arg(&agent_target_dir);
    if env::var_os(AARCH64_LINKER_VAR).is_none() {
        command.env(AARCH64_LINKER_VAR, "rust-lld");
    }
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
    let targets: Vec<&str> = to_build.iter().map(|a| a.target).collect();
    if !status.success() {
        panic!(
            "building the guest agent for {} failed: the compiler's output is above",
            targets.join(" and ")
        );
    }
    for agent in &to_build {
        let built = agent_target_dir
            .join(agent.target)
            .join("release")
            .join("guest-agent");
        let embedded = out_dir.join(agent.embedded);
        std::fs::copy(&built, &embedded).unwrap_or_else(|e| {
            panic!(
                "copying {} into {}: {e}",
                built.display(),
                embedded.display()
            )
        });
    }
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

/// The musl targets are the one thing the agents need that a plain Rust install lacks: add them
/// when rustup is there, as the rest of the project provisions what it needs.
fn ensure_target_installed(target: &str) {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot
        .as_ref()
        .is_some_and(|s| s.join("lib/rustlib").join(target).is_dir());
    if installed {
        return;
    }
    println!("cargo:warning=installing the Rust target {target} for the guest agent");
    let added = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .is_ok_and(|s| s.success());
    if !added {
        panic!(
            "the guest agent needs the Rust target {target}, and `rustup target add {target}` \
             did not succeed: install it (or set HARNESS_AGENT_BIN / HARNESS_AGENT_AARCH64_BIN to \
             a prebuilt static agent)"
        );
    }
}
