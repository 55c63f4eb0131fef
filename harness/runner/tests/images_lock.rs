//! Resolving the repository's matrix against the live Debian archive.
//!
//! `cargo test -p harness --test images_lock -- --ignored` resolves every Debian kernel of
//! `kernels.toml` (network, a few seconds per suite) and checks the result; with
//! `HARNESS_WRITE_LOCK=1` it also writes `kernels.lock` (what `harness lock` does).

mod support;

use harness::images::{Images, NoProgress};
use harness::matrix::config::KernelSource;
use harness::matrix::lockfile::Lockfile;

use support::*;

#[test]
#[ignore = "network: resolves the whole matrix against the Debian archive"]
fn resolve_repository_matrix() {
    let _ = NoProgress;
    let matrix = repository_matrix();
    let cache = tempfile::tempdir().unwrap();
    let images = Images::new(cache.path(), &matrix);
    let all: Vec<_> = matrix.kernels.iter().collect();
    let t = std::time::Instant::now();
    let lock = images.resolve(&matrix, &all, None).unwrap();
    eprintln!("resolved in {:?}", t.elapsed());
    let debian = matrix
        .kernels
        .iter()
        .filter(|k| matches!(k.source, KernelSource::Debian(_)))
        .count();
    assert_eq!(lock.kernels.len(), debian);
    for k in &lock.kernels {
        for p in &k.packages {
            assert!(
                !p.name.contains("cloud") && !p.name.contains("-rt-"),
                "{p:?}"
            );
            assert_eq!(p.sha256.len(), 64);
            assert!(p.size > 100_000);
        }
    }
    print!("{}", lock.to_text(std::path::Path::new("kernels.lock")));
    if std::env::var_os("HARNESS_WRITE_LOCK").is_some() {
        lock.save(&workspace().join("kernels.lock")).unwrap();
    }
    // `lock --update 5.10` keeps the other pins.
    let one = vec![matrix.kernel("5.10").unwrap()];
    let mut existing = lock.clone();
    existing
        .kernels
        .iter_mut()
        .for_each(|k| k.packages[0].version.push_str("~old"));
    let updated = images.resolve(&matrix, &one, Some(&existing)).unwrap();
    assert_eq!(updated.kernel("5.10"), lock.kernel("5.10"));
    assert_eq!(updated.kernel("6.1"), existing.kernel("6.1"));
    let _: Option<Lockfile> = None;
}
