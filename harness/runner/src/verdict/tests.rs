use super::*;
use crate::fixtures::MapExpectation;
use guest_protocol::{MapDump, MapEntry};

fn output(retval: u32, data: &[u8], counter: u8) -> RunOutput {
    RunOutput {
        retval,
        data_out: data.to_vec(),
        ctx_out: None,
        duration_ns: 100 + counter as u32,
        maps: vec![MapDump {
            name: "counters".into(),
            map_type: 2,
            value_size: 8,
            zero_entries_omitted: true,
            entries: vec![MapEntry {
                key: vec![6, 0, 0, 0],
                value: vec![counter, 0, 0, 0, 0, 0, 0, 0],
            }],
            events: vec![],
            not_compared: None,
        }],
        printk: vec![],
        per_packet: vec![],
    }
}

fn expectation() -> Expectation {
    Expectation {
        retval: Some(2),
        data_out: Some(vec![1, 2, 3]),
        maps: vec![MapExpectation {
            map: "counters".into(),
            key: vec![6, 0, 0, 0],
            value: vec![1, 0, 0, 0, 0, 0, 0, 0],
        }],
        maps_exact: vec!["counters".into()],
        ignore_maps: vec![],
        data_out_per_packet: None,
    }
}

fn untyped() -> ObjectTypes {
    ObjectTypes::default()
}

fn ran(kernel: &str, out: RunOutput) -> GuestRun {
    completed(kernel, Some(CaseOutcome::Ran(Box::new(out))))
}

/// An output whose unnamed map `facts` holds `value` at index 0.
fn with_facts(value: u8) -> RunOutput {
    let mut out = output(2, &[1, 2, 3], 1);
    out.maps.push(MapDump {
        name: "facts".into(),
        map_type: 2,
        value_size: 4,
        zero_entries_omitted: true,
        entries: if value == 0 {
            vec![]
        } else {
            vec![MapEntry {
                key: vec![0, 0, 0, 0],
                value: vec![value, 0, 0, 0],
            }]
        },
        events: vec![],
        not_compared: None,
    });
    out
}

fn case() -> PlannedCase {
    PlannedCase {
        id: "obj/c".into(),
        object: "obj".into(),
        case: "c".into(),
        program: "p".into(),
        expect: expectation(),
        arch: Vec::new(),
    }
}

fn completed(kernel: &str, outcome: Option<CaseOutcome>) -> GuestRun {
    let mut run = GuestRun::new(kernel, "x86_64", "tcg");
    run.status = GuestStatus::Completed;
    if let Some(outcome) = outcome {
        run.cases.insert("obj/c".into(), outcome);
    }
    run
}

#[test]
fn matching_output_passes() {
    assert_eq!(
        compare_with_expectation(&output(2, &[1, 2, 3], 1), &expectation(), &untyped(), "p"),
        Ok(())
    );
}

#[test]
fn every_difference_is_listed() {
    let error =
        compare_with_expectation(&output(1, &[1, 2, 4], 2), &expectation(), &untyped(), "p")
            .unwrap_err();
    assert!(error.contains("return value: expected 2, got 1"), "{error}");
    assert!(error.contains("first difference at byte 2"), "{error}");
    assert!(
        error.contains("counters[6]: expected 0x0100000000000000, got 0x0200000000000000"),
        "{error}"
    );
}

#[test]
fn an_omitted_array_entry_reads_as_zero() {
    let mut expect = expectation();
    expect.maps.push(MapExpectation {
        map: "counters".into(),
        key: vec![9, 0, 0, 0],
        value: vec![0; 8],
    });
    assert_eq!(
        compare_with_expectation(&output(2, &[1, 2, 3], 1), &expect, &untyped(), "p"),
        Ok(())
    );
    // A zero slot expected non-zero reads as zero, not as a missing entry.
    expect.maps.last_mut().unwrap().value = vec![5, 0, 0, 0, 0, 0, 0, 0];
    let error =
        compare_with_expectation(&output(2, &[1, 2, 3], 1), &expect, &untyped(), "p").unwrap_err();
    assert!(
        error.contains("counters[9]: expected 0x0500000000000000, got 0x0000000000000000"),
        "{error}"
    );
    let mut out = output(2, &[1, 2, 3], 1);
    out.maps[0].zero_entries_omitted = false;
    assert!(compare_with_expectation(&out, &expect, &untyped(), "p")
        .unwrap_err()
        .contains("counters[9]: expected 0x0500000000000000, got no entry"));
}

#[test]
fn exact_maps_reject_extra_entries() {
    let mut out = output(2, &[1, 2, 3], 1);
    out.maps[0].entries.push(MapEntry {
        key: vec![17, 0, 0, 0],
        value: vec![1; 8],
    });
    let error = compare_with_expectation(&out, &expectation(), &untyped(), "p").unwrap_err();
    assert!(
        error.contains("unexpected entries [17] = 0x0101"),
        "{error}"
    );
}

#[test]
fn identical_ignores_timing_and_names_disagreeing_kernels() {
    let runs = vec![
        completed(
            "5.10",
            Some(CaseOutcome::Ran(Box::new(output(2, &[1, 2, 3], 1)))),
        ),
        completed(
            "6.1",
            Some(CaseOutcome::Ran(Box::new(output(2, &[1, 2, 3], 1)))),
        ),
    ];
    assert_eq!(
        judge_identical(&runs, &case(), &untyped()),
        TrialOutcome::Passed
    );
    let runs = vec![
        completed(
            "5.10",
            Some(CaseOutcome::Ran(Box::new(output(2, &[1, 2, 3], 1)))),
        ),
        completed(
            "6.1",
            Some(CaseOutcome::Ran(Box::new(output(1, &[1, 2, 3], 1)))),
        ),
    ];
    match judge_identical(&runs, &case(), &untyped()) {
        TrialOutcome::Failed(m) => assert!(
            m.starts_with("kernels disagree on return value: 5.10 | 6.1")
                && m.contains("5.10  2")
                && m.contains("6.1   1"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsupported_kernels_are_not_counted_as_identical() {
    let runs = vec![
        completed(
            "5.10",
            Some(CaseOutcome::Unsupported {
                reason: "no SK_LOOKUP".into(),
            }),
        ),
        completed(
            "6.1",
            Some(CaseOutcome::Ran(Box::new(output(2, &[1, 2, 3], 1)))),
        ),
    ];
    match judge_identical(&runs, &case(), &untyped()) {
        TrialOutcome::Unsupported(m) => assert!(
            m.contains("only 6.1 did") && m.contains("5.10 (no SK_LOOKUP)"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_crashed_guest_fails_its_trials_with_the_console_tail() {
    let mut run = GuestRun::new("7.2", "x86_64", "tcg");
    run.status = GuestStatus::Panic;
    run.console_tail = "Kernel panic - not syncing".into();
    match judge_case(&run, &case(), &untyped()) {
        TrialOutcome::Failed(m) => {
            assert!(m.contains("PANIC") && m.contains("Kernel panic"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    match judge_identical(
        &[
            run,
            completed(
                "6.1",
                Some(CaseOutcome::Ran(Box::new(output(2, &[1, 2, 3], 1)))),
            ),
        ],
        &case(),
        &untyped(),
    ) {
        TrialOutcome::Failed(m) => assert!(m.contains("7.2: no result (PANIC)"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn load_trial_reports_the_verifier_log() {
    let mut run = completed("6.1", None);
    run.objects.push(guest_protocol::ObjectLoaded {
        object: "obj".into(),
        sha256: "00".into(),
        relocate_us: 1,
        relocations: vec![],
        programs: vec![guest_protocol::ProgramLoad {
            program: "p".into(),
            section: "xdp".into(),
            outcome: ProgramLoadOutcome::Rejected {
                error: "EACCES".into(),
                verifier_log: "R2 !read_ok".into(),
            },
        }],
        btf_note: None,
    });
    match judge_load(&run, "obj").outcome {
        TrialOutcome::Failed(m) => assert!(
            m.contains("R2 !read_ok") && m.contains("program p (xdp) rejected"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unnamed_map_that_differs_fails_identical_with_entries_per_kernel() {
    // The expectation does not name `facts`; it is compared all the same.
    let runs = vec![
        ran("5.10", with_facts(0)),
        ran("6.1", with_facts(1)),
        ran("6.12", with_facts(1)),
    ];
    match judge_identical(&runs, &case(), &untyped()) {
        TrialOutcome::Failed(m) => {
            assert!(
                m.starts_with("kernels disagree on map facts: 5.10 | 6.1, 6.12"),
                "{m}"
            );
            assert!(m.contains("\n  [0]"), "{m}");
            assert!(m.contains("5.10       0x00000000 (zero)"), "{m}");
            assert!(m.contains("6.1, 6.12  0x01000000"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    let same = vec![ran("5.10", with_facts(1)), ran("6.1", with_facts(1))];
    assert_eq!(
        judge_identical(&same, &case(), &untyped()),
        TrialOutcome::Passed
    );
}

#[test]
fn values_are_decoded_with_the_map_btf() {
    let mut b = core_reloc::btf::BtfBuilder::new();
    let u32_id = b.int("unsigned int", 4, false);
    let value = b.struct_("fact", 4, &[("state_exists", u32_id, 0, 0)]);
    let types = ObjectTypes::with_btf(b.build().unwrap(), &[("facts", u32_id, value)]);
    let runs = vec![ran("5.10", with_facts(0)), ran("6.1", with_facts(1))];
    match judge_identical(&runs, &case(), &types) {
        TrialOutcome::Failed(m) => {
            assert!(m.contains("5.10  { state_exists: 0 } (zero)"), "{m}");
            assert!(m.contains("6.1   { state_exists: 1 }"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ignored_maps_are_not_compared_and_say_so() {
    let mut case = case();
    case.expect.ignore_maps = vec!["facts".into()];
    let runs = vec![ran("5.10", with_facts(0)), ran("6.1", with_facts(1))];
    assert_eq!(
        judge_identical(&runs, &case, &untyped()),
        TrialOutcome::Passed
    );
    case.expect.retval = Some(1);
    let runs = vec![
        ran("5.10", with_facts(0)),
        ran("6.1", {
            let mut o = with_facts(1);
            o.retval = 7;
            o
        }),
    ];
    match judge_identical(&runs, &case, &untyped()) {
        TrialOutcome::Failed(m) => assert!(
            m.contains("not compared (ignore_maps): facts") && !m.contains("map facts:"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn packets_and_ring_records_are_compared() {
    let mut other = output(2, &[1, 2, 9], 1);
    other.maps[0].events = vec![guest_protocol::MapEvent { data: vec![7] }];
    let runs = vec![ran("5.10", output(2, &[1, 2, 3], 1)), ran("6.1", other)];
    match judge_identical(&runs, &case(), &untyped()) {
        TrialOutcome::Failed(m) => {
            assert!(
                m.starts_with("kernels disagree on output packet, map counters"),
                "{m}"
            );
            assert!(m.contains("first difference at byte 2"), "{m}");
            assert!(m.contains("6.1   1 record(s): 0x07"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn per_cpu_values_compare_by_their_non_zero_slots() {
    let percpu = |slots: Vec<u8>| {
        let mut out = output(2, &[1, 2, 3], 1);
        out.maps[0].map_type = 6;
        out.maps[0].value_size = 4;
        out.maps[0].entries[0].value = slots;
        out
    };
    // One CPU in one guest, two on the host, the run on the second CPU: the same state.
    let runs = vec![
        ran("5.10", percpu(vec![3, 0, 0, 0, 0, 0, 0, 0])),
        ran(
            "host",
            percpu(vec![0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]),
        ),
    ];
    assert_eq!(
        judge_identical(&runs, &case(), &untyped()),
        TrialOutcome::Passed
    );
}

#[test]
fn printk_output_is_shown_with_a_failure_and_never_compared() {
    let mut a = output(2, &[1, 2, 3], 1);
    a.printk = vec!["state field 1".into()];
    let mut b = output(1, &[1, 2, 3], 1);
    b.printk = vec!["state field 2".into()];
    let runs = vec![ran("5.10", a.clone()), ran("6.1", b)];
    match judge_identical(&runs, &case(), &untyped()) {
        TrialOutcome::Failed(m) => assert!(
            m.starts_with("kernels disagree on return value:")
                && m.contains("--- bpf_printk (5.10) ---\nstate field 1")
                && m.contains("--- bpf_printk (6.1) ---\nstate field 2"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    let mut c = a.clone();
    c.printk = vec!["other text".into()];
    let same = vec![ran("5.10", a), ran("6.1", c.clone())];
    assert_eq!(
        judge_identical(&same, &case(), &untyped()),
        TrialOutcome::Passed
    );
    c.retval = 9;
    match judge_case(&ran("6.1", c), &case(), &untyped()) {
        TrialOutcome::Failed(m) => {
            assert!(m.ends_with("--- bpf_printk (6.1) ---\nother text"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_sequence_checks_every_packet_and_compares_them_across_kernels() {
    let seq = |second: u32| {
        let mut out = output(2, &[1, 2, 3], 1);
        out.per_packet = vec![
            guest_protocol::PacketResult {
                retval: 2,
                data_out: vec![1, 2, 3],
            },
            guest_protocol::PacketResult {
                retval: second,
                data_out: vec![1, 2, 3],
            },
        ];
        out
    };
    let mut expect = expectation();
    expect.data_out = None;
    expect.data_out_per_packet = Some(vec![vec![1, 2, 3], vec![1, 2, 4]]);
    let error = compare_with_expectation(&seq(1), &expect, &untyped(), "p").unwrap_err();
    assert!(
        error.contains("packet 2: return value: expected 2, got 1"),
        "{error}"
    );
    assert!(error.contains("packet 2: output packet differs"), "{error}");
    assert!(!error.contains("packet 1:"), "{error}");
    let runs = vec![ran("5.10", seq(2)), ran("6.1", seq(1))];
    match judge_identical(&runs, &case(), &untyped()) {
        TrialOutcome::Failed(m) => assert!(
            m.starts_with("kernels disagree on packet 2: 5.10 | 6.1")
                && m.contains(
                    "packet 2 of the sequence:\n  5.10  2, 3 bytes out\n  6.1   1, 3 bytes out"
                ),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_kernel_says_identical_needs_two() {
    let runs = vec![ran("host", output(2, &[1, 2, 3], 1))];
    match judge_identical(&runs, &case(), &untyped()) {
        TrialOutcome::Unsupported(m) => {
            assert!(
                m.contains("`identical` needs two kernels; this run has one (host)"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_input_is_its_own_outcome_and_not_compared() {
    let refused = completed(
        "6.1",
        Some(CaseOutcome::InputRefused {
            reason: "the kernel refuses this input: BPF_PROG_TEST_RUN EINVAL".into(),
            evidence: "r0 = 0 of the same type refused it too".into(),
        }),
    );
    match judge_case(&refused, &case(), &untyped()) {
        TrialOutcome::InputRefused(m) => assert!(m.contains("evidence: r0 = 0"), "{m}"),
        other => panic!("{other:?}"),
    }
    let runs = vec![
        ran("5.10", output(2, &[1, 2, 3], 1)),
        refused,
        ran("6.12", output(2, &[1, 2, 3], 1)),
    ];
    assert_eq!(
        judge_identical(&runs, &case(), &untyped()),
        TrialOutcome::Passed
    );
}

#[test]
fn return_values_are_named_for_the_program_type() {
    let mut types = untyped();
    types.program_types.insert("p".into(), 3);
    let error = compare_with_expectation(
        &output(u32::MAX, &[1, 2, 3], 1),
        &expectation(),
        &types,
        "p",
    )
    .unwrap_err();
    assert!(
        error.contains("return value: expected TC_ACT_SHOT (2), got TC_ACT_UNSPEC (-1)"),
        "{error}"
    );
}

/// An object built for one architecture: its cases on a kernel of another are unsupported
/// (never run, never passed), and `identical::` compares the kernels it was built for.
#[test]
fn a_case_built_for_one_architecture_is_unsupported_on_another() {
    let mut planned = case();
    planned.arch = vec!["x86_64".into()];
    let out = output(2, &[1, 2, 3], 1);
    let x86_a = completed("6.1", Some(CaseOutcome::Ran(Box::new(out.clone()))));
    let x86_b = completed("6.12", Some(CaseOutcome::Ran(Box::new(out))));
    let mut arm = GuestRun::new("6.12-arm64", "aarch64", "tcg");
    arm.status = GuestStatus::Completed;
    let trials = judge(
        &[planned.clone()],
        &[],
        &[x86_a.clone(), x86_b.clone(), arm.clone()],
        &Predictions::new(),
        &Default::default(),
    );
    let outcome = |name: &str| &trials.iter().find(|t| t.name == name).unwrap().outcome;
    match outcome("6.12-arm64::obj::c") {
        TrialOutcome::Unsupported(m) => assert!(m.contains("built for x86_64"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome("6.1::obj::c"), &TrialOutcome::Passed);
    assert_eq!(outcome("identical::obj::c"), &TrialOutcome::Passed);
    // Only the arm64 kernel and one x86_64 one: nothing to compare, said so.
    match judge_identical(&[x86_a, arm], &planned, &Default::default()) {
        TrialOutcome::Unsupported(m) => {
            assert!(
                m.contains("needs two kernels") && m.contains("not run on 6.12-arm64"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}
