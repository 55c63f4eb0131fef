//! Turns what the guests reported into trials: pure, so every rule here is unit-tested.
//!
//! Three kinds of trial:
//! - `<kernel>::<object>::load`: the object relocated and every program loaded (or its type is
//!   missing on that kernel, which is reported as unsupported, not as a pass);
//! - `<kernel>::<object>::relocations`: every CO-RE decision the guest's engine made equals the
//!   one predicted on the host from that kernel's BTF;
//! - `<kernel>::<object>::<case>`: that kernel's result equals the fixture's expectation;
//! - `identical::<object>::<case>`: every kernel that ran the case produced the same result.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use guest_protocol::{CaseOutcome, ProgramLoadOutcome, RunOutput};
use serde::Serialize;

use crate::fixtures::Expectation;
use crate::guest::{GuestRun, GuestStatus};

pub const IDENTICAL: &str = "identical";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum TrialOutcome {
    Passed,
    Failed(String),
    /// The kernel lacks what the trial needs; shown, never counted as a pass.
    Unsupported(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub name: String,
    /// None for cross-kernel trials.
    pub kernel: Option<String>,
    pub object: String,
    pub case: Option<String>,
    pub outcome: TrialOutcome,
}

/// One planned case with what it must produce.
#[derive(Debug, Clone)]
pub struct PlannedCase {
    pub id: String,
    pub object: String,
    pub case: String,
    pub program: String,
    pub expect: Expectation,
}

/// How a case is named in the manifest and in a guest's results: `<object>/<case>`.
pub fn case_id(object: &str, case: &str) -> String {
    format!("{object}/{case}")
}

pub fn kernel_trial_name(kernel: &str, object: &str, case: &str) -> String {
    format!("{kernel}::{object}::{case}")
}

pub fn load_trial_name(kernel: &str, object: &str) -> String {
    format!("{kernel}::{object}::load")
}

pub fn relocations_trial_name(kernel: &str, object: &str) -> String {
    format!("{kernel}::{object}::relocations")
}

/// Host-side predictions, keyed by (kernel, object); Err says why none could be made.
pub type Predictions = BTreeMap<(String, String), Result<crate::predict::ObjectPrediction, String>>;

pub fn identical_trial_name(object: &str, case: &str) -> String {
    format!("{IDENTICAL}::{object}::{case}")
}

/// Judges every kernel's run. `objects` are the objects shipped (for load trials).
pub fn judge(
    cases: &[PlannedCase],
    objects: &[String],
    runs: &[GuestRun],
    predictions: &Predictions,
) -> Vec<Trial> {
    let mut trials = Vec::new();
    for run in runs {
        for object in objects {
            trials.push(judge_load(run, object));
            trials.push(judge_relocations(
                run,
                object,
                predictions.get(&(run.kernel.clone(), object.clone())),
            ));
        }
        for case in cases {
            trials.push(Trial {
                name: kernel_trial_name(&run.kernel, &case.object, &case.case),
                kernel: Some(run.kernel.clone()),
                object: case.object.clone(),
                case: Some(case.case.clone()),
                outcome: judge_case(run, case),
            });
        }
    }
    for case in cases {
        trials.push(Trial {
            name: identical_trial_name(&case.object, &case.case),
            kernel: None,
            object: case.object.clone(),
            case: Some(case.case.clone()),
            outcome: judge_identical(runs, case),
        });
    }
    trials
}

fn guest_failure(run: &GuestRun) -> String {
    let mut message = format!(
        "kernel {}: guest ended with {}",
        run.kernel,
        run.status.describe()
    );
    if !run.console_tail.is_empty() {
        message.push_str("\n--- console (last lines) ---\n");
        message.push_str(&run.console_tail);
    }
    message
}

fn judge_load(run: &GuestRun, object: &str) -> Trial {
    let name = load_trial_name(&run.kernel, object);
    let outcome = match run.objects.iter().find(|o| o.object == object) {
        None if run.status != GuestStatus::Completed => TrialOutcome::Failed(guest_failure(run)),
        None => {
            let said: Vec<&String> = run.logs.iter().filter(|l| l.contains(object)).collect();
            TrialOutcome::Failed(format!(
                "kernel {}: the agent did not load {object}{}",
                run.kernel,
                said.iter().map(|l| format!("\n  {l}")).collect::<String>()
            ))
        }
        Some(loaded) => {
            let mut rejected = String::new();
            let mut unsupported = Vec::new();
            for program in &loaded.programs {
                match &program.outcome {
                    ProgramLoadOutcome::Loaded { .. } => {}
                    ProgramLoadOutcome::Unsupported { reason } => {
                        unsupported.push(format!("{}: {reason}", program.program))
                    }
                    ProgramLoadOutcome::Rejected {
                        error,
                        verifier_log,
                    } => {
                        let _ = write!(
                            rejected,
                            "\nprogram {} ({}) rejected: {error}",
                            program.program, program.section
                        );
                        if !verifier_log.is_empty() {
                            let _ = write!(
                                rejected,
                                "\n--- verifier log (last lines) ---\n{}",
                                last_lines(verifier_log, 30)
                            );
                        }
                    }
                }
            }
            if !rejected.is_empty() {
                TrialOutcome::Failed(format!("kernel {}: object {object}:{rejected}", run.kernel))
            } else if !unsupported.is_empty() && unsupported.len() == loaded.programs.len() {
                TrialOutcome::Unsupported(unsupported.join("; "))
            } else {
                TrialOutcome::Passed
            }
        }
    };
    Trial {
        name,
        kernel: Some(run.kernel.clone()),
        object: object.to_string(),
        case: None,
        outcome,
    }
}

fn judge_relocations(
    run: &GuestRun,
    object: &str,
    prediction: Option<&Result<crate::predict::ObjectPrediction, String>>,
) -> Trial {
    let outcome = match (run.objects.iter().find(|o| o.object == object), prediction) {
        (None, _) if run.status != GuestStatus::Completed => TrialOutcome::Failed(guest_failure(run)),
        (_, None) => TrialOutcome::Unsupported(format!("kernel {}: no prediction was made", run.kernel)),
        (_, Some(Err(why))) => TrialOutcome::Unsupported(format!("kernel {}: cannot predict relocations: {why}", run.kernel)),
        (None, _) => TrialOutcome::Failed(format!("kernel {}: the agent did not load {object}", run.kernel)),
        (Some(loaded), Some(Ok(predicted))) => match crate::predict::compare(predicted, &loaded.relocations) {
            Ok(_) => TrialOutcome::Passed,
            Err(diff) => TrialOutcome::Failed(format!(
                "kernel {}: the guest's engine decided differently from the host's prediction:\n{diff}",
                run.kernel
            )),
        },
    };
    Trial {
        name: relocations_trial_name(&run.kernel, object),
        kernel: Some(run.kernel.clone()),
        object: object.to_string(),
        case: None,
        outcome,
    }
}

fn judge_case(run: &GuestRun, case: &PlannedCase) -> TrialOutcome {
    match run.cases.get(&case.id) {
        None if run.status != GuestStatus::Completed => TrialOutcome::Failed(guest_failure(run)),
        None => TrialOutcome::Failed(format!(
            "kernel {}: the agent reported no result for {}",
            run.kernel, case.id
        )),
        Some(CaseOutcome::Unsupported { reason }) => {
            TrialOutcome::Unsupported(format!("kernel {}: {reason}", run.kernel))
        }
        Some(CaseOutcome::Error { message }) => {
            TrialOutcome::Failed(format!("kernel {}: {message}", run.kernel))
        }
        Some(CaseOutcome::Ran(output)) => match compare_with_expectation(output, &case.expect) {
            Ok(()) => TrialOutcome::Passed,
            Err(diff) => TrialOutcome::Failed(format!(
                "kernel {}: program {}: {diff}",
                run.kernel, case.program
            )),
        },
    }
}

/// Checks a result against a fixture's expectation; the error lists every difference.
pub fn compare_with_expectation(output: &RunOutput, expect: &Expectation) -> Result<(), String> {
    let mut problems = Vec::new();
    if let Some(retval) = expect.retval {
        if output.retval != retval {
            problems.push(format!(
                "return value: expected {retval}, got {}",
                output.retval
            ));
        }
    }
    if let Some(packet) = &expect.data_out {
        if &output.data_out != packet {
            problems.push(format!(
                "output packet differs:\n{}",
                bytes_diff(packet, &output.data_out)
            ));
        }
    }
    for wanted in &expect.maps {
        let Some(dump) = output.maps.iter().find(|d| d.name == wanted.map) else {
            problems.push(format!("map {}: not dumped by the agent", wanted.map));
            continue;
        };
        match dump.entries.iter().find(|e| e.key == wanted.key) {
            None if dump.zero_entries_omitted && wanted.value.iter().all(|&b| b == 0) => {}
            None => problems.push(format!(
                "map {}: no entry for key {} (entries: {})",
                wanted.map,
                hex::encode(&wanted.key),
                describe_entries(&dump.entries)
            )),
            Some(entry) if entry.value != wanted.value => problems.push(format!(
                "map {}[{}]: expected {}, got {}",
                wanted.map,
                hex::encode(&wanted.key),
                hex::encode(&wanted.value),
                hex::encode(&entry.value)
            )),
            Some(_) => {}
        }
    }
    for map in &expect.maps_exact {
        if let Some(dump) = output.maps.iter().find(|d| &d.name == map) {
            let extra: Vec<_> = dump
                .entries
                .iter()
                .filter(|e| !expect.maps.iter().any(|w| &w.map == map && w.key == e.key))
                .cloned()
                .collect();
            if !extra.is_empty() {
                problems.push(format!(
                    "map {map}: unexpected entries {}",
                    describe_entries(&extra)
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn describe_entries(entries: &[guest_protocol::MapEntry]) -> String {
    if entries.is_empty() {
        return "none".into();
    }
    entries
        .iter()
        .map(|e| format!("{}={}", hex::encode(&e.key), hex::encode(&e.value)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where two byte strings first differ, with 16-byte rows of both around it.
pub fn bytes_diff(expected: &[u8], got: &[u8]) -> String {
    let first = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    let row = first / 16 * 16;
    let end = (row + 32).min(expected.len().max(got.len()));
    let slice = |b: &[u8]| hex::encode(&b[row.min(b.len())..end.min(b.len())]);
    format!(
        "  lengths: expected {}, got {}; first difference at byte {first}\n  expected[{row}..]: {}\n  got     [{row}..]: {}",
        expected.len(),
        got.len(),
        slice(expected),
        slice(got)
    )
}

/// What must be equal across kernels: everything but timing.
fn comparable(output: &RunOutput) -> RunOutput {
    RunOutput {
        duration_ns: 0,
        ..output.clone()
    }
}

fn judge_identical(runs: &[GuestRun], case: &PlannedCase) -> TrialOutcome {
    let mut groups: Vec<(RunOutput, Vec<&str>)> = Vec::new();
    let mut unsupported = Vec::new();
    let mut missing = Vec::new();
    for run in runs {
        match run.cases.get(&case.id) {
            Some(CaseOutcome::Ran(output)) => {
                let key = comparable(output);
                match groups.iter_mut().find(|(o, _)| *o == key) {
                    Some((_, kernels)) => kernels.push(&run.kernel),
                    None => groups.push((key, vec![&run.kernel])),
                }
            }
            Some(CaseOutcome::Unsupported { reason }) => {
                unsupported.push(format!("{} ({reason})", run.kernel))
            }
            Some(CaseOutcome::Error { message }) => {
                missing.push(format!("{}: {message}", run.kernel))
            }
            None => missing.push(format!(
                "{}: no result ({})",
                run.kernel,
                run.status.describe()
            )),
        }
    }
    let unsupported_note = if unsupported.is_empty() {
        String::new()
    } else {
        format!("; unsupported on {}", unsupported.join(", "))
    };
    if !missing.is_empty() {
        return TrialOutcome::Failed(format!(
            "no result to compare from {}{unsupported_note}",
            missing.join("; ")
        ));
    }
    match groups.len() {
        0 => TrialOutcome::Unsupported(format!("no kernel could run it{unsupported_note}")),
        1 if groups[0].1.len() < 2 => TrialOutcome::Unsupported(format!(
            "only {} ran it: nothing to compare with{unsupported_note}",
            groups[0].1[0]
        )),
        1 => TrialOutcome::Passed,
        _ => {
            let mut message = String::from("kernels disagree:");
            for (output, kernels) in &groups {
                let _ = write!(message, "\n  {}: {}", kernels.join(", "), summarize(output));
            }
            message.push_str(&unsupported_note);
            TrialOutcome::Failed(message)
        }
    }
}

fn summarize(output: &RunOutput) -> String {
    let maps: BTreeMap<&str, String> = output
        .maps
        .iter()
        .map(|m| (m.name.as_str(), describe_entries(&m.entries)))
        .collect();
    format!(
        "retval {}, packet {} bytes sha {}, maps {:?}",
        output.retval,
        output.data_out.len(),
        &hex::encode(sha2_digest(&output.data_out))[..12],
        maps
    )
}

fn sha2_digest(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
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
                zero_entries_omitted: true,
                entries: vec![MapEntry {
                    key: vec![6, 0, 0, 0],
                    value: vec![counter, 0, 0, 0, 0, 0, 0, 0],
                }],
            }],
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
        }
    }

    fn case() -> PlannedCase {
        PlannedCase {
            id: "obj/c".into(),
            object: "obj".into(),
            case: "c".into(),
            program: "p".into(),
            expect: expectation(),
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
            compare_with_expectation(&output(2, &[1, 2, 3], 1), &expectation()),
            Ok(())
        );
    }

    #[test]
    fn every_difference_is_listed() {
        let error =
            compare_with_expectation(&output(1, &[1, 2, 4], 2), &expectation()).unwrap_err();
        assert!(error.contains("return value: expected 2, got 1"), "{error}");
        assert!(error.contains("first difference at byte 2"), "{error}");
        assert!(
            error.contains("counters[06000000]: expected 0100000000000000, got 0200000000000000"),
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
            compare_with_expectation(&output(2, &[1, 2, 3], 1), &expect),
            Ok(())
        );
        let mut out = output(2, &[1, 2, 3], 1);
        out.maps[0].zero_entries_omitted = false;
        assert!(compare_with_expectation(&out, &expect)
            .unwrap_err()
            .contains("no entry for key 09000000"));
    }

    #[test]
    fn exact_maps_reject_extra_entries() {
        let mut out = output(2, &[1, 2, 3], 1);
        out.maps[0].entries.push(MapEntry {
            key: vec![17, 0, 0, 0],
            value: vec![1; 8],
        });
        let error = compare_with_expectation(&out, &expectation()).unwrap_err();
        assert!(error.contains("unexpected entries 11000000="), "{error}");
    }

    #[test]
    fn identical_ignores_timing_and_names_disagreeing_kernels() {
        let runs = vec![
            completed("5.10", Some(CaseOutcome::Ran(output(2, &[1, 2, 3], 1)))),
            completed("6.1", Some(CaseOutcome::Ran(output(2, &[1, 2, 3], 1)))),
        ];
        assert_eq!(judge_identical(&runs, &case()), TrialOutcome::Passed);
        let runs = vec![
            completed("5.10", Some(CaseOutcome::Ran(output(2, &[1, 2, 3], 1)))),
            completed("6.1", Some(CaseOutcome::Ran(output(1, &[1, 2, 3], 1)))),
        ];
        match judge_identical(&runs, &case()) {
            TrialOutcome::Failed(m) => assert!(
                m.contains("5.10: retval 2") && m.contains("6.1: retval 1"),
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
            completed("6.1", Some(CaseOutcome::Ran(output(2, &[1, 2, 3], 1)))),
        ];
        match judge_identical(&runs, &case()) {
            TrialOutcome::Unsupported(m) => assert!(
                m.contains("only 6.1 ran it") && m.contains("5.10 (no SK_LOOKUP)"),
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
        match judge_case(&run, &case()) {
            TrialOutcome::Failed(m) => {
                assert!(m.contains("PANIC") && m.contains("Kernel panic"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        match judge_identical(
            &[
                run,
                completed("6.1", Some(CaseOutcome::Ran(output(2, &[1, 2, 3], 1)))),
            ],
            &case(),
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
}
