//! Maps: create, element access, key iteration, freeze, info.

use std::os::fd::{OwnedFd, RawFd};

use crate::attr::{InfoAttr, MapBatchAttr, MapCreateAttr, MapElemAttr, MapInfoRaw};
use crate::consts::*;
use crate::error::BpfError;
use crate::sys::{bpf, bpf_fd, name_from_bytes, obj_name_bytes, ptr_u64, AsBpfFd};

/// What `BPF_MAP_CREATE` needs.
#[derive(Debug, Clone, Default)]
pub struct MapCreate {
    /// The kernel-visible name; sanitized by [`crate::sanitize_obj_name`] (15 bytes of
    /// `[A-Za-z0-9_.]`). Error messages use it unsanitized.
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    /// BTF object describing key and value (e.g. from [`crate::load_btf`]); `None` for none.
    pub btf_fd: Option<RawFd>,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
}

/// The rarely needed `BPF_MAP_CREATE` fields, for [`create_map_with`].
#[derive(Debug, Clone, Default)]
pub struct MapCreateExtra {
    /// Inner map template for `ARRAY_OF_MAPS`/`HASH_OF_MAPS`.
    pub inner_map_fd: Option<RawFd>,
    /// For `struct_ops` maps.
    pub btf_vmlinux_value_type_id: u32,
    /// NUMA node, with [`BPF_F_NUMA_NODE`] in `map_flags`.
    pub numa_node: u32,
    /// 5.16+: bloom filter hash count, arena address; must be 0 on older kernels.
    pub map_extra: u64,
}

fn map_label(name: &str) -> Option<String> {
    Some(format!("map {name:?}"))
}

/// `BPF_MAP_CREATE`.
pub fn create_map(spec: &MapCreate) -> Result<OwnedFd, BpfError> {
    create_map_with(spec, &MapCreateExtra::default())
}

/// `BPF_MAP_CREATE` with the rarely needed fields.
pub fn create_map_with(spec: &MapCreate, extra: &MapCreateExtra) -> Result<OwnedFd, BpfError> {
    let mut attr = MapCreateAttr {
        map_type: spec.map_type,
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries: spec.max_entries,
        map_flags: spec.map_flags,
        inner_map_fd: extra.inner_map_fd.unwrap_or(0) as u32,
        numa_node: extra.numa_node,
        map_name: obj_name_bytes(&spec.name),
        btf_vmlinux_value_type_id: extra.btf_vmlinux_value_type_id,
        map_extra: extra.map_extra,
        ..Default::default()
    };
    if let Some(btf) = spec.btf_fd {
        attr.btf_fd = btf as u32;
        attr.btf_key_type_id = spec.btf_key_type_id;
        attr.btf_value_type_id = spec.btf_value_type_id;
    }
    bpf_fd(BPF_MAP_CREATE, &mut attr)
        .map_err(|e| BpfError::syscall(BPF_MAP_CREATE, map_label(&spec.name), e))
}

/// What the kernel says about the map behind `fd`, used to label errors and to check buffer
/// sizes before the kernel reads or writes them (it trusts the map's sizes, not ours).
struct MapShape {
    name: String,
    key_size: usize,
    /// Bytes of one lookup/update value: per-CPU maps hold one 8-byte-rounded slot per CPU.
    value_bytes: usize,
    percpu: bool,
}

fn map_shape(fd: RawFd) -> Option<MapShape> {
    let mut raw = MapInfoRaw::default();
    obj_info(fd, &mut raw).ok()?;
    let percpu = map_type_is_percpu(raw.map_type);
    let value_bytes = if percpu {
        percpu_value_size(raw.value_size as usize).ok()?
    } else {
        raw.value_size as usize
    };
    Some(MapShape {
        name: name_from_bytes(&raw.name),
        key_size: raw.key_size as usize,
        value_bytes,
        percpu,
    })
}

fn label(fd: RawFd, shape: &Option<MapShape>) -> String {
    match shape {
        Some(s) => format!("map {:?} (fd {fd})", s.name),
        None => format!("fd {fd}"),
    }
}

/// Refuses buffers shorter than what the kernel will read or write for this map.
fn check_sizes(
    cmd: u32,
    fd: RawFd,
    shape: &Option<MapShape>,
    key: Option<usize>,
    value: Option<usize>,
) -> Result<(), BpfError> {
    let Some(s) = shape else {
        // Not a map, or no info: the command itself will fail with the kernel's errno.
        return Ok(());
    };
    let context = || format!("{} on {}", cmd_name(cmd), label(fd, shape));
    if let Some(k) = key {
        if k < s.key_size {
            return Err(BpfError::invalid(
                context(),
                format!("key of {k} bytes, the map's keys have {}", s.key_size),
            ));
        }
    }
    if let Some(v) = value {
        if v < s.value_bytes {
            let why = if s.percpu {
                " (per-CPU: value size rounded up to 8, times possible CPUs)"
            } else {
                ""
            };
            return Err(BpfError::invalid(
                context(),
                format!("value of {v} bytes, the map needs {}{why}", s.value_bytes),
            ));
        }
    }
    Ok(())
}

pub(crate) fn obj_info<T: Copy>(fd: RawFd, out: &mut T) -> Result<u32, i32> {
    let mut attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of::<T>() as u32,
        info: ptr_u64(out as *mut T),
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(attr.info_len)
}

fn elem_err(cmd: u32, fd: RawFd, shape: &Option<MapShape>, errno: i32) -> BpfError {
    BpfError::syscall(cmd, Some(label(fd, shape)), errno)
}

/// `BPF_MAP_UPDATE_ELEM` with `flags` ([`BPF_ANY`], [`BPF_NOEXIST`], [`BPF_EXIST`],
/// [`BPF_F_LOCK`]). For per-CPU maps `value` holds one 8-byte-aligned slot per possible CPU
/// (see [`percpu_value_size`]).
pub fn map_update(fd: impl AsBpfFd, key: &[u8], value: &[u8], flags: u64) -> Result<(), BpfError> {
    let fd = fd.as_bpf_fd();
    let shape = map_shape(fd);
    check_sizes(
        BPF_MAP_UPDATE_ELEM,
        fd,
        &shape,
        Some(key.len()),
        Some(value.len()),
    )?;
    let mut attr = MapElemAttr {
        map_fd: fd as u32,
        key: ptr_u64(key.as_ptr()),
        value: ptr_u64(value.as_ptr()),
        flags,
        ..Default::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
        .map(|_| ())
        .map_err(|e| elem_err(BPF_MAP_UPDATE_ELEM, fd, &shape, e))
}

/// `BPF_MAP_LOOKUP_ELEM`: `Ok(None)` when the key is absent (`ENOENT`). `value_size` is the
/// map's value size, or for per-CPU maps [`percpu_value_size`] of it.
///
/// The kernel writes the map's whole (per-CPU) value whatever buffer it is given, so the key and
/// buffer sizes are checked against the map's own sizes (`BPF_OBJ_GET_INFO_BY_FD`) first and a
/// short one is an [`BpfError::Invalid`] error, never a kernel write past the end.
pub fn map_lookup(
    fd: impl AsBpfFd,
    key: &[u8],
    value_size: usize,
) -> Result<Option<Vec<u8>>, BpfError> {
    map_lookup_flags(fd, key, value_size, 0)
}

/// [`map_lookup`] with lookup flags (e.g. [`BPF_F_LOCK`]).
pub fn map_lookup_flags(
    fd: impl AsBpfFd,
    key: &[u8],
    value_size: usize,
    flags: u64,
) -> Result<Option<Vec<u8>>, BpfError> {
    let fd = fd.as_bpf_fd();
    let shape = map_shape(fd);
    check_sizes(
        BPF_MAP_LOOKUP_ELEM,
        fd,
        &shape,
        Some(key.len()),
        Some(value_size),
    )?;
    let mut value = vec![0u8; value_size];
    let mut attr = MapElemAttr {
        map_fd: fd as u32,
        key: ptr_u64(key.as_ptr()),
        value: ptr_u64(value.as_mut_ptr()),
        flags,
        ..Default::default()
    };
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(Some(value)),
        Err(libc::ENOENT) => Ok(None),
        Err(e) => Err(elem_err(BPF_MAP_LOOKUP_ELEM, fd, &shape, e)),
    }
}

/// `BPF_MAP_DELETE_ELEM`: `Ok(false)` when the key was absent.
pub fn map_delete(fd: impl AsBpfFd, key: &[u8]) -> Result<bool, BpfError> {
    let fd = fd.as_bpf_fd();
    let shape = map_shape(fd);
    check_sizes(BPF_MAP_DELETE_ELEM, fd, &shape, Some(key.len()), None)?;
    let mut attr = MapElemAttr {
        map_fd: fd as u32,
        key: ptr_u64(key.as_ptr()),
        ..Default::default()
    };
    match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(libc::ENOENT) => Ok(false),
        Err(e) => Err(elem_err(BPF_MAP_DELETE_ELEM, fd, &shape, e)),
    }
}

/// `BPF_MAP_GET_NEXT_KEY`: the key after `key`, or the first key for `None`; `Ok(None)` at the
/// end.
pub fn map_next_key(
    fd: impl AsBpfFd,
    key: Option<&[u8]>,
    key_size: usize,
) -> Result<Option<Vec<u8>>, BpfError> {
    let fd = fd.as_bpf_fd();
    let shape = map_shape(fd);
    check_sizes(BPF_MAP_GET_NEXT_KEY, fd, &shape, Some(key_size), None)?;
    if let Some(k) = key {
        check_sizes(BPF_MAP_GET_NEXT_KEY, fd, &shape, Some(k.len()), None)?;
    }
    let mut next = vec![0u8; key_size];
    let mut attr = MapElemAttr {
        map_fd: fd as u32,
        key: key.map_or(0, |k| ptr_u64(k.as_ptr())),
        value: ptr_u64(next.as_mut_ptr()),
        ..Default::default()
    };
    match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
        Ok(_) => Ok(Some(next)),
        Err(libc::ENOENT) => Ok(None),
        Err(e) => Err(elem_err(BPF_MAP_GET_NEXT_KEY, fd, &shape, e)),
    }
}

/// All keys, by `BPF_MAP_GET_NEXT_KEY` iteration from the NULL key (`key_size` is the map's key
/// size). If a hash map is modified during the walk the kernel may restart from the first key,
/// so keys can repeat; the walk stops after 1,000,000 keys whatever happens.
pub fn map_keys(fd: impl AsBpfFd, key_size: usize) -> Result<Vec<Vec<u8>>, BpfError> {
    let fd = fd.as_bpf_fd();
    let mut keys = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    while keys.len() < 1_000_000 {
        match map_next_key(fd, cur.as_deref(), key_size)? {
            Some(k) => {
                keys.push(k.clone());
                cur = Some(k);
            }
            None => break,
        }
    }
    Ok(keys)
}

/// Entries read by one [`map_lookup_batch`] call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MapBatch {
    pub keys: Vec<Vec<u8>>,
    pub values: Vec<Vec<u8>>,
    /// Where the next call resumes; `None` when the map has no more entries.
    pub next: Option<Vec<u8>>,
}

/// The most key and value bytes one batch call carries: the buffers are allocated up front.
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// `BPF_MAP_LOOKUP_BATCH` (5.6) for maps whose batch position is a key (arrays; hash maps use a
/// bucket index instead and may refuse a bucket bigger than the batch): up to `count` entries
/// after `start` (from the first key for `None`), in one syscall. `count` is lowered so that the
/// buffers stay within [`MAX_BATCH_BYTES`]. `value_size` as for [`map_lookup`]. A kernel or map
/// without batch operations gives an error ([`BpfError::is_invalid_argument`] or
/// [`BpfError::is_not_supported`]): fall back to [`map_next_key`] and [`map_lookup`].
pub fn map_lookup_batch(
    fd: impl AsBpfFd,
    start: Option<&[u8]>,
    key_size: usize,
    value_size: usize,
    count: usize,
) -> Result<MapBatch, BpfError> {
    let fd = fd.as_bpf_fd();
    let shape = map_shape(fd);
    check_sizes(
        BPF_MAP_LOOKUP_BATCH,
        fd,
        &shape,
        Some(key_size),
        Some(value_size),
    )?;
    if let Some(k) = start {
        check_sizes(BPF_MAP_LOOKUP_BATCH, fd, &shape, Some(k.len()), None)?;
    }
    let per_entry = (key_size + value_size).max(1);
    let count = count
        .min(MAX_BATCH_BYTES / per_entry)
        .clamp(1, u32::MAX as usize);
    let mut keys = vec![0u8; count * key_size];
    let mut values = vec![0u8; count * value_size];
    let mut position = vec![0u8; key_size.max(8)];
    let mut attr = MapBatchAttr {
        in_batch: start.map_or(0, |k| ptr_u64(k.as_ptr())),
        out_batch: ptr_u64(position.as_mut_ptr()),
        keys: ptr_u64(keys.as_mut_ptr()),
        values: ptr_u64(values.as_mut_ptr()),
        count: count as u32,
        map_fd: fd as u32,
        ..Default::default()
    };
    let ended = match bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) {
        Ok(_) => false,
        // The end of the map; `count` says how many entries came before it.
        Err(libc::ENOENT) => true,
        Err(e) => return Err(elem_err(BPF_MAP_LOOKUP_BATCH, fd, &shape, e)),
    };
    // The kernel never reports more than it was given room for; bounded again all the same.
    let filled = (attr.count as usize).min(count);
    position.truncate(key_size);
    Ok(MapBatch {
        keys: keys
            .chunks(key_size.max(1))
            .take(filled)
            .map(<[u8]>::to_vec)
            .collect(),
        values: values
            .chunks(value_size.max(1))
            .take(filled)
            .map(<[u8]>::to_vec)
            .collect(),
        next: (!ended && filled > 0).then_some(position),
    })
}

/// `BPF_MAP_UPDATE_BATCH` (5.6): writes `values[i]` at `keys[i]` with `elem_flags` in one
/// syscall; every key and value must have the map's sizes (`value_size` as for
/// [`map_update`]). Errors as for [`map_lookup_batch`].
pub fn map_update_batch(
    fd: impl AsBpfFd,
    keys: &[Vec<u8>],
    values: &[Vec<u8>],
    elem_flags: u64,
) -> Result<(), BpfError> {
    let fd = fd.as_bpf_fd();
    let shape = map_shape(fd);
    let context = || {
        format!(
            "{} on {}",
            cmd_name(BPF_MAP_UPDATE_BATCH),
            label(fd, &shape)
        )
    };
    if keys.len() != values.len() || keys.len() > u32::MAX as usize {
        return Err(BpfError::invalid(
            context(),
            format!("{} keys for {} values", keys.len(), values.len()),
        ));
    }
    let (Some(key_size), Some(value_size)) =
        (keys.first().map(Vec::len), values.first().map(Vec::len))
    else {
        return Ok(());
    };
    if keys.iter().any(|k| k.len() != key_size) || values.iter().any(|v| v.len() != value_size) {
        return Err(BpfError::invalid(
            context(),
            "keys (or values) of different sizes in one batch".to_string(),
        ));
    }
    check_sizes(
        BPF_MAP_UPDATE_BATCH,
        fd,
        &shape,
        Some(key_size),
        Some(value_size),
    )?;
    let flat_keys = keys.concat();
    let flat_values = values.concat();
    let mut attr = MapBatchAttr {
        keys: ptr_u64(flat_keys.as_ptr()),
        values: ptr_u64(flat_values.as_ptr()),
        count: keys.len() as u32,
        map_fd: fd as u32,
        elem_flags,
        ..Default::default()
    };
    bpf(BPF_MAP_UPDATE_BATCH, &mut attr)
        .map(|_| ())
        .map_err(|e| elem_err(BPF_MAP_UPDATE_BATCH, fd, &shape, e))
}

/// `BPF_MAP_FREEZE` (5.2): no more writes from user space (with [`BPF_F_RDONLY_PROG`]: a
/// constant map the verifier can read through).
pub fn map_freeze(fd: impl AsBpfFd) -> Result<(), BpfError> {
    let fd = fd.as_bpf_fd();
    let mut attr = MapElemAttr {
        map_fd: fd as u32,
        ..Default::default()
    };
    bpf(BPF_MAP_FREEZE, &mut attr)
        .map(|_| ())
        .map_err(|e| elem_err(BPF_MAP_FREEZE, fd, &map_shape(fd), e))
}

/// What the kernel reports about a map (`BPF_OBJ_GET_INFO_BY_FD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub name: String,
    pub btf_id: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a map.
pub fn map_info(fd: impl AsBpfFd) -> Result<MapInfo, BpfError> {
    let fd = fd.as_bpf_fd();
    let mut raw = MapInfoRaw::default();
    obj_info(fd, &mut raw)
        .map_err(|e| BpfError::syscall(BPF_OBJ_GET_INFO_BY_FD, Some(format!("map fd {fd}")), e))?;
    Ok(MapInfo {
        map_type: raw.map_type,
        id: raw.id,
        key_size: raw.key_size,
        value_size: raw.value_size,
        max_entries: raw.max_entries,
        map_flags: raw.map_flags,
        name: name_from_bytes(&raw.name),
        btf_id: raw.btf_id,
    })
}

/// The per-CPU value buffer size for a map of `value_size`: `round_up(value_size, 8)` times
/// [`possible_cpus`].
pub fn percpu_value_size(value_size: usize) -> Result<usize, BpfError> {
    Ok(value_size.div_ceil(8) * 8 * possible_cpus()?)
}

const POSSIBLE_CPUS: &str = "/sys/devices/system/cpu/possible";

/// Number of possible CPUs (what per-CPU maps hold a slot for), from
/// `/sys/devices/system/cpu/possible`.
pub fn possible_cpus() -> Result<usize, BpfError> {
    static CACHE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    if let Some(n) = CACHE.get() {
        return Ok(*n);
    }
    let text = std::fs::read_to_string(POSSIBLE_CPUS).map_err(|source| BpfError::Io {
        path: POSSIBLE_CPUS.into(),
        source,
    })?;
    let cpus = parse_cpu_list(&text)
        .map_err(|reason| BpfError::invalid(format!("parsing {POSSIBLE_CPUS}"), reason))?;
    if cpus.is_empty() {
        return Err(BpfError::invalid(
            format!("parsing {POSSIBLE_CPUS}"),
            "no CPU listed",
        ));
    }
    Ok(*CACHE.get_or_init(|| cpus.len()))
}

/// Parses a kernel CPU list such as `0-3,5\n` into the CPU numbers, ascending, without
/// duplicates.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>, String> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("bad CPU number {s:?} in {:?}", text.trim()))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("bad CPU range {part:?}"));
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(num(part)?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,5\n").unwrap(), vec![0, 1, 2, 3, 5]);
        assert_eq!(parse_cpu_list("0\n").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list("0-1,1-2").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<u32>::new());
        assert!(parse_cpu_list("0-x").is_err());
        assert!(parse_cpu_list("3-1").is_err());
    }
}
