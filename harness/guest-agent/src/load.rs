//! One object: verify its bytes, load its BTF and maps, relocate and load its programs.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use core_reloc::externs::ExternResolution;
use core_reloc::object::{AttachTarget, MapKind};
use core_reloc::{Btf, BtfFeatures, MapSpec, Object};
use guest_protocol::{
    ObjectEntry, ObjectLoaded, ProgramLoad, ProgramLoadOutcome, RelocationReport,
};
use sha2::{Digest, Sha256};

pub struct LoadedMap {
    pub spec: MapSpec,
    pub fd: OwnedFd,
    /// Frozen after its initial value was written (`.rodata`).
    pub frozen: bool,
}

/// An owned copy of a program's `BPF_PROG_LOAD` request (map fds already patched in).
pub struct Reload {
    name: String,
    program_type: u32,
    expected_attach_type: Option<u32>,
    insns: Vec<u8>,
    license: String,
    kernel_version: u32,
    attach_btf_id: Option<u32>,
    func_info: Vec<u8>,
    func_info_rec_size: u32,
    line_info: Vec<u8>,
    line_info_rec_size: u32,
    prog_flags: u32,
}

impl Reload {
    fn of(request: &bpf_loader::ProgramLoad) -> Reload {
        Reload {
            name: request.name.to_string(),
            program_type: request.program_type,
            expected_attach_type: request.expected_attach_type,
            insns: request.insns.to_vec(),
            license: request.license.to_string(),
            kernel_version: request.kernel_version,
            attach_btf_id: request.attach_btf_id,
            func_info: request.func_info.to_vec(),
            func_info_rec_size: request.func_info_rec_size,
            line_info: request.line_info.to_vec(),
            line_info_rec_size: request.line_info_rec_size,
            prog_flags: request.prog_flags,
        }
    }

    /// Loads the program again (it loaded once already, so no log is asked for).
    pub fn load(&self, btf_fd: Option<&OwnedFd>) -> Result<OwnedFd, bpf_loader::BpfError> {
        bpf_loader::load_program(&bpf_loader::ProgramLoad {
            name: &self.name,
            program_type: self.program_type,
            expected_attach_type: self.expected_attach_type,
            insns: &self.insns,
            license: &self.license,
            kernel_version: self.kernel_version,
            attach_btf_id: self.attach_btf_id,
            btf_fd: btf_fd.map(|fd| fd.as_raw_fd()),
            func_info: &self.func_info,
            func_info_rec_size: self.func_info_rec_size,
            line_info: &self.line_info,
            line_info_rec_size: self.line_info_rec_size,
            prog_flags: self.prog_flags,
            ..Default::default()
        })
    }
}

pub struct LoadedObject {
    pub maps: Vec<LoadedMap>,
    /// Program name → fd and program type, for the programs the kernel accepted.
    pub programs: HashMap<String, (OwnedFd, u32)>,
    /// Program name → why it could not run here (unsupported type, verifier rejection, ...).
    pub not_loaded: HashMap<String, ProgramLoadOutcome>,
    /// Program name → its ELF section (`raw_tp/kfree_skb` names the attach point).
    pub sections: HashMap<String, String>,
    /// Program name -> what loads it again, for programs attached through their load-time BTF
    /// target (fentry/fexit/fmod_ret, tp_btf, lsm): before 5.1x such a program can be attached
    /// once per load, so every workload case attaches a fresh load.
    pub reloads: HashMap<String, Reload>,
    /// The object's BTF, kept for those reloads.
    pub btf_fd: Option<OwnedFd>,
    /// With `--kernel-core`: how the kernel's own CO-RE relocation of each program compared.
    pub kernel_core: Option<guest_protocol::KernelCoreObject>,
    /// Time those kernel relocations took, which is not our load's.
    pub kernel_core_us: u64,
    /// `.bss`/`.data` globals by name (where a workload case writes its process's pid).
    pub globals: crate::workload::Globals,
    /// What the loader did differently from libbpf or left out (pinning ignored, ...), for the
    /// report.
    pub notes: Vec<String>,
}

/// `progress` receives a line whenever the agent is about to spend long without a result (a
/// rejected program re-verified for its log), so the runner's silence timer sees it alive.
pub fn load_object(
    bundle: &Path,
    entry: &ObjectEntry,
    target: &Btf,
    features: &BtfFeatures,
    kernel_core: bool,
    progress: &mut dyn FnMut(String),
) -> Result<(LoadedObject, ObjectLoaded), String> {
    let path = bundle.join(&entry.path);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: cannot read: {e}", entry.name))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if sha256 != entry.sha256 {
        return Err(format!(
            "{}: sha256 {sha256} differs from the manifest's {}: the guest did not get the same object",
            entry.name, entry.sha256
        ));
    }
    let object = Object::parse(&bytes)
        .map_err(|e| format!("{}: not a loadable BPF object: {e}", entry.name))?;

    let release = bpf_loader::kernel_release();
    let mut notes = Vec::new();
    let kernel = crate::kernel_facts::gather(&object, bundle, &release, &mut notes);
    let resolution = match core_reloc::externs::resolve(&object, target, &kernel.facts(&release)) {
        Ok(resolution) => resolution,
        // libbpf refuses the whole object before creating anything: so do we.
        Err(e) => {
            return Ok(refused_object(
                &object,
                entry,
                target,
                sha256,
                format!("extern resolution failed (libbpf refuses this object too): {e}"),
                notes,
            ))
        }
    };
    let kernel_version = match object.kernel_version() {
        0 => core_reloc::externs::kernel_version_code(&release).unwrap_or(0),
        v => v,
    };

    let (btf_fd, btf_note) = load_object_btf(&object, features);
    let maps = match create_maps(
        &object,
        btf_fd.as_ref(),
        target,
        &resolution,
        &entry.data_overrides,
        &entry.load,
        &mut notes,
    ) {
        Ok(maps) => maps,
        // As libbpf, a map the kernel refuses fails the whole object: every program is refused
        // with the map's error, and the CO-RE decisions are still reported.
        Err(e) => {
            return Ok(refused_object(
                &object,
                entry,
                target,
                sha256,
                format!(
                    "the object's maps could not be created: {e}{}",
                    crate::memory::out_of_memory_hint(&e)
                ),
                notes,
            ))
        }
    };
    let map_fds: Vec<i32> = maps.iter().map(|m| m.fd.as_raw_fd()).collect();
    let context = ProgramContext {
        object: &object,
        entry,
        target,
        resolution: &resolution,
        map_fds: &map_fds,
        btf_fd: btf_fd.as_ref(),
        kernel_version,
        kernel_core,
    };

    let mut relocations = Vec::new();
    let mut program_reports = Vec::new();
    let mut programs = HashMap::new();
    let mut not_loaded = HashMap::new();
    let mut sections = HashMap::new();
    let mut reloads = HashMap::new();
    let mut kernel_core_programs = Vec::new();
    let mut kernel_core_unsupported = None;
    let mut kernel_core_us = 0;
    let mut relocate_us = 0;
    for program in object.programs() {
        let name = program.name.clone();
        if entry.load.not_autoloaded.contains(&name) {
            notes.push(format!(
                "program {name}: not loaded ([programs.{name}] autoload = false in the fixture)"
            ));
            continue;
        }
        sections.insert(name.clone(), program.section.clone());
        let compare_with_kernel = kernel_core && kernel_core_unsupported.is_none();
        let loaded = context.load_program(program, compare_with_kernel, progress);
        relocate_us += loaded.relocate_us;
        kernel_core_us += loaded.kernel_core_us;
        relocations.extend(loaded.relocations);
        if let Some((fd, program_type)) = loaded.fd {
            programs.insert(name.clone(), (fd, program_type));
        }
        if let Some(reload) = loaded.reload {
            reloads.insert(name.clone(), reload);
        }
        match loaded.kernel_core {
            Some(Ok(compared)) => kernel_core_programs.push(compared),
            Some(Err(crate::kernel_core::Unsupported(why))) => kernel_core_unsupported = Some(why),
            None => {}
        }
        if !matches!(loaded.outcome, ProgramLoadOutcome::Loaded { .. }) {
            not_loaded.insert(name.clone(), loaded.outcome.clone());
        }
        program_reports.push(ProgramLoad {
            program: name,
            section: program.section.clone(),
            outcome: loaded.outcome,
        });
    }
    fill_prog_arrays(&object, &maps, &programs, &mut notes);
    let kernel_core = kernel_core.then(|| {
        kernel_core_summary(
            &entry.name,
            &program_reports,
            kernel_core_programs,
            kernel_core_unsupported,
        )
    });
    let report = ObjectLoaded {
        object: entry.name.clone(),
        sha256,
        relocate_us,
        relocations,
        programs: program_reports,
        btf_note,
    };
    Ok((
        LoadedObject {
            maps,
            programs,
            not_loaded,
            sections,
            reloads,
            btf_fd,
            kernel_core,
            kernel_core_us,
            globals: crate::workload::globals_of(&object),
            notes,
        },
        report,
    ))
}

/// Every program that did not compare as loaded by us is named, so the report covers them all.
fn kernel_core_summary(
    object: &str,
    reports: &[ProgramLoad],
    mut compared: Vec<guest_protocol::KernelCoreProgram>,
    unsupported: Option<String>,
) -> guest_protocol::KernelCoreObject {
    for p in reports {
        if !compared.iter().any(|k| k.program == p.program) {
            compared.push(guest_protocol::KernelCoreProgram {
                program: p.program.clone(),
                relocations: 0,
                outcome: guest_protocol::KernelCoreOutcome::NotCompared {
                    reason: "ours did not load it".into(),
                },
            });
        }
    }
    guest_protocol::KernelCoreObject {
        object: object.to_string(),
        programs: if unsupported.is_some() {
            Vec::new()
        } else {
            compared
        },
        unsupported,
    }
}

/// What every program of one object is loaded with: the maps exist, the externs are resolved.
struct ProgramContext<'a> {
    object: &'a Object,
    entry: &'a ObjectEntry,
    target: &'a Btf,
    resolution: &'a ExternResolution,
    map_fds: &'a [i32],
    btf_fd: Option<&'a OwnedFd>,
    kernel_version: u32,
    kernel_core: bool,
}

/// One program's load: its outcome and what the object keeps of it.
struct ProgramLoaded {
    outcome: ProgramLoadOutcome,
    relocations: Vec<RelocationReport>,
    fd: Option<(OwnedFd, u32)>,
    reload: Option<Reload>,
    kernel_core: Option<Result<guest_protocol::KernelCoreProgram, crate::kernel_core::Unsupported>>,
    relocate_us: u64,
    kernel_core_us: u64,
}

impl ProgramLoaded {
    fn refused(outcome: ProgramLoadOutcome, relocations: Vec<RelocationReport>) -> Self {
        ProgramLoaded {
            outcome,
            relocations,
            fd: None,
            reload: None,
            kernel_core: None,
            relocate_us: 0,
            kernel_core_us: 0,
        }
    }
}

impl ProgramContext<'_> {
    /// Relocates, patches and loads `program`; with `compare_with_kernel`, loads it again through
    /// the kernel's own CO-RE to compare (see kernel_core.rs).
    fn load_program(
        &self,
        program: &core_reloc::object::Program,
        compare_with_kernel: bool,
        progress: &mut dyn FnMut(String),
    ) -> ProgramLoaded {
        let name = &program.name;
        let started = Instant::now();
        let relocated = core_reloc::relocate_program(self.object, name, self.target);
        let relocate_us = started.elapsed().as_micros() as u64;
        let mut relocated = match relocated {
            Ok(relocated) => relocated,
            Err(e) => {
                let mut refused = ProgramLoaded::refused(
                    ProgramLoadOutcome::Rejected {
                        error: format!("CO-RE relocation failed: {e}"),
                        verifier_log: String::new(),
                    },
                    Vec::new(),
                );
                refused.relocate_us = relocate_us;
                return refused;
            }
        };
        let relocations: Vec<RelocationReport> = relocated
            .core
            .iter()
            .map(|d| relocation_report(name, d))
            .collect();
        let refuse = |outcome, relocations| {
            let mut refused = ProgramLoaded::refused(outcome, relocations);
            refused.relocate_us = relocate_us;
            refused
        };
        let (attach_btf_id, expected_attach_type) =
            match attach_btf_id(self.object, program, self.target) {
                Ok((id, expected)) => (id, expected.or(relocated.expected_attach_type)),
                Err(reason) => {
                    return refuse(ProgramLoadOutcome::Unsupported { reason }, relocations)
                }
            };
        let patched = relocated
            .patch_map_fds(self.map_fds)
            .and_then(|()| relocated.patch_externs(self.resolution));
        if let Err(e) = patched {
            return refuse(
                ProgramLoadOutcome::Rejected {
                    error: e.to_string(),
                    verifier_log: String::new(),
                },
                relocations,
            );
        }
        let with_btf = self.btf_fd.is_some();
        let request = bpf_loader::ProgramLoad {
            name,
            program_type: relocated.program_type,
            expected_attach_type,
            insns: &relocated.insns,
            license: self.object.license(),
            kernel_version: self.kernel_version,
            attach_btf_id,
            btf_fd: self.btf_fd.map(|fd| fd.as_raw_fd()),
            func_info: if with_btf { &relocated.func_info } else { &[] },
            func_info_rec_size: relocated.func_info_rec_size,
            line_info: if with_btf { &relocated.line_info } else { &[] },
            line_info_rec_size: relocated.line_info_rec_size,
            prog_flags: relocated.prog_flags,
            ..Default::default()
        };
        let mut before_log_reload = |took: std::time::Duration, errno: i32| {
            progress(format!(
                "{}: program {name} refused ({}) after {} ms; loading it again for the \
                 verifier's log",
                self.entry.name,
                bpf_loader::Errno(errno),
                took.as_millis()
            ))
        };
        let started = Instant::now();
        let fd = match bpf_loader::load_program_reporting(
            &request,
            Some(LOG_RELOAD_BUDGET),
            &mut before_log_reload,
        ) {
            Ok(fd) => fd,
            Err(error) => {
                let outcome = classify_load_error(relocated.program_type, error, &relocated.core);
                return refuse(outcome, relocations);
            }
        };
        let load_us = started.elapsed().as_micros() as u64;
        // 5.10 lets a loaded tracing program attach once: each case attaches a fresh load.
        let reload = matches!(
            relocated.program_type,
            bpf_loader::consts::BPF_PROG_TYPE_TRACING | bpf_loader::consts::BPF_PROG_TYPE_LSM
        )
        .then(|| Reload::of(&request));
        let (kernel_core, kernel_core_us) = if compare_with_kernel && self.kernel_core {
            let kernel_started = Instant::now();
            let compared = crate::kernel_core::compare_program(
                self.object,
                &relocated,
                &request,
                &fd,
                self.map_fds,
                self.resolution,
            );
            (Some(compared), kernel_started.elapsed().as_micros() as u64)
        } else {
            (None, 0)
        };
        ProgramLoaded {
            outcome: ProgramLoadOutcome::Loaded {
                insns: (relocated.insns.len() / 8) as u32,
                load_us,
            },
            relocations,
            fd: Some((fd, relocated.program_type)),
            reload,
            kernel_core,
            relocate_us,
            kernel_core_us,
        }
    }
}

/// One decision as the runner's prediction reports it (`runner/src/predict/mod.rs`).
fn relocation_report(program: &str, d: &core_reloc::CoreDecision) -> RelocationReport {
    RelocationReport::new(program, d.insn_index, d.kind, &d.access, &d.outcome)
}

/// Every program refused for one object-level reason (an extern libbpf cannot resolve either).
/// An object refused before anything is created still reports its CO-RE decisions: they do
/// not depend on externs, and the relocations trial compares them with the host's prediction.
fn refused_object(
    object: &Object,
    entry: &ObjectEntry,
    target: &Btf,
    sha256: String,
    why: String,
    notes: Vec<String>,
) -> (LoadedObject, ObjectLoaded) {
    let outcome = ProgramLoadOutcome::Rejected {
        error: why,
        verifier_log: String::new(),
    };
    let mut not_loaded = HashMap::new();
    let mut sections = HashMap::new();
    let mut programs = Vec::new();
    let mut relocations = Vec::new();
    for p in object.programs() {
        if entry.load.not_autoloaded.contains(&p.name) {
            continue;
        }
        if let Ok(decisions) = core_reloc::predict_program(object, &p.name, target) {
            relocations.extend(decisions.iter().map(|d| relocation_report(&p.name, d)));
        }
        not_loaded.insert(p.name.clone(), outcome.clone());
        sections.insert(p.name.clone(), p.section.clone());
        programs.push(ProgramLoad {
            program: p.name.clone(),
            section: p.section.clone(),
            outcome: outcome.clone(),
        });
    }
    (
        LoadedObject {
            maps: Vec::new(),
            programs: HashMap::new(),
            not_loaded,
            sections,
            reloads: HashMap::new(),
            btf_fd: None,
            kernel_core: None,
            kernel_core_us: 0,
            globals: Default::default(),
            notes,
        },
        ObjectLoaded {
            object: entry.name.clone(),
            sha256,
            relocate_us: 0,
            relocations,
            programs,
            btf_note: None,
        },
    )
}

/// `attach_btf_id` for programs whose section names a kernel BTF target (fentry, tp_btf, lsm,
/// iter...), from the running kernel's BTF, as libbpf resolves it before loading. `Err` says
/// why the program cannot load here: the kernel lacks the target (libbpf fails the load the
/// same way), or the target is one a harness run cannot give (another program, a module).
/// For struct_ops programs the second value is the expected attach type: the index of the
/// member the program fills in the kernel's struct (libbpf sets it so).
type AttachIds = (Option<u32>, Option<u32>);

fn attach_btf_id(
    object: &Object,
    program: &core_reloc::Program,
    target: &Btf,
) -> Result<AttachIds, String> {
    match program.attach_target {
        AttachTarget::None => Ok((None, None)),
        AttachTarget::Program => Err(format!(
            "section {}: freplace programs need the fd of the program they replace, which a \
             harness run does not provide",
            program.section
        )),
        AttachTarget::StructOps => struct_ops_target(object, program, target),
        AttachTarget::KernelBtf { .. } => {
            let Some(wanted) = &program.kernel_btf_target else {
                return Err(format!(
                    "section {}: no attach target named (libbpf needs \
                     bpf_program__set_attach_target here)",
                    program.section
                ));
            };
            if let Some(module) = &wanted.module {
                return Err(format!(
                    "section {}: the target is in module {module}, whose BTF is not searched",
                    program.section
                ));
            }
            match wanted.find_in(target) {
                Some(id) => Ok((Some(id), None)),
                None => Err(format!(
                    "section {}: the kernel's BTF has no {} {} (libbpf: failed to find kernel BTF \
                     type ID): this kernel lacks the attach target",
                    program.section, wanted.kind, wanted.name
                )),
            }
        }
    }
}

/// A struct_ops program attaches to the kernel struct its map instantiates, at the index of the
/// member it fills there (by name, as libbpf matches them).
fn struct_ops_target(
    object: &Object,
    program: &core_reloc::Program,
    target: &Btf,
) -> Result<AttachIds, String> {
    let found = object.maps().iter().find_map(|m| {
        let ops = m.struct_ops.as_ref()?;
        let member = ops.members.iter().find(|(_, p)| p == &program.name)?;
        Some((ops, member.0.as_str()))
    });
    let Some((ops, member)) = found else {
        return Err(format!(
            "section {}: no struct_ops map uses program {} (libbpf does not load it either)",
            program.section, program.name
        ));
    };
    let kernel_struct = target
        .ids_by_name(core_reloc::Kind::Struct, &ops.type_name)
        .first()
        .copied()
        .ok_or_else(|| format!("the kernel's BTF has no struct {}", ops.type_name))?;
    let index = target
        .type_by_id(kernel_struct)
        .map_err(|e| e.to_string())?
        .members()
        .iter()
        .position(|m| m.name == member)
        .ok_or_else(|| {
            format!(
                "the kernel's struct {} has no member {member} (for program {})",
                ops.type_name, program.name
            )
        })?;
    Ok((Some(kernel_struct), Some(index as u32)))
}

/// `.values = { [i] = &prog }` of prog_array maps, written once the programs are loaded
/// (libbpf does it after loading too). A program that did not load leaves its slot empty.
fn fill_prog_arrays(
    object: &Object,
    maps: &[LoadedMap],
    programs: &HashMap<String, (OwnedFd, u32)>,
    notes: &mut Vec<String>,
) {
    for map in maps {
        if map.spec.map_type != bpf_loader::consts::BPF_MAP_TYPE_PROG_ARRAY {
            continue;
        }
        for (slot, name) in &map.spec.init_slots {
            let Some((fd, _)) = programs.get(name) else {
                notes.push(format!(
                    "map {}: slot {slot} names program {name}, which did not load: left empty",
                    map.spec.name
                ));
                continue;
            };
            let value = fd.as_raw_fd().to_ne_bytes();
            if let Err(e) =
                bpf_loader::map_update(map.fd.as_raw_fd(), &slot.to_ne_bytes(), &value, 0)
            {
                notes.push(format!(
                    "map {}: slot {slot} <- program {name}: {e}",
                    map.spec.name
                ));
            }
        }
    }
    let _ = object;
}

/// Why a program type's minimal load fails. Types that attach to kernel functions by BTF id
/// (tracing, LSM, struct_ops, freplace) cannot load at all on a kernel without BTF of its own,
/// whatever BTF the harness relocated against: that is the gap to name, not the type.
fn unknown_type_reason(program_type: u32) -> String {
    let name = bpf_loader::consts::prog_type_name(program_type);
    if bpf_loader::prog_types::program_type(program_type).needs_btf_target
        && !std::path::Path::new(crate::system::KERNEL_BTF_PATH).exists()
    {
        return format!(
            "program type {name} attaches by the running kernel's own BTF, and this kernel has \
             none ({} is missing: built without CONFIG_DEBUG_INFO_BTF); BTF given to the \
             harness relocates CO-RE, it cannot stand in for the kernel's",
            crate::system::KERNEL_BTF_PATH
        );
    }
    format!("this kernel does not know program type {program_type} ({name})")
}

/// The kernel said no: tell apart "this kernel has no such program type" (an expected gap)
/// from a real rejection, by asking the kernel with a trivial program of the same type.
fn classify_load_error(
    program_type: u32,
    error: bpf_loader::BpfError,
    core: &[core_reloc::CoreDecision],
) -> ProgramLoadOutcome {
    if program_type == core_reloc::object::prog_type::UNSPEC {
        // No program type at all: the section name follows no libbpf convention, which libbpf
        // refuses too ("missing BPF prog type"); that is the object's doing, not a kernel gap.
        return ProgramLoadOutcome::Rejected {
            error: "its section name follows no libbpf convention, so it has no program type \
                    (libbpf refuses it too: \"missing BPF prog type, check ELF section name\")"
                .into(),
            verifier_log: String::new(),
        };
    }
    if error.errno() == Some(libc::EINVAL) {
        if let Ok(false) = bpf_loader::probe::program_type_supported(program_type) {
            return ProgramLoadOutcome::Unsupported {
                reason: unknown_type_reason(program_type),
            };
        }
    }
    if error.errno() == Some(libc::EPERM)
        && matches!(
            bpf_loader::probe::program_type_support(program_type),
            Ok(bpf_loader::probe::ProgTypeSupport::Denied)
        )
    {
        return ProgramLoadOutcome::Unsupported {
            reason: format!(
                "this kernel knows program type {} but refuses it to this process (EPERM while \
                 other programs load: an LSM or sandbox policy)",
                bpf_loader::consts::prog_type_name(program_type)
            ),
        };
    }
    // A type the probe reaches (fentry's probe stops at its attach target) may still be refused
    // per program by a policy: EPERM to a process that loads other programs is that policy, not
    // a missing privilege, and not the program's fault.
    if error.errno() == Some(libc::EPERM)
        && matches!(
            bpf_loader::probe::program_type_support(
                bpf_loader::consts::BPF_PROG_TYPE_SOCKET_FILTER
            ),
            Ok(bpf_loader::probe::ProgTypeSupport::Supported)
        )
    {
        return ProgramLoadOutcome::Unsupported {
            reason: format!(
                "this kernel refuses this {} program to this process although it loads others \
                 (EPERM: an LSM, lockdown or sandbox policy)",
                bpf_loader::consts::prog_type_name(program_type)
            ),
        };
    }
    let verifier_log = bounded_log(error.log().unwrap_or_default());
    // The log travels in its own field: the message is the headline only, so a report shows
    // the log once.
    let mut message = error.headline();
    // The verifier names a poisoned instruction only as a call to an unknown helper.
    if verifier_log.contains(&POISON_HELPER_DECIMAL.to_string()) {
        for decision in core {
            if let core_reloc::CoreOutcome::Poisoned { reason } = &decision.outcome {
                message.push_str(&format!(
                    "\ninsn {} was poisoned by the CO-RE relocation {} {} ({reason}): the verifier reached it, so \
                     on this kernel that code must be guarded (bpf_core_field_exists / bpf_core_type_exists)",
                    decision.insn_index, decision.kind, decision.access
                ));
            }
        }
    }
    ProgramLoadOutcome::Rejected {
        error: message,
        verifier_log,
    }
}

/// Most bytes of a verifier log sent to the runner: its head and its tail, each half of this.
/// A too-complex program's log fills any buffer, and the results port is a UART: 256 KiB take
/// tens of seconds there under TCG.
const MAX_REPORTED_LOG: usize = 48 * 1024;

/// The log cut to its first and last [`MAX_REPORTED_LOG`]/2 bytes (at line boundaries), with a
/// line saying how much was left out.
fn bounded_log(log: &str) -> String {
    if log.len() <= MAX_REPORTED_LOG {
        return log.to_string();
    }
    let half = MAX_REPORTED_LOG / 2;
    let mut head_end = half;
    while !log.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let head_end = log[..head_end].rfind('\n').map_or(head_end, |i| i + 1);
    let mut tail_start = log.len() - half;
    while !log.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    let tail_start = log[tail_start..]
        .find('\n')
        .map_or(tail_start, |i| tail_start + i + 1);
    format!(
        "{}[... {} bytes of the verifier log left out ...]\n{}",
        &log[..head_end],
        tail_start - head_end,
        &log[tail_start..]
    )
}

/// How long a rejected program may be re-verified for its log: well inside the runner's silence
/// limit (30 s by default), which the progress line before the reload restarts.
const LOG_RELOAD_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// libbpf's (and our engine's) poison helper id, 0xbad2310, as the verifier prints it.
const POISON_HELPER_DECIMAL: u32 = 0xbad2310;

/// The object's BTF makes func_info/line_info (and so the kernel's own checks and readable
/// verifier logs) possible; a kernel that refuses it still runs the programs without it.
fn load_object_btf(object: &Object, features: &BtfFeatures) -> (Option<OwnedFd>, Option<String>) {
    let Some(btf) = object.btf() else {
        return (None, Some("object has no .BTF section".into()));
    };
    let blob = core_reloc::sanitize_btf(btf, features);
    match bpf_loader::load_btf(&blob) {
        Ok(fd) => (Some(fd), None),
        Err(e) => (
            None,
            Some(format!(
                "kernel refused the object's BTF, loading without it: {e}"
            )),
        ),
    }
}

/// A variant's bytes over the initial value of its data section; bounds-checked.
fn apply_overrides(
    spec: &mut MapSpec,
    overrides: &[guest_protocol::DataOverride],
) -> Result<(), String> {
    for o in overrides.iter().filter(|o| o.section == spec.name) {
        let Some(initial) = spec.initial_value.as_mut() else {
            return Err(format!(
                "variant: map {} has no initial value to set",
                spec.name
            ));
        };
        let start = o.offset as usize;
        let Some(target) = start
            .checked_add(o.bytes.len())
            .and_then(|end| initial.get_mut(start..end))
        else {
            return Err(format!(
                "variant: {} bytes at offset {start} do not fit in {} ({} bytes)",
                o.bytes.len(),
                spec.name,
                initial.len()
            ));
        };
        target.copy_from_slice(&o.bytes);
    }
    Ok(())
}

fn create_maps(
    object: &Object,
    btf_fd: Option<&OwnedFd>,
    target: &Btf,
    resolution: &ExternResolution,
    overrides: &[guest_protocol::DataOverride],
    settings: &guest_protocol::LoadSettings,
    notes: &mut Vec<String>,
) -> Result<Vec<LoadedMap>, String> {
    if let Some(o) = overrides
        .iter()
        .find(|o| !object.maps().iter().any(|m| m.name == o.section))
    {
        return Err(format!("variant: the object has no section {}", o.section));
    }
    let mut maps: Vec<LoadedMap> = Vec::new();
    for spec in object.maps() {
        let mut spec = spec.clone();
        if spec.kind == MapKind::Kconfig {
            spec.initial_value = resolution.kconfig_image.clone();
        }
        apply_overrides(&mut spec, overrides)?;
        // As the object's user space would with bpf_map__set_max_entries/_value_size.
        if let Some(setting) = settings.maps.get(&spec.name) {
            spec.max_entries = setting.max_entries.unwrap_or(spec.max_entries);
            spec.value_size = setting.value_size.unwrap_or(spec.value_size);
        }
        if spec.pinning != 0 {
            notes.push(format!(
                "map {}: pinning {} ignored: the harness creates a fresh map, it neither pins \
                 nor reuses a pinned one",
                spec.name, spec.pinning
            ));
        }
        let fd = create_one_map(&spec, btf_fd, target)?;
        let mut map = LoadedMap {
            spec,
            fd,
            frozen: false,
        };
        reset_map(&map)?;
        if map.spec.freeze {
            bpf_loader::map_freeze(map.fd.as_raw_fd())
                .map_err(|e| format!("map {}: {e}", map.spec.name))?;
            map.frozen = true;
        }
        maps.push(map);
    }
    // Map-in-map `.values`: the inner maps exist now.
    for outer in &maps {
        if outer.spec.inner.is_none() {
            continue;
        }
        for (slot, name) in &outer.spec.init_slots {
            let inner = maps.iter().find(|m| &m.spec.name == name).ok_or_else(|| {
                format!("map {}: slot {slot} names no map {name}", outer.spec.name)
            })?;
            let key = slot_key(&outer.spec, *slot);
            bpf_loader::map_update(
                outer.fd.as_raw_fd(),
                &key,
                &inner.fd.as_raw_fd().to_ne_bytes(),
                0,
            )
            .map_err(|e| format!("map {}: slot {slot} <- map {name}: {e}", outer.spec.name))?;
        }
    }
    Ok(maps)
}

/// The key of `.values` slot `slot`: the index as a key of the map's key size.
fn slot_key(spec: &MapSpec, slot: u32) -> Vec<u8> {
    let mut key = vec![0u8; spec.key_size as usize];
    let bytes = slot.to_ne_bytes();
    let n = key.len().min(4);
    key[..n].copy_from_slice(&bytes[..n]);
    key
}

/// Map types whose BTF key/value libbpf never passes to the kernel (fd holders, event and stack
/// maps): the kernel refuses BTF for most of them.
fn takes_no_btf(map_type: u32) -> bool {
    use bpf_loader::consts::*;
    matches!(
        map_type,
        BPF_MAP_TYPE_PERF_EVENT_ARRAY
            | BPF_MAP_TYPE_CGROUP_ARRAY
            | BPF_MAP_TYPE_STACK_TRACE
            | BPF_MAP_TYPE_ARRAY_OF_MAPS
            | BPF_MAP_TYPE_HASH_OF_MAPS
            | BPF_MAP_TYPE_DEVMAP
            | BPF_MAP_TYPE_DEVMAP_HASH
            | BPF_MAP_TYPE_CPUMAP
            | BPF_MAP_TYPE_XSKMAP
            | BPF_MAP_TYPE_SOCKMAP
            | BPF_MAP_TYPE_SOCKHASH
            | BPF_MAP_TYPE_QUEUE
            | BPF_MAP_TYPE_STACK
            | BPF_MAP_TYPE_PROG_ARRAY
    )
}

/// `max_entries` as libbpf adjusts it: possible CPUs for a perf event array that leaves it 0, a
/// power-of-two multiple of the page size for ring buffers.
fn adjusted_max_entries(spec: &MapSpec) -> u32 {
    use bpf_loader::consts::*;
    match spec.map_type {
        BPF_MAP_TYPE_PERF_EVENT_ARRAY if spec.max_entries == 0 => {
            bpf_loader::possible_cpus().map_or(1, |n| n as u32)
        }
        // 0 stays 0 (the kernel refuses it, as it refuses libbpf).
        BPF_MAP_TYPE_RINGBUF | BPF_MAP_TYPE_USER_RINGBUF if spec.max_entries != 0 => {
            let page = page_size();
            let pages = spec.max_entries.div_ceil(page).max(1);
            pages
                .checked_next_power_of_two()
                .and_then(|p| p.checked_mul(page))
                .unwrap_or(spec.max_entries)
        }
        _ => spec.max_entries,
    }
}

fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

fn create_one_map(
    spec: &MapSpec,
    btf_fd: Option<&OwnedFd>,
    target: &Btf,
) -> Result<OwnedFd, String> {
    // An array/hash of maps needs a template of its inner map, made from the inner definition
    // and closed once the outer map exists (libbpf does the same).
    let inner_fd = match &spec.inner {
        Some(inner) => Some(create_one_map(inner, btf_fd, target)?),
        None => None,
    };
    // A struct_ops map's value is the kernel's `bpf_struct_ops_<struct>` wrapper.
    let struct_ops_value = match &spec.struct_ops {
        Some(ops) => {
            let wrapper = format!("bpf_struct_ops_{}", ops.type_name);
            let id = target
                .ids_by_name(core_reloc::Kind::Struct, &wrapper)
                .first()
                .copied()
                .ok_or_else(|| {
                    format!(
                        "struct_ops map {}: the kernel's BTF has no {wrapper}: this kernel cannot \
                         run {} struct_ops (libbpf refuses the object too)",
                        spec.name, ops.type_name
                    )
                })?;
            let size = target
                .resolve_size(id)
                .map_err(|e| format!("struct_ops map {}: {wrapper}: {e}", spec.name))?;
            Some((id, size))
        }
        None => None,
    };
    let mut request = bpf_loader::MapCreate {
        name: spec.kernel_name(),
        map_type: spec.map_type,
        key_size: spec.key_size,
        value_size: struct_ops_value.map_or(spec.value_size, |(_, size)| size),
        max_entries: adjusted_max_entries(spec),
        map_flags: spec.map_flags,
        btf_fd: btf_fd.map(|fd| fd.as_raw_fd()),
        btf_key_type_id: spec.btf_key_type_id,
        btf_value_type_id: spec.btf_value_type_id,
    };
    if struct_ops_value.is_some() {
        // The kernel wants the object's BTF but no key/value ids next to the vmlinux type.
        request.btf_key_type_id = 0;
        request.btf_value_type_id = 0;
    } else if spec.btf_value_type_id == 0 || takes_no_btf(spec.map_type) {
        request.btf_fd = None;
        request.btf_key_type_id = 0;
        request.btf_value_type_id = 0;
    }
    let extra = bpf_loader::MapCreateExtra {
        btf_vmlinux_value_type_id: struct_ops_value.map_or(0, |(id, _)| id),
        inner_map_fd: inner_fd.as_ref().map(|fd| fd.as_raw_fd()),
        numa_node: spec.numa_node,
        map_extra: spec.map_extra,
    };
    match bpf_loader::create_map_with(&request, &extra) {
        Ok(fd) => Ok(fd),
        // Older kernels refuse some BTF-described maps: the map itself is what matters.
        Err(_) if request.btf_fd.is_some() && struct_ops_value.is_none() => {
            request.btf_fd = None;
            request.btf_key_type_id = 0;
            request.btf_value_type_id = 0;
            bpf_loader::create_map_with(&request, &extra)
                .map_err(|e| format!("map {}: {e}", spec.name))
        }
        Err(e) => Err(format!("map {}: {e}", spec.name)),
    }
}

/// Puts a map back to its state right after loading, so that every case starts alike.
pub fn reset_map(map: &LoadedMap) -> Result<(), String> {
    let fd = map.fd.as_raw_fd();
    let spec = &map.spec;
    if map.frozen {
        // Programs cannot write it either: it still holds its initial value.
        return Ok(());
    }
    if let Some(initial) = &spec.initial_value {
        let key = 0u32.to_ne_bytes();
        return bpf_loader::map_update(fd, &key, initial, 0)
            .map_err(|e| format!("map {}: {e}", spec.name));
    }
    if !resettable(spec.map_type) {
        // Fd holders keep what the loader put in them; event, storage and queue maps have no
        // keys to walk.
        return Ok(());
    }
    match spec.map_type {
        bpf_loader::consts::BPF_MAP_TYPE_ARRAY | bpf_loader::consts::BPF_MAP_TYPE_PERCPU_ARRAY => {
            let value_size = value_size_of(spec);
            let zeros = vec![0u8; value_size];
            // A few batch syscalls instead of three per index: a 256-entry counter array cost
            // about 5 ms per case under TCG, twice (reset and dump).
            if let Some(entries) = array_entries_batched(map, usize::MAX) {
                let (keys, _): (Vec<Vec<u8>>, Vec<Vec<u8>>) = entries?
                    .into_iter()
                    .filter(|(_, v)| v.iter().any(|&b| b != 0))
                    .unzip();
                let written = keys.is_empty()
                    || bpf_loader::map_update_batch(fd, &keys, &vec![zeros.clone(); keys.len()], 0)
                        .is_ok();
                if written {
                    return Ok(());
                }
            }
            for key in bpf_loader::map_keys(fd, spec.key_size as usize)
                .map_err(|e| format!("map {}: {e}", spec.name))?
            {
                let current = bpf_loader::map_lookup(fd, &key, value_size)
                    .map_err(|e| format!("map {}: {e}", spec.name))?;
                if current.is_some_and(|v| v.iter().any(|&b| b != 0)) {
                    bpf_loader::map_update(fd, &key, &zeros, 0)
                        .map_err(|e| format!("map {}: {e}", spec.name))?;
                }
            }
        }
        _ => {
            for key in bpf_loader::map_keys(fd, spec.key_size as usize)
                .map_err(|e| format!("map {}: {e}", spec.name))?
            {
                bpf_loader::map_delete(fd, &key).map_err(|e| format!("map {}: {e}", spec.name))?;
            }
        }
    }
    Ok(())
}

/// Entries of a batch call, bounded: what one call reads of an array.
const ARRAY_BATCH_ENTRIES: usize = 1024;

/// A map entry: key bytes, value bytes.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Every entry of an array (ARRAY, PERCPU_ARRAY), in key order, by `BPF_MAP_LOOKUP_BATCH`;
/// `None` when the kernel cannot batch this map (the caller walks it key by key), an error past
/// `max_entries` entries.
pub fn array_entries_batched(
    map: &LoadedMap,
    max_entries: usize,
) -> Option<Result<Vec<KeyValue>, String>> {
    let fd = map.fd.as_raw_fd();
    let spec = &map.spec;
    let key_size = spec.key_size as usize;
    let value_size = value_size_of(spec);
    let mut entries = Vec::new();
    let mut start: Option<Vec<u8>> = None;
    loop {
        let batch = match bpf_loader::map_lookup_batch(
            fd,
            start.as_deref(),
            key_size,
            value_size,
            ARRAY_BATCH_ENTRIES,
        ) {
            Ok(batch) => batch,
            // Refused at the first call: this kernel or map has no batch; walk it instead.
            Err(e) if start.is_none() && (e.is_invalid_argument() || e.is_not_supported()) => {
                return None
            }
            Err(e) => return Some(Err(format!("map {}: {e}", spec.name))),
        };
        entries.extend(batch.keys.into_iter().zip(batch.values));
        if entries.len() > max_entries {
            return Some(Err(format!(
                "map {}: more than {max_entries} keys to scan; the dump is bounded",
                spec.name
            )));
        }
        match batch.next {
            Some(next) => start = Some(next),
            None => return Some(Ok(entries)),
        }
    }
}

/// Map types whose entries can be walked and zeroed or deleted between cases.
fn resettable(map_type: u32) -> bool {
    use bpf_loader::consts::*;
    matches!(
        map_type,
        BPF_MAP_TYPE_HASH
            | BPF_MAP_TYPE_ARRAY
            | BPF_MAP_TYPE_PERCPU_HASH
            | BPF_MAP_TYPE_PERCPU_ARRAY
            | BPF_MAP_TYPE_STACK_TRACE
            | BPF_MAP_TYPE_LRU_HASH
            | BPF_MAP_TYPE_LRU_PERCPU_HASH
            | BPF_MAP_TYPE_LPM_TRIE
            | BPF_MAP_TYPE_SOCKHASH
            | BPF_MAP_TYPE_DEVMAP_HASH
    )
}

/// Per-CPU maps hold one 8-byte-aligned slot per possible CPU.
pub fn value_size_of(spec: &MapSpec) -> usize {
    use bpf_loader::consts::*;
    match spec.map_type {
        BPF_MAP_TYPE_PERCPU_ARRAY | BPF_MAP_TYPE_PERCPU_HASH | BPF_MAP_TYPE_LRU_PERCPU_HASH => {
            (spec.value_size as usize).div_ceil(8) * 8 * bpf_loader::possible_cpus().unwrap_or(1)
        }
        _ => spec.value_size as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_logs_keep_head_and_tail() {
        let short = "0: (b7) r0 = 0\n1: (95) exit\n";
        assert_eq!(bounded_log(short), short);
        let long: String = (0..20_000).map(|i| format!("{i}: insn\n")).collect();
        let cut = bounded_log(&long);
        assert!(cut.len() <= MAX_REPORTED_LOG + 100, "{}", cut.len());
        assert!(cut.starts_with("0: insn\n"));
        assert!(cut.ends_with("19999: insn\n"));
        assert!(cut.contains("bytes of the verifier log left out"));
        assert!(cut
            .lines()
            .all(|l| l.ends_with("insn") || l.contains("left out")));
    }
}
