//! arm64 kernels: Debian's `vmlinuz` to the raw `Image` QEMU boots, and the BTF inside it.
//!
//! An arm64 `vmlinuz` is the raw `Image` compressed as a whole (gzip on Debian), or an EFI
//! "zboot" image (a PE stub with `zimg` at offset 4 naming where its compressed payload is).
//! The `Image` starts with a 64-byte header whose magic `ARM\x64` sits at 0x38. It is no ELF:
//! there are no sections, so the kernel's `.BTF` is found by its header inside the bytes (see
//! [`find_btf`]).

use std::io::Read;

use super::bzimage::{Compression, MAX_VMLINUX};

const IMAGE_MAGIC_OFFSET: usize = 0x38;
const IMAGE_MAGIC: &[u8; 4] = b"ARM\x64";
const IMAGE_HEADER_LEN: usize = 64;

/// `zimg` zboot header: payload offset (u32 LE at 8), payload size (u32 LE at 12), compression
/// name (NUL-padded, at 24..56).
const ZBOOT_MAGIC: &[u8; 4] = b"zimg";

/// BTF header: magic 0xeB9F, version 1, flags 0, hdr_len; then type_off, type_len, str_off,
/// str_len, all u32 little-endian (arm64 kernels are little-endian here).
const BTF_PREFIX: [u8; 4] = [0x9f, 0xeb, 0x01, 0x00];
const BTF_MIN_HEADER: u32 = 24;
/// The most BTF candidates [`find_btf`] parses: header-shaped byte runs in code and data
/// beyond this are not worth the time (a kernel has one vmlinux BTF and a few small ones).
const MAX_BTF_CANDIDATES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum Arm64ImageError {
    #[error("not an arm64 kernel image: {0}")]
    NotImage(String),
    #[error("the kernel uses an unsupported compression ({0}); supported: gzip, zstd, xz, none")]
    UnsupportedCompression(String),
    #[error("{compression:?} kernel image does not decompress: {message}")]
    Corrupt {
        compression: Compression,
        message: String,
    },
}

/// The raw `Image` of an arm64 `vmlinuz` (gzip/zstd/xz of the whole file, an EFI zboot image,
/// or an `Image` already), and how it was compressed. The result is checked to be an `Image`.
pub fn decompress(vmlinuz: &[u8]) -> Result<(Vec<u8>, Compression), Arm64ImageError> {
    let (compression, payload) = if is_image(vmlinuz) {
        (Compression::None, vmlinuz)
    } else if vmlinuz.get(4..8) == Some(ZBOOT_MAGIC) {
        zboot_payload(vmlinuz)?
    } else {
        let c = detect(vmlinuz).ok_or_else(|| {
            Arm64ImageError::NotImage(format!(
                "no `ARM\\x64` magic at {IMAGE_MAGIC_OFFSET:#x}, and no known compression (first \
                 bytes {})",
                hex::encode(&vmlinuz[..vmlinuz.len().min(8)])
            ))
        })?;
        (c, vmlinuz)
    };
    let image = decode(compression, payload).map_err(|e| Arm64ImageError::Corrupt {
        compression,
        message: e.to_string(),
    })?;
    if image.len() as u64 > MAX_VMLINUX {
        return Err(Arm64ImageError::Corrupt {
            compression,
            message: format!("decompresses to more than {MAX_VMLINUX} bytes"),
        });
    }
    if !is_image(&image) {
        return Err(Arm64ImageError::NotImage(format!(
            "the decompressed kernel has no `ARM\\x64` magic at {IMAGE_MAGIC_OFFSET:#x}"
        )));
    }
    Ok((image, compression))
}

fn is_image(data: &[u8]) -> bool {
    data.len() >= IMAGE_HEADER_LEN
        && &data[IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4] == IMAGE_MAGIC
}

fn detect(data: &[u8]) -> Option<Compression> {
    if data.starts_with(&[0x1f, 0x8b, 0x08]) {
        Some(Compression::Gzip)
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(Compression::Xz)
    } else {
        None
    }
}

fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    d.get(off..off.checked_add(4)?)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn zboot_payload(data: &[u8]) -> Result<(Compression, &[u8]), Arm64ImageError> {
    let bad = |m: String| Arm64ImageError::NotImage(format!("EFI zboot image: {m}"));
    let offset = u32_at(data, 8).ok_or_else(|| bad("header cut short".into()))? as usize;
    let size = u32_at(data, 12).ok_or_else(|| bad("header cut short".into()))? as usize;
    let name = data
        .get(24..56)
        .ok_or_else(|| bad("header cut short".into()))?;
    let name: String = name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as char)
        .collect();
    let compression = match name.as_str() {
        "gzip" => Compression::Gzip,
        "zstd" | "zstd22" => Compression::Zstd,
        "xzkern" | "xz" => Compression::Xz,
        other => return Err(Arm64ImageError::UnsupportedCompression(other.to_string())),
    };
    let payload = offset
        .checked_add(size)
        .and_then(|end| data.get(offset..end))
        .ok_or_else(|| {
            bad(format!(
                "payload {offset:#x}+{size:#x} is past the end ({} bytes)",
                data.len()
            ))
        })?;
    Ok((compression, payload))
}

fn decode(c: Compression, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let limit = MAX_VMLINUX + 1;
    let mut out = Vec::new();
    match c {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data)
                .take(limit)
                .read_to_end(&mut out)?;
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::with_buffer(data)?
                .single_frame()
                .take(limit)
                .read_to_end(&mut out)?;
        }
        Compression::Xz => {
            xz2::read::XzDecoder::new(data)
                .take(limit)
                .read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

/// The kernel's own BTF inside a raw `Image`: among the byte runs that start like a BTF header
/// (magic, version 1, flags 0, a header length of at least 24) whose sections fit in the image
/// and which `core_reloc` parses, the one with the most types (the kernel also embeds small
/// BTF blobs of its own BPF programs). `None`: the kernel has no BTF.
pub fn find_btf(image: &[u8]) -> Option<&[u8]> {
    let mut best: Option<(&[u8], u32)> = None;
    let mut candidates = 0;
    let mut from = 0;
    while candidates < MAX_BTF_CANDIDATES {
        let Some(i) = find(&image[from..], &BTF_PREFIX) else {
            break;
        };
        let start = from + i;
        from = start + 1;
        let Some(blob) = btf_blob_at(image, start) else {
            continue;
        };
        candidates += 1;
        if best.is_some_and(|(b, _)| b.len() >= blob.len()) {
            continue;
        }
        if let Ok(btf) = core_reloc::Btf::parse(blob) {
            let types = btf.type_count();
            if !matches!(best, Some((_, t)) if t >= types) {
                best = Some((blob, types));
            }
        }
    }
    best.map(|(b, _)| b)
}

/// The bytes of the BTF blob whose header starts at `start`, when the header is well formed
/// and everything it describes lies inside `image`.
fn btf_blob_at(image: &[u8], start: usize) -> Option<&[u8]> {
    let header = image.get(start..start.checked_add(BTF_MIN_HEADER as usize)?)?;
    let hdr_len = u32_at(header, 4)?;
    // 24 today; a later kernel may grow it, but not beyond a page.
    if !(BTF_MIN_HEADER..=4096).contains(&hdr_len) {
        return None;
    }
    let type_off = u32_at(header, 8)? as u64;
    let type_len = u32_at(header, 12)? as u64;
    let str_off = u32_at(header, 16)? as u64;
    let str_len = u32_at(header, 20)? as u64;
    if str_len == 0 {
        return None;
    }
    let body = (type_off + type_len).max(str_off + str_len);
    let total = hdr_len as u64 + body;
    let end = (start as u64).checked_add(total)?;
    if end > image.len() as u64 {
        return None;
    }
    Some(&image[start..end as usize])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A raw Image of `len` bytes with the arm64 header magic.
    fn image(len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        v[IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4].copy_from_slice(IMAGE_MAGIC);
        v
    }

    /// BTF with `ints` INT types named "a".
    fn btf(ints: u32) -> Vec<u8> {
        let mut types = Vec::new();
        for _ in 0..ints {
            types.extend(1u32.to_le_bytes()); // name_off
            types.extend((1u32 << 24).to_le_bytes()); // kind INT, vlen 0
            types.extend(4u32.to_le_bytes()); // size
            types.extend(32u32.to_le_bytes()); // encoding: 32 bits
        }
        let strings = b"\0a\0";
        let mut out = Vec::new();
        out.extend([0x9f, 0xeb, 1, 0]);
        out.extend(24u32.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((types.len() as u32).to_le_bytes());
        out.extend((types.len() as u32).to_le_bytes());
        out.extend((strings.len() as u32).to_le_bytes());
        out.extend(&types);
        out.extend(strings);
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decompress_table() {
        let raw = image(4096);
        let mut zboot = vec![0u8; 64];
        zboot[0..2].copy_from_slice(b"MZ");
        zboot[4..8].copy_from_slice(b"zimg");
        let payload = gzip(&raw);
        zboot[8..12].copy_from_slice(&64u32.to_le_bytes());
        zboot[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        zboot[24..28].copy_from_slice(b"gzip");
        zboot.extend(&payload);
        let mut zboot_cut = zboot.clone();
        zboot_cut.truncate(80);
        let mut zboot_lz4 = zboot.clone();
        zboot_lz4[24..28].copy_from_slice(b"lz4\0");

        let ok: &[(&str, Vec<u8>, Compression)] = &[
            ("gzip", gzip(&raw), Compression::Gzip),
            ("raw", raw.clone(), Compression::None),
            ("zboot", zboot, Compression::Gzip),
        ];
        for (what, input, want) in ok {
            let (out, c) = decompress(input).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(out, raw, "{what}");
            assert_eq!(c, *want, "{what}");
        }
        let bad: &[(&str, Vec<u8>, &str)] = &[
            ("empty", vec![], "no `ARM\\x64` magic"),
            (
                "gzip of garbage",
                gzip(&[1u8; 100]),
                "decompressed kernel has no",
            ),
            ("cut gzip", gzip(&raw)[..20].to_vec(), "does not decompress"),
            ("zboot cut", zboot_cut, "past the end"),
            ("zboot lz4", zboot_lz4, "unsupported compression (lz4)"),
        ];
        for (what, input, want) in bad {
            let e = decompress(input).unwrap_err().to_string();
            assert!(e.contains(want), "{what}: {e}");
        }
    }

    #[test]
    fn finds_the_largest_btf_that_parses() {
        let small = btf(2);
        let big = btf(40);
        let mut img = image(256);
        img.extend(&small);
        img.extend([0u8; 13]);
        let big_at = img.len();
        img.extend(&big);
        img.extend([0u8; 7]);
        let found = find_btf(&img).unwrap();
        assert_eq!(found, &big[..]);
        assert_eq!(found.as_ptr(), img[big_at..].as_ptr());
    }

    #[test]
    fn header_shaped_bytes_that_do_not_fit_or_parse_are_skipped() {
        let good = btf(3);
        // A header claiming sections past the end of the image.
        let mut too_long = good.clone();
        too_long[20..24].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        // A header whose type section holds a kind that does not exist.
        let mut garbage = btf(50);
        garbage[24 + 4..24 + 8].copy_from_slice(&(31u32 << 24).to_le_bytes());
        // hdr_len below 24.
        let mut short_header = btf(60);
        short_header[4..8].copy_from_slice(&8u32.to_le_bytes());

        let mut img = image(128);
        img.extend(&garbage);
        img.extend(&short_header);
        img.extend(&good);
        img.extend(&too_long[..30]);
        assert_eq!(find_btf(&img), Some(&good[..]));
        assert_eq!(find_btf(&image(4096)), None);
        // The header at the very end, cut.
        let mut cut = image(64);
        cut.extend(&good[..10]);
        assert_eq!(find_btf(&cut), None);
    }
}
