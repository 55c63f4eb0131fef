//! The end of a run: the reports written first (so an interrupted or failing run still leaves
//! its record), `--bless`, the terminal's trial lines and tables, and the exit status.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;

use super::guests::GuestsOutcome;
use super::judge::Judged;
use super::plan::RunPlan;
use super::prepare::Prepared;
use crate::cli::RunArgs;
use crate::guest::GuestStatus;
use crate::layout::Layout;
use crate::report::{ReportPaths, RunRecord};

/// Exit status when SIGINT/SIGTERM stopped the run (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = crate::interrupt::EXIT_INTERRUPTED as u8;
/// Exit status when a report could not be written (as for a setup error).
const EXIT_REPORT_FAILED: u8 = 2;

/// The report files `args` names.
pub fn report_paths(args: &RunArgs) -> ReportPaths<'_> {
    ReportPaths {
        json: args.report_json.as_deref(),
        junit: args.junit.as_deref(),
        markdown: args.summary_md.as_deref(),
    }
}

/// Reports the judged run and returns its exit status.
pub fn conclude(
    args: &RunArgs,
    layout: &Layout,
    plan: &RunPlan,
    prepared: &Prepared,
    guests: GuestsOutcome,
    judged: &Judged,
    started: Instant,
) -> Result<ExitCode> {
    let object_records = crate::report::objects::records(&prepared.corpus);
    let boots_qemu = plan.boots_qemu();
    let record = RunRecord {
        matrix: &layout.matrix,
        objects: &object_records,
        accel: if boots_qemu {
            guests.accel.qemu_name().to_string()
        } else {
            "none".to_string()
        },
        accel_reason: if boots_qemu {
            guests.accel_reason.clone()
        } else {
            "no guest was booted".to_string()
        },
        wall_ms: started.elapsed().as_millis() as u64,
        interrupted: guests.interrupted,
        runs: &guests.runs,
        trials: &judged.selected,
        cases: &judged.cases,
        kernel_order: &plan.kernel_order,
    };
    // A report that cannot be written does not cost the terminal its results: it is said
    // after them.
    let report_errors = report_paths(args).write(&record);
    if let Some(reference) = &args.bless {
        match guests.runs.iter().find(|r| &r.kernel == reference) {
            Some(run) => {
                crate::fixtures::bless::write_all(&prepared.fixture_files, run, &judged.vocabulary)?
            }
            None => anyhow::bail!(
                "--bless {reference}: that kernel did not run (select it with --kernel)"
            ),
        }
    }
    let conclusion = libtest_mimic::run(
        &args.mimic_arguments(),
        crate::report::terminal::mimic_trials(&judged.all),
    );
    println!("\n{}", crate::report::summary::render(&record));
    crate::report::terminal::print_unsupported(&judged.selected);
    print!("{}", crate::verdict::libbpf::figures(&guests.runs));
    print!("{}", crate::report::objects::render(&record));
    for error in &report_errors {
        eprintln!("error: {error:#}");
    }
    let guests_ok = guests
        .runs
        .iter()
        .all(|r| r.status == GuestStatus::Completed);
    if guests.interrupted {
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    if !report_errors.is_empty() {
        return Ok(ExitCode::from(EXIT_REPORT_FAILED));
    }
    Ok(if conclusion.has_failed() || !guests_ok {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
