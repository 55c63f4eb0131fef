//! One message per line: `@@HARNESS <crc32 hex> <json>`.
//!
//! JSON as serde_json writes it never contains a raw newline, so a line is a frame. The checksum
//! catches a frame that a kernel message or a dying guest cut in half; such a line is dropped
//! and counted, never half-parsed.

use crate::GuestMessage;

pub const FRAME_MAGIC: &str = "@@HARNESS ";

/// Encodes one message as a frame, newline included.
pub fn frame(message: &GuestMessage) -> String {
    let json = serde_json::to_string(message).expect("messages always serialize");
    let crc = crc32fast::hash(json.as_bytes());
    format!("\n{FRAME_MAGIC}{crc:08x} {json}\n")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    Checksum { line: String },
    Json { line: String, error: String },
}

/// Incremental scanner: feed it bytes as they arrive, take messages out.
#[derive(Debug, Default)]
pub struct FrameScanner {
    pending: Vec<u8>,
    /// Frames that carried the magic but failed their checksum or did not parse.
    pub damaged: Vec<FrameError>,
}

impl FrameScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes and returns the messages completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<GuestMessage> {
        // Only the new bytes can end a line: searching the whole pending line on every push
        // made a long frame (a large map dump arriving in small reads) quadratic.
        let mut from = self.pending.len();
        self.pending.extend_from_slice(bytes);
        let mut messages = Vec::new();
        while let Some(offset) = self.pending[from..].iter().position(|&b| b == b'\n') {
            let end = from + offset;
            from = 0;
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(message) = self.parse_line(&line) {
                messages.push(message);
            }
        }
        messages
    }

    fn parse_line(&mut self, line: &[u8]) -> Option<GuestMessage> {
        let text = String::from_utf8_lossy(line);
        let start = text.find(FRAME_MAGIC)?;
        let body = text[start + FRAME_MAGIC.len()..].trim_end_matches(['\r', '\n']);
        let (crc_hex, json) = match body.split_once(' ') {
            Some(parts) => parts,
            None => {
                self.damaged.push(FrameError::Checksum {
                    line: body.to_string(),
                });
                return None;
            }
        };
        let expected = u32::from_str_radix(crc_hex, 16).ok();
        if expected != Some(crc32fast::hash(json.as_bytes())) {
            self.damaged.push(FrameError::Checksum {
                line: body.to_string(),
            });
            return None;
        }
        match serde_json::from_str(json) {
            Ok(message) => Some(message),
            Err(error) => {
                self.damaged.push(FrameError::Json {
                    line: body.to_string(),
                    error: error.to_string(),
                });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CaseOutcome, CaseResult, MapDump, MapEntry, RunOutput};

    fn sample() -> GuestMessage {
        GuestMessage::CaseResult(CaseResult {
            case_id: "obj/case".into(),
            outcome: CaseOutcome::Ran(Box::new(RunOutput {
                retval: 2,
                data_out: vec![0xde, 0xad, b'\n', b'\r'],
                ctx_out: None,
                duration_ns: 10,
                maps: vec![MapDump {
                    name: "counters".into(),
                    zero_entries_omitted: true,
                    entries: vec![MapEntry {
                        key: vec![1, 0, 0, 0],
                        value: vec![1; 8],
                    }],
                    ..Default::default()
                }],
                printk: vec![],
                per_packet: vec![],
            })),
        })
    }

    #[test]
    fn round_trips_through_noise_and_split_reads() {
        let mut stream = b"[    1.2] random kernel line\r\n".to_vec();
        stream.extend_from_slice(frame(&sample()).as_bytes());
        stream.extend_from_slice(b"garbage without newline then ");
        stream.extend_from_slice(frame(&GuestMessage::Done { agent_ms: 5 }).as_bytes());
        let mut scanner = FrameScanner::new();
        let mut got = Vec::new();
        for chunk in stream.chunks(7) {
            got.extend(scanner.push(chunk));
        }
        assert_eq!(got, vec![sample(), GuestMessage::Done { agent_ms: 5 }]);
        assert!(scanner.damaged.is_empty());
    }

    #[test]
    fn tolerates_crlf_from_a_cooked_tty() {
        let framed = frame(&sample()).replace('\n', "\r\n");
        let mut scanner = FrameScanner::new();
        assert_eq!(scanner.push(framed.as_bytes()), vec![sample()]);
    }

    #[test]
    fn drops_a_frame_cut_by_a_kernel_message() {
        let framed = frame(&sample());
        let (head, tail) = framed.split_at(framed.len() / 2);
        let mut scanner = FrameScanner::new();
        let mut stream = head.as_bytes().to_vec();
        stream.extend_from_slice(b"\n[ 2.0] Kernel panic - not syncing\n");
        stream.extend_from_slice(tail.as_bytes());
        assert!(scanner.push(&stream).is_empty());
        assert_eq!(scanner.damaged.len(), 1);
    }

    #[test]
    fn rejects_a_flipped_byte() {
        let framed = frame(&sample()).replacen("counters", "counterz", 1);
        let mut scanner = FrameScanner::new();
        assert!(scanner.push(framed.as_bytes()).is_empty());
        assert!(matches!(scanner.damaged[0], FrameError::Checksum { .. }));
    }

    #[test]
    fn a_long_frame_in_small_reads_parses_once_whole() {
        let mut message = sample();
        if let GuestMessage::CaseResult(r) = &mut message {
            if let CaseOutcome::Ran(out) = &mut r.outcome {
                out.maps[0].entries = (0..20_000u32)
                    .map(|k| MapEntry {
                        key: k.to_le_bytes().to_vec(),
                        value: vec![7; 60],
                    })
                    .collect();
            }
        }
        let bytes = frame(&message).into_bytes();
        let mut scanner = FrameScanner::new();
        let mut got = Vec::new();
        for chunk in bytes.chunks(16) {
            got.extend(scanner.push(chunk));
        }
        assert_eq!(got, vec![message]);
        assert!(scanner.damaged.is_empty());
    }
}
