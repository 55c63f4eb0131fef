//! The "host" matrix entry: the agent as a plain process on the running kernel, no VM.

use std::path::Path;

use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use super::supervise::{spawn_watched, supervise, GuestEvent, ResultsSource, Supervised};
use super::GuestLimits;
use crate::guest::{GuestRun, GuestStatus};

pub async fn run(
    kernel: &str,
    agent: &Path,
    bundle_dir: &Path,
    work_dir: &Path,
    limits: GuestLimits,
    cancel: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<GuestEvent>,
) -> GuestRun {
    let mut run = GuestRun::new(kernel, std::env::consts::ARCH, "none");
    if let Err(e) = std::fs::create_dir_all(work_dir) {
        run.status =
            GuestStatus::LaunchFailed(format!("cannot create {}: {e}", work_dir.display()));
        return run;
    }
    let mut command = Command::new(agent);
    command.arg("--bundle").arg(bundle_dir);
    let (child, stdout, stderr, started) = match spawn_watched(&mut command) {
        Ok(spawned) => spawned,
        Err(e) => {
            run.status =
                GuestStatus::LaunchFailed(format!("cannot start {}: {e}", agent.display()));
            return run;
        }
    };
    let console_log = work_dir.join("console.log");
    supervise(Supervised {
        run,
        child,
        results: ResultsSource::Stream(Box::new(stdout)),
        console: Box::new(stderr),
        console_log: &console_log,
        limits,
        cancel,
        events,
        started,
        is_vm: false,
    })
    .await
}
