//! `kill -9` of the harness while a guest runs: QEMU dies with it, and what the run left behind
//! (its socket directory under TMPDIR, and in the work dir its guest's per-run bulk: the
//! shared-memory bundle file of a guest restored from its snapshot, the initramfs of a fresh
//! boot) is reclaimed by the next run, so repeated kills do not pile up files. Both paths.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

/// Every `<bulk>` under `<work>/runs/*/*/`.
fn bulk_files(work: &Path, bulk: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for run in dir_entries(&work.join("runs"), |_| true) {
        for kernel in dir_entries(&run, |_| true) {
            let file = kernel.join(bulk);
            if file.exists() {
                found.push(file);
            }
        }
    }
    found
}

#[test]
fn a_killed_runs_leftovers_are_reclaimed_by_the_next_run() {
    killed_and_reclaimed(&[], "bundle.shm");
}

#[test]
fn a_killed_fresh_boots_leftovers_are_reclaimed_by_the_next_run() {
    killed_and_reclaimed(&["--fresh-boot"], "initramfs.cpio");
}

/// `mode`: the harness arguments that pick the path; `bulk`: the per-run file it leaves.
fn killed_and_reclaimed(mode: &[&str], bulk: &str) {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let work = dir.path().join("work");
    let mut child = harness_command(dir.path())
        .env("TMPDIR", &tmp)
        .args(["--matrix", "kernels.toml", "--kernel", "5.10", "--programs"])
        .arg(fault_programs("green"))
        .args(["--inject-fault", "5.10=hang"])
        .args(mode)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let needle = work.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    while qemu_processes_mentioning(&needle).is_empty() {
        assert!(Instant::now() < deadline, "no guest started within 120 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        qemu_processes_mentioning(&needle).is_empty(),
        "QEMU outlived a killed harness"
    );
    let sockets = dir_entries(&tmp, |n| n.starts_with("harness-sock."));
    assert!(
        !sockets.is_empty(),
        "the killed run's socket directory is expected under TMPDIR"
    );
    let left = bulk_files(&work, bulk);
    assert!(
        !left.is_empty(),
        "the killed run's {bulk} is expected in the work dir"
    );

    // A normal run afterwards reclaims both, and leaves nothing of its own.
    let output = harness_command(dir.path())
        .env("TMPDIR", &tmp)
        .args(["--matrix", "kernels.toml", "--kernel", "5.10", "--programs"])
        .arg(fault_programs("green"))
        .args(mode)
        .output()
        .unwrap();
    let out = finish(dir.path(), output);
    assert_eq!(out.code(), Some(0), "{}", out.transcript());
    let sockets_after = dir_entries(&tmp, |n| n.starts_with("harness-sock."));
    assert!(
        sockets_after.is_empty(),
        "left in TMPDIR: {sockets_after:?}"
    );
    // Neither path leaves the other's bulk either.
    for bulk in ["bundle.shm", "initramfs.cpio"] {
        let after = bulk_files(&work, bulk);
        assert!(after.is_empty(), "left in the work dir: {after:?}");
    }
}
