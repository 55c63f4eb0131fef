//! Planning a run: which kernels, objects and cases the matrix and fixtures define, which
//! trials the filters select, and so which kernels must boot and which cases each must run.
//! Nothing here touches a guest; finding objects reads the directories the user named.

use std::collections::{BTreeSet, HashMap};

use anyhow::Result;

use crate::cli::RunArgs;
use crate::corpus;
use crate::layout::Layout;
use crate::matrix::config::{KernelEntry, KernelSource, Matrix};
use crate::verdict::{self, PlannedCase};

/// What a run will do, decided before anything is built or booted.
pub struct RunPlan<'m> {
    /// The kernels that must boot, in matrix order.
    pub kernels: Vec<&'m KernelEntry>,
    /// Every kernel of the selection (before partitioning), in matrix order, for reports.
    pub kernel_order: Vec<String>,
    /// The objects and fixture files found.
    pub corpus: corpus::Plan,
    /// Every object name trials are named for (variants included).
    pub objects: Vec<String>,
    /// Every case of every fixture file.
    pub cases: Vec<PlannedCase>,
    /// Per kernel that must boot, the ids of the cases it must run.
    pub needed: HashMap<String, BTreeSet<String>>,
}

impl RunPlan<'_> {
    /// Whether any selected kernel is a QEMU guest (rather than the host entry).
    pub fn boots_qemu(&self) -> bool {
        self.kernels
            .iter()
            .any(|k| !matches!(k.source, KernelSource::Host))
    }

    /// The cases some kernel runs: what the verdict and the reports speak of.
    pub fn selected_cases(&self) -> Vec<PlannedCase> {
        self.cases
            .iter()
            .filter(|c| self.needed.values().any(|ids| ids.contains(&c.id)))
            .cloned()
            .collect()
    }
}

/// How planning ended.
pub enum Planned<'m> {
    /// Trials to run.
    Run(RunPlan<'m>),
    /// `--list`: the trial names were printed.
    Listed,
    /// The filters select no trial; the message says what there was.
    NothingSelected(String),
}

/// Plans the run `args` asks for over `matrix`.
pub fn plan<'m>(args: &RunArgs, layout: &Layout, matrix: &'m Matrix) -> Result<Planned<'m>> {
    let selected = matrix.select_in(&args.common.kernels, &args.common.groups)?;
    let kernel_order: Vec<String> = selected.iter().map(|k| k.name.clone()).collect();
    let selected_count = selected.len();
    let kernels = match args.partition {
        Some(partition) => {
            let slice = partition.slice(&selected);
            eprintln!(
                "partition {partition}: kernels {}",
                describe_kernels(&slice)
            );
            slice
        }
        None => selected,
    };
    let dirs = args.objects.dirs_or(layout.default_programs.clone());
    let corpus = corpus::Plan::find(&dirs, &args.objects.objects)?;
    for note in &corpus.notes {
        eprintln!("note: {note}");
    }
    let objects = object_names(&corpus);
    let cases = planned_cases(&corpus.fixture_files().collect::<Vec<_>>());

    let mut names = all_trial_names(&kernels, &objects, &cases);
    if args.libbpf {
        names.extend(kernels.iter().flat_map(|k| {
            objects
                .iter()
                .map(|o| verdict::libbpf::libbpf_trial_name(&k.name, o))
        }));
    }
    if args.kernel_core {
        names.extend(kernels.iter().flat_map(|k| {
            objects
                .iter()
                .map(|o| verdict::kernel_core::trial_name(&k.name, o))
        }));
    }
    if args.list {
        let trials = names
            .into_iter()
            .map(|n| libtest_mimic::Trial::test(n, || Ok(())))
            .collect();
        let _ = libtest_mimic::run(&args.mimic_arguments(), trials);
        return Ok(Planned::Listed);
    }

    // Boot only what the selected trials need.
    let needed = needed_by_selection(args, &kernels, &objects, &cases);
    let kernels: Vec<&KernelEntry> = kernels
        .into_iter()
        .filter(|k| needed.contains_key(&k.name))
        .collect();
    if kernels.is_empty() {
        return Ok(Planned::NothingSelected(format!(
            "no trial matches the selection{} among the {} trials of {} object(s) on {} kernel(s) \
             (`--list` shows them); nothing was run",
            describe_selection(args),
            names.len(),
            objects.len(),
            selected_count,
        )));
    }
    Ok(Planned::Run(RunPlan {
        kernels,
        kernel_order,
        corpus,
        objects,
        cases,
        needed,
    }))
}

fn describe_kernels(kernels: &[&KernelEntry]) -> String {
    if kernels.is_empty() {
        return "none".to_string();
    }
    kernels
        .iter()
        .map(|k| k.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
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
                arch: case.arch.clone(),
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

/// Which kernels must boot, and which cases each must run, for the selected trials.
fn needed_by_selection(
    args: &RunArgs,
    kernels: &[&KernelEntry],
    objects: &[String],
    cases: &[PlannedCase],
) -> HashMap<String, BTreeSet<String>> {
    let mut needed = HashMap::new();
    for kernel in kernels {
        // A case runs only on the architectures its object is built for.
        let ids: BTreeSet<String> = cases
            .iter()
            .filter(|case| case.runs_on(kernel.arch.as_str()))
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
                || (args.libbpf
                    && args.selects(&verdict::libbpf::libbpf_trial_name(&kernel.name, o)))
                || (args.kernel_core
                    && args.selects(&verdict::kernel_core::trial_name(&kernel.name, o)))
        });
        if !ids.is_empty() || load_selected {
            needed.insert(kernel.name.clone(), ids);
        }
    }
    needed
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
