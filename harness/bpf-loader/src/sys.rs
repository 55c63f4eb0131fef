//! The one place that calls `bpf(2)`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Marker for the `#[repr(C)]` attr structs in [`crate::attr`]: plain data, every byte
/// initialised (explicit padding), so the kernel may read and write `size_of::<T>()` bytes.
///
/// # Safety
/// Implement only for `#[repr(C)]` structs without implicit padding or pointers the kernel could
/// not follow.
pub(crate) unsafe trait BpfAttr: Sized {}

macro_rules! attr_impl {
    ($($t:ty),*) => { $(unsafe impl BpfAttr for $t {})* };
}
attr_impl!(
    crate::attr::MapCreateAttr,
    crate::attr::MapElemAttr,
    crate::attr::MapBatchAttr,
    crate::attr::ProgLoadAttr,
    crate::attr::ObjAttr,
    crate::attr::TestRunAttr,
    crate::attr::InfoAttr,
    crate::attr::BtfLoadAttr,
    crate::attr::GetIdAttr,
    crate::attr::RawTracepointOpenAttr
);

/// `bpf(cmd, attr, sizeof(*attr))`, retried on `EINTR`. Returns the non-negative result or the
/// errno.
pub(crate) fn bpf<T: BpfAttr>(cmd: u32, attr: &mut T) -> Result<i64, i32> {
    loop {
        // SAFETY: `attr` points to a live, fully initialised #[repr(C)] struct of the given size;
        // any pointers inside it were set by the caller to buffers that outlive this call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd as libc::c_long,
                attr as *mut T as *mut libc::c_void,
                std::mem::size_of::<T>() as libc::c_uint,
            )
        };
        if ret >= 0 {
            return Ok(ret as i64);
        }
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // An interruption by the loader's own alarm is the answer, not something to retry.
        if errno != libc::EINTR || crate::alarm::Alarm::fired() {
            return Err(errno);
        }
    }
}

/// Like [`bpf`] for commands that return a new file descriptor. On `EPERM` from a command that
/// charges memory, raises `RLIMIT_MEMLOCK` once (kernels before 5.11 account BPF memory against
/// it, and its default under an initramfs `/init` is 64 KiB) and retries.
pub(crate) fn bpf_fd<T: BpfAttr>(cmd: u32, attr: &mut T) -> Result<OwnedFd, i32> {
    let r = match bpf(cmd, attr) {
        Err(libc::EPERM) if raise_memlock_once() => bpf(cmd, attr),
        r => r,
    }?;
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

static MEMLOCK_TRIED: AtomicBool = AtomicBool::new(false);

/// Returns true if this call raised the limit (so a retry may help).
fn raise_memlock_once() -> bool {
    if MEMLOCK_TRIED.swap(true, Ordering::SeqCst) {
        return false;
    }
    matches!(raise_memlock_rlimit(), Ok(true))
}

/// Sets `RLIMIT_MEMLOCK` to unlimited. Returns `Ok(false)` if it already was. Needed for BPF
/// maps and programs on kernels before 5.11; harmless after. The crate also does this by itself
/// once, on the first `EPERM` from a map, program or BTF load.
pub fn raise_memlock_rlimit() -> std::io::Result<bool> {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if cur.rlim_cur == libc::RLIM_INFINITY && cur.rlim_max == libc::RLIM_INFINITY {
            return Ok(false);
        }
        let new = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &new) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(true)
}

/// A pointer as the kernel's `__aligned_u64`.
pub(crate) fn ptr_u64<T>(p: *const T) -> u64 {
    p as usize as u64
}

/// A slice's address, or 0 for an empty slice (the kernel treats 0 as "none").
pub(crate) fn slice_u64<T>(s: &[T]) -> u64 {
    if s.is_empty() {
        0
    } else {
        ptr_u64(s.as_ptr())
    }
}

/// The kernel's object-name rules (`bpf_obj_name_cpy`): at most 15 bytes of `[A-Za-z0-9_.]`,
/// NUL-terminated. Other characters become `_`; longer names are cut.
pub fn sanitize_obj_name(name: &str) -> String {
    name.bytes()
        .take(crate::consts::BPF_OBJ_NAME_LEN - 1)
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' {
                b as char
            } else {
                '_'
            }
        })
        .collect()
}

pub(crate) fn obj_name_bytes(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(sanitize_obj_name(name).bytes()) {
        *o = b;
    }
    out
}

/// A NUL-terminated name field from the kernel, as text.
pub(crate) fn name_from_bytes(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// Anything naming a BPF object's file descriptor: `RawFd`, `OwnedFd`, `BorrowedFd`, or a
/// reference to one. A raw fd is fine here: the kernel checks that it is a map/program of the
/// right kind and answers `EBADF`/`EINVAL` otherwise; nothing in this crate closes it.
pub trait AsBpfFd {
    fn as_bpf_fd(&self) -> RawFd;
}

impl AsBpfFd for RawFd {
    fn as_bpf_fd(&self) -> RawFd {
        *self
    }
}

impl AsBpfFd for OwnedFd {
    fn as_bpf_fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

impl AsBpfFd for BorrowedFd<'_> {
    fn as_bpf_fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

impl<T: AsBpfFd + ?Sized> AsBpfFd for &T {
    fn as_bpf_fd(&self) -> RawFd {
        (**self).as_bpf_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized_and_cut() {
        assert_eq!(sanitize_obj_name("counters"), "counters");
        assert_eq!(sanitize_obj_name(".rodata"), ".rodata");
        assert_eq!(sanitize_obj_name("xdp/prog-1 x"), "xdp_prog_1_x");
        assert_eq!(
            sanitize_obj_name("a_very_long_program_name"),
            "a_very_long_pro"
        );
        assert_eq!(sanitize_obj_name("ünï"), "__n__");
        let b = obj_name_bytes("0123456789abcdefXYZ");
        assert_eq!(&b[..15], b"0123456789abcde");
        assert_eq!(b[15], 0);
        assert_eq!(name_from_bytes(&b), "0123456789abcde");
        assert_eq!(name_from_bytes(b"ab\0cd"), "ab");
    }
}
