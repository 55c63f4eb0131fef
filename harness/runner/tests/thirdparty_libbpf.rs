//! A real third-party corpus, handed to the harness the way a user hands in a build directory:
//! a curated set of the kernel's own BPF selftests (from Debian's `linux-source-6.12`, compiled
//! as their Makefile does, cached under images/thirdparty by scripts/selftests-corpus.sh), run
//! load-only on every kernel of the default matrix, and compared program by program with what
//! libbpf does in the same kernel (scripts/compare-libbpf.sh). Every program libbpf loads must
//! load here, and every program it refuses must be refused here.

mod support;

use std::process::Command;

use support::*;

#[test]
fn selftests_load_where_libbpf_loads_them_on_every_kernel() {
    // Its own copy of the corpus, apart from the one the libbpf tests build under target/.
    let dir = selftests_corpus(&workspace().join("images/thirdparty/corpus-list"));
    let objects = std::fs::read_dir(&dir).unwrap().count();
    assert!(
        objects >= 20,
        "only {objects} third-party objects in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for kernel in ["5.10", "6.1", "6.12", "7.2"] {
        let out = Command::new("sh")
            .arg(workspace().join("scripts/compare-libbpf.sh"))
            .arg(kernel)
            .arg(&dir)
            .env("HARNESS_BIN", env!("CARGO_BIN_EXE_harness"))
            .current_dir(workspace())
            .output()
            .expect("scripts/compare-libbpf.sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        // The figures go to the CI log: per kernel, loaded by both, refused by both.
        println!("{stdout}");
        let verdict = stdout
            .lines()
            .find(|l| l.starts_with(&format!("kernel {kernel}:")))
            .unwrap_or_default()
            .to_string();
        if !out.status.success() || !verdict.contains("disagreements 0") {
            failures.push(format!(
                "{kernel}: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        assert!(
            !verdict.contains("loaded by both 0,"),
            "{kernel}: nothing loaded at all: {verdict}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
