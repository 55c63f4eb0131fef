//! Messages from the guest agent to the runner.

use serde::{Deserialize, Serialize};

/// One message from the agent, framed by [`crate::frame`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GuestMessage {
    /// First message: who is speaking, and on which kernel.
    Hello(Hello),
    /// Which kernel this is, before any bundle: said by an agent booted without a manifest when
    /// it is ready to receive one (and the snapshot of a guest is taken), and said again after
    /// the bundle arrived, so that a restored guest proves it is the one that was saved.
    Ready(Ready),
    /// One object relocated and loaded (or refused).
    ObjectLoaded(ObjectLoaded),
    /// One case run.
    CaseResult(CaseResult),
    /// The same object through libbpf in the same guest (`harness --libbpf`).
    LibbpfLoaded(crate::libbpf::LibbpfObject),
    /// The kernel's own CO-RE relocation of the same programs (`harness --kernel-core`).
    KernelCoreCompared(crate::kernel_core::KernelCoreObject),
    /// Something the agent wants in the report, not a result.
    Log {
        /// The text.
        message: String,
    },
    /// The agent could not go on (manifest unreadable, object hash mismatch, ...).
    Fatal {
        /// What went wrong.
        message: String,
    },
    /// Last message before power-off.
    Done {
        /// Time from the agent's start, in milliseconds.
        agent_ms: u64,
    },
}

/// The agent's first message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The agent's [`crate::PROTOCOL_VERSION`]; the runner refuses a mismatch.
    pub protocol_version: u32,
    /// The agent build's version.
    pub agent_version: String,
    /// The manifest's kernel name, echoed back.
    pub kernel_name: String,
    /// `uname -r` inside the guest.
    pub kernel_release: String,
    /// `uname -m` inside the guest.
    pub machine: String,
    /// Size of `/sys/kernel/btf/vmlinux`, absent when the kernel exposes no BTF.
    pub kernel_btf_bytes: Option<u64>,
    /// The kernel's own uptime when the agent started, from /proc/uptime.
    pub uptime_ms: u64,
    /// The BTF the agent relocates against: where it was read and its sha256. Absent when the
    /// agent found none (it then reports a fatal error), and from agents before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub btf: Option<BtfSource>,
}

/// Which kernel BTF a guest used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BtfSource {
    /// `/sys/kernel/btf/vmlinux`, or the bundle path of an external BTF.
    pub path: String,
    /// Whether it is the matrix entry's external BTF rather than the running kernel's own.
    pub external: bool,
    /// Its size in bytes.
    pub bytes: u64,
    /// Lowercase hex sha256 of the bytes.
    pub sha256: String,
}

/// A guest waiting for its bundle, or proving after it that it is the guest that was saved.
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
    /// The object's manifest name.
    pub object: String,
    /// SHA-256 of the bytes the agent loaded.
    pub sha256: String,
    /// Parsing the kernel BTF and relocating, in microseconds.
    pub relocate_us: u64,
    /// Every CO-RE relocation decision the engine made, in object order.
    pub relocations: Vec<RelocationReport>,
    /// Every program's load outcome.
    pub programs: Vec<ProgramLoad>,
    /// Why the object's own BTF was not loaded, if it was not (the object still loads).
    pub btf_note: Option<String>,
}

/// One CO-RE relocation decision, in words a user and a diff can both read. The agent (what a
/// guest decided) and the runner (what the host predicts) both fill it from the engine's
/// `CoreDecision` the same way (kind and outcome as the engine displays them), so the two
/// compare exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelocationReport {
    /// The program whose instruction was relocated.
    pub program: String,
    /// Instruction index in the linked program.
    pub insn: u32,
    /// For example `field_byte_offset`.
    pub kind: String,
    /// For example `struct task_struct::__state`.
    pub access: String,
    /// `value 24`, `poisoned (no match)`, `failed: ...`.
    pub decision: String,
}

impl RelocationReport {
    /// The report of one decision: the engine's kind name and outcome words (`value 24`), so
    /// what a guest decided and what the host predicts are written alike.
    pub fn new(
        program: &str,
        insn: u32,
        kind: impl std::fmt::Display,
        access: &str,
        decision: impl std::fmt::Display,
    ) -> RelocationReport {
        RelocationReport {
            program: program.to_string(),
            insn,
            kind: kind.to_string(),
            access: access.to_string(),
            decision: decision.to_string(),
        }
    }
}

/// How one program of an object fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramLoad {
    /// The program (function) name.
    pub program: String,
    /// Its ELF section.
    pub section: String,
    /// Loaded, unsupported here, or rejected.
    pub outcome: ProgramLoadOutcome,
}

/// The load of one program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ProgramLoadOutcome {
    /// The kernel accepted it.
    Loaded {
        /// Instructions after relocation.
        insns: u32,
        /// Time of the `BPF_PROG_LOAD` call, in microseconds.
        load_us: u64,
    },
    /// The kernel does not have this program type (or attach type): an expected gap.
    Unsupported {
        /// Why, in words.
        reason: String,
    },
    /// Relocation or the kernel refused it.
    Rejected {
        /// The headline (relocation error, errno and verifier summary).
        error: String,
        /// The verifier's log (bounded).
        verifier_log: String,
    },
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseResult {
    /// [`crate::CaseSpec::id`].
    pub case_id: String,
    /// What happened.
    pub outcome: CaseOutcome,
}

/// What happened to one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CaseOutcome {
    /// The program ran: its outputs.
    Ran(Box<RunOutput>),
    /// The kernel cannot run this case (no test run for the program type...): an expected gap.
    Unsupported {
        /// Why, in words.
        reason: String,
    },
    /// The kernel refused the case's input (not the program): shown as its own outcome, never
    /// as a pass or as a program failure. `evidence` says how that was established.
    InputRefused {
        /// What the kernel said.
        reason: String,
        /// How the agent told the input from the program apart.
        evidence: String,
    },
    /// The agent could not run the case.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// What one test run produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutput {
    /// The program's return value.
    pub retval: u32,
    /// The packet or data after the run.
    #[serde(with = "crate::hexbytes")]
    pub data_out: Vec<u8>,
    /// The context after the run, when one was given.
    #[serde(
        default,
        with = "crate::hexbytes::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ctx_out: Option<Vec<u8>>,
    /// Average run time per repetition as the kernel measured it.
    pub duration_ns: u32,
    /// Every readable map after the run.
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
    /// The program's return value.
    pub retval: u32,
    /// The packet after the run.
    #[serde(with = "crate::hexbytes")]
    pub data_out: Vec<u8>,
}

/// One map's contents after a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapDump {
    /// The map's name in the object.
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
    /// The record's bytes.
    #[serde(with = "crate::hexbytes")]
    pub data: Vec<u8>,
}

/// Bounds on what one case may dump (all maps together), so a huge map fails its case with a
/// clear error instead of a frame the channel cannot carry within the test timeout.
/// Measured by `scripts/bench-map-dump.sh`.
pub const MAX_DUMP_ENTRIES: usize = 16_384;
/// Key, value and event bytes of one case's dump, before hex encoding.
pub const MAX_DUMP_BYTES: usize = 1 << 20;

/// One key and its value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MapEntry {
    /// The key.
    #[serde(with = "crate::hexbytes")]
    pub key: Vec<u8>,
    /// The value (per-CPU maps: every CPU's slot, in CPU order).
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
