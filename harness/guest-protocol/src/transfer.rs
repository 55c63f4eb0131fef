//! The bundle a restored guest receives over its results port: host → guest, once.
//!
//! A guest restored from a ready snapshot has no per-run initramfs, so what the initramfs used
//! to carry (manifest, objects, kernel config) arrives as one length-prefixed, checksummed
//! message:
//!
//! ```text
//! "@@BUNDLE"  u32 LE payload length  u32 LE crc32(payload)  payload
//! payload = zlib( u64 LE host time (ns since the epoch)  u32 LE file count
//!                 { u16 LE path length, path (UTF-8, relative), u32 LE data length, data }* )
//! ```
//!
//! Compressed because an emulated 8250 UART under TCG moves only about 40-75 KB/s into a guest:
//! every byte saved is 15-25 µs of the critical path (JSON manifests shrink about tenfold).
//!
//! A guest restored from a snapshot also has a shared-memory region (QEMU's `ivshmem-plain`, a
//! plain PCI device whose BAR the agent maps through sysfs: no kernel module), the
//! [`SHARED_REGION_BYTES`] of a host file. The host then writes the payload there, at offset 0,
//! while the VM is paused, and sends only the header over the port, with [`BUNDLE_SHARED_MAGIC`]
//! in place of [`BUNDLE_MAGIC`]: the port still wakes the agent, the bytes cost no UART time.
//!
//! Every length is bounded before anything is allocated, and paths can only name files below
//! the bundle root, so a damaged or hostile stream costs a clear error, never memory or a write
//! outside the bundle.

use std::fmt;

/// Marks the start of a bundle, so that stray bytes before it (line noise) are skipped.
pub const BUNDLE_MAGIC: &[u8; 8] = b"@@BUNDLE";
/// Marks a header whose payload waits in the shared-memory region instead of following it.
pub const BUNDLE_SHARED_MAGIC: &[u8; 8] = b"@@BUNSHM";
/// The size of the shared-memory region of a restored guest (part of its QEMU arguments, so of
/// its snapshot's key): the bundle's area, then the results' (see `framing`).
pub const SHARED_REGION_BYTES: usize = 32 << 20;
/// The bundle's area, at the start of the region: a bigger payload goes over the port.
pub const SHARED_BUNDLE_BYTES: usize = 16 << 20;
/// The results' area: frames the agent appends, announced over the port (`region_notice`).
pub const SHARED_RESULTS_OFFSET: usize = SHARED_BUNDLE_BYTES;
/// The results' area's size: the rest of the region (frames beyond it go over the port).
pub const SHARED_RESULTS_BYTES: usize = SHARED_REGION_BYTES - SHARED_RESULTS_OFFSET;
/// QEMU's ivshmem PCI vendor and device ids, as sysfs prints them.
pub const SHARED_REGION_PCI_IDS: (&str, &str) = ("0x1af4", "0x1110");
/// The ivshmem BAR that maps the shared memory (BAR 0 holds registers, BAR 1 MSI-X).
pub const SHARED_REGION_BAR: u8 = 2;
/// Magic, payload length and checksum.
pub const BUNDLE_HEADER_BYTES: usize = 16;
/// The largest payload accepted, compressed or not: far above a corpus of objects and its
/// manifest (a few hundred KiB).
pub const MAX_BUNDLE_BYTES: usize = 64 << 20;
/// The most files one bundle carries.
pub const MAX_BUNDLE_FILES: usize = 4096;
/// The longest path accepted.
pub const MAX_BUNDLE_PATH_BYTES: usize = 255;

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// Relative to the bundle root, `/`-separated (for example `harness/manifest.json`).
    pub path: String,
    /// Its contents.
    pub data: Vec<u8>,
}

/// Everything a restored guest needs, sent over the results port in one transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleTransfer {
    /// The host's clock when the bundle was sent: a restored guest's clock resumes where the
    /// snapshot was taken, and the agent sets it from this.
    pub host_time_unix_ns: u64,
    /// The files, written under the bundle root.
    pub files: Vec<BundleFile>,
}

/// Why a bundle transfer is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    /// Not a bundle.
    BadMagic,
    /// Larger than [`MAX_BUNDLE_BYTES`].
    TooLarge {
        /// The size announced or reached.
        bytes: usize,
    },
    /// The payload does not match its checksum.
    Checksum {
        /// From the header.
        expected: u32,
        /// Of the bytes received.
        actual: u32,
    },
    /// The payload does not decompress.
    Compression {
        /// What the decoder said.
        error: String,
    },
    /// The payload ends inside a record.
    Truncated {
        /// Byte offset where it ended.
        at: usize,
    },
    /// More than [`MAX_BUNDLE_FILES`] files.
    TooManyFiles {
        /// The count announced.
        count: usize,
    },
    /// A path that is absolute, climbs with `..`, or is too long.
    BadPath {
        /// The path.
        path: String,
    },
    /// Bytes after the last file.
    TrailingBytes {
        /// How many.
        bytes: usize,
    },
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::BadMagic => write!(f, "the bundle does not start with its magic"),
            TransferError::TooLarge { bytes } => write!(
                f,
                "a bundle of {bytes} bytes is beyond the limit of {MAX_BUNDLE_BYTES}"
            ),
            TransferError::Checksum { expected, actual } => write!(
                f,
                "bundle checksum {actual:08x} does not match the header's {expected:08x}: damaged in transit"
            ),
            TransferError::Compression { error } => {
                write!(f, "the bundle does not decompress: {error}")
            }
            TransferError::Truncated { at } => {
                write!(f, "the bundle ends inside a field at byte {at}")
            }
            TransferError::TooManyFiles { count } => write!(
                f,
                "the bundle claims {count} files, more than {MAX_BUNDLE_FILES}"
            ),
            TransferError::BadPath { path } => write!(
                f,
                "bundle path {path:?} is not a plain relative path below the bundle root"
            ),
            TransferError::TrailingBytes { bytes } => {
                write!(f, "{bytes} bytes follow the last file of the bundle")
            }
        }
    }
}

impl std::error::Error for TransferError {}

/// A bundle for the shared-memory region: the header for the port, the payload for the region.
pub type SharedRegionBundle = ([u8; BUNDLE_HEADER_BYTES], Vec<u8>);

/// Whether `path` is relative, non-empty, short and made of plain components only.
fn path_is_safe(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_BUNDLE_PATH_BYTES
        && !path.starts_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

impl BundleTransfer {
    /// Header and compressed payload, ready to write to the port. Refuses what the guest would
    /// refuse.
    pub fn encode(&self) -> Result<Vec<u8>, TransferError> {
        let payload = compress(&self.plain_payload()?)?;
        Ok(with_header(BUNDLE_MAGIC, &payload))
    }

    /// For the shared-memory region: the header to send over the port (marked as such) and the
    /// payload to write into the region, uncompressed (its bytes cost no UART time, and inflating
    /// under TCG cost about 40 ms). None when it does not fit in the region.
    pub fn encode_for_shared_region(&self) -> Result<Option<SharedRegionBundle>, TransferError> {
        let payload = self.plain_payload()?;
        if payload.len() > SHARED_BUNDLE_BYTES {
            return Ok(None);
        }
        let mut header = [0u8; BUNDLE_HEADER_BYTES];
        header.copy_from_slice(&with_header(BUNDLE_SHARED_MAGIC, &[])[..BUNDLE_HEADER_BYTES]);
        header[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[12..16].copy_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        Ok(Some((header, payload)))
    }

    /// The fields, uncompressed, bounded as the guest bounds them.
    fn plain_payload(&self) -> Result<Vec<u8>, TransferError> {
        if self.files.len() > MAX_BUNDLE_FILES {
            return Err(TransferError::TooManyFiles {
                count: self.files.len(),
            });
        }
        let mut payload = Vec::new();
        payload.extend_from_slice(&self.host_time_unix_ns.to_le_bytes());
        payload.extend_from_slice(&(self.files.len() as u32).to_le_bytes());
        for file in &self.files {
            if !path_is_safe(&file.path) {
                return Err(TransferError::BadPath {
                    path: file.path.clone(),
                });
            }
            payload.extend_from_slice(&(file.path.len() as u16).to_le_bytes());
            payload.extend_from_slice(file.path.as_bytes());
            let len = u32::try_from(file.data.len()).map_err(|_| TransferError::TooLarge {
                bytes: file.data.len(),
            })?;
            payload.extend_from_slice(&len.to_le_bytes());
            payload.extend_from_slice(&file.data);
            if payload.len() > MAX_BUNDLE_BYTES {
                return Err(TransferError::TooLarge {
                    bytes: payload.len(),
                });
            }
        }
        Ok(payload)
    }
}

/// `magic`, the payload's length and CRC-32, the payload.
fn with_header(magic: &[u8; 8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BUNDLE_HEADER_BYTES + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn compress(plain: &[u8]) -> Result<Vec<u8>, TransferError> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(plain)
        .and_then(|()| encoder.finish())
        .map_err(|e| TransferError::Compression {
            error: e.to_string(),
        })
}

/// Inflates at most [`MAX_BUNDLE_BYTES`]: a small stream cannot claim unbounded memory.
fn decompress(compressed: &[u8]) -> Result<Vec<u8>, TransferError> {
    use std::io::Read;
    let mut plain = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| TransferError::Compression {
            error: e.to_string(),
        })?;
    if plain.len() > MAX_BUNDLE_BYTES {
        return Err(TransferError::TooLarge { bytes: plain.len() });
    }
    Ok(plain)
}

/// What the header says: the payload's length (already bounded), checksum and whereabouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleHeader {
    /// Compressed payload length in bytes.
    pub payload_len: usize,
    /// CRC-32 of the payload.
    pub crc32: u32,
    /// The payload is in the shared-memory region, not after the header on the port.
    pub in_shared_region: bool,
}

/// Whether 8 bytes are either magic (the start of a header).
pub fn is_header_magic(bytes: &[u8; 8]) -> bool {
    bytes == BUNDLE_MAGIC || bytes == BUNDLE_SHARED_MAGIC
}

/// Reads a bundle header: magic, bounded payload length, checksum.
pub fn parse_header(header: &[u8; BUNDLE_HEADER_BYTES]) -> Result<BundleHeader, TransferError> {
    let in_shared_region = &header[..8] == BUNDLE_SHARED_MAGIC;
    if &header[..8] != BUNDLE_MAGIC && !in_shared_region {
        return Err(TransferError::BadMagic);
    }
    let payload_len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
    if payload_len > MAX_BUNDLE_BYTES {
        return Err(TransferError::TooLarge { bytes: payload_len });
    }
    if in_shared_region && payload_len > SHARED_BUNDLE_BYTES {
        return Err(TransferError::TooLarge { bytes: payload_len });
    }
    let crc32 = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    Ok(BundleHeader {
        payload_len,
        crc32,
        in_shared_region,
    })
}

/// Reads fields off a payload, each bounded by what is left.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TransferError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(TransferError::Truncated { at: self.at })?;
        let piece = &self.bytes[self.at..end];
        self.at = end;
        Ok(piece)
    }
    fn u16(&mut self) -> Result<u16, TransferError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, TransferError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, TransferError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

/// Checks the payload against its header and splits it into files.
pub fn decode_payload(
    header: &BundleHeader,
    payload: &[u8],
) -> Result<BundleTransfer, TransferError> {
    if payload.len() != header.payload_len {
        return Err(TransferError::Truncated { at: payload.len() });
    }
    let actual = crc32fast::hash(payload);
    if actual != header.crc32 {
        return Err(TransferError::Checksum {
            expected: header.crc32,
            actual,
        });
    }
    // The region's payload is stored as it is; the port's is compressed.
    let plain = if header.in_shared_region {
        payload.to_vec()
    } else {
        decompress(payload)?
    };
    let payload = &plain[..];
    let mut fields = Fields {
        bytes: payload,
        at: 0,
    };
    let host_time_unix_ns = fields.u64()?;
    let count = fields.u32()? as usize;
    if count > MAX_BUNDLE_FILES {
        return Err(TransferError::TooManyFiles { count });
    }
    let mut files = Vec::with_capacity(count);
    for _ in 0..count {
        let path_len = fields.u16()? as usize;
        let path = String::from_utf8_lossy(fields.take(path_len)?).into_owned();
        if !path_is_safe(&path) {
            return Err(TransferError::BadPath { path });
        }
        let data_len = fields.u32()? as usize;
        let data = fields.take(data_len)?.to_vec();
        files.push(BundleFile { path, data });
    }
    if fields.at != payload.len() {
        return Err(TransferError::TrailingBytes {
            bytes: payload.len() - fields.at,
        });
    }
    Ok(BundleTransfer {
        host_time_unix_ns,
        files,
    })
}

/// Header and payload in one buffer (the host's tests and tools; the agent reads in two steps).
pub fn decode(bytes: &[u8]) -> Result<BundleTransfer, TransferError> {
    let header: &[u8; BUNDLE_HEADER_BYTES] = bytes
        .get(..BUNDLE_HEADER_BYTES)
        .and_then(|h| h.try_into().ok())
        .ok_or(TransferError::Truncated { at: bytes.len() })?;
    let header = parse_header(header)?;
    decode_payload(&header, &bytes[BUNDLE_HEADER_BYTES..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BundleTransfer {
        BundleTransfer {
            host_time_unix_ns: 1_700_000_000_123_456_789,
            files: vec![
                BundleFile {
                    path: "harness/manifest.json".into(),
                    data: b"{}".to_vec(),
                },
                BundleFile {
                    path: "harness/objects/a.bpf.o".into(),
                    // Every byte value, tty control characters included.
                    data: (0..=255u8).cycle().take(1000).collect(),
                },
                BundleFile {
                    path: "harness/empty".into(),
                    data: vec![],
                },
            ],
        }
    }

    #[test]
    fn round_trips() {
        let bytes = sample().encode().unwrap();
        assert_eq!(&bytes[..8], BUNDLE_MAGIC);
        assert_eq!(decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn a_split_bundle_reads_back_from_its_two_halves() {
        let bytes = sample().encode().unwrap();
        let (header, payload) = sample().encode_for_shared_region().unwrap().unwrap();
        let payload = &payload[..];
        assert_eq!(&header[..8], BUNDLE_SHARED_MAGIC);
        assert!(is_header_magic(header[..8].try_into().unwrap()));
        let parsed = parse_header(&header).unwrap();
        assert!(parsed.in_shared_region);
        assert_eq!(parsed.payload_len, payload.len());
        assert_eq!(decode_payload(&parsed, payload).unwrap(), sample());
        assert!(
            !parse_header(bytes[..16].try_into().unwrap())
                .unwrap()
                .in_shared_region
        );
        // Stored, not compressed: a compressed payload under the shared header does not decode.
        let compressed = &bytes[BUNDLE_HEADER_BYTES..];
        let as_shared = BundleHeader {
            payload_len: compressed.len(),
            crc32: crc32fast::hash(compressed),
            in_shared_region: true,
        };
        assert!(decode_payload(&as_shared, compressed).is_err());
        // What the region cannot hold goes over the port.
        let big = BundleTransfer {
            host_time_unix_ns: 1,
            files: vec![BundleFile {
                path: "big".into(),
                data: vec![0; SHARED_BUNDLE_BYTES],
            }],
        };
        assert!(big.encode_for_shared_region().unwrap().is_none());
        let mut header = [0u8; BUNDLE_HEADER_BYTES];
        header[..8].copy_from_slice(BUNDLE_SHARED_MAGIC);
        header[8..12].copy_from_slice(&(SHARED_BUNDLE_BYTES as u32 + 1).to_le_bytes());
        assert!(matches!(
            parse_header(&header),
            Err(TransferError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let mut bytes = sample().encode().unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(
            decode(&bytes),
            Err(TransferError::Checksum { .. })
        ));
    }

    #[test]
    fn bounds_are_checked_before_allocating() {
        let mut header = [0u8; BUNDLE_HEADER_BYTES];
        header[..8].copy_from_slice(BUNDLE_MAGIC);
        header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            parse_header(&header),
            Err(TransferError::TooLarge {
                bytes: u32::MAX as usize
            })
        );
        header[..8].copy_from_slice(b"@@BUNDLX");
        assert_eq!(parse_header(&header), Err(TransferError::BadMagic));
    }

    /// Payloads built by hand (with a valid checksum) that lie about their own contents.
    #[test]
    fn lying_payloads_are_refused() {
        let payload = |count: u32, rest: &[u8]| {
            let mut p = 5u64.to_le_bytes().to_vec();
            p.extend_from_slice(&count.to_le_bytes());
            p.extend_from_slice(rest);
            p
        };
        let check = |p: Vec<u8>| {
            let p = compress(&p).unwrap();
            let header = BundleHeader {
                payload_len: p.len(),
                crc32: crc32fast::hash(&p),
                in_shared_region: false,
            };
            decode_payload(&header, &p)
        };
        let file = |path: &str, len: u32, data: &[u8]| {
            let mut f = (path.len() as u16).to_le_bytes().to_vec();
            f.extend_from_slice(path.as_bytes());
            f.extend_from_slice(&len.to_le_bytes());
            f.extend_from_slice(data);
            f
        };
        type Expect = fn(&TransferError) -> bool;
        let table: Vec<(Vec<u8>, Expect)> = vec![
            (payload(u32::MAX, &[]), |e| {
                matches!(e, TransferError::TooManyFiles { .. })
            }),
            (payload(1, &file("a", 100, b"short")), |e| {
                matches!(e, TransferError::Truncated { .. })
            }),
            (payload(1, &file("../etc/passwd", 1, b"x")), |e| {
                matches!(e, TransferError::BadPath { .. })
            }),
            (payload(1, &file("/init", 1, b"x")), |e| {
                matches!(e, TransferError::BadPath { .. })
            }),
            (payload(1, &file("a//b", 1, b"x")), |e| {
                matches!(e, TransferError::BadPath { .. })
            }),
            (payload(0, b"extra"), |e| {
                matches!(e, TransferError::TrailingBytes { bytes: 5 })
            }),
            (payload(2, &file("a", 1, b"x")), |e| {
                matches!(e, TransferError::Truncated { .. })
            }),
        ];
        for (i, (p, expected)) in table.into_iter().enumerate() {
            let got = check(p);
            assert!(got.as_ref().is_err_and(expected), "case {i}: {got:?}");
        }
        assert!(check(payload(1, &file("a/b", 1, b"x"))).is_ok());
    }

    #[test]
    fn a_payload_that_is_not_zlib_is_refused() {
        let p = b"plain bytes".to_vec();
        let header = BundleHeader {
            payload_len: p.len(),
            crc32: crc32fast::hash(&p),
            in_shared_region: false,
        };
        assert!(matches!(
            decode_payload(&header, &p),
            Err(TransferError::Compression { .. })
        ));
    }

    #[test]
    fn the_encoder_refuses_what_the_guest_would() {
        let mut bad = sample();
        bad.files[0].path = "harness/../../x".into();
        assert!(matches!(bad.encode(), Err(TransferError::BadPath { .. })));
        let short = decode(&sample().encode().unwrap()[..10]);
        assert!(matches!(short, Err(TransferError::Truncated { .. })));
    }
}
