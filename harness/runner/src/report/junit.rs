//! JUnit XML: one testsuite per kernel plus one for the cross-kernel trials.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::{count, RunRecord};
use crate::verdict::{Trial, TrialOutcome, IDENTICAL};

pub fn render(record: &RunRecord) -> String {
    let all = count(record.trials);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"harness\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        record.trials.len(),
        all.failed,
        all.unsupported + all.input_refused,
        record.wall_ms as f64 / 1000.0
    );
    for run in record.runs {
        let trials: Vec<&Trial> = record
            .trials
            .iter()
            .filter(|t| t.kernel.as_deref() == Some(&run.kernel))
            .collect();
        let counts = count(trials.iter().copied());
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            escape(&run.kernel),
            trials.len(),
            counts.failed,
            counts.unsupported + counts.input_refused,
            run.timings.exit_ms as f64 / 1000.0
        );
        let _ = writeln!(xml, "    <properties>");
        for (name, value) in [
            ("release", run.release().unwrap_or("")),
            ("arch", &run.arch),
            ("accel", &run.accel),
            ("backend", &run.backend),
            ("outcome", run.status.label()),
        ] {
            let _ = writeln!(
                xml,
                "      <property name=\"{name}\" value=\"{}\"/>",
                escape(value)
            );
        }
        let _ = writeln!(xml, "    </properties>");
        for trial in trials {
            testcase(&mut xml, trial, &super::flaky_attempts(record, trial));
        }
        if !run.console_tail.is_empty() {
            let _ = writeln!(
                xml,
                "    <system-out>{}</system-out>",
                escape(&run.console_tail)
            );
        }
        let _ = writeln!(xml, "  </testsuite>");
    }
    let cross: Vec<&Trial> = record
        .trials
        .iter()
        .filter(|t| t.kernel.is_none())
        .collect();
    let counts = count(cross.iter().copied());
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{IDENTICAL}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
        cross.len(),
        counts.failed,
        counts.unsupported + counts.input_refused
    );
    for trial in cross {
        testcase(&mut xml, trial, &super::flaky_attempts(record, trial));
    }
    let _ = writeln!(xml, "  </testsuite>");
    xml.push_str("</testsuites>\n");
    xml
}

fn testcase(xml: &mut String, trial: &Trial, flaky: &[String]) {
    let classname = format!(
        "{}.{}",
        trial.kernel.as_deref().unwrap_or(IDENTICAL),
        trial.object
    );
    // The trial's last segment: the case, or `load` / `relocations` for per-object trials.
    let name = trial.name.rsplit("::").next().unwrap_or(&trial.name);
    let _ = write!(
        xml,
        "    <testcase classname=\"{}\" name=\"{}\"",
        escape(&classname),
        escape(name)
    );
    match &trial.outcome {
        // As nextest writes a test that passed on a retry: one flakyFailure per earlier attempt.
        TrialOutcome::Passed if !flaky.is_empty() => {
            xml.push_str(">\n");
            for attempt in flaky {
                let _ = writeln!(
                    xml,
                    "      <flakyFailure message=\"{}\" type=\"retry\"/>",
                    escape(attempt)
                );
            }
            xml.push_str("    </testcase>\n");
        }
        TrialOutcome::Passed => xml.push_str("/>\n"),
        TrialOutcome::Failed(detail) => {
            let first = failure_message(detail);
            let _ = writeln!(
                xml,
                ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                escape(&first),
                escape(detail)
            );
        }
        TrialOutcome::Unsupported(reason) => {
            let _ = writeln!(
                xml,
                ">\n      <skipped message=\"unsupported: {}\"/>\n    </testcase>",
                escape(reason)
            );
        }
        TrialOutcome::InputRefused(reason) => {
            let _ = writeln!(
                xml,
                ">\n      <skipped message=\"the kernel refuses this input: {}\"/>\n    </testcase>",
                escape(reason)
            );
        }
    }
}

/// Characters of a failure's `message` attribute: CI front ends show it as the summary, so it
/// holds the start of the difference itself (expected vs actual, kernels by group), not a title.
const MESSAGE_CHARS: usize = 1000;

fn failure_message(detail: &str) -> String {
    let mut message = String::new();
    for line in detail.lines() {
        if message.len() + line.len() > MESSAGE_CHARS {
            message.push_str(" ...");
            break;
        }
        if !message.is_empty() {
            message.push_str(" / ");
        }
        message.push_str(line.trim());
    }
    message
}

/// XML text and attribute escaping; control characters that XML 1.0 forbids become U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

pub fn write(record: &RunRecord, path: &Path) -> Result<()> {
    crate::fsutil::write_atomic_in_existing_dir(path, render(record).as_bytes())
        .with_context(|| format!("writing JUnit report {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::{GuestRun, GuestStatus};

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b & \"c\"\u{1}"),
            "a&lt;b &amp; &quot;c&quot;\u{FFFD}"
        );
    }

    #[test]
    fn renders_failures_and_unsupported_as_junit_elements() {
        let mut run = GuestRun::new("5.10", "x86_64", "tcg");
        run.status = GuestStatus::Completed;
        let trials = vec![
            Trial {
                name: "5.10::o::a".into(),
                kernel: Some("5.10".into()),
                object: "o".into(),
                case: Some("a".into()),
                outcome: TrialOutcome::Passed,
            },
            Trial {
                name: "5.10::o::b".into(),
                kernel: Some("5.10".into()),
                object: "o".into(),
                case: Some("b".into()),
                outcome: TrialOutcome::Failed("retval <1>\nmore".into()),
            },
            Trial {
                name: "identical::o::c".into(),
                kernel: None,
                object: "o".into(),
                case: Some("c".into()),
                outcome: TrialOutcome::Unsupported("no type".into()),
            },
        ];
        let runs = vec![run];
        let record = RunRecord {
            objects: &[],
            matrix: Path::new("kernels.toml"),
            accel: "tcg".into(),
            accel_reason: String::new(),
            wall_ms: 1500,
            interrupted: false,
            runs: &runs,
            trials: &trials,
            cases: &[],
            kernel_order: &[],
        };
        let xml = render(&record);
        assert!(xml.contains("<testsuites name=\"harness\" tests=\"3\" failures=\"1\" skipped=\"1\" time=\"1.500\">"), "{xml}");
        assert!(
            xml.contains(
                "<failure message=\"retval &lt;1&gt; / more\">retval &lt;1&gt;\nmore</failure>"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("<skipped message=\"unsupported: no type\"/>"),
            "{xml}"
        );
        assert!(
            xml.contains("<property name=\"accel\" value=\"tcg\"/>"),
            "{xml}"
        );
    }

    #[test]
    fn refused_inputs_are_skipped_with_their_reason_and_counted_so() {
        let mut run = GuestRun::new("6.1", "x86_64", "tcg");
        run.status = GuestStatus::Completed;
        let trials = vec![Trial {
            name: "6.1::o::a".into(),
            kernel: Some("6.1".into()),
            object: "o".into(),
            case: Some("a".into()),
            outcome: TrialOutcome::InputRefused("EINVAL for a short IPv6 header".into()),
        }];
        let runs = vec![run];
        let record = RunRecord {
            matrix: Path::new("kernels.toml"),
            accel: "tcg".into(),
            accel_reason: String::new(),
            wall_ms: 0,
            interrupted: false,
            runs: &runs,
            trials: &trials,
            objects: &[],
            cases: &[],
            kernel_order: &[],
        };
        let xml = render(&record);
        assert!(
            xml.contains("tests=\"1\" failures=\"0\" skipped=\"1\""),
            "{xml}"
        );
        assert!(
            xml.contains("<skipped message=\"the kernel refuses this input: EINVAL for a short IPv6 header\"/>"),
            "{xml}"
        );
    }
}
