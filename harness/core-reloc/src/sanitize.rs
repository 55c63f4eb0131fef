//! Adapting an object's BTF to what the running kernel's BTF loader
//! accepts: every newer construct is rewritten, in place and with the
//! same record size so type ids stay valid, into an older one.

use crate::btf::{Btf, Kind, TypeBody};

/// BTF features a kernel supports; the loader probes these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfFeatures {
    /// FUNC and FUNC_PROTO (4.20+).
    pub func: bool,
    /// FUNC with global linkage (5.6+).
    pub func_global: bool,
    /// VAR and DATASEC (5.2+).
    pub datasec: bool,
    /// DATASEC names starting with '?' (5.18+ style optional sections).
    pub qmark_datasec: bool,
    /// FLOAT (5.13+).
    pub float: bool,
    /// DECL_TAG (5.16+).
    pub decl_tag: bool,
    /// TYPE_TAG (5.17+).
    pub type_tag: bool,
    /// ENUM64 and signed enums (6.0+).
    pub enum64: bool,
}

impl BtfFeatures {
    /// Everything supported: sanitization is a no-op.
    pub fn all() -> BtfFeatures {
        BtfFeatures {
            func: true,
            func_global: true,
            datasec: true,
            qmark_datasec: true,
            float: true,
            decl_tag: true,
            type_tag: true,
            enum64: true,
        }
    }

    /// Nothing beyond the original BTF kinds.
    pub fn none() -> BtfFeatures {
        BtfFeatures {
            func: false,
            func_global: false,
            datasec: false,
            qmark_datasec: false,
            float: false,
            decl_tag: false,
            type_tag: false,
            enum64: false,
        }
    }
}

/// Returns the raw BTF blob with unsupported kinds replaced, libbpf style:
/// VAR→INT, DATASEC→STRUCT, FUNC_PROTO→ENUM, FUNC→TYPEDEF (or global→static),
/// FLOAT→empty STRUCT of the same size, DECL_TAG→INT, TYPE_TAG→CONST,
/// ENUM64→UNION of the same size, signed ENUM→unsigned.
pub fn sanitize_btf(btf: &Btf, features: &BtfFeatures) -> Vec<u8> {
    if *features == BtfFeatures::all() {
        return btf.to_bytes();
    }
    let mut out = btf.clone();
    let mut enum64_placeholder = None;
    for id in 1..btf.type_count() {
        let Ok(t) = btf.type_by_id(id) else { continue };
        let _ = rewrite(btf, &mut out, &t, features, &mut enum64_placeholder);
    }
    out.to_bytes()
}

fn int_record_encoding_u8() -> u32 {
    // INT of 8 bits, no encoding.
    8
}

fn rewrite(
    orig: &Btf,
    out: &mut Btf,
    t: &crate::btf::Type<'_>,
    f: &BtfFeatures,
    enum64_placeholder: &mut Option<u32>,
) -> Result<(), crate::btf::BtfError> {
    let id = t.id;
    match (&t.body, t.kind) {
        (TypeBody::Var { .. }, _) if !f.datasec => {
            out.set_info(id, Kind::Int, false, 0);
            out.patch_word(id, 8, 1)?;
            out.patch_word(id, 12, int_record_encoding_u8())?;
        }
        (TypeBody::DataSec { vars, .. }, _) if !f.datasec => {
            let name = t.name.replace(['.', '?'], "_");
            let name_off = out.add_string(&name);
            out.patch_word(id, 0, name_off)?;
            out.set_info(id, Kind::Struct, false, vars.len() as u32);
            for (j, var) in vars.iter().enumerate() {
                let at = 12 + 12 * j;
                let var_name_off = orig.raw(var.ty).map(|r| r.name_off).unwrap_or(0);
                out.patch_word(id, at, var_name_off)?;
                out.patch_word(id, at + 4, var.ty)?;
                out.patch_word(id, at + 8, var.offset.saturating_mul(8))?;
            }
        }
        (TypeBody::DataSec { .. }, _) if !f.qmark_datasec && t.name.starts_with('?') => {
            let name_off = out.add_string(&t.name.replacen('?', "_", 1));
            out.patch_word(id, 0, name_off)?;
        }
        (TypeBody::FuncProto { params, .. }, _) if !f.func => {
            out.set_info(id, Kind::Enum, false, params.len() as u32);
            out.patch_word(id, 8, 4)?;
            // Parameter names become enumerator names; values are the former type ids.
        }
        (TypeBody::Func { .. }, _) if !f.func => {
            out.set_info(id, Kind::Typedef, false, 0);
        }
        (TypeBody::Func { linkage, .. }, _) if !f.func_global && *linkage != 0 => {
            out.set_info(id, Kind::Func, false, 0);
        }
        (TypeBody::Float { .. }, _) if !f.float => {
            out.patch_word(id, 0, 0)?;
            out.set_info(id, Kind::Struct, false, 0);
        }
        (TypeBody::DeclTag { .. }, _) if !f.decl_tag => {
            out.patch_word(id, 0, 0)?;
            out.set_info(id, Kind::Int, false, 0);
            out.patch_word(id, 8, 1)?;
            out.patch_word(id, 12, int_record_encoding_u8())?;
        }
        (TypeBody::Ref { .. }, Kind::TypeTag) if !f.type_tag => {
            out.patch_word(id, 0, 0)?;
            out.set_info(id, Kind::Const, false, 0);
        }
        (TypeBody::Enum { values, .. }, Kind::Enum64) if !f.enum64 => {
            let placeholder = match enum64_placeholder {
                Some(p) => *p,
                None => {
                    let name_off = out.add_string("enum64_placeholder");
                    let mut record = Vec::with_capacity(16);
                    for w in [
                        name_off,
                        (Kind::Int as u32) << 24,
                        1,
                        int_record_encoding_u8(),
                    ] {
                        record.extend_from_slice(&w.to_le_bytes());
                    }
                    let p = out.add_raw_type(&record);
                    *enum64_placeholder = Some(p);
                    p
                }
            };
            out.set_info(id, Kind::Union, false, values.len() as u32);
            for j in 0..values.len() {
                let at = 12 + 12 * j;
                out.patch_word(id, at + 4, placeholder)?;
                out.patch_word(id, at + 8, 0)?;
            }
        }
        (TypeBody::Enum { values, .. }, Kind::Enum) if !f.enum64 && t.kind_flag => {
            out.set_info(id, Kind::Enum, false, values.len() as u32);
        }
        _ => {}
    }
    Ok(())
}
