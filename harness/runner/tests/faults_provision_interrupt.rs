//! SIGTERM while a kernel package downloads: the harness exits 130 at once (not 143), its
//! `apt-helper` dies with it (none is left running with parent 1), and the half-downloaded
//! package's temporary directory is removed by the next run that takes the image's lock.
//!
//! The mirror is a local socket that accepts connections and never answers, so the download
//! hangs for as long as the test wants, and nothing is fetched from the network.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::*;

/// The temporary directories of downloads under way (or left by a killed run) in `debs`.
fn downloads(debs: &Path) -> Vec<PathBuf> {
    dir_entries(debs, |name| name.starts_with(".download."))
}

/// Starts a run and waits until its download is under way; returns the child and the download
/// directories that exist at that point.
fn start_until_downloading(dir: &Path, matrix: &Path, images: &Path) -> std::process::Child {
    let child = harness_command(dir)
        .args(["--no-install", "--kernel", "5.10", "--matrix"])
        .arg(matrix)
        .arg("--images")
        .arg(images)
        .arg("--programs")
        .arg(fault_programs("green"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let needle = images.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    while processes_mentioning("apt-helper", &needle).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no download started within 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn terminate(mut child: std::process::Child) -> Outcome {
    let sent = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "the harness did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Outcome::from_output(child.wait_with_output().unwrap())
}

#[test]
fn sigterm_while_downloading_exits_130_and_leaves_nothing_running_or_stale() {
    let mirror = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = mirror.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in mirror.incoming().flatten() {
            held.push(connection); // accepted, never answered
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    let matrix = temp_matrix(
        dir.path(),
        &format!(
            "mirror = \"http://127.0.0.1:{port}/debian\"\n[[kernel]]\nname = \"5.10\"\n{}\n",
            debian_source("5.10")
        ),
    );
    let debs = images.join("debs");
    let needle = images.display().to_string();

    let first = start_until_downloading(dir.path(), &matrix, &images);
    let first_pid = first.id();
    let out = terminate(first);
    assert_eq!(out.code(), Some(130), "{}", out.transcript());
    // The parent-death signal is immediate; allow the kernel a moment to deliver it.
    std::thread::sleep(Duration::from_millis(300));
    let orphans = processes_mentioning("apt-helper", &needle);
    assert!(
        orphans.is_empty(),
        "apt-helper outlived the harness: {orphans:?}"
    );
    let stale = downloads(&debs);
    assert!(
        stale.iter().any(|p| p
            .to_str()
            .unwrap()
            .contains(&format!(".download.{first_pid}."))),
        "the killed run's download directory is named after it: {stale:?}"
    );

    // The next run takes the lock and removes what the first one left.
    let second = start_until_downloading(dir.path(), &matrix, &images);
    let left = downloads(&debs);
    for old in &stale {
        assert!(
            !left.contains(old),
            "{} was not reclaimed: {left:?}",
            old.display()
        );
    }
    let out = terminate(second);
    assert_eq!(out.code(), Some(130), "{}", out.transcript());
}
