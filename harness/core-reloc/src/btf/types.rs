//! Decoded, borrowed views of BTF type records.

use std::fmt;

/// BTF type kinds, numbered as in the kernel's `BTF_KIND_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Void = 0,
    Int = 1,
    Ptr = 2,
    Array = 3,
    Struct = 4,
    Union = 5,
    Enum = 6,
    Fwd = 7,
    Typedef = 8,
    Volatile = 9,
    Const = 10,
    Restrict = 11,
    Func = 12,
    FuncProto = 13,
    Var = 14,
    DataSec = 15,
    Float = 16,
    DeclTag = 17,
    TypeTag = 18,
    Enum64 = 19,
}

impl Kind {
    pub fn from_raw(raw: u32) -> Option<Kind> {
        use Kind::*;
        Some(match raw {
            0 => Void,
            1 => Int,
            2 => Ptr,
            3 => Array,
            4 => Struct,
            5 => Union,
            6 => Enum,
            7 => Fwd,
            8 => Typedef,
            9 => Volatile,
            10 => Const,
            11 => Restrict,
            12 => Func,
            13 => FuncProto,
            14 => Var,
            15 => DataSec,
            16 => Float,
            17 => DeclTag,
            18 => TypeTag,
            19 => Enum64,
            _ => return None,
        })
    }

    /// The C keyword (or a descriptive word) for this kind.
    pub fn c_word(self) -> &'static str {
        match self {
            Kind::Void => "void",
            Kind::Int => "int",
            Kind::Ptr => "ptr",
            Kind::Array => "array",
            Kind::Struct => "struct",
            Kind::Union => "union",
            Kind::Enum | Kind::Enum64 => "enum",
            Kind::Fwd => "fwd",
            Kind::Typedef => "typedef",
            Kind::Volatile => "volatile",
            Kind::Const => "const",
            Kind::Restrict => "restrict",
            Kind::Func => "func",
            Kind::FuncProto => "func_proto",
            Kind::Var => "var",
            Kind::DataSec => "datasec",
            Kind::Float => "float",
            Kind::DeclTag => "decl_tag",
            Kind::TypeTag => "type_tag",
        }
    }

    pub fn is_composite(self) -> bool {
        matches!(self, Kind::Struct | Kind::Union)
    }

    pub fn is_any_enum(self) -> bool {
        matches!(self, Kind::Enum | Kind::Enum64)
    }

    /// Modifiers and typedefs: kinds that CO-RE looks through.
    pub fn is_mod_or_typedef(self) -> bool {
        matches!(
            self,
            Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.c_word())
    }
}

/// `BTF_INT_SIGNED` bit of an INT's encoding.
pub const INT_SIGNED: u8 = 1;
pub const INT_CHAR: u8 = 2;
pub const INT_BOOL: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntType {
    pub size: u32,
    pub encoding: u8,
    pub bit_offset: u8,
    pub bits: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayType {
    pub elem: u32,
    pub index: u32,
    pub len: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    pub name: &'a str,
    pub ty: u32,
    pub bit_offset: u32,
    /// Non-zero only for bitfields declared with the kind flag set.
    pub bitfield_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnumValue<'a> {
    pub name: &'a str,
    /// 32-bit values are sign-extended, as libbpf reads them into a u64.
    pub value: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a str,
    pub ty: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarSecInfo {
    pub ty: u32,
    pub offset: u32,
    pub size: u32,
}

/// Kind-specific content of a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeBody<'a> {
    Void,
    Int(IntType),
    Ptr {
        target: u32,
    },
    Array(ArrayType),
    Composite {
        size: u32,
        members: Vec<Member<'a>>,
    },
    Enum {
        size: u32,
        signed: bool,
        values: Vec<EnumValue<'a>>,
    },
    Fwd {
        is_union: bool,
    },
    /// Typedef, volatile, const, restrict, type tag.
    Ref {
        target: u32,
    },
    Func {
        proto: u32,
        linkage: u32,
    },
    FuncProto {
        ret: u32,
        params: Vec<Param<'a>>,
    },
    Var {
        ty: u32,
        linkage: u32,
    },
    DataSec {
        size: u32,
        vars: Vec<VarSecInfo>,
    },
    Float {
        size: u32,
    },
    DeclTag {
        target: u32,
        component_idx: i32,
    },
}

/// A decoded type: its id, name, kind and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Type<'a> {
    pub id: u32,
    pub name: &'a str,
    pub kind: Kind,
    pub kind_flag: bool,
    pub body: TypeBody<'a>,
}

impl<'a> Type<'a> {
    pub fn members(&self) -> &[Member<'a>] {
        match &self.body {
            TypeBody::Composite { members, .. } => members,
            _ => &[],
        }
    }

    pub fn enum_values(&self) -> &[EnumValue<'a>] {
        match &self.body {
            TypeBody::Enum { values, .. } => values,
            _ => &[],
        }
    }

    /// Number of members / values / params / vars.
    pub fn vlen(&self) -> usize {
        match &self.body {
            TypeBody::Composite { members, .. } => members.len(),
            TypeBody::Enum { values, .. } => values.len(),
            TypeBody::FuncProto { params, .. } => params.len(),
            TypeBody::DataSec { vars, .. } => vars.len(),
            _ => 0,
        }
    }

    /// "struct foo", "enum bar", "typedef baz", "int".
    pub fn c_name(&self) -> String {
        let name = if self.name.is_empty() {
            "(anon)"
        } else {
            self.name
        };
        match self.kind {
            Kind::Struct | Kind::Union | Kind::Enum | Kind::Enum64 | Kind::Typedef => {
                format!("{} {}", self.kind.c_word(), name)
            }
            Kind::Fwd => {
                let word = if self.kind_flag { "union" } else { "struct" };
                format!("{word} {name}")
            }
            Kind::Void => "void".to_string(),
            _ if !self.name.is_empty() => self.name.to_string(),
            _ => format!("{} (anon)", self.kind.c_word()),
        }
    }
}
