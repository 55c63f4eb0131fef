//! End to end: the real harness binary boots real Debian kernels under QEMU, runs the real
//! program corpus in each, and must report every trial passed, with releases as the guests
//! printed them. This is the product; it is slow (kernels are downloaded once into images/).

mod support;

use support::*;

#[test]
fn two_real_kernels_run_the_corpus_and_agree() {
    let out = run_harness_in_default_work_dir([
        "--matrix",
        "kernels.toml",
        "--kernel",
        "5.10",
        "--kernel",
        "7.2",
    ]);
    assert!(
        out.status.success(),
        "harness failed\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    for (name, release_prefix) in [("5.10", "5.10."), ("7.2", "7.2.")] {
        let k = out.kernel(name);
        assert_eq!(k["outcome"], "COMPLETED", "{k:#}");
        let release = k["release"].as_str().unwrap();
        assert!(
            release.starts_with(release_prefix),
            "kernel {name} reported release {release}"
        );
        assert!(k["boot_ms"].as_u64().unwrap() > 0);
    }
    let counts = &out.report()["counts"];
    assert_eq!(counts["failed"], 0, "{}", out.stdout);
    // Real results: per-kernel case trials and cross-kernel comparisons both ran and passed.
    let trials = out.report()["trials"].as_array().unwrap();
    let passed = |prefix: &str| {
        trials
            .iter()
            .filter(|t| {
                t["name"].as_str().unwrap().starts_with(prefix)
                    && t["outcome"]["status"] == "passed"
            })
            .count()
    };
    assert!(passed("5.10::") >= 10, "{}", out.stdout);
    assert!(passed("7.2::") >= 10, "{}", out.stdout);
    assert!(passed("identical::") >= 5, "{}", out.stdout);
    // Results carry what the program really did: a return value for every case.
    let with_result = trials
        .iter()
        .filter(|t| t["result"]["status"] == "ran")
        .count();
    assert!(with_result >= 20, "{}", out.stdout);
}

#[test]
fn a_kernel_panic_is_reported_as_such_and_spares_the_other_kernel() {
    let out = run_harness_in_default_work_dir([
        "--matrix",
        "kernels.toml",
        "--kernel",
        "5.10",
        "--kernel",
        "6.1",
        "--inject-fault",
        "6.1=panic",
        "packet_counter",
    ]);
    assert!(
        !out.status.success(),
        "a panicking guest must fail the run\n{}",
        out.stdout
    );
    let k = out.kernel("6.1");
    assert_eq!(k["outcome"], "PANIC", "{k:#}");
    assert!(
        k["console_tail"].as_str().unwrap().contains("Kernel panic"),
        "{k:#}"
    );
    // The result sent before the panic is kept.
    let trials = out.report()["trials"].as_array().unwrap();
    assert!(
        trials
            .iter()
            .any(|t| t["kernel"] == "6.1" && t["result"]["status"] == "ran"),
        "{}",
        out.stdout
    );
    // The other kernel is untouched by it.
    assert_eq!(out.kernel("5.10")["outcome"], "COMPLETED");
    let failed_510 = trials
        .iter()
        .filter(|t| t["kernel"] == "5.10" && t["outcome"]["status"] == "failed")
        .count();
    assert_eq!(failed_510, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("PANIC"),
        "the terminal summary names the fault\n{}",
        out.stdout
    );
}
