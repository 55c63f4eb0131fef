//! The main job: plan the trials, prepare objects and images, run the guests, judge, report.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use guest_protocol::CaseSpec;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::bundle::Bundle;
use crate::cli::RunArgs;
use crate::config::{KernelEntry, KernelSource, Matrix};
use crate::guest::GuestRun;
use crate::images::{Images, KernelImage};
use crate::report::RunRecord;
use crate::verdict::{self, PlannedCase, Trial, TrialOutcome};
use crate::vm::accel::{self, Accel, AccelChoice};
use crate::vm::{qemu, GuestLimits};

/// Exit status when SIGINT/SIGTERM stopped the run (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

/// Paths the run reads from and writes to, resolved once.
pub struct Layout {
    pub matrix: PathBuf,
    pub lockfile: PathBuf,
    pub programs: PathBuf,
    pub images: PathBuf,
    pub work: PathBuf,
    pub workspace: PathBuf,
}

impl Layout {
    pub fn new(
        common: &crate::cli::CommonArgs,
        programs: Option<&Path>,
        work: Option<&Path>,
    ) -> Layout {
        let matrix_dir = common
            .matrix
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let workspace = crate::agent_build::workspace_root();
        let images = common
            .images
            .clone()
            .unwrap_or_else(|| crate::images::default_cache_dir(&common.matrix));
        Layout {
            matrix: common.matrix.clone(),
            lockfile: common.matrix.with_extension("lock"),
            programs: programs
                .map(Path::to_path_buf)
                .unwrap_or_else(|| matrix_dir.join("programs")),
            images,
            work: work
                .map(Path::to_path_buf)
                .unwrap_or_else(|| crate::agent_build::target_dir(&workspace).join("harness")),
            workspace,
        }
    }
}

/// Every trial the matrix and the fixtures define, before any filter.
pub fn all_trial_names(
    kernels: &[&KernelEntry],
    objects: &[String],
    cases: &[PlannedCase],
) -> Vec<String> {
    let mut names = Vec::new();
    for kernel in kernels {
        for object in objects {
            names.push(verdict::load_trial_name(&kernel.name, object));
            names.push(verdict::relocations_trial_name(&kernel.name, object));
        }
        for case in cases {
            names.push(verdict::kernel_trial_name(
                &kernel.name,
                &case.object,
                &case.case,
            ));
        }
    }
    for case in cases {
        names.push(verdict::identical_trial_name(&case.object, &case.case));
    }
    names
}

fn planned_cases(
    programs: &Path,
) -> Result<(
    Vec<String>,
    Vec<PlannedCase>,
    Vec<crate::fixtures::FixtureFile>,
)> {
    let files = crate::fixtures::load_dir(programs).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut objects = Vec::new();
    let mut cases = Vec::new();
    for file in &files {
        objects.push(file.object.clone());
        // Each variant is an object of its own in every trial and report.
        for variant in &file.variants {
            objects.push(crate::fixtures::variants::object_name(
                &file.object,
                &variant.name,
            ));
        }
        for case in &file.cases {
            cases.push(PlannedCase {
                id: verdict::case_id(&file.object_of(case), &case.name),
                object: file.object_of(case),
                case: case.name.clone(),
                program: case.program.clone(),
                expect: case.expect.clone(),
            });
        }
    }
    Ok((objects, cases, files))
}

pub fn main_run(args: RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let layout = Layout::new(
        &args.common,
        args.programs.as_deref(),
        args.work_dir.as_deref(),
    );
    let matrix = Matrix::load(&layout.matrix)?;
    let kernels = matrix.select(&args.common.kernels)?;
    let (objects, cases, fixture_files) = planned_cases(&layout.programs)?;

    let names = all_trial_names(&kernels, &objects, &cases);
    if args.list {
        let trials = names
            .into_iter()
            .map(|n| libtest_mimic::Trial::test(n, || Ok(())))
            .collect();
        let _ = libtest_mimic::run(&args.mimic_arguments(), trials);
        return Ok(ExitCode::SUCCESS);
    }

    // Boot only what the selected trials need.
    let mut needed: HashMap<String, BTreeSet<String>> = HashMap::new();
    for kernel in &kernels {
        let mut ids = BTreeSet::new();
        for case in &cases {
            if args.selects(&verdict::kernel_trial_name(
                &kernel.name,
                &case.object,
                &case.case,
            )) || args.selects(&verdict::identical_trial_name(&case.object, &case.case))
            {
                ids.insert(case.id.clone());
            }
        }
        let load_selected = objects.iter().any(|o| {
            args.selects(&verdict::load_trial_name(&kernel.name, o))
                || args.selects(&verdict::relocations_trial_name(&kernel.name, o))
        });
        if !ids.is_empty() || load_selected {
            needed.insert(kernel.name.clone(), ids);
        }
    }
    let kernels: Vec<&KernelEntry> = kernels
        .into_iter()
        .filter(|k| needed.contains_key(&k.name))
        .collect();
    if kernels.is_empty() {
        eprintln!("no trial matches the filter; nothing to run");
        return Ok(ExitCode::SUCCESS);
    }

    let boots_qemu = kernels
        .iter()
        .any(|k| !matches!(k.source, KernelSource::Host));
    let clang = std::env::var("HARNESS_CLANG").unwrap_or_else(|_| "clang-19".into());
    host_tools::ensure(
        &host_tools::requirements(boots_qemu, &clang),
        !args.common.no_install,
    )?;

    eprintln!("building BPF objects and the guest agent");
    let built = crate::bpf_build::build_all(&layout.programs, &layout.work.join("objects"))?;
    let agent_path = crate::agent_build::build_agent(&layout.workspace)?;
    let agent =
        std::fs::read(&agent_path).with_context(|| format!("reading {}", agent_path.display()))?;

    let mut bundle_objects = Vec::new();
    for file in &fixture_files {
        let object = &file.object;
        let Some(b) = built.iter().find(|b| &b.name == object) else {
            bail!(
                "fixtures name object {object}, but there is no {}/{object}.bpf.c",
                layout.programs.display()
            );
        };
        let bytes =
            std::fs::read(&b.path).with_context(|| format!("reading {}", b.path.display()))?;
        bundle_objects.push((Bundle::object_entry(object, &bytes), bytes.clone()));
        for variant in &file.variants {
            let name = crate::fixtures::variants::object_name(object, &variant.name);
            let mut entry = Bundle::object_entry(&name, &bytes);
            entry.data_overrides = crate::fixtures::variants::resolve(&bytes, variant)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.path.display()))?;
            bundle_objects.push((entry, bytes.clone()));
        }
    }
    let case_specs = case_specs(&fixture_files);

    // Images: one thread per kernel; a failure costs that kernel only.
    let images = Images::new(&layout.images, &matrix);
    let lock = crate::lock::ensure_locked(&images, &matrix, &kernels, &layout.lockfile)?;
    let provisioned = provision_all(&images, &kernels, &lock);
    let predictions = predict_all(&kernels, &provisioned, &bundle_objects);

    let run_dir = new_run_dir(&layout.work)?;
    let accel_choice = decide_accel(args.accel);
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
    let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runs = runtime.block_on(async {
        let signal_interrupted = interrupted.clone();
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            signal_interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
            eprintln!("\ninterrupted: stopping every guest");
            let _ = cancel_tx.send(true);
        });
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let per_kernel: HashMap<String, u64> = needed
            .iter()
            .map(|(k, v)| (k.clone(), v.len() as u64))
            .collect();
        let progress = tokio::spawn(crate::progress::report(events_rx, per_kernel));
        let (accel, accel_reason) = match accel_choice {
            Ok(choice) => choice,
            Err(reason) => probe_kvm(&kernels, &provisioned, &agent, &layout, cancel_rx.clone())
                .await
                .unwrap_or((Accel::Tcg, reason)),
        };
        eprintln!("acceleration: {} ({accel_reason})", accel.qemu_name());
        let semaphore = Arc::new(Semaphore::new(jobs));
        let mut tasks = Vec::new();
        for kernel in &kernels {
            let kernel = (*kernel).clone();
            let ids = needed.get(&kernel.name).cloned().unwrap_or_default();
            let bundle = Bundle {
                agent: agent.clone(),
                objects: bundle_objects.clone(),
                cases: case_specs
                    .iter()
                    .filter(|c| ids.contains(&c.id))
                    .cloned()
                    .collect(),
                fault: args
                    .inject_fault
                    .iter()
                    .find(|(k, _)| k == &kernel.name)
                    .map(|(_, f)| f.clone()),
            };
            let image = provisioned.get(&kernel.name).cloned();
            let semaphore = semaphore.clone();
            let cancel = cancel_rx.clone();
            let events = events_tx.clone();
            let work = run_dir.join(&kernel.name);
            let agent_path = agent_path.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                if *cancel.borrow() {
                    let mut run =
                        GuestRun::new(&kernel.name, kernel.arch.as_str(), accel.qemu_name());
                    run.status = crate::guest::GuestStatus::Interrupted;
                    return run;
                }
                run_kernel(
                    &kernel,
                    image,
                    &bundle,
                    &agent_path,
                    &work,
                    accel,
                    cancel,
                    events,
                )
                .await
            }));
        }
        drop(events_tx);
        let mut runs = Vec::new();
        for task in tasks {
            match task.await {
                Ok(run) => runs.push(run),
                Err(e) => eprintln!("internal error: a guest task failed: {e}"),
            }
        }
        let _ = progress.await;
        (runs, accel, accel_reason)
    });
    let (runs, accel, accel_reason) = runs;
    runtime.shutdown_background();
    let interrupted = interrupted.load(std::sync::atomic::Ordering::SeqCst);

    let selected_cases: Vec<PlannedCase> = cases
        .iter()
        .filter(|c| needed.values().any(|ids| ids.contains(&c.id)))
        .cloned()
        .collect();
    let vocabulary: crate::btf_values::Vocabulary = bundle_objects
        .iter()
        .map(|(entry, bytes)| {
            (
                entry.name.clone(),
                crate::btf_values::ObjectTypes::from_object(bytes),
            )
        })
        .collect();
    let judged = verdict::judge(&selected_cases, &objects, &runs, &predictions, &vocabulary);
    // One count everywhere: the table, summary, JSON, JUnit and exit status see the trials
    // the filters selected, as libtest does (it still gets them all, to count what it filtered).
    let trials: Vec<Trial> = judged
        .iter()
        .filter(|t| args.selects(&t.name))
        .cloned()
        .collect();
    let record = RunRecord {
        matrix: &layout.matrix,
        accel: if boots_qemu {
            accel.qemu_name().to_string()
        } else {
            "none".to_string()
        },
        accel_reason: if boots_qemu {
            accel_reason
        } else {
            "no guest was booted".to_string()
        },
        wall_ms: started.elapsed().as_millis() as u64,
        interrupted,
        runs: &runs,
        trials: &trials,
    };
    // Reports first: an interrupted or failing run still leaves its record.
    if let Some(path) = &args.report_json {
        crate::report::json::write(&record, path)?;
    }
    if let Some(path) = &args.junit {
        crate::report::junit::write(&record, path)?;
    }
    if let Some(reference) = &args.bless {
        match runs.iter().find(|r| &r.kernel == reference) {
            Some(run) => crate::bless::write_all(&fixture_files, run, &vocabulary)?,
            None => bail!("--bless {reference}: that kernel did not run (select it with --kernel)"),
        }
    }
    let conclusion = libtest_mimic::run(&args.mimic_arguments(), mimic_trials(&judged));
    println!("\n{}", crate::report::summary::render(&record));
    print_unsupported(&trials);
    let guests_ok = runs
        .iter()
        .all(|r| r.status == crate::guest::GuestStatus::Completed);
    if interrupted {
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    Ok(if conclusion.has_failed() || !guests_ok {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs that share a workspace (parallel tests, two terminals) each get a directory of their
/// own for console logs and initramfs files; the oldest are pruned beyond `KEEP_RUNS`.
fn new_run_dir(work: &Path) -> Result<PathBuf> {
    const KEEP_RUNS: usize = 10;
    let runs = work.join("runs");
    std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let dir = runs.join(format!("{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut existing: Vec<PathBuf> = std::fs::read_dir(&runs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    existing.sort();
    let excess = existing.len().saturating_sub(KEEP_RUNS);
    for old in existing.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(dir)
}

fn case_specs(files: &[crate::fixtures::FixtureFile]) -> Vec<CaseSpec> {
    let mut specs = Vec::new();
    for file in files {
        for case in &file.cases {
            let mut dump_maps: Vec<String> =
                case.expect.maps.iter().map(|m| m.map.clone()).collect();
            dump_maps.extend(case.expect.maps_exact.iter().cloned());
            dump_maps.sort();
            dump_maps.dedup();
            specs.push(CaseSpec {
                id: verdict::case_id(&file.object_of(case), &case.name),
                object: file.object_of(case),
                program: case.program.clone(),
                data_in: case.data_in.clone(),
                ctx_in: case.ctx_in.clone(),
                data_size_out: 0,
                ctx_size_out: case.ctx_in.as_ref().map_or(0, |c| c.len() as u32),
                repeat: case.repeat,
                dump_maps,
                ignore_maps: case.expect.ignore_maps.clone(),
                setup_maps: case.setup.clone(),
                data_sequence: case.data_sequence.clone(),
                traffic: case.traffic.clone(),
            });
        }
    }
    specs
}

fn provision_all(
    images: &Images,
    kernels: &[&KernelEntry],
    lock: &crate::lockfile::Lockfile,
) -> HashMap<String, Result<KernelImage, String>> {
    let progress = crate::images::IndicatifProgress::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = kernels
            .iter()
            .filter(|k| !matches!(k.source, KernelSource::Host))
            .map(|kernel| {
                let progress = &progress;
                (
                    kernel.name.clone(),
                    scope.spawn(move || {
                        images
                            .provision(kernel, lock, progress)
                            .map_err(|e| e.to_string())
                    }),
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|(name, handle)| {
                (
                    name,
                    handle
                        .join()
                        .unwrap_or_else(|_| Err("image provisioning panicked".into())),
                )
            })
            .collect()
    })
}

/// What the engine will decide in each guest, computed here from each kernel's cached BTF.
fn predict_all(
    kernels: &[&KernelEntry],
    images: &HashMap<String, Result<KernelImage, String>>,
    objects: &[(guest_protocol::ObjectEntry, Vec<u8>)],
) -> verdict::Predictions {
    let mut predictions = verdict::Predictions::new();
    for kernel in kernels {
        let btf_path = match (&kernel.source, images.get(&kernel.name)) {
            (KernelSource::Host, _) => Ok(PathBuf::from("/sys/kernel/btf/vmlinux")),
            (_, Some(Ok(image))) => image
                .btf
                .clone()
                .ok_or_else(|| "the kernel image has no .BTF section".to_string()),
            (_, Some(Err(e))) => Err(format!("no image: {e}")),
            (_, None) => Err("no image".to_string()),
        };
        let target = btf_path.and_then(|path| {
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            core_reloc::Btf::parse_owned(bytes).map_err(|e| format!("{}: {e}", path.display()))
        });
        for (entry, bytes) in objects {
            let prediction = match &target {
                Err(e) => Err(e.clone()),
                Ok(target) => core_reloc::Object::parse(bytes)
                    .map(|object| crate::predict::predict(&object, target))
                    .map_err(|e| format!("{}: {e}", entry.name)),
            };
            predictions.insert((kernel.name.clone(), entry.name.clone()), prediction);
        }
    }
    predictions
}

/// Ok: decided without a probe. Err(reason): KVM is not ruled out, so a probe boot decides.
fn decide_accel(choice: AccelChoice) -> Result<(Accel, String), String> {
    match choice {
        AccelChoice::Tcg => Ok((Accel::Tcg, "requested with --accel tcg".into())),
        AccelChoice::Kvm => Ok((Accel::Kvm, "requested with --accel kvm".into())),
        AccelChoice::Auto => {
            match accel::kvm_ruled_out(Path::new("/dev/kvm"), Path::new("/sys/module")) {
                Some(reason) => Ok((Accel::Tcg, reason)),
                None => Err("a KVM probe guest did not boot".into()),
            }
        }
    }
}

/// Boots the first kernel under KVM with a hello-only agent; KVM is used only if it answers.
async fn probe_kvm(
    kernels: &[&KernelEntry],
    images: &HashMap<String, Result<KernelImage, String>>,
    agent: &[u8],
    layout: &Layout,
    cancel: watch::Receiver<bool>,
) -> Option<(Accel, String)> {
    let (kernel, image) = kernels
        .iter()
        .find_map(|k| images.get(&k.name)?.as_ref().ok().map(|i| (*k, i)))?;
    let bundle = Bundle {
        agent: agent.to_vec(),
        objects: vec![],
        cases: vec![],
        fault: None,
    };
    let work = layout
        .work
        .join(format!("kvm-probe-{}", std::process::id()));
    let initramfs = bundle
        .write_initramfs(&kernel.name, true, &work.join("initramfs.cpio"))
        .ok()?;
    let limits = GuestLimits {
        boot: std::time::Duration::from_secs(10),
        test: std::time::Duration::from_secs(5),
        guest: std::time::Duration::from_secs(15),
    };
    let guest = qemu::QemuGuest::for_kernel(kernel, image, initramfs, Accel::Kvm, limits, work);
    let (events, _) = mpsc::unbounded_channel();
    let run = qemu::run(&guest, cancel, events).await;
    if run.hello.is_some() {
        Some((
            Accel::Kvm,
            format!("a probe guest ({}) booted under KVM", kernel.name),
        ))
    } else {
        Some((
            Accel::Tcg,
            format!(
                "a probe guest ({}) did not boot under KVM: {}",
                kernel.name,
                run.status.describe()
            ),
        ))
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_kernel(
    kernel: &KernelEntry,
    image: Option<Result<KernelImage, String>>,
    bundle: &Bundle,
    agent_path: &Path,
    work: &Path,
    accel: Accel,
    cancel: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<crate::vm::GuestEvent>,
) -> GuestRun {
    let limits = GuestLimits {
        boot: kernel.boot_timeout,
        test: kernel.test_timeout,
        guest: kernel.guest_timeout,
    };
    if matches!(kernel.source, KernelSource::Host) {
        let dir = work.join("bundle");
        if let Err(e) = bundle.write_dir(&kernel.name, &dir) {
            return GuestRun::not_run(&kernel.name, kernel.arch.as_str(), format!("{e:#}"));
        }
        return crate::vm::host::run(&kernel.name, agent_path, &dir, work, limits, cancel, events)
            .await;
    }
    let image = match image {
        Some(Ok(image)) => image,
        Some(Err(e)) => {
            return GuestRun::not_run(&kernel.name, kernel.arch.as_str(), format!("image: {e}"))
        }
        None => {
            return GuestRun::not_run(
                &kernel.name,
                kernel.arch.as_str(),
                "no image was provisioned".into(),
            )
        }
    };
    let initramfs = match bundle.write_initramfs(&kernel.name, false, &work.join("initramfs.cpio"))
    {
        Ok(path) => path,
        Err(e) => return GuestRun::not_run(&kernel.name, kernel.arch.as_str(), format!("{e:#}")),
    };
    let guest =
        qemu::QemuGuest::for_kernel(kernel, &image, initramfs, accel, limits, work.to_path_buf());
    let run = qemu::run(&guest, cancel, events).await;
    // The console log stays for the record; the initramfs is a few MB of rebuildable bytes.
    let _ = std::fs::remove_file(&guest.initramfs);
    run
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// Lines of a failure message printed on the terminal.
const TERMINAL_MESSAGE_LINES: usize = 40;

fn mimic_trials(trials: &[Trial]) -> Vec<libtest_mimic::Trial> {
    trials
        .iter()
        .map(|trial| {
            let outcome = trial.outcome.clone();
            let mut mimic = libtest_mimic::Trial::test(trial.name.clone(), move || match outcome {
                TrialOutcome::Passed => Ok(()),
                // The terminal gets the start; the JSON report has the whole message.
                TrialOutcome::Failed(message) => {
                    Err(crate::readable::truncate_lines(&message, TERMINAL_MESSAGE_LINES).into())
                }
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

fn print_unsupported(trials: &[Trial]) {
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
