//! `identical::` sees the whole state: on real kernels (5.10 and 6.1, the test-only
//! `verdict-programs/differing` corpus) a program whose return value is the same everywhere but
//! whose unnamed array map and ring buffer differ must fail `identical::`, and the message in
//! the JSON, the JUnit `message` and on the terminal must show the differing entries per kernel,
//! decoded with the map's BTF, with what the program printed (bpf_printk). Filters count the same everywhere; one kernel alone says that
//! `identical` needs two.

mod support;

use std::path::PathBuf;
use std::sync::OnceLock;

use support::*;

/// The corpus of this file: a program whose maps differ by kernel.
fn differing() -> PathBuf {
    test_programs("verdict-programs/differing")
}

fn run(extra: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().unwrap().keep();
    let programs = differing();
    let mut args = vec![
        "--matrix",
        "kernels.toml",
        "--kernel",
        "5.10",
        "--kernel",
        "6.1",
        "--programs",
        programs.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_harness(&dir, &args)
}

fn full_run() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(|| run(&[]))
}

const IDENTICAL: &str = "identical::kernel_facts::facts_of_this_kernel";

#[test]
fn an_unnamed_map_that_differs_fails_identical_with_the_entries_per_kernel() {
    let out = full_run();
    for kernel in ["5.10", "6.1"] {
        // Each kernel meets the fixture's expectation (it names no map) ...
        assert_eq!(
            out.trial_status(&format!("{kernel}::kernel_facts::facts_of_this_kernel")),
            "passed",
            "{}",
            out.transcript()
        );
    }
    // ... but the kernels did not behave alike.
    assert_eq!(
        out.trial_status(IDENTICAL),
        "failed",
        "{}",
        out.transcript()
    );
    let m = out.trial_message(IDENTICAL);
    assert!(
        m.starts_with("kernels disagree on map events, map facts: 5.10 | 6.1"),
        "{m}"
    );
    // Decoded with the map's BTF: struct fields and enumerator names, per kernel.
    assert!(
        m.contains("5.10  { state_field: STATE_FIELD_OLD, state_size: 8 }"),
        "{m}"
    );
    assert!(
        m.contains("6.1   { state_field: STATE_FIELD_NEW, state_size: 4 }"),
        "{m}"
    );
    // The ring buffer's records, per kernel.
    assert!(m.contains("5.10  1 record(s): 0x0100000008000000"), "{m}");
    assert!(m.contains("6.1   1 record(s): 0x0200000004000000"), "{m}");
    // What the program printed (bpf_printk), per kernel, read from the guest's trace pipe.
    assert!(
        m.contains("--- bpf_printk (5.10) ---\nstate field 1 size 8"),
        "{m}"
    );
    assert!(
        m.contains("--- bpf_printk (6.1) ---\nstate field 2 size 4"),
        "{m}"
    );
    // The map excluded by the fixture is named as such and not diffed.
    assert!(m.contains("not compared (ignore_maps): timestamps"), "{m}");
    assert!(!m.contains("map timestamps:"), "{m}");
    // The JUnit message carries the difference itself, not just a title.
    let junit = out.junit();
    assert!(
        junit.contains(
            "<failure message=\"kernels disagree on map events, map facts: 5.10 | 6.1 / "
        ),
        "{junit}"
    );
    assert!(junit.contains("state_field: STATE_FIELD_OLD"), "{junit}");
    assert!(out.stdout.contains("STATE_FIELD_NEW"), "{}", out.stdout);
    // Maps left out of the comparison are listed on the terminal even where trials pass.
    assert!(
        out.stdout
            .contains("kernel_facts: timestamps: excluded by the fixture (ignore_maps)"),
        "{}",
        out.stdout
    );
    assert_eq!(out.report()["counts"]["failed"], 1, "{}", out.transcript());
    assert_eq!(out.code(), Some(1), "{}", out.transcript());
}

#[test]
fn skipped_trials_are_counted_nowhere() {
    let out = run(&["--skip", "identical"]);
    assert_eq!(out.code(), Some(0), "{}", out.transcript());
    let counts = &out.report()["counts"];
    assert_eq!(counts["failed"], 0, "{}", out.transcript());
    assert_eq!(counts["passed"], 6, "{}", out.transcript());
    let trials = out.report()["trials"].as_array().unwrap();
    assert!(
        trials
            .iter()
            .all(|t| !t["name"].as_str().unwrap().starts_with("identical::")),
        "{}",
        out.transcript()
    );
    assert!(
        out.stdout.contains("6 passed, 0 failed, 0 unsupported"),
        "{}",
        out.stdout
    );
    assert!(!out
        .junit()
        .contains("<testsuite name=\"identical\" tests=\"1\""));
    assert!(
        out.stdout.contains("1 filtered out"),
        "libtest still says what it left out\n{}",
        out.stdout
    );
}

#[test]
fn one_kernel_says_identical_needs_two() {
    let dir = tempfile::tempdir().unwrap().keep();
    let programs = differing();
    let out = run_harness(
        &dir,
        &[
            "--matrix",
            "kernels.toml",
            "--kernel",
            "host",
            "--programs",
            programs.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.trial_status(IDENTICAL),
        "unsupported",
        "{}",
        out.transcript()
    );
    let m = out.trial_message(IDENTICAL);
    assert!(
        m.contains("`identical` needs two kernels; this run has one (host)"),
        "{m}"
    );
    assert!(!out.stdout.contains("the kernel lacks"), "{}", out.stdout);
}
