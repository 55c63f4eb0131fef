//! Two runs at once, sharing one image cache that neither has filled yet: both must provision
//! (one waits for the other's extraction), boot and pass, and the cache must end up whole.

mod support;

use support::*;

#[test]
fn two_runs_sharing_a_cold_image_cache_both_succeed() {
    // A fresh cache holding only the 5.10 package (hard-linked from the workspace's cache, so
    // no download), so both runs must build the kernel image at the same moment.
    let cache = cache_with_packages_of(&repository_lock(), "5.10");
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let children: Vec<_> = dirs
        .iter()
        .map(|dir| {
            harness_command(dir.path())
                .args(["--matrix", "kernels.toml", "--kernel", "5.10", "--images"])
                .arg(cache.path())
                .arg("--programs")
                .arg(fault_programs("green"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Outcome> = children
        .into_iter()
        .zip(&dirs)
        .map(|(child, dir)| finish(dir.path(), child.wait_with_output().unwrap()))
        .collect();
    for out in &outs {
        assert_eq!(out.code(), Some(0), "{}", out.transcript());
        assert_eq!(out.kernel("5.10")["outcome"], "COMPLETED");
        assert_eq!(out.report()["counts"]["failed"], 0);
    }
    // One image, complete, and nothing half-written left in the cache's scratch space.
    let kernels: Vec<_> = std::fs::read_dir(cache.path().join("kernels"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(kernels.len(), 1, "{kernels:?}");
    let tmp = cache.path().join("tmp");
    if tmp.exists() {
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
