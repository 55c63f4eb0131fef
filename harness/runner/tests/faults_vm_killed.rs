//! A QEMU killed from outside the harness (a user, the OOM killer) is reported as what happened:
//! `VM_KILLED` with the signal, the console tail kept, the kernel's trials failed, exit 1; never
//! `LAUNCH_FAILED` (before hello) or `AGENT_CRASH` (after hello).
//!
//! One run of two kernels whose agents hang after their first result (so they are surely still
//! running when the signal comes): 5.10's QEMU gets SIGKILL right after it starts, before the
//! agent can say hello; 6.1's gets SIGTERM (which QEMU catches, saying so on stderr, and exits 0)
//! well after hello. Both ways a guest starts: restored from its ready snapshot (the default)
//! and booted fresh.

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::*;

/// The guest's QEMU: its per-run file (shared-memory bundle or initramfs) is in `<work>/.../<kernel>/`.
fn qemu_of(work: &str, kernel: &str) -> Option<u32> {
    let needles = [
        format!("/{kernel}/initramfs.cpio"),
        format!("/{kernel}/bundle.shm"),
    ];
    qemu_processes_mentioning(work).into_iter().find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                let text = String::from_utf8_lossy(&c);
                needles.iter().any(|n| text.contains(n.as_str()))
            })
            .unwrap_or(false)
    })
}

#[test]
fn a_killed_restored_qemu_is_reported_as_vm_killed_with_its_signal() {
    killed_qemus(&[]);
}

#[test]
fn a_killed_fresh_qemu_is_reported_as_vm_killed_with_its_signal() {
    killed_qemus(&["--fresh-boot"]);
}

fn killed_qemus(mode: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work").display().to_string();
    let mut child = harness_command(dir.path())
        .args([
            "--matrix",
            "kernels.toml",
            "--kernel",
            "5.10",
            "--kernel",
            "6.1",
            "-j",
            "2",
            "--programs",
        ])
        .arg(fault_programs("green"))
        .args(["--inject-fault", "5.10=hang", "--inject-fault", "6.1=hang"])
        .args(mode)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wait_for = |kernel: &str, child: &mut std::process::Child| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(pid) = qemu_of(&work, kernel) {
                return pid;
            }
            assert!(Instant::now() < deadline, "no {kernel} guest within 120 s");
            assert!(
                child.try_wait().unwrap().is_none(),
                "the harness ended early"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let early = wait_for("5.10", &mut child);
    kill(Pid::from_raw(early as i32), Signal::SIGKILL).unwrap();
    let late = wait_for("6.1", &mut child);
    // Hello comes 0.2-4 s after QEMU starts under TCG; the agent then hangs for test_timeout_s
    // (30). A restored guest's VM is killed from outside, not failed as a restore: no rebuild.
    std::thread::sleep(Duration::from_secs(12));
    kill(Pid::from_raw(late as i32), Signal::SIGTERM).unwrap();
    let output = child.wait_with_output().unwrap();
    let out = finish(dir.path(), output);
    assert_eq!(out.code(), Some(1), "{}", out.transcript());

    let before = out.kernel("5.10");
    assert_eq!(before["outcome"], "VM_KILLED", "{before:#}");
    assert!(
        before["release"].is_null(),
        "killed before hello\n{before:#}"
    );
    let detail = before["detail"].as_str().unwrap();
    assert!(detail.contains("signal 9 (SIGKILL)"), "{detail}");

    let after = out.kernel("6.1");
    assert!(
        after["release"].is_string(),
        "killed after hello\n{after:#}"
    );
    assert_eq!(after["outcome"], "VM_KILLED", "{after:#}");
    let detail = after["detail"].as_str().unwrap();
    assert!(detail.contains("signal 15 (SIGTERM)"), "{detail}");
    // QEMU's own last word is in the console tail.
    let tail = after["console_tail"].as_str().unwrap();
    assert!(tail.contains("terminating on signal 15"), "{tail}");

    assert!(
        !out.stderr.contains("did not restore") && !out.stderr.contains("booting fresh"),
        "{}",
        out.transcript()
    );
    for kernel in ["5.10", "6.1"] {
        assert!(
            out.summary_row(kernel).contains("VM_KILLED"),
            "{}",
            out.stdout
        );
        let suite = out.junit_suite(kernel);
        assert!(suite.contains("VM_KILLED"), "{suite}");
        // The hang comes after the first result, so `second` never has one.
        assert_eq!(
            out.trial_status(&format!("{kernel}::pass::second")),
            "failed",
            "{}",
            out.transcript()
        );
        assert!(
            out.trial_message(&format!("{kernel}::pass::second"))
                .contains("VM_KILLED"),
            "{}",
            out.transcript()
        );
    }
}
