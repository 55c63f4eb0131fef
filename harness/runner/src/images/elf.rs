//! What the harness needs from a kernel ELF (`vmlinux`): the PVH entry note (so QEMU can boot
//! it with `-kernel`), the raw `.BTF` section, and the `Linux version ...` banner.

use object::read::elf::{ElfFile, FileHeader, ProgramHeader};
use object::{Object, ObjectSection};

/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit physical entry point PVH boot jumps to.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// BTF header magic (`0xeB9F`, little-endian on x86 and arm64).
pub const BTF_MAGIC: u16 = 0xeb9f;

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("not a valid ELF file: {0}")]
    Parse(String),
    #[error(
        "the kernel has no PVH entry note (ELF note \"Xen\", type {XEN_ELFNOTE_PHYS32_ENTRY}): it \
         was built without CONFIG_PVH=y and cannot be booted with QEMU `-kernel vmlinux`"
    )]
    NoPvhNote,
}

/// The PVH entry point from the `Xen` / `XEN_ELFNOTE_PHYS32_ENTRY` note, if the ELF has one.
pub fn pvh_entry(data: &[u8]) -> Result<Option<u64>, ElfError> {
    match object::FileKind::parse(data).map_err(|e| ElfError::Parse(e.to_string()))? {
        object::FileKind::Elf64 => {
            pvh_entry_in::<object::elf::FileHeader64<object::Endianness>>(data)
        }
        object::FileKind::Elf32 => {
            pvh_entry_in::<object::elf::FileHeader32<object::Endianness>>(data)
        }
        k => Err(ElfError::Parse(format!("{k:?} is not ELF"))),
    }
}

fn pvh_entry_in<E: FileHeader<Endian = object::Endianness>>(
    data: &[u8],
) -> Result<Option<u64>, ElfError> {
    let file = ElfFile::<E>::parse(data).map_err(|e| ElfError::Parse(e.to_string()))?;
    let endian = file.endian();
    for ph in file.elf_program_headers() {
        let Ok(Some(mut notes)) = ph.notes(endian, data) else {
            continue;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == b"Xen" && note.n_type(endian) == XEN_ELFNOTE_PHYS32_ENTRY {
                let d = note.desc();
                let v = match d.len() {
                    4 => u32::from_le_bytes(d.try_into().expect("4")) as u64,
                    8 => u64::from_le_bytes(d.try_into().expect("8")),
                    _ => continue,
                };
                return Ok(Some(v));
            }
        }
    }
    Ok(None)
}

/// The raw bytes of the `.BTF` section, if there is one.
pub fn btf_section(data: &[u8]) -> Result<Option<Vec<u8>>, ElfError> {
    let file = object::File::parse(data).map_err(|e| ElfError::Parse(e.to_string()))?;
    match file.section_by_name(".BTF") {
        Some(s) => Ok(Some(
            s.data()
                .map_err(|e| ElfError::Parse(e.to_string()))?
                .to_vec(),
        )),
        None => Ok(None),
    }
}

/// A short summary of a raw BTF blob, after checking its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BtfSummary {
    pub types: u32,
    pub type_bytes: u32,
    pub string_bytes: u32,
}

/// Checks the BTF header (magic 0xeB9F, version 1, sections inside the blob) and counts the
/// types. Little-endian BTF only (x86_64 and arm64 kernels).
pub fn btf_summary(btf: &[u8]) -> Result<BtfSummary, String> {
    let u16_at = |o: usize| btf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        btf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
    };
    if u16_at(0) != Some(BTF_MAGIC) {
        return Err(format!(
            "bad BTF magic {:02x?} (expected 9f eb)",
            btf.get(..2).unwrap_or(btf)
        ));
    }
    if btf[2] != 1 {
        return Err(format!("unsupported BTF version {}", btf[2]));
    }
    let hdr_len = u32_at(4).ok_or("truncated BTF header")? as usize;
    let type_off = u32_at(8).ok_or("truncated BTF header")? as usize;
    let type_len = u32_at(12).ok_or("truncated BTF header")? as usize;
    let str_off = u32_at(16).ok_or("truncated BTF header")? as usize;
    let str_len = u32_at(20).ok_or("truncated BTF header")? as usize;
    let types_start = hdr_len + type_off;
    let types_end = types_start + type_len;
    if types_end > btf.len() || hdr_len + str_off + str_len > btf.len() {
        return Err(format!(
            "BTF sections end past the blob ({} bytes)",
            btf.len()
        ));
    }
    let mut p = types_start;
    let mut n = 0u32;
    while p < types_end {
        let info = u32_at(p + 4).ok_or("truncated BTF type")?;
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        let extra = match kind {
            1 => 4,             // INT
            3 => 12,            // ARRAY
            4 | 5 => 12 * vlen, // STRUCT, UNION
            6 => 8 * vlen,      // ENUM
            13 => 8 * vlen,     // FUNC_PROTO
            14 => 4,            // VAR
            15 => 12 * vlen,    // DATASEC
            17 => 4,            // DECL_TAG
            19 => 12 * vlen,    // ENUM64
            2 | 7..=12 | 16 | 18 => 0,
            k => return Err(format!("unknown BTF kind {k} at byte {p}")),
        };
        p += 12 + extra;
        n += 1;
    }
    if p != types_end {
        return Err("BTF type section ends inside a type".into());
    }
    Ok(BtfSummary {
        types: n,
        type_bytes: type_len as u32,
        string_bytes: str_len as u32,
    })
}

/// The `Linux version <release> (...)` banner line, if the image holds one.
pub fn linux_banner(data: &[u8]) -> Option<String> {
    const NEEDLE: &[u8] = b"Linux version ";
    let mut from = 0;
    while let Some(i) = find(&data[from..], NEEDLE) {
        let start = from + i;
        let rest = &data[start + NEEDLE.len()..];
        if rest.first().is_some_and(|c| c.is_ascii_digit()) {
            let end = rest
                .iter()
                .position(|c| *c == b'\n' || *c == 0 || !(c.is_ascii_graphic() || *c == b' '))
                .unwrap_or(rest.len().min(400));
            let line = &data[start..start + NEEDLE.len() + end];
            return Some(String::from_utf8_lossy(line).into_owned());
        }
        from = start + NEEDLE.len();
    }
    None
}

/// The release (`uname -r`) named by a banner.
pub fn banner_release(banner: &str) -> Option<&str> {
    banner
        .strip_prefix("Linux version ")?
        .split_whitespace()
        .next()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner() {
        let mut d = b"\0junk Linux version %s\0Linux version 5.10.0-32-amd64 (kernel@example.invalid) (gcc-10) #1 SMP Debian 5.10.223-1 (2024-08-10)\n\0".to_vec();
        d.extend_from_slice(&[0xff; 10]);
        let b = linux_banner(&d).unwrap();
        assert!(
            b.starts_with("Linux version 5.10.0-32-amd64 (kernel@"),
            "{b}"
        );
        assert!(b.ends_with("(2024-08-10)"), "{b}");
        assert_eq!(banner_release(&b), Some("5.10.0-32-amd64"));
        assert_eq!(linux_banner(b"nothing here"), None);
    }

    fn btf_blob(types: &[u8], strings: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        v.push(1);
        v.push(0);
        v.extend_from_slice(&24u32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&(types.len() as u32).to_le_bytes());
        v.extend_from_slice(&(types.len() as u32).to_le_bytes());
        v.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        v.extend_from_slice(types);
        v.extend_from_slice(strings);
        v
    }

    #[test]
    fn btf_counts_types() {
        let mut t = Vec::new();
        // INT "int": name_off 1, info kind 1, size 4, then int data.
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(&(1u32 << 24).to_le_bytes());
        t.extend_from_slice(&4u32.to_le_bytes());
        t.extend_from_slice(&0x0100_0020u32.to_le_bytes());
        // STRUCT with 2 members.
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&((4u32 << 24) | 2).to_le_bytes());
        t.extend_from_slice(&8u32.to_le_bytes());
        t.extend_from_slice(&[0u8; 24]);
        // PTR.
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&(2u32 << 24).to_le_bytes());
        t.extend_from_slice(&1u32.to_le_bytes());
        let blob = btf_blob(&t, b"\0int\0");
        let s = btf_summary(&blob).unwrap();
        assert_eq!(s.types, 3);
        assert_eq!(s.string_bytes, 5);
        assert!(btf_summary(&blob[..30]).is_err());
        assert!(btf_summary(b"\x00\x00\x01\x00")
            .unwrap_err()
            .contains("magic"));
    }

    #[test]
    fn non_elf_is_an_error() {
        assert!(pvh_entry(b"not an elf, not at all").is_err());
        assert!(btf_section(b"not an elf").is_err());
    }
}
