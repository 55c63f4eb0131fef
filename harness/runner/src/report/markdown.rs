//! The step summary: the kernels × objects table and every failure, in Markdown, for a CI page
//! (`--summary-md`, and `$GITHUB_STEP_SUMMARY` when set).

use std::fmt::Write as _;

use super::{count, summary::cell, RunRecord};
use crate::verdict::TrialOutcome;

/// Longest failure message shown in full; the JSON report keeps the whole of every message.
const MAX_MESSAGE_CHARS: usize = 2000;

pub fn render(record: &RunRecord) -> String {
    let mut objects: Vec<&str> = record.trials.iter().map(|t| t.object.as_str()).collect();
    objects.sort();
    objects.dedup();
    let all = count(record.trials);
    let mut out = String::new();
    let verdict = if all.failed == 0 && !record.interrupted {
        "passed"
    } else {
        "FAILED"
    };
    let _ = writeln!(
        out,
        "### CO-RE compatibility: {verdict}\n\n{} passed, {} failed, {} unsupported; accel {}; wall {:.1} s\n",
        all.passed,
        all.failed,
        all.unsupported,
        record.accel,
        record.wall_ms as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        "| kernel | release | outcome | {} |",
        objects.join(" | ")
    );
    let _ = writeln!(out, "|---|---|---|{}", "---|".repeat(objects.len()));
    for run in record.runs {
        let cells: Vec<String> = objects
            .iter()
            .map(|object| {
                cell(count(record.trials.iter().filter(|t| {
                    t.kernel.as_deref() == Some(&run.kernel) && t.object == *object
                })))
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            run.kernel,
            run.release().unwrap_or("-"),
            run.status.label(),
            cells.join(" | ")
        );
    }
    let identical: Vec<String> = objects
        .iter()
        .map(|object| {
            cell(count(
                record
                    .trials
                    .iter()
                    .filter(|t| t.kernel.is_none() && t.object == *object),
            ))
        })
        .collect();
    let _ = writeln!(out, "| identical | - | - | {} |", identical.join(" | "));

    let failures: Vec<_> = record
        .trials
        .iter()
        .filter_map(|t| match &t.outcome {
            TrialOutcome::Failed(message) => Some((t, message)),
            _ => None,
        })
        .collect();
    let flaky = super::flaky_count(record);
    if flaky > 0 {
        let _ = writeln!(out, "\n**Flaky:** {flaky} passed trials needed a retry:\n");
        for run in record
            .runs
            .iter()
            .filter(|r| !r.earlier_attempts.is_empty())
        {
            let _ = writeln!(
                out,
                "- {}: {}",
                run.kernel,
                escape(&run.earlier_attempts.join(", "))
            );
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(out, "\n#### Failures\n");
        for (trial, message) in failures {
            let mut text: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
            if text.len() < message.len() {
                text.push_str("\n... (cut; the JSON report has it all)");
            }
            let _ = writeln!(
                out,
                "<details><summary><code>{}</code></summary>\n\n```\n{}\n```\n\n</details>\n",
                escape(&trial.name),
                text.replace("```", "'''")
            );
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes the summary to `path` (if given) and appends it to `$GITHUB_STEP_SUMMARY` (if set).
pub fn write(record: &RunRecord, path: Option<&std::path::Path>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let text = render(record);
    if let Some(path) = path {
        crate::fsutil::write_atomic(path, text.as_bytes())
            .with_context(|| format!("writing Markdown summary {}", path.display()))?;
    }
    if let Some(step) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        use std::io::Write as _;
        let step = std::path::PathBuf::from(step);
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&step)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("appending to $GITHUB_STEP_SUMMARY ({})", step.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::GuestRun;
    use crate::verdict::Trial;

    #[test]
    fn table_and_failures() {
        let runs = vec![GuestRun::new("5.10", "x86_64", "tcg")];
        let trials = vec![
            Trial {
                name: "5.10::obj::load".into(),
                kernel: Some("5.10".into()),
                object: "obj".into(),
                case: None,
                outcome: TrialOutcome::Passed,
            },
            Trial {
                name: "5.10::obj::<case>".into(),
                kernel: Some("5.10".into()),
                object: "obj".into(),
                case: Some("c".into()),
                outcome: TrialOutcome::Failed("expected ```1```, got 2".into()),
            },
        ];
        let record = RunRecord {
            matrix: std::path::Path::new("kernels.toml"),
            objects: &[],
            accel: "tcg".into(),
            accel_reason: String::new(),
            wall_ms: 1000,
            interrupted: false,
            runs: &runs,
            trials: &trials,
            cases: &[],
            kernel_order: &[],
        };
        let md = render(&record);
        assert!(md.contains("CO-RE compatibility: FAILED"), "{md}");
        assert!(md.contains("| kernel | release | outcome | obj |"), "{md}");
        assert!(md.contains("| 5.10 | - |"), "{md}");
        assert!(md.contains("<code>5.10::obj::&lt;case&gt;</code>"), "{md}");
        assert!(
            !md.contains("```1```"),
            "a fence in a message must not end the block: {md}"
        );
    }
}
