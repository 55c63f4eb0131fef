//! Messages from the guest agent to the runner.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GuestMessage {
    Hello(Hello),
    /// Which kernel this is, before any bundle: said by an agent booted without a manifest when
    /// it is ready to receive one (and the snapshot of a guest is taken), and said again after
    /// the bundle arrived, so that a restored guest proves it is the one that was saved.
    Ready(Ready),
    ObjectLoaded(ObjectLoaded),
    CaseResult(CaseResult),
    /// The same object through libbpf in the same guest (`harness --libbpf`).
    LibbpfLoaded(crate::libbpf::LibbpfObject),
    /// Something the agent wants in the report, not a result.
    Log {
        message: String,
    },
    /// The agent could not go on (manifest unreadable, object hash mismatch, ...).
    Fatal {
        message: String,
    },
    /// Last message before power-off.
    Done {
        agent_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    pub agent_version: String,
    pub kernel_name: String,
    /// `uname -r` inside the guest.
    pub kernel_release: String,
    /// `uname -m` inside the guest.
    pub machine: String,
    /// Size of `/sys/kernel/btf/vmlinux`, absent when the kernel exposes no BTF.
    pub kernel_btf_bytes: Option<u64>,
    /// The kernel's own uptime when the agent started, from /proc/uptime.
    pub uptime_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// `uname -r` inside the guest.
    pub kernel_release: String,
    /// `/proc/sys/kernel/random/boot_id`: a new one every boot, the same across a restore.
    pub boot_id: String,
    /// The kernel's own uptime, from /proc/uptime.
    pub uptime_ms: u64,
    /// The guest's realtime clock, in ms since the epoch.
    pub clock_unix_ms: u64,
    /// The agent sees the shared-memory region a bundle can travel in (an ivshmem PCI device):
    /// the host sends through it only then, else over the port.
    #[serde(default)]
    pub shared_region: bool,
}

/// Outcome of relocating and loading one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLoaded {
    pub object: String,
    pub sha256: String,
    /// Parsing the kernel BTF and relocating, in microseconds.
    pub relocate_us: u64,
    /// Every CO-RE relocation decision the engine made, in object order.
    pub relocations: Vec<RelocationReport>,
    pub programs: Vec<ProgramLoad>,
    /// Why the object's own BTF was not loaded, if it was not (the object still loads).
    pub btf_note: Option<String>,
}

/// One CO-RE relocation decision, in words a user and a diff can both read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelocationReport {
    pub program: String,
    pub insn: u32,
    /// For example `field_byte_offset`.
    pub kind: String,
    /// For example `struct task_struct::__state`.
    pub access: String,
    /// `value 24`, `poisoned (no match)`, `failed: ...`.
    pub decision: String,
}

impl RelocationReport {
    /// The one conversion from an engine decision, used by the agent (what a guest decided) and
    /// by the runner (what the host predicts from the kernel's BTF), so the two compare exactly.
    pub fn from_decision(program: &str, decision: &core_reloc::CoreDecision) -> RelocationReport {
        RelocationReport {
            program: program.to_string(),
            insn: decision.insn_index,
            kind: decision.kind.to_string(),
            access: decision.access.clone(),
            decision: match &decision.outcome {
                core_reloc::CoreOutcome::Value { target, .. } => format!("value {target}"),
                core_reloc::CoreOutcome::Poisoned { reason } => format!("poisoned ({reason})"),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramLoad {
    pub program: String,
    pub section: String,
    pub outcome: ProgramLoadOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ProgramLoadOutcome {
    Loaded {
        insns: u32,
        load_us: u64,
    },
    /// The kernel does not have this program type (or attach type): an expected gap.
    Unsupported {
        reason: String,
    },
    Rejected {
        error: String,
        verifier_log: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseResult {
    pub case_id: String,
    pub outcome: CaseOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CaseOutcome {
    Ran(Box<RunOutput>),
    Unsupported {
        reason: String,
    },
    /// The kernel refused the case's input (not the program): shown as its own outcome, never
    /// as a pass or as a program failure. `evidence` says how that was established.
    InputRefused {
        reason: String,
        evidence: String,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutput {
    pub retval: u32,
    #[serde(with = "crate::hexbytes")]
    pub data_out: Vec<u8>,
    #[serde(
        default,
        with = "crate::hexbytes::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ctx_out: Option<Vec<u8>>,
    /// Average run time per repetition as the kernel measured it.
    pub duration_ns: u32,
    pub maps: Vec<MapDump>,
    /// `bpf_printk` messages the case's programs wrote (guests only; shown with a failed
    /// trial, never compared).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub printk: Vec<String>,
    /// A packet sequence case: each packet's result, in order (`retval`/`data_out` above are
    /// the last packet's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_packet: Vec<PacketResult>,
}

/// What the program did with one packet of a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketResult {
    pub retval: u32,
    #[serde(with = "crate::hexbytes")]
    pub data_out: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapDump {
    pub name: String,
    /// `enum bpf_map_type` (0 in dumps from agents that did not say).
    #[serde(default)]
    pub map_type: u32,
    /// The map's value size; per-CPU values hold one 8-byte-rounded slot of it per CPU.
    #[serde(default)]
    pub value_size: u32,
    /// Arrays hold every index; their all-zero entries are left out of the dump, and a missing
    /// key then reads as zero.
    #[serde(default)]
    pub zero_entries_omitted: bool,
    /// Sorted by key so that dumps compare equal regardless of iteration order.
    pub entries: Vec<MapEntry>,
    /// Records a ring buffer received during the case, in the order they were produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<MapEvent>,
    /// Why this map's contents are not in the dump (fd values, no key iteration, excluded by
    /// the fixture): such a map is listed, never silently compared as empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_compared: Option<String>,
}

/// One record read from a ring buffer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MapEvent {
    #[serde(with = "crate::hexbytes")]
    pub data: Vec<u8>,
}

/// Bounds on what one case may dump (all maps together), so a huge map fails its case with a
/// clear error instead of a frame the channel cannot carry within the test timeout.
/// Measured by `scripts/bench-map-dump.sh`.
pub const MAX_DUMP_ENTRIES: usize = 16_384;
/// Key, value and event bytes of one case's dump, before hex encoding.
pub const MAX_DUMP_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MapEntry {
    #[serde(with = "crate::hexbytes")]
    pub key: Vec<u8>,
    #[serde(with = "crate::hexbytes")]
    pub value: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_from_before_whole_state_still_read() {
        let old = r#"{"name":"m","zero_entries_omitted":true,"entries":[{"key":"01000000","value":"02"}]}"#;
        let dump: MapDump = serde_json::from_str(old).unwrap();
        assert_eq!(dump.map_type, 0);
        assert!(dump.events.is_empty() && dump.not_compared.is_none());
        let json = serde_json::to_string(&dump).unwrap();
        assert!(
            !json.contains("events") && !json.contains("not_compared"),
            "{json}"
        );
    }

    #[test]
    fn input_refused_round_trips() {
        let outcome = CaseOutcome::InputRefused {
            reason: "r".into(),
            evidence: "e".into(),
        };
        let json = serde_json::to_string(&outcome).unwrap();
        assert_eq!(
            json,
            r#"{"status":"input_refused","reason":"r","evidence":"e"}"#
        );
        assert_eq!(serde_json::from_str::<CaseOutcome>(&json).unwrap(), outcome);
    }
}
