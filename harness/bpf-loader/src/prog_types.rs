//! What each kernel program type needs and takes, in one table: its name, what a load of it
//! must carry (expected attach type, a BTF attach target, flags) and the shape of its
//! `BPF_PROG_TEST_RUN`. Which section names mean which type is the object's side of the story
//! (`core_reloc::object::section_types`); everything the kernel side needs per type is here.

use crate::consts::*;

/// How `BPF_PROG_TEST_RUN` of a program type is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestRunShape {
    /// A packet in `data_in` (and out), an optional context, a repeat count.
    Packet,
    /// A context alone: the kernel refuses data, repeat and a context out (raw tracepoints,
    /// syscall programs).
    ContextOnly,
    /// A context in and out with a repeat count, and no data (socket lookup).
    ContextRepeat,
    /// Whatever the case gives (types without a packet whose handler, if any, decides).
    AsGiven,
}

/// One program type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramType {
    /// `enum bpf_prog_type` value.
    pub id: u32,
    /// The kernel's name without `BPF_PROG_TYPE_`.
    pub name: &'static str,
    /// The expected attach type a minimal load (a feature probe) must give, if any.
    pub probe_attach_type: Option<u32>,
    /// Whether every load needs `attach_btf_id` (fentry/fexit, LSM, freplace, struct_ops).
    pub needs_btf_target: bool,
    /// Flags a minimal load must give (`BPF_F_SLEEPABLE` for syscall programs).
    pub probe_flags: u32,
    /// How its test run is asked.
    pub test_run: TestRunShape,
}

const fn row(id: u32, name: &'static str, test_run: TestRunShape) -> ProgramType {
    ProgramType {
        id,
        name,
        probe_attach_type: None,
        needs_btf_target: false,
        probe_flags: 0,
        test_run,
    }
}

const fn with_attach(mut t: ProgramType, attach: u32) -> ProgramType {
    t.probe_attach_type = Some(attach);
    t
}

const fn with_btf_target(mut t: ProgramType) -> ProgramType {
    t.needs_btf_target = true;
    t
}

use TestRunShape::{AsGiven, ContextOnly, ContextRepeat, Packet};

/// Every program type this loader knows, indexed by its id.
pub const PROGRAM_TYPES: [ProgramType; 33] = [
    row(BPF_PROG_TYPE_UNSPEC, "UNSPEC", AsGiven),
    row(BPF_PROG_TYPE_SOCKET_FILTER, "SOCKET_FILTER", Packet),
    row(BPF_PROG_TYPE_KPROBE, "KPROBE", AsGiven),
    row(BPF_PROG_TYPE_SCHED_CLS, "SCHED_CLS", Packet),
    row(BPF_PROG_TYPE_SCHED_ACT, "SCHED_ACT", Packet),
    row(BPF_PROG_TYPE_TRACEPOINT, "TRACEPOINT", AsGiven),
    row(BPF_PROG_TYPE_XDP, "XDP", Packet),
    row(BPF_PROG_TYPE_PERF_EVENT, "PERF_EVENT", AsGiven),
    row(BPF_PROG_TYPE_CGROUP_SKB, "CGROUP_SKB", Packet),
    row(BPF_PROG_TYPE_CGROUP_SOCK, "CGROUP_SOCK", AsGiven),
    row(BPF_PROG_TYPE_LWT_IN, "LWT_IN", Packet),
    row(BPF_PROG_TYPE_LWT_OUT, "LWT_OUT", Packet),
    row(BPF_PROG_TYPE_LWT_XMIT, "LWT_XMIT", Packet),
    row(BPF_PROG_TYPE_SOCK_OPS, "SOCK_OPS", AsGiven),
    row(BPF_PROG_TYPE_SK_SKB, "SK_SKB", Packet),
    row(BPF_PROG_TYPE_CGROUP_DEVICE, "CGROUP_DEVICE", AsGiven),
    row(BPF_PROG_TYPE_SK_MSG, "SK_MSG", AsGiven),
    row(BPF_PROG_TYPE_RAW_TRACEPOINT, "RAW_TRACEPOINT", ContextOnly),
    with_attach(
        row(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "CGROUP_SOCK_ADDR", AsGiven),
        BPF_CGROUP_INET4_CONNECT,
    ),
    row(BPF_PROG_TYPE_LWT_SEG6LOCAL, "LWT_SEG6LOCAL", Packet),
    row(BPF_PROG_TYPE_LIRC_MODE2, "LIRC_MODE2", AsGiven),
    row(BPF_PROG_TYPE_SK_REUSEPORT, "SK_REUSEPORT", AsGiven),
    row(BPF_PROG_TYPE_FLOW_DISSECTOR, "FLOW_DISSECTOR", Packet),
    row(BPF_PROG_TYPE_CGROUP_SYSCTL, "CGROUP_SYSCTL", AsGiven),
    row(
        BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE,
        "RAW_TRACEPOINT_WRITABLE",
        AsGiven,
    ),
    with_attach(
        row(BPF_PROG_TYPE_CGROUP_SOCKOPT, "CGROUP_SOCKOPT", AsGiven),
        BPF_CGROUP_GETSOCKOPT,
    ),
    with_btf_target(with_attach(
        row(BPF_PROG_TYPE_TRACING, "TRACING", AsGiven),
        BPF_TRACE_RAW_TP,
    )),
    with_btf_target(row(BPF_PROG_TYPE_STRUCT_OPS, "STRUCT_OPS", AsGiven)),
    with_btf_target(row(BPF_PROG_TYPE_EXT, "EXT", AsGiven)),
    with_btf_target(with_attach(
        row(BPF_PROG_TYPE_LSM, "LSM", AsGiven),
        BPF_LSM_MAC,
    )),
    with_attach(
        row(BPF_PROG_TYPE_SK_LOOKUP, "SK_LOOKUP", ContextRepeat),
        BPF_SK_LOOKUP,
    ),
    ProgramType {
        probe_flags: BPF_F_SLEEPABLE,
        ..row(BPF_PROG_TYPE_SYSCALL, "SYSCALL", ContextOnly)
    },
    with_attach(
        row(BPF_PROG_TYPE_NETFILTER, "NETFILTER", AsGiven),
        BPF_NETFILTER,
    ),
];

/// The row of `id`; a type newer than this table gets a row that asks nothing special.
pub fn program_type(id: u32) -> ProgramType {
    PROGRAM_TYPES
        .get(id as usize)
        .copied()
        .unwrap_or(row(id, "<unknown>", AsGiven))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sit_at_their_own_id() {
        for (index, t) in PROGRAM_TYPES.iter().enumerate() {
            assert_eq!(t.id as usize, index, "{}", t.name);
        }
    }

    #[test]
    fn the_table_says_what_each_family_needs() {
        assert_eq!(
            program_type(BPF_PROG_TYPE_XDP).test_run,
            TestRunShape::Packet
        );
        assert_eq!(
            program_type(BPF_PROG_TYPE_RAW_TRACEPOINT).test_run,
            TestRunShape::ContextOnly
        );
        assert_eq!(
            program_type(BPF_PROG_TYPE_SK_LOOKUP).test_run,
            TestRunShape::ContextRepeat
        );
        let tracing = program_type(BPF_PROG_TYPE_TRACING);
        assert!(tracing.needs_btf_target);
        assert_eq!(tracing.probe_attach_type, Some(BPF_TRACE_RAW_TP));
        assert_eq!(
            program_type(BPF_PROG_TYPE_SYSCALL).probe_flags,
            BPF_F_SLEEPABLE
        );
        assert!(!program_type(BPF_PROG_TYPE_SCHED_CLS).needs_btf_target);
    }

    #[test]
    fn an_unknown_type_asks_nothing_special() {
        let t = program_type(999);
        assert_eq!(t.id, 999);
        assert_eq!(t.name, "<unknown>");
        assert_eq!(t.test_run, TestRunShape::AsGiven);
        assert!(t.probe_attach_type.is_none() && !t.needs_btf_target);
    }
}
