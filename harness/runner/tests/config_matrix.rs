//! The repository's `kernels.toml` parses, and `kernels.lock` pins every Debian kernel in it
//! with up-to-date patterns (offline).

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::matrix::config::{KernelSource, Matrix};
use harness::matrix::lockfile::Lockfile;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn repository_matrix_parses() {
    let m = Matrix::load(&workspace().join("kernels.toml")).unwrap();
    let names: Vec<&str> = m.kernels.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "5.10",
            "6.1",
            "6.12",
            "7.2",
            "6.1-arm64",
            "6.12-arm64",
            "7.2-arm64",
            "host",
            "6.12-src",
            "6.12-src-vng"
        ]
    );
    let default: Vec<&str> = m
        .select(&[])
        .unwrap()
        .iter()
        .map(|k| k.name.as_str())
        .collect();
    assert_eq!(default, ["5.10", "6.1", "6.12", "7.2"]);
    // The arm64 kernels are the nightly group, which the nightly workflow adds to the default.
    let nightly: Vec<&str> = m
        .select_in(&[], &["default".into(), "nightly".into()])
        .unwrap()
        .iter()
        .map(|k| k.name.as_str())
        .collect();
    assert_eq!(
        nightly,
        [
            "5.10",
            "6.1",
            "6.12",
            "7.2",
            "6.1-arm64",
            "6.12-arm64",
            "7.2-arm64"
        ]
    );
    assert!(m.kernels[4..7]
        .iter()
        .all(|k| k.arch == harness::matrix::config::Arch::Aarch64 && k.group == "nightly"));
    let workflow =
        std::fs::read_to_string(workspace().join(".github/workflows/nightly.yml")).unwrap();
    assert!(workflow.contains("--group default --group nightly"));
    assert_eq!(m.kernels[0].boot_timeout, Duration::from_secs(60));
    assert_eq!(m.kernels[0].memory_mib, 1024);
    assert_eq!(m.kernels[7].source, KernelSource::Host);
    // The source-built kernel runs only when asked for (its first build takes minutes), from
    // the tree scripts/source-kernel.sh links, without BTF of its own; the nightly builds it.
    let src = &m.kernels[8];
    assert_eq!(src.group, "source");
    assert!(src.btf_from_dwarf);
    match &src.source {
        KernelSource::Tree(tree) => {
            assert!(tree.tree.ends_with("images/src/linux-6.12"), "{tree:?}");
            assert_eq!(tree.config.len(), 1);
            assert!(tree.config[0].is_file(), "{tree:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(workflow.contains("scripts/source-kernel.sh"));
    // The same kernel booted by virtme-ng: one build directory for both entries.
    let vng = &m.kernels[9];
    assert_eq!(vng.backend, harness::matrix::config::Backend::VirtmeNg);
    assert_eq!(src.backend, harness::matrix::config::Backend::Qemu);
    assert_eq!((vng.group.as_str(), vng.btf_from_dwarf), ("source", true));
    let (KernelSource::Tree(a), KernelSource::Tree(b)) = (&src.source, &vng.source) else {
        panic!("{:?} {:?}", src.source, vng.source);
    };
    assert_eq!(
        harness::images::source_tree::build_dir(a, Path::new("/cache")),
        harness::images::source_tree::build_dir(b, Path::new("/cache"))
    );
    let script = std::fs::read_to_string(workspace().join("scripts/source-kernel.sh")).unwrap();
    assert!(script.contains("--kernel 6.12-src-vng"));
    assert_eq!(m.mirror, None, "the repository must not name a mirror");
}

#[test]
fn repository_lock_matches_matrix() {
    let m = Matrix::load(&workspace().join("kernels.toml")).unwrap();
    let lock = Lockfile::load(&workspace().join("kernels.lock")).unwrap();
    for k in &m.kernels {
        let KernelSource::Debian(d) = &k.source else {
            assert!(lock.kernel(&k.name).is_none());
            continue;
        };
        let l = lock
            .kernel(&k.name)
            .unwrap_or_else(|| panic!("{} not locked", k.name));
        assert_eq!(l.stale_reason(d, k.arch.debian()), None, "{}", k.name);
        for (p, pat) in l.packages.iter().zip(&d.packages) {
            assert!(pat.matches(&p.name), "{} does not match {pat}", p.name);
            assert_eq!(p.sha256.len(), 64);
        }
    }
    let text = std::fs::read_to_string(workspace().join("kernels.lock")).unwrap();
    assert!(text.contains("cargo run -p harness -- lock"));
}
