//! The kernel as a third oracle (`--kernel-core`, issue 12 item 6), end to end: on 6.1 every
//! program of `programs/` with CO-RE relocations is relocated by the kernel itself to the same
//! translated instructions as ours (the corpus's local layouts differ from every kernel's, so
//! a kernel that skipped the relocations would differ); 5.10 has no `core_relos` and says so.

mod faults_support;

use faults_support::*;

#[test]
fn the_kernel_relocates_the_corpus_as_ours_does_where_it_can() {
    let dir = tempfile::tempdir().unwrap().keep();
    let out = run_harness(
        &dir,
        &[
            "--matrix",
            "kernels.toml",
            "--kernel",
            "5.10",
            "--kernel",
            "6.1",
            "--kernel-core",
            "kernel-core",
        ],
    );
    for object in [
        "task_walk",
        "core_facts",
        "udp_drop_watch",
        "open_watch",
        "tcp_watch",
    ] {
        let name = format!("6.1::{object}::kernel-core");
        assert_eq!(
            out.trial_status(&name),
            "passed",
            "{name}: {}\n{}",
            out.trial_message(&name),
            out.transcript()
        );
        let name = format!("5.10::{object}::kernel-core");
        assert_eq!(
            out.trial_status(&name),
            "unsupported",
            "{}",
            out.transcript()
        );
        assert!(
            out.trial_message(&name)
                .contains("this kernel does not relocate programs itself"),
            "{}",
            out.trial_message(&name)
        );
    }
    let figures = out
        .stdout
        .lines()
        .find(|l| l.starts_with("kernel CO-RE on 6.1:"))
        .unwrap_or_else(|| panic!("no figures line\n{}", out.transcript()));
    assert!(figures.contains(" 0 disagreements"), "{figures}");
    let identical: usize = figures
        .split("objects: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(identical >= 10, "{figures}");
    assert_eq!(out.report()["counts"]["failed"], 0, "{}", out.transcript());
}
