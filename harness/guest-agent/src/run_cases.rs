//! One case: reset the object's maps, BPF_PROG_TEST_RUN (or, for a traffic case, attach and
//! send packets: [`crate::traffic`]), dump the maps the case asks for.

use std::os::fd::AsRawFd;

use guest_protocol::{
    CaseOutcome, CaseResult, CaseSpec, MapDump, MapEntry, ProgramLoadOutcome, RunOutput,
};

use crate::load::{reset_map, value_size_of, LoadedObject};

/// Room for programs that grow the packet (encapsulation, adjust_head).
const DATA_OUT_HEADROOM: u32 = 256;

pub fn run_case(object: &LoadedObject, case: &CaseSpec) -> CaseResult {
    CaseResult {
        case_id: case.id.clone(),
        outcome: run(object, case),
    }
}

fn run(object: &LoadedObject, case: &CaseSpec) -> CaseOutcome {
    let Some((fd, program_type)) = object.programs.get(&case.program) else {
        return match object.not_loaded.get(&case.program) {
            Some(ProgramLoadOutcome::Unsupported { reason }) => CaseOutcome::Unsupported {
                reason: reason.clone(),
            },
            Some(ProgramLoadOutcome::Rejected {
                error,
                verifier_log,
            }) => CaseOutcome::Error {
                message: format!(
                    "program {} was not loaded: {error}\n{}",
                    case.program,
                    tail(verifier_log, 40)
                ),
            },
            _ => CaseOutcome::Error {
                message: format!(
                    "no program named {} in object {}",
                    case.program, case.object
                ),
            },
        };
    };
    for map in &object.maps {
        if let Err(message) = reset_map(map) {
            return CaseOutcome::Error { message };
        }
    }
    let output = if let Some(flows) = &case.traffic {
        match crate::traffic::run(object, case, fd, *program_type, flows) {
            Ok(output) => output,
            Err(outcome) => return outcome,
        }
    } else {
        let request = test_run_request(case, *program_type);
        match bpf_loader::test_run(fd.as_raw_fd(), &request) {
            Ok(output) => output,
            Err(error) => return classify_test_run_error(case, *program_type, error),
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
                return CaseOutcome::Error {
                    message: format!(
                        "the case expects map {name}, which the object does not define"
                    ),
                }
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

/// The test-run attributes a program type accepts. Tracing-style types (raw tracepoint,
/// syscall) take a context in and nothing else: the kernel refuses data, repeat and ctx_out.
fn test_run_request(case: &CaseSpec, program_type: u32) -> bpf_loader::TestRun<'_> {
    use bpf_loader::consts::{BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_PROG_TYPE_SYSCALL};
    if matches!(
        program_type,
        BPF_PROG_TYPE_RAW_TRACEPOINT | BPF_PROG_TYPE_SYSCALL
    ) {
        return bpf_loader::TestRun {
            data_in: &[],
            data_size_out: 0,
            ctx_in: case.ctx_in.as_deref(),
            ctx_size_out: 0,
            repeat: 0,
            flags: 0,
        };
    }
    if program_type == bpf_loader::consts::BPF_PROG_TYPE_SK_LOOKUP {
        // A socket lookup runs on its context alone: data in or out is refused.
        return bpf_loader::TestRun {
            data_in: &[],
            data_size_out: 0,
            ctx_in: case.ctx_in.as_deref(),
            ctx_size_out: case
                .ctx_in
                .as_ref()
                .map_or(0, |c| case.ctx_size_out.max(c.len() as u32)),
            repeat: case.repeat.max(1),
            flags: 0,
        };
    }
    let data_size_out = if case.data_size_out > 0 {
        case.data_size_out
    } else {
        case.data_in.len() as u32 + DATA_OUT_HEADROOM
    };
    let ctx_size_out = match &case.ctx_in {
        Some(ctx) => case.ctx_size_out.max(ctx.len() as u32),
        None => 0,
    };
    bpf_loader::TestRun {
        data_in: &case.data_in,
        data_size_out,
        ctx_in: case.ctx_in.as_deref(),
        ctx_size_out,
        repeat: case.repeat.max(1),
        flags: 0,
    }
}

/// Unsupported only where the kernel demonstrably lacks the feature; anything else is an error
/// (an EINVAL from a bad request must never hide as "unsupported").
fn classify_test_run_error(
    case: &CaseSpec,
    program_type: u32,
    error: bpf_loader::BpfError,
) -> CaseOutcome {
    if error.is_not_supported() {
        return CaseOutcome::Unsupported {
            reason: format!("BPF_PROG_TEST_RUN is not implemented for program type {program_type} on this kernel ({error})"),
        };
    }
    if program_type == bpf_loader::consts::BPF_PROG_TYPE_XDP
        && case.ctx_in.is_some()
        && matches!(bpf_loader::probe::test_run_xdp_ctx_supported(), Ok(false))
    {
        return CaseOutcome::Unsupported {
            reason: "XDP test runs take no xdp_md context on this kernel (added in 5.15)".into(),
        };
    }
    CaseOutcome::Error {
        message: format!("BPF_PROG_TEST_RUN failed: {error}"),
    }
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
    for key in bpf_loader::map_keys(fd, spec.key_size as usize)
        .map_err(|e| format!("map {}: {e}", spec.name))?
    {
        if let Some(value) = bpf_loader::map_lookup(fd, &key, value_size)
            .map_err(|e| format!("map {}: {e}", spec.name))?
        {
            if is_array && value.iter().all(|&b| b == 0) {
                continue;
            }
            entries.push(MapEntry { key, value });
        }
    }
    entries.sort();
    Ok(MapDump {
        name: spec.name.clone(),
        zero_entries_omitted: is_array,
        entries,
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
