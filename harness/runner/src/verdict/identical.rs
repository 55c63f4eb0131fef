//! `identical::<object>::<case>`: every kernel that ran a case produced the same whole state
//! (return value, output packet, every map, ring buffer events), and where not, which kernels
//! agree with which, shown in the object's own types.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use guest_protocol::{CaseOutcome, MapDump, MapEntry, RunOutput};

use super::btf_values;
use super::btf_values::ObjectTypes;
use super::expectation::{is_percpu, show_value};
use super::printk_section;
use super::readable;
use super::{PlannedCase, TrialOutcome};
use crate::guest::GuestRun;

/// One map's state as compared across kernels: per-CPU values reduced to their non-zero CPU
/// slots (kernels may have different CPU counts; a test run lands on whichever CPU).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ComparableMap {
    entries: Vec<MapEntry>,
    events: Vec<guest_protocol::MapEvent>,
    not_compared: Option<String>,
}

/// What must be equal across kernels: everything but timing, `bpf_printk` text (shown with a
/// failure, not compared: it may carry pids and times) and the maps the fixture excludes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparable {
    retval: u32,
    data_out: Vec<u8>,
    ctx_out: Option<Vec<u8>>,
    per_packet: Vec<guest_protocol::PacketResult>,
    maps: BTreeMap<String, ComparableMap>,
}

fn comparable(output: &RunOutput, ignore: &[String]) -> Comparable {
    let maps = output
        .maps
        .iter()
        .filter(|m| !ignore.contains(&m.name))
        .map(|m| {
            let entries = if is_percpu(m.map_type) && m.value_size > 0 {
                let slot = (m.value_size as usize).div_ceil(8) * 8;
                m.entries
                    .iter()
                    .map(|e| {
                        let mut slots: Vec<&[u8]> = e
                            .value
                            .chunks(slot)
                            .filter(|c| c.iter().any(|&b| b != 0))
                            .collect();
                        slots.sort();
                        MapEntry {
                            key: e.key.clone(),
                            value: slots.concat(),
                        }
                    })
                    .filter(|e| !(m.zero_entries_omitted && e.value.is_empty()))
                    .collect()
            } else {
                m.entries.clone()
            };
            (
                m.name.clone(),
                ComparableMap {
                    entries,
                    events: m.events.clone(),
                    not_compared: m.not_compared.clone(),
                },
            )
        })
        .collect();
    Comparable {
        retval: output.retval,
        data_out: output.data_out.clone(),
        ctx_out: output.ctx_out.clone(),
        per_packet: output.per_packet.clone(),
        maps,
    }
}

/// Kernels that produced the same result, with one of their outputs to show.
struct Group<'a> {
    key: Comparable,
    output: &'a RunOutput,
    kernels: Vec<&'a str>,
}

impl Group<'_> {
    fn label(&self) -> String {
        self.kernels.join(", ")
    }
}

pub fn judge_identical(runs: &[GuestRun], case: &PlannedCase, types: &ObjectTypes) -> TrialOutcome {
    // Kernels of an architecture the object is not built for never ran the case.
    let other_arch: Vec<String> = runs
        .iter()
        .filter(|r| !case.runs_on(&r.arch))
        .map(|r| format!("{} ({})", r.kernel, r.arch))
        .collect();
    let runs: Vec<&GuestRun> = runs.iter().filter(|r| case.runs_on(&r.arch)).collect();
    let mut groups: Vec<Group> = Vec::new();
    let mut unsupported = Vec::new();
    let mut refused = Vec::new();
    let mut missing = Vec::new();
    for run in &runs {
        match run.cases.get(&case.id) {
            Some(CaseOutcome::Ran(output)) => {
                let key = comparable(output, &case.expect.ignore_maps);
                match groups.iter_mut().find(|g| g.key == key) {
                    Some(group) => group.kernels.push(&run.kernel),
                    None => groups.push(Group {
                        key,
                        output,
                        kernels: vec![&run.kernel],
                    }),
                }
            }
            Some(CaseOutcome::Unsupported { reason }) => {
                unsupported.push(format!("{} ({reason})", run.kernel))
            }
            Some(CaseOutcome::InputRefused { .. }) => refused.push(run.kernel.clone()),
            Some(CaseOutcome::Error { message }) => {
                missing.push(format!("{}: {message}", run.kernel))
            }
            None => missing.push(format!(
                "{}: no result ({})",
                run.kernel,
                run.status.describe()
            )),
        }
    }
    let mut notes = String::new();
    if !other_arch.is_empty() {
        let _ = write!(
            notes,
            "; not run on {}: built for {} (the fixture's `arch`)",
            other_arch.join(", "),
            case.arch.join(", ")
        );
    }
    if !unsupported.is_empty() {
        let _ = write!(notes, "; unsupported on {}", unsupported.join(", "));
    }
    if !refused.is_empty() {
        let _ = write!(
            notes,
            "; the kernel refuses this input on {}",
            refused.join(", ")
        );
    }
    if !case.expect.ignore_maps.is_empty() {
        let _ = write!(
            notes,
            "; not compared (ignore_maps): {}",
            case.expect.ignore_maps.join(", ")
        );
    }
    if !missing.is_empty() {
        return TrialOutcome::Failed(format!(
            "no result to compare from {}{notes}",
            missing.join("; ")
        ));
    }
    if runs.len() < 2 {
        return TrialOutcome::Unsupported(format!(
            "`identical` needs two kernels; this run has {} ({}){notes}",
            if runs.is_empty() { "none" } else { "one" },
            runs.first().map_or("none", |r| r.kernel.as_str())
        ));
    }
    match groups.len() {
        0 => TrialOutcome::Unsupported(format!("no kernel could run it{notes}")),
        1 if groups[0].kernels.len() < 2 => TrialOutcome::Unsupported(format!(
            "`identical` needs two kernels that ran the case; only {} did{notes}",
            groups[0].kernels[0]
        )),
        1 => TrialOutcome::Passed,
        _ => TrialOutcome::Failed(disagreement(&groups, types, &case.program, &notes)),
    }
}

/// The message of a failed `identical::` trial: a first line naming what differs and which
/// kernels side together, then each difference with every group's value.
fn disagreement(groups: &[Group], types: &ObjectTypes, program: &str, notes: &str) -> String {
    let program_type = types.program_types.get(program).copied();
    let width = groups.iter().map(|g| g.label().len()).max().unwrap_or(0);
    let mut found = Differences::default();
    return_values(groups, program_type, width, &mut found);
    outputs(groups, &mut found);
    sequence(groups, program_type, width, &mut found);
    let names: std::collections::BTreeSet<&String> =
        groups.iter().flat_map(|g| g.key.maps.keys()).collect();
    for name in names {
        let states: Vec<Option<&ComparableMap>> =
            groups.iter().map(|g| g.key.maps.get(name)).collect();
        if states.iter().all(|s| *s == states[0]) {
            continue;
        }
        found.what(format!("map {name}"));
        found
            .body
            .push_str(&map_disagreement(name, groups, types, width));
    }
    let sides: Vec<String> = groups.iter().map(Group::label).collect();
    for g in groups {
        found.body.push_str(&printk_section(&g.label(), g.output));
    }
    // Notes (unsupported, refused, ignored maps) go last, one per line.
    for note in notes.split("; ").filter(|n| !n.is_empty()) {
        let _ = write!(found.body, "\n{note}");
    }
    format!(
        "kernels disagree on {}: {}{}",
        found.what.join(", "),
        sides.join(" | "),
        found.body
    )
}

/// What differs (for the headline) and how (the body), as the sections below find it.
#[derive(Default)]
struct Differences {
    what: Vec<String>,
    body: String,
}

impl Differences {
    fn what(&mut self, item: String) {
        if !self.what.contains(&item) {
            self.what.push(item);
        }
    }
}

fn return_values(
    groups: &[Group],
    program_type: Option<u32>,
    width: usize,
    found: &mut Differences,
) {
    let first = &groups[0];
    if groups.iter().all(|g| g.key.retval == first.key.retval) {
        return;
    }
    found.what("return value".to_string());
    found.body.push_str("\nreturn value:");
    for g in groups {
        let _ = write!(
            found.body,
            "\n  {:<width$}  {}",
            g.label(),
            readable::retval(program_type, g.key.retval)
        );
    }
}

/// The output packet and context of each kernel against the first one's.
fn outputs(groups: &[Group], found: &mut Differences) {
    let first = &groups[0];
    let empty = Vec::new();
    for g in &groups[1..] {
        if g.key.data_out != first.key.data_out {
            found.what("output packet".to_string());
            let _ = write!(
                found.body,
                "\noutput packet, {} vs {}:\n{}",
                first.label(),
                g.label(),
                readable::hex_diff(
                    &first.label(),
                    &first.key.data_out,
                    &g.label(),
                    &g.key.data_out
                )
            );
        }
        if g.key.ctx_out != first.key.ctx_out {
            found.what("ctx_out".to_string());
            let _ = write!(
                found.body,
                "\nctx_out, {} vs {}:\n{}",
                first.label(),
                g.label(),
                readable::hex_diff(
                    &first.label(),
                    first.key.ctx_out.as_ref().unwrap_or(&empty),
                    &g.label(),
                    g.key.ctx_out.as_ref().unwrap_or(&empty)
                )
            );
        }
    }
}

/// Each packet of a `packets` sequence whose result differs between kernels.
fn sequence(groups: &[Group], program_type: Option<u32>, width: usize, found: &mut Differences) {
    let packets = groups
        .iter()
        .map(|g| g.key.per_packet.len())
        .max()
        .unwrap_or(0);
    for i in 0..packets {
        let results: Vec<Option<&guest_protocol::PacketResult>> =
            groups.iter().map(|g| g.key.per_packet.get(i)).collect();
        if results.iter().all(|r| *r == results[0]) {
            continue;
        }
        found.what(format!("packet {}", i + 1));
        let _ = write!(found.body, "\npacket {} of the sequence:", i + 1);
        for (g, r) in groups.iter().zip(&results) {
            let shown = match r {
                Some(r) => format!(
                    "{}, {} bytes out",
                    readable::retval(program_type, r.retval),
                    r.data_out.len()
                ),
                None => "no result".to_string(),
            };
            let _ = write!(found.body, "\n  {:<width$}  {shown}", g.label());
        }
        let Some(Some(first_result)) = results.first() else {
            continue;
        };
        for (g, r) in groups.iter().zip(&results).skip(1) {
            if let Some(r) = r.filter(|r| r.data_out != first_result.data_out) {
                let _ = write!(
                    found.body,
                    "\n{}",
                    readable::hex_diff(
                        &groups[0].label(),
                        &first_result.data_out,
                        &g.label(),
                        &r.data_out
                    )
                );
            }
        }
    }
}

/// Every key whose value is not the same in all groups, with each group's value (decoded);
/// a zero array slot reads as zero, an absent hash key as "no entry".
fn map_disagreement(name: &str, groups: &[Group], types: &ObjectTypes, width: usize) -> String {
    let mut out = String::new();
    let dumps: Vec<Option<&MapDump>> = groups
        .iter()
        .map(|g| g.output.maps.iter().find(|m| m.name == name))
        .collect();
    let Some(any) = dumps.iter().flatten().next() else {
        return out;
    };
    let _ = write!(out, "\nmap {name}:");
    let reasons: Vec<Option<&String>> = dumps
        .iter()
        .map(|d| d.and_then(|d| d.not_compared.as_ref()))
        .collect();
    if reasons.iter().any(|r| *r != reasons[0]) {
        for (g, reason) in groups.iter().zip(&reasons) {
            let _ = write!(
                out,
                "\n  {:<width$}  {}",
                g.label(),
                reason.map_or("dumped".to_string(), |r| format!("not dumped: {r}"))
            );
        }
        return out;
    }
    let mut keys: Vec<&Vec<u8>> = dumps
        .iter()
        .flatten()
        .flat_map(|d| d.entries.iter().map(|e| &e.key))
        .collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let values: Vec<Option<Vec<u8>>> = groups
            .iter()
            .zip(&dumps)
            .map(|(g, dump)| {
                let dump = (*dump)?;
                match dump.entries.iter().find(|e| &e.key == key) {
                    Some(e) => {
                        Some(comparable_value(g, name, key).unwrap_or_else(|| e.value.clone()))
                    }
                    None if dump.zero_entries_omitted => Some(Vec::new()),
                    None => None,
                }
            })
            .collect();
        if values.iter().all(|v| *v == values[0]) {
            continue;
        }
        let _ = write!(out, "\n  [{}]", types.key(name, key));
        for (g, dump) in groups.iter().zip(&dumps) {
            let shown = match dump.and_then(|d| d.entries.iter().find(|e| &e.key == key)) {
                Some(e) => show_value(types, any, &e.value),
                None if dump.is_some_and(|d| d.zero_entries_omitted) => {
                    let zero = vec![0u8; any.value_size as usize];
                    format!("{} (zero)", show_value(types, any, &zero))
                }
                None => "no entry".to_string(),
            };
            let _ = write!(out, "\n    {:<width$}  {shown}", g.label());
        }
    }
    let events: Vec<&[guest_protocol::MapEvent]> = dumps
        .iter()
        .map(|d| d.map_or(&[][..], |d| d.events.as_slice()))
        .collect();
    if events.iter().any(|e| *e != events[0]) {
        let _ = write!(out, "\n  ring buffer records:");
        for (g, records) in groups.iter().zip(&events) {
            let shown: Vec<String> = records
                .iter()
                .map(|r| btf_values::hex_bytes(&r.data))
                .collect();
            let _ = write!(
                out,
                "\n    {:<width$}  {} record(s): {}",
                g.label(),
                records.len(),
                shown.join(", ")
            );
        }
    }
    out
}

fn comparable_value(group: &Group, map: &str, key: &[u8]) -> Option<Vec<u8>> {
    group
        .key
        .maps
        .get(map)?
        .entries
        .iter()
        .find(|e| e.key == key)
        .map(|e| e.value.clone())
}
