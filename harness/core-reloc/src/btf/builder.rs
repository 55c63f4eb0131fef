//! Small BTF writer, used by tests and fuzz seeds to build blobs by hand.

use super::{Btf, BtfError, Kind};

/// Builds raw BTF one type at a time; ids are assigned from 1 in order.
#[derive(Debug, Clone)]
pub struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl Default for BtfBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BtfBuilder {
    /// An empty BTF (type 0 is void).
    pub fn new() -> BtfBuilder {
        BtfBuilder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
        }
    }

    /// Adds a string (empty string is offset 0) and returns its offset.
    pub fn string(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn push_words(&mut self, words: &[u32]) {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// Adds a record with the given header and extra words; returns its id.
    pub fn raw(
        &mut self,
        name: &str,
        kind: Kind,
        kind_flag: bool,
        vlen: u32,
        size_or_type: u32,
        extra: &[u32],
    ) -> u32 {
        let name_off = self.string(name);
        let info = (kind_flag as u32) << 31 | (kind as u32) << 24 | (vlen & 0xffff);
        self.push_words(&[name_off, info, size_or_type]);
        self.push_words(extra);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// An integer of `size` bytes.
    pub fn int(&mut self, name: &str, size: u32, signed: bool) -> u32 {
        let enc = if signed { 1u32 << 24 } else { 0 };
        self.raw(name, Kind::Int, false, 0, size, &[enc | (size * 8)])
    }

    /// A pointer to `target`.
    pub fn ptr(&mut self, target: u32) -> u32 {
        self.raw("", Kind::Ptr, false, 0, target, &[])
    }

    /// An array of `len` elements of `elem`, indexed by `index`.
    pub fn array(&mut self, elem: u32, index: u32, len: u32) -> u32 {
        self.raw("", Kind::Array, false, 0, 0, &[elem, index, len])
    }

    /// `members`: (name, type, bit offset, bitfield size). Bitfields set the kind flag.
    pub fn composite(
        &mut self,
        kind: Kind,
        name: &str,
        size: u32,
        members: &[(&str, u32, u32, u32)],
    ) -> u32 {
        let kind_flag = members.iter().any(|m| m.3 != 0);
        let mut extra = Vec::with_capacity(members.len() * 3);
        for &(mname, ty, bit_off, bits) in members {
            let off = if kind_flag {
                bits << 24 | bit_off
            } else {
                bit_off
            };
            extra.extend_from_slice(&[self.string(mname), ty, off]);
        }
        self.raw(name, kind, kind_flag, members.len() as u32, size, &extra)
    }

    /// A struct; `members` as for [`BtfBuilder::composite`].
    pub fn struct_(&mut self, name: &str, size: u32, members: &[(&str, u32, u32, u32)]) -> u32 {
        self.composite(Kind::Struct, name, size, members)
    }

    /// A 32-bit-valued enum of `size` bytes (`signed`: the kind flag).
    pub fn enum32(&mut self, name: &str, size: u32, signed: bool, values: &[(&str, i64)]) -> u32 {
        let mut extra = Vec::new();
        for &(vname, v) in values {
            extra.extend_from_slice(&[self.string(vname), v as u32]);
        }
        self.raw(name, Kind::Enum, signed, values.len() as u32, size, &extra)
    }

    /// A 64-bit-valued enum of `size` bytes (`signed`: the kind flag).
    pub fn enum64(&mut self, name: &str, size: u32, signed: bool, values: &[(&str, u64)]) -> u32 {
        let mut extra = Vec::new();
        for &(vname, v) in values {
            extra.extend_from_slice(&[self.string(vname), v as u32, (v >> 32) as u32]);
        }
        self.raw(
            name,
            Kind::Enum64,
            signed,
            values.len() as u32,
            size,
            &extra,
        )
    }

    /// `typedef target name`.
    pub fn typedef(&mut self, name: &str, target: u32) -> u32 {
        self.raw(name, Kind::Typedef, false, 0, target, &[])
    }

    /// A forward declaration of a struct (or a union).
    pub fn fwd(&mut self, name: &str, is_union: bool) -> u32 {
        self.raw(name, Kind::Fwd, is_union, 0, 0, &[])
    }

    /// A modifier (`const`, `volatile`, `restrict`) of `target`.
    pub fn modifier(&mut self, kind: Kind, target: u32) -> u32 {
        self.raw("", kind, false, 0, target, &[])
    }

    /// `const target`.
    pub fn const_(&mut self, target: u32) -> u32 {
        self.modifier(Kind::Const, target)
    }

    /// A type tag (`attribute`: the kind flag, `__attribute__((...))` rather than a tag).
    pub fn type_tag(&mut self, name: &str, target: u32, attribute: bool) -> u32 {
        self.raw(name, Kind::TypeTag, attribute, 0, target, &[])
    }

    /// A function prototype: `params` are (name, type).
    pub fn func_proto(&mut self, ret: u32, params: &[(&str, u32)]) -> u32 {
        let mut extra = Vec::new();
        for &(name, ty) in params {
            extra.extend_from_slice(&[self.string(name), ty]);
        }
        self.raw("", Kind::FuncProto, false, params.len() as u32, ret, &extra)
    }

    /// A global function of prototype `proto`.
    pub fn func(&mut self, name: &str, proto: u32) -> u32 {
        self.raw(name, Kind::Func, false, 1, proto, &[])
    }

    /// A declaration tag on `target` (`component`: member or parameter index, -1 for the type).
    pub fn decl_tag(&mut self, name: &str, target: u32, component: i32) -> u32 {
        self.raw(name, Kind::DeclTag, false, 0, target, &[component as u32])
    }

    /// A floating point type of `size` bytes.
    pub fn float(&mut self, name: &str, size: u32) -> u32 {
        self.raw(name, Kind::Float, false, 0, size, &[])
    }

    /// A union; `members` as for [`BtfBuilder::composite`].
    pub fn union_(&mut self, name: &str, size: u32, members: &[(&str, u32, u32, u32)]) -> u32 {
        self.composite(Kind::Union, name, size, members)
    }

    /// Encodes the blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&super::BTF_MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for v in [
            24u32,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }

    /// Encodes and parses the blob.
    pub fn build(&self) -> Result<Btf, BtfError> {
        Btf::parse(&self.to_bytes())
    }
}
