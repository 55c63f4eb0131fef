//! `--bless KERNEL`: the results one reference kernel produced, written as the expectations of
//! a fixture file for a user to review (as `insta` writes `.snap.new`): the file's inputs,
//! comments and other keys stay as they are, each case's `[case.expect]` is replaced by what
//! was observed. Every other kernel must then match it. Pure: text in, text out.

use std::collections::BTreeMap;

use guest_protocol::{MapDump, RunOutput};
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value};

/// The suffix of a blessed file next to `<object>.fixtures.toml`.
pub const BLESSED_SUFFIX: &str = ".blessed";

// `enum bpf_prog_type` values whose return codes and output packets fixtures name.
const SCHED_CLS: u32 = 3;
const SCHED_ACT: u32 = 4;
const XDP: u32 = 6;

/// What was blessed and what was left as it was.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Blessed {
    pub text: String,
    pub cases: Vec<String>,
    /// Cases the reference kernel did not run (unsupported, refused, failed), with why.
    pub kept: Vec<(String, String)>,
}

/// One case as the reference kernel left it.
pub struct Observation<'a> {
    pub output: Result<&'a RunOutput, String>,
    pub program_type: Option<u32>,
    pub data_in: &'a [u8],
    /// A sequence case's packets (empty otherwise).
    pub sequence: &'a [Vec<u8>],
    pub ignore_maps: &'a [String],
    pub traffic: bool,
}

/// Rewrites `fixture_text`'s expectations from `observed` (by case name).
pub fn bless(
    fixture_text: &str,
    kernel: &str,
    release: &str,
    observed: &BTreeMap<String, Observation>,
) -> Result<Blessed, String> {
    let mut doc: DocumentMut = fixture_text.parse().map_err(|e| format!("{e}"))?;
    let mut blessed = Blessed::default();
    let Some(cases) = doc.get_mut("case").and_then(Item::as_array_of_tables_mut) else {
        return Err("no [[case]] tables".into());
    };
    for case in cases.iter_mut() {
        let Some(name) = case.get("name").and_then(Item::as_str).map(str::to_string) else {
            continue;
        };
        let Some(observation) = observed.get(&name) else {
            continue;
        };
        let output = match &observation.output {
            Ok(output) => *output,
            Err(why) => {
                blessed.kept.push((name, why.clone()));
                continue;
            }
        };
        let mut expect = expectation(output, observation);
        // A case's own `ignore_maps` is a decision, not an observation: it stays.
        if let Some(ignored) = case
            .get("expect")
            .and_then(|e| e.get("ignore_maps"))
            .cloned()
        {
            expect.insert("ignore_maps", ignored);
        }
        case.insert("expect", Item::Table(expect));
        blessed.cases.push(name);
    }
    let header = format!(
        "# Expectations blessed from kernel {kernel} ({release}) by `harness --bless {kernel}`.\n\
         # Review them (they are what that kernel did, not what the protocol says), then move\n\
         # this file over the fixture file; every kernel must then produce the same.\n"
    );
    blessed.text = header + &doc.to_string();
    Ok(blessed)
}

/// Writes `<fixture file>.blessed` for every fixture file from `run` (the reference kernel);
/// prints what it wrote and which cases it left as they were.
pub fn write_all(
    files: &[crate::fixtures::FixtureFile],
    run: &crate::guest::GuestRun,
    vocabulary: &crate::btf_values::Vocabulary,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use guest_protocol::CaseOutcome;
    for file in files {
        let text = std::fs::read_to_string(&file.path)
            .with_context(|| format!("reading {}", file.path.display()))?;
        let mut observed = BTreeMap::new();
        for case in &file.cases {
            let object = file.object_of(case);
            let id = crate::verdict::case_id(&object, &case.name);
            let output = match run.cases.get(&id) {
                Some(CaseOutcome::Ran(output)) => Ok(output.as_ref()),
                Some(CaseOutcome::Unsupported { reason }) => Err(format!("unsupported: {reason}")),
                Some(CaseOutcome::InputRefused { reason, .. }) => Err(reason.clone()),
                Some(CaseOutcome::Error { message }) => Err(format!("error: {message}")),
                None => continue,
            };
            observed.insert(
                case.name.clone(),
                Observation {
                    output,
                    program_type: vocabulary
                        .get(&object)
                        .and_then(|t| t.program_types.get(&case.program))
                        .copied(),
                    data_in: &case.data_in,
                    sequence: &case.data_sequence,
                    ignore_maps: &case.expect.ignore_maps,
                    traffic: case.traffic.is_some() || case.workload.is_some(),
                },
            );
        }
        if observed.is_empty() {
            continue;
        }
        let blessed = bless(&text, &run.kernel, run.release().unwrap_or("?"), &observed)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.path.display()))?;
        let mut target = file.path.clone().into_os_string();
        target.push(BLESSED_SUFFIX);
        let target = std::path::PathBuf::from(target);
        crate::fsutil::write_atomic(&target, blessed.text.as_bytes())
            .with_context(|| format!("writing {}", target.display()))?;
        eprintln!(
            "blessed {} case(s) from {} into {}",
            blessed.cases.len(),
            run.kernel,
            target.display()
        );
        for (case, why) in &blessed.kept {
            eprintln!(
                "  kept the expectation of {case}: {} did not run it ({why})",
                run.kernel
            );
        }
    }
    Ok(())
}

fn expectation(output: &RunOutput, observation: &Observation) -> Table {
    let mut expect = Table::new();
    let program_type = observation.program_type;
    if !output.per_packet.is_empty() {
        // A sequence: one expectation for every packet, written only where they all agree.
        let first = output.per_packet[0].retval;
        if output.per_packet.iter().all(|p| p.retval == first) {
            expect.insert("retval", Item::Value(retval(program_type, first)));
        }
        let unchanged = output.per_packet.len() == observation.sequence.len()
            && output
                .per_packet
                .iter()
                .zip(observation.sequence)
                .all(|(p, input)| &p.data_out == input);
        if unchanged && matches!(program_type, Some(XDP | SCHED_CLS | SCHED_ACT)) {
            expect.insert("packet", Item::Value("unchanged".into()));
        }
    } else if !observation.traffic {
        expect.insert("retval", Item::Value(retval(program_type, output.retval)));
        if matches!(program_type, Some(XDP | SCHED_CLS | SCHED_ACT)) {
            if output.data_out == observation.data_in {
                expect.insert("packet", Item::Value("unchanged".into()));
            } else {
                expect.insert(
                    "packet_hex",
                    Item::Value(hex::encode(&output.data_out).into()),
                );
            }
        }
    }
    let mut maps = Array::new();
    let mut exact = Array::new();
    for dump in output.maps.iter().filter(|d| blessable(d, observation)) {
        for entry in &dump.entries {
            let mut row = InlineTable::new();
            row.insert("map", dump.name.as_str().into());
            row.insert("key", format!("hex:{}", hex::encode(&entry.key)).into());
            row.insert("value", format!("hex:{}", hex::encode(&entry.value)).into());
            maps.push(row);
        }
        exact.push(dump.name.as_str());
    }
    if !maps.is_empty() {
        for row in maps.iter_mut() {
            row.decor_mut().set_prefix("\n  ");
        }
        maps.set_trailing("\n");
        expect.insert("maps", Item::Value(Value::Array(maps)));
    }
    if !exact.is_empty() {
        expect.insert("maps_exact", Item::Value(Value::Array(exact)));
    }
    expect
}

/// Maps whose dump is state a program wrote and that compares the same on every kernel:
/// not the ignored or unreadable ones, not `.rodata` (constant), not per-CPU maps (their dump
/// holds one slot per CPU, and kernels' CPU counts differ).
fn blessable(dump: &MapDump, observation: &Observation) -> bool {
    dump.not_compared.is_none()
        && dump.events.is_empty()
        && !observation.ignore_maps.contains(&dump.name)
        && !dump.name.starts_with(".rodata")
        && !crate::verdict::is_percpu(dump.map_type)
}

/// A name fixtures accept for XDP and tc programs, else the number (signed, as fixtures take).
fn retval(program_type: Option<u32>, value: u32) -> Value {
    let signed = value as i32 as i64;
    let prefix = match program_type {
        Some(XDP) => "XDP_",
        Some(SCHED_CLS | SCHED_ACT) => "TC_ACT_",
        _ => return Value::from(signed),
    };
    crate::fixtures::RETVAL_NAMES
        .iter()
        .find(|(name, n)| name.starts_with(prefix) && *n == signed)
        .map(|(name, _)| Value::from(*name))
        .unwrap_or_else(|| Value::from(signed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_protocol::MapEntry;

    const FIXTURE: &str = r#"# my fixtures
object = "demo"
ignore_maps = ["ts"]

[[case]]
name = "a"
program = "xdp_count"
packet_hex = "0200000000020200000000010800"   # input stays
[case.expect]
retval = "XDP_DROP"

[[case]]
name = "b"
program = "xdp_count"
[case.expect]
retval = 0

[[case]]
name = "c"
program = "xdp_count"
[case.expect]
retval = 1
ignore_maps = ["jitter"]
"#;

    fn run(retval: u32, data: &[u8]) -> RunOutput {
        RunOutput {
            retval,
            data_out: data.to_vec(),
            ctx_out: None,
            duration_ns: 1,
            maps: vec![
                MapDump {
                    name: "counters".into(),
                    map_type: 2,
                    value_size: 8,
                    zero_entries_omitted: true,
                    entries: vec![MapEntry {
                        key: vec![6, 0, 0, 0],
                        value: vec![1, 0, 0, 0, 0, 0, 0, 0],
                    }],
                    ..Default::default()
                },
                MapDump {
                    name: ".rodata".into(),
                    map_type: 2,
                    entries: vec![MapEntry {
                        key: vec![0; 4],
                        value: vec![53, 0],
                    }],
                    ..Default::default()
                },
                MapDump {
                    name: "ts".into(),
                    not_compared: Some("excluded".into()),
                    ..Default::default()
                },
            ],
            printk: vec![],
            per_packet: vec![],
        }
    }

    #[test]
    fn expectations_are_replaced_and_the_rest_kept() {
        let data = hex::decode("0200000000020200000000010800").unwrap();
        let out = run(2, &data);
        let ignore = vec!["ts".to_string()];
        let mut observed = BTreeMap::new();
        observed.insert(
            "a".to_string(),
            Observation {
                output: Ok(&out),
                program_type: Some(XDP),
                data_in: &data,
                sequence: &[],
                ignore_maps: &ignore,
                traffic: false,
            },
        );
        observed.insert(
            "b".to_string(),
            Observation {
                output: Err("unsupported: no SK_LOOKUP".into()),
                program_type: Some(XDP),
                data_in: &[],
                sequence: &[],
                ignore_maps: &ignore,
                traffic: false,
            },
        );
        observed.insert(
            "c".to_string(),
            Observation {
                output: Ok(&out),
                program_type: Some(1),
                data_in: &data,
                sequence: &[],
                ignore_maps: &ignore,
                traffic: false,
            },
        );
        let b = bless(FIXTURE, "6.12", "6.12.1", &observed).unwrap();
        assert_eq!(b.cases, ["a", "c"]);
        assert!(b.text.contains("ignore_maps = [\"jitter\"]"), "{}", b.text);
        assert_eq!(
            b.kept,
            [("b".to_string(), "unsupported: no SK_LOOKUP".to_string())]
        );
        assert!(b
            .text
            .starts_with("# Expectations blessed from kernel 6.12 (6.12.1)"));
        assert!(b.text.contains("# my fixtures"), "{}", b.text);
        assert!(b
            .text
            .contains("packet_hex = \"0200000000020200000000010800\"   # input stays"));
        assert!(b.text.contains("retval = \"XDP_PASS\""), "{}", b.text);
        assert!(b.text.contains("packet = \"unchanged\""), "{}", b.text);
        assert!(
            b.text.contains(
                "{ map = \"counters\", key = \"hex:06000000\", value = \"hex:0100000000000000\" }"
            ),
            "{}",
            b.text
        );
        assert!(b.text.contains("maps_exact = [\"counters\"]"), "{}", b.text);
        assert!(
            !b.text.contains(".rodata") && !b.text.contains("map = \"ts\""),
            "{}",
            b.text
        );
        // The case left alone keeps its expectation.
        assert!(b.text.contains("[case.expect]\nretval = 0"), "{}", b.text);
        // What it writes is a fixture file the harness reads, with the observed values.
        let parsed = crate::fixtures::parse(std::path::Path::new("demo.fixtures.toml"), &b.text)
            .unwrap_or_else(|e| panic!("{e}\n{}", b.text));
        assert_eq!(parsed.cases[0].expect.retval, Some(2));
        assert_eq!(parsed.cases[0].expect.data_out, Some(data.clone()));
        assert_eq!(
            parsed.cases[0].expect.maps[0].value,
            vec![1, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(parsed.cases[0].expect.ignore_maps, ["ts"]);
        let checked = crate::verdict::compare_with_expectation(
            &out,
            &parsed.cases[0].expect,
            &crate::btf_values::ObjectTypes::default(),
            "xdp_count",
        );
        assert_eq!(checked, Ok(()));
    }

    #[test]
    fn return_values_keep_the_program_types_names() {
        assert_eq!(
            retval(Some(SCHED_CLS), u32::MAX).as_str(),
            Some("TC_ACT_UNSPEC")
        );
        assert_eq!(retval(Some(XDP), 4).as_str(), Some("XDP_REDIRECT"));
        assert_eq!(retval(Some(XDP), 9).as_integer(), Some(9));
        assert_eq!(retval(Some(1), 50).as_integer(), Some(50));
        assert_eq!(retval(None, u32::MAX).as_integer(), Some(-1));
    }
}
