//! `harness merge REPORT.json...`: the JSON reports of a matrix split with `--partition`,
//! judged as one run. Per-kernel trials are taken as each partition judged them; every
//! `identical::` trial is judged again over the kernels of all partitions, from the results
//! the guests reported. Reports of different objects or fixtures, or that share a kernel, are
//! refused: the merged verdict must be the one a single run would give.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::guest::{GuestRun, GuestStatus};
use crate::report::objects::ObjectRecord;
use crate::report::{ReportPaths, RunRecord};
use crate::verdict::{self, PlannedCase, Trial, TrialOutcome};

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The partitions' JSON reports (`--report-json` of each `--partition K/N` run)
    #[arg(value_name = "REPORT.json", required = true)]
    pub reports: Vec<PathBuf>,
    /// Write the merged JSON report here
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,
    /// Write the merged JUnit XML here
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the Markdown summary here (and to $GITHUB_STEP_SUMMARY when set)
    #[arg(long, value_name = "PATH")]
    pub summary_md: Option<PathBuf>,
    /// The objects, to decode map keys and values with their BTF in messages (optional;
    /// each must have the sha256 the reports name)
    #[command(flatten)]
    pub objects: crate::cli::ObjectArgs,
}

/// What a report holds that a merge needs.
#[derive(Debug, Deserialize)]
struct Report {
    matrix: String,
    accel: String,
    accel_reason: String,
    wall_ms: u64,
    interrupted: bool,
    trials: Vec<Trial>,
    replay: Replay,
}

#[derive(Debug, Deserialize)]
struct Replay {
    format: u32,
    objects: Vec<ObjectRecord>,
    kernel_order: Vec<String>,
    cases: Vec<PlannedCase>,
    runs: Vec<GuestRun>,
}

/// Most reports one merge takes (one per partition).
const MAX_REPORTS: usize = crate::matrix::partition::MAX_PARTITIONS;

fn read_report(path: &Path) -> Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let report: Report = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a harness JSON report with a replay section (written by `harness --report-json` of this version?)",
            path.display()
        )
    })?;
    if report.replay.format != crate::report::json::REPLAY_FORMAT {
        bail!(
            "{}: replay format {}, this harness reads {}",
            path.display(),
            report.replay.format,
            crate::report::json::REPLAY_FORMAT
        );
    }
    Ok(report)
}

/// The partitions, joined: runs in matrix order, per-kernel trials as judged, cases once.
#[derive(Debug)]
pub struct Merged {
    pub matrix: String,
    pub accel: String,
    pub accel_reason: String,
    pub wall_ms: u64,
    pub interrupted: bool,
    pub objects: Vec<ObjectRecord>,
    pub kernel_order: Vec<String>,
    pub cases: Vec<PlannedCase>,
    pub runs: Vec<GuestRun>,
    /// Per-kernel trials, and the cross-kernel trials each partition planned (to judge again).
    pub kernel_trials: Vec<Trial>,
    pub identical: Vec<Trial>,
}

fn join(reports: Vec<(PathBuf, Report)>) -> Result<Merged> {
    let Some((first_path, first)) = reports.first() else {
        bail!("no report to merge");
    };
    let first_path = first_path.clone();
    let mut merged = Merged {
        matrix: first.matrix.clone(),
        accel: first.accel.clone(),
        accel_reason: first.accel_reason.clone(),
        wall_ms: 0,
        interrupted: false,
        objects: first.replay.objects.clone(),
        kernel_order: first.replay.kernel_order.clone(),
        cases: first.replay.cases.clone(),
        runs: Vec::new(),
        kernel_trials: Vec::new(),
        identical: Vec::new(),
    };
    let mut kernel_source: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut identical: BTreeMap<String, Trial> = BTreeMap::new();
    for (path, report) in reports {
        check_same_objects(&first_path, &merged.objects, &path, &report.replay.objects)?;
        for case in &report.replay.cases {
            if !merged.cases.iter().any(|c| c.id == case.id) {
                merged.cases.push(case.clone());
            }
        }
        for run in report.replay.runs {
            if let Some(other) = kernel_source.insert(run.kernel.clone(), path.clone()) {
                bail!(
                    "kernel {} is in both {} and {}: partitions must not overlap (run each with a different --partition K/N of the same N)",
                    run.kernel,
                    other.display(),
                    path.display()
                );
            }
            merged.runs.push(run);
        }
        for trial in report.trials {
            if trial.kernel.is_some() {
                merged.kernel_trials.push(trial);
            } else {
                identical.entry(trial.name.clone()).or_insert(trial);
            }
        }
        merged.wall_ms = merged.wall_ms.max(report.wall_ms);
        merged.interrupted |= report.interrupted;
        if report.accel != merged.accel {
            merged.accel = "mixed".into();
            merged.accel_reason = "partitions ran with different accelerators".into();
        }
    }
    let position = |kernel: &str| {
        merged
            .kernel_order
            .iter()
            .position(|k| k == kernel)
            .unwrap_or(usize::MAX)
    };
    merged.runs.sort_by_key(|r| position(&r.kernel));
    merged
        .kernel_trials
        .sort_by_key(|t| t.kernel.as_deref().map_or(usize::MAX, position));
    merged.identical = identical.into_values().collect();
    Ok(merged)
}

fn check_same_objects(
    first_path: &Path,
    first: &[ObjectRecord],
    path: &Path,
    objects: &[ObjectRecord],
) -> Result<()> {
    let describe = |o: &ObjectRecord| {
        format!(
            "{} (sha256 {}, fixtures {})",
            o.name,
            o.sha256,
            o.fixtures_sha256.as_deref().unwrap_or("none")
        )
    };
    for object in objects {
        match first.iter().find(|o| o.name == object.name) {
            None => bail!(
                "{} tested {} but {} did not: merge reports of the same objects",
                path.display(),
                object.name,
                first_path.display()
            ),
            Some(o) if o.sha256 != object.sha256 || o.fixtures_sha256 != object.fixtures_sha256 => {
                bail!(
                    "{} and {} tested different objects or fixtures: {} vs {}",
                    first_path.display(),
                    path.display(),
                    describe(o),
                    describe(object)
                )
            }
            Some(_) => {}
        }
    }
    if let Some(missing) = first
        .iter()
        .find(|o| !objects.iter().any(|x| x.name == o.name))
    {
        bail!(
            "{} tested {} but {} did not: merge reports of the same objects",
            first_path.display(),
            missing.name,
            path.display()
        );
    }
    Ok(())
}

/// Judges the `identical::` trials again over every kernel of the merge.
pub fn judge(merged: &Merged, vocabulary: &crate::verdict::btf_values::Vocabulary) -> Vec<Trial> {
    let none = crate::verdict::btf_values::ObjectTypes::default();
    let mut trials = merged.kernel_trials.clone();
    for planned in &merged.identical {
        let Some(case) = merged
            .cases
            .iter()
            .find(|c| Some(&c.case) == planned.case.as_ref() && c.object == planned.object)
        else {
            trials.push(planned.clone());
            continue;
        };
        let types = vocabulary.get(&case.object).unwrap_or(&none);
        trials.push(Trial {
            outcome: verdict::judge_identical(&merged.runs, case, types),
            ..planned.clone()
        });
    }
    trials
}

pub fn merge_command(args: &MergeArgs) -> Result<ExitCode> {
    if args.reports.len() > MAX_REPORTS {
        bail!("at most {MAX_REPORTS} reports");
    }
    ReportPaths {
        json: args.report_json.as_deref(),
        junit: args.junit.as_deref(),
        markdown: args.summary_md.as_deref(),
    }
    .check()?;
    let reports = args
        .reports
        .iter()
        .map(|p| read_report(p).map(|r| (p.clone(), r)))
        .collect::<Result<Vec<_>>>()?;
    let merged = join(reports)?;
    let vocabulary = vocabulary(args, &merged.objects)?;
    let trials = judge(&merged, &vocabulary);
    let matrix = PathBuf::from(&merged.matrix);
    let record = RunRecord {
        matrix: &matrix,
        objects: &merged.objects,
        accel: merged.accel.clone(),
        accel_reason: merged.accel_reason.clone(),
        wall_ms: merged.wall_ms,
        interrupted: merged.interrupted,
        runs: &merged.runs,
        trials: &trials,
        cases: &merged.cases,
        kernel_order: &merged.kernel_order,
    };
    let report_errors = ReportPaths {
        json: args.report_json.as_deref(),
        junit: args.junit.as_deref(),
        markdown: args.summary_md.as_deref(),
    }
    .write(&record);
    let arguments = libtest_mimic::Arguments {
        test_threads: Some(1),
        ..Default::default()
    };
    let conclusion = libtest_mimic::run(&arguments, crate::report::terminal::mimic_trials(&trials));
    println!("\n{}", crate::report::summary::render(&record));
    crate::report::terminal::print_unsupported(&trials);
    print!("{}", crate::report::objects::render(&record));
    for error in &report_errors {
        eprintln!("error: {error:#}");
    }
    if merged.interrupted {
        return Ok(ExitCode::from(crate::interrupt::EXIT_INTERRUPTED as u8));
    }
    if !report_errors.is_empty() {
        return Ok(ExitCode::from(2));
    }
    let guests_ok = merged
        .runs
        .iter()
        .all(|r| r.status == GuestStatus::Completed);
    let failed = trials
        .iter()
        .any(|t| matches!(t.outcome, TrialOutcome::Failed(_)));
    Ok(if conclusion.has_failed() || failed || !guests_ok {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Object types for readable messages, from the objects named on the command line (each must
/// be the object the reports tested).
fn vocabulary(
    args: &MergeArgs,
    objects: &[ObjectRecord],
) -> Result<crate::verdict::btf_values::Vocabulary> {
    let mut vocabulary = crate::verdict::btf_values::Vocabulary::new();
    if args.objects.programs.is_empty() && args.objects.objects.is_empty() {
        return Ok(vocabulary);
    }
    let plan = crate::corpus::Plan::find(&args.objects.programs, &args.objects.objects)?;
    let cache = crate::fsutil::user_cache_dir().join("harness/work/objects");
    let corpus = plan.materialize(&args.objects.build_options(), &cache)?;
    for object in &corpus.objects {
        let Some(record) = objects.iter().find(|r| r.name == object.name()) else {
            continue;
        };
        if record.sha256 != object.sha256 {
            bail!(
                "{}: sha256 {} is not the {} the reports tested",
                object.input.path.display(),
                object.sha256,
                record.sha256
            );
        }
        vocabulary.insert(
            object.name().to_string(),
            crate::verdict::btf_values::ObjectTypes::from_object(&object.bytes),
        );
    }
    Ok(vocabulary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_protocol::{CaseOutcome, RunOutput};

    fn run(kernel: &str, retval: u32) -> GuestRun {
        let mut run = GuestRun::new(kernel, "x86_64", "tcg");
        run.status = GuestStatus::Completed;
        run.cases.insert(
            "o/c".into(),
            CaseOutcome::Ran(Box::new(RunOutput {
                retval,
                duration_ns: 1,
                ..Default::default()
            })),
        );
        run
    }

    fn object(sha: &str) -> ObjectRecord {
        ObjectRecord {
            name: "o".into(),
            origin: "prebuilt".into(),
            path: "o.bpf.o".into(),
            sha256: sha.into(),
            fixtures: None,
            fixtures_sha256: None,
            cases: 1,
        }
    }

    fn report(runs: Vec<GuestRun>, sha: &str) -> Report {
        let trials = runs
            .iter()
            .map(|r| Trial {
                name: format!("{}::o::c", r.kernel),
                kernel: Some(r.kernel.clone()),
                object: "o".into(),
                case: Some("c".into()),
                outcome: TrialOutcome::Passed,
            })
            .chain([Trial {
                name: "identical::o::c".into(),
                kernel: None,
                object: "o".into(),
                case: Some("c".into()),
                outcome: TrialOutcome::Unsupported("one kernel".into()),
            }])
            .collect();
        Report {
            matrix: "kernels.toml".into(),
            accel: "tcg".into(),
            accel_reason: String::new(),
            wall_ms: 10,
            interrupted: false,
            trials,
            replay: Replay {
                format: crate::report::json::REPLAY_FORMAT,
                objects: vec![object(sha)],
                kernel_order: vec!["5.10".into(), "6.1".into(), "7.2".into()],
                cases: vec![PlannedCase {
                    id: "o/c".into(),
                    object: "o".into(),
                    case: "c".into(),
                    program: "p".into(),
                    expect: Default::default(),
                    arch: Vec::new(),
                }],
                runs,
            },
        }
    }

    fn identical(trials: &[Trial]) -> &TrialOutcome {
        &trials
            .iter()
            .find(|t| t.name == "identical::o::c")
            .unwrap()
            .outcome
    }

    #[test]
    fn partitions_are_judged_together() {
        let merged = join(vec![
            ("a.json".into(), report(vec![run("7.2", 2)], "s")),
            (
                "b.json".into(),
                report(vec![run("5.10", 2), run("6.1", 2)], "s"),
            ),
        ])
        .unwrap();
        let kernels: Vec<&str> = merged.runs.iter().map(|r| r.kernel.as_str()).collect();
        assert_eq!(kernels, ["5.10", "6.1", "7.2"], "matrix order");
        let trials = judge(&merged, &Default::default());
        assert_eq!(identical(&trials), &TrialOutcome::Passed);
        assert_eq!(trials.len(), 4);
    }

    #[test]
    fn a_difference_across_partitions_fails_identical() {
        let merged = join(vec![
            ("a.json".into(), report(vec![run("5.10", 2)], "s")),
            ("b.json".into(), report(vec![run("7.2", 1)], "s")),
        ])
        .unwrap();
        let trials = judge(&merged, &Default::default());
        assert!(
            matches!(identical(&trials), TrialOutcome::Failed(_)),
            "{trials:?}"
        );
    }

    #[test]
    fn different_objects_or_overlapping_kernels_are_refused() {
        let e = join(vec![
            ("a.json".into(), report(vec![run("5.10", 2)], "s1")),
            ("b.json".into(), report(vec![run("7.2", 2)], "s2")),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("different objects or fixtures") && e.contains("s2"),
            "{e}"
        );
        let e = join(vec![
            ("a.json".into(), report(vec![run("5.10", 2)], "s")),
            ("b.json".into(), report(vec![run("5.10", 2)], "s")),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("kernel 5.10 is in both a.json and b.json"),
            "{e}"
        );
    }
}
