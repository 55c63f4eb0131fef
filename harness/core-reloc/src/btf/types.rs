//! Decoded, borrowed views of BTF type records.

use std::fmt;

/// BTF type kinds, numbered as in the kernel's `BTF_KIND_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Type id 0, `void` (`BTF_KIND_UNKN`).
    Void = 0,
    /// `BTF_KIND_INT`
    Int = 1,
    /// `BTF_KIND_PTR`
    Ptr = 2,
    /// `BTF_KIND_ARRAY`
    Array = 3,
    /// `BTF_KIND_STRUCT`
    Struct = 4,
    /// `BTF_KIND_UNION`
    Union = 5,
    /// `BTF_KIND_ENUM`
    Enum = 6,
    /// `BTF_KIND_FWD`
    Fwd = 7,
    /// `BTF_KIND_TYPEDEF`
    Typedef = 8,
    /// `BTF_KIND_VOLATILE`
    Volatile = 9,
    /// `BTF_KIND_CONST`
    Const = 10,
    /// `BTF_KIND_RESTRICT`
    Restrict = 11,
    /// `BTF_KIND_FUNC`
    Func = 12,
    /// `BTF_KIND_FUNC_PROTO`
    FuncProto = 13,
    /// `BTF_KIND_VAR`
    Var = 14,
    /// `BTF_KIND_DATASEC`
    DataSec = 15,
    /// `BTF_KIND_FLOAT`
    Float = 16,
    /// `BTF_KIND_DECL_TAG`
    DeclTag = 17,
    /// `BTF_KIND_TYPE_TAG`
    TypeTag = 18,
    /// `BTF_KIND_ENUM64`
    Enum64 = 19,
}

impl Kind {
    /// The kind of a raw kind number, if known.
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

    /// A struct or a union.
    pub fn is_composite(self) -> bool {
        matches!(self, Kind::Struct | Kind::Union)
    }

    /// An enum with 32-bit or 64-bit values.
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
/// `BTF_INT_CHAR` bit of an INT's encoding.
pub const INT_CHAR: u8 = 2;
/// `BTF_INT_BOOL` bit of an INT's encoding.
pub const INT_BOOL: u8 = 4;

/// The body of an INT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntType {
    /// Size in bytes.
    pub size: u32,
    /// `BTF_INT_SIGNED`, `BTF_INT_CHAR`, `BTF_INT_BOOL` bits.
    pub encoding: u8,
    /// Bit offset of the value in its storage (0 in any sane BTF).
    pub bit_offset: u8,
    /// Width in bits.
    pub bits: u8,
}

/// The body of an ARRAY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayType {
    /// Element type.
    pub elem: u32,
    /// Index type.
    pub index: u32,
    /// Number of elements (0: flexible).
    pub len: u32,
}

/// A member of a struct or union.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    /// Its name (empty for an anonymous member).
    pub name: &'a str,
    /// Its type.
    pub ty: u32,
    /// Bit offset from the start of the composite.
    pub bit_offset: u32,
    /// Non-zero only for bitfields declared with the kind flag set.
    pub bitfield_size: u32,
}

/// An enumerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnumValue<'a> {
    /// Its name.
    pub name: &'a str,
    /// 32-bit values are sign-extended, as libbpf reads them into a u64.
    pub value: u64,
}

/// A parameter of a function prototype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// Its name (often empty).
    pub name: &'a str,
    /// Its type.
    pub ty: u32,
}

/// A variable of a DATASEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarSecInfo {
    /// The VAR (or FUNC) type.
    pub ty: u32,
    /// Byte offset in the section.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// Kind-specific content of a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeBody<'a> {
    /// `void`.
    Void,
    /// An integer.
    Int(IntType),
    /// A pointer.
    Ptr {
        /// The pointee.
        target: u32,
    },
    /// An array.
    Array(ArrayType),
    /// A struct or union.
    Composite {
        /// Size in bytes.
        size: u32,
        /// Members, in order.
        members: Vec<Member<'a>>,
    },
    /// An enum or enum64.
    Enum {
        /// Size in bytes.
        size: u32,
        /// Signed values (the kind flag).
        signed: bool,
        /// Enumerators, in order.
        values: Vec<EnumValue<'a>>,
    },
    /// A forward declaration.
    Fwd {
        /// Of a union rather than a struct.
        is_union: bool,
    },
    /// Typedef, volatile, const, restrict, type tag.
    Ref {
        /// The modified or aliased type.
        target: u32,
    },
    /// A function.
    Func {
        /// Its FUNC_PROTO.
        proto: u32,
        /// `BTF_FUNC_STATIC`, `_GLOBAL` or `_EXTERN`.
        linkage: u32,
    },
    /// A function prototype.
    FuncProto {
        /// Return type.
        ret: u32,
        /// Parameters, in order.
        params: Vec<Param<'a>>,
    },
    /// A variable.
    Var {
        /// Its type.
        ty: u32,
        /// `BTF_VAR_STATIC`, `_GLOBAL_ALLOCATED` or `_GLOBAL_EXTERN`.
        linkage: u32,
    },
    /// A data section (`.data`, `.kconfig`...).
    DataSec {
        /// Size in bytes.
        size: u32,
        /// Its variables.
        vars: Vec<VarSecInfo>,
    },
    /// A floating point type.
    Float {
        /// Size in bytes.
        size: u32,
    },
    /// A declaration tag.
    DeclTag {
        /// The tagged type.
        target: u32,
        /// Member or parameter index, -1 for the type itself.
        component_idx: i32,
    },
}

/// A decoded type: its id, name, kind and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Type<'a> {
    /// Type id.
    pub id: u32,
    /// Name (empty when anonymous).
    pub name: &'a str,
    /// Kind.
    pub kind: Kind,
    /// The kind flag bit (meaning depends on the kind).
    pub kind_flag: bool,
    /// What the kind carries.
    pub body: TypeBody<'a>,
}

impl<'a> Type<'a> {
    /// Members of a struct or union (empty for other kinds).
    pub fn members(&self) -> &[Member<'a>] {
        match &self.body {
            TypeBody::Composite { members, .. } => members,
            _ => &[],
        }
    }

    /// Enumerators of an enum or enum64 (empty for other kinds).
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
