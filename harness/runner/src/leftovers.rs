//! Temporaries a run may leave behind if it is killed (SIGKILL, a crash) carry their owner's
//! pid in their name: `<prefix><pid>.<random>`. The next run removes those whose owner is gone,
//! and never one of a live run.

use std::path::{Path, PathBuf};

/// `<prefix><our pid>.`: what a temporary's name starts with, for `tempfile::Builder::prefix`.
pub fn owned_prefix(prefix: &str) -> String {
    format!("{prefix}{}.", std::process::id())
}

/// Whether a process with this pid exists (a zombie counts: its parent still owns it).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        // It exists, but belongs to someone else.
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// The owner pid encoded in `name` after `prefix`, if the name has that shape.
pub fn owner_of(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let (pid, random) = rest.split_once('.')?;
    if random.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// Entries of `dir` named `<prefix><pid>.<random>` whose owner is no longer alive.
pub fn stale_entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| owner_of(n, prefix))
                .is_some_and(|pid| !pid_alive(pid))
        })
        .map(|e| e.path())
        .collect()
}

/// Removes what [`stale_entries`] finds; returns how many were removed.
pub fn remove_stale(dir: &Path, prefix: &str) -> usize {
    stale_entries(dir, prefix)
        .into_iter()
        .filter(|p| {
            if p.is_dir() {
                std::fs::remove_dir_all(p).is_ok()
            } else {
                std::fs::remove_file(p).is_ok()
            }
        })
        .count()
}

/// Run directories are `<work>/runs/<stamp>-<pid>/<kernel>/`: of a run whose owner is gone,
/// the rebuildable bulk (initramfs files, shared-memory bundle files, host bundles) is removed and the console logs kept
/// (the oldest runs are pruned as a whole elsewhere). Returns how many files or dirs went.
pub fn reclaim_dead_runs(runs: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return 0;
    };
    let mut removed = 0;
    for run in entries.flatten() {
        let name = run.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.rsplit_once('-'))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        let Ok(kernels) = std::fs::read_dir(run.path()) else {
            continue;
        };
        for kernel in kernels.flatten() {
            for (bulk, is_dir) in [
                ("initramfs.cpio", false),
                (crate::vm::snapshot::BUNDLE_REGION_FILE, false),
                ("bundle", true),
            ] {
                let path = kernel.path().join(bulk);
                let gone = if is_dir {
                    path.is_dir() && std::fs::remove_dir_all(&path).is_ok()
                } else {
                    std::fs::remove_file(&path).is_ok()
                };
                removed += usize::from(gone);
            }
        }
    }
    removed
}

/// A child that must not outlive the harness: killed when the harness dies, whatever kills it.
pub fn die_with_harness(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_runs_bulk_is_reclaimed_and_its_logs_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dead = tmp.path().join("1700000000000-4194305/5.10");
        let live = tmp
            .path()
            .join(format!("1700000000001-{}/5.10", std::process::id()));
        for d in [&dead, &live] {
            std::fs::create_dir_all(d.join("bundle")).unwrap();
            std::fs::write(d.join("initramfs.cpio"), b"x").unwrap();
            std::fs::write(d.join("bundle.shm"), b"x").unwrap();
            std::fs::write(d.join("console.log"), b"x").unwrap();
        }
        assert_eq!(reclaim_dead_runs(tmp.path()), 3);
        assert!(!dead.join("initramfs.cpio").exists() && !dead.join("bundle").exists());
        assert!(!dead.join("bundle.shm").exists() && live.join("bundle.shm").exists());
        assert!(dead.join("console.log").exists());
        assert!(live.join("initramfs.cpio").exists() && live.join("bundle").exists());
    }

    #[test]
    fn owner_names() {
        assert_eq!(owner_of("kernel.123.abc", "kernel."), Some(123));
        assert_eq!(owner_of("kernel.abc", "kernel."), None);
        assert_eq!(owner_of("kernel.123.", "kernel."), None);
        assert_eq!(owner_of(".download.7.x", ".download."), Some(7));
        assert_eq!(owner_of("other.7.x", "kernel."), None);
    }

    #[test]
    fn only_dead_owners_leftovers_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22: this pid cannot exist.
        let dead = tmp.path().join("kernel.4194305.x");
        let ours = tmp.path().join(format!("{}x", owned_prefix("kernel.")));
        let unrelated = tmp.path().join("kernel.keep");
        for d in [&dead, &ours, &unrelated] {
            std::fs::create_dir_all(d.join("sub")).unwrap();
        }
        std::fs::write(tmp.path().join("kernel.4194306.file"), b"x").unwrap();
        assert!(!pid_alive(4_194_305));
        assert!(pid_alive(std::process::id()));
        assert!(pid_alive(1));
        assert_eq!(remove_stale(tmp.path(), "kernel."), 2);
        assert!(!dead.exists());
        assert!(ours.exists() && unrelated.exists());
    }
}
