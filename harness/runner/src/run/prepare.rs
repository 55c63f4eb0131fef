//! Preparing a planned run: the host tools it needs, the objects (sources built), what every
//! guest receives, the kernel images (downloaded and unpacked), and the engine's predictions
//! for each kernel from its cached BTF.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Result;
use guest_protocol::{CaseSpec, ObjectEntry};

use super::plan::RunPlan;
use crate::cli::RunArgs;
use crate::corpus;
use crate::fixtures::FixtureFile;
use crate::guest::bundle::Bundle;
use crate::images::{Images, KernelImage};
use crate::layout::Layout;
use crate::matrix::config::{Backend, KernelEntry, KernelSource, Matrix};
use crate::matrix::lockfile::Lockfile;
use crate::verdict;

/// Everything the guests need, ready on the host.
pub struct Prepared {
    /// The objects as shipped, with their fixtures.
    pub corpus: corpus::Corpus,
    /// Each object's (and variant's) manifest entry and bytes, the same for every guest.
    pub bundle_objects: Vec<(ObjectEntry, Vec<u8>)>,
    /// The fixture files of the objects that have one.
    pub fixture_files: Vec<FixtureFile>,
    /// Every case as the agent runs it.
    pub case_specs: Vec<CaseSpec>,
    /// The guest agent's bytes.
    pub agent: Vec<u8>,
    /// The same agent as a file, for the host entry.
    pub agent_path: PathBuf,
    /// `vng`, when a kernel has `backend = "virtme-ng"`.
    pub vng: Option<PathBuf>,
    /// The static libbpf loader, with `--libbpf`.
    pub libbpf_loader: Option<Vec<u8>>,
    /// Per QEMU kernel: its image, or why there is none (that kernel alone fails).
    pub images: HashMap<String, Result<KernelImage, String>>,
    /// What the engine will decide in each guest.
    pub predictions: verdict::Predictions,
}

/// Prepares `plan`: a failure here (a missing tool, a source that does not build, a lock that
/// cannot be resolved) stops the run before any guest boots.
pub fn prepare(
    args: &RunArgs,
    layout: &Layout,
    matrix: &Matrix,
    plan: &RunPlan,
) -> Result<Prepared> {
    let build = args.objects.build_options();
    let clang = build.clang();
    let has_sources = plan.corpus.has_sources();
    let mut needs =
        host_tools::requirements(plan.boots_qemu(), has_sources.then_some(clang.as_str()));
    if plan
        .kernels
        .iter()
        .any(|k| k.arch == crate::matrix::config::Arch::Aarch64)
    {
        needs.extend(host_tools::aarch64_requirements());
    }
    if plan
        .kernels
        .iter()
        .any(|k| matches!(k.source, KernelSource::Tree(_)))
    {
        needs.extend(host_tools::kernel_build_requirements());
    } else if plan.kernels.iter().any(|k| k.btf_from_dwarf) {
        needs.extend(host_tools::dwarf_btf_requirements());
    }
    let boots_virtme_ng = plan.kernels.iter().any(|k| k.backend == Backend::VirtmeNg);
    if boots_virtme_ng {
        needs.extend(host_tools::virtme_ng_requirements());
    }
    host_tools::ensure(&needs, !args.common.no_install)?;
    let vng = if boots_virtme_ng {
        Some(host_tools::ensure_virtme_ng(
            &layout.work.join("tools"),
            !args.common.no_install,
        )?)
    } else {
        None
    };
    if has_sources {
        eprintln!("building BPF sources");
    }
    let corpus = plan
        .corpus
        .clone()
        .materialize(&build, &layout.object_cache())?;
    let bundle_objects = bundle_objects(&corpus)?;
    let fixture_files: Vec<FixtureFile> = corpus
        .objects
        .iter()
        .filter_map(|o| o.fixtures.clone())
        .collect();
    let case_specs = case_specs(&fixture_files);
    let libbpf_loader = if args.libbpf {
        eprintln!("building the static libbpf loader (--libbpf)");
        Some(crate::guest::libbpf_loader::build(
            &layout.work,
            !args.common.no_install,
        )?)
    } else {
        None
    };
    let agent_path = crate::guest::agent::install_in(&layout.work)?;

    // Images: one thread per kernel; a failure costs that kernel only.
    let images = Images::new(&layout.images, matrix);
    let lock =
        crate::matrix::pinning::ensure_locked(&images, matrix, &plan.kernels, &layout.lockfile)?;
    let provisioned = provision_all(&images, &plan.kernels, &lock);
    let predictions = predict_all(&plan.kernels, &provisioned, &bundle_objects);
    Ok(Prepared {
        corpus,
        bundle_objects,
        fixture_files,
        case_specs,
        agent: crate::guest::agent::AGENT.to_vec(),
        agent_path,
        vng,
        libbpf_loader,
        images: provisioned,
        predictions,
    })
}

/// What every guest receives: each object's bytes as given, and per variant the same bytes
/// with the `.rodata`/`.data` values the variant sets at load time.
fn bundle_objects(corpus: &corpus::Corpus) -> Result<Vec<(ObjectEntry, Vec<u8>)>> {
    let mut entries = Vec::new();
    for object in &corpus.objects {
        let mut entry = Bundle::object_entry(object.name(), &object.bytes);
        if let Some(file) = &object.fixtures {
            entry.load = file.load.clone();
        }
        entries.push((entry, object.bytes.clone()));
        let Some(file) = &object.fixtures else {
            continue;
        };
        for variant in &file.variants {
            let name = crate::fixtures::variants::object_name(object.name(), &variant.name);
            let mut entry = Bundle::object_entry(&name, &object.bytes);
            entry.load = file.load.clone();
            entry.data_overrides = crate::fixtures::variants::resolve(&object.bytes, variant)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.path.display()))?;
            entries.push((entry, object.bytes.clone()));
        }
    }
    Ok(entries)
}

fn case_specs(files: &[FixtureFile]) -> Vec<CaseSpec> {
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
                workload: case.workload.clone(),
            });
        }
    }
    specs
}

fn provision_all(
    images: &Images,
    kernels: &[&KernelEntry],
    lock: &Lockfile,
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
    objects: &[(ObjectEntry, Vec<u8>)],
) -> verdict::Predictions {
    let mut predictions = verdict::Predictions::new();
    for kernel in kernels {
        let btf_path = match (&kernel.source, images.get(&kernel.name)) {
            (KernelSource::Host, _) => {
                crate::kernel_btf::btf_path(kernel, None).map_err(|e| e.to_string())
            }
            (_, Some(Ok(image))) => {
                crate::kernel_btf::btf_path(kernel, Some(image)).map_err(|e| e.to_string())
            }
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
                    .map(|object| {
                        let mut prediction = crate::predict::predict(&object, target);
                        // A program that is not loaded is not relocated either, as in libbpf.
                        prediction
                            .retain(|program, _| !entry.load.not_autoloaded.contains(program));
                        prediction
                    })
                    .map_err(|e| format!("{}: {e}", entry.name)),
            };
            predictions.insert((kernel.name.clone(), entry.name.clone()), prediction);
        }
    }
    predictions
}
