//! Drives the differential test against libbpf (`differential/`, a workspace of its own because
//! libbpf-sys compiles C against libelf). Installs what that build needs the way the harness
//! installs its tools, then runs it with a target directory of its own and requires that libbpf
//! really compared (root), so a machine that cannot run it fails instead of passing quietly.

use std::path::Path;
use std::process::Command;

#[test]
fn engine_decides_every_relocation_as_libbpf_does() {
    // clang-19 builds the corpus; libbpf-dev brings libelf-dev and zlib1g-dev for libbpf-sys.
    host_tools::ensure_bpf_toolchain_for_tests();
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = crate_dir.join("../..");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("libbpf-differential");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["test", "--quiet", "--manifest-path"])
        .arg(crate_dir.join("differential/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--", "--nocapture"])
        .env("CORE_RELOC_REQUIRE_LIBBPF", "1")
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The figures (relocations compared per kind, disagreements) go to the CI log: written to
    // stderr directly, past libtest's capture.
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{stdout}{stderr}").as_bytes());
    assert!(
        output.status.success(),
        "the libbpf differential test failed:\n{stdout}\n{stderr}"
    );
}
