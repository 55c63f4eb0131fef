//! Map keys and values as a user reads them: decoded with the object's own BTF (ints, enums by
//! name, structs with field names, arrays, char arrays as strings, `.bss`/`.data` sections by
//! variable), hex where no type is known. Pure: the runner holds the object's bytes.

use std::collections::HashMap;
use std::fmt::Write as _;

use core_reloc::btf::{Btf, Kind, TypeBody};

/// How deep nested types are followed before falling back to hex.
const MAX_DEPTH: usize = 8;
/// Array elements shown before "... (n more)".
const MAX_ELEMENTS: usize = 16;

/// What the verdict needs to know about one object to speak its language.
#[derive(Debug, Default)]
pub struct ObjectTypes {
    btf: Option<Btf>,
    /// Program name → `enum bpf_prog_type`.
    pub program_types: HashMap<String, u32>,
    /// Map name → (BTF key type, BTF value type); 0 for none.
    map_types: HashMap<String, (u32, u32)>,
}

/// Per object name.
pub type Vocabulary = HashMap<String, ObjectTypes>;

impl ObjectTypes {
    /// From the object's bytes; an object that does not parse yields hex everywhere.
    pub fn from_object(bytes: &[u8]) -> ObjectTypes {
        let Ok(object) = core_reloc::Object::parse(bytes) else {
            return ObjectTypes::default();
        };
        ObjectTypes {
            btf: object
                .btf()
                .and_then(|b| Btf::parse_owned(b.to_bytes()).ok()),
            program_types: object
                .programs()
                .iter()
                .map(|p| (p.name.clone(), p.program_type))
                .collect(),
            map_types: object
                .maps()
                .iter()
                .map(|m| (m.name.clone(), (m.btf_key_type_id, m.btf_value_type_id)))
                .collect(),
        }
    }

    #[cfg(test)]
    pub fn with_btf(btf: Btf, maps: &[(&str, u32, u32)]) -> ObjectTypes {
        ObjectTypes {
            btf: Some(btf),
            program_types: HashMap::new(),
            map_types: maps
                .iter()
                .map(|(n, k, v)| (n.to_string(), (*k, *v)))
                .collect(),
        }
    }

    /// A key of `map`: typed if the map's BTF says how, else an index (`.bss` & co.) or hex.
    pub fn key(&self, map: &str, bytes: &[u8]) -> String {
        match self.map_types.get(map) {
            Some((id, _)) if *id != 0 => self.render(*id, bytes),
            _ if bytes.len() == 4 => {
                u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]).to_string()
            }
            _ => hex_bytes(bytes),
        }
    }

    /// A value of `map`; per-CPU values (`slots` > 1) are shown per CPU.
    pub fn value(&self, map: &str, bytes: &[u8], value_size: usize, percpu: bool) -> String {
        if percpu && value_size > 0 {
            let slot = value_size.div_ceil(8) * 8;
            let parts: Vec<String> = bytes
                .chunks(slot)
                .enumerate()
                .map(|(cpu, chunk)| {
                    let chunk = &chunk[..value_size.min(chunk.len())];
                    format!("cpu{cpu}: {}", self.value(map, chunk, value_size, false))
                })
                .collect();
            return format!("[{}]", parts.join(", "));
        }
        match self.map_types.get(map) {
            Some((_, id)) if *id != 0 => self.render(*id, bytes),
            _ => hex_bytes(bytes),
        }
    }

    fn render(&self, id: u32, bytes: &[u8]) -> String {
        match &self.btf {
            Some(btf) => {
                let mut out = String::new();
                match render_type(btf, id, bytes, 0, &mut out) {
                    Ok(()) => out,
                    Err(()) => hex_bytes(bytes),
                }
            }
            None => hex_bytes(bytes),
        }
    }
}

pub fn hex_bytes(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(empty)".into();
    }
    format!("0x{}", hex::encode(bytes))
}

/// Writes `bytes` as type `id`; Err when the type does not describe the bytes (sizes differ,
/// unknown kind), and the caller falls back to hex.
fn render_type(btf: &Btf, id: u32, bytes: &[u8], depth: usize, out: &mut String) -> Result<(), ()> {
    if depth > MAX_DEPTH {
        return Err(());
    }
    let id = btf.skip_mods_and_typedefs(id).map_err(|_| ())?;
    let ty = btf.type_by_id(id).map_err(|_| ())?;
    match &ty.body {
        TypeBody::Int(int) => {
            let size = int.size as usize;
            let raw = bytes.get(..size).ok_or(())?;
            let signed = int.encoding & core_reloc::btf::INT_SIGNED != 0;
            if int.encoding & core_reloc::btf::INT_BOOL != 0 {
                let _ = write!(out, "{}", raw.iter().any(|&b| b != 0));
            } else {
                let _ = write!(out, "{}", int_text(raw, signed).ok_or(())?);
            }
        }
        TypeBody::Enum {
            size,
            signed,
            values,
        } => render_enum(*size, *signed, values, bytes, out)?,
        TypeBody::Ptr { .. } => {
            let raw = bytes.get(..8).ok_or(())?;
            let _ = write!(out, "0x{:x}", le_u64(raw).ok_or(())?);
        }
        TypeBody::Float { size } => match *size {
            4 => {
                let raw: [u8; 4] = bytes.get(..4).ok_or(())?.try_into().map_err(|_| ())?;
                let _ = write!(out, "{}", f32::from_le_bytes(raw));
            }
            8 => {
                let raw: [u8; 8] = bytes.get(..8).ok_or(())?.try_into().map_err(|_| ())?;
                let _ = write!(out, "{}", f64::from_le_bytes(raw));
            }
            _ => return Err(()),
        },
        TypeBody::Array(array) => render_array(btf, array, bytes, depth, out)?,
        TypeBody::Composite { size, members } if ty.kind == Kind::Struct => {
            render_struct(btf, *size, members, bytes, depth, out)?
        }
        TypeBody::DataSec { vars, .. } => render_datasec(btf, vars, bytes, depth, out)?,
        // Unions, forward declarations, functions: no single reading.
        _ => return Err(()),
    }
    Ok(())
}

/// An enum's value as its enumerator's name, or the number where none matches.
fn render_enum(
    size: u32,
    signed: bool,
    values: &[core_reloc::btf::EnumValue<'_>],
    bytes: &[u8],
    out: &mut String,
) -> Result<(), ()> {
    let raw = bytes.get(..size as usize).ok_or(())?;
    let unsigned = le_u64(raw).ok_or(())?;
    let value = if signed {
        sign_extend(unsigned, raw.len()) as u64
    } else {
        unsigned
    };
    let width_mask = if raw.len() >= 8 {
        u64::MAX
    } else {
        (1u64 << (raw.len() * 8)) - 1
    };
    match values.iter().find(|v| v.value & width_mask == unsigned) {
        Some(v) => out.push_str(v.name),
        None if signed => {
            let _ = write!(out, "{}", value as i64);
        }
        None => {
            let _ = write!(out, "{value}");
        }
    }
    Ok(())
}

/// An array: `char` arrays as text, others element by element (the first few).
fn render_array(
    btf: &Btf,
    array: &core_reloc::btf::ArrayType,
    bytes: &[u8],
    depth: usize,
    out: &mut String,
) -> Result<(), ()> {
    let elem_size = btf.resolve_size(array.elem).map_err(|_| ())? as usize;
    let len = array.len as usize;
    if elem_size == 0 || bytes.len() < elem_size.checked_mul(len).ok_or(())? {
        return Err(());
    }
    if elem_size == 1 && is_char(btf, array.elem) {
        let text = &bytes[..len];
        let end = text.iter().position(|&b| b == 0).unwrap_or(len);
        let _ = write!(out, "{:?}", String::from_utf8_lossy(&text[..end]));
        return Ok(());
    }
    out.push('[');
    for i in 0..len.min(MAX_ELEMENTS) {
        if i > 0 {
            out.push_str(", ");
        }
        render_type(btf, array.elem, &bytes[i * elem_size..], depth + 1, out)?;
    }
    if len > MAX_ELEMENTS {
        let _ = write!(out, ", ... ({} more)", len - MAX_ELEMENTS);
    }
    out.push(']');
    Ok(())
}

/// A struct, member by member (bitfields as their numbers).
fn render_struct(
    btf: &Btf,
    size: u32,
    members: &[core_reloc::btf::Member<'_>],
    bytes: &[u8],
    depth: usize,
    out: &mut String,
) -> Result<(), ()> {
    let size = size as usize;
    if bytes.len() < size {
        return Err(());
    }
    out.push_str("{ ");
    for (i, member) in members.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let name = if member.name.is_empty() {
            "(anon)"
        } else {
            member.name
        };
        let _ = write!(out, "{name}: ");
        if member.bitfield_size > 0 {
            let bits = bitfield(bytes, member.bit_offset, member.bitfield_size).ok_or(())?;
            let _ = write!(out, "{bits}");
        } else {
            let start = (member.bit_offset / 8) as usize;
            render_type(
                btf,
                member.ty,
                bytes.get(start..).ok_or(())?,
                depth + 1,
                out,
            )?;
        }
    }
    out.push_str(" }");
    Ok(())
}

/// A data section (`.bss`, `.data`, `.rodata`), variable by variable.
fn render_datasec(
    btf: &Btf,
    vars: &[core_reloc::btf::VarSecInfo],
    bytes: &[u8],
    depth: usize,
    out: &mut String,
) -> Result<(), ()> {
    out.push_str("{ ");
    for (i, var) in vars.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let var_type = btf.type_by_id(var.ty).map_err(|_| ())?;
        let TypeBody::Var { ty, .. } = var_type.body else {
            return Err(());
        };
        let start = var.offset as usize;
        let end = start.checked_add(var.size as usize).ok_or(())?;
        let _ = write!(out, "{}: ", var_type.name);
        render_type(btf, ty, bytes.get(start..end).ok_or(())?, depth + 1, out)?;
    }
    out.push_str(" }");
    Ok(())
}

fn is_char(btf: &Btf, id: u32) -> bool {
    let Ok(id) = btf.skip_mods_and_typedefs(id) else {
        return false;
    };
    match btf.type_by_id(id) {
        Ok(ty) => match ty.body {
            TypeBody::Int(int) => {
                int.encoding & core_reloc::btf::INT_CHAR != 0 || ty.name.contains("char")
            }
            _ => false,
        },
        Err(_) => false,
    }
}

fn le_u64(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 8 {
        return None;
    }
    let mut word = [0u8; 8];
    word[..raw.len()].copy_from_slice(raw);
    Some(u64::from_le_bytes(word))
}

fn sign_extend(value: u64, bytes: usize) -> i64 {
    let shift = 64 - 8 * bytes as u32;
    ((value << shift) as i64) >> shift
}

fn int_text(raw: &[u8], signed: bool) -> Option<String> {
    if raw.len() == 16 {
        let value = u128::from_le_bytes(raw.try_into().ok()?);
        return Some(if signed {
            (value as i128).to_string()
        } else {
            value.to_string()
        });
    }
    let value = le_u64(raw)?;
    Some(if signed {
        sign_extend(value, raw.len()).to_string()
    } else {
        value.to_string()
    })
}

/// A little-endian bitfield of `size` bits at `offset` bits.
fn bitfield(bytes: &[u8], offset: u32, size: u32) -> Option<u64> {
    if size == 0 || size > 64 {
        return None;
    }
    let mut value = 0u64;
    for i in 0..size {
        let bit = offset + i;
        let byte = *bytes.get((bit / 8) as usize)?;
        if byte >> (bit % 8) & 1 == 1 {
            value |= 1 << i;
        }
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_reloc::btf::BtfBuilder;

    fn types() -> (ObjectTypes, u32, u32) {
        let mut b = BtfBuilder::new();
        let u32_id = b.int("unsigned int", 4, false);
        let s64 = b.int("long long", 8, true);
        let char_id = b.int("char", 1, true);
        let name = b.array(char_id, u32_id, 8);
        let verdict = b.enum32("verdict", 4, false, &[("PASS", 0), ("DROP", 1)]);
        let pair = b.array(u32_id, u32_id, 2);
        let value = b.struct_(
            "facts",
            32,
            &[
                ("count", s64, 0, 0),
                ("comm", name, 64, 0),
                ("verdict", verdict, 128, 0),
                ("pair", pair, 160, 0),
            ],
        );
        let btf = b.build().unwrap();
        (
            ObjectTypes::with_btf(btf, &[("facts", u32_id, value), ("raw", 0, 0)]),
            u32_id,
            value,
        )
    }

    #[test]
    fn structs_show_fields_enums_names_and_strings() {
        let (t, _, _) = types();
        let mut v = Vec::new();
        v.extend((-3i64).to_le_bytes());
        v.extend(b"init\0\0\0\0");
        v.extend(1u32.to_le_bytes());
        v.extend(7u32.to_le_bytes());
        v.extend(9u32.to_le_bytes());
        v.extend([0u8; 4]);
        assert_eq!(
            t.value("facts", &v, 32, false),
            "{ count: -3, comm: \"init\", verdict: DROP, pair: [7, 9] }"
        );
        assert_eq!(t.key("facts", &5u32.to_le_bytes()), "5");
    }

    #[test]
    fn untyped_or_mismatched_bytes_fall_back_to_hex() {
        let (t, _, _) = types();
        assert_eq!(t.value("raw", &[1, 2], 2, false), "0x0102");
        assert_eq!(
            t.value("facts", &[1, 2], 2, false),
            "0x0102",
            "too short for the struct"
        );
        assert_eq!(t.key("unknown", &[1, 0, 0, 0]), "1");
        assert_eq!(t.key("unknown", &[1, 0]), "0x0100");
    }

    #[test]
    fn per_cpu_values_are_shown_per_cpu() {
        let mut b = BtfBuilder::new();
        let u32_id = b.int("unsigned int", 4, false);
        let t = ObjectTypes::with_btf(b.build().unwrap(), &[("pc", u32_id, u32_id)]);
        let bytes = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(t.value("pc", &bytes, 4, true), "[cpu0: 1, cpu1: 2]");
    }

    #[test]
    fn bitfields_and_sign_extension() {
        assert_eq!(bitfield(&[0b1011_0000], 4, 4), Some(0b1011));
        assert_eq!(bitfield(&[0xff, 0x01], 7, 2), Some(0b11));
        assert_eq!(bitfield(&[0], 9, 1), None);
        assert_eq!(sign_extend(0xff, 1), -1);
        assert_eq!(sign_extend(0x7f, 1), 127);
    }
}
