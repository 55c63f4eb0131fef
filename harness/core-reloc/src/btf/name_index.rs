//! Lazily built index from essential type name to type ids.
//!
//! Two indexes, each built on first use: one over the kinds CO-RE looks up
//! (everything but functions, variables, decl tags and datasecs; about a
//! fifth of vmlinux's named types), one over the rest (vmlinux has some 56k
//! named functions that CO-RE never asks for). Each is a hash table in
//! compressed form: `starts[b]..starts[b + 1]` is the range of `ids` in
//! bucket `b`, filled in ascending id order. Two passes over the types (count,
//! then place), no per-entry allocation, a few hundred KiB for vmlinux.

use super::resolve::essential_len_bytes;
use super::{Btf, Kind};
use crate::bytes::u32_at;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KindClass {
    /// Kinds a CO-RE relocation can name.
    Core,
    /// Func, Var, DeclTag, DataSec.
    Other,
}

impl KindClass {
    pub(crate) fn of(kind: Kind) -> KindClass {
        match kind {
            Kind::Func | Kind::Var | Kind::DeclTag | Kind::DataSec => KindClass::Other,
            _ => KindClass::Core,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct NameIndex {
    starts: Vec<u32>,
    ids: Vec<u32>,
    mask: usize,
}

fn hash_name(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let mut tail = 0u64;
    for (i, &b) in chunks.remainder().iter().enumerate() {
        tail |= (b as u64) << (8 * i);
    }
    h = (h.rotate_left(5) ^ tail).wrapping_mul(K);
    h ^ (h >> 29)
}

/// The NUL-terminated name at `off` (word-at-a-time NUL search).
fn name_bytes(strings: &[u8], off: u32) -> Option<&[u8]> {
    let rest = strings.get(off as usize..)?;
    std::ffi::CStr::from_bytes_until_nul(rest)
        .ok()
        .map(|c| c.to_bytes())
}

impl NameIndex {
    pub(crate) fn build(btf: &Btf, class: KindClass) -> NameIndex {
        let types = btf.type_section();
        let strings = btf.string_section();
        // Pass 1: the bucket of every named type of the class.
        let mut entries: Vec<(u32, u32)> = Vec::new();
        for (i, &off) in btf.offsets.iter().enumerate() {
            let (Some(name_off), Some(info)) =
                (u32_at(types, off as usize), u32_at(types, off as usize + 4))
            else {
                continue;
            };
            if name_off == 0 {
                continue;
            }
            let Some(kind) = Kind::from_raw((info >> 24) & 0x1f) else {
                continue;
            };
            if KindClass::of(kind) != class {
                continue;
            }
            let Some(name) = name_bytes(strings, name_off) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let essential = &name[..essential_len_bytes(name)];
            entries.push((hash_name(essential) as u32, i as u32 + 1));
        }
        let buckets = (entries.len() * 2).next_power_of_two().max(16);
        let mask = buckets - 1;
        // Pass 2: counting sort into buckets; ids stay ascending per bucket.
        let mut starts = vec![0u32; buckets + 1];
        for &(h, _) in &entries {
            starts[(h as usize & mask) + 1] += 1;
        }
        for b in 0..buckets {
            starts[b + 1] += starts[b];
        }
        let mut fill = starts.clone();
        let mut ids = vec![0u32; entries.len()];
        for &(h, id) in &entries {
            let b = h as usize & mask;
            ids[fill[b] as usize] = id;
            fill[b] += 1;
        }
        NameIndex { starts, ids, mask }
    }

    /// Ids whose essential name equals `essential`, ascending.
    pub(crate) fn lookup<'a>(
        &'a self,
        btf: &'a Btf,
        essential: &'a str,
    ) -> impl Iterator<Item = u32> + 'a {
        let bucket = hash_name(essential.as_bytes()) as u32 as usize & self.mask;
        let range = match (self.starts.get(bucket), self.starts.get(bucket + 1)) {
            (Some(&a), Some(&b)) => a as usize..b as usize,
            _ => 0..0,
        };
        self.ids
            .get(range)
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(move |&id| {
                btf.name_of(id).is_ok_and(|name| {
                    name.get(..essential_len_bytes(name.as_bytes())) == Some(essential)
                })
            })
    }
}
