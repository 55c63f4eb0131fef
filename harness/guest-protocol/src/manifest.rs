//! What the runner ships into every guest: the objects (by sha256) and the cases to run.

use serde::{Deserialize, Serialize};

/// Where the manifest sits inside the initramfs (and inside the bundle directory on the host).
pub const MANIFEST_PATH: &str = "harness/manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub protocol_version: u32,
    /// Matrix entry name, echoed back so a report can never be attributed to the wrong kernel.
    pub kernel_name: String,
    pub objects: Vec<ObjectEntry>,
    pub cases: Vec<CaseSpec>,
    /// Say hello and stop: used to find out whether a guest boots at all (acceleration probe).
    #[serde(default)]
    pub probe_only: bool,
    /// Test-only fault injection (`panic`, `hang`, `crash`), used by the harness's own tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// Short name, for example `packet_counter` for `programs/packet_counter.bpf.c`.
    pub name: String,
    /// Path relative to the bundle root, for example `harness/objects/packet_counter.bpf.o`.
    pub path: String,
    /// Lowercase hex sha256 of the object; the agent refuses an object whose bytes differ.
    pub sha256: String,
}

/// One BPF_PROG_TEST_RUN invocation. The runner turns fixtures into these; the agent runs them
/// without interpreting expectations (comparison happens on the host, in one place).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseSpec {
    /// Unique within the manifest: `<object>/<case name>`.
    pub id: String,
    pub object: String,
    /// Program (function) name inside the object.
    pub program: String,
    #[serde(with = "crate::hexbytes")]
    pub data_in: Vec<u8>,
    #[serde(
        default,
        with = "crate::hexbytes::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ctx_in: Option<Vec<u8>>,
    /// Size of the buffer offered for data_out (0: same as data_in plus headroom).
    #[serde(default)]
    pub data_size_out: u32,
    /// Size of the buffer offered for ctx_out, when ctx_in is given.
    #[serde(default)]
    pub ctx_size_out: u32,
    #[serde(default = "one")]
    pub repeat: u32,
    /// Maps whose contents are dumped after the run (names as in the object).
    #[serde(default)]
    pub dump_maps: Vec<String>,
}

fn one() -> u32 {
    1
}
