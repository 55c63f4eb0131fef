//! One object: verify its bytes, load its BTF and maps, relocate and load its programs.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

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

pub struct LoadedObject {
    pub maps: Vec<LoadedMap>,
    /// Program name → fd and program type, for the programs the kernel accepted.
    pub programs: HashMap<String, (OwnedFd, u32)>,
    /// Program name → why it could not run here (unsupported type, verifier rejection, ...).
    pub not_loaded: HashMap<String, ProgramLoadOutcome>,
    /// Program name → its ELF section (`raw_tp/kfree_skb` names the attach point).
    pub sections: HashMap<String, String>,
}

pub fn load_object(
    bundle: &Path,
    entry: &ObjectEntry,
    target: &Btf,
    features: &BtfFeatures,
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

    let (btf_fd, btf_note) = load_object_btf(&object, features);
    let maps = create_maps(&object, btf_fd.as_ref(), &entry.data_overrides)
        .map_err(|e| format!("{}: {e}", entry.name))?;
    let map_fds: Vec<i32> = maps.iter().map(|m| m.fd.as_raw_fd()).collect();

    let mut relocations = Vec::new();
    let mut program_reports = Vec::new();
    let mut programs = HashMap::new();
    let mut not_loaded = HashMap::new();
    let mut sections = HashMap::new();
    let mut relocate_us = 0;
    for program in object.programs() {
        let name = program.name.clone();
        sections.insert(name.clone(), program.section.clone());
        let started = Instant::now();
        let relocated = core_reloc::relocate_program(&object, &name, target);
        relocate_us += started.elapsed().as_micros() as u64;
        let outcome = match relocated {
            Err(e) => ProgramLoadOutcome::Rejected {
                error: format!("CO-RE relocation failed: {e}"),
                verifier_log: String::new(),
            },
            Ok(mut relocated) => {
                relocations.extend(
                    relocated
                        .core
                        .iter()
                        .map(|d| RelocationReport::from_decision(&name, d)),
                );
                if let Err(e) = relocated.patch_map_fds(&map_fds) {
                    let outcome = ProgramLoadOutcome::Rejected {
                        error: e.to_string(),
                        verifier_log: String::new(),
                    };
                    not_loaded.insert(name.clone(), outcome.clone());
                    program_reports.push(ProgramLoad {
                        program: name,
                        section: program.section.clone(),
                        outcome,
                    });
                    continue;
                }
                let started = Instant::now();
                let request = bpf_loader::ProgramLoad {
                    name: &name,
                    program_type: relocated.program_type,
                    expected_attach_type: relocated.expected_attach_type,
                    insns: &relocated.insns,
                    license: object.license(),
                    kernel_version: object.kernel_version(),
                    btf_fd: btf_fd.as_ref().map(|fd| fd.as_raw_fd()),
                    func_info: if btf_fd.is_some() {
                        &relocated.func_info
                    } else {
                        &[]
                    },
                    func_info_rec_size: relocated.func_info_rec_size,
                    line_info: if btf_fd.is_some() {
                        &relocated.line_info
                    } else {
                        &[]
                    },
                    line_info_rec_size: relocated.line_info_rec_size,
                    prog_flags: relocated.prog_flags,
                    ..Default::default()
                };
                match bpf_loader::load_program(&request) {
                    Ok(fd) => {
                        programs.insert(name.clone(), (fd, relocated.program_type));
                        ProgramLoadOutcome::Loaded {
                            insns: (relocated.insns.len() / 8) as u32,
                            load_us: started.elapsed().as_micros() as u64,
                        }
                    }
                    Err(error) => {
                        classify_load_error(relocated.program_type, error, &relocated.core)
                    }
                }
            }
        };
        if !matches!(outcome, ProgramLoadOutcome::Loaded { .. }) {
            not_loaded.insert(name.clone(), outcome.clone());
        }
        program_reports.push(ProgramLoad {
            program: name,
            section: program.section.clone(),
            outcome,
        });
    }
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
        },
        report,
    ))
}

/// The kernel said no: tell apart "this kernel has no such program type" (an expected gap)
/// from a real rejection, by asking the kernel with a trivial program of the same type.
fn classify_load_error(
    program_type: u32,
    error: bpf_loader::BpfError,
    core: &[core_reloc::CoreDecision],
) -> ProgramLoadOutcome {
    if error.errno() == Some(libc::EINVAL) {
        if let Ok(false) = bpf_loader::probe::program_type_supported(program_type) {
            return ProgramLoadOutcome::Unsupported {
                reason: format!("this kernel does not know program type {program_type}"),
            };
        }
    }
    let verifier_log = error.log().unwrap_or_default().to_string();
    // The log travels apart (`verifier_log`); the error's own text would carry its tail again.
    let mut message = error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
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
    overrides: &[guest_protocol::DataOverride],
) -> Result<Vec<LoadedMap>, String> {
    if let Some(o) = overrides
        .iter()
        .find(|o| !object.maps().iter().any(|m| m.name == o.section))
    {
        return Err(format!("variant: the object has no section {}", o.section));
    }
    let mut maps = Vec::new();
    for spec in object.maps() {
        let mut spec = spec.clone();
        apply_overrides(&mut spec, overrides)?;
        let spec = &spec;
        let mut request = bpf_loader::MapCreate {
            name: spec.kernel_name(),
            map_type: spec.map_type,
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            map_flags: spec.map_flags,
            btf_fd: btf_fd.map(|fd| fd.as_raw_fd()),
            btf_key_type_id: spec.btf_key_type_id,
            btf_value_type_id: spec.btf_value_type_id,
        };
        if spec.btf_value_type_id == 0 {
            request.btf_fd = None;
        }
        let fd = match bpf_loader::create_map(&request) {
            Ok(fd) => fd,
            // Older kernels refuse some BTF-described maps: the map itself is what matters.
            Err(_) if request.btf_fd.is_some() => {
                request.btf_fd = None;
                request.btf_key_type_id = 0;
                request.btf_value_type_id = 0;
                bpf_loader::create_map(&request).map_err(|e| format!("map {}: {e}", spec.name))?
            }
            Err(e) => return Err(format!("map {}: {e}", spec.name)),
        };
        let mut map = LoadedMap {
            spec: spec.clone(),
            fd,
            frozen: false,
        };
        reset_map(&map)?;
        if spec.freeze {
            bpf_loader::map_freeze(map.fd.as_raw_fd())
                .map_err(|e| format!("map {}: {e}", spec.name))?;
            map.frozen = true;
        }
        maps.push(map);
    }
    Ok(maps)
}

/// Puts a map back to its state right after loading, so that every case starts alike.
pub fn reset_map(map: &LoadedMap) -> Result<(), String> {
    let fd = map.fd.as_raw_fd();
    let spec = &map.spec;
    if map.frozen {
        // Programs cannot write it either: it still holds its initial value.
        return Ok(());
    }
    if spec.map_type == bpf_loader::consts::BPF_MAP_TYPE_RINGBUF {
        // No keys: a case empties it by consuming the ring (run_cases, RingBuf::drain).
        return Ok(());
    }
    if let Some(initial) = &spec.initial_value {
        let key = 0u32.to_ne_bytes();
        return bpf_loader::map_update(fd, &key, initial, 0)
            .map_err(|e| format!("map {}: {e}", spec.name));
    }
    match spec.map_type {
        bpf_loader::consts::BPF_MAP_TYPE_ARRAY | bpf_loader::consts::BPF_MAP_TYPE_PERCPU_ARRAY => {
            let value_size = value_size_of(spec);
            let zeros = vec![0u8; value_size];
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
