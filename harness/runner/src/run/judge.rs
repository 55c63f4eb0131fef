//! Judging what the guests said: every trial of the plan, then the ones the filters select, as
//! libtest counts them, with messages bounded for the terminal and the reports.

use super::plan::RunPlan;
use super::prepare::Prepared;
use crate::cli::RunArgs;
use crate::guest::GuestRun;
use crate::verdict::btf_values::{ObjectTypes, Vocabulary};
use crate::verdict::{self, PlannedCase, Trial, TrialOutcome};

/// The trials of a run.
pub struct Judged {
    /// Every trial judged (libtest gets them all, to count what it filtered).
    pub all: Vec<Trial>,
    /// The trials the filters select: one count for the table, summary, reports and exit.
    pub selected: Vec<Trial>,
    /// The cases some kernel ran.
    pub cases: Vec<PlannedCase>,
    /// The objects' own types, for showing values as their C types.
    pub vocabulary: Vocabulary,
}

/// Judges `runs` against the plan's expectations and the host's predictions.
pub fn judge(args: &RunArgs, plan: &RunPlan, prepared: &Prepared, runs: &[GuestRun]) -> Judged {
    let cases = plan.selected_cases();
    let vocabulary: Vocabulary = prepared
        .bundle_objects
        .iter()
        .map(|(entry, bytes)| (entry.name.clone(), ObjectTypes::from_object(bytes)))
        .collect();
    let mut all = verdict::judge(
        &cases,
        &plan.objects,
        runs,
        &prepared.predictions,
        &vocabulary,
    );
    if args.libbpf {
        all.extend(verdict::libbpf::judge_all(runs, &plan.objects));
    }
    let mut selected: Vec<Trial> = all
        .iter()
        .filter(|t| args.selects(&t.name))
        .cloned()
        .collect();
    bound_trial_messages(&mut selected);
    Judged {
        all,
        selected,
        cases,
        vocabulary,
    }
}

/// A trial's message goes to the terminal, the JSON and the JUnit report: a runaway one (every
/// entry of a huge map differing) is cut there, not carried three times.
fn bound_trial_messages(trials: &mut [Trial]) {
    for trial in trials {
        if let TrialOutcome::Failed(m) | TrialOutcome::Unsupported(m) = &mut trial.outcome {
            *m = crate::guest::bounded_text(std::mem::take(m), crate::guest::MAX_MESSAGE_BYTES);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel whose image could not be provisioned has no prediction either: its relocation
    /// trials fail with NOT_RUN, never "unsupported" (the kernel lacks nothing).
    #[test]
    fn an_unprovisioned_kernel_fails_its_relocation_trials() {
        let run = GuestRun::not_run("5.10", "x86_64", "image: download failed".into());
        let mut predictions = verdict::Predictions::new();
        predictions.insert(
            ("5.10".into(), "o".into()),
            Err("no image: download failed".into()),
        );
        let trials = verdict::judge(
            &[],
            &["o".to_string()],
            &[run],
            &predictions,
            &Default::default(),
        );
        let relocations = trials
            .iter()
            .find(|t| t.name == verdict::relocations_trial_name("5.10", "o"))
            .unwrap();
        match &relocations.outcome {
            TrialOutcome::Failed(m) => assert!(m.contains("NOT_RUN"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trial_messages_are_bounded() {
        let mut trials = vec![Trial {
            name: "k::o::c".into(),
            kernel: Some("k".into()),
            object: "o".into(),
            case: Some("c".into()),
            outcome: TrialOutcome::Failed("d".repeat(1_350_000)),
        }];
        bound_trial_messages(&mut trials);
        let TrialOutcome::Failed(m) = &trials[0].outcome else {
            panic!()
        };
        assert!(
            m.len() < crate::guest::MAX_MESSAGE_BYTES + 100,
            "{}",
            m.len()
        );
        assert!(m.ends_with("more bytes cut]"));
    }
}
