//! Running the guests of a prepared run: one task per kernel, at most `--jobs` at a time, each
//! retried up to `--retries` times when the machine (not the kernel) may be at fault; SIGINT or
//! SIGTERM stops them all and the run still reports what it has.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::{mpsc, watch, Semaphore};

use super::plan::RunPlan;
use super::prepare::Prepared;
use crate::cli::RunArgs;
use crate::guest::bundle::Bundle;
use crate::guest::{GuestRun, GuestStatus};
use crate::images::KernelImage;
use crate::layout::Layout;
use crate::matrix::config::KernelEntry;
use crate::vm::accel::Accel;
use crate::vm::GuestEvent;

/// What the guests produced.
pub struct GuestsOutcome {
    /// One run per kernel, in the plan's order.
    pub runs: Vec<GuestRun>,
    /// The acceleration every guest used.
    pub accel: Accel,
    /// Why that acceleration.
    pub accel_reason: String,
    /// Whether a signal stopped the run.
    pub interrupted: bool,
}

/// One kernel's guest, with everything it needs.
struct GuestJob {
    kernel: KernelEntry,
    image: Option<Result<KernelImage, String>>,
    bundle: Bundle,
    agent_path: PathBuf,
    /// `vng`, when a kernel of the run has `backend = "virtme-ng"`.
    vng: Option<PathBuf>,
    work: PathBuf,
    snapshot_cache: Option<PathBuf>,
    retries: u32,
    /// Why the guest cannot be prepared (no agent for its architecture, a bad external BTF):
    /// it is then not run, and says so.
    setup_error: Option<String>,
}

/// Boots every kernel of `plan` and collects what each guest said.
pub fn run_all(
    args: &RunArgs,
    layout: &Layout,
    plan: &RunPlan,
    prepared: &Prepared,
) -> Result<GuestsOutcome> {
    let run_dir = super::workdir::new_run_dir(&layout.work)?;
    let accel_choice = super::kvm_probe::decide_accel(args.accel);
    let jobs = args
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let interrupted = Arc::new(AtomicBool::new(false));
    let (runs, accel, accel_reason) = runtime.block_on(async {
        let signal_interrupted = interrupted.clone();
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            signal_interrupted.store(true, Ordering::SeqCst);
            eprintln!("\ninterrupted: stopping every guest");
            let _ = cancel_tx.send(true);
        });
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let per_kernel = plan
            .needed
            .iter()
            .map(|(k, v)| (k.clone(), v.len() as u64))
            .collect();
        let progress = tokio::spawn(super::progress::report(events_rx, per_kernel));
        let (accel, accel_reason) = match accel_choice {
            Ok(choice) => choice,
            Err(reason) => super::kvm_probe::probe_kvm(
                &plan.kernels,
                &prepared.images,
                &prepared.agent,
                layout,
                cancel_rx.clone(),
            )
            .await
            .unwrap_or((Accel::Tcg, reason)),
        };
        eprintln!("acceleration: {} ({accel_reason})", accel.qemu_name());
        let semaphore = Arc::new(Semaphore::new(jobs));
        let mut tasks = Vec::new();
        for kernel in &plan.kernels {
            let job = guest_job(args, layout, plan, prepared, kernel, &run_dir);
            let identity = (kernel.name.clone(), kernel.arch.as_str().to_string());
            let semaphore = semaphore.clone();
            let (cancel, events) = (cancel_rx.clone(), events_tx.clone());
            let task = tokio::spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                run_with_retries(job, accel, cancel, events).await
            });
            tasks.push((identity, task));
        }
        drop(events_tx);
        let runs = crate::guest::join_guest_tasks(tasks, accel.qemu_name()).await;
        let _ = progress.await;
        (runs, accel, accel_reason)
    });
    runtime.shutdown_background();
    Ok(GuestsOutcome {
        runs,
        accel,
        accel_reason,
        interrupted: interrupted.load(Ordering::SeqCst),
    })
}

fn guest_job(
    args: &RunArgs,
    layout: &Layout,
    plan: &RunPlan,
    prepared: &Prepared,
    kernel: &KernelEntry,
    run_dir: &std::path::Path,
) -> GuestJob {
    let ids = plan.needed.get(&kernel.name).cloned().unwrap_or_default();
    // The agent of the guest's architecture, and the entry's external BTF if any.
    let inputs = crate::guest::agent::for_arch(kernel.arch).and_then(|agent| {
        let image = prepared
            .images
            .get(&kernel.name)
            .and_then(|i| i.as_ref().ok());
        crate::kernel_btf::external_btf(kernel, image)
            .map(|btf| (agent, btf))
            .map_err(|e| e.to_string())
    });
    let (agent, kernel_btf, setup_error) = match inputs {
        Ok((agent, btf)) => (agent.to_vec(), btf, None),
        Err(e) => (Vec::new(), None, Some(e)),
    };
    let bundle = Bundle {
        agent,
        objects: prepared.bundle_objects.clone(),
        cases: prepared
            .case_specs
            .iter()
            .filter(|c| ids.contains(&c.id))
            .cloned()
            .collect(),
        fault: args
            .inject_fault
            .iter()
            .find(|(k, _)| k == &kernel.name)
            .map(|(_, f)| f.clone()),
        libbpf_loader: prepared.libbpf_loader.clone(),
        kernel_core: args.kernel_core,
        kernel_btf,
    };
    GuestJob {
        kernel: kernel.clone(),
        image: prepared.images.get(&kernel.name).cloned(),
        bundle,
        agent_path: prepared.agent_path.clone(),
        vng: prepared.vng.clone(),
        work: run_dir.join(&kernel.name),
        snapshot_cache: args.restores_snapshots().then(|| layout.images.clone()),
        retries: args.retries,
        setup_error,
    }
}

/// Runs one kernel's guest. A timeout or a crash may be the machine, not the kernel: it runs
/// again up to `--retries` times, keeping what happened before, so a pass on retry is reported
/// as flaky rather than as a plain pass.
async fn run_with_retries(
    mut job: GuestJob,
    accel: Accel,
    cancel: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<GuestEvent>,
) -> GuestRun {
    let kernel = &job.kernel;
    if *cancel.borrow() {
        let mut run = GuestRun::new(&kernel.name, kernel.arch.as_str(), accel.qemu_name());
        run.status = GuestStatus::Interrupted;
        return run;
    }
    if let Some(e) = &job.setup_error {
        return GuestRun::not_run(&kernel.name, kernel.arch.as_str(), e.clone());
    }
    let once_fault = job
        .bundle
        .fault
        .as_deref()
        .is_some_and(|f| f.ends_with("-once"));
    let mut earlier = Vec::new();
    loop {
        let work = if earlier.is_empty() {
            job.work.clone()
        } else {
            job.work
                .with_file_name(format!("{}.retry{}", kernel.name, earlier.len()))
        };
        // A test-only `-once` fault strikes the first attempt alone.
        let once = job
            .bundle
            .fault
            .as_deref()
            .and_then(|f| f.strip_suffix("-once"));
        if let Some(base) = once.map(str::to_string) {
            if earlier.is_empty() {
                job.bundle.fault = Some(base);
            }
        } else if !earlier.is_empty() && once_fault {
            job.bundle.fault = None;
        }
        let mut run = super::boot::run_kernel(
            kernel,
            job.image.clone(),
            &job.bundle,
            &job.agent_path,
            job.vng.as_deref(),
            &work,
            accel,
            job.snapshot_cache.as_deref(),
            cancel.clone(),
            events.clone(),
        )
        .await;
        if earlier.len() < job.retries as usize && run.status.is_retryable() && !*cancel.borrow() {
            eprintln!(
                "[{}] {}: running it again ({} of {} retries)",
                kernel.name,
                run.status.describe(),
                earlier.len() + 1,
                job.retries
            );
            earlier.push(run.status.describe());
            continue;
        }
        run.earlier_attempts = earlier;
        return run;
    }
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    // From here on a signal stops the guests and still writes the reports.
    crate::interrupt::hand_over();
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}
