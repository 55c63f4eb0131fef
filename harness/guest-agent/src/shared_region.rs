//! The shared-memory region of a restored guest: QEMU's `ivshmem-plain` device, whose memory BAR
//! the agent maps through sysfs (`/sys/bus/pci/devices/*/resource2`). No driver binds it and no
//! kernel module is needed: PCI and sysfs are built into every kernel of the matrix.

use std::path::{Path, PathBuf};

use guest_protocol::{SHARED_REGION_BAR, SHARED_REGION_PCI_IDS};

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

/// The first `len` bytes of the shared region, copied out.
pub fn read(len: usize) -> Result<Vec<u8>, String> {
    let resource = find_region(Path::new(PCI_DEVICES), SHARED_REGION_PCI_IDS).ok_or_else(|| {
        format!("the bundle is in shared memory, but no ivshmem device is in {PCI_DEVICES}")
    })?;
    read_mapped(&resource, len)
}

/// Maps `path` (a sysfs resource file, or any file in tests) and copies its first `len` bytes.
fn read_mapped(path: &Path, len: usize) -> Result<Vec<u8>, String> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // A sysfs resource file is as long as its BAR: the bound on what may be read.
    let size = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len as u64 > size {
        return Err(format!(
            "the bundle claims {len} bytes, the shared region {} holds {size}",
            path.display()
        ));
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: a read-only shared mapping of `len` bytes of a file we hold open, within its size;
    // it is copied out at once and unmapped before returning.
    unsafe {
        let base = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        if base == libc::MAP_FAILED {
            return Err(format!(
                "cannot map {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        let bytes = std::slice::from_raw_parts(base as *const u8, len).to_vec();
        libc::munmap(base, len);
        Ok(bytes)
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
        assert_eq!(read_mapped(&found, 7).unwrap(), b"payload");
        assert!(read_mapped(&found, 1000).unwrap_err().contains("holds 20"));
        assert!(find_region(&dir, ("0x1af4", "0x1000")).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
