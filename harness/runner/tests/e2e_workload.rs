//! Workload cases end to end (issue 12 item 4): on real 5.10 and 6.1 guests the agent attaches
//! fentry/fexit, tracepoint, kprobe/kretprobe, tp_btf, raw_tp and lsm programs while a child
//! process opens files, execs itself and connects over loopback TCP; the counts and ring buffer
//! records must be what the workload did, the same on both kernels, with lsm unsupported where
//! the bpf LSM is not active (5.10). And the negative side (`tests/workload-programs`): a count
//! that differs by kernel fails `identical::`, a tracepoint the kernel lacks is unsupported.

mod support;

use std::sync::OnceLock;

use support::*;

fn run() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let negative = test_programs("workload-programs");
        run_harness(
            &dir,
            &[
                "--matrix",
                "kernels.toml",
                "--kernel",
                "5.10",
                "--kernel",
                "6.1",
                "--programs",
                "programs",
                "--programs",
                negative.to_str().unwrap(),
            ],
        )
    })
}

const KERNELS: [&str; 2] = ["5.10", "6.1"];

/// The ring buffer records of `map` in a trial's result.
fn events(out: &Outcome, trial: &str, map: &str) -> Vec<Vec<u8>> {
    let result = &out.trial(trial)["result"];
    let maps = result["maps"]
        .as_array()
        .unwrap_or_else(|| panic!("{trial}: no maps in {result:#}"));
    let map = maps
        .iter()
        .find(|m| m["name"] == map)
        .unwrap_or_else(|| panic!("{trial}: no map {map}"));
    // A ring buffer that received nothing has no `events` in the report.
    map["events"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| hex::decode(e["data"].as_str().unwrap()).unwrap())
        .collect()
}

/// `{ u32 source, s32 len, char name[64] }` records: (source, the string up to its NUL).
fn name_records(records: &[Vec<u8>]) -> Vec<(u32, String)> {
    records
        .iter()
        .map(|r| {
            assert_eq!(r.len(), 72, "record {r:02x?}");
            let source = u32::from_le_bytes(r[0..4].try_into().unwrap());
            let len = i32::from_le_bytes(r[4..8].try_into().unwrap());
            let name = &r[8..];
            let end = name.iter().position(|&b| b == 0).unwrap();
            assert_eq!(len as usize, end + 1, "bpf_*_str counts the NUL: {r:02x?}");
            (source, String::from_utf8(name[..end].to_vec()).unwrap())
        })
        .collect()
}

#[test]
fn tracing_programs_see_exactly_the_workload_on_every_kernel() {
    let out = run();
    let open_cases = [
        "fentry_sees_each_open",
        "fexit_sees_each_descriptor",
        "tracepoint_sys_enter_openat",
        "kprobe_and_kretprobe",
        "tp_btf_and_raw_tp_sys_enter",
        "all_at_once",
        "other_processes_not_counted",
    ];
    let mut cases: Vec<(&str, &str)> = open_cases.iter().map(|c| ("open_watch", *c)).collect();
    cases.extend([
        ("exec_watch", "two_execs_seen_entering_and_done"),
        ("exec_watch", "exec_then_open_counts_only_the_exec"),
        ("tcp_watch", "tcp4_connect_and_accept"),
        ("tcp_watch", "tcp6_connect_seen_by_fentry"),
    ]);
    for (object, case) in &cases {
        for kernel in KERNELS {
            let name = format!("{kernel}::{object}::{case}");
            assert_eq!(
                out.trial_status(&name),
                "passed",
                "{name}: {}\n{}",
                out.trial_message(&name),
                out.transcript()
            );
        }
        let name = format!("identical::{object}::{case}");
        assert_eq!(
            out.trial_status(&name),
            "passed",
            "{name}: {}",
            out.trial_message(&name)
        );
    }

    for kernel in KERNELS {
        // One record per open from fentry (source 0), with the path the child gave.
        let path = "/tmp/harness-workload/open_watch";
        let trial = format!("{kernel}::open_watch::fentry_sees_each_open");
        assert_eq!(
            name_records(&events(out, &trial, "events")),
            vec![(0, path.to_string()); 3],
            "{trial}"
        );
        // All at once: fentry (0), the tracepoint (2) and the kprobe (3) each saw every open
        // (two of one path, one of another), in the order they fire.
        let trial = format!("{kernel}::open_watch::all_at_once");
        let records = name_records(&events(out, &trial, "events"));
        assert_eq!(records.len(), 9, "{trial}: {records:?}");
        for source in [0, 2, 3] {
            let paths: Vec<&str> = records
                .iter()
                .filter(|(s, _)| *s == source)
                .map(|(_, p)| p.as_str())
                .collect();
            assert_eq!(
                paths,
                [path, path, "/tmp/harness-workload/open_watch.2"],
                "{trial}: source {source}"
            );
        }
        // Without the pid, nothing at all.
        let trial = format!("{kernel}::open_watch::other_processes_not_counted");
        assert!(events(out, &trial, "events").is_empty(), "{trial}");
        // Each exec: the syscall's path, then the new image's binprm filename.
        let trial = format!("{kernel}::exec_watch::two_execs_seen_entering_and_done");
        let exe = "/proc/self/exe".to_string();
        assert_eq!(
            name_records(&events(out, &trial, "events")),
            vec![
                (0, exe.clone()),
                (1, exe.clone()),
                (0, exe.clone()),
                (1, exe)
            ],
            "{trial}"
        );
        // Each connection: the connected socket's port and family, read through CO-RE.
        let trial = format!("{kernel}::tcp_watch::tcp4_connect_and_accept");
        let mut connected = 61200u16.to_le_bytes().to_vec();
        connected.extend(2u16.to_le_bytes());
        assert_eq!(
            events(out, &trial, "events"),
            vec![connected.clone(), connected],
            "{trial}"
        );
        // The pid was put back: .bss reads as compiled, so it compares equal everywhere.
        let bss = out.trial(&format!("{kernel}::open_watch::fentry_sees_each_open"))["result"]
            ["maps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == ".bss")
            .unwrap()
            .clone();
        assert!(
            bss["entries"].as_array().is_none_or(|e| e.is_empty()),
            "{bss:#}"
        );
    }

    // lsm: 6.1 has the bpf LSM active, Debian's 5.10 does not.
    assert_eq!(out.trial_status("6.1::open_watch::lsm_file_open"), "passed");
    let lsm = name_records(&events(out, "6.1::open_watch::lsm_file_open", "events"));
    assert_eq!(lsm, vec![(7, "open_watch".to_string()); 3]);
    assert_eq!(
        out.trial_status("5.10::open_watch::lsm_file_open"),
        "unsupported"
    );
    assert!(
        out.trial_message("5.10::open_watch::lsm_file_open")
            .contains("the bpf LSM is not active on this kernel"),
        "{}",
        out.trial_message("5.10::open_watch::lsm_file_open")
    );
}

#[test]
fn a_count_that_differs_by_kernel_fails_identical_and_a_missing_tracepoint_is_unsupported() {
    let out = run();
    for kernel in KERNELS {
        let name = format!("{kernel}::kernel_dependent::count_differs_by_kernel");
        assert_eq!(out.trial_status(&name), "passed", "{}", out.transcript());
    }
    let identical = "identical::kernel_dependent::count_differs_by_kernel";
    assert_eq!(
        out.trial_status(identical),
        "failed",
        "{}",
        out.transcript()
    );
    let m = out.trial_message(identical);
    assert!(
        m.contains("kernels disagree on map counters: 5.10 | 6.1"),
        "{m}"
    );
    // 3 opens, counted 1 each on 5.10 and 2 each on 6.1.
    assert!(m.contains("5.10  3"), "{m}");
    assert!(m.contains("6.1   6"), "{m}");

    for kernel in KERNELS {
        let name = format!("{kernel}::kernel_dependent::tracepoint_missing_before_6_3");
        assert_eq!(
            out.trial_status(&name),
            "unsupported",
            "{}",
            out.transcript()
        );
        let m = out.trial_message(&name);
        assert!(
            m.contains("this kernel has no tracepoint sock/sock_send_length"),
            "{m}"
        );
    }
    for kernel in KERNELS {
        let name = format!("{kernel}::kernel_dependent::kprobe_on_a_missing_function");
        assert_eq!(
            out.trial_status(&name),
            "unsupported",
            "{}",
            out.transcript()
        );
        let m = out.trial_message(&name);
        assert!(
            m.contains("this kernel cannot probe harness_no_such_function"),
            "{m}"
        );
    }
    // The run as a whole fails (the identical:: trial), it does not pass.
    assert_eq!(out.code(), Some(1), "{}", out.transcript());
}
