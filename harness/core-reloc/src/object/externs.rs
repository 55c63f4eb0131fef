//! Extern symbols: kfuncs, `__ksym` variables and `.kconfig` values, as the object declares
//! them (pure data), and the BTF rewrite libbpf applies so the kernel accepts the object's BTF.
//!
//! What each extern resolves to on a given kernel is decided in [`crate::externs`].

use super::ObjectError;
use crate::btf::{Btf, Kind, TypeBody, INT_BOOL, INT_SIGNED};

/// The section of kconfig externs.
pub const KCONFIG_SECTION: &str = ".kconfig";
/// The section of ksym and kfunc externs.
pub const KSYMS_SECTION: &str = ".ksyms";

/// How a `.kconfig` extern's bytes are typed, as libbpf tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KconfigType {
    /// `bool` (1 byte): `y` is 1, `n` is 0, `m` is refused.
    Bool,
    /// `char` (any 1-byte int): the letter itself, or a number.
    Char,
    /// `enum libbpf_tristate`: n=0, y=1, m=2.
    Tristate,
    /// 2-, 4- or 8-byte int.
    Int {
        /// Signed.
        signed: bool,
    },
    /// `char[N]`: a quoted string, NUL-terminated, cut to N-1 bytes.
    CharArray,
}

/// What an extern is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternKind {
    /// A value read from the `.kconfig` map at `offset`.
    Kconfig {
        /// How the value is written.
        ty: KconfigType,
        /// Size in bytes.
        size: u32,
        /// Alignment in bytes.
        align: u32,
        /// Byte offset in the `.kconfig` map.
        offset: u32,
    },
    /// A `__ksym` variable with a type: the kernel's BTF VAR of that name.
    TypedKsym {
        /// Its type in the object's BTF.
        local_type: u32,
    },
    /// A `__ksym` declared `const void`: the kernel symbol's address (from kallsyms).
    TypelessKsym,
    /// A kernel function called from BPF (`BPF_PSEUDO_KFUNC_CALL`).
    Kfunc {
        /// Its FUNC_PROTO in the object's BTF.
        proto: u32,
    },
}

/// An `extern` variable or function the object declares, for the loader to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extern {
    /// Its name (a `___flavor` suffix allowed).
    pub name: String,
    /// What it is.
    pub kind: ExternKind,
    /// `__weak`: may stay unresolved (then it reads as 0, or a call is poisoned).
    pub weak: bool,
    /// The VAR or FUNC in the object's BTF.
    pub btf_id: u32,
}

impl Extern {
    /// The name without a `___flavor` suffix: what is looked up in the kernel.
    pub fn essential_name(&self) -> &str {
        crate::btf::essential_name(&self.name)
    }
}

/// An undefined ELF symbol that may be an extern: (name, weak).
pub(crate) struct UndefinedSymbol<'a> {
    pub name: &'a str,
    pub weak: bool,
}

/// Collects the externs among `undefined` symbols from the object's BTF, in libbpf's order
/// (kconfig by alignment descending, size ascending, name; then ksyms by name), assigns
/// `.kconfig` offsets and rewrites the `.kconfig`/`.ksyms` DATASECs as libbpf does so the kernel
/// accepts them. Returns the externs and the size of the `.kconfig` map value (0: none).
pub(crate) fn collect(
    btf: Option<&mut Btf>,
    undefined: &[UndefinedSymbol<'_>],
) -> Result<(Vec<Extern>, u32), ObjectError> {
    let Some(btf) = btf else {
        return match undefined.first() {
            Some(sym) => Err(ObjectError::Malformed(format!(
                "extern {} needs the object's BTF, which is missing",
                sym.name
            ))),
            None => Ok((Vec::new(), 0)),
        };
    };
    let mut externs = Vec::new();
    for sym in undefined {
        let bad = |why: String| ObjectError::Malformed(format!("extern {}: {why}", sym.name));
        let btf_id = extern_btf_id(btf, sym.name)?
            .ok_or_else(|| bad("no BTF VAR or FUNC of that name".into()))?;
        let section = datasec_of(btf, btf_id)?
            .ok_or_else(|| bad("in no BTF DATASEC (.kconfig or .ksyms)".into()))?;
        let ty = btf.type_by_id(btf_id)?;
        let kind = match (section.as_str(), &ty.body) {
            (KCONFIG_SECTION, TypeBody::Var { ty: var_ty, .. }) => {
                let size = btf.resolve_size(*var_ty)?;
                let align = align_of(btf, *var_ty)?;
                let kty = kconfig_type(btf, *var_ty)?
                    .ok_or_else(|| bad("type is not one .kconfig supports".into()))?;
                ExternKind::Kconfig {
                    ty: kty,
                    size,
                    align,
                    offset: 0,
                }
            }
            (KCONFIG_SECTION, _) => {
                return Err(bad("a function cannot be a .kconfig extern".into()))
            }
            (KSYMS_SECTION, TypeBody::Func { proto, .. }) => ExternKind::Kfunc { proto: *proto },
            (KSYMS_SECTION, TypeBody::Var { ty: var_ty, .. }) => {
                let local_type = btf.skip_mods_and_typedefs(*var_ty)?;
                if local_type == 0 {
                    ExternKind::TypelessKsym
                } else {
                    ExternKind::TypedKsym { local_type }
                }
            }
            (other, _) => return Err(bad(format!("unrecognized extern section {other}"))),
        };
        externs.push(Extern {
            name: ty.name.to_string(),
            kind,
            weak: sym.weak,
            btf_id,
        });
    }
    externs.sort_by_key(order_key);
    let mut off = 0u32;
    for ext in &mut externs {
        if let ExternKind::Kconfig {
            size,
            align,
            offset,
            ..
        } = &mut ext.kind
        {
            *offset = off.div_ceil(*align) * *align;
            off = offset
                .checked_add(*size)
                .filter(|&end| u64::from(end) <= super::maps::MAX_DATA_SECTION)
                .ok_or_else(|| {
                    ObjectError::Malformed(format!(
                        "the .kconfig externs need more than {} bytes",
                        super::maps::MAX_DATA_SECTION
                    ))
                })?;
        }
    }
    rewrite_datasecs(btf, &externs, off)?;
    Ok((externs, off))
}

fn order_key(e: &Extern) -> (u8, i64, u32, String) {
    match e.kind {
        ExternKind::Kconfig { align, size, .. } => (0, -(align as i64), size, e.name.clone()),
        _ => (1, 0, 0, e.name.clone()),
    }
}

fn extern_btf_id(btf: &Btf, name: &str) -> Result<Option<u32>, ObjectError> {
    for kind in [Kind::Var, Kind::Func] {
        for id in btf.ids_by_name(kind, name) {
            let linkage = match btf.type_by_id(id)?.body {
                TypeBody::Var { linkage, .. } | TypeBody::Func { linkage, .. } => linkage,
                _ => continue,
            };
            // BTF_VAR_GLOBAL_EXTERN / BTF_FUNC_EXTERN
            if linkage == 2 {
                return Ok(Some(id));
            }
        }
    }
    Ok(None)
}

fn datasec_of(btf: &Btf, member: u32) -> Result<Option<String>, ObjectError> {
    for name in [KCONFIG_SECTION, KSYMS_SECTION] {
        for id in btf.ids_by_name(Kind::DataSec, name) {
            if let TypeBody::DataSec { vars, .. } = btf.type_by_id(id)?.body {
                if vars.iter().any(|v| v.ty == member) {
                    return Ok(Some(name.to_string()));
                }
            }
        }
    }
    Ok(None)
}

fn align_of(btf: &Btf, id: u32) -> Result<u32, ObjectError> {
    let id = btf.skip_mods_and_typedefs(id)?;
    Ok(match btf.type_by_id(id)?.body {
        TypeBody::Int(int) => int.size.clamp(1, 8),
        TypeBody::Enum { size, .. } => size.clamp(1, 8),
        TypeBody::Array(a) => align_of(btf, a.elem)?,
        TypeBody::Ptr { .. } => 8,
        _ => {
            return Err(ObjectError::Malformed(format!(
                "type [{id}] has no alignment a .kconfig extern can use"
            )))
        }
    })
}

fn kconfig_type(btf: &Btf, id: u32) -> Result<Option<KconfigType>, ObjectError> {
    let id = btf.skip_mods_and_typedefs(id)?;
    let ty = btf.type_by_id(id)?;
    Ok(match ty.body {
        TypeBody::Int(int) if int.encoding & INT_BOOL != 0 => {
            (int.size == 1).then_some(KconfigType::Bool)
        }
        TypeBody::Int(int) if int.size == 1 => Some(KconfigType::Char),
        TypeBody::Int(int) if matches!(int.size, 2 | 4 | 8) => Some(KconfigType::Int {
            signed: int.encoding & INT_SIGNED != 0,
        }),
        TypeBody::Enum { size, .. } if ty.name == "libbpf_tristate" => {
            (ty.kind == Kind::Enum64 || size == 4).then_some(KconfigType::Tristate)
        }
        TypeBody::Array(a) if a.len > 0 => (kconfig_type(btf, a.elem)? == Some(KconfigType::Char))
            .then_some(KconfigType::CharArray),
        _ => None,
    })
}

/// The kernel refuses extern linkage and FUNCs inside a DATASEC: like libbpf, `.ksyms` entries
/// become 4-byte allocated int variables (functions are replaced by one dummy variable and made
/// global), `.kconfig` variables become allocated at their map offsets.
fn rewrite_datasecs(
    btf: &mut Btf,
    externs: &[Extern],
    kconfig_size: u32,
) -> Result<(), ObjectError> {
    let find = |name: &str| externs.iter().find(|e| e.name == name);
    if let Some(&ksyms) = btf.ids_by_name(Kind::DataSec, KSYMS_SECTION).first() {
        let TypeBody::DataSec { vars, .. } = btf.type_by_id(ksyms)?.body else {
            return Ok(());
        };
        let int_id = int32_id(btf)?;
        let has_func = vars
            .iter()
            .any(|v| btf.kind_of(v.ty).ok() == Some(Kind::Func));
        let dummy = if has_func {
            let name_off = btf.add_string("dummy_ksym");
            let mut record = Vec::with_capacity(16);
            for w in [name_off, (Kind::Var as u32) << 24, int_id, 1] {
                record.extend_from_slice(&w.to_le_bytes());
            }
            Some((btf.add_raw_type(&record), name_off))
        } else {
            None
        };
        for (i, var) in vars.iter().enumerate() {
            let name = btf.name_of(var.ty)?.to_string();
            if find(&name).is_none() {
                return Err(ObjectError::Malformed(format!(
                    ".ksyms lists {name}, which no undefined symbol declares"
                )));
            }
            match (btf.type_by_id(var.ty)?.body, dummy) {
                (TypeBody::Func { proto, .. }, Some((dummy_id, dummy_name))) => {
                    let unnamed: Vec<usize> = match btf.type_by_id(proto)?.body {
                        TypeBody::FuncProto { params, .. } => params
                            .iter()
                            .enumerate()
                            .filter(|(_, p)| p.ty != 0 && p.name.is_empty())
                            .map(|(j, _)| j)
                            .collect(),
                        _ => Vec::new(),
                    };
                    for j in unnamed {
                        btf.patch_word(proto, 12 + 8 * j, dummy_name)?;
                    }
                    btf.set_info(var.ty, Kind::Func, false, 1);
                    btf.patch_word(ksyms, 12 + 12 * i, dummy_id)?;
                }
                _ => {
                    btf.patch_word(var.ty, 8, int_id)?;
                    btf.patch_word(var.ty, 12, 1)?;
                }
            }
            btf.patch_word(ksyms, 12 + 12 * i + 4, 4 * i as u32)?;
            btf.patch_word(ksyms, 12 + 12 * i + 8, 4)?;
        }
        btf.patch_word(ksyms, 8, 4 * vars.len() as u32)?;
    }
    if let Some(&kconfig) = btf.ids_by_name(Kind::DataSec, KCONFIG_SECTION).first() {
        let TypeBody::DataSec { vars, .. } = btf.type_by_id(kconfig)?.body else {
            return Ok(());
        };
        let mut placed = Vec::with_capacity(vars.len());
        for var in &vars {
            let name = btf.name_of(var.ty)?.to_string();
            let Some(Extern {
                kind: ExternKind::Kconfig { offset, .. },
                ..
            }) = find(&name)
            else {
                return Err(ObjectError::Malformed(format!(
                    ".kconfig lists {name}, which no undefined symbol declares"
                )));
            };
            btf.patch_word(var.ty, 12, 1)?;
            placed.push((var.ty, *offset, var.size));
        }
        // The kernel wants a DATASEC's variables in offset order.
        placed.sort_by_key(|p| p.1);
        for (i, (ty, offset, size)) in placed.into_iter().enumerate() {
            btf.patch_word(kconfig, 12 + 12 * i, ty)?;
            btf.patch_word(kconfig, 12 + 12 * i + 4, offset)?;
            btf.patch_word(kconfig, 12 + 12 * i + 8, size)?;
        }
        btf.patch_word(kconfig, 8, kconfig_size)?;
    }
    Ok(())
}

fn int32_id(btf: &Btf) -> Result<u32, ObjectError> {
    for id in 1..btf.type_count() {
        if let TypeBody::Int(int) = btf.type_by_id(id)?.body {
            if int.bits == 32 {
                return Ok(id);
            }
        }
    }
    Err(ObjectError::Malformed(
        ".ksyms externs need a 32-bit int in the object's BTF".into(),
    ))
}
