//! Turns what the guests reported into trials: pure, so every rule here is unit-tested.
//!
//! Three kinds of trial:
//! - `<kernel>::<object>::load`: the object relocated and every program loaded (or its type is
//!   missing on that kernel, which is reported as unsupported, not as a pass);
//! - `<kernel>::<object>::relocations`: every CO-RE decision the guest's engine made equals the
//!   one predicted on the host from that kernel's BTF;
//! - `<kernel>::<object>::<case>`: that kernel's result equals the fixture's expectation;
//! - `identical::<object>::<case>`: every kernel that ran the case produced the same result.

pub mod btf_values;
pub mod libbpf;
pub mod readable;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use guest_protocol::{CaseOutcome, MapDump, MapEntry, ProgramLoadOutcome, RunOutput};
use serde::Serialize;

use crate::fixtures::Expectation;
use crate::guest::{GuestRun, GuestStatus};
use btf_values::{ObjectTypes, Vocabulary};

pub const IDENTICAL: &str = "identical";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum TrialOutcome {
    Passed,
    Failed(String),
    /// The kernel lacks what the trial needs; shown, never counted as a pass.
    Unsupported(String),
    /// The kernel refuses the case's input (established by a probe or a documented rule):
    /// neither a pass nor a program failure.
    InputRefused(String),
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Trial {
    pub name: String,
    /// None for cross-kernel trials.
    pub kernel: Option<String>,
    pub object: String,
    pub case: Option<String>,
    pub outcome: TrialOutcome,
}

/// One planned case with what it must produce.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PlannedCase {
    pub id: String,
    pub object: String,
    pub case: String,
    pub program: String,
    pub expect: Expectation,
}

/// How a case is named in the manifest and in a guest's results: `<object>/<case>`.
pub fn case_id(object: &str, case: &str) -> String {
    format!("{object}/{case}")
}

pub fn kernel_trial_name(kernel: &str, object: &str, case: &str) -> String {
    format!("{kernel}::{object}::{case}")
}

pub fn load_trial_name(kernel: &str, object: &str) -> String {
    format!("{kernel}::{object}::load")
}

pub fn relocations_trial_name(kernel: &str, object: &str) -> String {
    format!("{kernel}::{object}::relocations")
}

/// Host-side predictions, keyed by (kernel, object); Err says why none could be made.
pub type Predictions = BTreeMap<(String, String), Result<crate::predict::ObjectPrediction, String>>;

pub fn identical_trial_name(object: &str, case: &str) -> String {
    format!("{IDENTICAL}::{object}::{case}")
}

/// Judges every kernel's run. `objects` are the objects shipped (for load trials).
pub fn judge(
    cases: &[PlannedCase],
    objects: &[String],
    runs: &[GuestRun],
    predictions: &Predictions,
    vocabulary: &Vocabulary,
) -> Vec<Trial> {
    let untyped = ObjectTypes::default();
    let types = |object: &str| vocabulary.get(object).unwrap_or(&untyped);
    let mut trials = Vec::new();
    for run in runs {
        for object in objects {
            trials.push(judge_load(run, object));
            trials.push(judge_relocations(
                run,
                object,
                predictions.get(&(run.kernel.clone(), object.clone())),
            ));
        }
        for case in cases {
            trials.push(Trial {
                name: kernel_trial_name(&run.kernel, &case.object, &case.case),
                kernel: Some(run.kernel.clone()),
                object: case.object.clone(),
                case: Some(case.case.clone()),
                outcome: judge_case(run, case, types(&case.object)),
            });
        }
    }
    for case in cases {
        trials.push(Trial {
            name: identical_trial_name(&case.object, &case.case),
            kernel: None,
            object: case.object.clone(),
            case: Some(case.case.clone()),
            outcome: judge_identical(runs, case, types(&case.object)),
        });
    }
    trials
}

fn guest_failure(run: &GuestRun) -> String {
    let mut message = format!(
        "kernel {}: guest ended with {}",
        run.kernel,
        run.status.describe()
    );
    if !run.console_tail.is_empty() {
        message.push_str("\n--- console (last lines) ---\n");
        message.push_str(&run.console_tail);
    }
    message
}

fn judge_load(run: &GuestRun, object: &str) -> Trial {
    let name = load_trial_name(&run.kernel, object);
    let outcome = match run.objects.iter().find(|o| o.object == object) {
        None if run.status != GuestStatus::Completed => TrialOutcome::Failed(guest_failure(run)),
        None => {
            let said: Vec<&String> = run.logs.iter().filter(|l| l.contains(object)).collect();
            TrialOutcome::Failed(format!(
                "kernel {}: the agent did not load {object}{}",
                run.kernel,
                said.iter().map(|l| format!("\n  {l}")).collect::<String>()
            ))
        }
        Some(loaded) => {
            let mut rejected = String::new();
            let mut unsupported = Vec::new();
            for program in &loaded.programs {
                match &program.outcome {
                    ProgramLoadOutcome::Loaded { .. } => {}
                    ProgramLoadOutcome::Unsupported { reason } => {
                        unsupported.push(format!("{}: {reason}", program.program))
                    }
                    ProgramLoadOutcome::Rejected {
                        error,
                        verifier_log,
                    } => {
                        let _ = write!(
                            rejected,
                            "\nprogram {} ({}) rejected: {error}",
                            program.program, program.section
                        );
                        if !verifier_log.is_empty() {
                            let _ = write!(
                                rejected,
                                "\n--- verifier log (last lines) ---\n{}",
                                last_lines(verifier_log, 30)
                            );
                        }
                    }
                }
            }
            if !rejected.is_empty() {
                TrialOutcome::Failed(format!("kernel {}: object {object}:{rejected}", run.kernel))
            } else if !unsupported.is_empty() {
                // Even one program this kernel cannot take is a gap to see, not a pass: the
                // object does not run here as a whole.
                TrialOutcome::Unsupported(format!(
                    "{} of {} programs cannot load here: {}",
                    unsupported.len(),
                    loaded.programs.len(),
                    unsupported.join("; ")
                ))
            } else {
                TrialOutcome::Passed
            }
        }
    };
    Trial {
        name,
        kernel: Some(run.kernel.clone()),
        object: object.to_string(),
        case: None,
        outcome,
    }
}

fn judge_relocations(
    run: &GuestRun,
    object: &str,
    prediction: Option<&Result<crate::predict::ObjectPrediction, String>>,
) -> Trial {
    let outcome = match (run.objects.iter().find(|o| o.object == object), prediction) {
        (None, _) if run.status != GuestStatus::Completed => TrialOutcome::Failed(guest_failure(run)),
        (_, None) => TrialOutcome::Unsupported(format!("kernel {}: no prediction was made", run.kernel)),
        (_, Some(Err(why))) => TrialOutcome::Unsupported(format!("kernel {}: cannot predict relocations: {why}", run.kernel)),
        (None, _) => TrialOutcome::Failed(format!("kernel {}: the agent did not load {object}", run.kernel)),
        (Some(loaded), Some(Ok(predicted))) => match crate::predict::compare(predicted, &loaded.relocations) {
            Ok(_) => TrialOutcome::Passed,
            Err(diff) => TrialOutcome::Failed(format!(
                "kernel {}: the guest's engine decided differently from the host's prediction:\n{diff}",
                run.kernel
            )),
        },
    };
    Trial {
        name: relocations_trial_name(&run.kernel, object),
        kernel: Some(run.kernel.clone()),
        object: object.to_string(),
        case: None,
        outcome,
    }
}

fn judge_case(run: &GuestRun, case: &PlannedCase, types: &ObjectTypes) -> TrialOutcome {
    match run.cases.get(&case.id) {
        None if run.status != GuestStatus::Completed => TrialOutcome::Failed(guest_failure(run)),
        None => TrialOutcome::Failed(format!(
            "kernel {}: the agent reported no result for {}",
            run.kernel, case.id
        )),
        Some(CaseOutcome::Unsupported { reason }) => {
            TrialOutcome::Unsupported(format!("kernel {}: {reason}", run.kernel))
        }
        Some(CaseOutcome::InputRefused { reason, evidence }) => TrialOutcome::InputRefused(
            format!("kernel {}: {reason} (evidence: {evidence})", run.kernel),
        ),
        Some(CaseOutcome::Error { message }) => {
            TrialOutcome::Failed(format!("kernel {}: {message}", run.kernel))
        }
        Some(CaseOutcome::Ran(output)) => {
            match compare_with_expectation(output, &case.expect, types, &case.program) {
                Ok(()) => TrialOutcome::Passed,
                Err(diff) => TrialOutcome::Failed(format!(
                    "kernel {}: program {}: {diff}{}",
                    run.kernel,
                    case.program,
                    printk_section(&run.kernel, output)
                )),
            }
        }
    }
}

/// The case's `bpf_printk` output, for a failure message (empty when it printed nothing).
fn printk_section(kernel: &str, output: &RunOutput) -> String {
    if output.printk.is_empty() {
        return String::new();
    }
    format!(
        "\n--- bpf_printk ({kernel}) ---\n{}",
        output.printk.join("\n")
    )
}

/// Per-CPU map types, whose values hold one slot per CPU.
pub fn is_percpu(map_type: u32) -> bool {
    // PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH, PERCPU_CGROUP_STORAGE
    matches!(map_type, 5 | 6 | 10 | 21)
}

fn show_value(types: &ObjectTypes, dump: &MapDump, value: &[u8]) -> String {
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
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
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
    let mut groups: Vec<Group> = Vec::new();
    let mut unsupported = Vec::new();
    let mut refused = Vec::new();
    let mut missing = Vec::new();
    for run in runs {
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
            "`identical` needs two kernels; this run has one ({}){notes}",
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
    let mut what = Vec::new();
    let mut body = String::new();
    let first = &groups[0];
    let width = groups.iter().map(|g| g.label().len()).max().unwrap_or(0);
    if groups.iter().any(|g| g.key.retval != first.key.retval) {
        what.push("return value".to_string());
        body.push_str("\nreturn value:");
        for g in groups {
            let _ = write!(
                body,
                "\n  {:<width$}  {}",
                g.label(),
                readable::retval(program_type, g.key.retval)
            );
        }
    }
    for g in &groups[1..] {
        if g.key.data_out != first.key.data_out {
            if !what.iter().any(|w| w == "output packet") {
                what.push("output packet".to_string());
            }
            let _ = write!(
                body,
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
            if !what.iter().any(|w| w == "ctx_out") {
                what.push("ctx_out".to_string());
            }
            let empty = Vec::new();
            let _ = write!(
                body,
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
        what.push(format!("packet {}", i + 1));
        let _ = write!(body, "\npacket {} of the sequence:", i + 1);
        for (g, r) in groups.iter().zip(&results) {
            let shown = match r {
                Some(r) => format!(
                    "{}, {} bytes out",
                    readable::retval(program_type, r.retval),
                    r.data_out.len()
                ),
                None => "no result".to_string(),
            };
            let _ = write!(body, "\n  {:<width$}  {shown}", g.label());
        }
        if let Some(Some(first_result)) = results.first() {
            for (g, r) in groups.iter().zip(&results).skip(1) {
                if let Some(r) = r.filter(|r| r.data_out != first_result.data_out) {
                    let _ = write!(
                        body,
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
    let names: std::collections::BTreeSet<&String> =
        groups.iter().flat_map(|g| g.key.maps.keys()).collect();
    for name in names {
        let states: Vec<Option<&ComparableMap>> =
            groups.iter().map(|g| g.key.maps.get(name)).collect();
        if states.iter().all(|s| *s == states[0]) {
            continue;
        }
        what.push(format!("map {name}"));
        body.push_str(&map_disagreement(name, groups, types, width));
    }
    let sides: Vec<String> = groups.iter().map(Group::label).collect();
    for g in groups {
        body.push_str(&printk_section(&g.label(), g.output));
    }
    // Notes (unsupported, refused, ignored maps) go last, one per line.
    for note in notes.split("; ").filter(|n| !n.is_empty()) {
        let _ = write!(body, "\n{note}");
    }
    format!(
        "kernels disagree on {}: {}{body}",
        what.join(", "),
        sides.join(" | ")
    )
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

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::MapExpectation;
    use guest_protocol::{MapDump, MapEntry};

    fn output(retval: u32, data: &[u8], counter: u8) -> RunOutput {
        RunOutput {
            retval,
            data_out: data.to_vec(),
            ctx_out: None,
            duration_ns: 100 + counter as u32,
            maps: vec![MapDump {
                name: "counters".into(),
                map_type: 2,
                value_size: 8,
                zero_entries_omitted: true,
                entries: vec![MapEntry {
                    key: vec![6, 0, 0, 0],
                    value: vec![counter, 0, 0, 0, 0, 0, 0, 0],
                }],
                events: vec![],
                not_compared: None,
            }],
            printk: vec![],
            per_packet: vec![],
        }
    }

    fn expectation() -> Expectation {
        Expectation {
            retval: Some(2),
            data_out: Some(vec![1, 2, 3]),
            maps: vec![MapExpectation {
                map: "counters".into(),
                key: vec![6, 0, 0, 0],
                value: vec![1, 0, 0, 0, 0, 0, 0, 0],
            }],
            maps_exact: vec!["counters".into()],
            ignore_maps: vec![],
            data_out_per_packet: None,
        }
    }

    fn untyped() -> ObjectTypes {
        ObjectTypes::default()
    }

    fn ran(kernel: &str, out: RunOutput) -> GuestRun {
        completed(kernel, Some(CaseOutcome::Ran(Box::new(out))))
    }

    /// An output whose unnamed map `facts` holds `value` at index 0.
    fn with_facts(value: u8) -> RunOutput {
        let mut out = output(2, &[1, 2, 3], 1);
        out.maps.push(MapDump {
            name: "facts".into(),
            map_type: 2,
            value_size: 4,
            zero_entries_omitted: true,
            entries: if value == 0 {
                vec![]
            } else {
                vec![MapEntry {
                    key: vec![0, 0, 0, 0],
                    value: vec![value, 0, 0, 0],
                }]
            },
            events: vec![],
            not_compared: None,
        });
        out
    }

    fn case() -> PlannedCase {
        PlannedCase {
            id: "obj/c".into(),
            object: "obj".into(),
            case: "c".into(),
            program: "p".into(),
            expect: expectation(),
        }
    }

    fn completed(kernel: &str, outcome: Option<CaseOutcome>) -> GuestRun {
        let mut run = GuestRun::new(kernel, "x86_64", "tcg");
        run.status = GuestStatus::Completed;
        if let Some(outcome) = outcome {
            run.cases.insert("obj/c".into(), outcome);
        }
        run
    }

    #[test]
    fn matching_output_passes() {
        assert_eq!(
            compare_with_expectation(&output(2, &[1, 2, 3], 1), &expectation(), &untyped(), "p"),
            Ok(())
        );
    }

    #[test]
    fn every_difference_is_listed() {
        let error =
            compare_with_expectation(&output(1, &[1, 2, 4], 2), &expectation(), &untyped(), "p")
                .unwrap_err();
        assert!(error.contains("return value: expected 2, got 1"), "{error}");
        assert!(error.contains("first difference at byte 2"), "{error}");
        assert!(
            error.contains("counters[6]: expected 0x0100000000000000, got 0x0200000000000000"),
            "{error}"
        );
    }

    #[test]
    fn an_omitted_array_entry_reads_as_zero() {
        let mut expect = expectation();
        expect.maps.push(MapExpectation {
            map: "counters".into(),
            key: vec![9, 0, 0, 0],
            value: vec![0; 8],
        });
        assert_eq!(
            compare_with_expectation(&output(2, &[1, 2, 3], 1), &expect, &untyped(), "p"),
            Ok(())
        );
        // A zero slot expected non-zero reads as zero, not as a missing entry.
        expect.maps.last_mut().unwrap().value = vec![5, 0, 0, 0, 0, 0, 0, 0];
        let error = compare_with_expectation(&output(2, &[1, 2, 3], 1), &expect, &untyped(), "p")
            .unwrap_err();
        assert!(
            error.contains("counters[9]: expected 0x0500000000000000, got 0x0000000000000000"),
            "{error}"
        );
        let mut out = output(2, &[1, 2, 3], 1);
        out.maps[0].zero_entries_omitted = false;
        assert!(compare_with_expectation(&out, &expect, &untyped(), "p")
            .unwrap_err()
            .contains("counters[9]: expected 0x0500000000000000, got no entry"));
    }

    #[test]
    fn exact_maps_reject_extra_entries() {
        let mut out = output(2, &[1, 2, 3], 1);
        out.maps[0].entries.push(MapEntry {
            key: vec![17, 0, 0, 0],
            value: vec![1; 8],
        });
        let error = compare_with_expectation(&out, &expectation(), &untyped(), "p").unwrap_err();
        assert!(
            error.contains("unexpected entries [17] = 0x0101"),
            "{error}"
        );
    }

    #[test]
    fn identical_ignores_timing_and_names_disagreeing_kernels() {
        let runs = vec![
            completed(
                "5.10",
                Some(CaseOutcome::Ran(Box::new(output(2, &[1, 2, 3], 1)))),
            ),
            completed(
                "6.1",
                Some(CaseOutcome::Ran(Box::new(output(2, &[1, 2, 3], 1)))),
            ),
        ];
        assert_eq!(
            judge_identical(&runs, &case(), &untyped()),
            TrialOutcome::Passed
        );
        let runs = vec![
            completed(
                "5.10",
                Some(CaseOutcome::Ran(Box::new(output(2, &[1, 2, 3], 1)))),
            ),
            completed(
                "6.1",
                Some(CaseOutcome::Ran(Box::new(output(1, &[1, 2, 3], 1)))),
            ),
        ];
        match judge_identical(&runs, &case(), &untyped()) {
            TrialOutcome::Failed(m) => assert!(
                m.starts_with("kernels disagree on return value: 5.10 | 6.1")
                    && m.contains("5.10  2")
                    && m.contains("6.1   1"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsupported_kernels_are_not_counted_as_identical() {
        let runs = vec![
            completed(
                "5.10",
                Some(CaseOutcome::Unsupported {
                    reason: "no SK_LOOKUP".into(),
                }),
            ),
            completed(
                "6.1",
                Some(CaseOutcome::Ran(Box::new(output(2, &[1, 2, 3], 1)))),
            ),
        ];
        match judge_identical(&runs, &case(), &untyped()) {
            TrialOutcome::Unsupported(m) => assert!(
                m.contains("only 6.1 did") && m.contains("5.10 (no SK_LOOKUP)"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_crashed_guest_fails_its_trials_with_the_console_tail() {
        let mut run = GuestRun::new("7.2", "x86_64", "tcg");
        run.status = GuestStatus::Panic;
        run.console_tail = "Kernel panic - not syncing".into();
        match judge_case(&run, &case(), &untyped()) {
            TrialOutcome::Failed(m) => {
                assert!(m.contains("PANIC") && m.contains("Kernel panic"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        match judge_identical(
            &[
                run,
                completed(
                    "6.1",
                    Some(CaseOutcome::Ran(Box::new(output(2, &[1, 2, 3], 1)))),
                ),
            ],
            &case(),
            &untyped(),
        ) {
            TrialOutcome::Failed(m) => assert!(m.contains("7.2: no result (PANIC)"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn load_trial_reports_the_verifier_log() {
        let mut run = completed("6.1", None);
        run.objects.push(guest_protocol::ObjectLoaded {
            object: "obj".into(),
            sha256: "00".into(),
            relocate_us: 1,
            relocations: vec![],
            programs: vec![guest_protocol::ProgramLoad {
                program: "p".into(),
                section: "xdp".into(),
                outcome: ProgramLoadOutcome::Rejected {
                    error: "EACCES".into(),
                    verifier_log: "R2 !read_ok".into(),
                },
            }],
            btf_note: None,
        });
        match judge_load(&run, "obj").outcome {
            TrialOutcome::Failed(m) => assert!(
                m.contains("R2 !read_ok") && m.contains("program p (xdp) rejected"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unnamed_map_that_differs_fails_identical_with_entries_per_kernel() {
        // The expectation does not name `facts`; it is compared all the same.
        let runs = vec![
            ran("5.10", with_facts(0)),
            ran("6.1", with_facts(1)),
            ran("6.12", with_facts(1)),
        ];
        match judge_identical(&runs, &case(), &untyped()) {
            TrialOutcome::Failed(m) => {
                assert!(
                    m.starts_with("kernels disagree on map facts: 5.10 | 6.1, 6.12"),
                    "{m}"
                );
                assert!(m.contains("\n  [0]"), "{m}");
                assert!(m.contains("5.10       0x00000000 (zero)"), "{m}");
                assert!(m.contains("6.1, 6.12  0x01000000"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        let same = vec![ran("5.10", with_facts(1)), ran("6.1", with_facts(1))];
        assert_eq!(
            judge_identical(&same, &case(), &untyped()),
            TrialOutcome::Passed
        );
    }

    #[test]
    fn values_are_decoded_with_the_map_btf() {
        let mut b = core_reloc::btf::BtfBuilder::new();
        let u32_id = b.int("unsigned int", 4, false);
        let value = b.struct_("fact", 4, &[("state_exists", u32_id, 0, 0)]);
        let types = ObjectTypes::with_btf(b.build().unwrap(), &[("facts", u32_id, value)]);
        let runs = vec![ran("5.10", with_facts(0)), ran("6.1", with_facts(1))];
        match judge_identical(&runs, &case(), &types) {
            TrialOutcome::Failed(m) => {
                assert!(m.contains("5.10  { state_exists: 0 } (zero)"), "{m}");
                assert!(m.contains("6.1   { state_exists: 1 }"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ignored_maps_are_not_compared_and_say_so() {
        let mut case = case();
        case.expect.ignore_maps = vec!["facts".into()];
        let runs = vec![ran("5.10", with_facts(0)), ran("6.1", with_facts(1))];
        assert_eq!(
            judge_identical(&runs, &case, &untyped()),
            TrialOutcome::Passed
        );
        case.expect.retval = Some(1);
        let runs = vec![
            ran("5.10", with_facts(0)),
            ran("6.1", {
                let mut o = with_facts(1);
                o.retval = 7;
                o
            }),
        ];
        match judge_identical(&runs, &case, &untyped()) {
            TrialOutcome::Failed(m) => assert!(
                m.contains("not compared (ignore_maps): facts") && !m.contains("map facts:"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn packets_and_ring_records_are_compared() {
        let mut other = output(2, &[1, 2, 9], 1);
        other.maps[0].events = vec![guest_protocol::MapEvent { data: vec![7] }];
        let runs = vec![ran("5.10", output(2, &[1, 2, 3], 1)), ran("6.1", other)];
        match judge_identical(&runs, &case(), &untyped()) {
            TrialOutcome::Failed(m) => {
                assert!(
                    m.starts_with("kernels disagree on output packet, map counters"),
                    "{m}"
                );
                assert!(m.contains("first difference at byte 2"), "{m}");
                assert!(m.contains("6.1   1 record(s): 0x07"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn per_cpu_values_compare_by_their_non_zero_slots() {
        let percpu = |slots: Vec<u8>| {
            let mut out = output(2, &[1, 2, 3], 1);
            out.maps[0].map_type = 6;
            out.maps[0].value_size = 4;
            out.maps[0].entries[0].value = slots;
            out
        };
        // One CPU in one guest, two on the host, the run on the second CPU: the same state.
        let runs = vec![
            ran("5.10", percpu(vec![3, 0, 0, 0, 0, 0, 0, 0])),
            ran(
                "host",
                percpu(vec![0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]),
            ),
        ];
        assert_eq!(
            judge_identical(&runs, &case(), &untyped()),
            TrialOutcome::Passed
        );
    }

    #[test]
    fn printk_output_is_shown_with_a_failure_and_never_compared() {
        let mut a = output(2, &[1, 2, 3], 1);
        a.printk = vec!["state field 1".into()];
        let mut b = output(1, &[1, 2, 3], 1);
        b.printk = vec!["state field 2".into()];
        let runs = vec![ran("5.10", a.clone()), ran("6.1", b)];
        match judge_identical(&runs, &case(), &untyped()) {
            TrialOutcome::Failed(m) => assert!(
                m.starts_with("kernels disagree on return value:")
                    && m.contains("--- bpf_printk (5.10) ---\nstate field 1")
                    && m.contains("--- bpf_printk (6.1) ---\nstate field 2"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        let mut c = a.clone();
        c.printk = vec!["other text".into()];
        let same = vec![ran("5.10", a), ran("6.1", c.clone())];
        assert_eq!(
            judge_identical(&same, &case(), &untyped()),
            TrialOutcome::Passed
        );
        c.retval = 9;
        match judge_case(&ran("6.1", c), &case(), &untyped()) {
            TrialOutcome::Failed(m) => {
                assert!(m.ends_with("--- bpf_printk (6.1) ---\nother text"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_sequence_checks_every_packet_and_compares_them_across_kernels() {
        let seq = |second: u32| {
            let mut out = output(2, &[1, 2, 3], 1);
            out.per_packet = vec![
                guest_protocol::PacketResult {
                    retval: 2,
                    data_out: vec![1, 2, 3],
                },
                guest_protocol::PacketResult {
                    retval: second,
                    data_out: vec![1, 2, 3],
                },
            ];
            out
        };
        let mut expect = expectation();
        expect.data_out = None;
        expect.data_out_per_packet = Some(vec![vec![1, 2, 3], vec![1, 2, 4]]);
        let error = compare_with_expectation(&seq(1), &expect, &untyped(), "p").unwrap_err();
        assert!(
            error.contains("packet 2: return value: expected 2, got 1"),
            "{error}"
        );
        assert!(error.contains("packet 2: output packet differs"), "{error}");
        assert!(!error.contains("packet 1:"), "{error}");
        let runs = vec![ran("5.10", seq(2)), ran("6.1", seq(1))];
        match judge_identical(&runs, &case(), &untyped()) {
            TrialOutcome::Failed(m) => assert!(
                m.starts_with("kernels disagree on packet 2: 5.10 | 6.1")
                    && m.contains(
                        "packet 2 of the sequence:\n  5.10  2, 3 bytes out\n  6.1   1, 3 bytes out"
                    ),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_kernel_says_identical_needs_two() {
        let runs = vec![ran("host", output(2, &[1, 2, 3], 1))];
        match judge_identical(&runs, &case(), &untyped()) {
            TrialOutcome::Unsupported(m) => {
                assert!(
                    m.contains("`identical` needs two kernels; this run has one (host)"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refused_input_is_its_own_outcome_and_not_compared() {
        let refused = completed(
            "6.1",
            Some(CaseOutcome::InputRefused {
                reason: "the kernel refuses this input: BPF_PROG_TEST_RUN EINVAL".into(),
                evidence: "r0 = 0 of the same type refused it too".into(),
            }),
        );
        match judge_case(&refused, &case(), &untyped()) {
            TrialOutcome::InputRefused(m) => assert!(m.contains("evidence: r0 = 0"), "{m}"),
            other => panic!("{other:?}"),
        }
        let runs = vec![
            ran("5.10", output(2, &[1, 2, 3], 1)),
            refused,
            ran("6.12", output(2, &[1, 2, 3], 1)),
        ];
        assert_eq!(
            judge_identical(&runs, &case(), &untyped()),
            TrialOutcome::Passed
        );
    }

    #[test]
    fn return_values_are_named_for_the_program_type() {
        let mut types = untyped();
        types.program_types.insert("p".into(), 3);
        let error = compare_with_expectation(
            &output(u32::MAX, &[1, 2, 3], 1),
            &expectation(),
            &types,
            "p",
        )
        .unwrap_err();
        assert!(
            error.contains("return value: expected TC_ACT_SHOT (2), got TC_ACT_UNSPEC (-1)"),
            "{error}"
        );
    }
}
