//! Attaching programs: raw tracepoints.

use std::ffi::CString;
use std::os::fd::OwnedFd;

use crate::attr::RawTracepointOpenAttr;
use crate::consts::BPF_RAW_TRACEPOINT_OPEN;
use crate::error::BpfError;
use crate::sys::{bpf_fd, ptr_u64, AsBpfFd};

/// `BPF_RAW_TRACEPOINT_OPEN`: attaches a `RAW_TRACEPOINT` program to the tracepoint `name`
/// (for example `kfree_skb`), or, with `None`, a `TRACING` program loaded for `tp_btf` (its
/// target came with `attach_btf_id` at load time). The program stays attached while the
/// returned file descriptor is open: dropping it detaches.
///
/// `ENOENT`: no tracepoint of that name on this kernel. `EINVAL` for a raw tracepoint: the
/// program reads more arguments than the tracepoint has (the check happens here, not at load).
pub fn raw_tracepoint_open(prog_fd: impl AsBpfFd, name: Option<&str>) -> Result<OwnedFd, BpfError> {
    let object = || Some(format!("tracepoint {:?}", name.unwrap_or("(BTF target)")));
    let name = name
        .map(|n| {
            CString::new(n).map_err(|_| {
                BpfError::invalid("BPF_RAW_TRACEPOINT_OPEN", "tracepoint name contains NUL")
            })
        })
        .transpose()?;
    let mut attr = RawTracepointOpenAttr {
        name: name.as_ref().map_or(0, |n| ptr_u64(n.as_ptr())),
        prog_fd: prog_fd.as_bpf_fd() as u32,
        ..Default::default()
    };
    bpf_fd(BPF_RAW_TRACEPOINT_OPEN, &mut attr)
        .map_err(|e| BpfError::syscall(BPF_RAW_TRACEPOINT_OPEN, object(), e))
}
