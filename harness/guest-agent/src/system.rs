//! What an init process must do for itself: mounts, uname, uptime, power-off.

use std::ffi::CString;

pub const KERNEL_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// What BPF and the agent need mounted, in order (a later one lives inside an earlier one).
const MOUNTS: [(&str, &str, &str); 6] = [
    ("devtmpfs", "/dev", "devtmpfs"),
    ("proc", "/proc", "proc"),
    ("sysfs", "/sys", "sysfs"),
    ("bpffs", "/sys/fs/bpf", "bpf"),
    // bpf_printk output of a case is read from its trace_pipe (crate::printk).
    ("tracefs", "/sys/kernel/tracing", "tracefs"),
    // Which LSMs are active (lsm programs run only where `bpf` is): crate::attach.
    ("securityfs", "/sys/kernel/security", "securityfs"),
];

/// Mounts devtmpfs, proc, sysfs, bpffs, tracefs and securityfs. Failures are reported later by
/// what they break (a missing /sys/kernel/btf/vmlinux, a port that cannot be opened), with
/// better context.
pub fn prepare_guest() {
    for (source, target, fstype) in MOUNTS {
        let _ = std::fs::create_dir_all(target);
        mount(source, target, fstype);
    }
}

/// In a guest another init prepared: mounts those of [`MOUNTS`] it left out, never over one
/// it made (its /dev holds the links its own ports are found by).
pub fn mount_missing() {
    let mounted = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for (source, target, fstype) in MOUNTS {
        if !is_mount_point(&mounted, target) {
            let _ = std::fs::create_dir_all(target);
            mount(source, target, fstype);
        }
    }
}

/// Whether `/proc/self/mounts` text has a mount at `target` (pure).
fn is_mount_point(mounts: &str, target: &str) -> bool {
    mounts
        .lines()
        .any(|line| line.split_whitespace().nth(1) == Some(target))
}

fn mount(source: &str, target: &str, fstype: &str) {
    let (Ok(source), Ok(target), Ok(fstype)) = (
        CString::new(source),
        CString::new(target),
        CString::new(fstype),
    ) else {
        return;
    };
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        );
    }
}

fn uname() -> Option<libc::utsname> {
    // SAFETY: uname fills the struct we pass.
    unsafe {
        let mut buf: libc::utsname = std::mem::zeroed();
        (libc::uname(&mut buf) == 0).then_some(buf)
    }
}

fn field(chars: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn uname_release() -> String {
    uname().map(|u| field(&u.release)).unwrap_or_default()
}

pub fn uname_machine() -> String {
    uname().map(|u| field(&u.machine)).unwrap_or_default()
}

pub fn uptime_ms() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let seconds: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some((seconds * 1000.0) as u64)
}

/// Test-only faults, asked for by the manifest, so the runner's fault handling is itself tested.
pub fn inject_fault(fault: &str) {
    match fault {
        "panic" => {
            let _ = std::fs::write("/proc/sys/kernel/sysrq", "1");
            let _ = std::fs::write("/proc/sysrq-trigger", "c");
        }
        "hang" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        "crash" => std::process::abort(),
        // init returning: the kernel panics with "Attempted to kill init".
        "exit" => std::process::exit(3),
        _ => {}
    }
}

pub fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers; as init we hold CAP_SYS_BOOT.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    // reboot(2) only returns on failure; an init that exits panics the kernel, which the runner
    // reports, so wait instead and let the runner's timeout speak.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_mount_point_is_the_second_field_of_a_mounts_line() {
        let mounts = "sysfs /sys sysfs rw 0 0\nnone /sys/fs/bpf bpf rw 0 0\n";
        assert!(super::is_mount_point(mounts, "/sys"));
        assert!(super::is_mount_point(mounts, "/sys/fs/bpf"));
        assert!(!super::is_mount_point(mounts, "/sys/kernel/tracing"));
        assert!(!super::is_mount_point(mounts, "sysfs"));
    }
}
