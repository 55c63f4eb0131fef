//! Reports of a finished (or interrupted) run: terminal table, JSON, JUnit XML.

pub mod merge;
pub mod terminal;

pub mod json;
pub mod junit;
pub mod markdown;
pub mod objects;
pub mod summary;

use crate::guest::GuestRun;
use crate::verdict::Trial;

/// Everything a report is made from.
pub struct RunRecord<'a> {
    pub matrix: &'a std::path::Path,
    /// The objects tested: what the user gave, with hashes.
    pub objects: &'a [objects::ObjectRecord],
    pub accel: String,
    pub accel_reason: String,
    pub wall_ms: u64,
    pub interrupted: bool,
    pub runs: &'a [GuestRun],
    pub trials: &'a [Trial],
    /// The cases the run planned and every kernel of the matrix selection in its order (before
    /// `--partition`): what `harness merge` needs to judge partitions together.
    pub cases: &'a [crate::verdict::PlannedCase],
    pub kernel_order: &'a [String],
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub unsupported: usize,
    /// Trials whose input the kernel refused (neither passed nor failed).
    pub input_refused: usize,
}

pub fn count<'a>(trials: impl IntoIterator<Item = &'a Trial>) -> Counts {
    let mut counts = Counts::default();
    for trial in trials {
        match trial.outcome {
            crate::verdict::TrialOutcome::Passed => counts.passed += 1,
            crate::verdict::TrialOutcome::Failed(_) => counts.failed += 1,
            crate::verdict::TrialOutcome::Unsupported(_) => counts.unsupported += 1,
            crate::verdict::TrialOutcome::InputRefused(_) => counts.input_refused += 1,
        }
    }
    counts
}

/// The earlier attempts behind a trial that passed only because `--retries` ran its kernel (or,
/// for a cross-kernel trial, one of its kernels) again: such a trial is flaky, and says so.
pub fn flaky_attempts(record: &RunRecord, trial: &Trial) -> Vec<String> {
    if trial.outcome != crate::verdict::TrialOutcome::Passed {
        return Vec::new();
    }
    record
        .runs
        .iter()
        .filter(|r| trial.kernel.as_deref().is_none_or(|k| k == r.kernel))
        .flat_map(|r| {
            r.earlier_attempts
                .iter()
                .map(move |a| format!("kernel {}: {a}", r.kernel))
        })
        .collect()
}

/// How many trials passed only on a retry.
pub fn flaky_count(record: &RunRecord) -> usize {
    record
        .trials
        .iter()
        .filter(|t| !flaky_attempts(record, t).is_empty())
        .count()
}

/// Where the reports of a run (or a merge) go.
pub struct ReportPaths<'a> {
    pub json: Option<&'a std::path::Path>,
    pub junit: Option<&'a std::path::Path>,
    pub markdown: Option<&'a std::path::Path>,
}

impl ReportPaths<'_> {
    /// Finds a path that cannot be written before the work starts; creates nothing.
    pub fn check(&self) -> anyhow::Result<()> {
        for path in [self.json, self.junit, self.markdown].into_iter().flatten() {
            crate::fsutil::check_writable(path)?;
        }
        Ok(())
    }

    /// Writes every report asked for; a report that fails does not stop the others, and the
    /// caller says the errors after the terminal results.
    pub fn write(&self, record: &RunRecord) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        if let Some(path) = self.json {
            errors.extend(json::write(record, path).err());
        }
        if let Some(path) = self.junit {
            errors.extend(junit::write(record, path).err());
        }
        errors.extend(markdown::write(record, self.markdown).err());
        errors
    }
}

/// Rows as left-aligned columns two spaces apart, a rule under the first (the header).
pub fn aligned_table(rows: &[Vec<String>]) -> String {
    use std::fmt::Write as _;
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            let _ = writeln!(out, "{}", rule.join("  "));
        }
    }
    out
}
