//! One message per line: `@@HARNESS <crc32 hex> <json>`.
//!
//! JSON as serde_json writes it never contains a raw newline, so a line is a frame. The checksum
//! catches a frame that a kernel message or a dying guest cut in half; such a line is dropped
//! and counted, never half-parsed.

use crate::GuestMessage;

/// What starts every frame, after a newline.
pub const FRAME_MAGIC: &str = "@@HARNESS ";

/// A guest restored from a snapshot appends its frames to the results' area of the shared-memory
/// region and says so on the port with one short line, `@@REGION <end>`: the area now holds
/// frames up to byte `end`. The port's UART moves a few hundred KB/s out of a TCG guest, one
/// interrupt per 16 bytes; the notice is ~20 bytes per message instead of the whole frame.
pub const REGION_NOTICE_MAGIC: &str = "@@REGION ";

/// The notice line for frames up to `end` of the results' area.
pub fn region_notice(end: usize) -> String {
    format!("\n{REGION_NOTICE_MAGIC}{end}\n")
}

/// The `end` a notice line (newline included or not) announces, if it is one.
pub fn parse_region_notice(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?;
    let digits = text
        .trim_start_matches(['\r', '\n'])
        .strip_prefix(REGION_NOTICE_MAGIC)?
        .trim_end_matches(['\r', '\n']);
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Encodes one message as a frame, newline included.
pub fn frame(message: &GuestMessage) -> String {
    let json = serde_json::to_string(message).expect("messages always serialize");
    let crc = crc32fast::hash(json.as_bytes());
    format!("\n{FRAME_MAGIC}{crc:08x} {json}\n")
}

/// The longest line the scanner holds: a frame beyond it is dropped (and counted) without being
/// buffered, so a runaway guest cannot make the runner allocate without bound. A dump of a
/// 50,000-entry map is about 3 MB.
pub const MAX_FRAME_BYTES: usize = 16 << 20;

/// A line that carried the frame magic but is no message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The checksum does not match the JSON.
    Checksum {
        /// The line (cut).
        line: String,
    },
    /// The checksum matches but the JSON is no message of this protocol version.
    Json {
        /// The line (cut).
        line: String,
        /// What serde said.
        error: String,
    },
    /// A line longer than [`MAX_FRAME_BYTES`]; only its length is kept.
    TooLong {
        /// Its length in bytes.
        bytes: usize,
    },
}

/// Incremental scanner: feed it bytes as they arrive, take messages out. Each byte is looked at
/// once, however the stream is cut into reads.
#[derive(Debug, Default)]
pub struct FrameScanner {
    /// The current, unfinished line.
    pending: Vec<u8>,
    /// Bytes of the current line dropped because it outgrew `MAX_FRAME_BYTES` (0: none).
    overflowed: usize,
    /// The first [`KEPT_DAMAGED`] frames that carried the magic but failed their checksum, did
    /// not parse or were too long (each line cut to [`KEPT_DAMAGED_BYTES`]).
    pub damaged: Vec<FrameError>,
    /// How many frames were damaged in all.
    pub damaged_count: usize,
}

/// How many damaged frames are kept as examples, and how much of each line.
pub const KEPT_DAMAGED: usize = 64;
pub const KEPT_DAMAGED_BYTES: usize = 256;

/// At most `KEPT_DAMAGED_BYTES` of a damaged line, cut at a character boundary.
fn excerpt(line: &str) -> String {
    let mut end = line.len().min(KEPT_DAMAGED_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_string()
}

impl FrameScanner {
    /// A scanner with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes and returns the messages completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<GuestMessage> {
        let mut messages = Vec::new();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (piece, after) = rest.split_at(end + 1);
            rest = after;
            if self.overflowed > 0 {
                self.record_damage(FrameError::TooLong {
                    bytes: self.overflowed + piece.len(),
                });
                self.overflowed = 0;
                continue;
            }
            if self.pending.len() + piece.len() > MAX_FRAME_BYTES {
                self.record_damage(FrameError::TooLong {
                    bytes: self.pending.len() + piece.len(),
                });
                self.pending.clear();
                continue;
            }
            let message = if self.pending.is_empty() {
                self.parse_line(piece)
            } else {
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(piece);
                let message = self.parse_line(&line);
                // Keep the allocation for the next long line.
                line.clear();
                self.pending = line;
                message
            };
            messages.extend(message);
        }
        self.keep_unfinished(rest);
        messages
    }

    fn keep_unfinished(&mut self, rest: &[u8]) {
        if self.overflowed > 0 {
            self.overflowed += rest.len();
        } else if self.pending.len() + rest.len() > MAX_FRAME_BYTES {
            self.overflowed = self.pending.len() + rest.len();
            self.pending = Vec::new();
        } else {
            self.pending.extend_from_slice(rest);
        }
    }

    fn record_damage(&mut self, error: FrameError) {
        self.damaged_count += 1;
        if self.damaged.len() < KEPT_DAMAGED {
            self.damaged.push(match error {
                FrameError::Checksum { line } => FrameError::Checksum {
                    line: excerpt(&line),
                },
                FrameError::Json { line, error } => FrameError::Json {
                    line: excerpt(&line),
                    error,
                },
                too_long => too_long,
            });
        }
    }

    fn parse_line(&mut self, line: &[u8]) -> Option<GuestMessage> {
        let text = String::from_utf8_lossy(line);
        let start = text.find(FRAME_MAGIC)?;
        let body = text[start + FRAME_MAGIC.len()..].trim_end_matches(['\r', '\n']);
        let (crc_hex, json) = match body.split_once(' ') {
            Some(parts) => parts,
            None => {
                self.record_damage(FrameError::Checksum {
                    line: body.to_string(),
                });
                return None;
            }
        };
        let expected = u32::from_str_radix(crc_hex, 16).ok();
        if expected != Some(crc32fast::hash(json.as_bytes())) {
            self.record_damage(FrameError::Checksum {
                line: body.to_string(),
            });
            return None;
        }
        match serde_json::from_str(json) {
            Ok(message) => Some(message),
            Err(error) => {
                self.record_damage(FrameError::Json {
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

    #[test]
    fn region_notices_round_trip_and_nothing_else_is_one() {
        assert_eq!(
            parse_region_notice(region_notice(1234).as_bytes()),
            Some(1234)
        );
        assert_eq!(parse_region_notice(b"@@REGION 0\r\n"), Some(0));
        for line in [
            &b"@@REGION \n"[..],
            b"@@REGION -1\n",
            b"@@REGION 12x\n",
            b"@@REGION 9999999999999\n",
            b"@@HARNESS 00000000 {}\n",
            b"x@@REGION 5\n",
        ] {
            assert_eq!(parse_region_notice(line), None, "{line:?}");
        }
    }
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

    /// A 1 MiB frame read 16 bytes at a time used to take 25 s (each read rescanned everything
    /// pending); linear, it takes milliseconds. Bounded at 2 s so that a quadratic scanner fails
    /// even on a fast machine.
    #[test]
    fn a_large_frame_in_small_reads_is_linear() {
        let big = GuestMessage::Log {
            message: "x".repeat(1 << 20),
        };
        let framed = frame(&big);
        let mut scanner = FrameScanner::new();
        let started = std::time::Instant::now();
        let mut got = Vec::new();
        for chunk in framed.as_bytes().chunks(16) {
            got.extend(scanner.push(chunk));
        }
        let elapsed = started.elapsed();
        assert_eq!(got, vec![big]);
        assert!(
            elapsed < std::time::Duration::from_secs(2),
            "1 MiB in 16-byte reads took {elapsed:?}"
        );
    }

    #[test]
    fn an_oversized_line_is_dropped_without_being_held() {
        let mut scanner = FrameScanner::new();
        let chunk = vec![b'y'; 1 << 20];
        let mut total = 0;
        for _ in 0..(MAX_FRAME_BYTES >> 20) + 2 {
            assert!(scanner.push(&chunk).is_empty());
            total += chunk.len();
            assert!(scanner.pending.len() <= MAX_FRAME_BYTES);
        }
        assert!(scanner.pending.is_empty(), "the runaway line is not kept");
        // The frame after it still gets through, and the long one is counted.
        let after = scanner.push(format!("tail{}", frame(&sample())).as_bytes());
        assert_eq!(after, vec![sample()]);
        assert_eq!(
            scanner.damaged,
            vec![FrameError::TooLong { bytes: total + 5 }]
        );
        // A long line completed within a single read is dropped too.
        let mut line = vec![b'z'; MAX_FRAME_BYTES + 1];
        line.push(b'\n');
        assert!(scanner.push(&line).is_empty());
        assert_eq!(scanner.damaged.len(), 2);
    }

    #[test]
    fn a_flood_of_damaged_frames_keeps_a_bounded_record() {
        let mut scanner = FrameScanner::new();
        let bad = format!("{FRAME_MAGIC}00000000 {}\n", "q".repeat(10_000));
        for _ in 0..1000 {
            assert!(scanner.push(bad.as_bytes()).is_empty());
        }
        assert_eq!(scanner.damaged_count, 1000);
        assert_eq!(scanner.damaged.len(), KEPT_DAMAGED);
        assert!(
            matches!(&scanner.damaged[0], FrameError::Checksum { line } if line.len() == KEPT_DAMAGED_BYTES)
        );
    }

    #[test]
    fn rejects_a_flipped_byte() {
        let framed = frame(&sample()).replacen("counters", "counterz", 1);
        let mut scanner = FrameScanner::new();
        assert!(scanner.push(framed.as_bytes()).is_empty());
        assert!(matches!(scanner.damaged[0], FrameError::Checksum { .. }));
    }
}
