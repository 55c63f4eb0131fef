//! What libbpf loads, the harness loads, on real guests: kfunc calls, typed and typeless
//! `__ksym`s, `.kconfig` externs, fentry/fexit/tp_btf/lsm/iter/kprobe/tracepoint/raw_tp/perf_event
//! programs and ringbuf, perf, stack, per-CPU, LRU, map-in-map, prog_array (tail call), sockmap
//! and sockhash maps (`tests/loader-programs`). Where libbpf refuses an object (an extern the
//! kernel lacks), the harness refuses it too and names the extern.
//!
//! Expected per kernel (libbpf's own verdicts, checked by hand with bpftool on the host):
//! - 6.12 and 7.2: every program of every object loads and every case passes;
//! - 6.1: `kfuncs` is refused (`bpf_task_from_pid` arrived in 6.2), the rest loads;
//! - 5.10: `kfuncs` is refused likewise, `ksyms` too (5.10's BTF lists no variables, so the
//!   typed `bpf_prog_active` cannot resolve); `.kconfig`, the tracing kinds and the map kinds load;
//! - everywhere: `hidden_subprog` (a `__hidden` subprogram, as usdt.bpf.h has) loads as static;
//!   `user_sized` loads with the map sizes its fixture sets, as its user space would, and without
//!   the program its fixture turns off;
//!   `too_complex` is rejected by the verifier, reported with its log, and the guest
//!   still completes (no TEST_TIMEOUT from re-verifying it or from shipping a 256 KiB log over
//!   the results UART).

mod support;

use std::sync::OnceLock;

use support::*;

fn run() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        run_harness(
            &dir,
            &[
                "--matrix",
                "kernels.toml",
                "--kernel",
                "5.10",
                "--kernel",
                "6.1",
                "--kernel",
                "6.12",
                "--kernel",
                "7.2",
                "--programs",
                test_programs("loader-programs").to_str().unwrap(),
            ],
        )
    })
}

/// (object, program, status, reason or error) of every program a kernel's agent reported.
fn programs(out: &Outcome, kernel: &str) -> Vec<(String, String, String, String)> {
    let mut all = Vec::new();
    for object in out.kernel(kernel)["objects"].as_array().unwrap() {
        for p in object["programs"].as_array().unwrap() {
            let outcome = &p["outcome"];
            let why = outcome["reason"]
                .as_str()
                .or(outcome["error"].as_str())
                .unwrap_or_default();
            all.push((
                object["object"].as_str().unwrap().to_string(),
                p["program"].as_str().unwrap().to_string(),
                outcome["status"].as_str().unwrap().to_string(),
                why.to_string(),
            ));
        }
    }
    all
}

const TRACING: &[&str] = &[
    "on_test1_entry",
    "on_test1_exit",
    "on_switch_btf",
    "on_file_open",
    "each_task",
    "on_unlink_kprobe",
    "on_unlink_kretprobe",
    "on_openat",
    "on_switch_raw",
    "on_perf_event",
    "xdp_ok",
];

fn assert_loaded(out: &Outcome, kernel: &str, object: &str, names: &[&str]) {
    let progs = programs(out, kernel);
    for name in names {
        let found = progs
            .iter()
            .find(|p| p.0 == object && p.1 == *name)
            .unwrap_or_else(|| panic!("{kernel}: {object}::{name} not reported: {progs:?}"));
        assert_eq!(found.2, "loaded", "{kernel}: {object}::{name}: {found:?}");
    }
}

#[test]
fn new_kernels_load_every_extern_program_and_map_kind() {
    let out = run();
    for kernel in ["6.12", "7.2"] {
        assert_eq!(
            out.kernel(kernel)["outcome"],
            "COMPLETED",
            "{}",
            out.transcript()
        );
        let progs = programs(out, kernel);
        // `user_sized::never_loaded` is off by its fixture: not loaded, not reported.
        assert_eq!(progs.len(), 19, "{kernel}: {progs:?}");
        assert!(
            !progs.iter().any(|p| p.1 == "never_loaded"),
            "{kernel}: {progs:?}"
        );
        for p in progs.iter().filter(|p| p.0 != "too_complex") {
            assert_eq!(p.2, "loaded", "{kernel}: {p:?}");
        }
        for trial in [
            "kfuncs::pid_one",
            "kconfig::config_values",
            "ksyms::symbols_resolved",
            "map_types::tail_call_and_inner_maps",
            "tracing::xdp_counts",
            "hidden_subprog::hidden_subprogram_called",
            "user_sized::sized_map_counts",
        ] {
            let name = format!("{kernel}::{trial}");
            assert_eq!(
                out.trial_status(&name),
                "passed",
                "{name}: {}",
                out.trial_message(&name)
            );
        }
    }
}

#[test]
fn older_kernels_load_what_libbpf_loads_and_refuse_the_rest_naming_the_extern() {
    let out = run();
    for kernel in ["5.10", "6.1"] {
        assert_eq!(
            out.kernel(kernel)["outcome"],
            "COMPLETED",
            "{}",
            out.transcript()
        );
        assert_loaded(out, kernel, "tracing", TRACING);
        assert_loaded(out, kernel, "map_types", &["xdp_main", "xdp_target"]);
        assert_loaded(out, kernel, "kconfig", &["xdp_kconfig"]);
        assert_loaded(out, kernel, "hidden_subprog", &["xdp_hidden_subprog"]);
        assert_loaded(out, kernel, "user_sized", &["xdp_user_sized"]);
        for trial in [
            "kconfig::config_values",
            "hidden_subprog::hidden_subprogram_called",
            "user_sized::sized_map_counts",
            "map_types::tail_call_and_inner_maps",
        ] {
            let name = format!("{kernel}::{trial}");
            assert_eq!(
                out.trial_status(&name),
                "passed",
                "{name}: {}",
                out.trial_message(&name)
            );
        }
        let progs = programs(out, kernel);
        let kfunc = progs.iter().find(|p| p.1 == "task_of_pid1").unwrap();
        assert_eq!(kfunc.2, "rejected", "{kernel}: {kfunc:?}");
        assert!(
            kfunc.3.contains("bpf_task_from_pid") && kfunc.3.contains("not found"),
            "{kernel}: {kfunc:?}"
        );
        assert_eq!(
            out.trial_status(&format!("{kernel}::kfuncs::load")),
            "failed"
        );
    }
    let ksyms = programs(out, "5.10")
        .into_iter()
        .find(|p| p.1 == "xdp_ksyms")
        .unwrap();
    assert_eq!(ksyms.2, "rejected", "{ksyms:?}");
    assert!(ksyms.3.contains("bpf_prog_active"), "{ksyms:?}");
    assert_loaded(out, "6.1", "ksyms", &["xdp_ksyms"]);
    assert_eq!(out.trial_status("6.1::ksyms::symbols_resolved"), "passed");
}

#[test]
fn a_program_the_verifier_cannot_finish_is_rejected_with_its_log_in_time() {
    let out = run();
    for kernel in ["5.10", "6.1", "6.12", "7.2"] {
        assert_eq!(
            out.kernel(kernel)["outcome"],
            "COMPLETED",
            "{}",
            out.transcript()
        );
        let name = format!("{kernel}::too_complex::load");
        assert_eq!(out.trial_status(&name), "failed", "{name}");
        let message = out.trial_message(&name);
        assert!(
            message.contains("xdp_endless") && message.contains("rejected"),
            "{name}: {message}"
        );
        assert!(message.contains("--- verifier log"), "{name}: {message}");
    }
}
