//! The main job: plan the trials, prepare objects and images, run the guests, judge, report.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use guest_protocol::CaseSpec;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::bundle::Bundle;
use crate::cli::RunArgs;
use crate::config::{KernelEntry, KernelSource, Matrix};
use crate::corpus;
use crate::guest::GuestRun;
use crate::images::{Images, KernelImage};
use crate::layout::Layout;
use crate::report::{ReportPaths, RunRecord};
use crate::verdict::{self, PlannedCase, Trial, TrialOutcome};
use crate::vm::accel::{self, Accel, AccelChoice};
use crate::vm::{qemu, GuestLimits};

/// Exit status when SIGINT/SIGTERM stopped the run (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = crate::interrupt::EXIT_INTERRUPTED as u8;
/// `<work>/kvm-probe.<pid>.d`: the KVM probe guest's files (see [`crate::leftovers`]).
const KVM_PROBE_PREFIX: &str = "kvm-probe.";
/// Exit status when a report could not be written (as for a setup error).
const EXIT_REPORT_FAILED: u8 = 2;

/// Exit status when the selection holds no trial (as cargo-nextest's "no tests to run").
pub const EXIT_NOTHING_SELECTED: u8 = 4;

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

fn planned_cases(files: &[&crate::fixtures::FixtureFile]) -> Vec<PlannedCase> {
    let mut cases = Vec::new();
    for file in files {
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
    cases
}

/// Every object trials are named for: each object, then each of its variants (an object of its
/// own in every trial and report).
fn object_names(plan: &corpus::Plan) -> Vec<String> {
    let mut names = Vec::new();
    for (input, fixtures) in &plan.objects {
        names.push(input.name.clone());
        for variant in fixtures.iter().flat_map(|f| &f.variants) {
            names.push(crate::fixtures::variants::object_name(
                &input.name,
                &variant.name,
            ));
        }
    }
    names
}

/// What every guest receives: each object's bytes as given, and per variant the same bytes
/// with the `.rodata`/`.data` values the variant sets at load time.
fn bundle_objects(corpus: &corpus::Corpus) -> Result<Vec<(guest_protocol::ObjectEntry, Vec<u8>)>> {
    let mut entries = Vec::new();
    for object in &corpus.objects {
        entries.push((
            Bundle::object_entry(object.name(), &object.bytes),
            object.bytes.clone(),
        ));
        let Some(file) = &object.fixtures else {
            continue;
        };
        for variant in &file.variants {
            let name = crate::fixtures::variants::object_name(object.name(), &variant.name);
            let mut entry = Bundle::object_entry(&name, &object.bytes);
            entry.data_overrides = crate::fixtures::variants::resolve(&object.bytes, variant)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.path.display()))?;
            entries.push((entry, object.bytes.clone()));
        }
    }
    Ok(entries)
}

/// Which kernels must boot, and which cases each must run, for the selected trials.
fn needed_by_selection(
    args: &RunArgs,
    kernels: &[&KernelEntry],
    objects: &[String],
    cases: &[PlannedCase],
) -> HashMap<String, BTreeSet<String>> {
    let mut needed = HashMap::new();
    for kernel in kernels {
        let ids: BTreeSet<String> = cases
            .iter()
            .filter(|case| {
                args.selects(&verdict::kernel_trial_name(
                    &kernel.name,
                    &case.object,
                    &case.case,
                )) || args.selects(&verdict::identical_trial_name(&case.object, &case.case))
            })
            .map(|case| case.id.clone())
            .collect();
        let load_selected = objects.iter().any(|o| {
            args.selects(&verdict::load_trial_name(&kernel.name, o))
                || args.selects(&verdict::relocations_trial_name(&kernel.name, o))
        });
        if !ids.is_empty() || load_selected {
            needed.insert(kernel.name.clone(), ids);
        }
    }
    needed
}

pub fn main_run(args: RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let _ = crate::guest::RUN_STARTED.set(started);
    crate::interrupt::stop_on_signal();
    let layout = Layout::new(&args.common, args.work_dir.as_deref());
    let matrix = Matrix::load(&layout.matrix)?;
    let kernels = matrix.select(&args.common.kernels)?;
    let kernel_order: Vec<String> = kernels.iter().map(|k| k.name.clone()).collect();
    let kernels = match args.partition {
        Some(partition) => {
            let slice = partition.slice(&kernels);
            eprintln!(
                "partition {partition}: kernels {}",
                if slice.is_empty() {
                    "none".to_string()
                } else {
                    slice
                        .iter()
                        .map(|k| k.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
            slice
        }
        None => kernels,
    };
    let dirs = args.objects.dirs_or(layout.default_programs.clone());
    let plan = corpus::Plan::find(&dirs, &args.objects.objects)?;
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    let objects = object_names(&plan);
    let cases = planned_cases(&plan.fixture_files().collect::<Vec<_>>());

    let mut names = all_trial_names(&kernels, &objects, &cases);
    if args.libbpf {
        names.extend(kernels.iter().flat_map(|k| {
            objects
                .iter()
                .map(|o| crate::libbpf_verdict::libbpf_trial_name(&k.name, o))
        }));
    }
    if args.list {
        let trials = names
            .into_iter()
            .map(|n| libtest_mimic::Trial::test(n, || Ok(())))
            .collect();
        let _ = libtest_mimic::run(&args.mimic_arguments(), trials);
        return Ok(ExitCode::SUCCESS);
    }

    // Boot only what the selected trials need.
    let mut needed = needed_by_selection(&args, &kernels, &objects, &cases);
    if args.libbpf {
        for kernel in &kernels {
            let selected = objects
                .iter()
                .any(|o| args.selects(&crate::libbpf_verdict::libbpf_trial_name(&kernel.name, o)));
            if selected {
                needed.entry(kernel.name.clone()).or_default();
            }
        }
    }
    let kernels: Vec<&KernelEntry> = kernels
        .into_iter()
        .filter(|k| needed.contains_key(&k.name))
        .collect();
    if kernels.is_empty() {
        eprintln!(
            "error: no trial matches the selection{} among the {} trials of {} object(s) on {} kernel(s) \
             (`--list` shows them); nothing was run",
            describe_selection(&args),
            names.len(),
            objects.len(),
            matrix.select(&args.common.kernels).map_or(0, |k| k.len()),
        );
        return Ok(ExitCode::from(EXIT_NOTHING_SELECTED));
    }

    // A report that cannot be written is found now, not after every guest has run.
    ReportPaths {
        json: args.report_json.as_deref(),
        junit: args.junit.as_deref(),
        markdown: args.summary_md.as_deref(),
    }
    .check()?;

    let boots_qemu = kernels
        .iter()
        .any(|k| !matches!(k.source, KernelSource::Host));
    let build = args.objects.build_options();
    let clang = build.clang();
    host_tools::ensure(
        &host_tools::requirements(boots_qemu, plan.has_sources().then_some(clang.as_str())),
        !args.common.no_install,
    )?;

    if plan.has_sources() {
        eprintln!("building BPF sources");
    }
    let corpus = plan.materialize(&build, &layout.object_cache())?;
    let bundle_objects = bundle_objects(&corpus)?;
    let fixture_files: Vec<crate::fixtures::FixtureFile> = corpus
        .objects
        .iter()
        .filter_map(|o| o.fixtures.clone())
        .collect();
    let case_specs = case_specs(&fixture_files);
    let agent = crate::agent::AGENT.to_vec();
    let libbpf_loader = if args.libbpf {
        eprintln!("building the static libbpf loader (--libbpf)");
        Some(crate::libbpf_loader::build(
            &layout.work,
            !args.common.no_install,
        )?)
    } else {
        None
    };
    let agent_path = crate::agent::install_in(&layout.work)?;

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
        let mut identities = Vec::new();
        for kernel in &kernels {
            let kernel = (*kernel).clone();
            let ids = needed.get(&kernel.name).cloned().unwrap_or_default();
            let mut bundle = Bundle {
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
                libbpf_loader: libbpf_loader.clone(),
            };
            let image = provisioned.get(&kernel.name).cloned();
            let semaphore = semaphore.clone();
            let cancel = cancel_rx.clone();
            let events = events_tx.clone();
            let work = run_dir.join(&kernel.name);
            let agent_path = agent_path.clone();
            let snapshot_cache = args.restores_snapshots().then(|| layout.images.clone());
            let retries = args.retries;
            let once_fault = bundle
                .fault
                .as_deref()
                .is_some_and(|f| f.ends_with("-once"));
            identities.push((kernel.name.clone(), kernel.arch.as_str().to_string()));
            tasks.push(tokio::spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                if *cancel.borrow() {
                    let mut run =
                        GuestRun::new(&kernel.name, kernel.arch.as_str(), accel.qemu_name());
                    run.status = crate::guest::GuestStatus::Interrupted;
                    return run;
                }
                // A timeout or a crash may be the machine, not the kernel: run again up to
                // `--retries` times, and keep what happened before, so a pass on retry is
                // reported as flaky rather than as a plain pass.
                let mut earlier = Vec::new();
                loop {
                    let work = if earlier.is_empty() {
                        work.clone()
                    } else {
                        work.with_file_name(format!("{}.retry{}", kernel.name, earlier.len()))
                    };
                    // A test-only `-once` fault strikes the first attempt alone.
                    let once = bundle
                        .fault
                        .as_deref()
                        .and_then(|f| f.strip_suffix("-once"));
                    if let Some(base) = once.map(str::to_string) {
                        if earlier.is_empty() {
                            bundle.fault = Some(base);
                        }
                    } else if !earlier.is_empty() && once_fault {
                        bundle.fault = None;
                    }
                    let mut run = run_kernel(
                        &kernel,
                        image.clone(),
                        &bundle,
                        &agent_path,
                        &work,
                        accel,
                        snapshot_cache.as_deref(),
                        cancel.clone(),
                        events.clone(),
                    )
                    .await;
                    if earlier.len() < retries as usize
                        && run.status.is_retryable()
                        && !*cancel.borrow()
                    {
                        eprintln!(
                            "[{}] {}: running it again ({} of {retries} retries)",
                            kernel.name,
                            run.status.describe(),
                            earlier.len() + 1
                        );
                        earlier.push(run.status.describe());
                        continue;
                    }
                    run.earlier_attempts = earlier;
                    return run;
                }
            }));
        }
        drop(events_tx);
        let tasks = identities.into_iter().zip(tasks).collect();
        let runs = crate::guest::join_guest_tasks(tasks, accel.qemu_name()).await;
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
    let mut judged = verdict::judge(&selected_cases, &objects, &runs, &predictions, &vocabulary);
    if args.libbpf {
        judged.extend(crate::libbpf_verdict::judge_all(&runs, &objects));
    }
    // One count everywhere: the table, summary, JSON, JUnit and exit status see the trials
    // the filters selected, as libtest does (it still gets them all, to count what it filtered).
    let mut trials: Vec<Trial> = judged
        .iter()
        .filter(|t| args.selects(&t.name))
        .cloned()
        .collect();
    bound_trial_messages(&mut trials);
    let object_records = crate::report::objects::records(&corpus);
    let record = RunRecord {
        matrix: &layout.matrix,
        objects: &object_records,
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
        cases: &selected_cases,
        kernel_order: &kernel_order,
    };
    // Reports first: an interrupted or failing run still leaves its record. A report that
    // cannot be written does not cost the terminal its results: it is said after them.
    let report_errors = ReportPaths {
        json: args.report_json.as_deref(),
        junit: args.junit.as_deref(),
        markdown: args.summary_md.as_deref(),
    }
    .write(&record);
    if let Some(reference) = &args.bless {
        match runs.iter().find(|r| &r.kernel == reference) {
            Some(run) => crate::bless::write_all(&fixture_files, run, &vocabulary)?,
            None => anyhow::bail!(
                "--bless {reference}: that kernel did not run (select it with --kernel)"
            ),
        }
    }
    let conclusion = libtest_mimic::run(&args.mimic_arguments(), mimic_trials(&judged));
    println!("\n{}", crate::report::summary::render(&record));
    print_unsupported(&trials);
    print!("{}", crate::libbpf_verdict::figures(&runs));
    print!("{}", crate::report::objects::render(&record));
    for error in &report_errors {
        eprintln!("error: {error:#}");
    }
    let guests_ok = runs
        .iter()
        .all(|r| r.status == crate::guest::GuestStatus::Completed);
    if interrupted {
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

/// A trial's message goes to the terminal, the JSON and the JUnit report: a runaway one (every
/// entry of a huge map differing) is cut there, not carried three times.
fn bound_trial_messages(trials: &mut [Trial]) {
    for trial in trials {
        if let TrialOutcome::Failed(m) | TrialOutcome::Unsupported(m) = &mut trial.outcome {
            *m = crate::guest::bounded_text(std::mem::take(m), crate::guest::MAX_MESSAGE_BYTES);
        }
    }
}

/// Runs that share a workspace (parallel tests, two terminals) each get a directory of their
/// own for console logs and initramfs files; the oldest are pruned beyond `KEEP_RUNS`.
fn new_run_dir(work: &Path) -> Result<PathBuf> {
    const KEEP_RUNS: usize = 10;
    let runs = work.join("runs");
    std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
    crate::leftovers::reclaim_dead_runs(&runs);
    crate::leftovers::remove_stale(work, KVM_PROBE_PREFIX);
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

/// The filter and skips, as the user typed them, for a message.
fn describe_selection(args: &RunArgs) -> String {
    let mut parts = Vec::new();
    if let Some(filter) = &args.filter {
        parts.push(format!(
            "{}`{filter}`",
            if args.exact { "exactly " } else { "" }
        ));
    }
    for skip in &args.skip {
        parts.push(format!("--skip `{skip}`"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
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
        libbpf_loader: None,
    };
    let work = layout.work.join(format!(
        "{}d",
        crate::leftovers::owned_prefix(KVM_PROBE_PREFIX)
    ));
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
    snapshot_cache: Option<&Path>,
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
    // The kernel's config rides along for `.kconfig` externs; a missing one is the agent's to
    // report (an object that needs it is then refused, as libbpf refuses it).
    let config = image.config.as_ref().and_then(|p| std::fs::read(p).ok());
    if let Some(cache_root) = snapshot_cache {
        use crate::vm::snapshot::{run_kernel as run_restored, Restored};
        let restored = run_restored(
            kernel,
            &image,
            bundle,
            config.as_deref(),
            cache_root,
            accel,
            limits,
            work,
            cancel.clone(),
            events.clone(),
        )
        .await;
        match restored {
            Restored::Ran(run) => return *run,
            Restored::Unavailable(why) => {
                eprintln!("note: [{}] booting fresh: {why}", kernel.name)
            }
        }
    }
    let initramfs = match bundle.write_initramfs_with_config(
        &kernel.name,
        false,
        config.as_deref(),
        &work.join("initramfs.cpio"),
    ) {
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
    // From here on a signal stops the guests and still writes the reports.
    crate::interrupt::hand_over();
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// Lines of a failure message printed on the terminal.
const TERMINAL_MESSAGE_LINES: usize = 40;

pub(crate) fn mimic_trials(trials: &[Trial]) -> Vec<libtest_mimic::Trial> {
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

pub(crate) fn print_unsupported(trials: &[Trial]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel whose image could not be provisioned has no prediction either: its relocation
    /// trials fail with NOT_RUN, never "unsupported" (the kernel lacks nothing).
    #[test]
    fn an_unprovisioned_kernel_fails_its_relocation_trials() {
        let run = GuestRun::not_run("5.10", "x86_64", "image: download failed".into());
        let mut predictions = verdict::Predictions::new();
        predictions.insert(
            ("5.10".into(), "o".into()),
            Err("no image: download failed".into()),
        );
        let trials = verdict::judge(
            &[],
            &["o".to_string()],
            &[run],
            &predictions,
            &Default::default(),
        );
        let relocations = trials
            .iter()
            .find(|t| t.name == verdict::relocations_trial_name("5.10", "o"))
            .unwrap();
        match &relocations.outcome {
            TrialOutcome::Failed(m) => assert!(m.contains("NOT_RUN"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trial_messages_are_bounded() {
        let mut trials = vec![Trial {
            name: "k::o::c".into(),
            kernel: Some("k".into()),
            object: "o".into(),
            case: Some("c".into()),
            outcome: TrialOutcome::Failed("d".repeat(1_350_000)),
        }];
        bound_trial_messages(&mut trials);
        let TrialOutcome::Failed(m) = &trials[0].outcome else {
            panic!()
        };
        assert!(
            m.len() < crate::guest::MAX_MESSAGE_BYTES + 100,
            "{}",
            m.len()
        );
        assert!(m.ends_with("more bytes cut]"));
    }
}
