//! Interruption: SIGINT or SIGTERM while guests run. The harness must leave no QEMU process
//! behind within 2 s, exit with 130, and still write its reports, with the interrupted kernels
//! marked INTERRUPTED and `interrupted: true`.

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::*;

fn interrupt_a_run(signal: Signal) {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    // Both agents hang after their first result, so the guests are surely still running when
    // the signal comes, whatever the machine's speed.
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
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let needle = work.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    while qemu_processes_mentioning(&needle).len() < 2 {
        assert!(Instant::now() < deadline, "no guest started within 120 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the harness ended early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the guests get into their boot.
    std::thread::sleep(Duration::from_millis(1500));
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    let sent = Instant::now();
    let output = {
        // Wait for the harness (bounded) while watching the QEMU processes go.
        let mut gone_after = None;
        let status = loop {
            if gone_after.is_none() && qemu_processes_mentioning(&needle).is_empty() {
                gone_after = Some(sent.elapsed());
            }
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if sent.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("the harness did not stop within 30 s of {signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let gone_after = gone_after.unwrap_or_else(|| sent.elapsed());
        let leftover = qemu_processes_mentioning(&needle);
        assert!(
            leftover.is_empty(),
            "QEMU still running after the harness exited: {leftover:?}"
        );
        assert!(
            gone_after <= Duration::from_secs(2),
            "QEMU processes outlived {signal} by {gone_after:?}"
        );
        let mut out = std::process::Output {
            status,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        use std::io::Read;
        child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut out.stdout)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_end(&mut out.stderr)
            .unwrap();
        out
    };
    let out = finish(dir.path(), output);
    assert_eq!(out.code(), Some(130), "{}", out.transcript());
    assert!(out.stderr.contains("interrupted"), "{}", out.transcript());
    let report = out.report();
    assert_eq!(report["interrupted"], true, "{report:#}");
    for kernel in ["5.10", "6.1"] {
        let k = out.kernel(kernel);
        assert_eq!(k["outcome"], "INTERRUPTED", "{k:#}");
    }
    // The JUnit report is written too, and says so.
    assert!(out.junit().contains("INTERRUPTED"), "{}", out.junit());
    assert!(
        out.summary_row("5.10").contains("INTERRUPTED"),
        "{}",
        out.stdout
    );
}

#[test]
fn sigint_stops_every_guest_and_keeps_a_partial_report() {
    interrupt_a_run(Signal::SIGINT);
}

#[test]
fn sigterm_stops_every_guest_and_keeps_a_partial_report() {
    interrupt_a_run(Signal::SIGTERM);
}
