//! The `bpf(2)` syscall layer of the harness: BTF, maps, programs, test runs, feature probes.
//!
//! It takes raw pieces (instruction bytes, type numbers, BTF blobs) and knows nothing of ELF or
//! CO-RE. Every attr is a `#[repr(C)]` struct per command ([`attr`]) checked field by field
//! against the kernel's `union bpf_attr`; file descriptors come back as [`OwnedFd`]; errors
//! ([`BpfError`]) carry the errno, the command and object, and for loads the kernel's log.
//!
//! Kernel range: 5.10 and later (the attrs name newer fields, which stay zero unless asked for,
//! and the kernel accepts a longer attr whose unknown tail is zero). On kernels before 5.11 BPF
//! memory is charged to `RLIMIT_MEMLOCK`; the crate raises it once by itself on the first
//! `EPERM` ([`raise_memlock_rlimit`]).

mod alarm;
pub mod asm;
pub mod attr;
mod btf;
pub mod consts;
mod error;
mod link;
mod map;
pub mod perf;
pub mod probe;
mod prog;
pub mod prog_types;
mod ringbuf;
mod sys;

pub use btf::{btf_info, load_btf, BtfBuilder};
pub use error::{errno_name, BpfError, Errno};
pub use link::raw_tracepoint_open;
pub use map::{
    create_map, create_map_with, map_delete, map_freeze, map_info, map_keys, map_lookup,
    map_lookup_batch, map_lookup_flags, map_next_key, map_update, map_update_batch, parse_cpu_list,
    percpu_value_size, possible_cpus, MapBatch, MapCreate, MapCreateExtra, MapInfo,
    MAX_BATCH_BYTES,
};
pub use perf::{attach_kprobe, attach_tracepoint};
pub use prog::{
    load_program, load_program_reporting, load_program_with_log, obj_get, obj_pin, prog_info,
    prog_xlated_insns, test_run, test_run_with, ProgInfo, ProgramLoad, TestRun, TestRunExtra,
    TestRunOutput, INSN_SIZE, MAX_LOG_SIZE, MAX_XLATED_INSNS,
};
pub use ringbuf::{record_span, RecordHeader, RingBuf, RingBufError};
pub use sys::{raise_memlock_rlimit, sanitize_obj_name, AsBpfFd};

/// The running kernel's release (`uname -r`), e.g. `6.1.0-18-amd64`.
pub fn kernel_release() -> String {
    // SAFETY: uname fills a local struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::from("unknown");
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
