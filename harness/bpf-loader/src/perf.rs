//! Attaching programs through perf events: kprobes and kretprobes (the `kprobe` PMU, 4.17+) and
//! tracepoints (`PERF_TYPE_TRACEPOINT` with the event id tracefs gives), then
//! `PERF_EVENT_IOC_SET_BPF` and `PERF_EVENT_IOC_ENABLE`, as libbpf does on kernels without
//! `BPF_LINK_CREATE` for perf events. The program stays attached while the returned fd is open.
//!
//! Errors keep the errno: `ENOENT` means the kernel lacks the function, the tracepoint or the
//! kprobe PMU (an expected gap), anything else is a real failure.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::BpfError;
use crate::sys::AsBpfFd;

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// `_IO('$', 0)`.
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
/// `_IOW('$', 8, __u32)`.
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
/// `PERF_ATTR_SIZE_VER5`: the fields below, as every kernel of the range reads them.
const PERF_ATTR_SIZE: u32 = 112;

const KPROBE_PMU_TYPE: &str = "/sys/bus/event_source/devices/kprobe/type";
const KPROBE_RETPROBE_FORMAT: &str = "/sys/bus/event_source/devices/kprobe/format/retprobe";
/// Where tracefs may be mounted: its own mount point, or under debugfs on older setups.
pub const TRACEFS_ROOTS: &[&str] = &["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// `struct perf_event_attr` up to `sample_max_stack` (`PERF_ATTR_SIZE_VER5`).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    /// kprobe PMU: the function name (a pointer).
    config1: u64,
    /// kprobe PMU: the offset in the function.
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved_2: u16,
}

const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == PERF_ATTR_SIZE as usize);

fn read_sysfs(path: &str) -> Result<String, BpfError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| BpfError::Io {
            path: path.to_string(),
            source,
        })
}

/// The bit `format/retprobe` names (`config:0` on every kernel so far).
fn parse_config_bit(format: &str) -> Option<u32> {
    let bit: u32 = format.strip_prefix("config:")?.trim().parse().ok()?;
    (bit < 64).then_some(bit)
}

fn perf_event_open(attr: &PerfEventAttr, what: &str) -> Result<OwnedFd, BpfError> {
    // SAFETY: attr is a valid perf_event_attr of the size it declares; pid -1 with cpu 0 is a
    // system-wide event (for BPF the program runs on every CPU: it hangs off the trace event).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr as *const PerfEventAttr,
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(BpfError::Syscall {
            command: "perf_event_open",
            object: Some(what.to_string()),
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        });
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn ioctl(
    fd: &OwnedFd,
    request: libc::c_ulong,
    arg: libc::c_ulong,
    what: &str,
) -> Result<(), BpfError> {
    // SAFETY: perf ioctls on a perf event fd we own; SET_BPF takes a program fd by value.
    if unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) } < 0 {
        return Err(BpfError::Syscall {
            command: if request == PERF_EVENT_IOC_SET_BPF {
                "PERF_EVENT_IOC_SET_BPF"
            } else {
                "PERF_EVENT_IOC_ENABLE"
            },
            object: Some(what.to_string()),
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        });
    }
    Ok(())
}

fn attach(event: OwnedFd, prog_fd: impl AsBpfFd, what: &str) -> Result<OwnedFd, BpfError> {
    ioctl(
        &event,
        PERF_EVENT_IOC_SET_BPF,
        prog_fd.as_bpf_fd() as libc::c_ulong,
        what,
    )?;
    ioctl(&event, PERF_EVENT_IOC_ENABLE, 0, what)?;
    Ok(event)
}

/// Attaches a `KPROBE` program to the entry (or, with `retprobe`, the return) of kernel
/// function `function`. `ENOENT`: no kprobe PMU on this kernel, or no such probe-able function.
pub fn attach_kprobe(
    prog_fd: impl AsBpfFd,
    function: &str,
    retprobe: bool,
) -> Result<OwnedFd, BpfError> {
    let what = format!(
        "{} {function}",
        if retprobe { "kretprobe" } else { "kprobe" }
    );
    let pmu: u32 = read_sysfs(KPROBE_PMU_TYPE)?
        .parse()
        .map_err(|_| BpfError::invalid(KPROBE_PMU_TYPE, "not a number"))?;
    let mut config = 0u64;
    if retprobe {
        let format = read_sysfs(KPROBE_RETPROBE_FORMAT)?;
        let bit = parse_config_bit(&format).ok_or_else(|| {
            BpfError::invalid(
                KPROBE_RETPROBE_FORMAT,
                format!("unexpected format {format:?}"),
            )
        })?;
        config |= 1 << bit;
    }
    let name = CString::new(function)
        .map_err(|_| BpfError::invalid("kprobe", "function name contains NUL"))?;
    let attr = PerfEventAttr {
        type_: pmu,
        size: PERF_ATTR_SIZE,
        config,
        config1: name.as_ptr() as u64,
        config2: 0,
        ..Default::default()
    };
    let event = perf_event_open(&attr, &what)?;
    attach(event, prog_fd, &what)
}

/// The id of tracepoint `category/name` from tracefs (`events/<category>/<name>/id`), trying
/// each of [`TRACEFS_ROOTS`]. `ENOENT`: no such tracepoint (or tracefs is not mounted).
pub fn tracepoint_id(category: &str, name: &str) -> Result<u64, BpfError> {
    let bad = |c: &str| c.is_empty() || c.contains('/') || c.contains('\0') || c.contains("..");
    if bad(category) || bad(name) {
        return Err(BpfError::invalid(
            "tracepoint",
            format!("{category:?}/{name:?} is not a tracepoint name"),
        ));
    }
    let mut last = None;
    for root in TRACEFS_ROOTS {
        let path = format!("{root}/events/{category}/{name}/id");
        match read_sysfs(&path) {
            Ok(text) => {
                return text
                    .parse()
                    .map_err(|_| BpfError::invalid(path, format!("not a number: {text:?}")))
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| BpfError::invalid("tracepoint", "no tracefs root")))
}

/// Attaches a `TRACEPOINT` program to tracepoint `category/name`.
pub fn attach_tracepoint(
    prog_fd: impl AsBpfFd,
    category: &str,
    name: &str,
) -> Result<OwnedFd, BpfError> {
    let what = format!("tracepoint {category}/{name}");
    let id = tracepoint_id(category, name)?;
    let attr = PerfEventAttr {
        type_: PERF_TYPE_TRACEPOINT,
        size: PERF_ATTR_SIZE,
        config: id,
        ..Default::default()
    };
    let event = perf_event_open(&attr, &what)?;
    attach(event, prog_fd, &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retprobe_format_is_read_as_a_config_bit() {
        assert_eq!(parse_config_bit("config:0"), Some(0));
        assert_eq!(parse_config_bit("config:12"), Some(12));
        assert_eq!(parse_config_bit("config:64"), None);
        assert_eq!(parse_config_bit("config1:0"), None);
        assert_eq!(parse_config_bit("bogus"), None);
    }

    #[test]
    fn tracepoint_names_cannot_walk_out_of_tracefs() {
        for (c, n) in [("..", "x"), ("a/b", "c"), ("", "x"), ("syscalls", "")] {
            assert!(matches!(tracepoint_id(c, n), Err(BpfError::Invalid { .. })));
        }
    }
}
