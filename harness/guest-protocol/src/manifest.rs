//! What the runner ships into every guest: the objects (by sha256) and the cases to run.

use serde::{Deserialize, Serialize};

/// Where the manifest sits inside the initramfs (and inside the bundle directory on the host).
pub const MANIFEST_PATH: &str = "harness/manifest.json";

/// Where an external kernel BTF (`btf = "path"` of a matrix entry) sits in the bundle.
pub const EXTERNAL_BTF_PATH: &str = "harness/kernel.btf";

/// The kernel BTF the agent relocates against when it is not the running kernel's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelBtfFile {
    /// Path relative to the bundle root ([`EXTERNAL_BTF_PATH`]).
    pub path: String,
    /// Lowercase hex sha256: the agent refuses a file whose bytes differ.
    pub sha256: String,
}

/// What the runner asks one guest to do: the objects to load and the cases to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`crate::PROTOCOL_VERSION`] of the runner that wrote it.
    pub protocol_version: u32,
    /// Matrix entry name, echoed back so a report can never be attributed to the wrong kernel.
    pub kernel_name: String,
    /// Objects to relocate and load, in order.
    pub objects: Vec<ObjectEntry>,
    /// Test runs, in order.
    pub cases: Vec<CaseSpec>,
    /// Say hello and stop: used to find out whether a guest boots at all (acceleration probe).
    #[serde(default)]
    pub probe_only: bool,
    /// Test-only fault injection (`panic`, `hang`, `crash`), used by the harness's own tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// The static libbpf loader's path in the bundle: each object then also goes through libbpf
    /// (`harness --libbpf`), and both loaders' translated programs are reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libbpf_loader: Option<String>,
    /// Also let the kernel relocate each program itself (`core_relos`, 5.17+) and report how
    /// its translation compares with ours (`harness --kernel-core`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kernel_core: bool,
    /// An external kernel BTF used instead of /sys/kernel/btf/vmlinux (a kernel without BTF,
    /// or a matrix entry's `btf = "path"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_btf: Option<KernelBtfFile>,
}

/// One object shipped in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// Short name, for example `packet_counter` for `programs/packet_counter.bpf.c`.
    pub name: String,
    /// Path relative to the bundle root, for example `harness/objects/packet_counter.bpf.o`.
    pub path: String,
    /// Lowercase hex sha256 of the object; the agent refuses an object whose bytes differ.
    pub sha256: String,
    /// A variant: bytes written over the initial value of `.rodata`/`.data` sections before
    /// the maps are created (and `.rodata` frozen), as a loader sets `const volatile` knobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_overrides: Vec<DataOverride>,
    /// What the object's own user space sets between open and load.
    #[serde(default, skip_serializing_if = "LoadSettings::is_empty")]
    pub load: LoadSettings,
}

/// What an object's user space sets between open and load, as libbpf's
/// `bpf_map__set_max_entries`, `bpf_map__set_value_size` and
/// `bpf_program__set_autoload(prog, false)` do: both loaders in a guest apply the same settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSettings {
    /// Map name → what it is created with instead of the object's own definition.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub maps: std::collections::BTreeMap<String, MapSetting>,
    /// Programs that are not loaded (nor relocated) at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_autoloaded: Vec<String>,
}

/// A map's size as user space sets it before load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapSetting {
    /// `bpf_map__set_max_entries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<u32>,
    /// `bpf_map__set_value_size` (a stack trace map's depth, for one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_size: Option<u32>,
}

impl LoadSettings {
    /// Nothing is set: the object loads as it is.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty() && self.not_autoloaded.is_empty()
    }
}

/// `bytes` at `offset` of global data section `section` (`.rodata`, `.data`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataOverride {
    /// The section whose initial value is overwritten.
    pub section: String,
    /// Byte offset in it.
    pub offset: u32,
    /// The bytes to write.
    #[serde(with = "crate::hexbytes")]
    pub bytes: Vec<u8>,
}

/// One BPF_PROG_TEST_RUN invocation. The runner turns fixtures into these; the agent runs them
/// without interpreting expectations (comparison happens on the host, in one place).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseSpec {
    /// Unique within the manifest: `<object>/<case name>`.
    pub id: String,
    /// The object (its manifest name) that holds the program.
    pub object: String,
    /// Program (function) name inside the object.
    pub program: String,
    /// Packet or input data (`data_in`).
    #[serde(with = "crate::hexbytes")]
    pub data_in: Vec<u8>,
    /// Context given to the program (`ctx_in`), when the program type takes one.
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
    /// How many times the kernel runs the program (`repeat`).
    #[serde(default = "one")]
    pub repeat: u32,
    /// Maps the case's expectation names: the agent fails the case if the object lacks one.
    /// Every readable map is dumped after the run whether named or not.
    #[serde(default)]
    pub dump_maps: Vec<String>,
    /// Maps whose contents legitimately vary (timestamps, ...): listed in the dump as not
    /// compared, never read. Set only by an explicit fixture key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_maps: Vec<String>,
    /// A packet sequence (from a capture): the program runs on each in order, on the same maps
    /// (reset once before the first), and every packet's result is reported. `data_in` is then
    /// unused.
    #[serde(
        default,
        with = "crate::hexbytes::list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub data_sequence: Vec<Vec<u8>>,
    /// Entries written into the maps after they are reset and before the program runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup_maps: Vec<MapWrite>,
    /// A traffic case: instead of BPF_PROG_TEST_RUN, the agent attaches the program (a raw
    /// tracepoint, or any tracing kind a workload attaches, as its section says), sends these flows in order over the loopback
    /// interface, detaches, then dumps the maps. `data_in`, `ctx_in` and `repeat` are unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Vec<TrafficFlow>>,
    /// A workload case: the agent attaches programs, a child process of its own performs the
    /// workload's actions, then the agent detaches and dumps the maps. `data_in`, `ctx_in` and
    /// `repeat` are unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
}

/// Real activity that tracing programs observe: the programs named in `attach` are attached
/// (in that order) while one child process of the agent performs `actions` in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Programs attached for the workload: the case's program first, then the others.
    pub attach: Vec<String>,
    /// What the workload process does, in order.
    pub actions: Vec<WorkloadAction>,
    /// A global variable of the object (in `.bss` or `.data`, 4 or 8 bytes) the agent sets to
    /// the workload process's pid (its thread group id) before the process starts, so the
    /// programs can ignore every other process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_variable: Option<String>,
}

/// One thing the workload process does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkloadAction {
    /// `count` times `openat(AT_FDCWD, path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644)` then
    /// `close` (the first one creates the file if it is missing; its directory is made first).
    Open {
        /// An absolute path.
        path: String,
        /// How many times.
        count: u32,
    },
    /// `count` times `execve("/proc/self/exe", ...)`: the process execs the agent's own binary,
    /// which goes on with the remaining actions in the same process (same pid).
    Exec {
        /// How many times.
        count: u32,
    },
    /// `count` TCP connections over loopback: listen on `127.0.0.1:port`, connect, accept,
    /// send `payload_len` bytes each way, close.
    Tcp4 {
        /// The listening port.
        port: u16,
        /// Connections.
        count: u32,
        /// Bytes sent each way per connection (byte `i` = `i % 251`).
        payload_len: u32,
    },
    /// The same over `[::1]:port`.
    Tcp6 {
        /// The listening port.
        port: u16,
        /// Connections.
        count: u32,
        /// Bytes sent each way per connection (byte `i` = `i % 251`).
        payload_len: u32,
    },
    /// UDP datagrams over IPv4 as a traffic flow sends them ([`UdpFlow`]), from the workload
    /// process.
    Udp4(UdpFlow),
    /// The same over IPv6.
    Udp6(UdpFlow),
}

/// One map entry a case writes before it runs. For per-CPU maps `value` is one CPU's value,
/// written into every CPU's slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapWrite {
    /// The map's name in the object.
    pub map: String,
    /// The key.
    #[serde(with = "crate::hexbytes")]
    pub key: Vec<u8>,
    /// The value.
    #[serde(with = "crate::hexbytes")]
    pub value: Vec<u8>,
}

/// One batch of real packets the agent sends during a traffic case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrafficFlow {
    /// UDP over IPv4, from 127.0.0.1:`sport` to 127.0.0.1:`dport`.
    Udp4(UdpFlow),
    /// UDP over IPv6, from [::1]:`sport` to [::1]:`dport`.
    Udp6(UdpFlow),
}

/// `count` datagrams of `payload_len` bytes ([`UdpFlow::payload`]) from a socket bound to
/// `sport` (held for the whole flow, so no other socket sends from it) to `dport`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpFlow {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Number of datagrams.
    pub count: u32,
    /// Payload bytes per datagram.
    pub payload_len: u32,
}

impl UdpFlow {
    /// The payload every datagram carries: byte `i` is `i % 251`.
    pub fn payload(&self) -> Vec<u8> {
        (0..self.payload_len).map(|i| (i % 251) as u8).collect()
    }
}

fn one() -> u32 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(traffic: Option<Vec<TrafficFlow>>) -> CaseSpec {
        CaseSpec {
            id: "o/c".into(),
            object: "o".into(),
            program: "p".into(),
            data_in: vec![],
            ctx_in: None,
            data_size_out: 0,
            ctx_size_out: 0,
            repeat: 1,
            dump_maps: vec!["drops".into()],
            ignore_maps: vec![],
            setup_maps: vec![],
            data_sequence: vec![],
            traffic,
            workload: None,
        }
    }

    #[test]
    fn traffic_round_trips() {
        let case = spec(Some(vec![
            TrafficFlow::Udp4(UdpFlow {
                sport: 61500,
                dport: 61001,
                count: 3,
                payload_len: 20,
            }),
            TrafficFlow::Udp6(UdpFlow {
                sport: 61501,
                dport: 61002,
                count: 1,
                payload_len: 0,
            }),
        ]));
        let json = serde_json::to_string(&case).unwrap();
        assert!(
            json.contains(r#""traffic":[{"kind":"udp4","sport":61500,"dport":61001,"count":3,"payload_len":20},{"kind":"udp6","#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<CaseSpec>(&json).unwrap(), case);
    }

    #[test]
    fn a_case_without_traffic_keeps_its_old_shape() {
        let case = spec(None);
        let json = serde_json::to_string(&case).unwrap();
        assert!(!json.contains("traffic"), "{json}");
        // A manifest written before the field existed still reads.
        let old = r#"{"id":"o/c","object":"o","program":"p","data_in":"","dump_maps":["drops"]}"#;
        assert_eq!(serde_json::from_str::<CaseSpec>(old).unwrap(), case);
    }

    #[test]
    fn unknown_flow_kinds_and_fields_are_refused() {
        let base = r#"{"id":"o/c","object":"o","program":"p","data_in":"","dump_maps":["drops"],"traffic":"#;
        for bad in [
            r#"[{"kind":"tcp4","sport":1,"dport":2,"count":1,"payload_len":0}]}"#,
            r#"[{"kind":"udp4","sport":1,"dport":2,"count":1,"payload_len":0,"ttl":3}]}"#,
            r#"[{"kind":"udp4","dport":2,"count":1,"payload_len":0}]}"#,
        ] {
            assert!(
                serde_json::from_str::<CaseSpec>(&format!("{base}{bad}")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn workload_round_trips_and_refuses_unknown_actions() {
        let mut case = spec(None);
        case.workload = Some(Workload {
            attach: vec!["p".into(), "q".into()],
            actions: vec![
                WorkloadAction::Open {
                    path: "/tmp/x".into(),
                    count: 2,
                },
                WorkloadAction::Exec { count: 1 },
                WorkloadAction::Tcp4 {
                    port: 61200,
                    count: 1,
                    payload_len: 3,
                },
                WorkloadAction::Udp6(UdpFlow {
                    sport: 61500,
                    dport: 61001,
                    count: 1,
                    payload_len: 0,
                }),
            ],
            pid_variable: Some("target_tgid".into()),
        });
        let json = serde_json::to_string(&case).unwrap();
        assert!(
            json.contains(
                r#""actions":[{"kind":"open","path":"/tmp/x","count":2},{"kind":"exec","count":1}"#
            ),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<CaseSpec>(&json).unwrap(), case);
        let bad = json.replace(r#""kind":"exec""#, r#""kind":"fork""#);
        assert!(serde_json::from_str::<CaseSpec>(&bad).is_err());
        assert!(!serde_json::to_string(&spec(None))
            .unwrap()
            .contains("workload"));
    }

    #[test]
    fn payload_is_the_documented_pattern() {
        let flow = UdpFlow {
            sport: 1,
            dport: 2,
            count: 1,
            payload_len: 253,
        };
        let p = flow.payload();
        assert_eq!(p.len(), 253);
        assert_eq!((p[0], p[250], p[251], p[252]), (0, 250, 0, 1));
    }
}
