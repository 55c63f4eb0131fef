//! One case: reset the object's maps, BPF_PROG_TEST_RUN, dump the maps the case asks for.

use std::os::fd::AsRawFd;

use guest_protocol::{CaseOutcome, CaseResult, CaseSpec, MapDump, MapEntry, ProgramLoadOutcome, RunOutput};

use crate::load::{reset_map, value_size_of, LoadedObject};

/// Room for programs that grow the packet (encapsulation, adjust_head).
const DATA_OUT_HEADROOM: u32 = 256;

pub fn run_case(object: &LoadedObject, case: &CaseSpec) -> CaseResult {
    CaseResult { case_id: case.id.clone(), outcome: run(object, case) }
}

fn run(object: &LoadedObject, case: &CaseSpec) -> CaseOutcome {
    let Some(fd) = object.programs.get(&case.program) else {
        return match object.not_loaded.get(&case.program) {
            Some(ProgramLoadOutcome::Unsupported { reason }) => CaseOutcome::Unsupported { reason: reason.clone() },
            Some(ProgramLoadOutcome::Rejected { error, verifier_log }) => CaseOutcome::Error {
                message: format!("program {} was not loaded: {error}\n{}", case.program, tail(verifier_log, 40)),
            },
            _ => CaseOutcome::Error { message: format!("no program named {} in object {}", case.program, case.object) },
        };
    };
    for map in &object.maps {
        if let Err(message) = reset_map(map) {
            return CaseOutcome::Error { message };
        }
    }
    let data_size_out = if case.data_size_out > 0 {
        case.data_size_out
    } else {
        case.data_in.len() as u32 + DATA_OUT_HEADROOM
    };
    let request = bpf_loader::TestRun {
        data_in: &case.data_in,
        data_size_out,
        ctx_in: case.ctx_in.as_deref(),
        ctx_size_out: if case.ctx_in.is_some() { case.ctx_size_out.max(case.ctx_in.as_ref().map_or(0, |c| c.len() as u32)) } else { 0 },
        repeat: case.repeat.max(1),
        flags: 0,
    };
    let output = match bpf_loader::test_run(fd.as_raw_fd(), &request) {
        Ok(output) => output,
        Err(error) => {
            let errno = error.errno();
            if errno == Some(524) || errno == Some(libc::EOPNOTSUPP) {
                return CaseOutcome::Unsupported {
                    reason: format!("BPF_PROG_TEST_RUN is not supported for this program type here: {error}"),
                };
            }
            if errno == Some(libc::EINVAL) && case.ctx_in.is_some() {
                return CaseOutcome::Unsupported {
                    reason: format!("this kernel refuses a context (ctx_in) for this program type: {error}"),
                };
            }
            return CaseOutcome::Error { message: format!("BPF_PROG_TEST_RUN failed: {error}") };
        }
    };
    let mut maps = Vec::new();
    for name in &case.dump_maps {
        match object.maps.iter().find(|m| &m.spec.name == name) {
            Some(map) => match dump(map) {
                Ok(dump) => maps.push(dump),
                Err(message) => return CaseOutcome::Error { message },
            },
            None => {
                return CaseOutcome::Error { message: format!("the case expects map {name}, which the object does not define") }
            }
        }
    }
    CaseOutcome::Ran(RunOutput {
        retval: output.retval,
        data_out: output.data_out,
        ctx_out: output.ctx_out,
        duration_ns: output.duration_ns,
        maps,
    })
}

/// Arrays always hold every index: only non-zero entries are listed, so a dump says what the
/// program wrote. Hash-like maps list every entry. Entries are sorted by key.
fn dump(map: &crate::load::LoadedMap) -> Result<MapDump, String> {
    let fd = map.fd.as_raw_fd();
    let spec = &map.spec;
    let value_size = value_size_of(spec);
    let is_array = matches!(
        spec.map_type,
        bpf_loader::consts::BPF_MAP_TYPE_ARRAY | bpf_loader::consts::BPF_MAP_TYPE_PERCPU_ARRAY
    );
    let mut entries = Vec::new();
    for key in bpf_loader::map_keys(fd, spec.key_size as usize).map_err(|e| format!("map {}: {e}", spec.name))? {
        if let Some(value) = bpf_loader::map_lookup(fd, &key, value_size).map_err(|e| format!("map {}: {e}", spec.name))? {
            if is_array && value.iter().all(|&b| b == 0) {
                continue;
            }
            entries.push(MapEntry { key, value });
        }
    }
    entries.sort();
    Ok(MapDump { name: spec.name.clone(), entries })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
