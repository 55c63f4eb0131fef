//! `.BTF.ext`: per-section func_info, line_info and CO-RE relocation records.

use crate::bytes::{slice_at, u16_at, u32_at};

const MIN_HEADER_LEN: usize = 24;
const FUNC_INFO_MIN: u32 = 8;
const LINE_INFO_MIN: u32 = 16;
const CORE_RELO_MIN: u32 = 16;

/// Why a `.BTF.ext` section is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum BtfExtError {
    /// Fewer bytes than a header.
    #[error(".BTF.ext too short ({0} bytes)")]
    TooShort(usize),
    /// Not `.BTF.ext`.
    #[error("bad .BTF.ext magic {0:#06x}")]
    BadMagic(u16),
    /// A version other than 1.
    #[error("unsupported .BTF.ext version {0}")]
    BadVersion(u8),
    /// A header or sub-section that does not fit.
    #[error(".BTF.ext {what}: {why}")]
    Malformed {
        /// Which part.
        what: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Records of one kind for one ELF section, raw, `rec_size` bytes each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtSection {
    /// Offset of the ELF section name in the object's `.BTF` strings.
    pub sec_name_off: u32,
    /// Number of records.
    pub count: u32,
    /// The records, back to back.
    pub records: Vec<u8>,
}

impl ExtSection {
    /// The i-th record's bytes.
    pub fn record(&self, rec_size: u32, i: u32) -> Option<&[u8]> {
        let size = rec_size as usize;
        slice_at(&self.records, (i as usize).checked_mul(size)?, size)
    }
}

/// One `struct bpf_core_relo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreRelo {
    /// Byte offset of the instruction within its ELF section.
    pub insn_off: u32,
    /// Local root type id in the object's BTF.
    pub type_id: u32,
    /// Offset of the access string ("0:1:2") in the object's BTF strings.
    pub access_str_off: u32,
    /// `bpf_core_relo_kind`, raw (see [`crate::RelocKind`]).
    pub kind: u32,
}

/// Parsed `.BTF.ext`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BtfExt {
    /// Size of one `bpf_func_info` record.
    pub func_info_rec_size: u32,
    /// `bpf_func_info` records, per ELF section.
    pub func_info: Vec<ExtSection>,
    /// Size of one `bpf_line_info` record.
    pub line_info_rec_size: u32,
    /// `bpf_line_info` records, per ELF section.
    pub line_info: Vec<ExtSection>,
    /// Size of one `bpf_core_relo` record.
    pub core_relo_rec_size: u32,
    /// `bpf_core_relo` records, per ELF section.
    pub core_relos: Vec<ExtSection>,
}

impl BtfExt {
    /// Parses a `.BTF.ext` section (little endian), bounding every count by the section.
    pub fn parse(raw: &[u8]) -> Result<BtfExt, BtfExtError> {
        if raw.len() < MIN_HEADER_LEN {
            return Err(BtfExtError::TooShort(raw.len()));
        }
        let magic = u16_at(raw, 0).ok_or(BtfExtError::TooShort(raw.len()))?;
        if magic != crate::btf::BTF_MAGIC {
            return Err(BtfExtError::BadMagic(magic));
        }
        if raw[2] != 1 {
            return Err(BtfExtError::BadVersion(raw[2]));
        }
        let word = |off| u32_at(raw, off).unwrap_or(0) as usize;
        let hdr_len = word(4);
        if hdr_len < MIN_HEADER_LEN || hdr_len > raw.len() {
            return Err(BtfExtError::Malformed {
                what: "header",
                why: "header length out of range",
            });
        }
        let body = &raw[hdr_len..];
        let mut ext = BtfExt::default();
        (ext.func_info_rec_size, ext.func_info) =
            parse_info(body, word(8), word(12), FUNC_INFO_MIN, "func_info")?;
        (ext.line_info_rec_size, ext.line_info) =
            parse_info(body, word(16), word(20), LINE_INFO_MIN, "line_info")?;
        // The CO-RE relocation part exists only with the longer header.
        if hdr_len >= 32 {
            (ext.core_relo_rec_size, ext.core_relos) =
                parse_info(body, word(24), word(28), CORE_RELO_MIN, "core_relo")?;
        }
        Ok(ext)
    }

    /// CO-RE relocations of one section, decoded.
    pub fn core_relos_of(&self, section: &ExtSection) -> Vec<CoreRelo> {
        (0..section.count)
            .filter_map(|i| section.record(self.core_relo_rec_size, i))
            .map(|r| {
                let w = |o| u32_at(r, o).unwrap_or(0);
                CoreRelo {
                    insn_off: w(0),
                    type_id: w(4),
                    access_str_off: w(8),
                    kind: w(12),
                }
            })
            .collect()
    }
}

fn parse_info(
    body: &[u8],
    off: usize,
    len: usize,
    min_rec: u32,
    what: &'static str,
) -> Result<(u32, Vec<ExtSection>), BtfExtError> {
    let bad = |why| BtfExtError::Malformed { what, why };
    if len == 0 {
        return Ok((min_rec, Vec::new()));
    }
    let data = slice_at(body, off, len).ok_or(bad("out of bounds"))?;
    let rec_size = u32_at(data, 0).ok_or(bad("missing record size"))?;
    if rec_size < min_rec || rec_size % 4 != 0 {
        return Err(bad("bad record size"));
    }
    let mut sections = Vec::new();
    let mut pos = 4usize;
    while pos < data.len() {
        let sec_name_off = u32_at(data, pos).ok_or(bad("truncated section header"))?;
        let count = u32_at(data, pos + 4).ok_or(bad("truncated section header"))?;
        pos += 8;
        let bytes = (count as usize)
            .checked_mul(rec_size as usize)
            .ok_or(bad("record count overflows"))?;
        let records = slice_at(data, pos, bytes).ok_or(bad("records run past the end"))?;
        pos += bytes;
        sections.push(ExtSection {
            sec_name_off,
            count,
            records: records.to_vec(),
        });
    }
    Ok((rec_size, sections))
}
