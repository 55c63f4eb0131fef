//! Ready mode: an agent booted without a manifest waits for its bundle on the results port.
//!
//! This is the state a ready snapshot holds: the guest is booted, mounts are done, the port is
//! raw, `Ready` has been said, and the agent is blocked reading. A guest restored from it gets
//! the bundle (manifest, objects, kernel config) as one [`guest_protocol::BundleTransfer`],
//! writes it where the initramfs would have put it, and then runs exactly as a fresh boot does.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use guest_protocol::{BundleTransfer, GuestMessage, Ready, BUNDLE_HEADER_BYTES, MANIFEST_PATH};

use crate::channel::Channel;

/// Bytes of noise skipped before the bundle's magic before giving up.
const MAX_NOISE_BYTES: usize = 1 << 20;

/// Whether this guest was booted to be snapshotted: its initramfs carries no manifest.
pub fn is_ready_mode(root: &Path) -> bool {
    !root.join(MANIFEST_PATH).exists()
}

/// What this guest says about itself: its kernel and its boot.
pub fn identity() -> Ready {
    let clock_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ready {
        kernel_release: crate::system::uname_release(),
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        uptime_ms: crate::system::uptime_ms().unwrap_or(0),
        clock_unix_ms,
        shared_region: crate::shared_region::present(),
    }
}

/// Says Ready, waits for the bundle, unpacks it below `root`, sets the clock from the host's and
/// says Ready again (the restored guest's proof of identity).
pub fn receive_bundle(root: &Path, channel: &mut Channel) -> Result<(), String> {
    let path = crate::channel::guest_port_path();
    let port = File::options()
        .read(true)
        .open(&path)
        .map_err(|e| format!("cannot open {path} to read the bundle: {e}"))?;
    crate::channel::set_raw(&port);
    // The UART's receive trigger stays at the driver's default: raising it to 14 bytes (through
    // /sys/class/tty/ttyS1/rx_trig_bytes) made transfers about 0.2 s faster, but restored 6.12
    // guests then crashed in about 8 of 20 runs (double faults, GPFs) while the bundle arrived;
    // none did in 20 runs at the default.
    channel.send(&GuestMessage::Ready(identity()));
    channel.flush();
    let received = read_transfer(
        BufReader::with_capacity(64 * 1024, port),
        crate::shared_region::read,
    )?;
    let unpack_started = std::time::Instant::now();
    let transfer = received.transfer;
    set_clock(transfer.host_time_unix_ns);
    for file in &transfer.files {
        // Paths were checked by the decoder: relative, plain components.
        let target = root.join(&file.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&target, &file.data)
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        if file.path == guest_protocol::LIBBPF_LOADER_PATH {
            // The one executable a bundle carries besides the agent (`--libbpf`).
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("cannot make {} executable: {e}", target.display()))?;
        }
    }
    channel.send(&GuestMessage::Ready(identity()));
    if received.from_shared_region {
        // The host reads what the region holds when the port announces it.
        channel.use_region();
    }
    channel.send(&GuestMessage::Log {
        message: format!(
            "bundle: {} compressed bytes from {}, read and decoded in {} us, unpacked in {} us",
            received.payload_bytes,
            if received.from_shared_region {
                "shared memory"
            } else {
                "the results port"
            },
            received.read_us,
            unpack_started.elapsed().as_micros()
        ),
    });
    Ok(())
}

/// A bundle as it arrived: where from, and how long its payload took once the header was in.
struct Received {
    transfer: BundleTransfer,
    from_shared_region: bool,
    payload_bytes: usize,
    read_us: u128,
}

/// Reads the bundle's header from the port, then its payload from the port or, when the header
/// says so, from the shared-memory region (`shared(len)` copies it out).
fn read_transfer(
    mut port: impl Read,
    shared: impl FnOnce(usize) -> Result<Vec<u8>, String>,
) -> Result<Received, String> {
    let mut header = [0u8; BUNDLE_HEADER_BYTES];
    // Slide over anything before the magic (a byte at a time from the buffer, not the port).
    let mut skipped = 0usize;
    let mut window = [0u8; 8];
    port.read_exact(&mut window)
        .map_err(|e| format!("reading the bundle: {e}"))?;
    while !guest_protocol::is_header_magic(&window) {
        if skipped >= MAX_NOISE_BYTES {
            return Err(format!(
                "no bundle after {MAX_NOISE_BYTES} bytes on the results port"
            ));
        }
        let mut next = [0u8; 1];
        port.read_exact(&mut next)
            .map_err(|e| format!("reading the bundle: {e}"))?;
        window.rotate_left(1);
        window[7] = next[0];
        skipped += 1;
    }
    header[..8].copy_from_slice(&window);
    port.read_exact(&mut header[8..])
        .map_err(|e| format!("reading the bundle header: {e}"))?;
    let header = guest_protocol::parse_bundle_header(&header).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let payload = if header.in_shared_region {
        shared(header.payload_len)?
    } else {
        // Bounded by parse_header.
        let mut payload = vec![0u8; header.payload_len];
        port.read_exact(&mut payload)
            .map_err(|e| format!("reading the bundle's {} bytes: {e}", header.payload_len))?;
        payload
    };
    let transfer = guest_protocol::decode_bundle_payload(&header, &payload).map_err(|e| {
        if header.in_shared_region {
            // What the region held says whether the host's bytes arrived at all (zeros, an old
            // bundle) or arrived changed.
            let start: Vec<String> = payload
                .iter()
                .take(16)
                .map(|b| format!("{b:02x}"))
                .collect();
            format!(
                "{e} (read from the shared-memory region: {} bytes, starting {})",
                payload.len(),
                start.join(" ")
            )
        } else {
            e.to_string()
        }
    })?;
    Ok(Received {
        transfer,
        from_shared_region: header.in_shared_region,
        payload_bytes: header.payload_len,
        read_us: started.elapsed().as_micros(),
    })
}

/// A restored guest's clock resumes where the snapshot was taken: set it to the host's.
fn set_clock(unix_ns: u64) {
    let time = libc::timespec {
        tv_sec: (unix_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (unix_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: a valid timespec we own; failure (no CAP_SYS_TIME) leaves the clock as it was.
    unsafe {
        libc::clock_settime(libc::CLOCK_REALTIME, &time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_bundle_after_noise() {
        let transfer = BundleTransfer {
            host_time_unix_ns: 7,
            files: vec![guest_protocol::BundleFile {
                path: "harness/manifest.json".into(),
                data: b"{}".to_vec(),
            }],
        };
        let mut stream = b"\r\n@@BUN noise".to_vec();
        stream.extend_from_slice(&transfer.encode().unwrap());
        let no_region = |_| -> Result<Vec<u8>, String> { panic!("not in the region") };
        let received = read_transfer(&stream[..], no_region).unwrap();
        assert_eq!(received.transfer, transfer);
        assert!(!received.from_shared_region);
        assert!(read_transfer(&b"no bundle here"[..], no_region).is_err());
    }

    #[test]
    fn a_shared_header_takes_its_payload_from_the_region() {
        let transfer = BundleTransfer {
            host_time_unix_ns: 9,
            files: vec![guest_protocol::BundleFile {
                path: "harness/objects/a.bpf.o".into(),
                data: vec![7; 5000],
            }],
        };
        let (header, payload) = transfer.encode_for_shared_region().unwrap().unwrap();
        let mut stream = b"noise".to_vec();
        stream.extend_from_slice(&header);
        let region = |len: usize| Ok(payload[..len].to_vec());
        let received = read_transfer(&stream[..], region).unwrap();
        assert_eq!(received.transfer, transfer);
        assert!(received.from_shared_region);
        assert_eq!(received.payload_bytes, payload.len());
        // A region that holds other bytes fails the checksum, it is never taken as a bundle.
        let stale = |len: usize| Ok(vec![0u8; len]);
        let why = read_transfer(&stream[..], stale).err().unwrap();
        assert!(why.contains("checksum"), "{why}");
        assert!(
            why.contains("shared-memory region: 0") || why.contains("bytes, starting 00 00"),
            "{why}"
        );
    }
}
