//! One case: reset the object's maps, BPF_PROG_TEST_RUN (or, for a traffic case, attach and
//! send packets: [`crate::traffic`]; for a workload case, attach and let a child process act:
//! [`crate::workload`]), then dump the whole state of the object: every map that
//! can be read as keys and values, and the records its ring buffers received during the case.
//! A map that cannot be read that way is listed with the reason, never left out silently.

use std::os::fd::AsRawFd;

use bpf_loader::consts::*;
use guest_protocol::{
    CaseOutcome, CaseResult, CaseSpec, MapDump, MapEntry, MapEvent, ProgramLoadOutcome, RunOutput,
    MAX_DUMP_BYTES, MAX_DUMP_ENTRIES,
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
    for name in &case.dump_maps {
        if !object.maps.iter().any(|m| &m.spec.name == name) {
            return CaseOutcome::Error {
                message: format!("the case expects map {name}, which the object does not define"),
            };
        }
    }
    let mut rings = Vec::new();
    for map in &object.maps {
        match how_to_read(map.spec.map_type) {
            Readable::KeyValue => {
                if let Err(message) = reset_map(map) {
                    return CaseOutcome::Error { message };
                }
            }
            Readable::RingBuffer => {
                // Opened (and emptied) before the run, so the dump holds this case's records.
                match bpf_loader::RingBuf::open(map.fd.as_raw_fd(), map.spec.max_entries) {
                    Ok(ring) => {
                        ring.drain();
                        rings.push((map.spec.name.clone(), ring));
                    }
                    Err(e) => {
                        return CaseOutcome::Error {
                            message: format!("map {}: {e}", map.spec.name),
                        }
                    }
                }
            }
            Readable::Not(_) => {}
        }
    }
    for write in &case.setup_maps {
        if let Err(message) = set_up(object, write) {
            return CaseOutcome::Error { message };
        }
    }
    crate::printk::begin_case();
    let mut per_packet = Vec::new();
    let output = if let Some(workload) = &case.workload {
        match crate::workload::run(object, workload) {
            Ok(output) => output,
            Err(outcome) => return outcome,
        }
    } else if let Some(flows) = &case.traffic {
        match crate::traffic::run(object, case, flows) {
            Ok(output) => output,
            Err(outcome) => return outcome,
        }
    } else if !case.data_sequence.is_empty() {
        match run_sequence(fd.as_raw_fd(), case, *program_type, &mut per_packet) {
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
    let printk = crate::printk::end_case();
    let maps = match dump_state(object, case, &rings) {
        Ok(maps) => maps,
        Err(message) => return CaseOutcome::Error { message },
    };
    CaseOutcome::Ran(Box::new(RunOutput {
        retval: output.retval,
        data_out: output.data_out,
        ctx_out: output.ctx_out,
        duration_ns: output.duration_ns,
        maps,
        printk,
        per_packet,
    }))
}

/// Runs the program on each packet of the sequence in order, on the same maps; the output is
/// the last packet's, every packet's result goes into `per_packet`. A refused or failed packet
/// ends the case, named by its position.
fn run_sequence(
    fd: i32,
    case: &CaseSpec,
    program_type: u32,
    per_packet: &mut Vec<guest_protocol::PacketResult>,
) -> Result<bpf_loader::TestRunOutput, CaseOutcome> {
    let mut last = None;
    for (i, packet) in case.data_sequence.iter().enumerate() {
        let mut one = case.clone();
        one.data_in = packet.clone();
        one.data_sequence = Vec::new();
        let request = test_run_request(&one, program_type);
        match bpf_loader::test_run(fd, &request) {
            Ok(output) => {
                per_packet.push(guest_protocol::PacketResult {
                    retval: output.retval,
                    data_out: output.data_out.clone(),
                });
                last = Some(output);
            }
            Err(error) => {
                return Err(match classify_test_run_error(&one, program_type, error) {
                    CaseOutcome::Error { message } => CaseOutcome::Error {
                        message: format!("packet {} of the sequence: {message}", i + 1),
                    },
                    CaseOutcome::InputRefused { reason, evidence } => CaseOutcome::InputRefused {
                        reason: format!("packet {} of the sequence: {reason}", i + 1),
                        evidence,
                    },
                    other => other,
                })
            }
        }
    }
    last.ok_or_else(|| CaseOutcome::Error {
        message: "an empty packet sequence".into(),
    })
}

/// The test-run attributes a program type accepts, by its row of
/// [`bpf_loader::prog_types::PROGRAM_TYPES`].
fn test_run_request(case: &CaseSpec, program_type: u32) -> bpf_loader::TestRun<'_> {
    use bpf_loader::prog_types::TestRunShape;
    match bpf_loader::prog_types::program_type(program_type).test_run {
        TestRunShape::ContextOnly => {
            return bpf_loader::TestRun {
                data_in: &[],
                data_size_out: 0,
                ctx_in: case.ctx_in.as_deref(),
                ctx_size_out: 0,
                repeat: 0,
                flags: 0,
            }
        }
        TestRunShape::ContextRepeat => {
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
            }
        }
        TestRunShape::Packet | TestRunShape::AsGiven => {}
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

/// Unsupported only where the kernel demonstrably lacks the feature, "input refused" only
/// where a probe shows the kernel refuses this input whatever the program; anything else is an
/// error (an EINVAL from a bad request must never hide as "unsupported" or "refused").
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
    if program_type == BPF_PROG_TYPE_XDP
        && case.ctx_in.is_some()
        && matches!(bpf_loader::probe::test_run_xdp_ctx_supported(), Ok(false))
    {
        return CaseOutcome::InputRefused {
            reason:
                "the kernel refuses this input: XDP test runs take no xdp_md context before 5.15"
                    .into(),
            evidence:
                "probe: a minimal XDP program test-run with a valid xdp_md context gets EINVAL"
                    .into(),
        };
    }
    if error.is_invalid_argument() {
        if let Some(evidence) = input_refused_whatever_the_program(case, program_type) {
            return CaseOutcome::InputRefused {
                reason: format!(
                    "the kernel refuses this input: BPF_PROG_TEST_RUN failed with {error}"
                ),
                evidence,
            };
        }
    }
    CaseOutcome::Error {
        message: format!("BPF_PROG_TEST_RUN failed: {error}"),
    }
}

/// The evidence that an EINVAL is the kernel refusing the case's input, not the program: a
/// `r0 = 0; exit` program of the same type is refused the very same request, and (for packet
/// cases) runs a well-formed frame of the same length. None when the probe says otherwise.
fn input_refused_whatever_the_program(case: &CaseSpec, program_type: u32) -> Option<String> {
    use bpf_loader::asm::{exit, mov64_imm, to_bytes};
    let needs = bpf_loader::probe::load_requirements(program_type);
    if needs.needs_btf_target {
        return None;
    }
    let insns = to_bytes(&[mov64_imm(0, 0), exit()]);
    let probe = bpf_loader::load_program(&bpf_loader::ProgramLoad {
        name: "probe_input",
        program_type,
        expected_attach_type: needs.expected_attach_type,
        prog_flags: needs.prog_flags,
        insns: &insns,
        license: "GPL",
        ..Default::default()
    })
    .ok()?;
    let request = test_run_request(case, program_type);
    match bpf_loader::test_run(probe.as_raw_fd(), &request) {
        Err(e) if e.is_invalid_argument() => {}
        _ => return None,
    }
    if case.data_in.is_empty() {
        return Some(format!(
            "a `r0 = 0` program of type {program_type} is refused the same request with EINVAL"
        ));
    }
    let frame = well_formed_frame(case.data_in.len().max(64));
    let control = bpf_loader::TestRun {
        data_in: &frame,
        data_size_out: frame.len() as u32 + DATA_OUT_HEADROOM,
        ctx_in: None,
        ctx_size_out: 0,
        repeat: 1,
        flags: 0,
    };
    bpf_loader::test_run(probe.as_raw_fd(), &control).ok()?;
    Some(format!(
        "a `r0 = 0` program of type {program_type} is refused the same input with EINVAL and \
         runs a well-formed {}-byte IPv4/UDP frame",
        frame.len()
    ))
}

/// An Ethernet + IPv4 + UDP frame of `len` bytes (42 to 1514) with consistent lengths.
fn well_formed_frame(len: usize) -> Vec<u8> {
    let len = len.clamp(42, 1514);
    let mut p = vec![0u8; len];
    p[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    p[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    p[14] = 0x45;
    let ip_len = (len - 14) as u16;
    p[16..18].copy_from_slice(&ip_len.to_be_bytes());
    p[22] = 64;
    p[23] = 17;
    p[26..30].copy_from_slice(&[10, 0, 0, 1]);
    p[30..34].copy_from_slice(&[10, 0, 0, 2]);
    let mut sum = 0u32;
    for pair in p[14..34].chunks(2) {
        sum += u16::from_be_bytes([pair[0], pair[1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[34..36].copy_from_slice(&1234u16.to_be_bytes());
    p[36..38].copy_from_slice(&5678u16.to_be_bytes());
    let udp_len = (len - 34) as u16;
    p[38..40].copy_from_slice(&udp_len.to_be_bytes());
    p
}

/// Writes one `setup` entry; sizes are checked against the map's own before the kernel reads.
fn set_up(object: &LoadedObject, write: &guest_protocol::MapWrite) -> Result<(), String> {
    let Some(map) = object.maps.iter().find(|m| m.spec.name == write.map) else {
        return Err(format!(
            "setup: the object defines no map {} to write into",
            write.map
        ));
    };
    let spec = &map.spec;
    if map.frozen {
        return Err(format!(
            "setup: map {} is frozen (.rodata): set load-time constants with a variant",
            spec.name
        ));
    }
    if how_to_read(spec.map_type) != Readable::KeyValue {
        return Err(format!(
            "setup: map {} (type {}) does not take key/value writes",
            spec.name, spec.map_type
        ));
    }
    if write.key.len() != spec.key_size as usize || write.value.len() != spec.value_size as usize {
        return Err(format!(
            "setup: map {} has {}-byte keys and {}-byte values; the case gives {} and {}",
            spec.name,
            spec.key_size,
            spec.value_size,
            write.key.len(),
            write.value.len()
        ));
    }
    let value = if bpf_loader::consts::map_type_is_percpu(spec.map_type) {
        let slot = (spec.value_size as usize).div_ceil(8) * 8;
        let mut all = vec![0u8; value_size_of(spec)];
        for chunk in all.chunks_mut(slot) {
            chunk[..write.value.len()].copy_from_slice(&write.value);
        }
        all
    } else {
        write.value.clone()
    };
    bpf_loader::map_update(map.fd.as_raw_fd(), &write.key, &value, 0)
        .map_err(|e| format!("setup: map {}: {e}", spec.name))
}

/// How the agent can see a map's contents after a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readable {
    /// Keys iterate and values are plain bytes the program wrote.
    KeyValue,
    /// Records are consumed from the mmap'ed ring.
    RingBuffer,
    /// Not read; the reason goes into the dump.
    Not(&'static str),
}

fn how_to_read(map_type: u32) -> Readable {
    match map_type {
        BPF_MAP_TYPE_ARRAY
        | BPF_MAP_TYPE_PERCPU_ARRAY
        | BPF_MAP_TYPE_HASH
        | BPF_MAP_TYPE_PERCPU_HASH
        | BPF_MAP_TYPE_LRU_HASH
        | BPF_MAP_TYPE_LRU_PERCPU_HASH
        | BPF_MAP_TYPE_LPM_TRIE => Readable::KeyValue,
        BPF_MAP_TYPE_RINGBUF => Readable::RingBuffer,
        BPF_MAP_TYPE_PERF_EVENT_ARRAY => Readable::Not(
            "perf_event_array: events are not read (that needs a perf buffer per CPU); not compared",
        ),
        BPF_MAP_TYPE_PROG_ARRAY
        | BPF_MAP_TYPE_ARRAY_OF_MAPS
        | BPF_MAP_TYPE_HASH_OF_MAPS
        | BPF_MAP_TYPE_DEVMAP
        | BPF_MAP_TYPE_DEVMAP_HASH
        | BPF_MAP_TYPE_SOCKMAP
        | BPF_MAP_TYPE_SOCKHASH
        | BPF_MAP_TYPE_CPUMAP
        | BPF_MAP_TYPE_XSKMAP
        | BPF_MAP_TYPE_CGROUP_ARRAY
        | BPF_MAP_TYPE_REUSEPORT_SOCKARRAY => {
            Readable::Not("its values are file descriptors or kernel object ids; not compared")
        }
        BPF_MAP_TYPE_STACK_TRACE => {
            Readable::Not("its values are kernel addresses, which differ by kernel; not compared")
        }
        BPF_MAP_TYPE_CGROUP_STORAGE
        | BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
        | BPF_MAP_TYPE_SK_STORAGE
        | BPF_MAP_TYPE_INODE_STORAGE
        | BPF_MAP_TYPE_TASK_STORAGE
        | BPF_MAP_TYPE_CGRP_STORAGE => Readable::Not(
            "local storage keyed by kernel objects of this guest; not compared",
        ),
        BPF_MAP_TYPE_QUEUE | BPF_MAP_TYPE_STACK | BPF_MAP_TYPE_BLOOM_FILTER => {
            Readable::Not("it has no keys to iterate; not compared")
        }
        _ => Readable::Not("the agent does not read this map type; not compared"),
    }
}

/// What one case may still dump; exceeding it fails the case with the map that did.
struct DumpBudget {
    entries: usize,
    bytes: usize,
}

impl DumpBudget {
    fn take(&mut self, map: &str, entries: usize, bytes: usize) -> Result<(), String> {
        if entries > self.entries || bytes > self.bytes {
            return Err(format!(
                "map {map}: the case's dump would exceed its bound of {MAX_DUMP_ENTRIES} entries and \
                 {MAX_DUMP_BYTES} bytes over all maps (lower the map's max_entries, or exclude it \
                 with ignore_maps)"
            ));
        }
        self.entries -= entries;
        self.bytes -= bytes;
        Ok(())
    }
}

/// Keys an array scan may visit (each one a syscall); a larger map is refused, not truncated.
const MAX_SCANNED_KEYS: usize = 1 << 20;

/// The object's whole state after a case, in the object's map order.
fn dump_state(
    object: &LoadedObject,
    case: &CaseSpec,
    rings: &[(String, bpf_loader::RingBuf)],
) -> Result<Vec<MapDump>, String> {
    let mut budget = DumpBudget {
        entries: MAX_DUMP_ENTRIES,
        bytes: MAX_DUMP_BYTES,
    };
    let mut maps = Vec::with_capacity(object.maps.len());
    for map in &object.maps {
        let spec = &map.spec;
        let mut dump = MapDump {
            name: spec.name.clone(),
            map_type: spec.map_type,
            value_size: spec.value_size,
            zero_entries_omitted: false,
            entries: Vec::new(),
            events: Vec::new(),
            not_compared: None,
        };
        if case.ignore_maps.contains(&spec.name) {
            dump.not_compared = Some("excluded by the fixture (ignore_maps); not compared".into());
            maps.push(dump);
            continue;
        }
        match how_to_read(spec.map_type) {
            Readable::KeyValue => dump_entries(map, &mut dump, &mut budget)?,
            Readable::RingBuffer => {
                let Some((_, ring)) = rings.iter().find(|(name, _)| name == &spec.name) else {
                    return Err(format!("map {}: ring buffer was not opened", spec.name));
                };
                let records = ring
                    .read(budget.entries, budget.bytes)
                    .map_err(|e| format!("map {}: {e}", spec.name))?;
                let bytes = records.iter().map(Vec::len).sum();
                budget.take(&spec.name, records.len(), bytes)?;
                dump.events = records.into_iter().map(|data| MapEvent { data }).collect();
            }
            Readable::Not(reason) => dump.not_compared = Some(reason.to_string()),
        }
        maps.push(dump);
    }
    Ok(maps)
}

/// Arrays always hold every index: only non-zero entries are listed, so a dump says what the
/// program wrote. Hash-like maps list every entry. Entries are sorted by key.
fn dump_entries(
    map: &crate::load::LoadedMap,
    dump: &mut MapDump,
    budget: &mut DumpBudget,
) -> Result<(), String> {
    let fd = map.fd.as_raw_fd();
    let spec = &map.spec;
    let value_size = value_size_of(spec);
    let is_array = matches!(
        spec.map_type,
        BPF_MAP_TYPE_ARRAY | BPF_MAP_TYPE_PERCPU_ARRAY
    );
    dump.zero_entries_omitted = is_array;
    let batched = if is_array {
        crate::load::array_entries_batched(map, MAX_SCANNED_KEYS)
    } else {
        None
    };
    if let Some(entries) = batched {
        for (key, value) in entries? {
            if value.iter().any(|&b| b != 0) {
                budget.take(&spec.name, 1, key.len() + value.len())?;
                dump.entries.push(MapEntry { key, value });
            }
        }
        // Sorted as the walk below sorts (by key bytes), so both give the same dump.
        dump.entries.sort();
        return Ok(());
    }
    let mut key: Option<Vec<u8>> = None;
    let mut scanned = 0usize;
    while let Some(next) = bpf_loader::map_next_key(fd, key.as_deref(), spec.key_size as usize)
        .map_err(|e| format!("map {}: {e}", spec.name))?
    {
        scanned += 1;
        if scanned > MAX_SCANNED_KEYS {
            return Err(format!(
                "map {}: more than {MAX_SCANNED_KEYS} keys to scan; the dump is bounded",
                spec.name
            ));
        }
        if let Some(value) = bpf_loader::map_lookup(fd, &next, value_size)
            .map_err(|e| format!("map {}: {e}", spec.name))?
        {
            if !(is_array && value.iter().all(|&b| b == 0)) {
                budget.take(&spec.name, 1, next.len() + value.len())?;
                dump.entries.push(MapEntry {
                    key: next.clone(),
                    value,
                });
            }
        }
        key = Some(next);
    }
    dump.entries.sort();
    // A hash walk restarts from the first key if the map changed under it: no duplicates.
    dump.entries.dedup_by(|a, b| a.key == b.key);
    Ok(())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
