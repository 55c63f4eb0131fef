//! The table printed after the trials: kernels down, objects across, times on the right.
//! With more objects than fit a terminal, one column counts them all (the per-object load table
//! after it has a row per object).

use std::fmt::Write as _;

use super::{count, RunRecord};

/// Most objects that get a column of their own.
const MAX_OBJECT_COLUMNS: usize = 8;

pub fn render(record: &RunRecord) -> String {
    let mut objects: Vec<&str> = record.trials.iter().map(|t| t.object.as_str()).collect();
    objects.sort();
    objects.dedup();
    let all_objects = format!("{} objects", objects.len());
    if objects.len() > MAX_OBJECT_COLUMNS {
        objects = vec![all_objects.as_str()];
    }
    let folded = objects.len() == 1 && objects[0] == all_objects;
    let in_column = |object: &str, column: &str| folded || object == column;
    let mut header = vec!["kernel".to_string(), "release".into(), "outcome".into()];
    header.extend(objects.iter().map(|o| o.to_string()));
    header.extend(["hello".into(), "results".into(), "exit".into()]);
    let mut rows = vec![header];
    for run in record.runs {
        let mut row = vec![
            run.kernel.clone(),
            run.release().unwrap_or("-").to_string(),
            run.status.label().to_string(),
        ];
        for object in &objects {
            let c = count(record.trials.iter().filter(|t| {
                t.kernel.as_deref() == Some(&run.kernel) && in_column(&t.object, object)
            }));
            row.push(cell(c));
        }
        row.push(seconds(run.timings.hello_ms));
        row.push(seconds(run.timings.results_ms));
        row.push(seconds(Some(run.timings.exit_ms)));
        rows.push(row);
    }
    let mut row = vec![
        crate::verdict::IDENTICAL.to_string(),
        "-".into(),
        "-".into(),
    ];
    for object in &objects {
        row.push(cell(count(
            record
                .trials
                .iter()
                .filter(|t| t.kernel.is_none() && in_column(&t.object, object)),
        )));
    }
    row.extend(["".into(), "".into(), "".into()]);
    rows.push(row);

    let mut out = super::aligned_table(&rows);
    out.push_str(&not_compared(record));
    let all = count(record.trials);
    let _ = writeln!(
        out,
        "\n{} passed, {} failed, {} unsupported, {} input refused by the kernel; accel {} ({}); wall {:.1} s{}",
        all.passed,
        all.failed,
        all.unsupported,
        all.input_refused,
        record.accel,
        record.accel_reason,
        record.wall_ms as f64 / 1000.0,
        if record.interrupted {
            "; INTERRUPTED"
        } else {
            ""
        }
    );
    let flaky = super::flaky_count(record);
    if flaky > 0 {
        let _ = writeln!(
            out,
            "FLAKY: {flaky} passed trials needed a retry (kernels: {})",
            record
                .runs
                .iter()
                .filter(|r| !r.earlier_attempts.is_empty())
                .map(|r| format!("{} after {}", r.kernel, r.earlier_attempts.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    out
}

pub(crate) fn cell(c: super::Counts) -> String {
    let total = c.passed + c.failed + c.unsupported + c.input_refused;
    if total == 0 {
        return "-".into();
    }
    let mut text = format!("{}/{} ok", c.passed, total);
    if c.failed > 0 {
        text = format!("{} FAIL", c.failed) + &format!(" {}/{}", c.passed, total);
    }
    if c.unsupported > 0 {
        text.push_str(&format!(" {} unsup", c.unsupported));
    }
    if c.input_refused > 0 {
        text.push_str(&format!(" {} refused", c.input_refused));
    }
    text
}

fn seconds(ms: Option<u64>) -> String {
    ms.map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// Maps the agent could not read, or that fixtures exclude, per object: `identical::` did not
/// compare them, and a reader must see that even when every trial passed.
fn not_compared(record: &RunRecord) -> String {
    let mut seen = std::collections::BTreeMap::new();
    for run in record.runs {
        for (id, outcome) in &run.cases {
            let guest_protocol::CaseOutcome::Ran(output) = outcome else {
                continue;
            };
            let object = id.split('/').next().unwrap_or(id);
            for map in &output.maps {
                if let Some(reason) = &map.not_compared {
                    seen.insert((object.to_string(), map.name.clone()), reason.clone());
                }
            }
        }
    }
    if seen.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("\nmaps identical:: does not compare (their dumps in the JSON say why):\n");
    for ((object, map), reason) in seen {
        let _ = writeln!(out, "  {object}: {map}: {reason}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::{GuestRun, GuestStatus};
    use guest_protocol::{CaseOutcome, MapDump, RunOutput};

    #[test]
    fn maps_left_out_of_the_comparison_are_listed() {
        let mut run = GuestRun::new("6.1", "x86_64", "tcg");
        run.status = GuestStatus::Completed;
        run.cases.insert(
            "obj/c".into(),
            CaseOutcome::Ran(Box::new(RunOutput {
                maps: vec![
                    MapDump {
                        name: "perf".into(),
                        not_compared: Some("perf_event_array: not read".into()),
                        ..Default::default()
                    },
                    MapDump {
                        name: "counters".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            })),
        );
        let runs = vec![run];
        let record = RunRecord {
            matrix: std::path::Path::new("kernels.toml"),
            accel: "tcg".into(),
            accel_reason: String::new(),
            wall_ms: 0,
            interrupted: false,
            runs: &runs,
            trials: &[],
            objects: &[],
            cases: &[],
            kernel_order: &[],
        };
        let text = render(&record);
        assert!(
            text.contains("  obj: perf: perf_event_array: not read"),
            "{text}"
        );
        assert!(!text.contains("counters"), "{text}");
    }
}
