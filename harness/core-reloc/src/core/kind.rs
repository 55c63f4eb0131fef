//! The 13 CO-RE relocation kinds.

use std::fmt;

/// `enum bpf_core_relo_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelocKind {
    /// `BPF_CORE_FIELD_BYTE_OFFSET`: a field's byte offset (loads, stores, address arithmetic).
    FieldByteOffset = 0,
    /// `BPF_CORE_FIELD_BYTE_SIZE`: the size of a field (or of the load covering a bitfield).
    FieldByteSize = 1,
    /// `BPF_CORE_FIELD_EXISTS`: 1 if the field exists in the target, else 0.
    FieldExists = 2,
    /// `BPF_CORE_FIELD_SIGNED`: 1 if the field is a signed integer or enum.
    FieldSigned = 3,
    /// `BPF_CORE_FIELD_LSHIFT_U64`: left shift that puts a bitfield at the top of a u64.
    FieldLshiftU64 = 4,
    /// `BPF_CORE_FIELD_RSHIFT_U64`: right shift that then brings it down to bit 0.
    FieldRshiftU64 = 5,
    /// `BPF_CORE_TYPE_ID_LOCAL`: the type's id in the object's own BTF.
    TypeIdLocal = 6,
    /// `BPF_CORE_TYPE_ID_TARGET`: the matching type's id in the target BTF (0 if none).
    TypeIdTarget = 7,
    /// `BPF_CORE_TYPE_EXISTS`: 1 if a compatible type exists in the target.
    TypeExists = 8,
    /// `BPF_CORE_TYPE_SIZE`: the target type's size in bytes (0 if none).
    TypeSize = 9,
    /// `BPF_CORE_ENUMVAL_EXISTS`: 1 if the enumerator exists in the target enum.
    EnumvalExists = 10,
    /// `BPF_CORE_ENUMVAL_VALUE`: the enumerator's value in the target.
    EnumvalValue = 11,
    /// `BPF_CORE_TYPE_MATCHES`: 1 if the target type matches the local one's shape (stricter than exists).
    TypeMatches = 12,
}

impl RelocKind {
    /// Every kind, in raw-value order.
    pub const ALL: [RelocKind; 13] = [
        RelocKind::FieldByteOffset,
        RelocKind::FieldByteSize,
        RelocKind::FieldExists,
        RelocKind::FieldSigned,
        RelocKind::FieldLshiftU64,
        RelocKind::FieldRshiftU64,
        RelocKind::TypeIdLocal,
        RelocKind::TypeIdTarget,
        RelocKind::TypeExists,
        RelocKind::TypeSize,
        RelocKind::EnumvalExists,
        RelocKind::EnumvalValue,
        RelocKind::TypeMatches,
    ];

    /// The kind of a raw `bpf_core_relo.kind`, if known.
    pub fn from_raw(raw: u32) -> Option<RelocKind> {
        RelocKind::ALL.get(raw as usize).copied()
    }

    /// Field-based kinds (0 to 5): the access string walks members and array elements.
    pub fn is_field_based(self) -> bool {
        (self as u32) <= 5
    }

    /// Type-based kinds: the access string is "0", the root type is what is asked about.
    pub fn is_type_based(self) -> bool {
        matches!(
            self,
            RelocKind::TypeIdLocal
                | RelocKind::TypeIdTarget
                | RelocKind::TypeExists
                | RelocKind::TypeSize
                | RelocKind::TypeMatches
        )
    }

    /// Enumerator kinds: the access string indexes an enumerator of the root enum.
    pub fn is_enumval_based(self) -> bool {
        matches!(self, RelocKind::EnumvalExists | RelocKind::EnumvalValue)
    }

    /// The name libbpf's docs use, lower case (`field_byte_offset`).
    pub fn as_str(self) -> &'static str {
        match self {
            RelocKind::FieldByteOffset => "field_byte_offset",
            RelocKind::FieldByteSize => "field_byte_size",
            RelocKind::FieldExists => "field_exists",
            RelocKind::FieldSigned => "field_signed",
            RelocKind::FieldLshiftU64 => "field_lshift_u64",
            RelocKind::FieldRshiftU64 => "field_rshift_u64",
            RelocKind::TypeIdLocal => "type_id_local",
            RelocKind::TypeIdTarget => "type_id_target",
            RelocKind::TypeExists => "type_exists",
            RelocKind::TypeSize => "type_size",
            RelocKind::EnumvalExists => "enumval_exists",
            RelocKind::EnumvalValue => "enumval_value",
            RelocKind::TypeMatches => "type_matches",
        }
    }
}

impl fmt::Display for RelocKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
