//! What extern resolution needs to know about the running kernel beyond its BTF, read from the
//! world (kallsyms, the kernel's config, feature probes). Only what the object's externs need
//! is read: a guest under TCG pays for every megabyte of /proc/kallsyms.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use core_reloc::externs::{kallsyms_wanted, needs_kconfig, scan_kallsyms_line, KernelFacts};
use core_reloc::Object;

/// Where the runner puts the guest kernel's `.config` inside the bundle (Debian kernels have no
/// /proc/config.gz, and a guest has no /boot).
pub const SHIPPED_CONFIG: &str = "harness/kernel-config";

/// Most /proc/kallsyms lines read (7.2 has about 250,000).
const MAX_KALLSYMS_LINES: usize = 4_000_000;

/// Largest config file read (Debian's are about 300 KiB).
const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// The symbol whose presence tells syscalls go through `__<arch>_sys_*` wrappers.
fn syscall_wrapper_symbol() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "__arm64_sys_bpf"
    } else {
        "__x64_sys_bpf"
    }
}

pub struct KernelInfo {
    kconfig: Option<String>,
    kallsyms: HashMap<String, Vec<u64>>,
    has_bpf_cookie: bool,
    has_syscall_wrapper: bool,
}

impl KernelInfo {
    pub fn facts<'a>(&'a self, release: &'a str) -> KernelFacts<'a> {
        KernelFacts {
            release,
            kconfig: self.kconfig.as_deref(),
            kallsyms: self.kallsyms.clone(),
            has_bpf_cookie: self.has_bpf_cookie,
            has_syscall_wrapper: self.has_syscall_wrapper,
        }
    }
}

pub fn gather(
    object: &Object,
    bundle: &Path,
    release: &str,
    notes: &mut Vec<String>,
) -> KernelInfo {
    let has_extern = |name: &str| object.externs().iter().any(|e| e.name == name);
    let mut wanted = kallsyms_wanted(object);
    let wrapper = syscall_wrapper_symbol();
    if has_extern("LINUX_HAS_SYSCALL_WRAPPER") {
        wanted.push(wrapper);
    }
    let kallsyms = if wanted.is_empty() {
        HashMap::new()
    } else {
        match std::fs::File::open("/proc/kallsyms") {
            Ok(file) => {
                let mut found = HashMap::new();
                let mut reader = BufReader::new(file);
                let mut line = String::new();
                // Streamed: the file is several MB; one line at a time, bounded by its count.
                for _ in 0..MAX_KALLSYMS_LINES {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => scan_kallsyms_line(&line, &wanted, &mut found),
                    }
                }
                found
            }
            Err(e) => {
                notes.push(format!(
                    "/proc/kallsyms: {e}: typeless ksyms stay unresolved"
                ));
                HashMap::new()
            }
        }
    };
    let kconfig = if needs_kconfig(object) {
        read_config(bundle, release, notes)
    } else {
        None
    };
    KernelInfo {
        has_syscall_wrapper: kallsyms.contains_key(wrapper),
        kallsyms,
        kconfig,
        has_bpf_cookie: has_extern("LINUX_HAS_BPF_COOKIE")
            && bpf_loader::probe::helper_supported(
                bpf_loader::consts::BPF_PROG_TYPE_TRACEPOINT,
                bpf_loader::probe::HELPER_GET_ATTACH_COOKIE,
            ),
    }
}

/// libbpf reads `/boot/config-<release>`, then `/proc/config.gz`; a guest has neither (Debian
/// kernels lack IKCONFIG), so the runner ships the kernel's config in the bundle, read between
/// the two.
fn read_config(bundle: &Path, release: &str, notes: &mut Vec<String>) -> Option<String> {
    let candidates = [
        Path::new("/boot").join(format!("config-{release}")),
        bundle.join(SHIPPED_CONFIG),
    ];
    for path in &candidates {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if meta.len() > MAX_CONFIG_BYTES {
            notes.push(format!(
                "{}: {} bytes, more than the {MAX_CONFIG_BYTES} read",
                path.display(),
                meta.len()
            ));
            continue;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => return Some(text),
            Err(e) => notes.push(format!("{}: {e}", path.display())),
        }
    }
    match read_gzip_bounded(Path::new(PROC_CONFIG_GZ)) {
        Ok(Some(text)) => return Some(text),
        Ok(None) => {}
        Err(e) => notes.push(format!("{PROC_CONFIG_GZ}: {e}")),
    }
    None
}

const PROC_CONFIG_GZ: &str = "/proc/config.gz";

/// The decompressed text of a gzip file, at most [`MAX_CONFIG_BYTES`]; `None` if absent.
fn read_gzip_bounded(path: &Path) -> Result<Option<String>, String> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .take(MAX_CONFIG_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| format!("not a readable gzip config: {e}"))?;
    Ok(Some(text))
}
