//! End to end: guests restored from ready snapshots (the default; `--snapshot` is its old
//! spelling) must produce exactly what fresh boots (`--fresh-boot`) produce, on real kernels with
//! the real corpus; and a damaged snapshot is rebuilt with a note, never a failed run.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use support::*;

/// A run of the repository's matrix with these arguments, from `images` if given (else the
/// shared image cache).
fn run(args: &[&str], images: Option<&Path>) -> Outcome {
    let mut all: Vec<&OsStr> = ["--matrix", "kernels.toml"]
        .iter()
        .chain(args)
        .map(|a| OsStr::new(*a))
        .collect();
    if let Some(images) = images {
        all.extend([OsStr::new("--images"), images.as_os_str()]);
    }
    run_harness_in_default_work_dir(all)
}

/// Measured times (`*_us`, `*_ns`) are not results: everything else must match.
fn without_timings(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.ends_with("_us") && !k.ends_with("_ns"))
                .map(|(k, v)| (k.clone(), without_timings(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_timings).collect()),
        other => other.clone(),
    }
}

fn trial_outcomes(report: &Value) -> BTreeMap<String, Value> {
    report["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["outcome"].clone(),
            )
        })
        .collect()
}

/// Per kernel: every case result and every object's load report, timings aside.
fn results(report: &Value) -> BTreeMap<String, (Value, Value)> {
    report["replay"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            (
                run["kernel"].as_str().unwrap().to_string(),
                (
                    without_timings(&run["cases"]),
                    without_timings(&run["objects"]),
                ),
            )
        })
        .collect()
}

/// Guests restored from a snapshot whose bundle came through shared memory (only its 16-byte
/// header over the results port).
fn restored_logs(report: &Value) -> usize {
    report["replay"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|run| {
            run["logs"].as_array().unwrap().iter().any(|l| {
                let l = l.as_str().unwrap_or("");
                l.contains("restored from ready snapshot")
                    && l.contains("16 of them over the results port")
            })
        })
        .count()
}

#[test]
fn snapshot_runs_match_fresh_boots_on_two_kernels() {
    let kernels = ["--kernel", "5.10", "--kernel", "7.2"];
    let fresh = run(&[&kernels[..], &["--fresh-boot"]].concat(), None);
    assert!(
        fresh.status.success(),
        "fresh boot failed:\n{}",
        fresh.stderr
    );
    // Twice: the first may build the snapshots, the second surely restores them (asked for
    // with the old opt-in flag, which is the default now).
    for (round, mode) in [[].as_slice(), &["--snapshot"]].into_iter().enumerate() {
        let snap = run(&[&kernels[..], mode].concat(), None);
        assert!(
            snap.status.success(),
            "snapshot round {round} failed:\n{}",
            snap.stderr
        );
        assert_eq!(restored_logs(snap.report()), 2, "{}", snap.stderr);
        assert!(!snap.stderr.contains("booting fresh"), "{}", snap.stderr);
        assert_eq!(
            trial_outcomes(snap.report()),
            trial_outcomes(fresh.report())
        );
        let (a, b) = (results(snap.report()), results(fresh.report()));
        assert_eq!(a.keys().collect::<Vec<_>>(), ["5.10", "7.2"]);
        for kernel in a.keys() {
            assert!(
                a[kernel] == b[kernel],
                "kernel {kernel}: snapshot and fresh-boot results differ"
            );
        }
        for run in snap.report()["replay"]["runs"].as_array().unwrap() {
            // The restored guest proved itself, and its clock was set from the host's.
            let identity = &run["identity"];
            assert!(identity["boot_id"].as_str().is_some_and(|b| b.len() == 36));
            let guest_ms = identity["clock_unix_ms"].as_u64().unwrap();
            let host_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            assert!(
                host_ms.abs_diff(guest_ms) < 120_000,
                "guest clock {guest_ms} vs host {host_ms}"
            );
        }
    }
}

/// A private image cache: the shared kernels' files linked in, so that the snapshots this
/// test damages are its own.
fn private_cache() -> tempfile::TempDir {
    let shared = images();
    // On a fresh machine the shared cache may not hold the kernel yet (or another test is still
    // provisioning it): fetch it there first (the cache's lock serializes the two), so the
    // private copy is complete.
    fetch(&["6.1"]);
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(shared.join("debs"), dir.path().join("debs")).unwrap();
    for entry in std::fs::read_dir(shared.join("kernels")).unwrap().flatten() {
        let mine = dir.path().join("kernels").join(entry.file_name());
        std::fs::create_dir_all(&mine).unwrap();
        for file in std::fs::read_dir(entry.path()).unwrap().flatten() {
            if file.path().is_file() {
                std::os::unix::fs::symlink(file.path(), mine.join(file.file_name())).unwrap();
            }
        }
    }
    dir
}

fn snapshot_dirs(cache: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for kernel in std::fs::read_dir(cache.join("kernels")).unwrap().flatten() {
        let Ok(entries) = std::fs::read_dir(kernel.path().join("ready")) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.path().join("state").is_file() {
                dirs.push(entry.path());
            }
        }
    }
    dirs
}

#[test]
fn a_damaged_snapshot_is_rebuilt_with_a_note_and_the_run_passes() {
    let cache = private_cache();
    // The default path, which restores from snapshots.
    let args = ["--kernel", "6.1"];
    let first = run(&args, Some(cache.path()));
    assert!(first.status.success(), "{}", first.stderr);
    assert!(
        first.stderr.contains("building its ready snapshot"),
        "{}",
        first.stderr
    );
    let dirs = snapshot_dirs(cache.path());
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let state = dirs[0].join("state");

    // Bytes flipped in the middle (guest RAM): caught by the checksum before QEMU loads it.
    let mut bytes = std::fs::read(&state).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 4096] {
        *b ^= 0x5a;
    }
    std::fs::write(&state, &bytes).unwrap();
    let damaged = run(&args, Some(cache.path()));
    assert!(damaged.status.success(), "{}", damaged.stderr);
    assert!(
        damaged
            .stderr
            .contains("ready snapshot discarded and rebuilt")
            && damaged.stderr.contains("damaged"),
        "{}",
        damaged.stderr
    );
    assert_eq!(restored_logs(damaged.report()), 1);
    assert_eq!(
        trial_outcomes(damaged.report()),
        trial_outcomes(first.report())
    );

    // A state QEMU refuses though its record matches (as a changed QEMU would): the restore
    // fails, the snapshot is rebuilt and the run still restores from the new one.
    let dirs = snapshot_dirs(cache.path());
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let garbage = b"not a migration stream".repeat(1000);
    std::fs::write(dirs[0].join("state"), &garbage).unwrap();
    let meta_path = dirs[0].join("meta.json");
    let mut meta: Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    meta["state_bytes"] = garbage.len().into();
    meta["state_crc32"] = crc32fast::hash(&garbage).into();
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    let refused = run(&args, Some(cache.path()));
    assert!(refused.status.success(), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("did not restore") && refused.stderr.contains("rebuilding"),
        "{}",
        refused.stderr
    );
    assert_eq!(restored_logs(refused.report()), 1);
    assert_eq!(
        trial_outcomes(refused.report()),
        trial_outcomes(first.report())
    );
}
