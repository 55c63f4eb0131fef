//! Turns what the guests reported into trials: pure, so every rule here is unit-tested.
//!
//! Three kinds of trial:
//! - `<kernel>::<object>::load`: the object relocated and every program loaded (or its type is
//!   missing on that kernel, which is reported as unsupported, not as a pass);
//! - `<kernel>::<object>::relocations`: every CO-RE decision the guest's engine made equals the
//!   one predicted on the host from that kernel's BTF;
//! - `<kernel>::<object>::<case>`: that kernel's result equals the fixture's expectation;
//! - `identical::<object>::<case>`: every kernel that ran the case produced the same result.

pub mod btf_values;
pub mod expectation;
pub mod identical;
pub mod kernel_core;
pub mod libbpf;
pub mod readable;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use guest_protocol::{CaseOutcome, ProgramLoadOutcome, RunOutput};
use serde::Serialize;

use crate::fixtures::Expectation;
use crate::guest::{GuestRun, GuestStatus};
use btf_values::{ObjectTypes, Vocabulary};
pub use expectation::{bytes_diff, compare_with_expectation, is_percpu};
pub use identical::judge_identical;

pub const IDENTICAL: &str = "identical";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum TrialOutcome {
    Passed,
    Failed(String),
    /// The kernel lacks what the trial needs; shown, never counted as a pass.
    Unsupported(String),
    /// The kernel refuses the case's input (established by a probe or a documented rule):
    /// neither a pass nor a program failure.
    InputRefused(String),
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Trial {
    pub name: String,
    /// None for cross-kernel trials.
    pub kernel: Option<String>,
    pub object: String,
    pub case: Option<String>,
    pub outcome: TrialOutcome,
}

/// One planned case with what it must produce.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PlannedCase {
    pub id: String,
    pub object: String,
    pub case: String,
    pub program: String,
    pub expect: Expectation,
    /// The architectures the object is built for (the fixture's `arch`); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch: Vec<String>,
}

impl PlannedCase {
    /// Whether the case runs on a kernel of `arch`.
    pub fn runs_on(&self, arch: &str) -> bool {
        self.arch.is_empty() || self.arch.iter().any(|a| a == arch)
    }

    /// Why a kernel of `arch` does not run it.
    pub fn not_built_for(&self, arch: &str) -> String {
        format!(
            "{} is built for {} (the fixture's `arch`), not for {arch}: registers and syscall \
             numbers are not CO-RE relocated, so such an object needs a build per architecture",
            self.object,
            self.arch.join(", ")
        )
    }
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
    vocabulary: &Vocabulary,
) -> Vec<Trial> {
    let untyped = ObjectTypes::default();
    let types = |object: &str| vocabulary.get(object).unwrap_or(&untyped);
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
            let outcome = if case.runs_on(&run.arch) {
                judge_case(run, case, types(&case.object))
            } else {
                TrialOutcome::Unsupported(format!(
                    "kernel {}: {}",
                    run.kernel,
                    case.not_built_for(&run.arch)
                ))
            };
            trials.push(Trial {
                name: kernel_trial_name(&run.kernel, &case.object, &case.case),
                kernel: Some(run.kernel.clone()),
                object: case.object.clone(),
                case: Some(case.case.clone()),
                outcome,
            });
        }
    }
    for case in cases {
        trials.push(Trial {
            name: identical_trial_name(&case.object, &case.case),
            kernel: None,
            object: case.object.clone(),
            case: Some(case.case.clone()),
            outcome: judge_identical(runs, case, types(&case.object)),
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
                                readable::last_lines(verifier_log, 30)
                            );
                        }
                    }
                }
            }
            if !rejected.is_empty() {
                TrialOutcome::Failed(format!("kernel {}: object {object}:{rejected}", run.kernel))
            } else if !unsupported.is_empty() {
                // Even one program this kernel cannot take is a gap to see, not a pass: the
                // object does not run here as a whole.
                TrialOutcome::Unsupported(format!(
                    "{} of {} programs cannot load here: {}",
                    unsupported.len(),
                    loaded.programs.len(),
                    unsupported.join("; ")
                ))
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

fn judge_case(run: &GuestRun, case: &PlannedCase, types: &ObjectTypes) -> TrialOutcome {
    match run.cases.get(&case.id) {
        None if run.status != GuestStatus::Completed => TrialOutcome::Failed(guest_failure(run)),
        None => TrialOutcome::Failed(format!(
            "kernel {}: the agent reported no result for {}",
            run.kernel, case.id
        )),
        Some(CaseOutcome::Unsupported { reason }) => {
            TrialOutcome::Unsupported(format!("kernel {}: {reason}", run.kernel))
        }
        Some(CaseOutcome::InputRefused { reason, evidence }) => TrialOutcome::InputRefused(
            format!("kernel {}: {reason} (evidence: {evidence})", run.kernel),
        ),
        Some(CaseOutcome::Error { message }) => {
            TrialOutcome::Failed(format!("kernel {}: {message}", run.kernel))
        }
        Some(CaseOutcome::Ran(output)) => {
            match compare_with_expectation(output, &case.expect, types, &case.program) {
                Ok(()) => TrialOutcome::Passed,
                Err(diff) => TrialOutcome::Failed(format!(
                    "kernel {}: program {}: {diff}{}",
                    run.kernel,
                    case.program,
                    printk_section(&run.kernel, output)
                )),
            }
        }
    }
}

/// The case's `bpf_printk` output, for a failure message (empty when it printed nothing).
pub(super) fn printk_section(kernel: &str, output: &RunOutput) -> String {
    if output.printk.is_empty() {
        return String::new();
    }
    format!(
        "\n--- bpf_printk ({kernel}) ---\n{}",
        output.printk.join("\n")
    )
}

#[cfg(test)]
mod tests;
