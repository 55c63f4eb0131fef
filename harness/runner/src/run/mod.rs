//! The main job, one step per module: plan the trials (`plan`), prepare objects, images and
//! predictions (`prepare`), run the guests (`guests`, each one `boot`), judge (`judge`), report
//! and exit (`conclude`).

pub mod boot;
pub mod conclude;
pub mod guests;
pub mod judge;
pub mod kvm_probe;
pub mod plan;
pub mod prepare;
pub mod progress;
pub mod workdir;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;

use crate::cli::RunArgs;
use crate::layout::Layout;
use crate::matrix::config::Matrix;
use plan::Planned;

pub use plan::all_trial_names;

/// Exit status when the selection holds no trial (as cargo-nextest's "no tests to run").
pub const EXIT_NOTHING_SELECTED: u8 = 4;

/// `cargo run -p harness -- --matrix kernels.toml`.
pub fn main_run(args: RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let _ = crate::guest::RUN_STARTED.set(started);
    crate::interrupt::stop_on_signal();
    let layout = Layout::new(&args.common, args.work_dir.as_deref());
    let matrix = Matrix::load(&layout.matrix)?;
    let plan = match plan::plan(&args, &layout, &matrix)? {
        Planned::Run(plan) => plan,
        Planned::Listed => return Ok(ExitCode::SUCCESS),
        Planned::NothingSelected(why) => {
            eprintln!("error: {why}");
            return Ok(ExitCode::from(EXIT_NOTHING_SELECTED));
        }
    };
    // A report that cannot be written is found now, not after every guest has run.
    conclude::report_paths(&args).check()?;
    let prepared = prepare::prepare(&args, &layout, &matrix, &plan)?;
    let guests = guests::run_all(&args, &layout, &plan, &prepared)?;
    let judged = judge::judge(&args, &plan, &prepared, &guests.runs);
    conclude::conclude(&args, &layout, &plan, &prepared, guests, &judged, started)
}
