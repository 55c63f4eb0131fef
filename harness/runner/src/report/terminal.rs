//! The terminal's part of a report: libtest's lines for each trial, and what was neither passed
//! nor failed, grouped so a one-kernel run does not read as "the kernel lacks" anything.

use crate::verdict::{Trial, TrialOutcome};

/// Lines of a failure message printed on the terminal.
const TERMINAL_MESSAGE_LINES: usize = 40;

pub fn mimic_trials(trials: &[Trial]) -> Vec<libtest_mimic::Trial> {
    trials
        .iter()
        .map(|trial| {
            let outcome = trial.outcome.clone();
            let mut mimic = libtest_mimic::Trial::test(trial.name.clone(), move || match outcome {
                TrialOutcome::Passed => Ok(()),
                // The terminal gets the start; the JSON report has the whole message.
                TrialOutcome::Failed(message) => Err(crate::verdict::readable::truncate_lines(
                    &message,
                    TERMINAL_MESSAGE_LINES,
                )
                .into()),
                TrialOutcome::Unsupported(_) | TrialOutcome::InputRefused(_) => Ok(()),
            });
            match trial.outcome {
                TrialOutcome::Unsupported(_) => {
                    mimic = mimic.with_kind("unsupported").with_ignored_flag(true)
                }
                TrialOutcome::InputRefused(_) => {
                    mimic = mimic.with_kind("input refused").with_ignored_flag(true)
                }
                _ => {}
            }
            mimic
        })
        .collect()
}

pub fn print_unsupported(trials: &[Trial]) {
    for trial in trials {
        if let TrialOutcome::InputRefused(reason) = &trial.outcome {
            println!(
                "input refused by the kernel (neither passed nor failed): {}: {reason}",
                trial.name
            );
        }
    }
    // Per-kernel gaps and cross-kernel comparisons that could not be made are different
    // stories: a one-kernel run must not read as "the kernel lacks" anything.
    print_unsupported_group(
        trials.iter().filter(|t| t.kernel.is_some()),
        "unsupported (the kernel lacks what the trial needs; not counted as passed):",
    );
    print_unsupported_group(
        trials.iter().filter(|t| t.kernel.is_none()),
        "not compared (`identical` needs two kernels that ran the case; not counted as passed):",
    );
}

fn print_unsupported_group<'a>(trials: impl Iterator<Item = &'a Trial>, header: &str) {
    // Grouped by reason: one kernel alone makes every cross-kernel trial unsupported alike.
    let mut by_reason: Vec<(String, Vec<&str>)> = Vec::new();
    for trial in trials {
        if let TrialOutcome::Unsupported(reason) = &trial.outcome {
            let reason = reason.replace(
                &format!("kernel {}: ", trial.kernel.as_deref().unwrap_or("")),
                "",
            );
            match by_reason.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, names)) => names.push(&trial.name),
                None => by_reason.push((reason, vec![&trial.name])),
            }
        }
    }
    if by_reason.is_empty() {
        return;
    }
    println!("{header}");
    for (reason, names) in by_reason {
        if names.len() <= 3 {
            for name in names {
                println!("  {name}: {reason}");
            }
        } else {
            println!(
                "  {} trials ({}, {}, ...): {reason}",
                names.len(),
                names[0],
                names[1]
            );
        }
    }
}
