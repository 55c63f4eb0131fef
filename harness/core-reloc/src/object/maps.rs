//! Map definitions: BTF-defined (`.maps`), legacy (`maps`) and global data
//! sections (`.data`, `.rodata`, `.bss` and their `.name` variants).

use super::ObjectError;
use crate::btf::{Btf, Kind, TypeBody};
use crate::bytes::u32_at;

/// `BPF_MAP_TYPE_ARRAY`.
pub const MAP_TYPE_ARRAY: u32 = 2;
/// `BPF_F_RDONLY_PROG`: programs may only read the map (used for `.rodata`).
pub const MAP_F_RDONLY_PROG: u32 = 1 << 7;
/// `BPF_F_MMAPABLE`.
pub const MAP_F_MMAPABLE: u32 = 1 << 10;

/// Largest global data section accepted; bounds `.bss` allocations.
pub const MAX_DATA_SECTION: u64 = 64 << 20;

/// Where a map comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// A BTF-defined map in `.maps`.
    BtfDefined,
    /// A legacy `struct bpf_map_def` in `maps`.
    Legacy,
    /// `.data`: initialised globals.
    Data,
    /// `.rodata`: constants, frozen.
    Rodata,
    /// `.bss`: zeroed globals.
    Bss,
    /// `.kconfig`: the values of the object's kconfig externs, filled by the loader, frozen.
    Kconfig,
}

/// A map to create, as the object describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    /// Symbol name for `.maps`/`maps` maps, section name for data maps.
    pub name: String,
    /// Where it comes from.
    pub kind: MapKind,
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
    /// `BPF_F_*` creation flags.
    pub map_flags: u32,
    /// NUMA node (with `BPF_F_NUMA_NODE`).
    pub numa_node: u32,
    /// Map-type specific extra (bloom filter hashes...).
    pub map_extra: u64,
    /// Initial contents of the single value of a data map.
    pub initial_value: Option<Vec<u8>>,
    /// Freeze after initialising (`.rodata`).
    pub freeze: bool,
    /// Key type in the object's BTF (0: none).
    pub btf_key_type_id: u32,
    /// Value type in the object's BTF (0: none).
    pub btf_value_type_id: u32,
    /// `__uint(pinning, ...)`: 0 none, 1 `LIBBPF_PIN_BY_NAME`.
    pub pinning: u32,
    /// The inner map definition of an array/hash of maps (`__array(values, struct {...})`).
    pub inner: Option<Box<MapSpec>>,
    /// `.values = { [slot] = &name }` initialisation: a map (map-in-map) or a program
    /// (prog_array, filled once programs are loaded), by symbol name.
    pub init_slots: Vec<(u32, String)>,
    /// Byte offset of the `values` member in the definition, when it has one.
    pub(crate) values_offset: Option<u64>,
    /// A `struct_ops` map (`SEC(".struct_ops")` variable): its struct and which program fills
    /// which function member.
    pub struct_ops: Option<StructOps>,
    /// ELF section index the map lives in (for data maps, the section itself).
    pub(crate) section_index: usize,
    /// Offset of the definition within its section (legacy/BTF maps).
    pub(crate) offset: u64,
}

impl MapSpec {
    /// A name the kernel accepts: at most 15 bytes of `[A-Za-z0-9_.]`.
    pub fn kernel_name(&self) -> String {
        self.name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .take(15)
            .collect()
    }

    /// A map with nothing set yet but where it comes from.
    fn new(name: String, kind: MapKind, section_index: usize, offset: u64) -> MapSpec {
        MapSpec {
            name,
            kind,
            map_type: 0,
            key_size: 0,
            value_size: 0,
            max_entries: 0,
            map_flags: 0,
            numa_node: 0,
            map_extra: 0,
            initial_value: None,
            freeze: false,
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            pinning: 0,
            inner: None,
            init_slots: Vec::new(),
            values_offset: None,
            struct_ops: None,
            section_index,
            offset,
        }
    }

    /// An array of one value of `value_size` bytes (key 0).
    fn single_value(self, value_size: u32) -> MapSpec {
        MapSpec {
            map_type: MAP_TYPE_ARRAY,
            key_size: 4,
            value_size,
            max_entries: 1,
            ..self
        }
    }

    pub(crate) fn data(
        name: &str,
        kind: MapKind,
        section_index: usize,
        size: u64,
        bytes: Option<&[u8]>,
        btf: Option<&Btf>,
    ) -> Result<MapSpec, ObjectError> {
        if size > MAX_DATA_SECTION {
            return Err(ObjectError::Malformed(format!(
                "data section {name} is {size} bytes, more than the {MAX_DATA_SECTION} accepted"
            )));
        }
        let initial = match bytes {
            Some(b) => b.to_vec(),
            None => vec![0; size as usize],
        };
        let value_type = btf
            .map(|b| b.ids_by_name(Kind::DataSec, name))
            .and_then(|ids| ids.first().copied())
            .unwrap_or(0);
        Ok(MapSpec {
            map_flags: if kind == MapKind::Rodata {
                MAP_F_RDONLY_PROG
            } else {
                0
            },
            initial_value: Some(initial),
            freeze: kind == MapKind::Rodata,
            btf_value_type_id: value_type,
            ..MapSpec::new(name.to_string(), kind, section_index, 0).single_value(size as u32)
        })
    }

    /// The `.kconfig` map: one value of `size` bytes, read-only for programs, frozen after the
    /// loader wrote the resolved values into it.
    pub(crate) fn kconfig(size: u32, btf: Option<&Btf>) -> MapSpec {
        let value_type = btf
            .map(|b| b.ids_by_name(Kind::DataSec, super::KCONFIG_SECTION))
            .and_then(|ids| ids.first().copied())
            .unwrap_or(0);
        let name = super::KCONFIG_SECTION.to_string();
        MapSpec {
            map_flags: MAP_F_RDONLY_PROG,
            initial_value: Some(vec![0; size as usize]),
            freeze: true,
            btf_value_type_id: value_type,
            ..MapSpec::new(name, MapKind::Kconfig, usize::MAX, 0).single_value(size)
        }
    }

    /// One `struct bpf_map_def` from a legacy `maps` section.
    pub(crate) fn legacy(
        name: &str,
        def: &[u8],
        section_index: usize,
        offset: u64,
    ) -> Result<MapSpec, ObjectError> {
        let field = |i: usize| u32_at(def, 4 * i);
        let (Some(map_type), Some(key_size), Some(value_size), Some(max_entries)) =
            (field(0), field(1), field(2), field(3))
        else {
            return Err(ObjectError::Malformed(format!(
                "legacy map {name}: definition shorter than 16 bytes"
            )));
        };
        Ok(MapSpec {
            map_type,
            key_size,
            value_size,
            max_entries,
            map_flags: field(4).unwrap_or(0),
            ..MapSpec::new(name.to_string(), MapKind::Legacy, section_index, offset)
        })
    }

    /// A BTF-defined map: `var_id` is the VAR in the `.maps` DATASEC.
    pub(crate) fn btf_defined(
        btf: &Btf,
        var_id: u32,
        section_index: usize,
        offset: u64,
    ) -> Result<MapSpec, ObjectError> {
        let var = btf.type_by_id(var_id)?;
        let name = var.name.to_string();
        let TypeBody::Var { ty, .. } = var.body else {
            return Err(ObjectError::Malformed(format!(
                "map {name}: not a variable"
            )));
        };
        Self::from_definition(btf, &name, ty, section_index, offset, 0)
    }

    /// Parses one map definition struct; `depth` bounds inner-map nesting.
    fn from_definition(
        btf: &Btf,
        name: &str,
        ty: u32,
        section_index: usize,
        offset: u64,
        depth: u32,
    ) -> Result<MapSpec, ObjectError> {
        let name = name.to_string();
        let bad = |why: &str| ObjectError::Malformed(format!("map {name}: {why}"));
        let def_id = btf.skip_mods_and_typedefs(ty)?;
        let def = btf.type_by_id(def_id)?;
        if def.kind != Kind::Struct {
            return Err(bad("definition is not a struct"));
        }
        let mut spec = MapSpec::new(name.clone(), MapKind::BtfDefined, section_index, offset);
        for member in def.members() {
            match member.name {
                "type" => spec.map_type = uint_member(btf, member.ty).map_err(&bad)?,
                "max_entries" => spec.max_entries = uint_member(btf, member.ty).map_err(&bad)?,
                "map_flags" => spec.map_flags = uint_member(btf, member.ty).map_err(&bad)?,
                "numa_node" => spec.numa_node = uint_member(btf, member.ty).map_err(&bad)?,
                "map_extra" => spec.map_extra = uint_member(btf, member.ty).map_err(&bad)? as u64,
                "key_size" => {
                    let size = uint_member(btf, member.ty).map_err(&bad)?;
                    if spec.key_size != 0 && spec.key_size != size {
                        return Err(bad("key_size disagrees with key type"));
                    }
                    spec.key_size = size;
                }
                "value_size" => {
                    let size = uint_member(btf, member.ty).map_err(&bad)?;
                    if spec.value_size != 0 && spec.value_size != size {
                        return Err(bad("value_size disagrees with value type"));
                    }
                    spec.value_size = size;
                }
                "key" | "value" => {
                    let ptr = btf.skip_mods_and_typedefs(member.ty)?;
                    let TypeBody::Ptr { target } = btf.type_by_id(ptr)?.body else {
                        return Err(bad("key/value must be declared with __type()"));
                    };
                    let size = btf.resolve_size(target)?;
                    let (size_slot, id_slot) = if member.name == "key" {
                        (&mut spec.key_size, &mut spec.btf_key_type_id)
                    } else {
                        (&mut spec.value_size, &mut spec.btf_value_type_id)
                    };
                    if *size_slot != 0 && *size_slot != size {
                        return Err(bad("key/value size disagrees with key_size/value_size"));
                    }
                    *size_slot = size;
                    *id_slot = target;
                }
                "pinning" => spec.pinning = uint_member(btf, member.ty).map_err(&bad)?,
                "values" => {
                    spec.values_offset = Some(u64::from(member.bit_offset / 8));
                    // __array(values, T): a zero-length array of pointers to T.
                    let arr = btf.skip_mods_and_typedefs(member.ty)?;
                    let TypeBody::Array(a) = btf.type_by_id(arr)?.body else {
                        return Err(bad("values must be declared with __array()"));
                    };
                    let ptr = btf.skip_mods_and_typedefs(a.elem)?;
                    let TypeBody::Ptr { target } = btf.type_by_id(ptr)?.body else {
                        return Err(bad("values must be an array of pointers"));
                    };
                    let inner = btf.skip_mods_and_typedefs(target)?;
                    if btf.kind_of(inner)? == Kind::Struct {
                        if depth > 0 {
                            return Err(bad("an inner map cannot itself hold maps"));
                        }
                        let inner_name = format!("{name}.inner");
                        spec.inner = Some(Box::new(Self::from_definition(
                            btf,
                            &inner_name,
                            inner,
                            section_index,
                            offset,
                            depth + 1,
                        )?));
                    }
                }
                // Unknown fields do not change how the map is created here.
                _ => {}
            }
        }
        if spec.values_offset.is_some() {
            // Values hold fds (inner maps or programs): libbpf makes them 4 bytes.
            if spec.value_size != 0 && spec.value_size != 4 {
                return Err(bad("value size must be 4 with values"));
            }
            spec.value_size = 4;
            if spec.key_size == 0 {
                spec.key_size = 4;
            }
            if spec.inner.is_some() {
                spec.btf_value_type_id = 0;
            }
        }
        Ok(spec)
    }
}

/// What a `struct_ops` map variable says: the struct it instantiates and the programs in its
/// function members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructOps {
    /// The struct's name, e.g. `tcp_congestion_ops`: the kernel type it must match.
    pub type_name: String,
    /// (member name, program name), from the ELF relocations of the section.
    pub members: Vec<(String, String)>,
}

/// `BPF_MAP_TYPE_STRUCT_OPS`.
pub const MAP_TYPE_STRUCT_OPS: u32 = 26;
/// `BPF_F_LINK`: a `.struct_ops.link` map, attached through a link.
pub const MAP_F_LINK: u32 = 1 << 13;

impl MapSpec {
    /// One variable of a `.struct_ops` / `.struct_ops.link` section.
    pub(crate) fn struct_ops(
        btf: &Btf,
        var_id: u32,
        section_index: usize,
        offset: u64,
        link: bool,
    ) -> Result<MapSpec, ObjectError> {
        let var = btf.type_by_id(var_id)?;
        let name = var.name.to_string();
        let TypeBody::Var { ty, .. } = var.body else {
            return Err(ObjectError::Malformed(format!(
                "struct_ops {name}: not a variable"
            )));
        };
        let struct_id = btf.skip_mods_and_typedefs(ty)?;
        let st = btf.type_by_id(struct_id)?;
        let TypeBody::Composite { size, .. } = st.body else {
            return Err(ObjectError::Malformed(format!(
                "struct_ops {name}: not a struct"
            )));
        };
        Ok(MapSpec {
            map_type: MAP_TYPE_STRUCT_OPS,
            map_flags: if link { MAP_F_LINK } else { 0 },
            btf_value_type_id: struct_id,
            struct_ops: Some(StructOps {
                type_name: st.name.to_string(),
                members: Vec::new(),
            }),
            ..MapSpec::new(name, MapKind::BtfDefined, section_index, offset).single_value(size)
        })
    }
}

/// Decodes `__uint(name, val)`, i.e. `int (*name)[val]`.
fn uint_member(btf: &Btf, ty: u32) -> Result<u32, &'static str> {
    let ptr = btf
        .skip_mods_and_typedefs(ty)
        .map_err(|_| "bad member type")?;
    let Ok(TypeBody::Ptr { target }) = btf.type_by_id(ptr).map(|t| t.body) else {
        return Err("__uint() member is not a pointer");
    };
    let arr = btf
        .skip_mods_and_typedefs(target)
        .map_err(|_| "bad member type")?;
    match btf.type_by_id(arr).map(|t| t.body) {
        Ok(TypeBody::Array(a)) => Ok(a.len),
        _ => Err("__uint() member does not point to an array"),
    }
}
