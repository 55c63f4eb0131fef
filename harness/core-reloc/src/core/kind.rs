//! The 13 CO-RE relocation kinds.

use std::fmt;

/// `enum bpf_core_relo_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelocKind {
    FieldByteOffset = 0,
    FieldByteSize = 1,
    FieldExists = 2,
    FieldSigned = 3,
    FieldLshiftU64 = 4,
    FieldRshiftU64 = 5,
    TypeIdLocal = 6,
    TypeIdTarget = 7,
    TypeExists = 8,
    TypeSize = 9,
    EnumvalExists = 10,
    EnumvalValue = 11,
    TypeMatches = 12,
}

impl RelocKind {
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

    pub fn from_raw(raw: u32) -> Option<RelocKind> {
        RelocKind::ALL.get(raw as usize).copied()
    }

    pub fn is_field_based(self) -> bool {
        (self as u32) <= 5
    }

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

    pub fn is_enumval_based(self) -> bool {
        matches!(self, RelocKind::EnumvalExists | RelocKind::EnumvalValue)
    }

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
