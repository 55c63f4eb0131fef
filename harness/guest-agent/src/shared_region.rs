//! The shared-memory region of a restored guest: QEMU's `ivshmem-plain` device, whose memory BAR
//! the agent maps through sysfs (`/sys/bus/pci/devices/*/resource2`). No driver binds it and no
//! kernel module is needed: PCI and sysfs are built into every kernel of the matrix.
//!
//! The device is found and mapped once, before the guest is snapshotted (when the agent says
//! Ready), so a restored guest reads at once: finding it through sysfs took ~70 ms under TCG.
//! The host writes the bundle at the start; the agent appends its result frames to the results'
//! area ([`ResultsLog`]), which the host reads when the port announces them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use guest_protocol::{
    SHARED_REGION_BAR, SHARED_REGION_PCI_IDS, SHARED_RESULTS_BYTES, SHARED_RESULTS_OFFSET,
};

const PCI_DEVICES: &str = "/sys/bus/pci/devices";

/// The sysfs resource file of the first PCI device with these ids, under `devices`.
fn find_region(devices: &Path, (vendor, device): (&str, &str)) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(devices)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|dir| {
            let id = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            id("vendor").trim() == vendor && id("device").trim() == device
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .next()
        .map(|dir| dir.join(format!("resource{SHARED_REGION_BAR}")))
}

/// A shared mapping of a whole file, kept for the life of the process. Only [`ResultsLog`]
/// writes to it, in the results' area; reads are of the bundle's area.
struct Mapping {
    base: *mut u8,
    size: usize,
    path: PathBuf,
}

// SAFETY: the mapping is never unmapped; the agent is single-threaded, and the one writer
// (`ResultsLog`, behind the Channel) never touches the bytes `read` returns.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `path` (a sysfs resource file, or any file in tests) whole, for reading and writing.
    fn open(path: &Path) -> Result<Mapping, String> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // A sysfs resource file is as long as its BAR.
        let size = file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| format!("{} has no usable size ({size})", path.display()))?;
        // SAFETY: a shared mapping of a file we hold open, within its size. The mapping outlives
        // the descriptor, as mmap allows.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!(
                "cannot map {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(Mapping {
            base: base as *mut u8,
            size,
            path: path.to_path_buf(),
        })
    }

    /// The first `len` bytes, copied out; bounded by the mapping's size.
    fn read(&self, len: usize) -> Result<Vec<u8>, String> {
        if len > self.size {
            return Err(format!(
                "the bundle claims {len} bytes, the shared region {} holds {}",
                self.path.display(),
                self.size
            ));
        }
        // SAFETY: `len` bytes within a live mapping of `size` bytes.
        Ok(unsafe { std::slice::from_raw_parts(self.base, len) }.to_vec())
    }

    /// Writes `bytes` at `offset`; false (nothing written) when they do not fit.
    fn write(&self, offset: usize, bytes: &[u8]) -> bool {
        if offset
            .checked_add(bytes.len())
            .is_none_or(|end| end > self.size)
        {
            return false;
        }
        // SAFETY: within the live mapping, checked above; nothing else holds these bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(offset), bytes.len());
        }
        true
    }
}

/// The results' area of the region, appended to frame by frame.
pub struct ResultsLog {
    mapping: &'static Mapping,
    /// Bytes written so far, from the start of the area.
    end: usize,
}

impl ResultsLog {
    /// The log over this guest's region, when it has one.
    pub fn open() -> Option<ResultsLog> {
        region()
            .as_ref()
            .ok()
            .map(|mapping| ResultsLog { mapping, end: 0 })
    }

    /// Appends `bytes`; the new end (to announce) or None when the area is full.
    pub fn append(&mut self, bytes: &[u8]) -> Option<usize> {
        let room =
            SHARED_RESULTS_BYTES.min(self.mapping.size.saturating_sub(SHARED_RESULTS_OFFSET));
        let end = self.end.checked_add(bytes.len()).filter(|&e| e <= room)?;
        if !self.mapping.write(SHARED_RESULTS_OFFSET + self.end, bytes) {
            return None;
        }
        self.end = end;
        Some(end)
    }
}

/// Turns on the device's memory decoding (sysfs `enable`, as a driver's `pci_enable_device`
/// would), when it is off. No driver binds the ivshmem device, and where no firmware enabled it
/// either (arm64 `virt` booted straight into the kernel: 6.1 leaves it off) its BAR answers
/// every read with all-ones, however well it is mapped.
fn enable_decoding(resource: &Path) -> Result<(), String> {
    let Some(enable) = resource.parent().map(|dir| dir.join("enable")) else {
        return Ok(());
    };
    match std::fs::read_to_string(&enable) {
        Ok(state) if state.trim() == "0" => std::fs::write(&enable, "1")
            .map_err(|e| format!("cannot enable the device ({}): {e}", enable.display())),
        _ => Ok(()),
    }
}

static REGION: OnceLock<Result<Mapping, String>> = OnceLock::new();

fn region() -> &'static Result<Mapping, String> {
    REGION.get_or_init(|| {
        let resource = find_region(Path::new(PCI_DEVICES), SHARED_REGION_PCI_IDS)
            .ok_or_else(|| format!("no ivshmem device (shared-memory region) in {PCI_DEVICES}"))?;
        enable_decoding(&resource)?;
        Mapping::open(&resource)
    })
}

/// Whether this guest has the region (a guest restored from a snapshot does, unless its kernel
/// lacks PCI); finds and maps it on first use.
pub fn present() -> bool {
    region().is_ok()
}

/// The first `len` bytes of the shared region, copied out.
pub fn read(len: usize) -> Result<Vec<u8>, String> {
    match region() {
        Ok(mapping) => mapping.read(len),
        Err(why) => Err(format!("the bundle is in shared memory, but {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_device_by_its_ids_and_reads_within_its_size() {
        let dir = std::env::temp_dir().join(format!("shared-region-test.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        for (name, vendor, device) in [
            ("0000:00:01.0", "0x8086", "0x29c0"),
            ("0000:00:03.0", "0x1af4", "0x1110"),
        ] {
            let d = dir.join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("vendor"), format!("{vendor}\n")).unwrap();
            std::fs::write(d.join("device"), format!("{device}\n")).unwrap();
            std::fs::write(d.join("resource2"), b"payload and the rest").unwrap();
        }
        let found = find_region(&dir, SHARED_REGION_PCI_IDS).unwrap();
        assert!(found.ends_with("0000:00:03.0/resource2"), "{found:?}");
        // A device no one enabled is enabled; one already enabled, or without the file, is left.
        let enable = dir.join("0000:00:03.0/enable");
        std::fs::write(&enable, "0\n").unwrap();
        enable_decoding(&found).unwrap();
        assert_eq!(std::fs::read_to_string(&enable).unwrap(), "1");
        std::fs::write(&enable, "2\n").unwrap();
        enable_decoding(&found).unwrap();
        assert_eq!(std::fs::read_to_string(&enable).unwrap(), "2\n");
        std::fs::remove_file(&enable).unwrap();
        enable_decoding(&found).unwrap();
        let mapping = Mapping::open(&found).unwrap();
        assert_eq!(mapping.read(7).unwrap(), b"payload");
        assert!(mapping.read(1000).unwrap_err().contains("holds 20"));
        assert!(mapping.write(8, b"AND"));
        assert!(!mapping.write(18, b"xyz"));
        assert_eq!(mapping.read(20).unwrap(), b"payload AND the rest");
        std::fs::write(dir.join("empty"), b"").unwrap();
        assert!(Mapping::open(&dir.join("empty")).is_err());
        assert!(find_region(&dir, ("0x1af4", "0x1000")).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
