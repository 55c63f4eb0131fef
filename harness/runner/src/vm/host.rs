//! The "host" matrix entry: the agent as a plain process on the running kernel, no VM.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use super::qemu::die_with_parent;
use super::supervise::{supervise, GuestEvent, ResultsSource, Supervised};
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
    command
        .arg("--bundle")
        .arg(bundle_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    die_with_parent(&mut command);
    let started = Instant::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            run.status =
                GuestStatus::LaunchFailed(format!("cannot start {}: {e}", agent.display()));
            return run;
        }
    };
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
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
    })
    .await
}
