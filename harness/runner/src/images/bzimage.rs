//! `vmlinuz` (x86 bzImage) to `vmlinux` (the uncompressed kernel ELF, bootable through PVH).
//!
//! A bzImage is a real-mode setup part (`setup_sects` sectors after the boot sector) followed by
//! the protected-mode part, which holds the compressed kernel. Boot protocol 2.08+ records where:
//! `payload_offset` (u32 LE at 0x248) and `payload_length` (u32 LE at 0x24c), relative to the
//! start of the protected-mode part. The payload is one xz stream, zstd frame or gzip member,
//! followed by the uncompressed size as u32 LE; decompressing it yields the ELF.

use std::io::Read;

/// Largest vmlinux accepted (guards against decompression bombs).
pub const MAX_VMLINUX: u64 = 1 << 30;

const OFF_SETUP_SECTS: usize = 0x1f1;
const OFF_HDR_MAGIC: usize = 0x202;
const OFF_VERSION: usize = 0x206;
const OFF_PAYLOAD_OFFSET: usize = 0x248;
const OFF_PAYLOAD_LENGTH: usize = 0x24c;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// The input already was an uncompressed ELF.
    None,
    Xz,
    Zstd,
    Gzip,
}

impl Compression {
    fn detect(data: &[u8]) -> Option<Compression> {
        if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Compression::Xz)
        } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else if data.starts_with(&[0x1f, 0x8b, 0x08]) {
            Some(Compression::Gzip)
        } else {
            None
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BzImageError {
    #[error("not a bzImage: {0}")]
    NotBzImage(String),
    #[error("the kernel payload uses an unsupported compression (first bytes {0}); supported: xz, zstd, gzip")]
    UnsupportedCompression(String),
    #[error("{compression:?} payload at offset {offset:#x} does not decompress: {message}")]
    Corrupt {
        compression: Compression,
        offset: usize,
        message: String,
    },
    #[error("the decompressed kernel is not an ELF file (first bytes {0})")]
    NotElf(String),
}

fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    d.get(off..off + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
}

/// Where the compressed payload is, per the setup header.
fn payload_from_header(bz: &[u8]) -> Result<(usize, &[u8]), BzImageError> {
    if bz.len() < 0x250 {
        return Err(BzImageError::NotBzImage(format!(
            "{} bytes is too short for a setup header",
            bz.len()
        )));
    }
    if &bz[OFF_HDR_MAGIC..OFF_HDR_MAGIC + 4] != b"HdrS" {
        return Err(BzImageError::NotBzImage(
            "no `HdrS` setup header magic at 0x202".into(),
        ));
    }
    let version = u16::from_le_bytes([bz[OFF_VERSION], bz[OFF_VERSION + 1]]);
    if version < 0x208 {
        return Err(BzImageError::NotBzImage(format!(
            "boot protocol {}.{:02} has no payload fields (2.08+ needed)",
            version >> 8,
            version & 0xff
        )));
    }
    let setup_sects = match bz[OFF_SETUP_SECTS] {
        0 => 4,
        n => n as usize,
    };
    let pm_start = (setup_sects + 1) * 512;
    let off = u32_at(bz, OFF_PAYLOAD_OFFSET).expect("length checked") as usize;
    let len = u32_at(bz, OFF_PAYLOAD_LENGTH).expect("length checked") as usize;
    let start = pm_start
        .checked_add(off)
        .filter(|s| *s < bz.len())
        .ok_or_else(|| {
            BzImageError::NotBzImage(format!("payload offset {off:#x} is past the end"))
        })?;
    let end = start.saturating_add(len).min(bz.len());
    Ok((start, &bz[start..end]))
}

fn decode(c: Compression, data: &[u8], size_hint: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size_hint.min(MAX_VMLINUX as usize));
    let limit = MAX_VMLINUX + 1;
    match c {
        Compression::None => out.extend_from_slice(data),
        // The single-stream decoders stop at the end of the first stream/frame/member, so the
        // size trailer (and any padding) after it is ignored.
        Compression::Xz => decode_xz(data, &mut out)?,
        Compression::Zstd => {
            zstd::stream::read::Decoder::with_buffer(data)?
                .single_frame()
                .take(limit)
                .read_to_end(&mut out)?;
        }
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data)
                .take(limit)
                .read_to_end(&mut out)?;
        }
    }
    if out.len() as u64 > MAX_VMLINUX {
        return Err(std::io::Error::other(format!(
            "decompresses to more than {MAX_VMLINUX} bytes"
        )));
    }
    Ok(out)
}

/// One xz stream; the bytes after it (the size trailer) are left alone, which
/// `xz2::read::XzDecoder` would reject as corruption.
fn decode_xz(data: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    use xz2::stream::{Action, Status, Stream};
    let mut s = Stream::new_stream_decoder(u64::MAX, 0).map_err(std::io::Error::other)?;
    loop {
        if out.len() == out.capacity() {
            out.reserve(4 << 20);
        }
        let (in_before, out_before) = (s.total_in(), s.total_out());
        let input = &data[(s.total_in() as usize).min(data.len())..];
        let action = if input.is_empty() {
            Action::Finish
        } else {
            Action::Run
        };
        match s
            .process_vec(input, out, action)
            .map_err(std::io::Error::other)?
        {
            Status::StreamEnd => return Ok(()),
            _ if out.len() as u64 > MAX_VMLINUX => {
                return Err(std::io::Error::other(format!(
                    "decompresses to more than {MAX_VMLINUX} bytes"
                )))
            }
            _ if s.total_in() == in_before && s.total_out() == out_before => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the xz stream is truncated",
                ))
            }
            _ => {}
        }
    }
}

fn hex_head(d: &[u8]) -> String {
    d.iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Decompresses a bzImage into the kernel ELF. An input that already is an ELF is returned as
/// is. Uses the setup header's payload fields; when they are missing or wrong, falls back to the
/// first xz/zstd/gzip magic that decompresses to an ELF.
pub fn decompress(bz: &[u8]) -> Result<(Vec<u8>, Compression), BzImageError> {
    if bz.starts_with(b"\x7fELF") {
        return Ok((bz.to_vec(), Compression::None));
    }
    let header = payload_from_header(bz);
    let mut first_err = None;
    if let Ok((start, payload)) = &header {
        match Compression::detect(payload) {
            Some(c) => {
                let hint = if payload.len() >= 4 {
                    u32_at(payload, payload.len() - 4).unwrap_or(0) as usize
                } else {
                    0
                };
                match decode(c, payload, hint) {
                    Ok(out) if out.starts_with(b"\x7fELF") => return Ok((out, c)),
                    Ok(out) => first_err = Some(BzImageError::NotElf(hex_head(&out))),
                    Err(e) => {
                        first_err = Some(BzImageError::Corrupt {
                            compression: c,
                            offset: *start,
                            message: e.to_string(),
                        })
                    }
                }
            }
            None => {
                first_err = Some(BzImageError::UnsupportedCompression(hex_head(payload)));
            }
        }
    }
    // Fallback: scan for magics past the setup part.
    let from = 512.min(bz.len());
    for i in from..bz.len().saturating_sub(6) {
        if let Some(c) = Compression::detect(&bz[i..]) {
            if let Ok(out) = decode(c, &bz[i..], 0) {
                if out.starts_with(b"\x7fELF") {
                    return Ok((out, c));
                }
            }
        }
    }
    Err(match (first_err, header) {
        (Some(e), _) => e,
        (None, Err(e)) => e,
        (None, Ok(_)) => BzImageError::NotBzImage("no compressed kernel found".into()),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A fake bzImage: boot sector + `setup_sects` sectors, then `pm_prefix` bytes of
    /// "decompressor", then the payload and its size trailer, then padding.
    pub(crate) fn fake_bzimage(setup_sects: u8, payload: &[u8], uncompressed: usize) -> Vec<u8> {
        let sects = if setup_sects == 0 {
            4
        } else {
            setup_sects as usize
        };
        let pm_start = (sects + 1) * 512;
        let pm_prefix = 300;
        let mut v = vec![0u8; pm_start + pm_prefix];
        v[OFF_SETUP_SECTS] = setup_sects;
        v[OFF_HDR_MAGIC..OFF_HDR_MAGIC + 4].copy_from_slice(b"HdrS");
        v[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
        let mut p = payload.to_vec();
        p.extend_from_slice(&(uncompressed as u32).to_le_bytes());
        v[OFF_PAYLOAD_OFFSET..OFF_PAYLOAD_OFFSET + 4]
            .copy_from_slice(&(pm_prefix as u32).to_le_bytes());
        v[OFF_PAYLOAD_LENGTH..OFF_PAYLOAD_LENGTH + 4]
            .copy_from_slice(&(p.len() as u32).to_le_bytes());
        v.extend_from_slice(&p);
        v.extend_from_slice(&[0u8; 100]);
        v
    }

    pub(crate) fn fake_elf() -> Vec<u8> {
        let mut e = b"\x7fELF\x02\x01\x01".to_vec();
        e.extend((0..200_000u32).map(|i| (i % 251) as u8));
        e
    }

    fn xz(d: &[u8]) -> Vec<u8> {
        let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }
    fn zst(d: &[u8]) -> Vec<u8> {
        zstd::encode_all(d, 3).unwrap()
    }
    fn gz(d: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decompresses_each_format() {
        let elf = fake_elf();
        for (sects, c, payload) in [
            (27u8, Compression::Xz, xz(&elf)),
            (0, Compression::Zstd, zst(&elf)),
            (4, Compression::Gzip, gz(&elf)),
        ] {
            let bz = fake_bzimage(sects, &payload, elf.len());
            let (out, got) = decompress(&bz).unwrap();
            assert_eq!(got, c);
            assert_eq!(out, elf);
        }
    }

    #[test]
    fn falls_back_to_scanning_when_header_is_wrong() {
        let elf = fake_elf();
        let mut bz = fake_bzimage(4, &zst(&elf), elf.len());
        bz[OFF_PAYLOAD_OFFSET..OFF_PAYLOAD_OFFSET + 4].copy_from_slice(&7u32.to_le_bytes());
        let (out, c) = decompress(&bz).unwrap();
        assert_eq!((out, c), (elf, Compression::Zstd));
    }

    #[test]
    fn elf_passes_through() {
        let elf = fake_elf();
        assert_eq!(decompress(&elf).unwrap(), (elf, Compression::None));
    }

    #[test]
    fn errors_are_clear() {
        let e = decompress(b"hello").unwrap_err().to_string();
        assert!(e.contains("too short"), "{e}");
        let e = decompress(&vec![0u8; 4096]).unwrap_err().to_string();
        assert!(e.contains("HdrS"), "{e}");
        // Payload that decompresses, but not to an ELF.
        let bz = fake_bzimage(4, &xz(b"not an elf at all"), 17);
        let e = decompress(&bz).unwrap_err().to_string();
        assert!(e.contains("not an ELF"), "{e}");
        // Truncated payload.
        let elf = fake_elf();
        let mut p = xz(&elf);
        p.truncate(p.len() / 2);
        let bz = fake_bzimage(4, &p, elf.len());
        let e = decompress(&bz).unwrap_err().to_string();
        assert!(e.contains("does not decompress"), "{e}");
        // Unknown compression (lz4 legacy magic).
        let bz = fake_bzimage(4, &[0x02, 0x21, 0x4c, 0x18, 1, 2, 3, 4], 8);
        let e = decompress(&bz).unwrap_err().to_string();
        assert!(e.contains("unsupported compression"), "{e}");
    }
}
