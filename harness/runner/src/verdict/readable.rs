//! Results in the words of the program type and as hex dumps a reader can line up: return
//! values by name (TC_ACT_*, XDP_*, SK_*, ...), byte strings side by side with offsets. Pure.

use std::fmt::Write as _;

// `enum bpf_prog_type` values the names below depend on.
const SOCKET_FILTER: u32 = 1;
const SCHED_CLS: u32 = 3;
const SCHED_ACT: u32 = 4;
const XDP: u32 = 6;
const CGROUP_SKB: u32 = 8;
const LWT_IN: u32 = 10;
const LWT_OUT: u32 = 11;
const LWT_XMIT: u32 = 12;
const SK_SKB: u32 = 14;
const SK_MSG: u32 = 16;
const SK_REUSEPORT: u32 = 21;
const FLOW_DISSECTOR: u32 = 22;
const LWT_SEG6LOCAL: u32 = 19;
const SK_LOOKUP: u32 = 30;

/// The return codes a program type defines, as (value, name).
fn names_for(program_type: u32) -> &'static [(i64, &'static str)] {
    match program_type {
        XDP => &[
            (0, "XDP_ABORTED"),
            (1, "XDP_DROP"),
            (2, "XDP_PASS"),
            (3, "XDP_TX"),
            (4, "XDP_REDIRECT"),
        ],
        SCHED_CLS | SCHED_ACT => &[
            (-1, "TC_ACT_UNSPEC"),
            (0, "TC_ACT_OK"),
            (1, "TC_ACT_RECLASSIFY"),
            (2, "TC_ACT_SHOT"),
            (3, "TC_ACT_PIPE"),
            (4, "TC_ACT_STOLEN"),
            (5, "TC_ACT_QUEUED"),
            (6, "TC_ACT_REPEAT"),
            (7, "TC_ACT_REDIRECT"),
            (8, "TC_ACT_TRAP"),
        ],
        SK_SKB | SK_MSG | SK_REUSEPORT | SK_LOOKUP => &[(0, "SK_DROP"), (1, "SK_PASS")],
        CGROUP_SKB => &[(0, "drop"), (1, "allow")],
        FLOW_DISSECTOR | LWT_IN | LWT_OUT | LWT_XMIT | LWT_SEG6LOCAL => &[
            (0, "BPF_OK"),
            (2, "BPF_DROP"),
            (7, "BPF_REDIRECT"),
            (128, "BPF_LWT_REROUTE"),
            (129, "BPF_FLOW_DISSECTOR_CONTINUE"),
        ],
        _ => &[],
    }
}

/// `TC_ACT_UNSPEC (-1)`, `XDP_PASS (2)`, `keep 50 bytes (50)` for socket filters, or the
/// number (signed when the top bit is set) for types without named codes.
pub fn retval(program_type: Option<u32>, value: u32) -> String {
    let signed = value as i32 as i64;
    if let Some(program_type) = program_type {
        if let Some((_, name)) = names_for(program_type)
            .iter()
            .find(|(v, _)| *v == signed || *v == value as i64)
        {
            return format!("{name} ({signed})");
        }
        if program_type == SOCKET_FILTER {
            return match value {
                0 => "drop (0)".into(),
                n => format!("keep {n} bytes ({n})"),
            };
        }
    }
    if signed < 0 {
        format!("{signed} ({value:#x})")
    } else {
        value.to_string()
    }
}

/// Bytes per hex dump row.
const ROW: usize = 16;
/// Rows shown around differing rows.
const CONTEXT_ROWS: usize = 1;

/// A side-by-side hex dump of two byte strings, with offsets, rows that differ marked `!` and
/// differing bytes bracketed; identical stretches are elided.
pub fn hex_diff(left_name: &str, left: &[u8], right_name: &str, right: &[u8]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  lengths: {left_name} {}, {right_name} {}{}",
        left.len(),
        right.len(),
        match left.iter().zip(right).position(|(a, b)| a != b) {
            Some(i) => format!("; first difference at byte {i} ({i:#x})"),
            None if left.len() != right.len() =>
                format!("; equal up to byte {}", left.len().min(right.len())),
            None => String::new(),
        }
    );
    let rows = left.len().max(right.len()).div_ceil(ROW);
    let differs = |row: usize| {
        let range = row * ROW..(row + 1) * ROW;
        left.get(range.start..range.end.min(left.len()))
            != right.get(range.start..range.end.min(right.len()))
    };
    let shown: Vec<bool> = (0..rows)
        .map(|r| {
            (r.saturating_sub(CONTEXT_ROWS)..=(r + CONTEXT_ROWS).min(rows.saturating_sub(1)))
                .any(differs)
        })
        .collect();
    let width = left_name.len().max(right_name.len());
    let mut elided = false;
    for (row, &show) in shown.iter().enumerate() {
        if !show {
            elided = true;
            continue;
        }
        if elided {
            let _ = writeln!(out, "  ...");
            elided = false;
        }
        let mark = if differs(row) { '!' } else { ' ' };
        for (name, bytes, other) in [(left_name, left, right), (right_name, right, left)] {
            let _ = writeln!(
                out,
                "  {mark} {:04x}  {name:<width$}  {}",
                row * ROW,
                hex_row(bytes, other, row * ROW)
            );
        }
    }
    if elided {
        let _ = writeln!(out, "  ...");
    }
    out.trim_end().to_string()
}

fn hex_row(bytes: &[u8], other: &[u8], start: usize) -> String {
    let mut text = String::new();
    for i in start..start + ROW {
        match bytes.get(i) {
            Some(b) if other.get(i) != Some(b) => {
                let _ = write!(text, "[{b:02x}]");
            }
            Some(b) => {
                let _ = write!(text, " {b:02x} ");
            }
            None => text.push_str("  --"),
        }
    }
    text.trim_end().to_string()
}

/// At most `max_lines` lines of `text`; the rest is counted and pointed to the JSON report.
pub fn truncate_lines(text: &str, max_lines: usize) -> String {
    let total = text.lines().count();
    if total <= max_lines {
        return text.to_string();
    }
    let mut out: Vec<&str> = text.lines().take(max_lines).collect();
    let note = format!(
        "... {} more lines (the whole message is in the JSON report, --report-json)",
        total - max_lines
    );
    out.push(&note);
    out.join("\n")
}

/// The last `n` lines of `text` (all of it when it has fewer).
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(last_lines("", 3), "");
    }

    #[test]
    fn return_values_are_named_per_program_type() {
        assert_eq!(retval(Some(SCHED_CLS), u32::MAX), "TC_ACT_UNSPEC (-1)");
        assert_eq!(retval(Some(SCHED_CLS), 2), "TC_ACT_SHOT (2)");
        assert_eq!(retval(Some(XDP), 2), "XDP_PASS (2)");
        assert_eq!(retval(Some(SK_LOOKUP), 1), "SK_PASS (1)");
        assert_eq!(retval(Some(SOCKET_FILTER), 0), "drop (0)");
        assert_eq!(retval(Some(SOCKET_FILTER), 50), "keep 50 bytes (50)");
        assert_eq!(retval(Some(XDP), 9), "9");
        assert_eq!(retval(None, u32::MAX), "-1 (0xffffffff)");
        assert_eq!(retval(Some(26), 7), "7");
    }

    #[test]
    fn hex_diff_marks_rows_and_bytes_with_offsets() {
        let left: Vec<u8> = (0..64).collect();
        let mut right = left.clone();
        right[40] = 0xff;
        let diff = hex_diff("expected", &left, "5.10", &right);
        assert!(
            diff.contains("first difference at byte 40 (0x28)"),
            "{diff}"
        );
        assert!(diff.contains("! 0020  expected"), "{diff}");
        assert!(diff.contains("[28]"), "{diff}");
        assert!(diff.contains("[ff]"), "{diff}");
        assert!(diff.contains("  0010  "), "context row: {diff}");
        assert!(!diff.contains("0000  "), "row 0 is elided: {diff}");
        let short = hex_diff("a", &[1, 2], "b", &[1, 2, 3]);
        assert!(short.contains("equal up to byte 2"), "{short}");
        assert!(short.contains("--"), "{short}");
    }

    #[test]
    fn long_texts_are_cut_with_a_pointer_to_the_json() {
        let text = (0..10)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(truncate_lines(&text, 20), text);
        let cut = truncate_lines(&text, 3);
        assert!(cut.starts_with("0\n1\n2\n... 7 more lines"), "{cut}");
    }
}
