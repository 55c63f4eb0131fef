//! Type resolution helpers shared by CO-RE and map decoding: skipping
//! modifiers, sizes, essential names. All are bounded against loops.

use super::{Btf, BtfError, Kind, TypeBody};

/// Longest chain of modifiers/typedefs/arrays followed before giving up.
pub(crate) const MAX_RESOLVE_DEPTH: usize = 32;

/// Length of `name` without its `___flavor` suffix: the last `X___Y` where
/// neither X nor Y is an underscore marks where the flavor starts.
pub fn essential_name_len(name: &str) -> usize {
    essential_len_bytes(name.as_bytes())
}

/// `name` without its `___flavor` suffix: `task_struct___v2` is `task_struct`.
pub fn essential_name(name: &str) -> &str {
    &name[..essential_name_len(name)]
}

pub(crate) fn essential_len_bytes(name: &[u8]) -> usize {
    let n = name.len();
    if n < 5 {
        return n;
    }
    let mut i = n - 5;
    loop {
        if name[i] != b'_'
            && name[i + 1] == b'_'
            && name[i + 2] == b'_'
            && name[i + 3] == b'_'
            && name[i + 4] != b'_'
        {
            return i + 1;
        }
        if i == 0 {
            return n;
        }
        i -= 1;
    }
}

/// Pointer size assumed for BPF targets.
pub const POINTER_SIZE: u32 = 8;

impl Btf {
    /// Follows typedefs and modifiers (const, volatile, restrict, type tags)
    /// from `id`, returning the first other type's id.
    pub fn skip_mods_and_typedefs(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..MAX_RESOLVE_DEPTH {
            let raw = self.raw(id)?;
            if !raw.kind().is_mod_or_typedef() {
                return Ok(id);
            }
            id = raw.size_or_type;
        }
        Err(BtfError::TooDeep(id))
    }

    /// Size in bytes of type `id`, as libbpf's `btf__resolve_size`.
    pub fn resolve_size(&self, id: u32) -> Result<u32, BtfError> {
        let start = id;
        let mut id = id;
        let mut nelems: u64 = 1;
        for _ in 0..MAX_RESOLVE_DEPTH {
            let raw = self.raw(id)?;
            let size = match raw.kind() {
                Kind::Int
                | Kind::Struct
                | Kind::Union
                | Kind::Enum
                | Kind::Enum64
                | Kind::DataSec
                | Kind::Float => raw.size_or_type,
                Kind::Ptr => POINTER_SIZE,
                Kind::Typedef
                | Kind::Volatile
                | Kind::Const
                | Kind::Restrict
                | Kind::Var
                | Kind::DeclTag
                | Kind::TypeTag => {
                    id = raw.size_or_type;
                    continue;
                }
                Kind::Array => {
                    let TypeBody::Array(a) = self.type_by_id(id)?.body else {
                        return Err(BtfError::Invalid {
                            id,
                            what: "bad array",
                        });
                    };
                    nelems = nelems.checked_mul(a.len as u64).ok_or(BtfError::Invalid {
                        id,
                        what: "array too large",
                    })?;
                    if nelems > u32::MAX as u64 {
                        return Err(BtfError::Invalid {
                            id,
                            what: "array too large",
                        });
                    }
                    id = a.elem;
                    continue;
                }
                kind @ (Kind::Void | Kind::Fwd | Kind::Func | Kind::FuncProto) => {
                    return Err(BtfError::Invalid {
                        id,
                        what: match kind {
                            Kind::Fwd => "forward declaration (incomplete type) has no size",
                            Kind::Void => "void has no size",
                            _ => "function type has no size",
                        },
                    })
                }
            };
            let total = nelems * size as u64;
            return u32::try_from(total).map_err(|_| BtfError::Invalid {
                id: start,
                what: "size overflows u32",
            });
        }
        Err(BtfError::TooDeep(start))
    }
}
