//! `--retries`: a guest that crashed is run again, and what passes only on the retry is flaky in
//! every output; without retries the same crash fails the run.

mod support;

use support::*;

fn crash_once(retries: &str) -> (tempfile::TempDir, Outcome) {
    let dir = tempfile::tempdir().unwrap();
    let out = run_harness(
        dir.path(),
        &[
            "--matrix",
            "kernels.toml",
            "--kernel",
            "6.12",
            "--programs",
            fault_programs("green").to_str().unwrap(),
            "--inject-fault",
            "6.12=crash-once",
            "--retries",
            retries,
        ],
    );
    (dir, out)
}

#[test]
fn a_crash_that_passes_on_retry_is_flaky_not_a_plain_pass() {
    let (_dir, out) = crash_once("1");
    assert_eq!(out.code(), Some(0), "{}", out.transcript());
    let kernel = out.kernel("6.12");
    assert_eq!(kernel["outcome"], "COMPLETED");
    let trials = out.report()["trials"].as_array().unwrap();
    let flaky: Vec<&serde_json::Value> = trials
        .iter()
        .filter(|t| t["kernel"] == "6.12")
        .filter(|t| {
            t["flaky"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|m| m.as_str().unwrap().contains("AGENT_CRASH"))
            })
        })
        .collect();
    assert!(
        !flaky.is_empty(),
        "no trial is marked flaky\n{}",
        out.transcript()
    );
    assert!(out.junit().contains("<flakyFailure"), "{}", out.junit());
    assert!(out.stdout.contains("FLAKY:"), "{}", out.stdout);
}

#[test]
fn without_retries_the_same_crash_fails() {
    let (_dir, out) = crash_once("0");
    assert_eq!(out.code(), Some(1), "{}", out.transcript());
    assert_eq!(out.kernel("6.12")["outcome"], "AGENT_CRASH");
}
