//! BTF (BPF Type Format): parsing, lookups, name index and marshalling.
//!
//! Parsing is one branch-free pass that validates record bounds, remembers
//! where each type starts and collects the named types CO-RE can look up;
//! types are decoded on demand; the first name lookup scans, the second
//! builds the name index. [`Btf::parse_owned`] keeps the caller's buffer (no
//! copy). vmlinux (5.5 MB): about 0.6 ms to parse plus the first lookup.

mod builder;
pub mod c_header;
mod name_index;
mod resolve;
mod types;

pub use builder::BtfBuilder;
pub use c_header::{render_c_header, CHeaderError};
pub use resolve::{essential_name, essential_name_len};
pub use types::*;

use crate::bytes::{cstr_at, put_u32, u16_at, u32_at};
use name_index::{KindClass, NameIndex};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// A lookup counter that clones as its current value.
#[derive(Debug, Default)]
struct LookupCount(AtomicU32);

impl LookupCount {
    fn fetch_add(&self, n: u32, order: Ordering) -> u32 {
        self.0.fetch_add(n, order)
    }
}

impl Clone for LookupCount {
    fn clone(&self) -> Self {
        LookupCount(AtomicU32::new(self.0.load(Ordering::Relaxed)))
    }
}

/// The first two bytes of a BTF blob, little endian.
pub const BTF_MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
const COMMON_LEN: usize = 12;

/// Why a BTF blob is refused or a lookup in it failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum BtfError {
    /// Fewer bytes than a header.
    #[error("BTF blob too short for its header ({0} bytes)")]
    TooShort(usize),
    /// Not BTF.
    #[error("bad BTF magic {0:#06x}")]
    BadMagic(u16),
    /// BTF of a big-endian machine.
    #[error("big-endian BTF is not supported")]
    BigEndian,
    /// A version other than 1.
    #[error("unsupported BTF version {0}")]
    BadVersion(u8),
    /// A header whose lengths or offsets do not fit the blob.
    #[error("BTF header: {0}")]
    BadHeader(&'static str),
    /// A type record cut by the end of the type section.
    #[error("type #{id} at offset {offset}: record runs past the type section")]
    TruncatedType {
        /// The type being read.
        id: u32,
        /// Its byte offset in the type section.
        offset: usize,
    },
    /// A kind number this parser does not know.
    #[error("type #{id}: unknown kind {kind}")]
    UnknownKind {
        /// The type.
        id: u32,
        /// Its kind number.
        kind: u32,
    },
    /// More types than a type id can number.
    #[error("too many types")]
    TooManyTypes,
    /// A type id past the last type.
    #[error("type id {0} out of range")]
    BadTypeId(u32),
    /// A name offset outside the strings, or a name that is not UTF-8.
    #[error("string offset {0} out of range or not valid UTF-8")]
    BadString(u32),
    /// A chain of modifiers, typedefs or arrays that loops or is too long.
    #[error("type #{0}: chain of modifiers/typedefs/arrays too deep or looping")]
    TooDeep(u32),
    /// A record that breaks a rule of its kind.
    #[error("type #{id}: {what}")]
    Invalid {
        /// The type.
        id: u32,
        /// The rule.
        what: &'static str,
    },
}

/// Parsed BTF. Owns one buffer holding its type and string sections: the
/// caller's blob itself with [`Btf::parse_owned`] (no copy), or a copy of
/// both sections with [`Btf::parse`].
#[derive(Debug, Clone)]
pub struct Btf {
    flags: u8,
    data: Vec<u8>,
    /// Where the type section is in `data` (start, length).
    types_at: (usize, usize),
    /// Where the string section is in `data` (start, length).
    strings_at: (usize, usize),
    /// `offsets[i]` is where type id `i + 1` starts in `types`.
    offsets: Vec<u32>,
    /// (name offset, id) of every named type of a kind CO-RE looks up,
    /// collected during the parse pass for the name index; `None` once a
    /// mutation may have made it stale (the index then scans the types).
    core_named: Option<Vec<(u32, u32)>>,
    /// Name lookups so far (the first one scans instead of indexing).
    lookups: LookupCount,
    /// Name indexes for `KindClass::Core` and `KindClass::Other`, built on first use.
    names: [OnceLock<NameIndex>; 2],
}

impl PartialEq for Btf {
    fn eq(&self, other: &Btf) -> bool {
        self.type_section() == other.type_section()
            && self.string_section() == other.string_section()
    }
}
impl Eq for Btf {}

/// The 12-byte common part of a type record, undecoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawType {
    pub name_off: u32,
    pub info: u32,
    pub size_or_type: u32,
    /// Offset of the kind-specific data in the type section.
    pub extra: usize,
}

impl RawType {
    pub fn kind(&self) -> Kind {
        // Only validated records are ever turned into RawType.
        Kind::from_raw((self.info >> 24) & 0x1f).unwrap_or(Kind::Void)
    }
    pub fn vlen(&self) -> u32 {
        self.info & 0xffff
    }
    pub fn kind_flag(&self) -> bool {
        self.info >> 31 == 1
    }
}

impl Btf {
    /// Parses a raw BTF blob (header, type section, string section),
    /// copying both sections.
    pub fn parse(raw: &[u8]) -> Result<Btf, BtfError> {
        let (flags, types_at, strings_at) = Btf::check_header(raw)?;
        let (Some(types), Some(strings)) = (
            raw.get(types_at.0..types_at.0 + types_at.1),
            raw.get(strings_at.0..strings_at.0 + strings_at.1),
        ) else {
            return Err(BtfError::BadHeader("section out of bounds"));
        };
        let mut data = Vec::with_capacity(types.len() + strings.len());
        data.extend_from_slice(types);
        data.extend_from_slice(strings);
        Btf::from_data(flags, data, (0, types_at.1), (types_at.1, strings_at.1))
    }

    /// Parses a raw BTF blob the caller hands over, keeping it as the
    /// storage: no copy of the (5 MB for vmlinux) sections.
    pub fn parse_owned(raw: Vec<u8>) -> Result<Btf, BtfError> {
        let (flags, types_at, strings_at) = Btf::check_header(&raw)?;
        Btf::from_data(flags, raw, types_at, strings_at)
    }

    /// Validates the header; returns flags and where both sections are in `raw`.
    #[allow(clippy::type_complexity)]
    fn check_header(raw: &[u8]) -> Result<(u8, (usize, usize), (usize, usize)), BtfError> {
        if raw.len() < HEADER_LEN {
            return Err(BtfError::TooShort(raw.len()));
        }
        let magic = u16_at(raw, 0).ok_or(BtfError::TooShort(raw.len()))?;
        if magic == BTF_MAGIC.swap_bytes() {
            return Err(BtfError::BigEndian);
        }
        if magic != BTF_MAGIC {
            return Err(BtfError::BadMagic(magic));
        }
        let version = raw[2];
        if version != 1 {
            return Err(BtfError::BadVersion(version));
        }
        let flags = raw[3];
        let field = |off| u32_at(raw, off).map(|v| v as usize);
        let (Some(hdr_len), Some(type_off), Some(type_len), Some(str_off), Some(str_len)) =
            (field(4), field(8), field(12), field(16), field(20))
        else {
            return Err(BtfError::TooShort(raw.len()));
        };
        if hdr_len < HEADER_LEN || hdr_len > raw.len() {
            return Err(BtfError::BadHeader("header length out of range"));
        }
        let section = |off: usize, len: usize, what| {
            let start = hdr_len.checked_add(off).ok_or(BtfError::BadHeader(what))?;
            start
                .checked_add(len)
                .filter(|&end| end <= raw.len())
                .map(|_| (start, len))
                .ok_or(BtfError::BadHeader(what))
        };
        let types = section(type_off, type_len, "type section out of bounds")?;
        let strings = section(str_off, str_len, "string section out of bounds")?;
        if type_off % 4 != 0 {
            return Err(BtfError::BadHeader("type section misaligned"));
        }
        // As the kernel and libbpf: sections must not share bytes (a patch
        // to a type would otherwise change a string).
        let overlap = types.1 > 0
            && strings.1 > 0
            && types.0 < strings.0 + strings.1
            && strings.0 < types.0 + types.1;
        if overlap {
            return Err(BtfError::BadHeader("type and string sections overlap"));
        }
        if strings.1 > 0 && raw.get(strings.0) != Some(&0) {
            return Err(BtfError::BadHeader("string section must start with NUL"));
        }
        Ok((flags, types, strings))
    }

    /// Builds from a buffer and the sections' places in it, validating every record's bounds.
    fn from_data(
        flags: u8,
        data: Vec<u8>,
        types_at: (usize, usize),
        strings_at: (usize, usize),
    ) -> Result<Btf, BtfError> {
        let types = data
            .get(types_at.0..types_at.0 + types_at.1)
            .ok_or(BtfError::BadHeader("type section out of bounds"))?;
        let (offsets, core_named) = index_records(types)?;
        Ok(Btf {
            flags,
            data,
            types_at,
            strings_at,
            offsets,
            core_named: Some(core_named),
            lookups: LookupCount::default(),
            names: [OnceLock::new(), OnceLock::new()],
        })
    }

    /// Number of type ids including the implicit `void` (id 0), like libbpf's `btf__type_cnt`.
    pub fn type_count(&self) -> u32 {
        self.offsets.len() as u32 + 1
    }

    /// Marshals back to a raw blob with a standard 24-byte header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (types, strings) = (self.type_section(), self.string_section());
        let mut out = Vec::with_capacity(HEADER_LEN + types.len() + strings.len());
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.push(1);
        out.push(self.flags);
        for v in [HEADER_LEN, 0, types.len(), types.len(), strings.len()] {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        out.extend_from_slice(types);
        out.extend_from_slice(strings);
        out
    }

    pub(crate) fn type_section(&self) -> &[u8] {
        let (start, len) = self.types_at;
        self.data.get(start..start + len).unwrap_or(&[])
    }

    pub(crate) fn string_section(&self) -> &[u8] {
        let (start, len) = self.strings_at;
        self.data.get(start..start + len).unwrap_or(&[])
    }

    /// Lays the buffer out as types then strings, strings last, so both can grow.
    fn normalize(&mut self) {
        let (ts, tl) = self.types_at;
        let (ss, sl) = self.strings_at;
        if ts == 0 && ss == tl && ss + sl == self.data.len() {
            return;
        }
        let mut data = Vec::with_capacity(tl + sl);
        data.extend_from_slice(self.type_section());
        data.extend_from_slice(self.string_section());
        self.data = data;
        self.types_at = (0, tl);
        self.strings_at = (tl, sl);
    }

    /// String at `off` in the string section ("" for offset 0).
    pub fn string_at(&self, off: u32) -> Result<&str, BtfError> {
        if off == 0 {
            return Ok("");
        }
        cstr_at(self.string_section(), off as usize).ok_or(BtfError::BadString(off))
    }

    pub(crate) fn raw(&self, id: u32) -> Result<RawType, BtfError> {
        if id == 0 {
            return Ok(RawType {
                name_off: 0,
                info: 0,
                size_or_type: 0,
                extra: 0,
            });
        }
        let off = *self
            .offsets
            .get(id as usize - 1)
            .ok_or(BtfError::BadTypeId(id))? as usize;
        let types = self.type_section();
        let get = |o| u32_at(types, off + o).ok_or(BtfError::BadTypeId(id));
        Ok(RawType {
            name_off: get(0)?,
            info: get(4)?,
            size_or_type: get(8)?,
            extra: off + COMMON_LEN,
        })
    }

    /// Kind of type `id` without decoding it.
    pub fn kind_of(&self, id: u32) -> Result<Kind, BtfError> {
        Ok(self.raw(id)?.kind())
    }

    /// Name of type `id` without decoding it.
    pub fn name_of(&self, id: u32) -> Result<&str, BtfError> {
        self.string_at(self.raw(id)?.name_off)
    }

    fn extra_u32(&self, raw: &RawType, index: usize) -> Result<u32, BtfError> {
        u32_at(self.type_section(), raw.extra + 4 * index).ok_or(BtfError::Invalid {
            id: 0,
            what: "record truncated",
        })
    }

    /// Decodes type `id`.
    pub fn type_by_id(&self, id: u32) -> Result<Type<'_>, BtfError> {
        let raw = self.raw(id)?;
        let kind = raw.kind();
        let name = self.string_at(raw.name_off)?;
        let vlen = raw.vlen() as usize;
        let word = |i| self.extra_u32(&raw, i);
        let body = match kind {
            Kind::Void => TypeBody::Void,
            Kind::Int => {
                let enc = word(0)?;
                TypeBody::Int(IntType {
                    size: raw.size_or_type,
                    encoding: ((enc >> 24) & 0x0f) as u8,
                    bit_offset: ((enc >> 16) & 0xff) as u8,
                    bits: (enc & 0xff) as u8,
                })
            }
            Kind::Ptr => TypeBody::Ptr {
                target: raw.size_or_type,
            },
            Kind::Array => TypeBody::Array(ArrayType {
                elem: word(0)?,
                index: word(1)?,
                len: word(2)?,
            }),
            Kind::Struct | Kind::Union => {
                let mut members = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    let offset = word(3 * i + 2)?;
                    let (bit_offset, bitfield_size) = if raw.kind_flag() {
                        (offset & 0x00ff_ffff, offset >> 24)
                    } else {
                        (offset, 0)
                    };
                    members.push(Member {
                        name: self.string_at(word(3 * i)?)?,
                        ty: word(3 * i + 1)?,
                        bit_offset,
                        bitfield_size,
                    });
                }
                TypeBody::Composite {
                    size: raw.size_or_type,
                    members,
                }
            }
            Kind::Enum => {
                let mut values = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    values.push(EnumValue {
                        name: self.string_at(word(2 * i)?)?,
                        value: word(2 * i + 1)? as i32 as i64 as u64,
                    });
                }
                TypeBody::Enum {
                    size: raw.size_or_type,
                    signed: raw.kind_flag(),
                    values,
                }
            }
            Kind::Enum64 => {
                let mut values = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    let lo = word(3 * i + 1)? as u64;
                    let hi = word(3 * i + 2)? as u64;
                    values.push(EnumValue {
                        name: self.string_at(word(3 * i)?)?,
                        value: hi << 32 | lo,
                    });
                }
                TypeBody::Enum {
                    size: raw.size_or_type,
                    signed: raw.kind_flag(),
                    values,
                }
            }
            Kind::Fwd => TypeBody::Fwd {
                is_union: raw.kind_flag(),
            },
            Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag => {
                TypeBody::Ref {
                    target: raw.size_or_type,
                }
            }
            Kind::Func => TypeBody::Func {
                proto: raw.size_or_type,
                linkage: raw.vlen(),
            },
            Kind::FuncProto => {
                let mut params = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    params.push(Param {
                        name: self.string_at(word(2 * i)?)?,
                        ty: word(2 * i + 1)?,
                    });
                }
                TypeBody::FuncProto {
                    ret: raw.size_or_type,
                    params,
                }
            }
            Kind::Var => TypeBody::Var {
                ty: raw.size_or_type,
                linkage: word(0)?,
            },
            Kind::DataSec => {
                let mut vars = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    vars.push(VarSecInfo {
                        ty: word(3 * i)?,
                        offset: word(3 * i + 1)?,
                        size: word(3 * i + 2)?,
                    });
                }
                TypeBody::DataSec {
                    size: raw.size_or_type,
                    vars,
                }
            }
            Kind::Float => TypeBody::Float {
                size: raw.size_or_type,
            },
            Kind::DeclTag => TypeBody::DeclTag {
                target: raw.size_or_type,
                component_idx: word(0)? as i32,
            },
        };
        Ok(Type {
            id,
            name,
            kind,
            kind_flag: raw.kind_flag(),
            body,
        })
    }

    /// Ids of types whose essential name (name without a trailing `___flavor`)
    /// equals the essential name of `name`, optionally restricted to the
    /// given kinds; ascending id order.
    pub fn ids_by_essential_name(&self, kinds: Option<&[Kind]>, name: &str) -> Vec<u32> {
        let essential = essential_name(name);
        let wants = |class| kinds.is_none_or(|ks| ks.iter().any(|&k| KindClass::of(k) == class));
        let mut out = Vec::new();
        for (slot, class) in [(0, KindClass::Core), (1, KindClass::Other)] {
            if !wants(class) {
                continue;
            }
            let kind_ok = |id: &u32| match kinds {
                None => true,
                Some(kinds) => self.kind_of(*id).is_ok_and(|k| kinds.contains(&k)),
            };
            // The first lookup scans the named types instead of paying for
            // an index (a one-shot caller never needs one); the second builds it.
            let first = self.lookups.fetch_add(1, Ordering::Relaxed) == 0;
            if let (Some(named), KindClass::Core, true, None) =
                (&self.core_named, class, first, self.names[slot].get())
            {
                out.extend(self.scan_named(named, essential).filter(kind_ok));
                continue;
            }
            let index = self.names[slot].get_or_init(|| NameIndex::build(self, class));
            out.extend(index.lookup(self, essential).filter(kind_ok));
        }
        if kinds.is_none_or(|ks| ks.iter().any(|&k| KindClass::of(k) == KindClass::Other))
            && kinds.is_none_or(|ks| ks.iter().any(|&k| KindClass::of(k) == KindClass::Core))
        {
            out.sort_unstable();
        }
        out
    }

    /// Ids among `named` whose essential name is `essential`, ascending.
    fn scan_named<'a>(
        &'a self,
        named: &'a [(u32, u32)],
        essential: &'a str,
    ) -> impl Iterator<Item = u32> + 'a {
        let strings = self.string_section();
        let want = essential.as_bytes();
        named.iter().filter_map(move |&(name_off, id)| {
            let start = name_off as usize;
            // Cheap prefix test first; the full check only for the few that pass.
            let prefix = strings.get(start..start.checked_add(want.len())?)?;
            if prefix != want {
                return None;
            }
            let name = self.string_at(name_off).ok()?;
            (essential_name_len(name) == want.len()).then_some(id)
        })
    }

    /// Ids of types named exactly `name` (flavors not stripped), of the given kind.
    pub fn ids_by_name(&self, kind: Kind, name: &str) -> Vec<u32> {
        self.ids_by_essential_name(Some(&[kind]), name)
            .into_iter()
            .filter(|&id| self.name_of(id) == Ok(name))
            .collect()
    }

    /// Forces the lazy name index CO-RE uses (all kinds but functions,
    /// variables, decl tags and datasecs) to be built now.
    pub fn build_name_index(&self) {
        self.names[0].get_or_init(|| NameIndex::build(self, KindClass::Core));
    }

    // ---- crate-internal mutation, used by datasec fix-ups and sanitization ----

    /// Overwrites the 32-bit word at byte `at` of type `id`'s record.
    pub(crate) fn patch_word(&mut self, id: u32, at: usize, value: u32) -> Result<(), BtfError> {
        let raw = self.raw(id)?;
        let at = raw.extra - COMMON_LEN + at;
        let (ts, tl) = self.types_at;
        let fits = at.checked_add(4).is_some_and(|end| end <= tl);
        self.core_named = None;
        self.names = [OnceLock::new(), OnceLock::new()];
        if fits && put_u32(&mut self.data, ts + at, value) {
            Ok(())
        } else {
            Err(BtfError::BadTypeId(id))
        }
    }

    pub(crate) fn set_info(&mut self, id: u32, kind: Kind, kind_flag: bool, vlen: u32) {
        let info = (kind_flag as u32) << 31 | (kind as u32) << 24 | (vlen & 0xffff);
        let _ = self.patch_word(id, 4, info);
    }

    /// Appends a string, returning its offset.
    pub(crate) fn add_string(&mut self, s: &str) -> u32 {
        self.normalize();
        if self.strings_at.1 == 0 {
            self.data.push(0);
            self.strings_at.1 = 1;
        }
        let off = self.strings_at.1 as u32;
        self.data.extend_from_slice(s.as_bytes());
        self.data.push(0);
        self.strings_at.1 += s.len() + 1;
        off
    }

    /// Appends a raw type record (already encoded), returning its id.
    pub(crate) fn add_raw_type(&mut self, record: &[u8]) -> u32 {
        self.normalize();
        self.core_named = None;
        let end = self.types_at.1;
        self.offsets.push(end as u32);
        self.data.splice(end..end, record.iter().copied());
        self.types_at.1 += record.len();
        self.strings_at.0 += record.len();
        self.names = [OnceLock::new(), OnceLock::new()];
        self.offsets.len() as u32
    }
}

/// Walks the type section once, checking each record fits and recording its start.
/// Also collects the named types of the kinds CO-RE looks up (see
/// `Btf::core_named`), branch-free: this loop runs for every type of vmlinux.
#[allow(clippy::type_complexity)]
fn index_records(types: &[u8]) -> Result<(Vec<u32>, Vec<(u32, u32)>), BtfError> {
    // Record length by kind as a table (fixed bytes, bytes per vlen entry):
    // no branch on the kind in this loop, which runs for every type of vmlinux.
    // Kind 0 (void) and kinds past 19 are invalid (fixed length 0xff).
    const FIXED: [u8; 32] = {
        let mut t = [0xffu8; 32];
        let mut k = 1;
        while k <= 19 {
            t[k] = match k {
                1 | 14 | 17 => 4, // int, var, decl_tag
                3 => 12,          // array
                _ => 0,
            };
            k += 1;
        }
        t
    };
    const PER_VLEN: [u8; 32] = {
        let mut t = [0u8; 32];
        t[4] = 12; // struct
        t[5] = 12; // union
        t[15] = 12; // datasec
        t[19] = 12; // enum64
        t[6] = 8; // enum
        t[13] = 8; // func_proto
        t
    };
    // Kinds CO-RE looks up by name: all but func, var, decl_tag, datasec.
    const CORE_KINDS: u32 = !((1 << 12) | (1 << 14) | (1 << 15) | (1 << 17));
    // Every record is at least 12 bytes: bounds the allocation by input size.
    let mut offsets = Vec::with_capacity(types.len() / COMMON_LEN);
    let mut core_named: Vec<(u32, u32)> = Vec::with_capacity(types.len() / COMMON_LEN / 4);
    let mut off = 0usize;
    while off < types.len() {
        let id = offsets.len() as u32 + 1;
        let info = u32_at(types, off + 4).ok_or(BtfError::TruncatedType { id, offset: off })?;
        let raw_kind = ((info >> 24) & 0x1f) as usize;
        let fixed = FIXED.get(raw_kind).copied().unwrap_or(0xff);
        if fixed == 0xff {
            return Err(BtfError::UnknownKind {
                id,
                kind: raw_kind as u32,
            });
        }
        let len =
            COMMON_LEN + fixed as usize + PER_VLEN[raw_kind] as usize * (info & 0xffff) as usize;
        let end = off
            .checked_add(len)
            .filter(|&end| end <= types.len())
            .ok_or(BtfError::TruncatedType { id, offset: off })?;
        if offsets.len() >= 0x7fff_ffff {
            return Err(BtfError::TooManyTypes);
        }
        offsets.push(off as u32);
        // Pushed always, kept only when named and of a CO-RE kind: no
        // data-dependent branch.
        let name_off = u32_at(types, off).unwrap_or(0);
        let keep = (name_off != 0) & (CORE_KINDS >> raw_kind & 1 == 1);
        core_named.push((name_off, id));
        core_named.truncate(core_named.len() - usize::from(!keep));
        off = end;
    }
    Ok((offsets, core_named))
}
