//! Guest faults, on real kernels under QEMU: one run of four kernels where three of them fail
//! in a different way and the fourth must be untouched.
//!
//! - 5.10: the agent hangs after its first result (`--inject-fault 5.10=hang`) and
//!   `test_timeout_s = 4`: TEST_TIMEOUT;
//! - 6.1: the agent crashes (abort) after its first result: AGENT_CRASH;
//! - 6.12: `earlyprintk=ttyS0 boot_delay=100` prints every boot message at once and holds it
//!   for 100 ms (hundreds of them at loglevel 7), so the agent cannot say hello within
//!   `boot_timeout_s = 5`: BOOT_TIMEOUT, with a console that has printed (a 1 s timeout under
//!   load could expire before the first line);
//! - 7.2: no fault: COMPLETED, every trial passed.
//!
//! (A kernel panic is covered by e2e_matrix.rs.) Each fault must be named in the terminal
//! summary, the JSON report and the JUnit report, with the console's last lines; the exit status
//! is 1. The faulty kernels get `loglevel=7` so that their console has something to show (with
//! the harness's `quiet loglevel=1` a kernel prints nothing in a second of boot).
//!
//! The programs are the test-only `fault-programs/green` corpus (one XDP object, two cases),
//! so that only the injected faults can fail a trial.

mod support;

use std::sync::OnceLock;

use support::*;

fn matrix_text() -> String {
    format!(
        r#"
[defaults]
boot_timeout_s = 60
test_timeout_s = 30
guest_timeout_s = 180

[[kernel]]
name = "5.10"
{}
test_timeout_s = 4
cmdline = "loglevel=7"

[[kernel]]
name = "6.1"
{}
cmdline = "loglevel=7"

[[kernel]]
name = "6.12"
{}
boot_timeout_s = 5
cmdline = "loglevel=7 earlyprintk=ttyS0 boot_delay=100"

[[kernel]]
name = "7.2"
{}
"#,
        debian_source("5.10"),
        debian_source("6.1"),
        debian_source("6.12"),
        debian_source("7.2")
    )
}

/// The run, once for every test of this file.
fn faulty_run() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let matrix = temp_matrix(&dir, &matrix_text());
        let started = std::time::Instant::now();
        let out = run_harness(
            &dir,
            &[
                "--matrix",
                matrix.to_str().unwrap(),
                "--images",
                images().to_str().unwrap(),
                "--programs",
                fault_programs("green").to_str().unwrap(),
                "--accel",
                "tcg",
                "--inject-fault",
                "5.10=hang",
                "--inject-fault",
                "6.1=crash",
            ],
        );
        eprintln!("faulty run: {:?}", started.elapsed());
        out
    })
}

/// What every faulty kernel must show, whatever the fault.
fn assert_fault_reported(out: &Outcome, kernel: &str, label: &str) {
    let k = out.kernel(kernel);
    assert_eq!(k["outcome"], label, "{k:#}\n{}", out.transcript());
    let tail = k["console_tail"].as_str().unwrap();
    assert!(
        !tail.trim().is_empty(),
        "{kernel}: no console tail in the JSON report\n{k:#}"
    );
    // Terminal: the summary row names the fault.
    let row = out.summary_row(kernel);
    assert!(row.contains(label), "{kernel}: summary row `{row}`");
    // JUnit: the suite says how the guest ended, a failure names it, the console is attached.
    let suite = out.junit_suite(kernel);
    assert!(
        suite.contains(&format!("<property name=\"outcome\" value=\"{label}\"/>")),
        "{suite}"
    );
    assert!(suite.contains("<failure"), "{suite}");
    assert!(suite.contains(label), "{suite}");
    let last_line = tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    let escaped = harness::report::junit::escape(last_line.trim());
    assert!(
        suite.contains(&escaped),
        "{kernel}: the console's last line `{last_line}` is not in the JUnit suite\n{suite}"
    );
    // The run as a whole failed.
    assert_eq!(out.code(), Some(1), "{}", out.transcript());
}

#[test]
fn hanging_agent_is_a_test_timeout_and_keeps_its_first_result() {
    let out = faulty_run();
    assert_fault_reported(out, "5.10", "TEST_TIMEOUT");
    // The result sent before the hang survives and is judged.
    assert_eq!(out.trial_status("5.10::pass::first"), "passed");
    let missing = out.trial_message("5.10::pass::second");
    assert!(missing.contains("TEST_TIMEOUT"), "{missing}");
    // Killed after about test_timeout_s of silence, not at the guest timeout.
    let total = out.kernel("5.10")["total_ms"].as_u64().unwrap();
    assert!(total < 60_000, "5.10 ran {total} ms");
}

#[test]
fn crashing_agent_is_an_agent_crash() {
    let out = faulty_run();
    assert_fault_reported(out, "6.1", "AGENT_CRASH");
    let tail = out.kernel("6.1")["console_tail"].as_str().unwrap();
    assert!(tail.contains("Attempted to kill init"), "{tail}");
    assert_eq!(out.trial_status("6.1::pass::first"), "passed");
    assert!(out
        .trial_message("6.1::pass::second")
        .contains("AGENT_CRASH"));
}

#[test]
fn guest_that_never_reaches_the_agent_is_a_boot_timeout() {
    let out = faulty_run();
    assert_fault_reported(out, "6.12", "BOOT_TIMEOUT");
    let k = out.kernel("6.12");
    assert!(k["boot_ms"].is_null(), "{k:#}");
    assert!(k["release"].is_null(), "{k:#}");
    // Stopped at the boot timeout, not later.
    assert!(k["total_ms"].as_u64().unwrap() < 20_000, "{k:#}");
    for case in ["first", "second"] {
        let m = out.trial_message(&format!("6.12::pass::{case}"));
        assert!(m.contains("BOOT_TIMEOUT"), "{m}");
    }
}

#[test]
fn the_kernel_without_a_fault_is_unaffected() {
    let out = faulty_run();
    let k = out.kernel("7.2");
    assert_eq!(k["outcome"], "COMPLETED", "{k:#}\n{}", out.transcript());
    assert!(k["release"].as_str().unwrap().starts_with("7.2."), "{k:#}");
    for trial in ["load", "relocations", "first", "second"] {
        let name = format!("7.2::pass::{trial}");
        assert_eq!(
            out.trial_status(&name),
            "passed",
            "{name}\n{}",
            out.transcript()
        );
    }
    assert!(out.summary_row("7.2").contains("COMPLETED"));
    assert!(out
        .junit_suite("7.2")
        .contains("<property name=\"outcome\" value=\"COMPLETED\"/>"));
    // Every kernel is in the report, and the failures are exactly the faulty kernels' and
    // the cross-kernel comparisons they could not take part in.
    assert_eq!(out.report()["kernels"].as_array().unwrap().len(), 4);
    assert_eq!(out.report()["interrupted"], false);
}

#[test]
fn junit_names_every_trial_apart() {
    // `<kernel>::<object>::load` and `<kernel>::<object>::relocations` are two trials; a JUnit
    // consumer keys test cases by (classname, name), so two cases with the same key lose one.
    let out = faulty_run();
    let xml = out.junit();
    let mut seen = std::collections::BTreeSet::new();
    for line in xml
        .lines()
        .filter(|l| l.trim_start().starts_with("<testcase "))
    {
        let attr = |name: &str| {
            // A leading space: `name="` also ends `classname="`.
            let start = line.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            line[start..start + line[start..].find('"').unwrap()].to_string()
        };
        let key = (attr("classname"), attr("name"));
        assert!(
            seen.insert(key.clone()),
            "JUnit test case {key:?} appears twice\n{xml}"
        );
    }
    let trials = out.report()["trials"].as_array().unwrap().len();
    assert_eq!(seen.len(), trials, "{xml}");
}
