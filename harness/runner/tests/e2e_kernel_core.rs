//! The kernel as a third oracle (`--kernel-core`, issue 12 item 6), end to end: on 6.1 every
//! program of `programs/` with CO-RE relocations is relocated by the kernel itself to the same
//! translated instructions as ours (the corpus's local layouts differ from every kernel's, so
//! a kernel that skipped the relocations would differ); 5.10 has no `core_relos` and says so.

mod support;

use support::*;

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
    // The JSON report keeps each program's outcome.
    let kernel_core = out.kernel("6.1")["kernel_core"].as_array().unwrap();
    let task_walk = kernel_core
        .iter()
        .find(|o| o["object"] == "task_walk")
        .unwrap();
    assert_eq!(
        task_walk["programs"][0]["outcome"]["status"], "identical",
        "{task_walk:#}"
    );
    assert!(
        task_walk["programs"][0]["relocations"].as_u64().unwrap() > 5,
        "{task_walk:#}"
    );
    assert_eq!(out.report()["counts"]["failed"], 0, "{}", out.transcript());
}

/// The third-party corpus (the kernel's own BPF selftests from Debian's linux-source-6.12,
/// `scripts/selftests-corpus.list`, built and cached as `tests/libbpf_guests.rs` builds it): on
/// 6.12 the kernel's relocation of every program with CO-RE relocations equals ours.
#[test]
fn the_kernel_relocates_the_selftests_corpus_as_ours_does() {
    let corpus = selftests_corpus(&workspace().join("target/selftests-corpus-list"));
    let dir = tempfile::tempdir().unwrap().keep();
    let out = run_harness(
        &dir,
        &[
            "--matrix",
            "kernels.toml",
            "--kernel",
            "6.12",
            "--programs",
            corpus.to_str().unwrap(),
            "--kernel-core",
            "kernel-core",
        ],
    );
    assert_eq!(out.report()["counts"]["failed"], 0, "{}", out.transcript());
    for object in [
        "test_core_reloc_kernel",
        "test_core_reloc_existence",
        "kfree_skb",
    ] {
        let name = format!("6.12::{object}::kernel-core");
        assert_eq!(out.trial_status(&name), "passed", "{}", out.transcript());
    }
    let figures = out
        .stdout
        .lines()
        .find(|l| l.starts_with("kernel CO-RE on 6.12:"))
        .unwrap_or_else(|| panic!("no figures line\n{}", out.transcript()));
    assert!(figures.contains(" 0 disagreements"), "{figures}");
}
