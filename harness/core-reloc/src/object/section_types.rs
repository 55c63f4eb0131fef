//! The one table of program kinds: per libbpf section prefix, the program type, the expected
//! attach type, the load flags, how the attach target is resolved and whether
//! `BPF_PROG_TEST_RUN` applies, following libbpf's section naming conventions.

use crate::btf::Kind;

/// `enum bpf_prog_type` values.
pub mod prog_type {
    /// `BPF_PROG_TYPE_UNSPEC`.
    pub const UNSPEC: u32 = 0;
    /// `BPF_PROG_TYPE_SOCKET_FILTER`.
    pub const SOCKET_FILTER: u32 = 1;
    /// `BPF_PROG_TYPE_KPROBE`.
    pub const KPROBE: u32 = 2;
    /// `BPF_PROG_TYPE_SCHED_CLS`.
    pub const SCHED_CLS: u32 = 3;
    /// `BPF_PROG_TYPE_SCHED_ACT`.
    pub const SCHED_ACT: u32 = 4;
    /// `BPF_PROG_TYPE_TRACEPOINT`.
    pub const TRACEPOINT: u32 = 5;
    /// `BPF_PROG_TYPE_XDP`.
    pub const XDP: u32 = 6;
    /// `BPF_PROG_TYPE_PERF_EVENT`.
    pub const PERF_EVENT: u32 = 7;
    /// `BPF_PROG_TYPE_CGROUP_SKB`.
    pub const CGROUP_SKB: u32 = 8;
    /// `BPF_PROG_TYPE_CGROUP_SOCK`.
    pub const CGROUP_SOCK: u32 = 9;
    /// `BPF_PROG_TYPE_LWT_IN`.
    pub const LWT_IN: u32 = 10;
    /// `BPF_PROG_TYPE_LWT_OUT`.
    pub const LWT_OUT: u32 = 11;
    /// `BPF_PROG_TYPE_LWT_XMIT`.
    pub const LWT_XMIT: u32 = 12;
    /// `BPF_PROG_TYPE_SOCK_OPS`.
    pub const SOCK_OPS: u32 = 13;
    /// `BPF_PROG_TYPE_SK_SKB`.
    pub const SK_SKB: u32 = 14;
    /// `BPF_PROG_TYPE_CGROUP_DEVICE`.
    pub const CGROUP_DEVICE: u32 = 15;
    /// `BPF_PROG_TYPE_SK_MSG`.
    pub const SK_MSG: u32 = 16;
    /// `BPF_PROG_TYPE_RAW_TRACEPOINT`.
    pub const RAW_TRACEPOINT: u32 = 17;
    /// `BPF_PROG_TYPE_CGROUP_SOCK_ADDR`.
    pub const CGROUP_SOCK_ADDR: u32 = 18;
    /// `BPF_PROG_TYPE_LWT_SEG6LOCAL`.
    pub const LWT_SEG6LOCAL: u32 = 19;
    /// `BPF_PROG_TYPE_LIRC_MODE2`.
    pub const LIRC_MODE2: u32 = 20;
    /// `BPF_PROG_TYPE_SK_REUSEPORT`.
    pub const SK_REUSEPORT: u32 = 21;
    /// `BPF_PROG_TYPE_FLOW_DISSECTOR`.
    pub const FLOW_DISSECTOR: u32 = 22;
    /// `BPF_PROG_TYPE_CGROUP_SYSCTL`.
    pub const CGROUP_SYSCTL: u32 = 23;
    /// `BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE`.
    pub const RAW_TRACEPOINT_WRITABLE: u32 = 24;
    /// `BPF_PROG_TYPE_CGROUP_SOCKOPT`.
    pub const CGROUP_SOCKOPT: u32 = 25;
    /// `BPF_PROG_TYPE_TRACING`.
    pub const TRACING: u32 = 26;
    /// `BPF_PROG_TYPE_STRUCT_OPS`.
    pub const STRUCT_OPS: u32 = 27;
    /// `BPF_PROG_TYPE_EXT`.
    pub const EXT: u32 = 28;
    /// `BPF_PROG_TYPE_LSM`.
    pub const LSM: u32 = 29;
    /// `BPF_PROG_TYPE_SK_LOOKUP`.
    pub const SK_LOOKUP: u32 = 30;
    /// `BPF_PROG_TYPE_SYSCALL`.
    pub const SYSCALL: u32 = 31;
    /// `BPF_PROG_TYPE_NETFILTER`.
    pub const NETFILTER: u32 = 32;
}

/// `enum bpf_attach_type` values used as expected attach types.
pub mod attach_type {
    /// `BPF_CGROUP_INET_INGRESS`.
    pub const CGROUP_INET_INGRESS: u32 = 0;
    /// `BPF_CGROUP_INET_EGRESS`.
    pub const CGROUP_INET_EGRESS: u32 = 1;
    /// `BPF_CGROUP_INET_SOCK_CREATE`.
    pub const CGROUP_INET_SOCK_CREATE: u32 = 2;
    /// `BPF_CGROUP_SOCK_OPS`.
    pub const CGROUP_SOCK_OPS: u32 = 3;
    /// `BPF_SK_SKB_STREAM_PARSER`.
    pub const SK_SKB_STREAM_PARSER: u32 = 4;
    /// `BPF_SK_SKB_STREAM_VERDICT`.
    pub const SK_SKB_STREAM_VERDICT: u32 = 5;
    /// `BPF_CGROUP_DEVICE`.
    pub const CGROUP_DEVICE: u32 = 6;
    /// `BPF_SK_MSG_VERDICT`.
    pub const SK_MSG_VERDICT: u32 = 7;
    /// `BPF_CGROUP_INET4_BIND`.
    pub const CGROUP_INET4_BIND: u32 = 8;
    /// `BPF_CGROUP_INET6_BIND`.
    pub const CGROUP_INET6_BIND: u32 = 9;
    /// `BPF_CGROUP_INET4_CONNECT`.
    pub const CGROUP_INET4_CONNECT: u32 = 10;
    /// `BPF_CGROUP_INET6_CONNECT`.
    pub const CGROUP_INET6_CONNECT: u32 = 11;
    /// `BPF_CGROUP_INET4_POST_BIND`.
    pub const CGROUP_INET4_POST_BIND: u32 = 12;
    /// `BPF_CGROUP_INET6_POST_BIND`.
    pub const CGROUP_INET6_POST_BIND: u32 = 13;
    /// `BPF_CGROUP_UDP4_SENDMSG`.
    pub const CGROUP_UDP4_SENDMSG: u32 = 14;
    /// `BPF_CGROUP_UDP6_SENDMSG`.
    pub const CGROUP_UDP6_SENDMSG: u32 = 15;
    /// `BPF_LIRC_MODE2`.
    pub const LIRC_MODE2: u32 = 16;
    /// `BPF_FLOW_DISSECTOR`.
    pub const FLOW_DISSECTOR: u32 = 17;
    /// `BPF_CGROUP_SYSCTL`.
    pub const CGROUP_SYSCTL: u32 = 18;
    /// `BPF_CGROUP_UDP4_RECVMSG`.
    pub const CGROUP_UDP4_RECVMSG: u32 = 19;
    /// `BPF_CGROUP_UDP6_RECVMSG`.
    pub const CGROUP_UDP6_RECVMSG: u32 = 20;
    /// `BPF_CGROUP_GETSOCKOPT`.
    pub const CGROUP_GETSOCKOPT: u32 = 21;
    /// `BPF_CGROUP_SETSOCKOPT`.
    pub const CGROUP_SETSOCKOPT: u32 = 22;
    /// `BPF_TRACE_RAW_TP`.
    pub const TRACE_RAW_TP: u32 = 23;
    /// `BPF_TRACE_FENTRY`.
    pub const TRACE_FENTRY: u32 = 24;
    /// `BPF_TRACE_FEXIT`.
    pub const TRACE_FEXIT: u32 = 25;
    /// `BPF_MODIFY_RETURN`.
    pub const MODIFY_RETURN: u32 = 26;
    /// `BPF_LSM_MAC`.
    pub const LSM_MAC: u32 = 27;
    /// `BPF_TRACE_ITER`.
    pub const TRACE_ITER: u32 = 28;
    /// `BPF_CGROUP_INET4_GETPEERNAME`.
    pub const CGROUP_INET4_GETPEERNAME: u32 = 29;
    /// `BPF_CGROUP_INET6_GETPEERNAME`.
    pub const CGROUP_INET6_GETPEERNAME: u32 = 30;
    /// `BPF_CGROUP_INET4_GETSOCKNAME`.
    pub const CGROUP_INET4_GETSOCKNAME: u32 = 31;
    /// `BPF_CGROUP_INET6_GETSOCKNAME`.
    pub const CGROUP_INET6_GETSOCKNAME: u32 = 32;
    /// `BPF_XDP_DEVMAP`.
    pub const XDP_DEVMAP: u32 = 33;
    /// `BPF_CGROUP_INET_SOCK_RELEASE`.
    pub const CGROUP_INET_SOCK_RELEASE: u32 = 34;
    /// `BPF_XDP_CPUMAP`.
    pub const XDP_CPUMAP: u32 = 35;
    /// `BPF_SK_LOOKUP`.
    pub const SK_LOOKUP: u32 = 36;
    /// `BPF_XDP`.
    pub const XDP: u32 = 37;
    /// `BPF_SK_SKB_VERDICT`.
    pub const SK_SKB_VERDICT: u32 = 38;
    /// `BPF_SK_REUSEPORT_SELECT`.
    pub const SK_REUSEPORT_SELECT: u32 = 39;
    /// `BPF_SK_REUSEPORT_SELECT_OR_MIGRATE`.
    pub const SK_REUSEPORT_SELECT_OR_MIGRATE: u32 = 40;
    /// `BPF_NETFILTER`.
    pub const NETFILTER: u32 = 45;
    /// `BPF_TRACE_KPROBE_MULTI`.
    pub const TRACE_KPROBE_MULTI: u32 = 42;
    /// `BPF_LSM_CGROUP`.
    pub const LSM_CGROUP: u32 = 43;
    /// `BPF_TCX_INGRESS`.
    pub const TCX_INGRESS: u32 = 46;
    /// `BPF_TCX_EGRESS`.
    pub const TCX_EGRESS: u32 = 47;
    /// `BPF_TRACE_UPROBE_MULTI`.
    pub const TRACE_UPROBE_MULTI: u32 = 48;
    /// `BPF_CGROUP_UNIX_CONNECT`.
    pub const CGROUP_UNIX_CONNECT: u32 = 49;
    /// `BPF_CGROUP_UNIX_SENDMSG`.
    pub const CGROUP_UNIX_SENDMSG: u32 = 50;
    /// `BPF_CGROUP_UNIX_RECVMSG`.
    pub const CGROUP_UNIX_RECVMSG: u32 = 51;
    /// `BPF_CGROUP_UNIX_GETPEERNAME`.
    pub const CGROUP_UNIX_GETPEERNAME: u32 = 52;
    /// `BPF_CGROUP_UNIX_GETSOCKNAME`.
    pub const CGROUP_UNIX_GETSOCKNAME: u32 = 53;
    /// `BPF_TRACE_KPROBE_SESSION`.
    pub const TRACE_KPROBE_SESSION: u32 = 56;
}

/// `BPF_F_SLEEPABLE` program flag.
pub const PROG_FLAG_SLEEPABLE: u32 = 1 << 4;
/// `BPF_F_XDP_HAS_FRAGS` program flag.
pub const PROG_FLAG_XDP_HAS_FRAGS: u32 = 1 << 5;

/// How the load-time attach target (`attach_btf_id`) of a program is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachTarget {
    /// Nothing to resolve at load time (kprobes, tracepoints, packet programs...).
    None,
    /// A type of the kernel's BTF named `<prefix><section target>`: a FUNC for fentry, fexit,
    /// fmod_ret (no prefix), lsm (`bpf_lsm_`) and iter (`bpf_iter_`), the `btf_trace_` TYPEDEF
    /// for tp_btf.
    KernelBtf {
        /// Prepended to the section's target to name the type.
        prefix: &'static str,
        /// The kind of the type.
        kind: Kind,
    },
    /// A function of another loaded BPF program (`freplace`): needs that program's fd.
    Program,
    /// A `struct_ops` member: resolved through the struct_ops map.
    StructOps,
}

/// What a section name says about its programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionType {
    /// `BPF_PROG_TYPE_*`.
    pub program_type: u32,
    /// `BPF_*` attach type, when the type needs one.
    pub expected_attach_type: Option<u32>,
    /// The part after the prefix (`kprobe/<function>`, `tp_btf/<event>`), if it names one.
    pub attach_to: Option<String>,
    /// `BPF_F_*` load flags (sleepable, xdp frags).
    pub prog_flags: u32,
    /// How `attach_btf_id` is found at load time.
    pub attach_target: AttachTarget,
    /// `BPF_PROG_TEST_RUN` exists for programs of this section (on kernels that have the type).
    pub test_run: bool,
}

/// A BTF type of the kernel to give as `attach_btf_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelBtfTarget {
    /// `Some` for `module:function` targets other than `vmlinux:`.
    pub module: Option<String>,
    /// The type's name.
    pub name: String,
    /// Its kind (FUNC, or TYPEDEF for `btf_trace_*`).
    pub kind: Kind,
}

impl KernelBtfTarget {
    /// Its id in `kernel` (the vmlinux BTF); `None` when vmlinux has no such type, or the
    /// target lives in a module (module BTF is not searched).
    pub fn find_in(&self, kernel: &crate::btf::Btf) -> Option<u32> {
        if self.module.is_some() {
            return None;
        }
        kernel.ids_by_name(self.kind, &self.name).first().copied()
    }
}

impl SectionType {
    /// The kernel BTF type this program attaches to, if its section names one.
    pub fn kernel_btf_target(&self) -> Option<KernelBtfTarget> {
        let AttachTarget::KernelBtf { prefix, kind } = self.attach_target else {
            return None;
        };
        let target = self.attach_to.as_deref()?;
        let (module, name) = match target.split_once(':') {
            Some(("vmlinux", name)) => (None, name),
            Some((module, name)) => (Some(module.to_string()), name),
            None => (None, target),
        };
        Some(KernelBtfTarget {
            module,
            name: format!("{prefix}{name}"),
            kind,
        })
    }
}

/// Whether `BPF_PROG_TEST_RUN` is implemented for a program type (and, for tracing programs,
/// attach type) in some kernel: packet types, raw tracepoints, socket lookup, syscall, netfilter,
/// and fentry/fexit/fmod_ret (which run the kernel's `bpf_fentry_test*` functions).
pub fn test_run_applies(program_type: u32, expected_attach_type: Option<u32>) -> bool {
    match program_type {
        pt::SOCKET_FILTER
        | pt::SCHED_CLS
        | pt::SCHED_ACT
        | pt::XDP
        | pt::CGROUP_SKB
        | pt::LWT_IN
        | pt::LWT_OUT
        | pt::LWT_XMIT
        | pt::LWT_SEG6LOCAL
        | pt::FLOW_DISSECTOR
        | pt::RAW_TRACEPOINT
        | pt::SK_LOOKUP
        | pt::SYSCALL
        | pt::NETFILTER => true,
        pt::TRACING => matches!(
            expected_attach_type,
            Some(at::TRACE_FENTRY | at::TRACE_FEXIT | at::MODIFY_RETURN)
        ),
        _ => false,
    }
}

/// How a table entry matches a section name.
#[derive(Clone, Copy)]
enum Match {
    /// Exactly this name, or this name followed by `/anything`.
    Word,
    /// This prefix (ending in `/`); the rest is the attach target.
    Target,
}

struct Entry {
    pattern: &'static str,
    how: Match,
    program_type: u32,
    attach: Option<u32>,
    flags: u32,
    target: AttachTarget,
}

const fn e(pattern: &'static str, how: Match, program_type: u32, attach: Option<u32>) -> Entry {
    Entry {
        pattern,
        how,
        program_type,
        attach,
        flags: 0,
        target: AttachTarget::None,
    }
}

/// A section whose target is a kernel BTF type `<prefix><target>` of `kind`.
const fn btf(prefix: &'static str, kind: Kind, entry: Entry) -> Entry {
    Entry {
        target: AttachTarget::KernelBtf { prefix, kind },
        ..entry
    }
}

const fn with_target(target: AttachTarget, entry: Entry) -> Entry {
    Entry { target, ..entry }
}

const fn sleepable(entry: Entry) -> Entry {
    Entry {
        flags: PROG_FLAG_SLEEPABLE,
        ..entry
    }
}

use attach_type as at;
use prog_type as pt;
use Match::{Target, Word};

/// Ordered: more specific names before their prefixes.
const TABLE: &[Entry] = &[
    e("socket", Word, pt::SOCKET_FILTER, None),
    e(
        "sk_reuseport/migrate",
        Word,
        pt::SK_REUSEPORT,
        Some(at::SK_REUSEPORT_SELECT_OR_MIGRATE),
    ),
    e(
        "sk_reuseport",
        Word,
        pt::SK_REUSEPORT,
        Some(at::SK_REUSEPORT_SELECT),
    ),
    e(
        "kprobe.multi",
        Word,
        pt::KPROBE,
        Some(at::TRACE_KPROBE_MULTI),
    ),
    e(
        "kretprobe.multi",
        Word,
        pt::KPROBE,
        Some(at::TRACE_KPROBE_MULTI),
    ),
    e(
        "uprobe.multi.s",
        Word,
        pt::KPROBE,
        Some(at::TRACE_UPROBE_MULTI),
    ),
    e(
        "uretprobe.multi.s",
        Word,
        pt::KPROBE,
        Some(at::TRACE_UPROBE_MULTI),
    ),
    e(
        "uprobe.multi",
        Word,
        pt::KPROBE,
        Some(at::TRACE_UPROBE_MULTI),
    ),
    e(
        "uretprobe.multi",
        Word,
        pt::KPROBE,
        Some(at::TRACE_UPROBE_MULTI),
    ),
    e(
        "kprobe.session",
        Word,
        pt::KPROBE,
        Some(at::TRACE_KPROBE_SESSION),
    ),
    e("kprobe", Word, pt::KPROBE, None),
    e("kretprobe", Word, pt::KPROBE, None),
    sleepable(e("uprobe.s", Word, pt::KPROBE, None)),
    sleepable(e("uretprobe.s", Word, pt::KPROBE, None)),
    e("uprobe", Word, pt::KPROBE, None),
    e("uretprobe", Word, pt::KPROBE, None),
    e("ksyscall", Word, pt::KPROBE, None),
    e("kretsyscall", Word, pt::KPROBE, None),
    e("usdt", Word, pt::KPROBE, None),
    e("tc/ingress", Word, pt::SCHED_CLS, Some(at::TCX_INGRESS)),
    e("tc/egress", Word, pt::SCHED_CLS, Some(at::TCX_EGRESS)),
    e("tcx/ingress", Word, pt::SCHED_CLS, Some(at::TCX_INGRESS)),
    e("tcx/egress", Word, pt::SCHED_CLS, Some(at::TCX_EGRESS)),
    e("tc", Word, pt::SCHED_CLS, None),
    e("classifier", Word, pt::SCHED_CLS, None),
    e("action", Word, pt::SCHED_ACT, None),
    e("tracepoint/", Target, pt::TRACEPOINT, None),
    e("tp/", Target, pt::TRACEPOINT, None),
    // Bare, as libbpf's `tracepoint+`/`tp+` allow (the attach point is given at attach time).
    e("tracepoint", Word, pt::TRACEPOINT, None),
    e("tp", Word, pt::TRACEPOINT, None),
    e(
        "raw_tracepoint.w/",
        Target,
        pt::RAW_TRACEPOINT_WRITABLE,
        None,
    ),
    e("raw_tp.w/", Target, pt::RAW_TRACEPOINT_WRITABLE, None),
    e("raw_tracepoint/", Target, pt::RAW_TRACEPOINT, None),
    e("raw_tp/", Target, pt::RAW_TRACEPOINT, None),
    e("raw_tracepoint", Word, pt::RAW_TRACEPOINT, None),
    e("raw_tp", Word, pt::RAW_TRACEPOINT, None),
    btf(
        "btf_trace_",
        Kind::Typedef,
        e("tp_btf/", Target, pt::TRACING, Some(at::TRACE_RAW_TP)),
    ),
    btf(
        "",
        Kind::Func,
        sleepable(e("fentry.s/", Target, pt::TRACING, Some(at::TRACE_FENTRY))),
    ),
    btf(
        "",
        Kind::Func,
        sleepable(e("fexit.s/", Target, pt::TRACING, Some(at::TRACE_FEXIT))),
    ),
    btf(
        "",
        Kind::Func,
        sleepable(e(
            "fmod_ret.s/",
            Target,
            pt::TRACING,
            Some(at::MODIFY_RETURN),
        )),
    ),
    btf(
        "",
        Kind::Func,
        e("fentry/", Target, pt::TRACING, Some(at::TRACE_FENTRY)),
    ),
    btf(
        "",
        Kind::Func,
        e("fexit/", Target, pt::TRACING, Some(at::TRACE_FEXIT)),
    ),
    btf(
        "",
        Kind::Func,
        e("fmod_ret/", Target, pt::TRACING, Some(at::MODIFY_RETURN)),
    ),
    btf(
        "bpf_iter_",
        Kind::Func,
        sleepable(e("iter.s/", Target, pt::TRACING, Some(at::TRACE_ITER))),
    ),
    btf(
        "bpf_iter_",
        Kind::Func,
        e("iter/", Target, pt::TRACING, Some(at::TRACE_ITER)),
    ),
    with_target(AttachTarget::Program, e("freplace/", Target, pt::EXT, None)),
    btf(
        "bpf_lsm_",
        Kind::Func,
        sleepable(e("lsm.s/", Target, pt::LSM, Some(at::LSM_MAC))),
    ),
    btf(
        "bpf_lsm_",
        Kind::Func,
        e("lsm/", Target, pt::LSM, Some(at::LSM_MAC)),
    ),
    btf(
        "bpf_lsm_",
        Kind::Func,
        e("lsm_cgroup/", Target, pt::LSM, Some(at::LSM_CGROUP)),
    ),
    e("xdp.frags/devmap", Word, pt::XDP, Some(at::XDP_DEVMAP)),
    e("xdp/devmap", Word, pt::XDP, Some(at::XDP_DEVMAP)),
    e("xdp.frags/cpumap", Word, pt::XDP, Some(at::XDP_CPUMAP)),
    e("xdp/cpumap", Word, pt::XDP, Some(at::XDP_CPUMAP)),
    e("xdp.frags", Word, pt::XDP, Some(at::XDP)),
    e("xdp", Word, pt::XDP, Some(at::XDP)),
    e("perf_event", Word, pt::PERF_EVENT, None),
    e("lwt_in", Word, pt::LWT_IN, None),
    e("lwt_out", Word, pt::LWT_OUT, None),
    e("lwt_xmit", Word, pt::LWT_XMIT, None),
    e("lwt_seg6local", Word, pt::LWT_SEG6LOCAL, None),
    e("sockops", Word, pt::SOCK_OPS, Some(at::CGROUP_SOCK_OPS)),
    e(
        "sk_skb/stream_parser",
        Word,
        pt::SK_SKB,
        Some(at::SK_SKB_STREAM_PARSER),
    ),
    e(
        "sk_skb/stream_verdict",
        Word,
        pt::SK_SKB,
        Some(at::SK_SKB_STREAM_VERDICT),
    ),
    e("sk_skb/verdict", Word, pt::SK_SKB, Some(at::SK_SKB_VERDICT)),
    e("sk_skb", Word, pt::SK_SKB, None),
    e("sk_msg", Word, pt::SK_MSG, Some(at::SK_MSG_VERDICT)),
    e("lirc_mode2", Word, pt::LIRC_MODE2, Some(at::LIRC_MODE2)),
    e(
        "flow_dissector",
        Word,
        pt::FLOW_DISSECTOR,
        Some(at::FLOW_DISSECTOR),
    ),
    e(
        "cgroup_skb/ingress",
        Word,
        pt::CGROUP_SKB,
        Some(at::CGROUP_INET_INGRESS),
    ),
    e(
        "cgroup_skb/egress",
        Word,
        pt::CGROUP_SKB,
        Some(at::CGROUP_INET_EGRESS),
    ),
    e("cgroup/skb", Word, pt::CGROUP_SKB, None),
    e(
        "cgroup/sock_create",
        Word,
        pt::CGROUP_SOCK,
        Some(at::CGROUP_INET_SOCK_CREATE),
    ),
    e(
        "cgroup/sock_release",
        Word,
        pt::CGROUP_SOCK,
        Some(at::CGROUP_INET_SOCK_RELEASE),
    ),
    e(
        "cgroup/sock",
        Word,
        pt::CGROUP_SOCK,
        Some(at::CGROUP_INET_SOCK_CREATE),
    ),
    e(
        "cgroup/post_bind4",
        Word,
        pt::CGROUP_SOCK,
        Some(at::CGROUP_INET4_POST_BIND),
    ),
    e(
        "cgroup/post_bind6",
        Word,
        pt::CGROUP_SOCK,
        Some(at::CGROUP_INET6_POST_BIND),
    ),
    e(
        "cgroup/dev",
        Word,
        pt::CGROUP_DEVICE,
        Some(at::CGROUP_DEVICE),
    ),
    e(
        "cgroup/bind4",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_INET4_BIND),
    ),
    e(
        "cgroup/bind6",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_INET6_BIND),
    ),
    e(
        "cgroup/connect4",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_INET4_CONNECT),
    ),
    e(
        "cgroup/connect_unix",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_UNIX_CONNECT),
    ),
    e(
        "cgroup/sendmsg_unix",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_UNIX_SENDMSG),
    ),
    e(
        "cgroup/recvmsg_unix",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_UNIX_RECVMSG),
    ),
    e(
        "cgroup/getpeername_unix",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_UNIX_GETPEERNAME),
    ),
    e(
        "cgroup/getsockname_unix",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_UNIX_GETSOCKNAME),
    ),
    e(
        "cgroup/connect6",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_INET6_CONNECT),
    ),
    e(
        "cgroup/sendmsg4",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_UDP4_SENDMSG),
    ),
    e(
        "cgroup/sendmsg6",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_UDP6_SENDMSG),
    ),
    e(
        "cgroup/recvmsg4",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_UDP4_RECVMSG),
    ),
    e(
        "cgroup/recvmsg6",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_UDP6_RECVMSG),
    ),
    e(
        "cgroup/getpeername4",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_INET4_GETPEERNAME),
    ),
    e(
        "cgroup/getpeername6",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_INET6_GETPEERNAME),
    ),
    e(
        "cgroup/getsockname4",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_INET4_GETSOCKNAME),
    ),
    e(
        "cgroup/getsockname6",
        Word,
        pt::CGROUP_SOCK_ADDR,
        Some(at::CGROUP_INET6_GETSOCKNAME),
    ),
    e(
        "cgroup/sysctl",
        Word,
        pt::CGROUP_SYSCTL,
        Some(at::CGROUP_SYSCTL),
    ),
    e(
        "cgroup/getsockopt",
        Word,
        pt::CGROUP_SOCKOPT,
        Some(at::CGROUP_GETSOCKOPT),
    ),
    e(
        "cgroup/setsockopt",
        Word,
        pt::CGROUP_SOCKOPT,
        Some(at::CGROUP_SETSOCKOPT),
    ),
    e("sk_lookup", Word, pt::SK_LOOKUP, Some(at::SK_LOOKUP)),
    sleepable(e("syscall", Word, pt::SYSCALL, None)),
    with_target(
        AttachTarget::StructOps,
        e("struct_ops/", Target, pt::STRUCT_OPS, None),
    ),
    with_target(
        AttachTarget::StructOps,
        e("struct_ops", Word, pt::STRUCT_OPS, None),
    ),
    e("netfilter", Word, pt::NETFILTER, Some(at::NETFILTER)),
];

/// Classifies a program section name; `None` when it follows no known convention. A leading
/// `?` (libbpf: not loaded unless the user turns autoload on) is ignored for the kind.
pub fn section_type(section: &str) -> Option<SectionType> {
    let section = section.strip_prefix('?').unwrap_or(section);
    for entry in TABLE {
        let attach_to = match entry.how {
            Word => match section.strip_prefix(entry.pattern) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => None,
                _ => continue,
            },
            Target => match section.strip_prefix(entry.pattern) {
                Some(rest) if !rest.is_empty() => Some(rest.to_string()),
                _ => continue,
            },
        };
        let mut flags = entry.flags;
        if section.starts_with("xdp.frags") {
            flags |= PROG_FLAG_XDP_HAS_FRAGS;
        }
        let attach_to = match entry.program_type {
            pt::RAW_TRACEPOINT | pt::RAW_TRACEPOINT_WRITABLE | pt::TRACING | pt::EXT | pt::LSM => {
                attach_to
            }
            _ => None,
        };
        return Some(SectionType {
            program_type: entry.program_type,
            expected_attach_type: entry.attach,
            attach_to,
            prog_flags: flags,
            attach_target: entry.target,
            test_run: test_run_applies(entry.program_type, entry.attach),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (program type, expected attach type, flags, kernel BTF target, test run)
    type Row = (u32, Option<u32>, u32, Option<(String, Kind)>, bool);

    fn row(section: &str) -> Row {
        let t = section_type(section).unwrap_or_else(|| panic!("{section} unknown"));
        let target = t.kernel_btf_target().map(|k| (k.name, k.kind));
        (
            t.program_type,
            t.expected_attach_type,
            t.prog_flags,
            target,
            t.test_run,
        )
    }

    #[test]
    fn libbpf_sections() {
        let func = |n: &str| Some((n.to_string(), Kind::Func));
        let cases: &[(&str, Row)] = &[
            ("kprobe/do_unlinkat", (pt::KPROBE, None, 0, None, false)),
            ("kretprobe/do_unlinkat", (pt::KPROBE, None, 0, None, false)),
            ("kprobe", (pt::KPROBE, None, 0, None, false)),
            (
                "kprobe.multi/do_*",
                (pt::KPROBE, Some(at::TRACE_KPROBE_MULTI), 0, None, false),
            ),
            (
                "uprobe.s/bin:f",
                (pt::KPROBE, None, PROG_FLAG_SLEEPABLE, None, false),
            ),
            ("ksyscall/openat", (pt::KPROBE, None, 0, None, false)),
            (
                "tracepoint/syscalls/sys_enter_openat",
                (pt::TRACEPOINT, None, 0, None, false),
            ),
            (
                "raw_tp/sched_switch",
                (pt::RAW_TRACEPOINT, None, 0, None, true),
            ),
            (
                "raw_tp.w/x",
                (pt::RAW_TRACEPOINT_WRITABLE, None, 0, None, false),
            ),
            (
                "tp_btf/sched_switch",
                (
                    pt::TRACING,
                    Some(at::TRACE_RAW_TP),
                    0,
                    Some(("btf_trace_sched_switch".into(), Kind::Typedef)),
                    false,
                ),
            ),
            (
                "fentry/do_unlinkat",
                (
                    pt::TRACING,
                    Some(at::TRACE_FENTRY),
                    0,
                    func("do_unlinkat"),
                    true,
                ),
            ),
            (
                "fexit/vmlinux:do_unlinkat",
                (
                    pt::TRACING,
                    Some(at::TRACE_FEXIT),
                    0,
                    func("do_unlinkat"),
                    true,
                ),
            ),
            (
                "fentry.s/f",
                (
                    pt::TRACING,
                    Some(at::TRACE_FENTRY),
                    PROG_FLAG_SLEEPABLE,
                    func("f"),
                    true,
                ),
            ),
            (
                "fmod_ret/f",
                (pt::TRACING, Some(at::MODIFY_RETURN), 0, func("f"), true),
            ),
            (
                "lsm/file_open",
                (
                    pt::LSM,
                    Some(at::LSM_MAC),
                    0,
                    func("bpf_lsm_file_open"),
                    false,
                ),
            ),
            (
                "iter/task",
                (
                    pt::TRACING,
                    Some(at::TRACE_ITER),
                    0,
                    func("bpf_iter_task"),
                    false,
                ),
            ),
            ("perf_event", (pt::PERF_EVENT, None, 0, None, false)),
            (
                "tcx/ingress",
                (pt::SCHED_CLS, Some(at::TCX_INGRESS), 0, None, true),
            ),
            ("tc", (pt::SCHED_CLS, None, 0, None, true)),
            ("xdp", (pt::XDP, Some(at::XDP), 0, None, true)),
            (
                "xdp.frags",
                (pt::XDP, Some(at::XDP), PROG_FLAG_XDP_HAS_FRAGS, None, true),
            ),
            (
                "syscall",
                (pt::SYSCALL, None, PROG_FLAG_SLEEPABLE, None, true),
            ),
            (
                "sk_lookup",
                (pt::SK_LOOKUP, Some(at::SK_LOOKUP), 0, None, true),
            ),
        ];
        for (section, want) in cases {
            assert_eq!(&row(section), want, "{section}");
        }
        assert_eq!(
            section_type("freplace/f").unwrap().attach_target,
            AttachTarget::Program
        );
        let module = section_type("fentry/nf_tables:nft_do_chain")
            .unwrap()
            .kernel_btf_target()
            .unwrap();
        assert_eq!(module.module.as_deref(), Some("nf_tables"));
        assert_eq!(row("?fentry.s/f"), row("fentry.s/f"));
        assert!(section_type("no_such_section").is_none());
        assert!(section_type("kprobe_x").is_none());
    }
}
