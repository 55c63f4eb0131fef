//! The contract between the runner (host) and the guest agent.
//!
//! Host → guest: a [`Manifest`] written into the initramfs as `/harness/manifest.json`, next to
//! the objects it names. Guest → host: [`GuestMessage`]s, each framed by [`frame`] as one line on
//! a serial port that the kernel does not use as its console. A guest restored from a ready
//! snapshot gets the same files over that port instead, as one [`BundleTransfer`]. Lines that are not frames (kernel
//! messages, noise, a frame cut by a crash) are skipped by [`FrameScanner`], so the channel
//! survives anything else that reaches the port.

#![deny(missing_docs)]

mod framing;
mod hexbytes;
pub mod kernel_core;
pub mod libbpf;
mod manifest;
mod messages;
mod transfer;

pub use framing::{
    frame, parse_region_notice, region_notice, FrameError, FrameScanner, FRAME_MAGIC,
    REGION_NOTICE_MAGIC,
};
pub use kernel_core::{KernelCoreObject, KernelCoreOutcome, KernelCoreProgram};
pub use libbpf::{LibbpfObject, LibbpfProgram, Xlated, LIBBPF_LOADER_PATH};
pub use manifest::{
    CaseSpec, DataOverride, KernelBtfFile, LoadSettings, Manifest, MapSetting, MapWrite,
    ObjectEntry, TrafficFlow, UdpFlow, Workload, WorkloadAction, EXTERNAL_BTF_PATH, MANIFEST_PATH,
};
pub use messages::{
    BtfSource, CaseOutcome, CaseResult, GuestMessage, Hello, MapDump, MapEntry, MapEvent,
    ObjectLoaded, PacketResult, ProgramLoad, ProgramLoadOutcome, Ready, RelocationReport,
    RunOutput, MAX_DUMP_BYTES, MAX_DUMP_ENTRIES,
};

pub use transfer::{
    decode as decode_bundle, decode_payload as decode_bundle_payload, is_header_magic,
    parse_header as parse_bundle_header, BundleFile, BundleHeader, BundleTransfer, TransferError,
    BUNDLE_HEADER_BYTES, BUNDLE_MAGIC, BUNDLE_SHARED_MAGIC, MAX_BUNDLE_BYTES, MAX_BUNDLE_FILES,
    SHARED_BUNDLE_BYTES, SHARED_REGION_BAR, SHARED_REGION_BYTES, SHARED_REGION_PCI_IDS,
    SHARED_RESULTS_BYTES, SHARED_RESULTS_OFFSET,
};

/// Bumped whenever a message or the manifest changes shape; the runner refuses a mismatch.
/// 4: the manifest's external `kernel_btf`, the hello's `btf`.
/// 5: workload cases (`CaseSpec::workload`), `--kernel-core` (`Manifest::kernel_core`,
/// `GuestMessage::KernelCoreCompared`).
pub const PROTOCOL_VERSION: u32 = 5;

/// The kernel command-line key that tells the agent which serial device carries frames.
pub const RESULTS_PORT_PARAM: &str = "harness.port";
