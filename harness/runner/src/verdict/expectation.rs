//! `<kernel>::<object>::<case>`: one kernel's result against the fixture's expectation, every
//! difference listed in the program type's and the map's own terms.

use guest_protocol::{MapDump, MapEntry, RunOutput};

use super::btf_values::ObjectTypes;
use super::readable;
use crate::fixtures::Expectation;

/// Per-CPU map types, whose values hold one slot per CPU.
pub fn is_percpu(map_type: u32) -> bool {
    // PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH, PERCPU_CGROUP_STORAGE
    matches!(map_type, 5 | 6 | 10 | 21)
}

pub(super) fn show_value(types: &ObjectTypes, dump: &MapDump, value: &[u8]) -> String {
    types.value(
        &dump.name,
        value,
        dump.value_size as usize,
        is_percpu(dump.map_type),
    )
}

/// Checks a result against a fixture's expectation; the error lists every difference, in the
/// program type's and the map's own terms.
pub fn compare_with_expectation(
    output: &RunOutput,
    expect: &Expectation,
    types: &ObjectTypes,
    program: &str,
) -> Result<(), String> {
    let program_type = types.program_types.get(program).copied();
    let mut problems = Vec::new();
    check_results(output, expect, program_type, &mut problems);
    check_maps(output, expect, types, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The return value and the output packet (or each packet's of a sequence).
fn check_results(
    output: &RunOutput,
    expect: &Expectation,
    program_type: Option<u32>,
    problems: &mut Vec<String>,
) {
    if let Some(retval) = expect.retval {
        if output.per_packet.is_empty() && output.retval != retval {
            problems.push(format!(
                "return value: expected {}, got {}",
                readable::retval(program_type, retval),
                readable::retval(program_type, output.retval)
            ));
        }
        // A sequence: the expectation holds for every packet.
        for (i, packet) in output.per_packet.iter().enumerate() {
            if packet.retval != retval {
                problems.push(format!(
                    "packet {}: return value: expected {}, got {}",
                    i + 1,
                    readable::retval(program_type, retval),
                    readable::retval(program_type, packet.retval)
                ));
            }
        }
    }
    if let Some(packets) = &expect.data_out_per_packet {
        if packets.len() != output.per_packet.len() {
            problems.push(format!(
                "{} packets in the sequence, {} results",
                packets.len(),
                output.per_packet.len()
            ));
        }
        for (i, (wanted, got)) in packets.iter().zip(&output.per_packet).enumerate() {
            if wanted != &got.data_out {
                problems.push(format!(
                    "packet {}: output packet differs:\n{}",
                    i + 1,
                    readable::hex_diff("expected", wanted, "got", &got.data_out)
                ));
            }
        }
    }
    if let Some(packet) = &expect.data_out {
        if &output.data_out != packet {
            problems.push(format!(
                "output packet differs:\n{}",
                readable::hex_diff("expected", packet, "got", &output.data_out)
            ));
        }
    }
}

/// The entries `maps` names, and with `maps_exact` no other entry.
fn check_maps(
    output: &RunOutput,
    expect: &Expectation,
    types: &ObjectTypes,
    problems: &mut Vec<String>,
) {
    for wanted in &expect.maps {
        let Some(dump) = output.maps.iter().find(|d| d.name == wanted.map) else {
            problems.push(format!("map {}: not dumped by the agent", wanted.map));
            continue;
        };
        if let Some(reason) = &dump.not_compared {
            problems.push(format!("map {}: cannot be checked: {reason}", wanted.map));
            continue;
        }
        let key = types.key(&dump.name, &wanted.key);
        let got = match dump.entries.iter().find(|e| e.key == wanted.key) {
            Some(entry) => Some(entry.value.clone()),
            // An array holds every index: a slot left out of the dump is all zero.
            None if dump.zero_entries_omitted => Some(vec![0; wanted.value.len()]),
            None => None,
        };
        match got {
            None => problems.push(format!(
                "map {}[{key}]: expected {}, got no entry (entries: {})",
                wanted.map,
                show_value(types, dump, &wanted.value),
                describe_entries(types, dump, &dump.entries)
            )),
            Some(value) if value != wanted.value => problems.push(format!(
                "map {}[{key}]: expected {}, got {}",
                wanted.map,
                show_value(types, dump, &wanted.value),
                show_value(types, dump, &value)
            )),
            Some(_) => {}
        }
    }
    for map in &expect.maps_exact {
        if let Some(dump) = output.maps.iter().find(|d| &d.name == map) {
            let extra: Vec<_> = dump
                .entries
                .iter()
                .filter(|e| !expect.maps.iter().any(|w| &w.map == map && w.key == e.key))
                .cloned()
                .collect();
            if !extra.is_empty() {
                problems.push(format!(
                    "map {map}: unexpected entries {}",
                    describe_entries(types, dump, &extra)
                ));
            }
        }
    }
}

fn describe_entries(types: &ObjectTypes, dump: &MapDump, entries: &[MapEntry]) -> String {
    if entries.is_empty() {
        return "none".into();
    }
    entries
        .iter()
        .map(|e| {
            format!(
                "[{}] = {}",
                types.key(&dump.name, &e.key),
                show_value(types, dump, &e.value)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where two byte strings first differ, as a hex dump with offsets.
pub fn bytes_diff(expected: &[u8], got: &[u8]) -> String {
    readable::hex_diff("expected", expected, "got", got)
}
